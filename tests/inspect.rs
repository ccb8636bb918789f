//! `mudrock inspect` on the example's runs in a local store, no database:
//! pipelines, runs, a run, an output, a diff after changing one node; and
//! the bad inputs (an unknown run, an incomplete run, a damaged
//! metadata.json, a missing bucket, a key column that is not there), each
//! a message and an exit code.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn mudrock(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mudrock"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = mudrock(args, cwd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fails(args: &[&str], cwd: &Path) -> (Option<i32>, String) {
    let out = mudrock(args, cwd);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The example run twice, the second time with `large_orders` changed.
fn two_runs() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = dir.path().join("mudrock-data/project-local/shared/sales");
    std::fs::create_dir_all(&shared).unwrap();
    for f in ["orders.csv", "customers.csv", "products.ndjson"] {
        std::fs::copy(root.join("examples/sales/data").join(f), shared.join(f)).unwrap();
    }
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(root.join("examples/sales/pipeline.json")).unwrap())
            .unwrap();
    std::fs::write(dir.path().join("pipeline.json"), doc.to_string()).unwrap();
    let a: Value =
        serde_json::from_str(&ok(&["run", "pipeline.json", "--json"], dir.path())).unwrap();
    for n in doc["nodes"].as_array_mut().unwrap() {
        if n["id"] == "large_orders" {
            n["config"]["predicate"] = "revenue > 500".into();
        }
    }
    std::fs::write(dir.path().join("pipeline.json"), doc.to_string()).unwrap();
    let b: Value =
        serde_json::from_str(&ok(&["run", "pipeline.json", "--json"], dir.path())).unwrap();
    let id = |v: &Value| v["runId"].as_str().unwrap().to_string();
    (dir, id(&a), id(&b))
}

#[test]
fn inspect_the_example_and_diff_two_runs() {
    let (dir, a, b) = two_runs();
    let d = dir.path();
    let out = ok(&["inspect", "pipelines"], d);
    assert_eq!(out.trim(), "sales-by-region  2 run(s)");

    let runs: Value =
        serde_json::from_str(&ok(&["inspect", "--json", "runs", "sales-by-region"], d)).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter()
            .all(|r| r["status"] == "succeeded" && r["nodesTotal"] == 16)
    );
    let first = runs.iter().find(|r| r["runId"] == a.as_str()).unwrap();
    let second = runs.iter().find(|r| r["runId"] == b.as_str()).unwrap();
    assert_eq!(first["nodesCached"], 0, "{first}");
    assert!(second["nodesCached"].as_u64().unwrap() > 0, "{second}");
    let table = ok(&["inspect", "runs", "sales-by-region"], d);
    assert!(table.lines().next().unwrap().starts_with("run "), "{table}");
    assert!(table.contains(&b) && table.contains("succeeded"), "{table}");

    let run = ok(&["inspect", "run", &b], d);
    assert!(
        run.starts_with(&format!("run {b} of pipeline sales-by-region: succeeded")),
        "{run}"
    );
    assert!(
        run.lines()
            .any(|l| l.starts_with("large_orders ") && l.contains("succeeded")),
        "{run}"
    );
    assert!(
        run.lines()
            .any(|l| l.starts_with("by_region ") && l.contains("hit")),
        "{run}"
    );

    let o: Value = serde_json::from_str(&ok(
        &[
            "inspect",
            "--json",
            "output",
            &a,
            "sales_by_region",
            "--rows",
            "3",
        ],
        d,
    ))
    .unwrap();
    assert_eq!(o["rows"].as_array().unwrap().len(), 3);
    assert_eq!(o["metadata"]["rows"], 48);
    let cols: Vec<&str> = o["schema"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["region", "month", "revenue", "orders"]);

    let diff: Value = serde_json::from_str(&ok(
        &[
            "inspect", "--json", "diff", &a, &b, "--key", "order_id", "--rows", "2",
        ],
        d,
    ))
    .unwrap();
    assert_eq!(diff["nodesChanged"], serde_json::json!(["large_orders"]));
    assert_eq!(diff["nodesAdded"], serde_json::json!([]));
    assert_eq!(
        diff["cacheKeysChanged"],
        serde_json::json!(["large_orders", "large_orders_out"])
    );
    let outs = diff["outputs"].as_array().unwrap();
    let by = |id: &str| outs.iter().find(|o| o["output"] == id).unwrap().clone();
    assert_eq!(by("sales_by_region")["identical"], true);
    let large = by("large_orders_out");
    assert_eq!(large["identical"], false);
    let (ra, rb) = (
        large["rowsA"].as_u64().unwrap(),
        large["rowsB"].as_u64().unwrap(),
    );
    assert!(rb > ra, "a lower threshold keeps more orders");
    let rows = &large["rows"];
    assert_eq!(rows["added"].as_u64().unwrap(), rb - ra);
    assert_eq!(
        (rows["removed"].as_u64(), rows["changed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(rows["addedRows"].as_array().unwrap().len(), 2);
    let text = ok(&["inspect", "diff", &a, &b, "--key", "order_id"], d);
    assert!(text.contains("nodes changed: large_orders"), "{text}");
    assert!(
        text.contains(&format!(
            "output large_orders_out: {ra} rows → {rb} rows, changed"
        )),
        "{text}"
    );
    assert!(
        text.contains("output sales_by_region: 48 rows → 48 rows, identical"),
        "{text}"
    );
}

#[test]
fn bad_inspections_say_what_is_wrong() {
    let (dir, a, b) = two_runs();
    let d = dir.path();
    let (code, err) = fails(&["inspect", "run", "no-such-run"], d);
    assert_eq!(
        (code, err.trim()),
        (Some(2), "error: no run no-such-run in this bucket")
    );
    let (code, err) = fails(&["inspect", "--project", "nope", "pipelines"], d);
    assert_eq!(
        (code, err.trim()),
        (Some(2), "error: bucket \"project-nope\" does not exist")
    );
    // A key no output has: the diff is made, each changed output says why
    // it has no row diff.
    let text = ok(&["inspect", "diff", &a, &b, "--key", "nope"], d);
    assert!(
        text.contains("no row diff: output \"large_orders_out\" has no column \"nope\""),
        "{text}"
    );
    let (code, err) = fails(&["inspect", "output", &a, "nothing"], d);
    assert_eq!(code, Some(2));
    assert!(err.contains("has no output \"nothing\" (it has: customer_issues, large_orders_out, sales_by_region, top_customers_out)"), "{err}");

    let run_dir = |r: &str| {
        d.join(format!(
            "mudrock-data/project-local/pipelines/sales-by-region/runs/{r}"
        ))
    };
    // Damaged: a truncated metadata.json.
    let meta = run_dir(&b).join("metadata.json");
    let bytes = std::fs::read(&meta).unwrap();
    std::fs::write(&meta, &bytes[..bytes.len() / 2]).unwrap();
    let (code, err) = fails(&["inspect", "run", &b], d);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with(&format!(
            "error: pipelines/sales-by-region/runs/{b}/metadata.json is damaged: "
        )),
        "{err}"
    );
    // Incomplete: no commit marker. Never shown as finished.
    std::fs::remove_file(run_dir(&a).join("metadata.json")).unwrap();
    let (code, err) = fails(&["inspect", "run", &a], d);
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim(),
        format!(
            "error: run {a} is incomplete: it has no metadata.json (its commit marker): it is running, or died"
        )
    );
    let runs: Value =
        serde_json::from_str(&ok(&["inspect", "--json", "runs", "sales-by-region"], d)).unwrap();
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "incomplete"),
        "{runs}"
    );
    // A damaged Parquet file is named, not a panic.
    std::fs::write(&meta, &bytes).unwrap();
    std::fs::write(
        run_dir(&b).join("outputs/sales_by_region/data.parquet"),
        b"not parquet",
    )
    .unwrap();
    let (code, err) = fails(&["inspect", "output", &b, "sales_by_region"], d);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("outputs/sales_by_region/data.parquet is damaged"),
        "{err}"
    );
}

