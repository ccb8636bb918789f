//! The short fuzz run, in the test suite: the fuzz targets' bodies
//! (`fuzz/targets.rs`, the same the libFuzzer run drives for millions of
//! executions) over generated SQL token soup and mutated pipeline
//! documents. Nothing may panic, and each target's property must hold.

#[path = "../fuzz/targets.rs"]
mod targets;

use proptest::prelude::*;
use serde_json::{Value, json};

const WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "WITH",
    "AS",
    "JOIN",
    "ON",
    "UNION",
    "ALL",
    "IN",
    "EXISTS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "INT",
    "VARCHAR",
    "OVER",
    "PARTITION",
    "BY",
    "ORDER",
    "GROUP",
    "LIMIT",
    "NULL",
    "AND",
    "OR",
    "NOT",
    "IS",
    "LIKE",
    "BETWEEN",
    "*",
    "(",
    ")",
    ",",
    "=",
    "<>",
    ">",
    "+",
    "-",
    "/",
    "||",
    "::",
    ";",
    "--",
    "/*",
    "*/",
    "'",
    "\"",
    "`",
    "input",
    "orders",
    "x",
    "g",
    "read_csv",
    "READ_PARQUET",
    "\"read_json\"",
    "date_trunc",
    "date_part",
    "EXTRACT",
    "HOUR",
    "'hour'",
    "sum",
    "count(*)",
    "coalesce",
    "upper",
    "'month'",
    "'/etc/passwd'",
    "1",
    "2.5",
    "-1",
    "$1",
    "?",
    "ARRAY",
    "INTERVAL",
    "'1 day'",
    "ANY",
    "LATERAL",
    "UNNEST",
    "TABLE",
    "VALUES",
];

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(str::to_string),
        1 => "[a-z_]{1,8}",
        1 => "'[^']{0,6}'",
        1 => "[0-9]{1,4}",
        1 => "\\PC{1,3}",
    ]
}

fn sql() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 0..28).prop_map(|v| v.join(" "))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        sql().prop_map(Value::String),
        prop::sample::select(vec![
            "filter",
            "derive",
            "join",
            "sql",
            "pivot",
            "aggregate",
            "ingestion",
            "operator",
            "output",
            "conditional",
            "error",
            "shared/a.csv",
            "../x",
            "/etc/passwd",
            "s3://b/k",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the `k`-th value of `doc` (in pre-order) by `v`.
fn replace_nth(doc: &mut Value, k: &mut usize, v: &Value) -> bool {
    if *k == 0 {
        *doc = v.clone();
        return true;
    }
    *k -= 1;
    match doc {
        Value::Array(a) => a.iter_mut().any(|x| replace_nth(x, k, v)),
        Value::Object(o) => o.values_mut().any(|x| replace_nth(x, k, v)),
        _ => false,
    }
}

fn seed() -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sales/pipeline.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec((0usize..400, json_value()), 1..4).prop_map(|muts| {
        let mut d = seed();
        for (k, v) in muts {
            let mut k = k;
            replace_nth(&mut d, &mut k, &v);
        }
        d.to_string()
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_expression_checker_never_panics_and_what_it_accepts_stays_closed(s in sql()) {
        targets::expression(s.as_bytes());
    }

    #[test]
    fn the_query_guard_and_the_rewriter_never_panic(s in sql()) {
        targets::query(s.as_bytes());
    }

    #[test]
    fn the_document_validator_never_panics(d in document()) {
        targets::document(d.as_bytes());
    }
}

/// The seed corpus of the long run passes through the targets too.
#[test]
fn the_seed_corpus_runs_through_every_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut n = 0;
    for (dir, target) in [
        ("document", targets::document as fn(&[u8])),
        ("expression", targets::expression),
        ("query", targets::query),
    ] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            target(&std::fs::read(e.unwrap().path()).unwrap());
            n += 1;
        }
    }
    assert!(n >= 38, "{n} seeds");
}
