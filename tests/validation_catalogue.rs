//! The catalogue of malformed pipelines: each case pins the exact report,
//! so a changed or lost message fails here. Also: nothing a user can send
//! makes validation panic.

use mudrock::validate::{Options, validate, validate_str};
use serde_json::{Value, json};

/// A valid three-node pipeline that each case breaks in one way.
fn base() -> Value {
    json!({
        "name": "catalogue",
        "nodes": [
            {"id": "orders", "nodeType": "ingestion", "config": {"source": "shared/orders.csv"}},
            {"id": "valid", "nodeType": "operator", "config": {"operator": "filter", "predicate": "quantity > 0"}, "dependencies": ["orders"]},
            {"id": "out", "nodeType": "output", "config": {}, "dependencies": ["valid"]}
        ],
        "edges": []
    })
}

fn with(f: impl FnOnce(&mut Value)) -> String {
    let mut v = base();
    f(&mut v);
    v.to_string()
}

fn report(text: &str) -> Vec<String> {
    match validate_str(text, Options::default()) {
        Ok((_, r)) => r.diagnostics.iter().map(|d| d.to_string()).collect(),
        Err(r) => r.diagnostics.iter().map(|d| d.to_string()).collect(),
    }
}

fn cases() -> Vec<(&'static str, String, Vec<&'static str>)> {
    vec![
        (
            "bad json",
            r#"{"nodes": ["#.to_string(),
            vec!["error: $: invalid JSON at line 1 column 11: …"],
        ),
        (
            "not an object",
            "[1, 2]".to_string(),
            vec!["error: $: a pipeline must be a JSON object"],
        ),
        (
            "no nodes",
            "{}".to_string(),
            vec!["error: nodes: missing: a pipeline needs \"nodes\" (or \"dagDefinition.nodes\")"],
        ),
        (
            "nodes not an array",
            r#"{"nodes": {"a": 1}}"#.to_string(),
            vec!["error: nodes: must be an array of nodes"],
        ),
        (
            "dagDefinition disagrees",
            with(|v| v["dagDefinition"] = json!({"nodes": [], "edges": []})),
            vec![
                "error: dagDefinition: disagrees with the top-level \"nodes\"/\"edges\" — keep only one of the two",
            ],
        ),
        (
            "unknown operator",
            with(|v| v["nodes"][1]["config"]["operator"] = json!("fliter")),
            vec![
                "error: nodes[1].config.operator: node \"valid\": unknown operator \"fliter\" — did you mean \"filter\"?",
            ],
        ),
        (
            "missing operator",
            with(|v| {
                v["nodes"][1]["config"]
                    .as_object_mut()
                    .unwrap()
                    .remove("operator");
            }),
            vec![
                "error: nodes[1].config.operator: node \"valid\": missing — one of: filter, select, derive, rename, drop, cast, aggregate, join, union, sort, limit, distinct, fill_null, drop_nulls, pivot, unpivot, sql, assert",
            ],
        ),
        (
            "unknown config field",
            with(|v| {
                v["nodes"][1]["config"] =
                    json!({"operator": "filter", "predicate": "quantity > 0", "predicat": "x"})
            }),
            vec![
                "error: nodes[1].config.predicat: node \"valid\": unknown field \"predicat\" for operator \"filter\" — did you mean \"predicate\"?",
            ],
        ),
        (
            "missing config field",
            with(|v| v["nodes"][1]["config"] = json!({"operator": "filter"})),
            vec![
                "error: nodes[1].config.predicate: node \"valid\": missing field \"predicate\" for operator \"filter\"",
            ],
        ),
        (
            "wrong config type",
            with(|v| v["nodes"][1]["config"] = json!({"operator": "limit", "n": "ten"})),
            vec!["error: nodes[1].config.n: node \"valid\": …"],
        ),
        (
            "unknown node type",
            with(|v| v["nodes"][1]["nodeType"] = json!("operatr")),
            vec![
                "error: nodes[1].nodeType: node \"valid\": unknown node type \"operatr\" — did you mean \"operator\"?",
            ],
        ),
        (
            "missing id",
            with(|v| {
                v["nodes"][2].as_object_mut().unwrap().remove("id");
            }),
            vec!["error: nodes[2].id: missing"],
        ),
        (
            "invalid id",
            with(|v| v["nodes"][2]["id"] = json!("bad id!")),
            vec![
                "error: nodes[2].id: invalid id \"bad id!\": must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
            ],
        ),
        (
            "duplicate id",
            with(|v| v["nodes"][2]["id"] = json!("valid")),
            vec!["error: nodes[2].id: node \"valid\": duplicate id \"valid\" (first at nodes[1])"],
        ),
        (
            "unknown dependency",
            with(|v| v["nodes"][1]["dependencies"] = json!(["ordrs"])),
            vec![
                "error: nodes[1].dependencies[0]: node \"valid\": unknown node \"ordrs\" — did you mean \"orders\"?",
                "warning: nodes[1]: node \"valid\": not connected: operator \"filter\" takes 1 input, but has 0; it will be skipped",
            ],
        ),
        (
            "edge to an unknown node",
            with(|v| {
                v["edges"] = json!([{"id": "e1", "sourceNodeId": "orders", "targetNodeId": "vald"}])
            }),
            vec![
                "error: edges[0].targetNodeId: edge \"e1\": unknown node \"vald\" — did you mean \"valid\"?",
            ],
        ),
        (
            "unknown edge type",
            with(
                |v| v["edges"] = json!([{"id": "e1", "sourceNodeId": "orders", "targetNodeId": "valid", "edgeType": "dataflow"}]),
            ),
            vec![
                "error: edges[0].edgeType: edge \"e1\": unknown edge type \"dataflow\" — did you mean \"data_flow\"?",
            ],
        ),
        (
            "conditional edge without condition",
            with(
                |v| v["edges"] = json!([{"id": "e1", "sourceNodeId": "orders", "targetNodeId": "valid", "edgeType": "conditional"}]),
            ),
            vec![
                "error: edges[0].condition: edge \"e1\": a conditional edge needs a condition — e.g. \"count(*) > 0\"",
            ],
        ),
        (
            "condition on a data_flow edge",
            with(
                |v| v["edges"] = json!([{"id": "e1", "sourceNodeId": "orders", "targetNodeId": "valid", "edgeType": "data_flow", "condition": "count(*) > 0"}]),
            ),
            vec![
                "error: edges[0].condition: edge \"e1\": a condition on a data_flow edge would be ignored — set \"edgeType\": \"conditional\"",
            ],
        ),
        (
            "condition that does not parse",
            with(
                |v| v["edges"] = json!([{"id": "e1", "sourceNodeId": "orders", "targetNodeId": "valid", "edgeType": "conditional", "condition": "count(* > 0"}]),
            ),
            vec!["error: edges[0].condition: edge \"e1\": condition does not parse: …"],
        ),
        (
            "condition that is not an aggregate",
            with(
                |v| v["edges"] = json!([{"id": "e1", "sourceNodeId": "orders", "targetNodeId": "valid", "edgeType": "conditional", "condition": "quantity > 0"}]),
            ),
            vec![
                "error: edges[0].condition: edge \"e1\": expression must aggregate (e.g. sum(x), count(*)) to yield one value",
            ],
        ),
        (
            "cycle",
            with(|v| {
                v["nodes"][1]["dependencies"] = json!(["orders", "out2"]);
                v["nodes"][1]["config"] = json!({"operator": "union"});
                v["nodes"].as_array_mut().unwrap().push(json!({"id": "mid", "nodeType": "operator", "config": {"operator": "limit", "n": 1}, "dependencies": ["valid"]}));
                v["nodes"].as_array_mut().unwrap().push(json!({"id": "out2", "nodeType": "operator", "config": {"operator": "limit", "n": 1}, "dependencies": ["mid"]}));
            }),
            vec!["error: nodes[1].dependencies[1]: cycle: valid → mid → out2 → valid"],
        ),
        (
            "self loop",
            with(|v| {
                v["edges"] =
                    json!([{"id": "loop", "sourceNodeId": "valid", "targetNodeId": "valid"}])
            }),
            vec![
                "error: edges[0]: cycle: valid → valid",
                "error: nodes[1]: node \"valid\": operator \"filter\" takes 1 input, but has 2",
            ],
        ),
        (
            "ingestion with an input",
            with(|v| v["nodes"][0]["dependencies"] = json!(["out"])),
            vec![
                "error: nodes[0].dependencies[0]: cycle: orders → valid → out → orders",
                "error: nodes[0]: node \"orders\": an ingestion node takes no inputs, but has 1: \"out\"",
            ],
        ),
        (
            "too many inputs",
            with(|v| {
                v["nodes"].as_array_mut().unwrap().push(json!({"id": "more", "nodeType": "ingestion", "config": {"source": "shared/more.csv"}}));
                v["nodes"][1]["dependencies"] = json!(["orders", "more"]);
            }),
            vec!["error: nodes[1]: node \"valid\": operator \"filter\" takes 1 input, but has 2"],
        ),
        (
            "output with two inputs",
            with(|v| v["nodes"][2]["dependencies"] = json!(["valid", "orders"])),
            vec!["error: nodes[2]: node \"out\": an output node takes 1 input, but has 2"],
        ),
        (
            "expression that does not parse",
            with(|v| v["nodes"][1]["config"]["predicate"] = json!("quantity >")),
            vec!["error: nodes[1].config.predicate: node \"valid\": expression does not parse: …"],
        ),
        (
            "aggregate in a row expression",
            with(|v| {
                v["nodes"][1]["config"] = json!({"operator": "derive", "columns": [{"name": "t", "expr": "sum(quantity)"}]})
            }),
            vec![
                "error: nodes[1].config.columns[0].expr: node \"valid\": aggregate functions are not allowed here; use an aggregate node",
            ],
        ),
        (
            "aggregation that does not aggregate",
            with(
                |v| v["nodes"][1]["config"] = json!({"operator": "aggregate", "by": ["region"], "aggregations": [{"name": "t", "expr": "quantity + 1"}]}),
            ),
            vec![
                "error: nodes[1].config.aggregations[0].expr: node \"valid\": expression must aggregate (e.g. sum(x), count(*)) to yield one value",
            ],
        ),
        (
            "source escaping the bucket",
            with(|v| v["nodes"][0]["config"]["source"] = json!("shared/../../etc/passwd.csv")),
            vec![
                "error: nodes[0].config.source: node \"orders\": source \"shared/../../etc/passwd.csv\" escapes the bucket: \"..\" is not allowed",
            ],
        ),
        (
            "absolute source",
            with(|v| v["nodes"][0]["config"]["source"] = json!("/etc/passwd.csv")),
            vec![
                "error: nodes[0].config.source: node \"orders\": source \"/etc/passwd.csv\" is an absolute path; sources are keys inside the project's bucket",
            ],
        ),
        (
            "URL source in a list",
            with(|v| {
                v["nodes"][0]["config"]["source"] = json!(["shared/a.csv", "s3://other/b.csv"])
            }),
            vec![
                "error: nodes[0].config.source[1]: node \"orders\": source \"s3://other/b.csv\" is a URL; sources are keys inside the project's bucket",
            ],
        ),
        (
            "format that cannot be inferred",
            with(|v| v["nodes"][0]["config"]["source"] = json!("shared/orders.xlsx")),
            vec![
                "error: nodes[0].config.format: node \"orders\": cannot infer the format of \"shared/orders.xlsx\" — set \"format\" to one of csv, parquet, json, ndjson",
            ],
        ),
        (
            "unknown format",
            with(|v| v["nodes"][0]["config"]["format"] = json!("xlsx")),
            vec![
                "error: nodes[0].config.format: node \"orders\": unknown value \"xlsx\" — one of: csv, parquet, json, ndjson",
            ],
        ),
        (
            "csv option on parquet",
            with(|v| {
                v["nodes"][0]["config"] =
                    json!({"source": "shared/o.parquet", "options": {"delimiter": ";"}})
            }),
            vec![
                "error: nodes[0].config.options.delimiter: node \"orders\": option \"delimiter\" applies to csv only, not parquet",
            ],
        ),
        (
            "unknown reader option",
            with(|v| v["nodes"][0]["config"]["options"] = json!({"hasHeadr": true})),
            vec![
                "error: nodes[0].config.options.hasHeadr: node \"orders\": unknown field \"hasHeadr\" — did you mean \"hasHeader\"?",
            ],
        ),
        (
            "date format on a non-date column, a bad format, a format on parquet",
            with(|v| {
                v["nodes"][0]["config"]["options"] = json!({"schemaOverrides": [
                    {"name": "quantity", "dtype": "int64", "format": "%Y"},
                    {"name": "ts", "dtype": "datetime", "format": "%Y-%m-%Q"},
                    {"name": "day", "dtype": "date", "format": "%H:%M"}
                ]})
            }),
            vec![
                "error: nodes[0].config.options.schemaOverrides[0].format: node \"orders\": a format applies to date and datetime columns, not int64",
                "error: nodes[0].config.options.schemaOverrides[1].format: node \"orders\": \"%Y-%m-%Q\" is not a valid strftime format",
                "error: nodes[0].config.options.schemaOverrides[2].format: node \"orders\": \"%H:%M\" does not name a full date (year, month and day)",
            ],
        ),
        (
            "date format on a parquet source",
            with(|v| {
                v["nodes"][0]["config"] = json!({"source": "shared/orders.parquet", "options": {"schemaOverrides": [
                    {"name": "ts", "dtype": "datetime", "format": "%Y-%m-%d"}
                ]}})
            }),
            vec![
                "error: nodes[0].config.options.schemaOverrides[0].format: node \"orders\": a format applies to csv sources only",
            ],
        ),
        (
            "unknown dtype",
            with(
                |v| v["nodes"][1]["config"] = json!({"operator": "cast", "columns": [{"name": "quantity", "dtype": "integer64"}]}),
            ),
            vec![
                "error: nodes[1].config.columns[0].dtype: node \"valid\": unknown dtype \"integer64\" — did you mean \"int64\"?",
            ],
        ),
        (
            "sql reading a file",
            with(|v| {
                v["nodes"][1]["config"] =
                    json!({"operator": "sql", "query": "SELECT * FROM read_parquet('/etc/shadow')"})
            }),
            vec![
                "error: nodes[1].config.query: node \"valid\": table function read_parquet(...) is not allowed: pipelines read data only through ingestion nodes",
            ],
        ),
        (
            "sql that is not a query",
            with(|v| {
                v["nodes"][1]["config"] = json!({"operator": "sql", "query": "DROP TABLE orders"})
            }),
            vec![
                "error: nodes[1].config.query: node \"valid\": query must be a SELECT statement; nothing else is allowed",
            ],
        ),
        (
            "join with both key styles",
            with(|v| {
                v["nodes"][1]["config"] =
                    json!({"operator": "join", "on": "id", "leftOn": "a", "rightOn": "b"});
                v["nodes"][1]["dependencies"] = json!(["orders", "orders"]);
            }),
            vec![
                "error: nodes[1].config.on: node \"valid\": give either \"on\" or \"leftOn\" + \"rightOn\", not both",
                "error: nodes[1].dependencies[1]: node \"valid\": \"orders\" is listed twice: a node takes each input once — to join a table with itself, use a sql node: SELECT ... FROM t AS a JOIN t AS b ON ...",
            ],
        ),
        (
            "self-join by listing an input twice",
            with(|v| {
                v["nodes"][1]["config"] = json!({"operator": "join", "on": "id"});
                v["nodes"][1]["dependencies"] = json!(["orders", "orders"]);
            }),
            vec![
                "error: nodes[1].dependencies[1]: node \"valid\": \"orders\" is listed twice: a node takes each input once — to join a table with itself, use a sql node: SELECT ... FROM t AS a JOIN t AS b ON ...",
                "warning: nodes[1]: node \"valid\": not connected: operator \"join\" takes 2 inputs, but has 1; it will be skipped",
            ],
        ),
        (
            "a sql query naming a table that is not an input",
            with(|v| {
                v["nodes"][1]["config"] = json!({"operator": "sql", "query": "SELECT * FROM orders JOIN customers USING (id)"});
            }),
            vec![
                "error: nodes[1].config.query: node \"valid\": query reads table \"customers\", which is not an input; tables: orders, input",
            ],
        ),
        (
            "an expression calling a function mudrock does not allow",
            with(|v| v["nodes"][1]["config"]["predicate"] = json!("uper(status) = 'OK'")),
            vec![
                "error: nodes[1].config.predicate: node \"valid\": function uper(...) is not allowed — did you mean \"upper\"?",
            ],
        ),
        (
            "a subquery in a filter",
            with(|v| {
                v["nodes"][1]["config"]["predicate"] =
                    json!("id IN (SELECT * FROM read_csv('/etc/hosts'))")
            }),
            vec![
                "error: nodes[1].config.predicate: node \"valid\": subqueries are not allowed in an expression (IN (SELECT ...), EXISTS, (SELECT ...)) — use a join, or a sql node over its inputs",
            ],
        ),
        (
            "duplicate edge ids",
            with(|v| {
                v["nodes"][1]["dependencies"] = json!([]);
                v["nodes"][2]["dependencies"] = json!([]);
                v["edges"] = json!([
                    {"id": "e1", "sourceNodeId": "orders", "targetNodeId": "valid"},
                    {"id": "e1", "sourceNodeId": "valid", "targetNodeId": "out"}
                ]);
            }),
            vec![
                "error: edges[1].id: edge \"e1\": duplicate id \"e1\" (first at edges[0])",
                "warning: nodes[2]: node \"out\": not connected: an output node takes 1 input, but has 0; it will be skipped",
            ],
        ),
        (
            "export outside exports/",
            with(|v| v["nodes"][2]["config"] = json!({"export": "shared/x.csv"})),
            vec![
                "error: nodes[2].config.export: node \"out\": export \"shared/x.csv\" must be under exports/",
            ],
        ),
        (
            "unknown execution setting",
            with(|v| v["nodes"][1]["execution"] = json!({"retrys": 2})),
            vec![
                "error: nodes[1].execution.retrys: node \"valid\": unknown field \"retrys\" — did you mean \"retries\"?",
            ],
        ),
        (
            "several problems at once",
            with(|v| {
                v["nodes"][0]["config"]["source"] = json!("../x.csv");
                v["nodes"][1]["config"]["predicate"] = json!("quantity >");
                v["nodes"][2]["nodeType"] = json!("sink");
            }),
            vec![
                "error: nodes[0].config.source: node \"orders\": source \"../x.csv\" escapes the bucket: \"..\" is not allowed",
                "error: nodes[1].config.predicate: node \"valid\": expression does not parse: …",
                "error: nodes[2].nodeType: node \"out\": unknown node type \"sink\" — one of ingestion, operator, output",
            ],
        ),
    ]
}

