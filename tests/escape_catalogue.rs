//! The escape catalogue: every way we know of to make SQL in a pipeline
//! read a file of the worker's machine, tried at every expression site and
//! in sql nodes. Each attempt must be refused at validation, naming the
//! field, before anything runs; and the operator, built directly past the
//! validator (as a bug in it would let it), must refuse it too.

use mudrock::operators::{Input, Limits, lookup};
use mudrock::validate::{Options, validate};
use polars::prelude::*;
use serde_json::{Value, json};

/// A file outside any bucket, whose contents an escape would return.
fn host_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret.csv");
    std::fs::write(&f, "id\n1\n2\n").unwrap();
    let path = f.display().to_string();
    (dir, path)
}

/// Ways to name a table function, in every case and quoting.
fn table_functions(file: &str) -> Vec<String> {
    let mut out = Vec::new();
    for f in [
        "read_csv",
        "read_parquet",
        "read_json",
        "read_ipc",
        "read_ndjson",
    ] {
        out.push(format!("{f}('{file}')"));
        out.push(format!("{}('{file}')", f.to_uppercase()));
        let mixed: String = f
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        out.push(format!("{mixed}('{file}')"));
        out.push(format!("\"{f}\"('{file}')"));
        out.push(format!("`{f}`('{file}')"));
    }
    out
}

/// Expressions (one value per row, or boolean) that try to escape.
fn expression_attempts(file: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tf in table_functions(file) {
        let sub = format!("SELECT * FROM {tf}");
        out.push(format!("id IN ({sub})"));
        out.push(format!("EXISTS ({sub})"));
        out.push(format!("id = (SELECT max(id) FROM {tf})"));
        out.push(format!("CASE WHEN id IN ({sub}) THEN true ELSE false END"));
        out.push(format!("coalesce((SELECT max(id) FROM {tf}), 0) > 0"));
        out.push(format!("id IN (1, 2, (SELECT max(id) FROM {tf}))"));
        out.push(format!("CAST((SELECT max(id) FROM {tf}) AS INT) > 0"));
        out.push(format!("id IN (WITH t AS ({sub}) SELECT * FROM t)"));
        // A table function in a scalar position.
        out.push(format!("{tf} IS NOT NULL"));
    }
    for lit in [format!("'{file}'"), format!("\"{file}\"")] {
        out.push(format!("id IN (SELECT * FROM {lit})"));
    }
    out.extend([
        "id IN (SELECT id FROM input)".to_string(),
        "id = ANY(SELECT id FROM input)".to_string(),
        "pg_read_file('/etc/passwd') IS NOT NULL".to_string(),
        "load_extension('x') IS NULL".to_string(),
        // Breaking out of the query the expression is put in.
        format!("1 = 1) UNION SELECT * FROM read_csv('{file}') WHERE (1 = 1"),
        format!("id > 0; SELECT * FROM read_csv('{file}')"),
        format!("id > 0 -- ) OR id IN (SELECT * FROM read_csv('{file}'))"),
    ]);
    out
}

/// Queries for a sql node that try to read beyond its inputs.
fn query_attempts(file: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tf in table_functions(file) {
        out.push(format!("SELECT * FROM {tf}"));
        out.push(format!("SELECT * FROM {tf} AS t"));
        out.push(format!("WITH t AS (SELECT * FROM {tf}) SELECT * FROM t"));
        out.push(format!("WITH a AS (SELECT * FROM input), b AS (SELECT * FROM {tf}) SELECT * FROM a JOIN b ON a.id = b.id"));
        out.push(format!(
            "SELECT * FROM input WHERE id IN (SELECT * FROM {tf})"
        ));
        out.push(format!(
            "SELECT * FROM input JOIN {tf} AS f ON input.id = f.id"
        ));
        out.push(format!("SELECT * FROM input, {tf}"));
        out.push(format!(
            "SELECT id FROM input UNION ALL SELECT id FROM {tf}"
        ));
        out.push(format!(
            "SELECT * FROM (SELECT * FROM (SELECT * FROM {tf}) AS x) AS y"
        ));
        out.push(format!("SELECT (SELECT max(id) FROM {tf}) AS m FROM input"));
    }
    for t in [
        format!("'{file}'"),
        format!("\"{file}\""),
        "other_node".to_string(),
        "input.x".to_string(),
    ] {
        out.push(format!("SELECT * FROM {t}"));
        out.push(format!(
            "SELECT * FROM input WHERE id IN (SELECT id FROM {t})"
        ));
    }
    out.extend([
        "SELECT pg_read_file('/etc/passwd') FROM input".to_string(),
        "DROP TABLE input".to_string(),
        "SELECT * FROM input; SELECT * FROM input".to_string(),
        "COPY input TO '/tmp/x.csv'".to_string(),
    ]);
    out
}

