//! Every resource a pipeline can inflate has a named limit: a node over one
//! fails with kind `limit`, the limit's name and how to raise it, and the
//! run's other branches still finish. Document limits fail validation.

mod common;

use common::*;
use mudrock::limits::DocLimits;
use mudrock::model::{NodeStatus, RunStatus};
use mudrock::validate::{Options, validate, validate_str};
use serde_json::{Value, json};

/// `bad` fails with a limit naming `key`; `good` (an independent branch)
/// still succeeds.
fn over_the_limit(m: &mudrock::model::RunMeta, bad: &str, key: &str) {
    let n = node(m, bad);
    assert_eq!(n.status, NodeStatus::Failed, "{n:?}");
    assert_eq!(n.reason.as_deref(), Some("limit"), "{n:?}");
    let e = n.error.as_deref().unwrap();
    assert!(e.starts_with(&format!("over the limit {key} = ")), "{e}");
    assert!(e.contains(&format!("raise {key} in the config")), "{e}");
    let good = node(m, "good_out").status;
    assert!(
        matches!(good, NodeStatus::Succeeded | NodeStatus::Cached),
        "{good:?}"
    );
    assert_eq!(m.status, RunStatus::Failed);
}

/// A pipeline with the node under test (`bad`, fed by `inputs`) and an
/// independent branch `good` → `good_out`.
fn with_good_branch(mut nodes: Vec<Value>) -> Value {
    nodes.push(ingest("g", "g.csv"));
    nodes.push(op(
        "good",
        json!({"operator": "filter", "predicate": "x > 0"}),
        &["g"],
    ));
    nodes.push(output("good_out", "good"));
    doc("limits", nodes, vec![])
}

