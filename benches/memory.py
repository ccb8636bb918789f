#!/usr/bin/env python3
"""A source several times larger than a memory budget, run in that budget.

    python3 benches/memory.py [--sf 30] [--budget-mb 512] [--pipelines stream,chain] [--reps 3]
                              [--s3 DIR/env]

Generates the floor harness's seeded data at --sf (orders.csv is ~69 MiB
per SF: SF=30 is ~2 GiB), makes a cgroup whose memory controller enforces
--budget-mb as a hard limit (cgroup v2 `memory.max` or v1
`memory.limit_in_bytes`), and runs in it, --reps times each:

- `mudrock run --streaming always` on a fresh store (no cache, no source
  hash index: the source is hashed and read in full);
- `floor-polars run` with POLARS_FORCE_STREAMING=1: the same pipeline as one
  hand-written lazy plan on Polars' streaming engine;
- `mudrock run --streaming never` (once): the in-memory engine, which is
  expected to be killed by the kernel's OOM killer once the frame outgrows
  the budget; it shows the budget is real.

Before every run the data is evicted from the page cache, so its pages are
read inside the cgroup and charged to it: the kernel has to reclaim them to
stay in budget, and a process that holds more than the budget dies. Per run
it reports the exit, wall time, peak RSS (wait4: includes mapped file
pages), peak anonymous RSS (RssAnon sampled every 10 ms: memory the process
allocated itself) and the cgroup's peak charge (process memory plus the
page cache it read). Outputs are checked equal to the floor's.

With --s3 (the env file `scripts/s3-server.sh start DIR` writes), the data is
uploaded to that S3 server (a bucket per pipeline) and `mudrock run
--streaming always` also runs against it, once ("mudrock streaming, S3"): the source is streamed into a
scratch file while it is hashed and scanned from there, so the budget holds
for S3 sources too. The server runs outside the cgroup.

Needs a writable cgroup memory controller (root in most containers); without
one it runs unconfined and says so.
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
import floor  # noqa: E402  (same data, store layout and binaries)
from measure import run as run_measured  # noqa: E402


class Cgroup:
    """A memory-limited cgroup, v2 or v1; None when neither is writable."""

    @staticmethod
    def make(budget):
        name = f"mudrock-bench-{os.getpid()}"
        v2 = Path("/sys/fs/cgroup")
        ctl = v2 / "cgroup.controllers"
        if ctl.exists() and "memory" in ctl.read_text().split():
            try:
                (v2 / "cgroup.subtree_control").write_text("+memory")
            except OSError:
                pass
            d = v2 / name
            files = ("memory.max", "memory.peak", None)
        else:
            d = Path("/sys/fs/cgroup/memory") / name
            files = ("memory.limit_in_bytes", "memory.max_usage_in_bytes", "memory.memsw.limit_in_bytes")
        try:
            d.mkdir()
            (d / files[0]).write_text(str(budget))
            # v1: memory+swap may not be below the limit, so it comes second.
            if files[2] and (d / files[2]).exists():
                (d / files[2]).write_text(str(budget))
        except OSError as e:
            print(f"memory.py: no cgroup memory controller ({e}); running unconfined", file=sys.stderr)
            shutil.rmtree(d, ignore_errors=True)
            return None
        return Cgroup(d, files[1])

    def __init__(self, d, peak_file):
        self.dir = d
        self.peak_file = peak_file

    def reset_peak(self):
        try:
            (self.dir / self.peak_file).write_text("0")
        except OSError:
            pass  # v2 before 6.12 cannot reset: each run gets its own group then

    def peak(self):
        return int((self.dir / self.peak_file).read_text()) / 2**20

    def enter(self):
        (self.dir / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self):
        try:
            self.dir.rmdir()
        except OSError:
            pass


def evict(paths):
    """Drops the files' clean pages from the page cache."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run_in(cg, cmd, env):
    """Runs cmd in the cgroup: (exit code, seconds, peak RSS, peak anon RSS, cgroup peak) in MiB."""
    if cg:
        cg.reset_peak()
    m = run_measured(cmd, env, preexec_fn=cg.enter if cg else None)
    return m.code, m.secs, m.rss, m.anon, cg.peak() if cg else None, m.err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sf", type=float, default=30.0)
    ap.add_argument("--budget-mb", type=int, default=512)
    ap.add_argument("--pipelines", default="stream,chain")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mudrock-floor"))
    ap.add_argument("--json", type=Path)
    floor.binary_args(ap)
    ap.add_argument("--s3", type=Path, help="env file of scripts/s3-server.sh: also run on S3")
    a = ap.parse_args()

    mudrock, floor_bin = floor.binaries(not a.no_build, a.profile)
    data = floor.dataset(floor_bin, a.work, a.sf)
    sf_name = f"{a.sf:g}"
    csvs = sorted(data.glob("*.csv"))
    size = sum(f.stat().st_size for f in csvs) / 2**20
    budget = a.budget_mb << 20
    print(f"SF={sf_name}: {size:.0f} MiB of CSV, budget {a.budget_mb} MiB "
          f"({size / a.budget_mb:.1f}x), {os.cpu_count()} cores", file=sys.stderr)

    cg = Cgroup.make(budget)
    base = dict(os.environ, RUST_LOG="error")
    s3 = s3_env(a.s3, base) if a.s3 else None
    results = []
    print(f"{'':28} {'exit':>5} {'wall s':>7} {'peak RSS':>9} {'peak anon':>9} {'cgroup peak':>11}"
          f"  (MiB, medians; budget {a.budget_mb} MiB)")
    try:
        for name in a.pipelines.split(","):
            results.extend(measure(a, cg, name, data, csvs, mudrock, floor_bin, base, s3))
    finally:
        if cg:
            cg.remove()
    if a.json:
        a.json.write_text(json.dumps({"sf": a.sf, "budget_mb": a.budget_mb, "source_mib": size,
                                      "confined": cg is not None, "runs": results}, indent=1))