/// A pipeline with one node of `config` between a source and an output,
/// and a conditional edge whose condition is `condition`.
fn pipeline(config: Value, condition: &str) -> Value {
    json!({
        "name": "escape",
        "nodes": [
            {"id": "input", "nodeType": "ingestion", "config": {"source": "shared/t.csv"}},
            {"id": "op", "nodeType": "operator", "config": config, "dependencies": ["input"]},
            {"id": "out", "nodeType": "output", "config": {}}
        ],
        "edges": [
            {"id": "cond", "sourceNodeId": "op", "targetNodeId": "out",
             "edgeType": "conditional", "condition": condition}
        ]
    })
}

/// Every expression site: (operator config, the field's path), filled in
/// with an attempt. Aggregate sites get it inside an aggregate.
fn sites(attempt: &str) -> Vec<(Value, &'static str)> {
    let agg = format!("count(*) FILTER (WHERE {attempt})");
    vec![
        (
            json!({"operator": "filter", "predicate": attempt}),
            "nodes[1].config.predicate",
        ),
        (
            json!({"operator": "derive", "columns": [{"name": "x", "expr": attempt}]}),
            "nodes[1].config.columns[0].expr",
        ),
        (
            json!({"operator": "select", "columns": ["id", {"name": "x", "expr": attempt}]}),
            "nodes[1].config.columns[1].expr",
        ),
        (
            json!({"operator": "aggregate", "by": ["id"], "aggregations": [{"name": "n", "expr": agg}]}),
            "nodes[1].config.aggregations[0].expr",
        ),
        (
            json!({"operator": "assert", "checks": [{"name": "c", "expr": attempt}]}),
            "nodes[1].config.checks[0].expr",
        ),
    ]
}

const REFUSALS: &[&str] = &[
    "subqueries are not allowed in an expression",
    "table function ",
    "function ",
    "expression does not parse",
    "condition does not parse",
    "string-literal table",
    "query reads table",
    "query must be",
    "query does not parse",
    "table \"",
];

fn refused_at(doc: Value, path: &str, what: &str) {
    let report = match validate(doc, Options::default()) {
        Ok(_) => panic!("{what}: validated"),
        Err(r) => r,
    };
    let d = report
        .errors()
        .find(|d| d.path == path)
        .unwrap_or_else(|| panic!("{what}: no error at {path}: {report}"));
    assert!(
        REFUSALS.iter().any(|r| d.message.starts_with(r)),
        "{what}: unexpected message at {path}: {}",
        d.message
    );
}

fn input() -> Vec<Input> {
    let df = df!("id" => [1i64, 2, 3]).unwrap();
    vec![Input {
        name: "input".into(),
        schema: df.schema().clone(),
        frame: df.lazy(),
    }]
}

/// Builds the operator past the validator and computes it: it must fail,
/// and never with the host file's rows.
fn refused_at_run_time(config: &Value, what: &str) {
    let mut c = config.clone();
    let name = c["operator"].as_str().unwrap().to_string();
    c.as_object_mut().unwrap().remove("operator");
    let Ok(op) = lookup(&name).unwrap().parse(&c) else {
        return; // refused while parsing: fine
    };
    let built = op
        .build(input(), &Limits::default())
        .and_then(|lf| Ok(lf.collect()?));
    let e = match built {
        Ok(df) if name == "assert" => {
            // assert checks run on the collected frame.
            match op.check(&df) {
                Err(e) => e,
                Ok(()) => panic!("{what}: assert check passed"),
            }
        }
        Ok(df) => panic!("{what}: ran and returned {df}"),
        Err(e) => e,
    };
    let m = e.to_string();
    assert!(
        !m.contains("secret.csv") || m.contains("not allowed") || m.contains("not an input"),
        "{what}: {m}"
    );
}

