//! A fan-out source computed in one query with the consumers that read
//! only it: same results as unit by unit, recorded on the nodes, and a
//! failure still attributed to the node that fails.

mod common;

use common::*;
use mudrock::model::{NodeStatus, RunStatus};
use serde_json::json;

fn pipeline(bad_cast: bool) -> serde_json::Value {
    let cast = if bad_cast { "CAST(s AS INT)" } else { "v * 2" };
    doc(
        "fan",
        vec![
            ingest("src", "shared/f/src.csv"),
            ingest("names", "shared/f/names.csv"),
            op(
                "by_g",
                json!({"operator": "aggregate", "by": ["g"], "aggregations": [{"name": "total", "expr": "sum(v)"}]}),
                &["src"],
            ),
            op(
                "big",
                json!({"operator": "filter", "predicate": "v > 2"}),
                &["src"],
            ),
            op(
                "twice",
                json!({"operator": "derive", "columns": [{"name": "w", "expr": cast}]}),
                &["src"],
            ),
            op(
                "named",
                json!({"operator": "join", "how": "inner", "on": "g"}),
                &["src", "names"],
            ),
            output("o_by_g", "by_g"),
            output("o_big", "big"),
            output("o_twice", "twice"),
            output("o_named", "named"),
        ],
        vec![],
    )
}

fn with(r: &mudrock::engine::RunResult, id: &str) -> Option<String> {
    node(&r.meta, id).computed_with.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_that_read_only_the_source_are_computed_with_it() {
    let env = Env::new();
    env.put(
        "shared/f/src.csv",
        "k,g,v,s\n1,a,1,x\n2,b,2,y\n3,a,3,z\n4,c,4,w\n",
    );
    env.put("shared/f/names.csv", "g,name\na,Alpha\nb,Beta\n");
    let r = env.run(&pipeline(false)).await;
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
    // The three that read only the source came out of its query; the
    // join reads another source too and computed on its own.
    for id in ["by_g", "o_by_g", "big", "o_big", "twice", "o_twice"] {
        assert_eq!(with(&r, id).as_deref(), Some("src"), "{id}");
    }
    for id in ["src", "names", "named", "o_named"] {
        assert_eq!(with(&r, id), None, "{id}");
    }
    assert_eq!(node(&r.meta, "src").rows, Some(4));
    let out = |id: &str| env.parquet(&format!("{}outputs/{id}/data.parquet", r.run_prefix));
    let by_g = out("o_by_g");
    assert_eq!(
        format!(
            "{:?}",
            by_g.column("total").unwrap().i64().unwrap().to_vec()
        ),
        "[Some(4), Some(2), Some(4)]",
        "{by_g}"
    );
    assert_eq!(out("o_big").height(), 2);
    assert_eq!(
        out("o_twice").column("w").unwrap().i64().unwrap().to_vec(),
        vec![Some(2), Some(4), Some(6), Some(8)]
    );
    assert_eq!(out("o_named").height(), 3);
    let lineage = env.json(&format!("{}lineage.json", r.run_prefix));
    assert!(
        lineage.to_string().contains("\"w\""),
        "column lineage still traced"
    );

    // Again: every consumer from the cache, the source not read at all.
    let again = env.run(&pipeline(false)).await;
    assert!(!again.computed);
    assert_eq!(with(&again, "o_big"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_that_fails_is_named_and_the_others_succeed() {
    let env = Env::new();
    env.put("shared/f/src.csv", "k,g,v,s\n1,a,1,x\n2,b,2,y\n");
    env.put("shared/f/names.csv", "g,name\na,Alpha\n");
    let r = env.run(&pipeline(true)).await;
    assert_eq!(r.meta.status, RunStatus::Failed);
    let twice = node(&r.meta, "twice");
    assert_eq!(twice.status, NodeStatus::Failed, "{twice:?}");
    assert!(twice.error.as_deref().unwrap().contains("x"), "{twice:?}");
    assert_eq!(node(&r.meta, "o_twice").status, NodeStatus::Skipped);
    // The joint query failed: each consumer computed on its own.
    for id in ["o_by_g", "o_big", "o_named"] {
        assert_eq!(node(&r.meta, id).status, NodeStatus::Succeeded, "{id}");
        assert_eq!(with(&r, id), None, "{id}");
    }
}