#[test]
fn pictures_of_the_example_run() {
    let (dir, _, b) = two_runs();
    let d = dir.path();
    let nodes: Vec<String> = {
        let doc: Value =
            serde_json::from_slice(&std::fs::read(d.join("pipeline.json")).unwrap()).unwrap();
        doc["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect()
    };
    let dot = ok(&["inspect", "picture", &b], d);
    assert!(dot.starts_with("digraph pipeline {"), "{dot}");
    for n in &nodes {
        assert!(
            dot.contains(&format!("\"{n}\" [label=\"{n}\\n")),
            "{n} missing: {dot}"
        );
    }
    // Coloured by status, with rows: the cached aggregate and its output.
    assert!(
        dot.contains("\"by_region\" [label=\"by_region\\naggregate\\ncached"),
        "{dot}"
    );
    assert!(dot.contains("fillcolor=\"#cde4ff\""), "{dot}");
    let mermaid = ok(&["inspect", "picture", &b, "--format", "mermaid"], d);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert_eq!(mermaid.matches("[\"").count(), nodes.len(), "{mermaid}");
    // The pipeline alone, from its file: no run colours.
    let plain = ok(&["inspect", "picture", "--file", "pipeline.json"], d);
    assert!(
        !plain.contains("#cde4ff") && plain.contains("\"orders\""),
        "{plain}"
    );
    // SVG through Graphviz (scripts/test.sh installs it): every node there.
    ok(
        &[
            "inspect", "picture", &b, "--format", "svg", "--out", "run.svg",
        ],
        d,
    );
    let svg = std::fs::read_to_string(d.join("run.svg")).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    for n in &nodes {
        assert!(
            svg.contains(&format!("<title>{n}</title>")),
            "{n} missing from the SVG"
        );
    }
    let (code, err) = fails(&["inspect", "picture", &b, "--format", "gif"], d);
    assert_eq!(
        (code, err.trim()),
        (
            Some(2),
            "error: --format gif is not one of dot, mermaid, svg, png"
        )
    );
}

/// A key column on one side of an output only: the diff says which run
/// lacks it, exit code 2.
#[test]
fn a_key_on_one_side_only_is_refused_by_name() {
    let (dir, a, _) = two_runs();
    let d = dir.path();
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(d.join("pipeline.json")).unwrap()).unwrap();
    doc["nodes"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
        "id": "trimmed", "nodeType": "operator",
        "config": {"operator": "drop", "columns": ["order_id"]}}));
    let edges = doc["edges"].as_array_mut().unwrap();
    for e in edges.iter_mut() {
        if e["sourceNodeId"] == "large_orders" && e["targetNodeId"] == "large_orders_out" {
            e["targetNodeId"] = "trimmed".into();
        }
    }
    edges.push(serde_json::json!({"id": "trim", "sourceNodeId": "trimmed",
        "targetNodeId": "large_orders_out", "edgeType": "data_flow"}));
    std::fs::write(d.join("pipeline.json"), doc.to_string()).unwrap();
    let c: Value = serde_json::from_str(&ok(&["run", "pipeline.json", "--json"], d)).unwrap();
    let c = c["runId"].as_str().unwrap();
    let (code, err) = fails(&["inspect", "diff", &a, c, "--key", "order_id"], d);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(&format!(
            "error: key column \"order_id\" is in only one side of output \"large_orders_out\": run {c} does not have it (it has: "
        )),
        "{err}"
    );
}
