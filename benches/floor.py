#!/usr/bin/env python3
"""mudrock against the raw-Polars floor, whole process, wall time.

    python3 benches/floor.py [--sf 1] [--reps 5] [--pipelines chain,joins,fanout,chain40,timestamps,dates]
                             [--peers] [--streaming] [--fixed] [--indexed] [--profile release]

Builds `mudrock` and `floor-polars` (benches/floor/: the same pipelines as
one hand-written lazy plan each, same Polars version and features, same
Parquet outputs) with the release profile (`--profile P` for another),
generates seeded data at the scale factor (orders 2 M rows per SF,
customers 50 k per SF, 10 k products; kept in --work for later runs), then
per pipeline:

- with --peers, also what users would pick instead: the same pipeline as a
  Python Polars script and as a DuckDB query (benches/peers.py, in a venv
  the harness makes under ~/.cache with polars and duckdb pinned from
  PyPI), whole process (interpreter start and imports included), in the
  same alternation; their outputs checked against the floor's (same
  columns and rows, types compared by kind);
- check: the first mudrock run's outputs must hold the same tables as the
  floor's (`floor-polars same`), or the harness stops;
- cold: `mudrock run` on a fresh store (inputs hard-linked in, so there is
  no cache and no source-hash index) against `floor-polars run`, alternating
  which goes first (A/B, B/A, ...), --reps times each; medians and ratio;
- with --indexed, also "indexed": `mudrock run` on a store whose source
  hash index is warm but which holds no cache entry (every node computed,
  no source hashed): cold minus indexed is what hashing the sources costs;
- with --fixed, also the floor's "-fixed" variant where it has one
  (joins): the same plan with its float sum aggregated in a fixed order,
  as mudrock plans it (null for an all-null group, not partitionable):
  mudrock against it is the engine's own cost, without that choice;
- with --streaming, both sides on Polars' streaming engine (`floor-polars
  run ... --streaming`, `mudrock run --streaming always`) instead of each
  side's default (the floor in memory; mudrock streams row-wise units and
  runs the rest in memory);
- with --before BIN, also "before": another `mudrock` binary (built from
  an earlier commit, e.g. before a refactoring) timed cold in the same
  alternation, its outputs checked against the floor's too: before/after
  from one harness run on the same data;
- with --s3 DIR/env (the env file `scripts/s3-server.sh start DIR`
  writes), also on S3: the sources the pipeline reads uploaded into a
  project of its own per run, --reps cold runs there (no cache, no source
  hash index) alternating with cold runs on a fresh local store (both under
  the server's load; their ratio is the S3 overhead), then --reps fully
  cached runs;
- cached: `mudrock run` again on a store where the pipeline already ran
  (every node a cache hit), --reps times; median and its ratio to the
  floor's cold median.

Peak RSS of each process comes from wait4(2), peak anonymous RSS from
sampling /proc (measure.py: the CSV pages Polars maps count in the first,
not in the second). Prints a table; --json FILE also writes the figures.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = ROOT / "benches" / "floor" / "pipelines"
PEERS = ROOT / "benches" / "peers.py"
# The peers' versions: what the README's table was measured with.
PEER_PACKAGES = ["polars==2.1.0", "duckdb==2.0.1"]


def peers_python():
    """The venv's python with the pinned peers, made on first use."""
    venv = Path.home() / ".cache" / "mudrock-peers-venv"
    py = venv / "bin" / "python"
    stamp = venv / "packages.txt"
    if not py.exists() or not stamp.exists() or stamp.read_text() != " ".join(PEER_PACKAGES):
        print(f"making {venv} with {' '.join(PEER_PACKAGES)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
        stamp.write_text(" ".join(PEER_PACKAGES))
    return py


# Pipelines whose floor has a "-fixed" variant (see --fixed).
FIXED = {"joins"}


def timed(cmd, env=None, may_fail=False):
    """Runs cmd; returns (seconds, peak RSS MiB, peak anonymous RSS MiB)
    (measure.py). Fails loudly (or, with may_fail, returns None)."""
    m = measure.run(cmd, env)
    if m.code != 0 and may_fail:
        return None
    if m.code != 0:
        sys.exit(f"floor.py: {' '.join(map(str, cmd))} exited {m.code}:\n{m.err}")
    return m.secs, m.rss, m.anon


def fresh_store(work, data, name):
    store = work / f"store-{name}"
    shutil.rmtree(store, ignore_errors=True)
    shared = store / "project-local" / "shared" / "floor"
    shared.mkdir(parents=True)
    for f in list(data.glob("*.csv")) + list(data.glob("*.parquet")):
        os.link(f, shared / f.name)
    return store


def binary_args(ap):
    """The command-line flags that choose the binaries (`binaries`), shared
    with memory.py."""
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--profile", default="release",
                    help="cargo profile of both binaries (release, as the Dockerfile builds)")


