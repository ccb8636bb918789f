//! Each operator's column lineage, asked as the engine asks it: the
//! operator is built on real frames, Polars names the output columns, and
//! the operator says where each comes from. Expected answers are written
//! by hand as `input.column:derivation`.

use mudrock_operators::{Derivation, Input, InputColumns, Limits, lookup};
use polars::prelude::*;
use serde_json::{Value, json};

/// Output column → its origins, rendered.
fn lineage(config: Value, frames: Vec<(&str, DataFrame)>) -> Vec<(String, Vec<String>)> {
    let mut c = config.as_object().unwrap().clone();
    let name = c.remove("operator").unwrap();
    let op = lookup(name.as_str().unwrap())
        .unwrap()
        .parse(&Value::Object(c))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let names: Vec<(String, Vec<String>)> = frames
        .iter()
        .map(|(n, df)| {
            let cols = df
                .get_column_names()
                .iter()
                .map(|c| c.to_string())
                .collect();
            (n.to_string(), cols)
        })
        .collect();
    let inputs: Vec<Input> = frames
        .into_iter()
        .map(|(n, df)| Input {
            name: n.into(),
            schema: df.schema().clone(),
            frame: df.lazy(),
        })
        .collect();
    let mut lf = op.build(inputs, &Limits::default()).unwrap();
    let output: Vec<String> = lf
        .collect_schema()
        .unwrap()
        .iter_names()
        .map(|n| n.to_string())
        .collect();
    let views: Vec<InputColumns> = names
        .iter()
        .map(|(n, c)| InputColumns {
            name: n,
            columns: c,
        })
        .collect();
    let origins = op.column_lineage(&views, &output);
    assert_eq!(origins.len(), output.len(), "one answer per output column");
    output
        .into_iter()
        .zip(origins)
        .map(|(col, os)| {
            let os = os
                .into_iter()
                .map(|o| {
                    let how = match o.how {
                        Derivation::Copy => "copy",
                        Derivation::Transformation => "transformation",
                        Derivation::Aggregation => "aggregation",
                    };
                    format!("{}.{}:{how}", names[o.input].0, o.column)
                })
                .collect();
            (col, os)
        })
        .collect()
}

fn expect(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    pairs
        .iter()
        .map(|(c, os)| (c.to_string(), os.iter().map(|s| s.to_string()).collect()))
        .collect()
}

fn sales() -> DataFrame {
    df!(
        "id" => [1i64, 2, 3],
        "region" => ["n", "s", "n"],
        "qty" => [Some(2i64), None, Some(5)],
        "price" => [1.5f64, 2.0, 3.0]
    )
    .unwrap()
}

#[test]
fn row_and_column_choosers_copy() {
    for config in [
        json!({"operator": "filter", "predicate": "qty > 1"}),
        json!({"operator": "sort", "by": ["region"]}),
        json!({"operator": "limit", "n": 2}),
        json!({"operator": "distinct"}),
        json!({"operator": "drop_nulls"}),
        json!({"operator": "assert", "notNull": ["id"]}),
    ] {
        assert_eq!(
            lineage(config.clone(), vec![("t", sales())]),
            expect(&[
                ("id", &["t.id:copy"]),
                ("region", &["t.region:copy"]),
                ("qty", &["t.qty:copy"]),
                ("price", &["t.price:copy"]),
            ]),
            "{config}"
        );
    }
    assert_eq!(
        lineage(
            json!({"operator": "drop", "columns": ["qty", "id"]}),
            vec![("t", sales())]
        ),
        expect(&[("region", &["t.region:copy"]), ("price", &["t.price:copy"])])
    );
}

#[test]
fn select_derive_rename_cast_fill() {
    assert_eq!(
        lineage(
            json!({"operator": "select", "columns": ["region", {"name": "total", "expr": "qty * price"}, {"name": "n", "expr": "1"}]}),
            vec![("t", sales())]
        ),
        expect(&[
            ("region", &["t.region:copy"]),
            ("total", &["t.price:transformation", "t.qty:transformation"]),
            ("n", &[]),
        ])
    );
    // A later column reads an earlier one; a replaced column its new origins.
    assert_eq!(
        lineage(
            json!({"operator": "derive", "columns": [
                {"name": "total", "expr": "qty * price"},
                {"name": "double", "expr": "total * 2"},
                {"name": "price", "expr": "round(price)"},
                {"name": "alias", "expr": "region"}
            ]}),
            vec![("t", sales())]
        ),
        expect(&[
            ("id", &["t.id:copy"]),
            ("region", &["t.region:copy"]),
            ("qty", &["t.qty:copy"]),
            ("price", &["t.price:transformation"]),
            ("total", &["t.price:transformation", "t.qty:transformation"]),
            (
                "double",
                &["t.price:transformation", "t.qty:transformation"]
            ),
            ("alias", &["t.region:copy"]),
        ])
    );
    assert_eq!(
        lineage(
            json!({"operator": "rename", "mapping": {"qty": "quantity", "id": "key"}}),
            vec![("t", sales())]
        ),
        expect(&[
            ("key", &["t.id:copy"]),
            ("region", &["t.region:copy"]),
            ("quantity", &["t.qty:copy"]),
            ("price", &["t.price:copy"]),
        ])
    );
    assert_eq!(
        lineage(
            json!({"operator": "cast", "columns": [{"name": "qty", "dtype": "float64"}]}),
            vec![("t", sales())]
        )[2],
        ("qty".to_string(), vec!["t.qty:transformation".to_string()])
    );
    let filled = lineage(
        json!({"operator": "fill_null", "columns": [{"name": "qty", "value": 0}]}),
        vec![("t", sales())],
    );
    assert_eq!(filled[2].1, ["t.qty:transformation"]);
    assert_eq!(filled[0].1, ["t.id:copy"]);
}

