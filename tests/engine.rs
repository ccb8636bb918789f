//! End-to-end behaviour of the engine on the local store: the artifact tree,
//! the cache, failure semantics and atomicity.

mod common;

use std::sync::Arc;

use common::*;
use mudrock::engine::{Engine, Event, RunOptions, RunResult};
use mudrock::model::{NodeStatus, RunStatus};
use polars::prelude::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn example_produces_the_spec_tree() {
    let env = Env::new();
    env.copy_example_data();
    let r = env.run(&example()).await;
    let m = &r.meta;
    assert_eq!(m.status, RunStatus::Succeeded, "{:?}", m.error);
    let run = format!("pipelines/sales-by-region/runs/{}/", m.run_id);
    assert_eq!(r.run_prefix, run);
    let mut expected = vec![format!("{run}lineage.json"), format!("{run}metadata.json")];
    for out in [
        "customer_issues",
        "large_orders_out",
        "sales_by_region",
        "top_customers_out",
    ] {
        for f in ["data.parquet", "metadata.json", "schema.json"] {
            expected.push(format!("{run}outputs/{out}/{f}"));
        }
    }
    expected.sort();
    assert_eq!(env.files(&run), expected);
    assert!(env.exists("exports/sales/by_region.csv"));

    // Outputs hold the right data: recompute revenue by region directly.
    let by_region = env.parquet(&format!("{run}outputs/sales_by_region/data.parquet"));
    assert_eq!(by_region.height(), 48, "4 regions x 12 months");
    let total: f64 = by_region
        .column("revenue")
        .unwrap()
        .f64()
        .unwrap()
        .sum()
        .unwrap();
    let orders = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(env.path("shared/sales/orders.csv")))
        .unwrap()
        .finish()
        .unwrap();
    let products =
        JsonReader::new(std::fs::File::open(env.path("shared/sales/products.ndjson")).unwrap())
            .with_json_format(JsonFormat::JsonLines)
            .finish()
            .unwrap();
    let expected_total = orders
        .lazy()
        .filter(
            col("status")
                .neq(lit("cancelled"))
                .and(col("quantity").gt(lit(0))),
        )
        .join(
            products.lazy(),
            [col("product_id")],
            [col("product_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .select([
            (col("quantity").cast(DataType::Float64) * col("unit_price"))
                .sum()
                .alias("t"),
        ])
        .collect()
        .unwrap()
        .column("t")
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
        .unwrap();
    assert!(
        (total - expected_total).abs() < 1e-6,
        "{total} vs {expected_total}"
    );
    let top = env.parquet(&format!("{run}outputs/top_customers_out/data.parquet"));
    assert_eq!(top.height(), 10);
    let rev: Vec<f64> = top
        .column("revenue")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert!(
        rev.windows(2).all(|w| w[0] >= w[1]),
        "top customers sorted by revenue"
    );

    // The handled failure and its error frame.
    assert_eq!(node(m, "unique_emails").status, NodeStatus::Failed);
    assert_eq!(node(m, "unique_emails").handled, Some(true));
    assert_eq!(m.handled_failures.len(), 1);
    assert_eq!(m.handled_failures[0].handled_by, ["customer_issues"]);
    let issues = env.parquet(&format!("{run}outputs/customer_issues/data.parquet"));
    assert_eq!(
        issues
            .get_column_names()
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        [
            "run_id",
            "node_id",
            "node_name",
            "error_kind",
            "message",
            "failed_at"
        ]
    );
    assert_eq!(
        issues.column("node_id").unwrap().str().unwrap().get(0),
        Some("unique_emails")
    );
    assert_eq!(
        issues.column("error_kind").unwrap().str().unwrap().get(0),
        Some("assertion")
    );
    assert_eq!(
        issues.column("run_id").unwrap().str().unwrap().get(0),
        Some(m.run_id.as_str())
    );
    assert_eq!(
        node(m, "large_orders").status,
        NodeStatus::Succeeded,
        "max(revenue) > 1000 holds"
    );

    // Run metadata carries every field of the spec.
    let meta = env.json(&format!("{run}metadata.json"));
    for k in [
        "runId",
        "pipelineId",
        "projectId",
        "pipelineVersion",
        "definitionHash",
        "trigger",
        "status",
        "attempt",
        "startedAt",
        "finishedAt",
        "durationMs",
        "worker",
        "engine",
        "nodes",
        "definition",
    ] {
        assert!(meta.get(k).is_some(), "run metadata lacks {k}");
    }
    let n0 = &meta["nodes"][0];
    for k in [
        "nodeId",
        "name",
        "nodeType",
        "operator",
        "status",
        "reason",
        "cacheKey",
        "cacheHit",
        "startedAt",
        "durationMs",
        "rows",
        "bytes",
        "error",
    ] {
        assert!(n0.get(k).is_some(), "node record lacks {k}");
    }
    let df_meta = env.json(&format!("{run}outputs/sales_by_region/metadata.json"));
    for k in [
        "dataframeId",
        "nodeId",
        "runId",
        "rows",
        "bytes",
        "blake3",
        "cacheKey",
        "createdAt",
        "compression",
    ] {
        assert!(df_meta.get(k).is_some(), "dataframe metadata lacks {k}");
    }
    let data = env.read(&format!("{run}outputs/sales_by_region/data.parquet"));
    assert_eq!(df_meta["blake3"], blake3::hash(&data).to_hex().to_string());
    assert_eq!(df_meta["bytes"], data.len() as u64);
    let schema = env.json(&format!("{run}outputs/sales_by_region/schema.json"));
    let names: Vec<&str> = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["region", "month", "revenue", "orders"]);
    assert_eq!(schema["arrow"]["fields"].as_array().unwrap().len(), 4);

    // Lineage: sources, outputs, the conditional and the error edge taken.
    let lineage = env.json(&format!("{run}lineage.json"));
    assert_eq!(lineage["sources"].as_array().unwrap().len(), 3);
    assert_eq!(lineage["outputs"].as_array().unwrap().len(), 4);
    let taken: Vec<&str> = lineage["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["edgeId"].as_str().unwrap())
        .collect();
    assert!(
        taken.contains(&"e10") && taken.contains(&"e12"),
        "{taken:?}"
    );
    let src = &lineage["sources"][0];
    assert_eq!(
        src["blake3"],
        blake3::hash(&env.read(src["key"].as_str().unwrap()))
            .to_hex()
            .to_string()
    );
}