/// Exact, except that a line may end in `…`: mudrock's own words (path,
/// node, what is wrong) are pinned, the parser's or serde's detail after
/// them is not (another version may word it differently).
fn matches(got: &[String], expected: &[&str]) -> bool {
    got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|(g, e)| match e.strip_suffix('…') {
                Some(prefix) => g.starts_with(prefix) && g.len() > prefix.len(),
                None => g == e,
            })
}

#[test]
fn every_malformed_pipeline_gets_its_exact_report() {
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for (name, text, expected) in &cases {
        let got = report(text);
        if !matches(&got, expected) {
            failures.push(format!(
                "{name}:\n  expected {expected:#?}\n  got      {got:#?}"
            ));
        }
        assert!(
            validate_str(text, Options::default()).is_err(),
            "{name} must be rejected"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_base_pipeline_and_dag_definition_shape_are_valid() {
    assert!(validate_str(&base().to_string(), Options::default()).is_ok());
    let b = base();
    let wrapped = json!({"name": "x", "dagDefinition": {"nodes": b["nodes"], "edges": b["edges"]}, "createdAt": "2026-01-01", "ui": {"zoom": 2}});
    let (p, _) = validate_str(&wrapped.to_string(), Options::default()).unwrap();
    assert_eq!(p.nodes.len(), 3);
    // Both places filled identically is fine.
    let mut both = base();
    both["dagDefinition"] = json!({"nodes": b["nodes"], "edges": b["edges"]});
    assert!(validate_str(&both.to_string(), Options::default()).is_ok());
}

#[test]
fn input_order_follows_dependencies_then_edges() {
    let d = json!({"nodes": [
        {"id": "a", "nodeType": "ingestion", "config": {"source": "shared/a.csv"}},
        {"id": "b", "nodeType": "ingestion", "config": {"source": "shared/b.csv"}},
        {"id": "c", "nodeType": "ingestion", "config": {"source": "shared/c.csv"}},
        {"id": "u", "nodeType": "operator", "config": {"operator": "union"}, "dependencies": ["c", "a"]}
    ], "edges": [
        {"id": "e1", "sourceNodeId": "b", "targetNodeId": "u"},
        {"id": "e2", "sourceNodeId": "a", "targetNodeId": "u"}
    ]});
    let (p, _) = validate_str(&d.to_string(), Options::default()).unwrap();
    let order: Vec<&str> = p.inputs(3).map(|e| p.nodes[e.source].id.as_str()).collect();
    assert_eq!(order, ["c", "a", "b"]);
    assert_eq!(
        p.edges.len(),
        3,
        "a dependency that has an edge is one edge"
    );
}

/// Any JSON value, a few levels deep, biased towards what pipelines hold.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "x",
            "../..",
            "*",
            "[",
            "orders",
            "valid",
            "out",
            "filter",
            "count(*) > 0",
            "data_flow",
            "conditional",
            "error",
            "csv",
            "exports/x.csv",
            "\u{0}",
        ])
        .prop_map(Value::from),
        "[a-z_]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, ..Default::default() })]

    /// Any node, config or edge field replaced by any JSON value (or a
    /// field added): validation reports, never panics, and every problem
    /// it reports names a place in the document.
    #[test]
    fn any_field_with_any_value_gets_a_report_never_a_panic(
        target in 0usize..3,
        index in 0usize..3,
        field in proptest::sample::select(vec![
            "id", "nodeType", "dependencies", "execution", "metadata", "config",
            "source", "operator", "predicate", "options", "format", "export", "compression",
            "sourceNodeId", "targetNodeId", "edgeType", "condition", "columns", "how", "on",
        ]),
        value in any_json(),
    ) {
        let mut doc = base();
        doc["edges"] = json!([{"id": "e1", "sourceNodeId": "orders", "targetNodeId": "valid", "edgeType": "conditional", "condition": "count(*) > 0"}]);
        match target {
            0 => doc["nodes"][index][field] = value,
            1 => doc["nodes"][index]["config"][field] = value,
            _ => doc["edges"][0][field] = value,
        }
        let diagnostics = match validate_str(&doc.to_string(), Options::default()) {
            Ok((_, r)) | Err(r) => r.diagnostics,
        };
        for d in diagnostics {
            let text = d.to_string();
            proptest::prop_assert!(
                ["error: ", "warning: "].iter().any(|p| text.starts_with(p))
                    && text.contains(": "),
                "{text}"
            );
        }
    }
}

