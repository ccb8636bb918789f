//! lineage.json and OpenLineage on the example: the column lineage against
//! a mapping written by hand (computed, then served by the cache), edges not
//! taken with their reasons, every OpenLineage event validated offline
//! against the official 2-0-2 schemas (vendored in tests/data/openlineage),
//! and `mudrock lineage --emit` against an HTTP endpoint on a real socket.

mod common;

use common::*;
use mudrock::inspect::openlineage::{self, RunArtifacts};
use mudrock::inspect::{Bucket, RunRef};
use mudrock::model::{Lineage, RunMeta};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The example's column lineage, written by hand from its configs: output
/// column → (source node, column, derivation).
fn expected() -> BTreeMap<
    &'static str,
    Vec<(
        &'static str,
        Vec<(&'static str, &'static str, &'static str)>,
    )>,
> {
    let copy = |n, c| (n, c, "copy");
    let revenue_rows = vec![
        ("orders", "quantity", "transformation"),
        ("products", "unit_price", "transformation"),
    ];
    let revenue_sum = vec![
        ("orders", "quantity", "aggregation"),
        ("products", "unit_price", "aggregation"),
    ];
    let month = vec![("orders", "order_ts", "transformation")];
    BTreeMap::from([
        (
            "sales_by_region",
            vec![
                ("region", vec![copy("customers", "region")]),
                ("month", month.clone()),
                ("revenue", revenue_sum.clone()),
                ("orders", vec![]),
            ],
        ),
        (
            "top_customers_out",
            vec![
                ("customer_id", vec![copy("orders", "customer_id")]),
                ("name", vec![copy("customers", "name")]),
                ("region", vec![copy("customers", "region")]),
                ("revenue", revenue_sum),
                ("orders", vec![]),
            ],
        ),
        (
            "large_orders_out",
            vec![
                ("order_id", vec![copy("orders", "order_id")]),
                ("customer_id", vec![copy("orders", "customer_id")]),
                ("product_id", vec![copy("orders", "product_id")]),
                ("quantity", vec![copy("orders", "quantity")]),
                ("status", vec![copy("orders", "status")]),
                ("order_ts", vec![copy("orders", "order_ts")]),
                ("product", vec![copy("products", "product")]),
                ("category", vec![copy("products", "category")]),
                ("unit_price", vec![copy("products", "unit_price")]),
                ("revenue", revenue_rows),
                ("month", month),
            ],
        ),
        (
            "customer_issues",
            [
                "run_id",
                "node_id",
                "node_name",
                "error_kind",
                "message",
                "failed_at",
            ]
            .into_iter()
            .map(|c| (c, vec![]))
            .collect(),
        ),
    ])
}

fn columns_of(l: &Lineage) -> BTreeMap<String, Vec<(String, Vec<(String, String, String)>)>> {
    l.outputs
        .iter()
        .map(|o| {
            let cols = o
                .columns
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no column lineage", o.dataframe_id))
                .iter()
                .map(|c| {
                    let s = c
                        .sources
                        .iter()
                        .map(|s| {
                            let how = serde_json::to_value(s.derivation).unwrap();
                            (
                                s.node_id.clone(),
                                s.column.clone(),
                                how.as_str().unwrap().to_string(),
                            )
                        })
                        .collect();
                    (c.name.clone(), s)
                })
                .collect();
            (o.dataframe_id.clone(), cols)
        })
        .collect()
}

fn lineage_of(env: &Env, prefix: &str) -> Lineage {
    serde_json::from_value(env.json(&format!("{prefix}lineage.json"))).unwrap()
}

#[tokio::test]
async fn column_lineage_of_the_example_is_the_hand_written_mapping() {
    let env = Env::new();
    env.copy_example_data();
    let want: BTreeMap<String, Vec<(String, Vec<(String, String, String)>)>> = expected()
        .into_iter()
        .map(|(o, cols)| {
            let cols = cols
                .into_iter()
                .map(|(c, s)| {
                    let s = s
                        .into_iter()
                        .map(|(n, c, d)| (n.to_string(), c.to_string(), d.to_string()))
                        .collect();
                    (c.to_string(), s)
                })
                .collect();
            (o.to_string(), cols)
        })
        .collect();

    // Computed.
    let first = env.run(&example()).await;
    assert!(first.computed);
    let l = lineage_of(&env, &first.run_prefix);
    assert_eq!(columns_of(&l), want);
    assert_eq!(l.format_version, 1);
    assert!(l.edges_not_taken.is_empty(), "{:?}", l.edges_not_taken);
    assert_eq!(l.edges.len(), 15);

    // Served by the cache: the same lineage, from the entries' columns.
    // (Only the failing assert and its error output compute again.)
    let second = env.run(&example()).await;
    for o in ["sales_by_region", "top_customers_out", "large_orders_out"] {
        assert!(
            node(&second.meta, o).cache_hit,
            "{o} is served by the cache"
        );
    }
    assert_eq!(columns_of(&lineage_of(&env, &second.run_prefix)), want);
}

#[tokio::test]
async fn edges_not_taken_say_why() {
    let env = Env::new();
    env.copy_example_data();
    let mut doc = example();
    for e in doc["edges"].as_array_mut().unwrap() {
        if e["id"] == "e10" {
            e["condition"] = json!("max(revenue) > 1000000000");
        }
    }
    for n in doc["nodes"].as_array_mut().unwrap() {
        if n["id"] == "unique_emails" {
            n["config"]["unique"] = json!(["customer_id"]);
        }
    }
    let r = env.run(&doc).await;
    let l = lineage_of(&env, &r.run_prefix);
    let not: BTreeMap<&str, (&str, &str)> = l
        .edges_not_taken
        .iter()
        .map(|e| {
            (
                e.edge_id.as_str(),
                (e.edge_type.as_str(), e.reason.as_str()),
            )
        })
        .collect();
    assert_eq!(
        not,
        BTreeMap::from([
            ("e10", ("conditional", "condition_false")),
            ("e12", ("error", "no_error")),
            ("e15", ("data_flow", "source_skipped")),
        ])
    );
    assert_eq!(l.edges.len() + l.edges_not_taken.len(), 15);
    assert!(
        l.edges
            .iter()
            .all(|e| !not.contains_key(e.edge_id.as_str()))
    );
    let outputs: Vec<&str> = l.outputs.iter().map(|o| o.dataframe_id.as_str()).collect();
    assert_eq!(outputs, ["sales_by_region", "top_customers_out"]);
}

/// The vendored OpenLineage schemas, each under its `$id`.
fn registry() -> jsonschema::Registry<'static> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openlineage");
    let mut files = vec![dir.join("OpenLineage.json")];
    for e in std::fs::read_dir(dir.join("facets")).unwrap() {
        files.push(e.unwrap().path());
    }
    let mut reg = jsonschema::Registry::new();
    for f in files {
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let id = v["$id"].as_str().unwrap().to_string();
        reg = reg.add(id, v).unwrap();
    }
    reg.prepare().unwrap()
}