#[test]
fn aggregate_join_union() {
    assert_eq!(
        lineage(
            json!({"operator": "aggregate", "by": ["region"], "aggregations": [
                {"name": "revenue", "expr": "sum(qty * price)"},
                {"name": "n", "expr": "count(*)"},
                {"name": "top", "expr": "max(price)"}
            ]}),
            vec![("t", sales())]
        ),
        expect(&[
            ("region", &["t.region:copy"]),
            ("revenue", &["t.price:aggregation", "t.qty:aggregation"]),
            ("n", &[]),
            ("top", &["t.price:aggregation"]),
        ])
    );
    let regions =
        df!("region" => ["n", "s"], "name" => ["North", "South"], "price" => [9.0f64, 8.0])
            .unwrap();
    for (how, key) in [
        ("inner", &["l.region:copy"][..]),
        ("left", &["l.region:copy"][..]),
        ("full", &["l.region:copy", "r.region:copy"][..]),
    ] {
        assert_eq!(
            lineage(
                json!({"operator": "join", "how": how, "on": "region"}),
                vec![("l", sales()), ("r", regions.clone())]
            ),
            expect(&[
                ("id", &["l.id:copy"]),
                ("region", key),
                ("qty", &["l.qty:copy"]),
                ("price", &["l.price:copy"]),
                ("name", &["r.name:copy"]),
                ("price_right", &["r.price:copy"]),
            ]),
            "{how}"
        );
    }
    assert_eq!(
        lineage(
            json!({"operator": "union", "how": "diagonal"}),
            vec![
                ("a", sales()),
                ("b", df!("id" => [9i64], "extra" => ["x"]).unwrap())
            ]
        ),
        expect(&[
            ("id", &["a.id:copy", "b.id:copy"]),
            ("region", &["a.region:copy"]),
            ("qty", &["a.qty:copy"]),
            ("price", &["a.price:copy"]),
            ("extra", &["b.extra:copy"]),
        ])
    );
}

#[test]
fn pivot_and_unpivot() {
    assert_eq!(
        lineage(
            json!({"operator": "pivot", "index": ["id"], "on": "region", "values": "price", "aggregate": "sum"}),
            vec![("t", sales())]
        ),
        expect(&[
            ("id", &["t.id:copy"]),
            ("n", &["t.price:aggregation"]),
            ("s", &["t.price:aggregation"]),
        ])
    );
    let two = lineage(
        json!({"operator": "pivot", "index": ["id"], "on": "region", "values": ["price", "qty"]}),
        vec![("t", sales())],
    );
    assert_eq!(two.len(), 5, "{two:?}");
    for (col, origins) in &two[1..] {
        let want = if col.starts_with("price") {
            "t.price:aggregation"
        } else {
            "t.qty:aggregation"
        };
        assert_eq!(origins, &[want.to_string()], "{col}");
    }
    assert_eq!(
        lineage(
            json!({"operator": "unpivot", "index": ["id"], "on": ["qty", "price"]}),
            vec![(
                "t",
                df!("id" => [1i64], "qty" => [2.0f64], "price" => [3.0f64]).unwrap()
            )]
        ),
        expect(&[
            ("id", &["t.id:copy"]),
            ("variable", &[]),
            ("value", &["t.qty:copy", "t.price:copy"]),
        ])
    );
}

#[test]
fn sql_through_ctes_joins_and_subqueries() {
    let regions = df!("region" => ["n", "s"], "name" => ["North", "South"]).unwrap();
    assert_eq!(
        lineage(
            json!({"operator": "sql", "query":
                "WITH big AS (SELECT id, region, qty * price AS amount FROM sales WHERE qty > 1) \
                 SELECT r.name, b.amount, upper(r.name) AS loud, 1 AS one \
                 FROM big b JOIN regions r ON b.region = r.region"}),
            vec![("sales", sales()), ("regions", regions)]
        ),
        expect(&[
            ("name", &["regions.name:copy"]),
            (
                "amount",
                &["sales.price:transformation", "sales.qty:transformation"]
            ),
            ("loud", &["regions.name:transformation"]),
            ("one", &[]),
        ])
    );
    // A derived table, an aggregate over it, and a UNION's branches.
    assert_eq!(
        lineage(
            json!({"operator": "sql", "query":
                "SELECT region, sum(v) AS total FROM (SELECT region, qty AS v FROM input) AS s GROUP BY region \
                 UNION ALL SELECT region, price FROM input"}),
            vec![("sales", sales())]
        ),
        expect(&[
            ("region", &["sales.region:copy"]),
            ("total", &["sales.price:copy", "sales.qty:aggregation"]),
        ])
    );
}