fn csv(rows: impl IntoIterator<Item = String>) -> String {
    let mut s = String::from("k,x\n");
    for r in rows {
        s.push_str(&r);
        s.push('\n');
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pivot_over_max_pivot_columns_fails_naming_it() {
    let env = Env::new();
    env.put("g.csv", "x\n1\n");
    env.put("t.csv", csv((0..30).map(|i| format!("{},{i}", i % 3))));
    let d = with_good_branch(vec![
        ingest("t", "t.csv"),
        op(
            "bad",
            json!({"operator": "pivot", "index": "k", "on": "x", "values": "x"}),
            &["t"],
        ),
        output("bad_out", "bad"),
    ]);
    let r = env
        .run_with(&d, |o| o.limits.ops.max_pivot_columns = 10)
        .await;
    over_the_limit(&r.meta, "bad", "engine.max_pivot_columns");
    // Under the limit the same pivot runs.
    let r = env
        .run_with(&d, |o| o.limits.ops.max_pivot_columns = 30)
        .await;
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn joins_over_max_join_rows_fail_before_or_as_they_grow() {
    let env = Env::new();
    env.put("g.csv", "x\n1\n");
    // 200 rows with one key on each side: an inner join makes 40,000.
    env.put("a.csv", csv((0..200).map(|i| format!("1,{i}"))));
    env.put("b.csv", csv((0..200).map(|i| format!("1,{i}"))));
    for how in ["inner", "left", "cross"] {
        let config = if how == "cross" {
            json!({"operator": "join", "how": "cross"})
        } else {
            json!({"operator": "join", "how": how, "on": "k"})
        };
        let d = with_good_branch(vec![
            ingest("a", "a.csv"),
            ingest("b", "b.csv"),
            op("bad", config, &["a", "b"]),
            op(
                "agg",
                json!({"operator": "aggregate", "aggregations": [{"name": "n", "expr": "count(*)"}]}),
                &["bad"],
            ),
            output("bad_out", "agg"),
        ]);
        let r = env
            .run_with(&d, |o| o.limits.ops.max_join_rows = 10_000)
            .await;
        over_the_limit(&r.meta, "bad", "engine.max_join_rows");
        let error = node(&r.meta, "bad").error.clone().unwrap();
        if how == "cross" {
            // Estimated before anything is joined.
            assert!(error.contains("(40000)"), "{how}: {error}");
        } else {
            // Counted as the rows come: the count when it went over (the
            // unit streams, so batch by batch), never more than made.
            let n: u64 = error
                .split("(at least ")
                .nth(1)
                .and_then(|t| t.split(')').next())
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{how}: {error}"));
            assert!(n > 10_000 && n <= 40_000, "{how}: {error}");
        }
        let r = env
            .run_with(&d, |o| o.limits.ops.max_join_rows = 40_000)
            .await;
        assert_eq!(
            r.meta.status,
            RunStatus::Succeeded,
            "{how}: {:?}",
            r.meta.error
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_glob_over_max_glob_matches_fails_naming_it() {
    let env = Env::new();
    env.put("g.csv", "x\n1\n");
    for i in 0..5 {
        env.put(&format!("parts/p{i}.csv"), "k,x\n1,1\n");
    }
    let d = with_good_branch(vec![ingest("bad", "parts/*.csv"), output("bad_out", "bad")]);
    let r = env.run_with(&d, |o| o.limits.max_glob_matches = 4).await;
    over_the_limit(&r.meta, "bad", "engine.max_glob_matches");
    let r = env.run_with(&d, |o| o.limits.max_glob_matches = 5).await;
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_over_its_scratch_budget_fails_the_node_that_needed_more() {
    let env = Env::new();
    env.put("g.csv", "x\n1\n");
    env.put("t.csv", csv((0..20_000).map(|i| format!("{i},{i}"))));
    let d = with_good_branch(vec![ingest("t", "t.csv"), output("bad", "t")]);
    // The small branch's output fits; the 20,000-row one does not.
    let r = env
        .run_with(&d, |o| {
            o.limits.max_scratch_bytes = 8 << 10;
            o.concurrency = 1;
        })
        .await;
    over_the_limit(&r.meta, "bad", "engine.max_scratch_mb");
    assert!(!env.exists(&format!("{}outputs/bad/data.parquet", r.run_prefix)));
}

fn error_at(doc: &str, limits: DocLimits) -> (String, String) {
    let r = validate_str(
        doc,
        Options {
            strict: false,
            limits,
        },
    )
    .unwrap_err();
    let d = r.errors().next().unwrap();
    (d.path.clone(), d.message.clone())
}

#[test]
fn documents_over_their_limits_are_refused_at_validation() {
    let small = json!({"name": "p", "nodes": [
        {"id": "a", "nodeType": "ingestion", "config": {"source": "a.csv"}},
        {"id": "f", "nodeType": "operator", "config": {"operator": "filter", "predicate": "x > 1 AND y < 2"}, "dependencies": ["a"]},
        {"id": "o", "nodeType": "output", "config": {}, "dependencies": ["f"]}
    ]});
    assert!(validate(small.clone(), Options::default()).is_ok());
    let text = small.to_string();
    let cases = [
        (
            DocLimits {
                max_definition_kb: 0,
                ..Default::default()
            },
            "$",
            "over the limit limits.max_definition_kb = 0: the pipeline document's size in bytes",
        ),
        (
            DocLimits {
                max_nodes: 2,
                ..Default::default()
            },
            "nodes",
            "over the limit limits.max_nodes = 2: the number of nodes (3)",
        ),
        (
            DocLimits {
                max_edges: 1,
                ..Default::default()
            },
            "edges",
            "over the limit limits.max_edges = 1: the number of edges and dependencies (2)",
        ),
        (
            DocLimits {
                max_expression_chars: 10,
                ..Default::default()
            },
            "nodes[1].config.predicate",
            "over the limit limits.max_expression_chars = 10: the expression's length in characters (15)",
        ),
    ];
    for (limits, path, start) in cases {
        let (p, m) = error_at(&text, limits);
        assert_eq!(p, path, "{m}");
        assert!(m.starts_with(start), "{m}");
        // The same through a parsed document (the worker's way in).
        let r = validate(
            small.clone(),
            Options {
                strict: false,
                limits,
            },
        )
        .unwrap_err();
        assert!(r.errors().any(|d| d.message.starts_with(start)), "{r}");
    }
}

/// A long left-deep chain (`x+x+...`) within the length limit is refused
/// or accepted, never a stack overflow, on a thread with a 2 MiB stack
/// (what tokio's blocking threads get by default).
#[test]
fn long_expressions_are_handled_on_small_stacks() {
    let chain = format!("x{}", " + x".repeat(2_400));
    let d = json!({"name": "p", "nodes": [
        {"id": "a", "nodeType": "ingestion", "config": {"source": "a.csv"}},
        {"id": "f", "nodeType": "operator", "config": {"operator": "derive", "columns": [{"name": "y", "expr": chain}]}, "dependencies": ["a"]},
        {"id": "o", "nodeType": "output", "config": {}, "dependencies": ["f"]}
    ]});
    let r = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            validate(d, Options::default())
                .map(|_| ())
                .map_err(|r| r.to_string())
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    if let Err(m) = r {
        assert!(m.contains("nests deeper") || m.contains("limits."), "{m}");
    }
}