/// Every problem of `v` against the schema at `uri` (a `$id`, with or
/// without a fragment).
fn problems(reg: &jsonschema::Registry, uri: &str, v: &Value) -> Vec<String> {
    let validator = jsonschema::options()
        .offline()
        .should_validate_formats(true)
        .with_registry(reg)
        .build(&json!({ "$ref": uri }))
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    validator
        .iter_errors(v)
        .map(|e| format!("{uri}: {e} at {}", e.instance_path()))
        .collect()
}

/// The event against OpenLineage.json, and each of its facets against the
/// schema its `_schemaURL` names.
fn check_event(reg: &jsonschema::Registry, ev: &Value) -> Vec<String> {
    let mut out = problems(reg, openlineage::SPEC, ev);
    let mut facets = Vec::new();
    let mut collect = |f: &Value| {
        for (_, facet) in f.as_object().into_iter().flatten() {
            facets.push(facet.clone());
        }
    };
    collect(&ev["run"]["facets"]);
    collect(&ev["job"]["facets"]);
    for d in ev["inputs"]
        .as_array()
        .into_iter()
        .chain(ev["outputs"].as_array())
        .flatten()
    {
        collect(&d["facets"]);
        collect(&d["outputFacets"]);
    }
    for f in facets {
        let url = f["_schemaURL"].as_str().unwrap_or("(none)").to_string();
        out.extend(problems(reg, &url, &f));
    }
    out
}

async fn example_events(env: &Env) -> (RunMeta, Vec<Value>) {
    let r = env.run(&example()).await;
    let b = Bucket {
        store: env.store.clone(),
        name: BUCKET.into(),
    };
    let run = RunRef {
        pipeline_id: r.meta.pipeline_id.clone(),
        run_id: r.meta.run_id.clone(),
    };
    (r.meta, openlineage::for_run(&b, &run).await.unwrap())
}