#[test]
fn every_expression_site_refuses_every_escape() {
    let (_dir, file) = host_file();
    let attempts = expression_attempts(&file);
    let mut tried = 0;
    for a in &attempts {
        for (config, path) in sites(a) {
            let what = format!("{path} = {a}");
            refused_at(pipeline(config.clone(), "count(*) > 0"), path, &what);
            refused_at_run_time(&config, &what);
            tried += 1;
        }
        // Conditional edges: an aggregate condition around the attempt.
        let cond = format!("count(*) > 0 AND ({a})");
        let ok = json!({"operator": "filter", "predicate": "id > 0"});
        refused_at(pipeline(ok, &cond), "edges[0].condition", &cond);
        tried += 1;
    }
    eprintln!(
        "expression catalogue: {} attempts at {tried} sites",
        attempts.len()
    );
    assert!(tried > 500, "{tried}");
}

#[test]
fn sql_nodes_read_only_their_inputs() {
    let (_dir, file) = host_file();
    let attempts = query_attempts(&file);
    for q in &attempts {
        let config = json!({"operator": "sql", "query": q});
        refused_at(
            pipeline(config.clone(), "count(*) > 0"),
            "nodes[1].config.query",
            q,
        );
        refused_at_run_time(&config, q);
    }
    eprintln!("query catalogue: {} attempts", attempts.len());
    // What a sql node may do over its inputs still works.
    let ok = "WITH t AS (SELECT id, id * 2 AS y FROM input) \
              SELECT t.id, y, upper(CAST(y AS VARCHAR)) AS s FROM t JOIN input AS i ON t.id = i.id \
              WHERE t.id IN (SELECT x.id FROM input AS x WHERE x.id > 1)";
    let doc = pipeline(json!({"operator": "sql", "query": ok}), "count(*) > 0");
    assert!(validate(doc, Options::default()).is_ok());
    let op = lookup("sql").unwrap().parse(&json!({"query": ok})).unwrap();
    let df = op
        .build(input(), &Limits::default())
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(df.height(), 2);
}

/// The allowlist promises functions Polars knows: none of them may be
/// refused by Polars as unknown (a function mudrock documents must work).
#[test]
fn every_allowed_function_is_known_to_polars() {
    let df = df!("x" => [1.0f64, 2.0], "s" => ["a", "b"]).unwrap();
    for f in mudrock::operators::guard::FUNCTIONS {
        if *f == "date_trunc" {
            continue; // rewritten by mudrock before Polars sees it
        }
        let q = format!("SELECT {f}(x) AS r FROM __input");
        let r =
            mudrock::operators::sqlutil::over(df.clone().lazy(), &q).and_then(|lf| lf.collect());
        if let Err(e) = r {
            assert!(!e.to_string().contains("unsupported function"), "{f}: {e}");
        }
    }
}

/// The catalogue covers every operator that takes expressions: a new
/// operator fails here until it is classified (and, if it takes
/// expressions, added to `sites`).
#[test]
fn the_catalogue_covers_every_operator_with_expressions() {
    let samples = json!({
        "filter": {"predicate": "x > 1"},
        "select": {"columns": [{"name": "e", "expr": "x"}]},
        "derive": {"columns": [{"name": "e", "expr": "x"}]},
        "rename": {"mapping": {"a": "b"}},
        "drop": {"columns": ["a"]},
        "cast": {"columns": [{"name": "a", "dtype": "int64"}]},
        "aggregate": {"by": [], "aggregations": [{"name": "n", "expr": "count(*)"}]},
        "join": {"on": "a"},
        "union": {},
        "sort": {"by": ["a"]},
        "limit": {"n": 1},
        "distinct": {},
        "fill_null": {"strategy": "zero"},
        "drop_nulls": {},
        "pivot": {"index": "a", "on": "b"},
        "unpivot": {"index": ["a"]},
        "sql": {"query": "SELECT * FROM input"},
        "assert": {"checks": [{"name": "c", "expr": "x > 0"}]}
    });
    let mut with_expressions = Vec::new();
    for name in mudrock::operators::names() {
        let config = samples
            .get(name)
            .unwrap_or_else(|| panic!("operator {name} has no sample here: classify it"));
        let op = lookup(name).unwrap().parse(config).unwrap();
        if !op.expressions().is_empty() {
            with_expressions.push(name);
        }
    }
    let mut covered: Vec<String> = sites("x > 1")
        .iter()
        .map(|(c, _)| c["operator"].as_str().unwrap().to_string())
        .collect();
    with_expressions.sort();
    covered.sort();
    assert_eq!(with_expressions, covered);
}