/// Documents that are not pipelines at all: reported, never a panic.
#[test]
fn texts_that_are_not_pipelines_are_reported() {
    for text in [
        "",
        "null",
        "\"x\"",
        "{\"nodes\": null}",
        "{\"nodes\": [null]}",
        "{\"nodes\": [], \"edges\": {}}",
        "\u{0}",
    ] {
        let r = validate_str(text, Options::default()).unwrap_err();
        assert!(!r.diagnostics.is_empty(), "{text:?}");
    }
}

/// Problems that need the data to be seen (what `validate --data` and
/// `plan` report): each pinned exactly, with the node and field.
#[tokio::test(flavor = "multi_thread")]
async fn problems_found_against_the_data_are_pinned_too() {
    use std::sync::Arc;

    use mudrock::engine::{RunOptions, plan};
    use mudrock::store::{LocalStore, ObjectStore};

    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store.create_bucket("project-local").await.unwrap();
    store
        .put(
            "project-local",
            "shared/orders.csv",
            "id,region,quantity\n1,north,2\n".into(),
        )
        .await
        .unwrap();
    store
        .put(
            "project-local",
            "shared/regions.csv",
            "region,manager\nnorth,Ada\n".into(),
        )
        .await
        .unwrap();
    store
        .put("project-local", "shared/ids.csv", "region\n7\n".into())
        .await
        .unwrap();

    let with_node = |node: Value| {
        let mut v = base();
        v["nodes"][1] = node;
        v
    };
    let join_on = |src: &str, on: Value| {
        let mut v = base();
        v["nodes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "other", "nodeType": "ingestion", "config": {"source": src}}));
        v["nodes"][1]["config"] = json!({"operator": "join", "on": on});
        v["nodes"][1]["dependencies"] = json!(["orders", "other"]);
        v
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown column",
            with_node(
                json!({"id": "valid", "nodeType": "operator", "config": {"operator": "filter", "predicate": "qty > 0"}, "dependencies": ["orders"]}),
            ),
            "error: nodes[1].config.predicate: node \"valid\": unknown column \"qty\" — did you mean \"quantity\"?",
        ),
        (
            "unknown column in a list",
            with_node(
                json!({"id": "valid", "nodeType": "operator", "config": {"operator": "select", "columns": ["id", "regoin"]}, "dependencies": ["orders"]}),
            ),
            "error: nodes[1].config.columns[1]: node \"valid\": unknown column \"regoin\" — did you mean \"region\"?",
        ),
        (
            "missing input object",
            {
                let mut v = base();
                v["nodes"][0]["config"]["source"] = json!("shared/ordres.csv");
                v
            },
            "error: nodes[0].config.source: node \"orders\": source \"shared/ordres.csv\" not found in bucket project-local",
        ),
        (
            "glob matching nothing",
            {
                let mut v = base();
                v["nodes"][0]["config"]["source"] = json!("shared/2024/*.csv");
                v
            },
            "error: nodes[0].config.source: node \"orders\": no object matches \"shared/2024/*.csv\"",
        ),
        (
            "join key missing on the right",
            join_on("shared/regions.csv", json!("id")),
            "error: nodes[1].config.on[0]: node \"valid\": unknown column \"id\"; the input has: region, manager",
        ),
        (
            "join key types differ",
            join_on("shared/ids.csv", json!("region")),
            "error: nodes[1].config.on[0]: node \"valid\": cannot join \"region\" (str) with \"region\" (i64): the key types differ; cast one first",
        ),
    ];
    for (name, doc, expected) in cases {
        let (p, _) = validate(doc, Options::default())
            .unwrap_or_else(|r| panic!("{name}: the document itself is valid:\n{r}"));
        let p = Arc::new(p);
        let report = plan::plan(&store, p.clone(), &RunOptions::local(&p))
            .await
            .unwrap();
        let got: Vec<String> = report.problems.iter().map(|d| d.to_string()).collect();
        assert_eq!(got, [expected], "{name}");
    }
}

#[test]
fn an_empty_pipeline_is_a_warning_and_strict_makes_it_an_error() {
    let text = r#"{"name": "empty", "nodes": [], "edges": []}"#;
    let (_, report) = validate_str(text, Options::default()).expect("valid with a warning");
    let lines: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        ["warning: nodes: the pipeline has no nodes: a run would do nothing"]
    );
    let strict = Options {
        strict: true,
        ..Default::default()
    };
    let report = validate_str(text, strict).expect_err("strict");
    let lines: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        ["error: nodes: the pipeline has no nodes: a run would do nothing"]
    );
}