#[tokio::test]
async fn openlineage_events_of_the_example_validate_against_the_official_schemas() {
    let env = Env::new();
    env.copy_example_data();
    let (meta, events) = example_events(&env).await;
    let reg = registry();
    for ev in &events {
        let p = check_event(&reg, ev);
        assert!(p.is_empty(), "{p:#?}\n{ev:#}");
    }
    // The validator does refuse what the spec does not allow.
    let mut bad = events[0].clone();
    bad["eventType"] = json!("FINISHED");
    bad["run"]["runId"] = json!("not-a-uuid");
    assert_eq!(check_event(&reg, &bad).len(), 1);
    let run_event = format!("{}#/$defs/RunEvent", openlineage::SPEC);
    assert_eq!(
        problems(&reg, &run_event, &bad).len(),
        2,
        "{:?}",
        problems(&reg, &run_event, &bad)
    );
    let mut bad_facet = events.last().unwrap().clone();
    bad_facet["outputs"][0]["facets"]["columnLineage"]["fields"]["x"] =
        json!({ "inputFields": [{ "name": "n" }] });
    assert!(!check_event(&reg, &bad_facet).is_empty());

    // Run START first, its end last; each node that ran in between, START
    // then its end, under the run as parent.
    let kind = |e: &Value| e["eventType"].as_str().unwrap().to_string();
    let job = |e: &Value| e["job"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        (kind(&events[0]), job(&events[0])),
        ("START".into(), "sales-by-region".into())
    );
    let last = events.last().unwrap();
    assert_eq!(
        (kind(last), job(last)),
        ("COMPLETE".into(), "sales-by-region".into())
    );
    assert_eq!(events[0]["run"]["runId"], json!(meta.run_id));
    assert_eq!(events[0]["job"]["namespace"], json!("mudrock.local"));
    let ran = meta
        .nodes
        .iter()
        .filter(|n| n.status.has_data() || n.status.name() == "failed");
    assert_eq!(events.len(), 2 + 2 * ran.count());
    let mut by_node: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &events[1..events.len() - 1] {
        assert_eq!(
            e["run"]["facets"]["parent"]["run"]["runId"],
            json!(meta.run_id)
        );
        by_node.entry(job(e)).or_default().push(e);
    }
    for (name, evs) in &by_node {
        assert_eq!(evs.len(), 2, "{name}");
        assert_eq!(kind(evs[0]), "START", "{name}");
        assert_eq!(evs[0]["run"]["runId"], evs[1]["run"]["runId"]);
    }
    let failed = &by_node["sales-by-region.unique_emails"][1];
    assert_eq!(kind(failed), "FAIL");
    assert!(
        failed["run"]["facets"]["errorMessage"]["message"]
            .as_str()
            .unwrap()
            .contains("email")
    );
    let sql = &by_node["sales-by-region.top_customers"][1];
    assert!(
        sql["job"]["facets"]["sql"]["query"]
            .as_str()
            .unwrap()
            .starts_with("SELECT customer_id")
    );

    // Datasets named as OpenLineage names local files; column lineage
    // down to the source objects.
    let orders = &by_node["sales-by-region.orders"][1]["inputs"][0];
    assert_eq!(orders["namespace"], json!("file"));
    let path = env.path("shared/sales/orders.csv");
    assert_eq!(orders["name"], json!(path.display().to_string()));
    let out = last["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["name"]
                .as_str()
                .unwrap()
                .ends_with("outputs/sales_by_region/data.parquet")
        })
        .unwrap();
    let fields = &out["facets"]["columnLineage"]["fields"]["revenue"]["inputFields"];
    let got: Vec<(String, String, String)> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["name"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (
                file,
                f["field"].as_str().unwrap().into(),
                f["transformations"][0]["subtype"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("orders.csv".into(), "quantity".into(), "AGGREGATION".into()),
            (
                "products.ndjson".into(),
                "unit_price".into(),
                "AGGREGATION".into()
            ),
        ]
    );
    assert_eq!(
        out["outputFacets"]["outputStatistics"]["rowCount"],
        json!(
            meta.nodes
                .iter()
                .find(|n| n.node_id == "sales_by_region")
                .unwrap()
                .rows
                .unwrap()
        )
    );
    assert_eq!(
        out["facets"]["schema"]["fields"][0]["name"],
        json!("region")
    );
}

#[tokio::test]
async fn scheduled_failed_and_cancelled_runs_carry_their_facets() {
    let env = Env::new();
    env.copy_example_data();
    let r = env.run(&example()).await;
    let lineage = lineage_of(&env, &r.run_prefix);
    let reg = registry();
    for (status, kind) in [("failed", "FAIL"), ("cancelled", "ABORT")] {
        let mut meta = r.meta.clone();
        meta.trigger.kind = "schedule".into();
        meta.trigger.scheduled_for = Some("2026-12-01T06:00:00Z".into());
        meta.status = serde_json::from_value(json!(status)).unwrap();
        meta.error = Some("node \"x\": boom".into());
        let events = openlineage::events(
            &RunArtifacts {
                meta: &meta,
                lineage: Some(&lineage),
                schemas: BTreeMap::new(),
            },
            &|k: &str| ("s3://project-local".to_string(), k.to_string()),
        );
        for ev in &events {
            let p = check_event(&reg, ev);
            assert!(p.is_empty(), "{p:#?}");
            assert_eq!(
                ev["run"]["facets"]["nominalTime"]["nominalStartTime"],
                json!("2026-12-01T06:00:00Z")
            );
        }
        let last = events.last().unwrap();
        assert_eq!(last["eventType"], json!(kind));
        if kind == "FAIL" {
            assert_eq!(
                last["run"]["facets"]["errorMessage"]["message"],
                json!("node \"x\": boom")
            );
        }
        assert_eq!(last["inputs"][0]["namespace"], json!("s3://project-local"));
        assert_eq!(last["inputs"][0]["name"], json!("shared/sales/orders.csv"));
    }
}

