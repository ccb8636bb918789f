//! Unit tests of the engine's pure parts: planning (`prepare`, units,
//! order), a failure's roles inside a unit, and gates.

use super::*;
use crate::store::MemoryStore;
use serde_json::json;

fn pipeline(nodes: serde_json::Value) -> Pipeline {
    let doc = json!({"id": "t", "name": "t", "nodes": nodes});
    crate::validate::validate(doc, Default::default())
        .map(|(p, _)| p)
        .unwrap_or_else(|r| panic!("{r}"))
}

fn ids(p: &Pipeline, is: &[usize]) -> Vec<String> {
    is.iter().map(|&i| p.nodes[i].id.clone()).collect()
}

fn select(id: &str, dep: &str) -> serde_json::Value {
    json!({"id": id, "nodeType": "operator", "dependencies": [dep],
           "config": {"operator": "select", "columns": [{"name": "x", "expr": "x"}]}})
}

fn ingest(id: &str) -> serde_json::Value {
    json!({"id": id, "nodeType": "ingestion", "config": {"source": format!("shared/{id}.csv")}})
}

fn output(id: &str, dep: &str) -> serde_json::Value {
    json!({"id": id, "nodeType": "output", "dependencies": [dep], "config": {}})
}

/// a → b → out (one unit); a → c → out2 makes `a` fan out.
fn fan_out() -> Pipeline {
    pipeline(json!([
        ingest("a"),
        select("b", "a"),
        output("out", "b"),
        select("c", "a"),
        output("out2", "c"),
    ]))
}