/// orders → filter → derive → aggregate → output, and a second branch.
fn chain() -> serde_json::Value {
    doc(
        "chain",
        vec![
            ingest("a", "shared/a.csv"),
            ingest("b", "shared/b.csv"),
            op(
                "fa",
                json!({"operator": "filter", "predicate": "x > 1"}),
                &["a"],
            ),
            op(
                "da",
                json!({"operator": "derive", "columns": [{"name": "y", "expr": "x * 10"}]}),
                &["fa"],
            ),
            op(
                "fb",
                json!({"operator": "filter", "predicate": "x > 0"}),
                &["b"],
            ),
            output("out_a", "da"),
            output("out_b", "fb"),
        ],
        vec![],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn second_run_does_no_polars_work() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n3\n");
    env.put("shared/b.csv", "x\n5\n");
    let first = env.run(&chain()).await;
    assert!(first.computed);
    assert!(first.meta.nodes.iter().all(|n| !n.cache_hit));
    let second = env.run(&chain()).await;
    assert_eq!(second.meta.status, RunStatus::Succeeded);
    assert!(!second.computed, "a fully cached run does no Polars work");
    assert!(
        second
            .meta
            .nodes
            .iter()
            .all(|n| n.status == NodeStatus::Cached && n.cache_hit)
    );
    let a1 = env.json(&format!("{}outputs/out_a/metadata.json", first.run_prefix));
    let a2 = env.json(&format!("{}outputs/out_a/metadata.json", second.run_prefix));
    assert_eq!(a1["blake3"], a2["blake3"]);
    assert_eq!(a2["rows"], 2);
    let df = env.parquet(&format!("{}outputs/out_a/data.parquet", second.run_prefix));
    assert_eq!(
        df.column("y")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect::<Vec<_>>(),
        [20, 30]
    );

    // --no-cache computes again.
    let third = env.run_with(&chain(), |o| o.use_cache = false).await;
    assert!(third.computed);
    assert!(third.meta.nodes.iter().all(|n| !n.cache_hit));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_source_misses_exactly_its_descendants() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n3\n");
    env.put("shared/b.csv", "x\n5\n");
    let first = env.run(&chain()).await;
    // Same size, different bytes: the hash index must not be fooled.
    std::thread::sleep(std::time::Duration::from_millis(20));
    env.put("shared/b.csv", "x\n6\n");
    let second = env.run(&chain()).await;
    for id in ["a", "fa", "da", "out_a"] {
        assert_eq!(
            node(&second.meta, id).cache_key,
            node(&first.meta, id).cache_key,
            "{id} key unchanged"
        );
        assert!(node(&second.meta, id).cache_hit, "{id} is cached");
    }
    for id in ["b", "fb", "out_b"] {
        assert_ne!(
            node(&second.meta, id).cache_key,
            node(&first.meta, id).cache_key,
            "{id} key changed"
        );
        assert!(!node(&second.meta, id).cache_hit, "{id} recomputed");
    }
    let df = env.parquet(&format!("{}outputs/out_b/data.parquet", second.run_prefix));
    assert_eq!(df.column("x").unwrap().i64().unwrap().get(0), Some(6));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_config_misses_downstream_and_metadata_changes_nothing() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n3\n");
    env.put("shared/b.csv", "x\n5\n");
    let first = env.run(&chain()).await;

    // Names, editor metadata and execution settings are not part of keys.
    let mut cosmetic = chain();
    for n in cosmetic["nodes"].as_array_mut().unwrap() {
        n["name"] = json!("renamed");
        n["metadata"] = json!({"x": 10, "y": 20});
        n["execution"] = json!({"retries": 2});
    }
    let second = env.run(&cosmetic).await;
    assert!(!second.computed);
    for (a, b) in first.meta.nodes.iter().zip(&second.meta.nodes) {
        assert_eq!(a.cache_key, b.cache_key, "{} key", a.node_id);
    }

    let mut changed = chain();
    changed["nodes"][3]["config"]["columns"][0]["expr"] = json!("x * 100");
    let third = env.run(&changed).await;
    for id in ["a", "fa", "b", "fb", "out_b"] {
        assert_eq!(
            node(&third.meta, id).cache_key,
            node(&first.meta, id).cache_key,
            "{id}"
        );
    }
    for id in ["da", "out_a"] {
        assert_ne!(
            node(&third.meta, id).cache_key,
            node(&first.meta, id).cache_key,
            "{id}"
        );
    }
    assert!(node(&third.meta, "out_b").cache_hit);
    assert!(!node(&third.meta, "out_a").cache_hit);
    let df = env.parquet(&format!("{}outputs/out_a/data.parquet", third.run_prefix));
    assert_eq!(df.column("y").unwrap().i64().unwrap().get(0), Some(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_points_hit_when_only_later_nodes_change() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n3\n");
    let mk = |factor: i64| {
        doc(
            "cp",
            vec![
                ingest("a", "shared/a.csv"),
                json!({"id": "fa", "nodeType": "operator", "config": {"operator": "filter", "predicate": "x > 1"},
                       "dependencies": ["a"], "execution": {"cache": true}}),
                op(
                    "da",
                    json!({"operator": "derive", "columns": [{"name": "y", "expr": format!("x * {factor}")}]}),
                    &["fa"],
                ),
                output("out", "da"),
            ],
            vec![],
        )
    };
    env.run(&mk(2)).await;
    let r = env.run(&mk(3)).await;
    assert!(
        node(&r.meta, "fa").cache_hit,
        "an explicit cache point upstream of the change hits"
    );
    assert!(
        node(&r.meta, "a").cache_hit,
        "nodes fused into a hit are served by it"
    );
    assert!(!node(&r.meta, "da").cache_hit && !node(&r.meta, "out").cache_hit);
    let df = env.parquet(&format!("{}outputs/out/data.parquet", r.run_prefix));
    assert_eq!(
        df.column("y")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect::<Vec<_>>(),
        [6, 9]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_cache_entry_is_a_miss() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n3\n");
    env.put("shared/b.csv", "x\n5\n");
    let first = env.run(&chain()).await;
    let key = node(&first.meta, "out_a").cache_key.clone().unwrap();
    let data = format!("pipelines/chain/cache/{key}/data.parquet");
    // An in-place edit is noticed by its new mtime; let the clock tick
    // past the write's timestamp first (kernel timestamps are coarse).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let original = env.read(&data);
    let mut bytes = original.clone();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    env.put(&data, &bytes);
    let second = env.run(&chain()).await;
    assert!(
        !node(&second.meta, "out_a").cache_hit,
        "a data file that no longer matches its hash is not used"
    );
    // The run copied the bad entry into its folder early (before the
    // lookup found it bad); the recomputed bytes replaced that copy.
    assert_eq!(
        env.read(&format!("{}outputs/out_a/data.parquet", second.run_prefix)),
        original,
        "the output holds the recomputed data"
    );
    assert!(node(&second.meta, "out_b").cache_hit);
    env.put(
        &format!("pipelines/chain/cache/{key}/metadata.json"),
        "garbage",
    );
    let third = env.run(&chain()).await;
    assert!(
        !node(&third.meta, "out_a").cache_hit,
        "unreadable metadata is a miss"
    );
    assert_eq!(third.meta.status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_skips_its_descendants_while_other_branches_finish() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\nabc\n");
    env.put("shared/b.csv", "x\n5\n");
    let d = doc(
        "fail",
        vec![
            ingest("a", "shared/a.csv"),
            ingest("b", "shared/b.csv"),
            op(
                "cast_a",
                json!({"operator": "cast", "columns": [{"name": "x", "dtype": "int64"}]}),
                &["a"],
            ),
            // Not a limit: Polars would push it into the scan and never
            // see the bad row.
            op(
                "more",
                json!({"operator": "derive", "columns": [{"name": "y", "expr": "x + 1"}]}),
                &["cast_a"],
            ),
            output("out_a", "more"),
            output("out_b", "b"),
        ],
        vec![],
    );
    let r = env.run(&d).await;
    let m = &r.meta;
    assert_eq!(m.status, RunStatus::Failed);
    assert_eq!(node(m, "cast_a").status, NodeStatus::Failed);
    assert_eq!(node(m, "cast_a").reason.as_deref(), Some("data"));
    assert!(
        node(m, "cast_a")
            .error
            .as_deref()
            .unwrap()
            .contains("conversion"),
        "{:?}",
        node(m, "cast_a").error
    );
    assert_eq!(node(m, "a").status, NodeStatus::Succeeded);
    for id in ["more", "out_a"] {
        assert_eq!(node(m, id).status, NodeStatus::Skipped);
        assert_eq!(
            node(m, id).reason.as_deref(),
            Some("upstream_failed"),
            "{id}"
        );
    }
    assert_eq!(node(m, "out_b").status, NodeStatus::Succeeded);
    assert!(m.error.as_deref().unwrap().starts_with("node \"cast_a\": "));
    // The failed run is committed as failed; the other output is there.
    let meta = env.json(&format!("{}metadata.json", r.run_prefix));
    assert_eq!(meta["status"], "failed");
    assert!(env.exists(&format!("{}outputs/out_b/data.parquet", r.run_prefix)));
    assert!(!env.exists(&format!("{}outputs/out_a/data.parquet", r.run_prefix)));
}

#[tokio::test(flavor = "multi_thread")]
async fn error_edges_handle_failures_and_conditions_skip() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n");
    let d = doc(
        "edges",
        vec![
            ingest("a", "shared/a.csv"),
            op(
                "check",
                json!({"operator": "assert", "checks": [{"name": "big", "expr": "x > 1"}]}),
                &[],
            ),
            op(
                "report",
                json!({"operator": "select", "columns": ["node_id", "error_kind", "message"]}),
                &[],
            ),
            output("errors", "report"),
            op("many", json!({"operator": "limit", "n": 5}), &[]),
            output("many_out", "many"),
            output("after_check", "check"),
        ],
        vec![
            json!({"id": "e1", "sourceNodeId": "a", "targetNodeId": "check", "edgeType": "data_flow"}),
            json!({"id": "e2", "sourceNodeId": "check", "targetNodeId": "report", "edgeType": "error"}),
            json!({"id": "e3", "sourceNodeId": "a", "targetNodeId": "many", "edgeType": "conditional", "condition": "count(*) > 1000"}),
        ],
    );
    let r = env.run(&d).await;
    let m = &r.meta;
    assert_eq!(
        m.status,
        RunStatus::Succeeded,
        "a handled failure does not fail the run: {:?}",
        m.error
    );
    assert_eq!(node(m, "check").status, NodeStatus::Failed);
    assert_eq!(
        node(m, "check").error.as_deref(),
        Some("1 of 1 checks failed: big (x > 1): 1 of 2 rows fail")
    );
    assert_eq!(
        node(m, "after_check").reason.as_deref(),
        Some("upstream_failed")
    );
    assert_eq!(node(m, "report").status, NodeStatus::Succeeded);
    let errors = env.parquet(&format!("{}outputs/errors/data.parquet", r.run_prefix));
    assert_eq!(errors.height(), 1);
    assert_eq!(
        errors.column("node_id").unwrap().str().unwrap().get(0),
        Some("check")
    );
    assert_eq!(
        errors.column("message").unwrap().str().unwrap().get(0),
        Some("1 of 1 checks failed: big (x > 1): 1 of 2 rows fail")
    );
    assert_eq!(node(m, "many").reason.as_deref(), Some("condition_false"));
    assert_eq!(
        node(m, "many_out").reason.as_deref(),
        Some("upstream_skipped")
    );
    assert_eq!(m.handled_failures.len(), 1);

    // When the source succeeds, the error edge's target does not run.
    env.put("shared/a.csv", "x\n5\n6\n");
    let r = env.run(&d).await;
    assert_eq!(node(&r.meta, "report").reason.as_deref(), Some("no_error"));
    assert_eq!(node(&r.meta, "after_check").status, NodeStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn not_connected_nodes_are_skipped_and_strict_refuses_them() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n");
    let d = doc(
        "draft",
        vec![
            ingest("a", "shared/a.csv"),
            output("out", "a"),
            json!({"id": "lonely", "nodeType": "output", "config": {}}),
            op("half_join", json!({"operator": "join", "on": "x"}), &["a"]),
        ],
        vec![],
    );
    let (_, report) = mudrock::validate::validate(d.clone(), Default::default()).unwrap();
    let warnings: Vec<String> = report.warnings().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "warning: nodes[2]: node \"lonely\": not connected: an output node takes 1 input, but has 0; it will be skipped",
            "warning: nodes[3]: node \"half_join\": not connected: operator \"join\" takes 2 inputs, but has 1; it will be skipped",
        ]
    );
    let r = env.run(&d).await;
    assert_eq!(r.meta.status, RunStatus::Succeeded);
    assert_eq!(
        node(&r.meta, "lonely").reason.as_deref(),
        Some("not_connected")
    );
    assert_eq!(
        node(&r.meta, "half_join").reason.as_deref(),
        Some("not_connected")
    );
    assert_eq!(node(&r.meta, "out").status, NodeStatus::Succeeded);
    let strict = mudrock::validate::validate(
        d,
        mudrock::validate::Options {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(strict.errors().count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_file_fails_the_node_naming_the_file() {
    let env = Env::new();
    env.put("shared/ev/a.csv", "id,n\n1,2\n");
    env.put("shared/ev/b.csv", "id,n\n1,2\n3,oops\n");
    let d = doc(
        "bad",
        vec![
            json!({"id": "ev", "nodeType": "ingestion", "config": {"source": "shared/ev/*.csv", "format": "csv",
                   "options": {"schemaOverrides": [{"name": "n", "dtype": "int64"}]}}}),
            output("out", "ev"),
        ],
        vec![],
    );
    let r = env.run(&d).await;
    let ev = node(&r.meta, "ev");
    assert_eq!(ev.status, NodeStatus::Failed);
    let msg = ev.error.as_deref().unwrap();
    assert!(msg.starts_with("shared/ev/b.csv: "), "{msg}");
    assert!(msg.contains("oops"), "{msg}");
    assert_eq!(
        node(&r.meta, "out").reason.as_deref(),
        Some("upstream_failed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_by_glob_list_json_and_parquet() {
    let env = Env::new();
    env.put("shared/ev/2024-02.csv", "id,v\n3,30\n");
    env.put("shared/ev/2024-01.csv", "id,v\n1,10\n2,20\n");
    env.put("shared/ev/sub/x.csv", "id,v\n9,90\n");
    env.put(
        "shared/j.json",
        r#"[{"id": 1, "v": 1.5}, {"id": 2, "v": null}]"#,
    );
    env.put("shared/n.ndjson", "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3}\n");
    let mut df = df!("id" => [1i64, 2, 3, 4]).unwrap();
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df).unwrap();
    // Under a folder named like a Hive partition: no column comes of it.
    env.put("shared/day=2024-01-01/p.parquet", &buf);
    let d = doc(
        "formats",
        vec![
            ingest("glob", "shared/ev/*.csv"),
            json!({"id": "list", "nodeType": "ingestion", "config": {"source": ["shared/ev/2024-02.csv", "shared/ev/sub/x.csv"]}}),
            ingest("json", "shared/j.json"),
            ingest("nd", "shared/n.ndjson"),
            ingest("pq", "shared/day=2024-01-01/p.parquet"),
            output("o_glob", "glob"),
            output("o_list", "list"),
            output("o_json", "json"),
            output("o_nd", "nd"),
            output("o_pq", "pq"),
        ],
        vec![],
    );
    let r = env.run(&d).await;
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
    let rows = |id: &str| node(&r.meta, id).rows;
    assert_eq!(rows("o_glob"), Some(3), "* does not cross /");
    assert_eq!(rows("o_list"), Some(2));
    assert_eq!(rows("o_json"), Some(2));
    assert_eq!(rows("o_nd"), Some(3));
    assert_eq!(rows("o_pq"), Some(4));
    let pq = env.parquet(&format!("{}outputs/o_pq/data.parquet", r.run_prefix));
    assert_eq!(pq.get_column_names(), ["id"], "the file's columns only");
    let glob = env.parquet(&format!("{}outputs/o_glob/data.parquet", r.run_prefix));
    assert_eq!(
        glob.column("id")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect::<Vec<_>>(),
        [1, 2, 3],
        "files in key order"
    );
    let lineage = env.json(&format!("{}lineage.json", r.run_prefix));
    let keys: Vec<&str> = lineage["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["nodeId"] == "glob")
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["shared/ev/2024-01.csv", "shared/ev/2024-02.csv"]);

    let missing = doc(
        "missing",
        vec![
            ingest("m", "shared/nope/*.csv"),
            ingest("k", "shared/none.csv"),
            output("o", "m"),
            output("o2", "k"),
        ],
        vec![],
    );
    let r = env.run(&missing).await;
    assert_eq!(
        node(&r.meta, "m").error.as_deref(),
        Some("no object matches \"shared/nope/*.csv\"")
    );
    assert_eq!(
        node(&r.meta, "k").error.as_deref(),
        Some("source \"shared/none.csv\" not found in bucket project-local")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_dies_before_its_commit_never_looks_complete() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n");
    env.put("shared/b.csv", "x\n2\n");
    let failing = Engine::new(Arc::new(HookedStore::failing(
        env.store.clone(),
        |op, k| op == "put" && k.ends_with("lineage.json"),
    )));
    let (p, _) = mudrock::validate::validate(chain(), Default::default()).unwrap();
    let p = Arc::new(p);
    // A retried attempt of a run that had completed before: its old commit
    // marker must go before anything is rewritten.
    let mut opts = RunOptions::local(&p);
    opts.run_id = "run-1".into();
    env.engine.run(p.clone(), opts.clone()).await.unwrap();
    assert!(env.exists("pipelines/chain/runs/run-1/metadata.json"));
    opts.attempt = 2;
    let err = failing.run(p.clone(), opts.clone()).await.unwrap_err();
    assert!(
        err.is_retryable(),
        "a storage failure is worth retrying: {err}"
    );
    assert!(
        !env.exists("pipelines/chain/runs/run-1/metadata.json"),
        "no commit marker without lineage"
    );
    // The retry completes under the same id and overwrites its own folder.
    let ok = env.engine.run(p, opts).await.unwrap();
    assert_eq!(ok.meta.attempt, 2);
    assert_eq!(
        env.json("pipelines/chain/runs/run-1/metadata.json")["attempt"],
        2
    );
    assert_eq!(
        env.files("pipelines/chain/runs/")
            .iter()
            .filter(|f| f.ends_with("metadata.json"))
            .count(),
        3,
        "one run folder"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_cache_write_fails_the_node_as_retryable_storage_and_leaves_no_entry() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n");
    env.put("shared/b.csv", "x\n5\n");
    let failing = Engine::new(Arc::new(HookedStore::failing(
        env.store.clone(),
        |op, k| op == "put" && k.contains("/cache/") && k.ends_with("metadata.json"),
    )));
    let (p, _) = mudrock::validate::validate(chain(), Default::default()).unwrap();
    let p = Arc::new(p);
    let r = failing.run(p.clone(), RunOptions::local(&p)).await.unwrap();
    assert_eq!(r.meta.status, RunStatus::Failed);
    for id in ["out_a", "out_b"] {
        let n = node(&r.meta, id);
        assert_eq!(n.status, NodeStatus::Failed, "{id}");
        assert_eq!(n.reason.as_deref(), Some("storage"));
        assert_eq!(
            n.error.as_deref(),
            Some("storage temporarily unavailable: injected")
        );
    }
    assert_eq!(
        node(&r.meta, "da").status,
        NodeStatus::Succeeded,
        "fused upstream members computed fine"
    );
    assert!(
        env.files("pipelines/chain/cache/")
            .iter()
            .all(|f| !f.ends_with("metadata.json")),
        "no entry without metadata"
    );
    // The next run finds no entries and computes.
    let r = env.run(&chain()).await;
    assert!(r.computed && r.meta.status == RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_storage_failures_are_retried_per_node() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n");
    let d = |retries: u32| {
        doc(
            "retry",
            vec![
                ingest("a", "shared/a.csv"),
                json!({"id": "out", "nodeType": "output", "config": {}, "dependencies": ["a"], "execution": {"retries": retries}}),
            ],
            vec![],
        )
    };
    for (retries, fails, expect) in [
        (2u32, 2usize, RunStatus::Succeeded),
        (1, 2, RunStatus::Failed),
    ] {
        let left = Arc::new(AtomicUsize::new(fails));
        let l = left.clone();
        let flaky = Engine::new(Arc::new(HookedStore::failing(
            env.store.clone(),
            move |op, k| {
                // The first `fails` writes of the cache entry's metadata fail.
                op == "put"
                    && k.contains("/cache/")
                    && k.ends_with("metadata.json")
                    && l.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
            },
        )));
        let (p, _) = mudrock::validate::validate(d(retries), Default::default()).unwrap();
        let p = Arc::new(p);
        let mut opts = RunOptions::local(&p);
        opts.use_cache = false;
        let r = flaky.run(p.clone(), opts).await.unwrap();
        assert_eq!(r.meta.status, expect, "retries {retries}, failures {fails}");
        assert_eq!(
            left.load(Ordering::SeqCst),
            fails - (retries as usize + 1).min(fails)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_over_its_timeout_fails_and_cancellation_skips_the_rest() {
    let env = Env::new();
    let rows: String = (0..3000).map(|i| format!("{i}\n")).collect();
    env.put("shared/a.csv", format!("x\n{rows}"));
    // A 9-million-row cross join aggregated: far longer than 10 ms.
    let d = doc(
        "slow",
        vec![
            ingest("a", "shared/a.csv"),
            op(
                "b",
                json!({"operator": "select", "columns": [{"name": "y", "expr": "x"}]}),
                &["a"],
            ),
            json!({"id": "cross", "nodeType": "operator", "config": {"operator": "join", "how": "cross"}, "dependencies": ["a", "b"],
                   "execution": {"timeoutSeconds": 0.01}}),
            op(
                "total",
                json!({"operator": "aggregate", "aggregations": [{"name": "s", "expr": "sum(x * y)"}]}),
                &["cross"],
            ),
            output("out", "total"),
            output("quick", "a"),
        ],
        vec![],
    );
    let r = env.run(&d).await;
    assert_eq!(r.meta.status, RunStatus::Failed);
    let failed: Vec<_> = r
        .meta
        .nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].reason.as_deref(), Some("timeout"));
    assert_eq!(failed[0].error.as_deref(), Some("timed out after 0.01s"));
    assert_eq!(node(&r.meta, "quick").status, NodeStatus::Succeeded);
    let bad = mudrock::validate::validate(json!({"nodes": [{"id": "a", "nodeType": "ingestion", "config": {"source": "shared/a.csv"}, "execution": {"timeoutSeconds": 0}}]}), Default::default()).unwrap_err();
    assert_eq!(
        bad.to_string(),
        "error: nodes[0].execution.timeoutSeconds: node \"a\": must be a positive number of seconds\n"
    );

    // Cancelled before it starts: nothing runs, the run is committed as cancelled.
    let r = env.run_with(&d, |o| o.cancel.cancel()).await;
    assert_eq!(r.meta.status, RunStatus::Cancelled);
    assert!(
        r.meta
            .nodes
            .iter()
            .all(|n| n.status == NodeStatus::Skipped && n.reason.as_deref() == Some("cancelled"))
    );
    assert!(!r.computed);
    assert_eq!(
        env.json(&format!("{}metadata.json", r.run_prefix))["status"],
        "cancelled"
    );
}

/// A timed-out unit's Polars work cannot be stopped: it keeps its
/// concurrency slot until it really ends, so the next unit does not
/// compute beside it.
#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_unit_keeps_its_slot_until_its_computation_ends() {
    let env = Env::new();
    let rows: String = (0..3000).map(|i| format!("{i}\n")).collect();
    env.put("shared/a.csv", format!("x\n{rows}"));
    // `cross` (its own unit: cached) times out; its error edge makes
    // `report` compute strictly after the timeout, while the abandoned
    // 9-million-row cross join aggregated is still running.
    let d = doc(
        "slot",
        vec![
            ingest("a", "shared/a.csv"),
            op(
                "a2",
                json!({"operator": "select", "columns": [{"name": "y", "expr": "x"}]}),
                &["a"],
            ),
            json!({"id": "cross", "nodeType": "operator", "dependencies": ["a", "a2"],
                   "config": {"operator": "join", "how": "cross"},
                   "execution": {"timeoutSeconds": 0.01, "cache": true}}),
            op(
                "total",
                json!({"operator": "aggregate", "aggregations": [{"name": "s", "expr": "sum(x * y)"}]}),
                &["cross"],
            ),
            output("out", "total"),
            op(
                "report",
                json!({"operator": "select", "columns": ["node_id", "error_kind"]}),
                &[],
            ),
            output("quick", "report"),
        ],
        vec![
            json!({"id": "e", "sourceNodeId": "cross", "targetNodeId": "report", "edgeType": "error"}),
        ],
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let r = env
        .run_with(&d, |o| {
            o.concurrency = 1;
            o.events = Some(tx);
        })
        .await;
    assert_eq!(node(&r.meta, "cross").reason.as_deref(), Some("timeout"));
    assert_eq!(node(&r.meta, "quick").status, NodeStatus::Succeeded);
    let mut order = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        match ev {
            Event::NodeStarted { node_id } => order.push(format!("start {node_id}")),
            Event::NodeFinished(rec) => order.push(format!("end {}", rec.node_id)),
        }
    }
    let pos = |s: &str| order.iter().position(|e| e == s).unwrap();
    assert!(pos("end cross") < pos("start quick"), "{order:?}");
    // The report never computed beside the abandoned cross join.
    assert_eq!(
        r.peak_computing, 1,
        "units computing at once with concurrency 1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn independent_branches_run_concurrently_up_to_the_limit() {
    let rows: String = (0..60_000).map(|i| format!("{i},{}\n", i % 7)).collect();
    for (limit, expect) in [(1usize, 1usize), (4, 2)] {
        let env = Env::new();
        env.put("shared/a.csv", format!("x,g\n{rows}"));
        env.put("shared/b.csv", format!("x,g\n{rows}"));
        let d = doc(
            "conc",
            vec![
                ingest("a", "shared/a.csv"),
                ingest("b", "shared/b.csv"),
                op(
                    "ga",
                    json!({"operator": "aggregate", "by": ["g"], "aggregations": [{"name": "s", "expr": "sum(x)"}]}),
                    &["a"],
                ),
                op(
                    "gb",
                    json!({"operator": "aggregate", "by": ["g"], "aggregations": [{"name": "s", "expr": "sum(x)"}]}),
                    &["b"],
                ),
                output("oa", "ga"),
                output("ob", "gb"),
            ],
            vec![],
        );
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let r = env
            .run_with(&d, |o| {
                o.concurrency = limit;
                o.events = Some(tx);
            })
            .await;
        assert_eq!(r.meta.status, RunStatus::Succeeded);
        let (mut live, mut peak) = (std::collections::HashSet::new(), 0);
        while let Ok(ev) = rx.try_recv() {
            match ev {
                Event::NodeStarted { node_id } if node_id.starts_with('o') => {
                    live.insert(node_id);
                    peak = peak.max(live.len());
                }
                Event::NodeFinished(rec) => {
                    live.remove(&rec.node_id);
                }
                _ => {}
            }
        }
        assert_eq!(peak, expect, "units in flight with concurrency {limit}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_reports_order_hits_and_schemas_without_running() {
    let env = Env::new();
    env.put("shared/a.csv", "x,name\n1,a\n2,b\n3,c\n");
    env.put("shared/b.csv", "x\n5\n");
    let (p, _) = mudrock::validate::validate(chain(), Default::default()).unwrap();
    let p = Arc::new(p);
    let opts = RunOptions::local(&p);
    let plan = mudrock::engine::plan::plan(env.store.as_ref(), p.clone(), &opts)
        .await
        .unwrap();
    let order: Vec<&str> = plan.order.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(
        order,
        ["a", "b", "fa", "da", "fb", "out_a", "out_b"],
        "topological, ties in document order"
    );
    assert!(plan.order.iter().all(|n| !n.cache_hit));
    let out_a = plan.outputs.iter().find(|o| o.node_id == "out_a").unwrap();
    let cols: Vec<(&str, &str)> = out_a
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.dtype.as_str()))
        .collect();
    assert_eq!(cols, [("x", "int64"), ("name", "string"), ("y", "int64")]);
    assert!(
        env.files("pipelines/").is_empty(),
        "planning writes nothing"
    );
    env.engine
        .run(p.clone(), RunOptions::local(&p))
        .await
        .unwrap();
    let plan = mudrock::engine::plan::plan(env.store.as_ref(), p, &opts)
        .await
        .unwrap();
    assert!(
        plan.order.iter().all(|n| n.cache_hit),
        "after a run every node would come from the cache"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_columns_are_found_at_plan_time_with_their_field() {
    let env = Env::new();
    env.put("shared/a.csv", "quantity,price\n1,2\n");
    let d = doc(
        "cols",
        vec![
            ingest("a", "shared/a.csv"),
            op(
                "f",
                json!({"operator": "filter", "predicate": "qty > 1"}),
                &["a"],
            ),
            output("o", "f"),
        ],
        vec![],
    );
    let (p, _) = mudrock::validate::validate(d.clone(), Default::default()).unwrap();
    let p = Arc::new(p);
    let plan = mudrock::engine::plan::plan(env.store.as_ref(), p.clone(), &RunOptions::local(&p))
        .await
        .unwrap();
    let problems: Vec<String> = plan.problems.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        problems,
        [
            "error: nodes[1].config.predicate: node \"f\": unknown column \"qty\" — did you mean \"quantity\"?"
        ]
    );
    let r = env.run(&d).await;
    assert_eq!(
        node(&r.meta, "f").error.as_deref(),
        Some("nodes[1].config.predicate: unknown column \"qty\" — did you mean \"quantity\"?")
    );
    assert_eq!(node(&r.meta, "f").reason.as_deref(), Some("config"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_intermediate_checkpoint_is_written_behind_and_its_failure_costs_only_the_entry() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n3\n");
    // `mid` feeds two outputs: a checkpoint whose cache entry is written in
    // the background while the outputs are computed from memory.
    let d = doc(
        "behind",
        vec![
            ingest("a", "shared/a.csv"),
            op(
                "mid",
                json!({"operator": "derive", "columns": [{"name": "y", "expr": "x * 2"}]}),
                &["a"],
            ),
            op(
                "f",
                json!({"operator": "filter", "predicate": "y > 2"}),
                &["mid"],
            ),
            output("o1", "mid"),
            output("o2", "f"),
        ],
        vec![],
    );
    let (p, _) = mudrock::validate::validate(d.clone(), Default::default()).unwrap();
    let p = Arc::new(p);
    let plan = mudrock::engine::plan::plan(env.store.as_ref(), p.clone(), &RunOptions::local(&p))
        .await
        .unwrap();
    let mid_key = plan
        .order
        .iter()
        .find(|n| n.node_id == "mid")
        .and_then(|n| n.cache_key.clone())
        .unwrap();
    // Every write of mid's entry fails.
    let k = mid_key.clone();
    let failing = Engine::new(Arc::new(HookedStore::failing(
        env.store.clone(),
        move |op, key| op != "head" && op != "get" && key.contains(&k),
    )));
    let r = failing.run(p.clone(), RunOptions::local(&p)).await.unwrap();
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
    assert_eq!(node(&r.meta, "mid").status, NodeStatus::Succeeded);
    assert_eq!(node(&r.meta, "mid").bytes, None, "no entry written");
    assert_eq!(node(&r.meta, "o2").rows, Some(2));
    assert!(
        env.files("pipelines/behind/cache/")
            .iter()
            .all(|f| !f.contains(&mid_key)),
        "no partial entry"
    );
    // With a healthy store the entry is there once the run has committed,
    // and the next run serves mid from it.
    let r = env.run(&d).await;
    assert_eq!(r.meta.status, RunStatus::Succeeded);
    assert!(node(&r.meta, "mid").bytes.is_some());
    assert!(
        env.files("pipelines/behind/cache/")
            .contains(&format!("pipelines/behind/cache/{mid_key}/metadata.json"))
    );
    let r = env.run(&d).await;
    assert!(node(&r.meta, "mid").cache_hit);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_out_source_is_not_read_when_all_its_consumers_are_cached() {
    let env = Env::new();
    env.put("shared/a.csv", "x,g\n1,a\n2,b\n3,a\n");
    let d = |pred: &str| {
        doc(
            "fan",
            vec![
                ingest("a", "shared/a.csv"),
                op(
                    "agg",
                    json!({"operator": "aggregate", "by": ["g"], "aggregations": [{"name": "s", "expr": "sum(x)"}]}),
                    &["a"],
                ),
                op(
                    "f",
                    json!({"operator": "filter", "predicate": pred}),
                    &["a"],
                ),
                output("o1", "agg"),
                output("o2", "f"),
            ],
            vec![],
        )
    };
    let r = env.run(&d("x > 1")).await;
    assert_eq!(r.meta.status, RunStatus::Succeeded);
    assert!(
        env.files("pipelines/fan/cache/").len() == 4,
        "entries for the two outputs only, not for the source: {:?}",
        env.files("pipelines/fan/cache/")
    );
    // Fully cached: no Polars work at all, so the source was not read.
    let r = env.run(&d("x > 1")).await;
    assert!(!r.computed);
    let a = node(&r.meta, "a");
    assert_eq!(
        (a.status, a.reason.as_deref()),
        (NodeStatus::Cached, Some("consumers_cached"))
    );
    // One consumer changes: the source is read again, the other consumer
    // still comes from the cache.
    let r = env.run(&d("x > 2")).await;
    assert!(r.computed);
    assert_eq!(node(&r.meta, "a").status, NodeStatus::Succeeded);
    assert!(node(&r.meta, "o1").cache_hit);
    assert_eq!(node(&r.meta, "o2").rows, Some(1));
}

/// Every output of `run` with its rows sorted (engines need not keep the
/// order of unordered results), its schema.json columns and its row count.
fn outputs_of(env: &Env, r: &RunResult) -> Vec<(String, DataFrame, serde_json::Value, u64)> {
    let run = &r.run_prefix;
    let mut names: Vec<String> = env
        .files(&format!("{run}outputs/"))
        .iter()
        .filter_map(|f| f.strip_suffix("/data.parquet"))
        .map(|f| f.rsplit('/').next().unwrap().to_string())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|o| {
            let df = env.parquet(&format!("{run}outputs/{o}/data.parquet"));
            // An error frame names its run and time: not the engine's doing.
            let df = df.drop_many(["run_id", "failed_at"]);
            let by: Vec<PlSmallStr> = df.get_column_names_owned();
            let df = df
                .sort(by, SortMultipleOptions::default().with_nulls_last(true))
                .unwrap();
            let schema = env.json(&format!("{run}outputs/{o}/schema.json"))["columns"].clone();
            let rows = node(&r.meta, &o).rows.expect("an output has a row count");
            (o, df, schema, rows)
        })
        .collect()
}

/// Equal frames, floats to 1e-9 relative (sums in another order differ in
/// the last bits).
fn same_frame(x: &DataFrame, y: &DataFrame) -> bool {
    x.schema() == y.schema()
        && x.height() == y.height()
        && x.columns().iter().zip(y.columns()).all(|(cx, cy)| {
            if cx.dtype().is_float() {
                let (fx, fy) = (
                    cx.cast(&DataType::Float64).unwrap(),
                    cy.cast(&DataType::Float64).unwrap(),
                );
                fx.f64()
                    .unwrap()
                    .iter()
                    .zip(fy.f64().unwrap().iter())
                    .all(|(p, q)| match (p, q) {
                        (Some(p), Some(q)) => (p - q).abs() <= 1e-9 * p.abs().max(1.0),
                        (None, None) => true,
                        _ => false,
                    })
            } else {
                cx.as_materialized_series()
                    .equals_missing(cy.as_materialized_series())
            }
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_streaming_engine_writes_what_the_in_memory_engine_writes() {
    use mudrock::engine::Streaming;
    // The example covers joins, aggregates, SQL, asserts, conditional and
    // error edges and an export; the second pipeline an output with nulls
    // that is streamed straight to its file.
    let nulls = doc(
        "nulls",
        vec![
            ingest("src", "shared/n.csv"),
            op(
                "keep",
                json!({"operator": "filter", "predicate": "k <> 'drop'"}),
                &["src"],
            ),
            output("out", "keep"),
        ],
        vec![],
    );
    let mut results = Vec::new();
    for mode in [Streaming::Never, Streaming::Always] {
        let env = Env::new();
        env.copy_example_data();
        env.put("shared/n.csv", "k,v,w\na,1,\ndrop,2,x\nb,,y\nc,4,\nd,,\n");
        let mut outs = Vec::new();
        for d in [example(), nulls.clone()] {
            let r = env.run_with(&d, |o| o.streaming = mode).await;
            assert_eq!(
                r.meta.status,
                RunStatus::Succeeded,
                "{mode:?}: {:?}",
                r.meta.error
            );
            outs.extend(outputs_of(&env, &r));
        }
        results.push(outs);
    }
    let (never, always) = (&results[0], &results[1]);
    assert_eq!(never.len(), 5, "four example outputs and one more");
    for (a, b) in never.iter().zip(always) {
        assert_eq!(a.0, b.0);
        assert!(same_frame(&a.1, &b.1), "{}: {} vs {}", a.0, a.1, b.1);
        assert_eq!(a.2, b.2, "{}: schema.json columns", a.0);
        assert_eq!(a.3, b.3, "{}: rows", a.0);
    }
    // The streamed output's counts come from its file: 4 rows, v null twice,
    // w null three times.
    let out = always.iter().find(|o| o.0 == "out").unwrap();
    assert_eq!(out.3, 4);
    let nulls: Vec<u64> = out
        .2
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["nullCount"].as_u64().unwrap())
        .collect();
    assert_eq!(nulls, vec![0, 2, 3]);
}

/// Every source scanned through a mapping mudrock trims (a threshold of
/// one byte) gives what scanning the files by path gives, on both engines:
/// the example's CSV (a datetime read as text and converted) and NDJSON
/// sources, fanned out. (Parquet: `engine::ingest::mapped`'s tests.)
#[tokio::test(flavor = "multi_thread")]
async fn sources_read_through_trimmed_mappings_give_what_paths_give() {
    use mudrock::engine::Streaming;
    for mode in [Streaming::Never, Streaming::Always] {
        let mut results = Vec::new();
        for trim_above in [u64::MAX, 1] {
            let env = Env::new();
            env.copy_example_data();
            let r = env
                .run_with(&example(), |o| {
                    o.streaming = mode;
                    o.trim_sources_above_bytes = trim_above;
                })
                .await;
            assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
            results.push(outputs_of(&env, &r));
        }
        let (paths, mapped) = (&results[0], &results[1]);
        assert_eq!(paths.len(), 4, "{mode:?}: the example's four outputs");
        for (a, b) in paths.iter().zip(mapped) {
            assert_eq!(a.0, b.0);
            // Float sums of user SQL on the streaming engine differ in
            // their last bits run to run.
            assert!(
                same_frame(&a.1, &b.1),
                "{mode:?} {}: {} vs {}",
                a.0,
                a.1,
                b.1
            );
            assert_eq!((&a.2, a.3), (&b.2, b.3), "{mode:?} {}: schema, rows", a.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_streams_row_wise_units_and_their_rows_keep_their_order() {
    use mudrock::engine::{Streaming, row_wise};
    let is_row_wise = |ops: Vec<serde_json::Value>| {
        let mut nodes = vec![ingest("src", "shared/rows.csv")];
        let mut last = "src".to_string();
        for (i, cfg) in ops.into_iter().enumerate() {
            let id = format!("n{i}");
            nodes.push(op(&id, cfg, &[last.as_str()]));
            last = id;
        }
        nodes.push(output("out", &last));
        let (p, _) = mudrock::validate::validate(doc("rw", nodes, vec![]), Default::default())
            .expect("valid");
        let all: Vec<usize> = (0..p.nodes.len()).collect();
        row_wise(&p, &all)
    };
    let row_ops = vec![
        json!({"operator": "filter", "predicate": "x % 2 = 0"}),
        json!({"operator": "derive", "columns": [{"name": "y", "expr": "x * 1.5 + id"}]}),
        json!({"operator": "fill_null", "columns": [{"name": "tag", "value": "none"}]}),
        json!({"operator": "cast", "columns": [{"name": "id", "dtype": "float64"}]}),
        json!({"operator": "select", "columns": ["id", "y", "tag", {"name": "z", "expr": "y - x"}]}),
    ];
    assert!(is_row_wise(row_ops.clone()));
    // Whatever groups, joins rows, orders or looks at other rows is not.
    for other in [
        json!({"operator": "derive", "columns": [{"name": "s", "expr": "sum(x) OVER (PARTITION BY tag)"}]}),
        json!({"operator": "filter", "predicate": "x > avg(x) OVER ()"}),
        json!({"operator": "fill_null", "strategy": "forward"}),
        json!({"operator": "aggregate", "by": ["tag"], "aggregations": [{"name": "n", "expr": "count(*)"}]}),
        json!({"operator": "sort", "by": ["x"]}),
        json!({"operator": "limit", "n": 5}),
        json!({"operator": "distinct"}),
    ] {
        assert!(
            !is_row_wise(vec![row_ops[0].clone(), other.clone()]),
            "{other}"
        );
    }

    // Enough rows for the streaming engine to cut the source into morsels:
    // the streamed output holds the in-memory engine's rows in the same
    // order, and is the same file on every run.
    let mut csv = String::from("id,x,tag\n");
    for i in 0..200_000u64 {
        let tag = if i % 3 == 0 { "" } else { "b" };
        csv.push_str(&format!("{i},{},{tag}\n", (i * 7919) % 1000));
    }
    let d = doc(
        "rows",
        vec![
            ingest("src", "shared/rows.csv"),
            op("keep", row_ops[0].clone(), &["src"]),
            op("calc", row_ops[1].clone(), &["keep"]),
            op("fill", row_ops[2].clone(), &["calc"]),
            op("cols", row_ops[4].clone(), &["fill"]),
            output("out", "cols"),
        ],
        vec![],
    );
    let mut files = Vec::new();
    for mode in [Streaming::Never, Streaming::Auto, Streaming::Auto] {
        let env = Env::new();
        env.put("shared/rows.csv", &csv);
        let r = env.run_with(&d, |o| o.streaming = mode).await;
        assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
        let path = format!("{}outputs/out/data.parquet", r.run_prefix);
        files.push((env.parquet(&path), env.read(&path)));
    }
    let (never, auto) = (&files[0].0, &files[1].0);
    assert_eq!(never.height(), 100_000);
    assert!(
        never.equals_missing(auto),
        "same rows, same order:\n{never}\n{auto}"
    );
    assert_eq!(
        files[1].1, files[2].1,
        "the streamed file is the same every run"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_source_is_downloaded_once_and_a_replacement_mid_run_is_caught() {
    let env = Env::new();
    env.put("shared/a.csv", "x\n1\n2\n3\n");
    let d = doc(
        "remote",
        vec![
            ingest("a", "shared/a.csv"),
            op(
                "f",
                json!({"operator": "filter", "predicate": "x > 1"}),
                &["a"],
            ),
            output("o", "f"),
        ],
        vec![],
    );
    let (p, _) = mudrock::validate::validate(d, Default::default()).unwrap();
    let p = Arc::new(p);
    let scratch = tempfile::tempdir().unwrap();

    // The store has no local paths (as S3): the source is streamed into
    // the run's scratch directory once, hashed on the way, and scanned
    // from there; it is never fetched whole.
    let remote = Arc::new(HookedStore::remote(env.store.clone()));
    let engine = Engine::new(remote.clone()).with_scratch(scratch.path().to_path_buf());
    let r = engine.run(p.clone(), RunOptions::local(&p)).await.unwrap();
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
    assert_eq!(node(&r.meta, "o").rows, Some(2));
    assert_eq!(remote.count("reader", "shared/a.csv"), 1, "one download");
    assert_eq!(remote.count("get", "shared/a.csv"), 0, "never whole");
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "the run's scratch directory (and the download) is gone"
    );

    // Cache off, and the object is replaced after it was listed (its hash
    // comes from the source index, for the old version) but before the
    // unit reads it: the unit must not file the new bytes under the old
    // content's key.
    let path = env.path("shared/a.csv");
    let mut replacing = HookedStore::remote(env.store.clone());
    replacing.before = Box::new(move |op, key| {
        if op == "reader" && key == "shared/a.csv" {
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, "x\n5\n6\n7\n8\n").unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    });
    let engine = Engine::new(Arc::new(replacing)).with_scratch(scratch.path().to_path_buf());
    let mut opts = RunOptions::local(&p);
    opts.use_cache = false;
    let r = engine.run(p.clone(), opts).await.unwrap();
    assert_eq!(r.meta.status, RunStatus::Failed);
    let a = node(&r.meta, "a");
    assert_eq!(
        (a.status, a.reason.as_deref()),
        (NodeStatus::Failed, Some("storage"))
    );
    let msg = a.error.as_deref().unwrap();
    assert!(
        msg.starts_with("source \"shared/a.csv\" changed while the run read it (version ")
            && msg.ends_with("); run again to use the new version"),
        "{msg}"
    );
    assert_eq!(node(&r.meta, "o").status, NodeStatus::Skipped);
    assert!(
        !env.exists(&format!("{}outputs/o/data.parquet", r.run_prefix)),
        "no output from a source that changed under the run"
    );

    // The next run sees the new version, hashes it and uses it.
    let r = engine.run(p.clone(), RunOptions::local(&p)).await.unwrap();
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
    assert_eq!(node(&r.meta, "o").rows, Some(4));
}