async fn cli(args: Vec<String>) -> std::process::Output {
    cli_with(args, None).await
}

async fn cli_with(args: Vec<String>, lineage_url: Option<String>) -> std::process::Output {
    // The endpoint runs on this test's runtime: wait off its threads.
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mudrock"))
            .args(args)
            .env("RUST_LOG", "off")
            .env("MUDROCK_LINEAGE__RETRY__MIN_DELAY_MS", "10")
            .envs(lineage_url.map(|u| ("MUDROCK_LINEAGE__URL", u)))
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn emit_posts_every_event_and_retries_a_failing_endpoint() {
    let env = Env::new();
    env.copy_example_data();
    let r = env.run(&example()).await;
    let store = env.dir.path().display().to_string();
    let base = |more: &[&str]| {
        let mut a: Vec<String> = ["lineage", r.meta.run_id.as_str(), "--store", store.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(more.iter().map(|s| s.to_string()));
        a
    };
    let printed = cli(base(&["--format", "openlineage"])).await;
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let printed: Vec<Value> = String::from_utf8(printed.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // Two 503s, then accepted: every event arrives once, in order.
    let (url, got) = endpoint(2, 200).await;
    let out = cli(base(&["--emit", &url])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!(
            "sent {} OpenLineage event(s) of run {}",
            printed.len(),
            r.meta.run_id
        )
    );
    assert_eq!(*got.lock().unwrap(), printed);

    // A refusal is not retried and says what the endpoint said.
    let (url, got) = endpoint(0, 400).await;
    let out = cli(base(&["--emit", &url])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the lineage endpoint refused an event: HTTP 400"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(got.lock().unwrap().is_empty());

    // Not a URL it will post to.
    let out = cli(base(&["--emit", "file:///etc/passwd"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an http:// or https:// URL"));
}

#[tokio::test]
async fn a_cli_run_sends_its_events_when_lineage_is_configured() {
    let env = Env::new();
    env.copy_example_data();
    let (url, got) = endpoint(0, 200).await;
    let pipeline =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sales/pipeline.json");
    let args: Vec<String> = [
        "run",
        &pipeline.display().to_string(),
        "--store",
        &env.dir.path().display().to_string(),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = cli_with(args, Some(url)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = got.lock().unwrap().clone();
    assert_eq!(events.first().unwrap()["eventType"], "START");
    let last = events.last().unwrap();
    assert_eq!(
        (last["eventType"].as_str(), &last["run"]["runId"]),
        (Some("COMPLETE"), &meta["runId"])
    );
}

#[tokio::test]
async fn bad_lineage_requests_say_what_is_wrong() {
    let env = Env::new();
    env.copy_example_data();
    let r = env.run(&example()).await;
    let store = env.dir.path().display().to_string();
    let run = r.meta.run_id.clone();
    let fails = |args: &[&str]| {
        // After the command (`inspect --store DIR lineage ...`).
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.splice(1..1, ["--store".to_string(), store.clone()]);
        async move {
            let out = cli(a).await;
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, err) = fails(&["inspect", "lineage", &run, "nope"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("has no output \"nope\" (it has: customer_issues, large_orders_out, sales_by_region, top_customers_out)"), "{err}");
    let (code, err) = fails(&["inspect", "lineage", &run, "sales_by_region", "nope"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("output \"sales_by_region\" has no column \"nope\" (it has: region, month, revenue, orders)"), "{err}");
    let (code, err) = fails(&["lineage", &run, "--format", "xml"]).await;
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--format xml is not one of lineage, openlineage"),
        "{err}"
    );
    let (code, err) = fails(&["lineage", "01a2366d-0000-7000-8000-000000000000"]).await;
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no run 01a2366d-0000-7000-8000-000000000000"),
        "{err}"
    );

    // A damaged lineage.json is named; a run without its commit marker is
    // incomplete, never read as finished.
    env.put(&format!("{}lineage.json", r.run_prefix), b"{\"runId\": ");
    let (code, err) = fails(&["lineage", &run, "--format", "openlineage"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("lineage.json is damaged"), "{err}");
    std::fs::remove_file(env.path(&format!("{}metadata.json", r.run_prefix))).unwrap();
    let (code, err) = fails(&["lineage", &run]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains(&format!("run {run} is incomplete")), "{err}");
}