def s3_env(env_file, base):
    """mudrock's environment for the S3 server that env_file describes."""
    t = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            t[k] = v
    return dict(base, MUDROCK_STORE__KIND="s3",
                MUDROCK_STORE__S3__ENDPOINT=t["MUDROCK_TEST_S3_ENDPOINT"],
                MUDROCK_STORE__S3__ACCESS_KEY_ID=t["MUDROCK_TEST_S3_ACCESS_KEY"],
                MUDROCK_STORE__S3__SECRET_ACCESS_KEY=t["MUDROCK_TEST_S3_SECRET_KEY"])


def measure(a, cg, name, data, csvs, mudrock, floor_bin, base, s3):
    doc = floor.PIPELINES / f"{name}.json"

    def mudrock_run(mode):
        store = floor.fresh_store(a.work, data, "memory")
        evict(csvs)
        r = run_in(cg, [mudrock, "run", "--streaming", mode, "--store", store, doc], base)
        return r, store

    def check(store):
        out = a.work / "floor-memory-check"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([floor_bin, "run", name, data, out], check=True,
                       env=dict(base, POLARS_FORCE_STREAMING="1"))
        runs = store / "project-local" / "pipelines" / f"floor-{name}" / "runs"
        for f in sorted(out.glob("*.parquet")):
            ours = list(runs.glob(f"*/outputs/{f.stem}/data.parquet"))
            if len(ours) != 1:
                sys.exit(f"memory.py: {name}: no mudrock output {f.stem}")
            subprocess.run([floor_bin, "same", f, ours[0]], check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(out)

    rows = {"mudrock streaming": [], "floor streaming": [], "mudrock in-memory": []}
    if s3:
        rows["mudrock streaming, S3"] = []
    for rep in range(a.reps):
        for who in (["m", "f"] if rep % 2 == 0 else ["f", "m"]):
            if who == "m":
                r, store = mudrock_run("always")
                rows["mudrock streaming"].append(r)
                if rep == 0 and r[0] == 0:
                    check(store)
                shutil.rmtree(store)
            else:
                out = a.work / "floor-memory"
                shutil.rmtree(out, ignore_errors=True)
                evict(csvs)
                rows["floor streaming"].append(
                    run_in(cg, [floor_bin, "run", name, data, out], dict(base, POLARS_FORCE_STREAMING="1")))
                shutil.rmtree(out, ignore_errors=True)
    r, store = mudrock_run("never")
    rows["mudrock in-memory"].append(r)
    shutil.rmtree(store)
    if s3:
        # Once, in a bucket of its own (a cold run: no cache, no source
        # hash index); the server keeps objects in memory, so one copy of
        # the data per pipeline is what it can hold.
        env = dict(s3, MUDROCK_PROJECT=f"bench{os.getpid()}{name}")
        print(f"{name}: uploading the data to S3", file=sys.stderr)
        subprocess.run([mudrock, "upload", *csvs, "--to", "shared/floor/"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        evict(csvs)
        rows["mudrock streaming, S3"].append(run_in(cg, [mudrock, "run", "--streaming", "always", doc], env))

    results = []
    for who, rs in rows.items():
        ok = [r for r in rs if r[0] == 0]
        code = 0 if ok else rs[-1][0]
        use = ok or rs
        med = lambda i: statistics.median(r[i] for r in use)  # noqa: E731
        cgp = f"{med(4):11.0f}" if cg else f"{'-':>11}"
        print(f"{name + ': ' + who:28} {code:>5} {med(1):7.1f} {med(2):9.0f} {med(3):9.0f} {cgp}", flush=True)
        if code not in (0, -9):
            print(rs[-1][5], file=sys.stderr)
        results.append({
            "pipeline": name, "run": who, "exit": [r[0] for r in rs], "wall_s": [r[1] for r in rs],
            "peak_rss_mib": [r[2] for r in rs], "peak_anon_mib": [r[3] for r in rs],
            "cgroup_peak_mib": [r[4] for r in rs],
        })
    return results


if __name__ == "__main__":
    main()