async fn prepared(p: &Pipeline, files: &[(&str, &str)]) -> Prepared {
    let store = MemoryStore::new();
    let opts = RunOptions::local(p);
    store.create_bucket(&opts.bucket).await.unwrap();
    for (k, v) in files {
        store
            .put(&opts.bucket, k, bytes::Bytes::from(v.to_string()))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let budget = Arc::new(scratch::ScratchBudget::new(u64::MAX));
    let files = ingest::SourceFiles::new(dir.path().to_path_buf(), budget);
    prepare(&store, &opts, p, &files).await.unwrap()
}

#[test]
fn topological_order_breaks_ties_in_document_order() {
    let p = pipeline(json!([
        ingest("z"),
        ingest("a"),
        output("out_a", "a"),
        output("out_z", "z"),
    ]));
    assert_eq!(ids(&p, &topo_order(&p)), ["z", "a", "out_a", "out_z"]);
}

#[test]
fn a_chain_is_one_unit_and_a_fan_out_splits_it() {
    let chain = pipeline(json!([ingest("a"), select("b", "a"), output("out", "b")]));
    let mat: Vec<bool> = (0..3).map(|i| is_mat_point(&chain, i)).collect();
    assert_eq!(mat, [false, false, true], "only the output materialises");

    let p = fan_out();
    let mat: Vec<String> = (0..p.nodes.len())
        .filter(|&i| is_mat_point(&p, i))
        .map(|i| p.nodes[i].id.clone())
        .collect();
    assert_eq!(mat, ["a", "out", "out2"]);
}

#[tokio::test]
async fn prepare_groups_units_keys_nodes_and_keeps_no_entry_for_a_fanned_out_source() {
    let p = fan_out();
    let prep = prepared(&p, &[("shared/a.csv", "x\n1\n")]).await;
    let at = |id: &str| p.nodes.iter().position(|n| n.id == id).unwrap();
    assert_eq!(ids(&p, &prep.members[&at("out")]), ["b", "out"]);
    assert_eq!(ids(&p, &prep.members[&at("out2")]), ["c", "out2"]);
    assert_eq!(ids(&p, &prep.members[&at("a")]), ["a"]);
    assert!(
        !prep.entry[at("a")],
        "the source object is its own checkpoint"
    );
    assert!(prep.entry[at("out")] && prep.entry[at("out2")]);
    assert!(prep.keys.iter().all(Option::is_some), "every node keyed");

    // Same inputs, same keys; a changed source changes every key below it.
    let again = prepared(&p, &[("shared/a.csv", "x\n1\n")]).await;
    assert_eq!(prep.keys, again.keys);
    let changed = prepared(&p, &[("shared/a.csv", "x\n2\n")]).await;
    for i in 0..p.nodes.len() {
        assert_ne!(prep.keys[i], changed.keys[i], "{}", p.nodes[i].id);
    }
}

#[tokio::test]
async fn a_missing_source_leaves_its_branch_unkeyed_and_names_the_field() {
    let p = fan_out();
    let prep = prepared(&p, &[]).await;
    assert!(prep.keys.iter().all(Option::is_none));
    let err = prep.sources[0].as_ref().unwrap().as_ref().unwrap_err();
    assert_eq!(err.path.as_deref(), Some("nodes[0].config.source"));
}

#[test]
fn a_failure_skips_what_is_below_it_in_the_unit_only() {
    // a → b → c → out; and a → d → out (a join would do; a chain of
    // selects through `running` is what roles looks at).
    let p = pipeline(json!([
        ingest("a"),
        select("b", "a"),
        select("c", "b"),
        output("out", "c"),
    ]));
    let running: Vec<usize> = (0..4).collect();
    let roles: Vec<Role> = roles::roles(&p, &running, 1)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(roles, [Role::Above, Role::Failed, Role::Below, Role::Below]);
    let roles: Vec<Role> = roles::roles(&p, &running, 3)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(roles, [Role::Above, Role::Above, Role::Above, Role::Failed]);
}

#[test]
fn gates_follow_the_edge_kind_and_failure_wins() {
    use NodeStatus::*;
    let cond = EdgeKind::Conditional("x > 1".into());
    let g = |s, r, k: &EdgeKind, c| across_units(s, r, k, c).unwrap();
    assert_eq!(g(Succeeded, None, &EdgeKind::DataFlow, None), Gate::Run);
    assert_eq!(
        g(Failed, None, &EdgeKind::DataFlow, None),
        Gate::Skip("upstream_failed")
    );
    assert_eq!(g(Failed, None, &EdgeKind::Error, None), Gate::Run);
    assert_eq!(
        g(Succeeded, None, &EdgeKind::Error, None),
        Gate::Skip("no_error")
    );
    assert_eq!(g(Succeeded, None, &cond, Some(Ok(true))), Gate::Run);
    assert_eq!(
        g(Succeeded, None, &cond, Some(Ok(false))),
        Gate::Skip("condition_false")
    );
    assert_eq!(
        across_units(Succeeded, None, &cond, Some(Err("cannot".into()))),
        Err("cannot".to_string())
    );
    assert_eq!(
        g(Skipped, Some("cancelled"), &EdgeKind::DataFlow, None),
        Gate::Skip("cancelled")
    );
    assert_eq!(
        g(Skipped, Some("upstream_failed"), &cond, None),
        Gate::Skip("upstream_failed")
    );
    assert_eq!(
        g(Skipped, Some("condition_false"), &EdgeKind::DataFlow, None),
        Gate::Skip("upstream_skipped")
    );

    let fail = Gate::Fail(NodeError::new(NodeErrorKind::Config, "bad"));
    assert_eq!(
        combine(Gate::Run, Gate::Skip("no_error")),
        Gate::Skip("no_error")
    );
    assert_eq!(
        combine(Gate::Skip("no_error"), Gate::Skip("upstream_failed")),
        Gate::Skip("upstream_failed")
    );
    assert_eq!(combine(Gate::Skip("upstream_failed"), fail.clone()), fail);
    assert_eq!(within_unit(&fail), Gate::Skip("upstream_failed"));
    assert_eq!(
        within_unit(&Gate::Skip("no_error")),
        Gate::Skip("upstream_skipped")
    );
}
