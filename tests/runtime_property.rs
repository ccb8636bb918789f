//! A property: a pipeline that validates never fails at run time with an
//! internal error. Pipelines are generated from every operator with
//! plausible and implausible configs over a small table (columns that
//! exist and some that do not, types that fit and some that do not); the
//! run may fail as the user's fault (config, data, assertion, limit), but
//! never as mudrock's.

mod common;

use std::cell::Cell;

use common::*;
use mudrock::model::NodeStatus;
use proptest::prelude::*;
use serde_json::{Value, json};

const COLUMNS: &[&str] = &["id", "g", "x", "s", "nope"];

fn column() -> impl Strategy<Value = String> {
    prop::sample::select(COLUMNS).prop_map(str::to_string)
}

fn row_expr() -> impl Strategy<Value = String> {
    prop_oneof![
        (column(), 0i64..10).prop_map(|(c, n)| format!("{c} > {n}")),
        column().prop_map(|c| format!("{c} IS NOT NULL")),
        Just("x * 2 + id".to_string()),
        Just("upper(g) = 'A'".to_string()),
        Just("coalesce(s, 'none')".to_string()),
        Just("CASE WHEN x > 1 THEN 'big' ELSE 'small' END".to_string()),
        Just("CAST(id AS DOUBLE) / nullif(x, 0)".to_string()),
        Just("sum(x) OVER (PARTITION BY g)".to_string()),
        Just("date_trunc('month', s)".to_string()),
        Just("length(s) + 'a'".to_string()),
    ]
}

fn agg_expr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("count(*)".to_string()),
        column().prop_map(|c| format!("sum({c})")),
        column().prop_map(|c| format!("max({c})")),
        Just("avg(x) + 1".to_string()),
        Just("string_agg(g, ',')".to_string()),
    ]
}

/// One operator config reading one input.
fn unary() -> impl Strategy<Value = Value> {
    prop_oneof![
        row_expr().prop_map(|e| json!({"operator": "filter", "predicate": e})),
        (column(), row_expr()).prop_map(|(n, e)| json!({"operator": "derive", "columns": [{"name": n, "expr": e}]})),
        (column(), row_expr()).prop_map(|(c, e)| json!({"operator": "select", "columns": [c, {"name": "e", "expr": e}]})),
        (column(), column()).prop_map(|(a, b)| json!({"operator": "rename", "mapping": {a: b}})),
        column().prop_map(|c| json!({"operator": "drop", "columns": [c]})),
        (column(), prop::sample::select(vec!["int64", "float64", "string", "date", "bool"]))
            .prop_map(|(c, t)| json!({"operator": "cast", "columns": [{"name": c, "dtype": t}], "strict": false})),
        (column(), agg_expr()).prop_map(|(c, e)| json!({"operator": "aggregate", "by": [c], "aggregations": [{"name": "a", "expr": e}]})),
        column().prop_map(|c| json!({"operator": "sort", "by": [c]})),
        (0u64..5).prop_map(|n| json!({"operator": "limit", "n": n})),
        column().prop_map(|c| json!({"operator": "distinct", "subset": [c]})),
        column().prop_map(|c| json!({"operator": "fill_null", "columns": [{"name": c, "value": 0}]})),
        Just(json!({"operator": "drop_nulls"})),
        (column(), column()).prop_map(|(i, o)| json!({"operator": "pivot", "index": i, "on": o, "values": "x"})),
        column().prop_map(|c| json!({"operator": "unpivot", "index": [c]})),
        row_expr().prop_map(|e| json!({"operator": "sql", "query": format!("SELECT *, {e} AS q FROM input")})),
        (row_expr(), agg_expr()).prop_map(|(r, a)| json!({"operator": "assert", "checks": [{"name": "r", "expr": r}, {"name": "a", "expr": format!("{a} >= 0")}]})),
    ]
}

/// Two-input operators over the source and the chain so far.
fn binary() -> impl Strategy<Value = Value> {
    prop_oneof![
        (
            column(),
            prop::sample::select(vec!["inner", "left", "full", "semi", "anti"])
        )
            .prop_map(|(c, h)| json!({"operator": "join", "how": h, "on": c})),
        Just(json!({"operator": "join", "how": "cross"})),
        prop::sample::select(vec!["vertical", "diagonal"])
            .prop_map(|h| json!({"operator": "union", "how": h})),
        Just(
            json!({"operator": "sql", "query": "SELECT a.id, b.x FROM src AS a JOIN n0 AS b ON a.id = b.id"})
        ),
    ]
}

fn pipeline() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(unary(), 1..5),
        prop::option::of(binary()),
        prop::option::of(agg_expr()),
    )
        .prop_map(|(ops, bin, cond)| {
            let mut nodes = vec![ingest("src", "t.csv")];
            let mut prev = "src".to_string();
            for (i, c) in ops.into_iter().enumerate() {
                let id = format!("n{i}");
                nodes.push(op(&id, c, &[&prev]));
                prev = id;
            }
            if let Some(b) = bin {
                nodes.push(op("bin", b, &["src", &prev]));
                prev = "bin".into();
            }
            nodes.push(output("out", &prev));
            let mut edges = vec![];
            if let Some(c) = cond {
                nodes.push(json!({"id": "cond_out", "nodeType": "output", "config": {}}));
                edges.push(
                    json!({"id": "c", "sourceNodeId": prev, "targetNodeId": "cond_out",
                    "edgeType": "conditional", "condition": format!("{c} > 0")}),
                );
            }
            doc("prop", nodes, edges)
        })
}

#[test]
fn a_pipeline_that_validates_never_fails_as_mudrocks_fault() {
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 160,
        failure_persistence: None,
        ..Config::default()
    });
    let (valid, ran_nodes, failed_nodes) = (Cell::new(0), Cell::new(0), Cell::new(0));
    runner
        .run(&pipeline(), |d| {
            if mudrock::validate::validate(d.clone(), Default::default()).is_err() {
                return Ok(());
            }
            valid.set(valid.get() + 1);
            let env = Env::new();
            env.put(
                "t.csv",
                "id,g,x,s\n1,a,1.5,2024-01-03\n2,b,,x\n3,a,-2.0,\n4,,0.0,2024-02-01\n",
            );
            let r = rt.block_on(env.run(&d));
            for n in &r.meta.nodes {
                ran_nodes.set(ran_nodes.get() + 1);
                if n.status == NodeStatus::Failed {
                    failed_nodes.set(failed_nodes.get() + 1);
                }
                prop_assert!(
                    !(n.status == NodeStatus::Failed && n.reason.as_deref() == Some("internal")),
                    "internal failure of {}: {:?}\n{}",
                    n.node_id,
                    n.error,
                    serde_json::to_string_pretty(&d).unwrap()
                );
            }
            Ok(())
        })
        .unwrap();
    let (valid, ran_nodes, failed_nodes) = (valid.get(), ran_nodes.get(), failed_nodes.get());
    eprintln!(
        "{valid} valid pipelines ran, {ran_nodes} nodes, {failed_nodes} failed as the user's fault"
    );
    // The generator must reach the engine, with successes and failures.
    assert!(valid >= 60, "{valid}");
    assert!(
        failed_nodes > 0 && failed_nodes < ran_nodes,
        "{failed_nodes}/{ran_nodes}"
    );
}