def binaries(build, profile):
    """`mudrock` and `floor-polars` of the cargo profile, built first if asked."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "mudrock-target"))
    if build:
        env = dict(os.environ, CARGO_TARGET_DIR=str(target), SQLX_OFFLINE="true")
        subprocess.run(
            ["cargo", "build", "--profile", profile, "--quiet", "-p", "mudrock", "--bin", "mudrock", "-p", "mudrock-floor", "--bin", "floor-polars"],
            cwd=ROOT, env=env, check=True,
        )
    out = target / ("debug" if profile == "dev" else profile)  # cargo's one renamed directory
    return out / "mudrock", out / "floor-polars"


def dataset(floor, work, sf):
    """The seeded data at scale factor sf, generated once under work."""
    work.mkdir(parents=True, exist_ok=True)
    sf_name = f"{sf:g}"
    data = work / f"data-sf{sf_name}"
    if not (data / "events.parquet").exists():
        print(f"generating SF={sf_name} data in {data}", file=sys.stderr)
        subprocess.run([floor, "gen", sf_name, data], check=True)
    return data


def on_s3(a, mudrock, data, name, doc, env, m_run):
    """On the S3 server of a.s3: --reps cold runs, each in a project of its
    own (sources uploaded first, untimed), alternating with cold runs on a
    fresh local store so both see the same load from the server's daemons;
    then --reps fully cached runs in the last project."""
    t = {}
    for line in a.s3.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            t[k] = v
    s3 = dict(env, MUDROCK_STORE__KIND="s3",
              MUDROCK_STORE__S3__ENDPOINT=t["MUDROCK_TEST_S3_ENDPOINT"],
              MUDROCK_STORE__S3__ACCESS_KEY_ID=t["MUDROCK_TEST_S3_ACCESS_KEY"],
              MUDROCK_STORE__S3__SECRET_ACCESS_KEY=t["MUDROCK_TEST_S3_SECRET_KEY"])
    sources = sorted({n["config"]["source"].split("/")[-1]
                      for n in json.loads(doc.read_text())["nodes"] if n["nodeType"] == "ingestion"})
    cold, local = [], []
    for rep in range(a.reps):
        s3["MUDROCK_PROJECT"] = f"floor{os.getpid()}{name}{rep}"
        subprocess.run([mudrock, "upload", *[data / f for f in sources], "--to", "shared/floor/"],
                       env=s3, check=True, stdout=subprocess.DEVNULL)
        store = fresh_store(a.work, data, "cold-local")
        runs = [(cold, lambda: timed(m_run + [doc], s3)),
                (local, lambda: timed(m_run + ["--store", store, doc], env))]
        if rep % 2:
            runs.reverse()
        for into, fn in runs:
            into.append(fn()[0])
        shutil.rmtree(store)
    cached = [timed(m_run + [doc], s3)[0] for _ in range(a.reps)]
    return {"cold_s": statistics.median(cold), "local_cold_s": statistics.median(local),
            "cold_vs_local": statistics.median(cold) / statistics.median(local),
            "cached_s": statistics.median(cached),
            "all_cold": cold, "all_local_cold": local, "all_cached": cached}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sf", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pipelines", default="chain,joins,fanout,chain40,timestamps,dates")
    ap.add_argument("--s3", type=Path, help="env file of scripts/s3-server.sh: also cold and cached on S3")
    ap.add_argument("--peers", action="store_true",
                    help="also time a Python Polars script and DuckDB (benches/peers.py)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mudrock-floor"))
    ap.add_argument("--json", type=Path)
    binary_args(ap)
    ap.add_argument("--indexed", action="store_true",
                    help="also time cold runs whose sources are already hashed")
    ap.add_argument("--streaming", action="store_true",
                    help="both sides on Polars' streaming engine")
    ap.add_argument("--fixed", action="store_true",
                    help="also time the floor with mudrock's fixed-order float sums (joins)")
    ap.add_argument("--before", type=Path,
                    help="also time this mudrock binary cold (an earlier build), side by side")
    a = ap.parse_args()

    mudrock, floor = binaries(not a.no_build, a.profile)
    py = peers_python() if a.peers else None
    data = dataset(floor, a.work, a.sf)
    sf_name = f"{a.sf:g}"
    size = sum(f.stat().st_size for f in data.glob("*.csv"))
    print(f"SF={sf_name}: {size / 2**20:.0f} MiB of CSV (orders, customers, products, events), {a.reps} reps, "
          f"{os.cpu_count()} cores", file=sys.stderr)

    env = dict(os.environ, RUST_LOG="error")
    m_run = [mudrock, "run"] + (["--streaming", "always"] if a.streaming else [])
    f_opts = ["--streaming"] if a.streaming else []
    results = []
    for name in a.pipelines.split(","):
        doc = PIPELINES / f"{name}.json"
        cold, floor_t, cached, indexed, fixed, before = [], [], [], [], [], []
        rss_m, rss_f, rss_c = 0.0, 0.0, 0.0
        anon_m, anon_f = 0.0, 0.0
        peer_t = {"polars": [], "duckdb": []}
        peer_rss = {"polars": 0.0, "duckdb": 0.0}
        peer_anon = {"polars": 0.0, "duckdb": 0.0}
        if py:
            reference = a.work / "floor-ref"
            shutil.rmtree(reference, ignore_errors=True)
            timed([floor, "run", name, data, reference], env)
        for rep in range(a.reps):
            def run_mudrock(binary=mudrock):
                store = fresh_store(a.work, data, "cold")
                got = timed([binary] + m_run[1:] + ["--store", store, doc], env,
                            may_fail=binary != mudrock)
                if got is None:
                    # An earlier build may not know what this pipeline uses.
                    shutil.rmtree(store)
                    return float("nan"), 0.0, 0.0
                if rep == 0:
                    check_same(store)
                shutil.rmtree(store)
                return got

            def run_floor():
                out = a.work / "floor-out"
                shutil.rmtree(out, ignore_errors=True)
                return timed([floor, "run", name, data, out] + f_opts, env)

            def check_same(store):
                # The comparison is only fair if both write the same tables.
                out = a.work / "floor-check"
                shutil.rmtree(out, ignore_errors=True)
                timed([floor, "run", name, data, out] + f_opts, env)
                runs = store / "project-local" / "pipelines" / f"floor-{name}" / "runs"
                for f in sorted(out.glob("*.parquet")):
                    ours = list(runs.glob(f"*/outputs/{f.stem}/data.parquet"))
                    if len(ours) != 1:
                        sys.exit(f"floor.py: {name}: no mudrock output {f.stem}")
                    timed([floor, "same", f, ours[0]], env)
                shutil.rmtree(out)

            def run_indexed():
                # A first run fills the source hash index; its runs and
                # cache entries go, so the timed run computes everything.
                store = fresh_store(a.work, data, "indexed")
                timed(m_run + ["--store", store, doc], env)
                shutil.rmtree(store / "project-local" / "pipelines")
                got = timed(m_run + ["--store", store, doc], env)
                shutil.rmtree(store)
                return got

            def run_fixed():
                out = a.work / "floor-out"
                shutil.rmtree(out, ignore_errors=True)
                return timed([floor, "run", f"{name}-fixed", data, out] + f_opts, env)

            def run_peer(tool):
                out = a.work / f"{tool}-out"
                shutil.rmtree(out, ignore_errors=True)
                got = timed([py, PEERS, tool, name, data, out], env)
                if rep == 0:
                    for f in sorted(reference.glob("*.parquet")):
                        timed([py, PEERS, "same", f, out / f.name], env)
                shutil.rmtree(out)
                return got

            order = [("m", run_mudrock), ("f", run_floor)]
            if py:
                order.append(("polars", lambda: run_peer("polars")))
                order.append(("duckdb", lambda: run_peer("duckdb")))
            if a.indexed:
                order.append(("i", run_indexed))
            if a.fixed and name in FIXED:
                order.append(("x", run_fixed))
            if a.before:
                order.append(("b", lambda: run_mudrock(a.before)))
            if rep % 2:
                order.reverse()
            for who, fn in order:
                t, r, an = fn()
                if who == "m":
                    cold.append(t)
                    rss_m, anon_m = max(rss_m, r), max(anon_m, an)
                elif who == "i":
                    indexed.append(t)
                elif who == "x":
                    fixed.append(t)
                elif who == "b":
                    before.append(t)
                elif who in peer_t:
                    peer_t[who].append(t)
                    peer_rss[who] = max(peer_rss[who], r)
                    peer_anon[who] = max(peer_anon[who], an)
                else:
                    floor_t.append(t)
                    rss_f, anon_f = max(rss_f, r), max(anon_f, an)
        store = fresh_store(a.work, data, "cached")
        timed(m_run + ["--store", store, doc], env)
        for _ in range(a.reps):
            t, r, _ = timed(m_run + ["--store", store, doc], env)
            cached.append(t)
            rss_c = max(rss_c, r)
        shutil.rmtree(store)
        if a.s3:
            res_s3 = on_s3(a, mudrock, data, name, doc, env, m_run)
        res = {
            "pipeline": name,
            "sf": a.sf,
            "floor_s": statistics.median(floor_t),
            "mudrock_cold_s": statistics.median(cold),
            "mudrock_cached_s": statistics.median(cached),
            "peak_rss_mib": {"floor": rss_f, "mudrock_cold": rss_m, "mudrock_cached": rss_c},
            "peak_anon_mib": {"floor": anon_f, "mudrock_cold": anon_m},
            "all": {"floor": floor_t, "cold": cold, "cached": cached},
        }
        res["cold_ratio"] = res["mudrock_cold_s"] / res["floor_s"]
        res["cached_ratio"] = res["mudrock_cached_s"] / res["floor_s"]
        if indexed:
            res["mudrock_indexed_s"] = statistics.median(indexed)
            res["indexed_ratio"] = res["mudrock_indexed_s"] / res["floor_s"]
            res["all"]["indexed"] = indexed
        if fixed:
            res["floor_fixed_s"] = statistics.median(fixed)
            res["fixed_ratio"] = res["mudrock_cold_s"] / res["floor_fixed_s"]
            res["all"]["floor_fixed"] = fixed
        if a.s3:
            res["s3"] = res_s3
        if py:
            res["peers"] = {
                tool: {"s": statistics.median(ts), "peak_rss_mib": peer_rss[tool],
                       "peak_anon_mib": peer_anon[tool], "all": ts}
                for tool, ts in peer_t.items()
            }
            best = min(res["peers"], key=lambda k: res["peers"][k]["s"])
            res["faster_peer"] = best
            res["cold_vs_peer"] = res["mudrock_cold_s"] / res["peers"][best]["s"]
            res["rss_vs_peer"] = rss_m / res["peers"][best]["peak_rss_mib"]
            res["anon_vs_peer"] = anon_m / res["peers"][best]["peak_anon_mib"]
            res["cached_vs_peer"] = res["mudrock_cached_s"] / res["peers"][best]["s"]
            shutil.rmtree(reference, ignore_errors=True)
        if before:
            res["before_cold_s"] = statistics.median(before)
            res["before_ratio"] = res["before_cold_s"] / res["floor_s"]
            res["all"]["before"] = before
        results.append(res)
        print(f"{name:8} floor {res['floor_s']*1000:8.0f} ms | mudrock cold {res['mudrock_cold_s']*1000:8.0f} ms "
              f"({res['cold_ratio']:.2f}x) | cached {res['mudrock_cached_s']*1000:6.0f} ms "
              f"({res['cached_ratio']:.3f}x) | peak RSS (anon) MiB floor {rss_f:.0f} ({anon_f:.0f}), "
              f"mudrock {rss_m:.0f} ({anon_m:.0f})",
              flush=True)
        if py:
            pp = res["peers"]
            print(f"{'':8} Python Polars {pp['polars']['s']*1000:6.0f} ms ({pp['polars']['peak_rss_mib']:.0f}, "
                  f"anon {pp['polars']['peak_anon_mib']:.0f} MiB) | "
                  f"DuckDB {pp['duckdb']['s']*1000:6.0f} ms ({pp['duckdb']['peak_rss_mib']:.0f}, "
                  f"anon {pp['duckdb']['peak_anon_mib']:.0f} MiB) | "
                  f"mudrock cold / faster ({res['faster_peer']}) {res['cold_vs_peer']:.2f}x, "
                  f"peak RSS {res['rss_vs_peer']:.2f}x (anon {res['anon_vs_peer']:.2f}x), "
                  f"cached {res['cached_vs_peer']:.3f}x", flush=True)
        if a.s3:
            print(f"{'':8} S3: cold {res_s3['cold_s']*1000:6.0f} ms (local in the same alternation "
                  f"{res_s3['local_cold_s']*1000:6.0f} ms, {res_s3['cold_vs_local']:.2f}x) | "
                  f"cached {res_s3['cached_s']*1000:6.0f} ms", flush=True)
        if indexed:
            print(f"{'':8} mudrock cold, sources already hashed {res['mudrock_indexed_s']*1000:8.0f} ms "
                  f"({res['indexed_ratio']:.2f}x)", flush=True)
        if fixed:
            print(f"{'':8} floor with fixed-order float sums {res['floor_fixed_s']*1000:8.0f} ms; "
                  f"mudrock cold against it {res['fixed_ratio']:.2f}x", flush=True)
        if before:
            print(f"{'':8} before ({a.before.name}) cold {res['before_cold_s']*1000:8.0f} ms "
                  f"({res['before_ratio']:.2f}x); after/before {res['mudrock_cold_s'] / res['before_cold_s']:.3f}",
                  flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
