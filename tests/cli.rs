//! The `mudrock` binary as a user runs it: exit codes, the summary table,
//! `--json`, `validate` and `plan`.

use std::path::Path;
use std::process::{Command, Output};

fn mudrock(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mudrock"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = dir.path().join("mudrock-data/project-local/shared/sales");
    std::fs::create_dir_all(&shared).unwrap();
    for f in ["orders.csv", "customers.csv", "products.ndjson"] {
        std::fs::copy(root.join("examples/sales/data").join(f), shared.join(f)).unwrap();
    }
    std::fs::copy(
        root.join("examples/sales/pipeline.json"),
        dir.path().join("pipeline.json"),
    )
    .unwrap();
    dir
}

#[test]
fn run_prints_a_summary_and_exits_zero_then_hits_the_cache() {
    let dir = setup();
    let out = mudrock(&["run", "pipeline.json"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let header = stdout.lines().next().unwrap();
    for col in ["node", "status", "rows", "time", "cache"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        stdout.lines().any(|l| l.starts_with("sales_by_region")
            && l.contains("succeeded")
            && l.contains(" 48 ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("artifacts: mudrock-data/project-local/pipelines/sales-by-region/runs/")
    );

    let out = mudrock(&["run", "pipeline.json", "--json"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["status"], "succeeded");
    let sales = meta["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == "sales_by_region")
        .unwrap();
    assert_eq!(sales["cacheHit"], true);
    assert_eq!(sales["status"], "cached");
}

#[test]
fn a_failed_run_exits_one_and_an_invalid_pipeline_two() {
    let dir = setup();
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("pipeline.json")).unwrap())
            .unwrap();
    // Remove the error edge: the assert failure is now unhandled.
    doc["edges"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["edgeType"] != "error");
    std::fs::write(dir.path().join("failing.json"), doc.to_string()).unwrap();
    let out = mudrock(&["run", "failing.json"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(
        "error: node \"unique_emails\": 1 of 1 checks failed: unique(email): 2 duplicate values"
    ));

    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"nodes": [{"id": "x", "nodeType": "operator", "config": {"operator": "fliter"}}]}"#,
    )
    .unwrap();
    let out = mudrock(&["run", "bad.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("error: nodes[0].config.operator: node \"x\": unknown operator \"fliter\" — did you mean \"filter\"?"), "{err}");
    assert!(
        !dir.path()
            .join("mudrock-data/project-local/pipelines/pipeline")
            .exists(),
        "nothing ran"
    );
}

#[test]
fn validate_reports_everything_and_checks_columns_with_a_store() {
    let dir = setup();
    let out = mudrock(&["validate", "pipeline.json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pipeline.json: valid"));

    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("pipeline.json")).unwrap())
            .unwrap();
    doc["nodes"][3]["config"]["predicate"] = serde_json::json!("status <> 'cancelled' AND qty > 0");
    std::fs::write(dir.path().join("cols.json"), doc.to_string()).unwrap();
    // Without a store only the document is checked; with one, columns too.
    assert_eq!(
        mudrock(&["validate", "cols.json"], dir.path())
            .status
            .code(),
        Some(0)
    );
    let out = mudrock(
        &["validate", "cols.json", "--store", "mudrock-data", "--json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["diagnostics"][0]["path"], "nodes[3].config.predicate");
    assert_eq!(
        v["diagnostics"][0]["message"],
        "unknown column \"qty\" — did you mean \"quantity\"?"
    );
}

#[test]
fn plan_prints_order_cache_and_output_schemas() {
    let dir = setup();
    let out = mudrock(&["plan", "pipeline.json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("output sales_by_region:"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.trim_start().starts_with("region") && l.contains("string")),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.contains("sales_by_region") && l.contains("miss")),
        "{s}"
    );
    mudrock(&["run", "pipeline.json"], dir.path());
    let out = mudrock(&["plan", "pipeline.json", "--json"], dir.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sales = v["order"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == "sales_by_region")
        .unwrap();
    assert_eq!(sales["cacheHit"], true);
    let cols: Vec<&str> = v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["nodeId"] == "sales_by_region")
        .unwrap()["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["region", "month", "revenue", "orders"]);
}

#[test]
fn a_long_chain_of_fused_nodes_runs() {
    // 80 derives fused into one lazy plan: deep enough to overflow the
    // default 2 MiB thread stacks of a debug build before the binary
    // raised them.
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("mudrock-data/project-local/shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("t.csv"), "x,y\n1,a\n2,b\n").unwrap();
    let mut nodes = vec![
        serde_json::json!({"id": "src", "nodeType": "ingestion", "config": {"source": "shared/t.csv"}}),
    ];
    let mut prev = "src".to_string();
    for i in 0..80 {
        let id = format!("d{i}");
        nodes.push(serde_json::json!({"id": id, "nodeType": "operator",
            "config": {"operator": "derive", "columns": [{"name": "x", "expr": "x + 1"}]},
            "dependencies": [prev]}));
        prev = id;
    }
    nodes.push(serde_json::json!({"id": "out", "nodeType": "output", "config": {}, "dependencies": [prev]}));
    let doc = serde_json::json!({"id": "long", "name": "long", "nodes": nodes});
    std::fs::write(dir.path().join("long.json"), doc.to_string()).unwrap();
    let out = mudrock(&["run", "long.json", "--json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = meta["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == "out")
        .unwrap();
    assert_eq!(last["rows"], 2);
}

#[test]
fn streaming_is_chosen_per_run_and_a_bad_mode_is_refused() {
    let dir = setup();
    let out = mudrock(
        &[
            "run",
            "pipeline.json",
            "--no-cache",
            "--streaming",
            "always",
        ],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.lines().any(|l| l.starts_with("sales_by_region")
            && l.contains("succeeded")
            && l.contains(" 48 ")),
        "{stdout}"
    );
    let out = mudrock(
        &["run", "pipeline.json", "--streaming", "sometimes"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected auto, always or never"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn polars_warnings_are_log_events_not_bare_stderr_lines() {
    // Standard SQL that Polars answers with a deprecation warning (a string
    // cast to a date): the author cannot act on it, so it is a debug event
    // under the `polars` target, never a bare line on stderr.
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("mudrock-data/project-local/shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("t.csv"), "d,x\n2024-07-02,1\n2024-06-01,2\n").unwrap();
    let doc = serde_json::json!({"id": "dates", "name": "dates", "nodes": [
        {"id": "src", "nodeType": "ingestion", "config": {"source": "shared/t.csv",
            "options": {"schemaOverrides": [{"name": "d", "dtype": "date"}]}}},
        {"id": "late", "nodeType": "operator", "dependencies": ["src"],
            "config": {"operator": "filter", "predicate": "d >= CAST('2024-07-01' AS DATE)"}},
        {"id": "out", "nodeType": "output", "config": {}, "dependencies": ["late"]}]});
    std::fs::write(dir.path().join("p.json"), doc.to_string()).unwrap();
    let quiet = Command::new(env!("CARGO_BIN_EXE_mudrock"))
        .args(["run", "p.json", "--json", "--no-cache"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&quiet.stdout).unwrap();
    let out = meta["nodes"].as_array().unwrap().iter();
    assert_eq!(
        out.clone().find(|n| n["nodeId"] == "out").unwrap()["rows"],
        1
    );
    assert_eq!(
        text(&quiet.stderr),
        "",
        "nothing on stderr at the default level"
    );
    let debug = Command::new(env!("CARGO_BIN_EXE_mudrock"))
        .args(["run", "p.json", "--no-cache"])
        .current_dir(dir.path())
        .env("RUST_LOG", "polars=debug")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = text(&debug.stderr);
    assert!(
        err.lines()
            .any(|l| l.contains("polars warning") && l.contains("String to Date")),
        "{err}"
    );
}
