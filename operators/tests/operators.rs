//! Every operator on small frames, through the registry as the engine uses
//! them: parse the config, build on inputs, collect.

use mudrock_operators::{Input, OpError, lookup};
use polars::prelude::*;
use serde_json::{Value, json};

fn parse(config: Value) -> Box<dyn mudrock_operators::Operator> {
    let mut c = config.as_object().unwrap().clone();
    let name = c.remove("operator").unwrap();
    let spec = lookup(name.as_str().unwrap()).unwrap();
    spec.parse(&Value::Object(c))
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn inputs(frames: Vec<(&str, DataFrame)>) -> Vec<Input> {
    frames
        .into_iter()
        .map(|(n, df)| Input {
            name: n.into(),
            schema: df.schema().clone(),
            frame: df.lazy(),
        })
        .collect()
}

fn run(config: Value, frames: Vec<(&str, DataFrame)>) -> Result<DataFrame, OpError> {
    let op = parse(config);
    let lf = op.build(inputs(frames), &mudrock_operators::Limits::default())?;
    let df = lf.collect()?;
    if op.needs_check() {
        op.check(&df)?;
    }
    Ok(df)
}

fn ok(config: Value, frames: Vec<(&str, DataFrame)>) -> DataFrame {
    run(config, frames).unwrap_or_else(|e| panic!("{e}"))
}

fn err(config: Value, frames: Vec<(&str, DataFrame)>) -> String {
    match run(config, frames) {
        Ok(df) => panic!("expected an error, got {df}"),
        Err(e) => match e.field() {
            Some(f) => format!("{f}: {e}"),
            None => e.to_string(),
        },
    }
}

fn orders() -> DataFrame {
    df! {
        "id" => [1i64, 2, 3, 4],
        "region" => ["north", "south", "north", "east"],
        "qty" => [Some(2i64), None, Some(5), Some(1)],
        "price" => [10.0f64, 20.0, 1.5, 3.0],
    }
    .unwrap()
}

fn i64s(df: &DataFrame, c: &str) -> Vec<Option<i64>> {
    df.column(c)
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect()
}

fn strs(df: &DataFrame, c: &str) -> Vec<Option<String>> {
    df.column(c)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

fn names(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn filter_keeps_true_rows_and_treats_null_as_false() {
    let df = ok(
        json!({"operator": "filter", "predicate": "qty > 1 AND region <> 'east'"}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&df, "id"), [Some(1), Some(3)]);
    assert_eq!(
        err(
            json!({"operator": "filter", "predicate": "quantity > 1"}),
            vec![("o", orders())]
        ),
        "predicate: unknown column \"quantity\" — did you mean \"qty\"?"
    );
    assert_eq!(
        err(
            json!({"operator": "filter", "predicate": "zzz > 1"}),
            vec![("o", orders())]
        ),
        "predicate: unknown column \"zzz\"; the input has: id, region, qty, price"
    );
    assert_eq!(
        err(
            json!({"operator": "filter", "predicate": "regoin = 'x'"}),
            vec![("o", orders())]
        ),
        "predicate: unknown column \"regoin\" — did you mean \"region\"?"
    );
}

#[test]
fn select_keeps_orders_and_computes() {
    let df = ok(
        json!({"operator": "select", "columns": ["region", {"name": "total", "expr": "qty * price"}]}),
        vec![("o", orders())],
    );
    assert_eq!(names(&df), ["region", "total"]);
    assert_eq!(
        df.column("total").unwrap().f64().unwrap().get(0),
        Some(20.0)
    );
    assert_eq!(
        err(
            json!({"operator": "select", "columns": ["id", "nope"]}),
            vec![("o", orders())]
        ),
        "columns[1]: unknown column \"nope\"; the input has: id, region, qty, price"
    );
}

#[test]
fn derive_adds_replaces_and_chains() {
    let df = ok(
        json!({"operator": "derive", "columns": [
            {"name": "total", "expr": "qty * price"},
            {"name": "price", "expr": "price * 2"},
            {"name": "big", "expr": "total > 10"}
        ]}),
        vec![("o", orders())],
    );
    assert_eq!(
        names(&df),
        ["id", "region", "qty", "price", "total", "big"],
        "replaced in place, added at the end"
    );
    assert_eq!(
        df.column("price").unwrap().f64().unwrap().get(0),
        Some(20.0)
    );
    let big: Vec<Option<bool>> = df.column("big").unwrap().bool().unwrap().iter().collect();
    assert_eq!(big, [Some(true), None, Some(false), Some(false)]);
    assert_eq!(
        err(
            json!({"operator": "derive", "columns": [{"name": "a", "expr": "missing + 1"}]}),
            vec![("o", orders())]
        ),
        "columns[0].expr: unknown column \"missing\"; the input has: id, region, qty, price"
    );
}

#[test]
fn derive_supports_date_trunc() {
    let ts = df! {"ts" => ["2024-03-17 10:11:12", "2024-12-01 00:00:00"]}
        .unwrap()
        .lazy()
        .select([col("ts").str().to_datetime(
            Some(TimeUnit::Microseconds),
            None,
            StrptimeOptions::default(),
            lit("raise"),
        )])
        .collect()
        .unwrap();
    let df = ok(
        json!({"operator": "derive", "columns": [
            {"name": "m", "expr": "date_trunc('month', ts)"},
            {"name": "h", "expr": "date_trunc('hour', ts)"}
        ]}),
        vec![("t", ts)],
    );
    let m = df.column("m").unwrap().cast(&DataType::String).unwrap();
    assert_eq!(m.str().unwrap().get(0), Some("2024-03-01 00:00:00.000000"));
    let h = df.column("h").unwrap().cast(&DataType::String).unwrap();
    assert_eq!(h.str().unwrap().get(0), Some("2024-03-17 10:00:00.000000"));
}

#[test]
fn rename_and_drop() {
    let df = ok(
        json!({"operator": "rename", "mapping": {"qty": "quantity", "region": "area"}}),
        vec![("o", orders())],
    );
    assert_eq!(names(&df), ["id", "area", "quantity", "price"]);
    assert_eq!(
        err(
            json!({"operator": "rename", "mapping": {"qt": "x"}}),
            vec![("o", orders())]
        ),
        "mapping.qt: unknown column \"qt\" — did you mean \"qty\"?"
    );
    assert_eq!(
        err(
            json!({"operator": "rename", "mapping": {"qty": "price"}}),
            vec![("o", orders())]
        ),
        "mapping.qty: cannot rename \"qty\" to \"price\": the input already has a column \"price\""
    );
    let df = ok(
        json!({"operator": "drop", "columns": ["qty", "price"]}),
        vec![("o", orders())],
    );
    assert_eq!(names(&df), ["id", "region"]);
    assert_eq!(
        err(
            json!({"operator": "drop", "columns": ["prce"]}),
            vec![("o", orders())]
        ),
        "columns[0]: unknown column \"prce\" — did you mean \"price\"?"
    );
}

#[test]
fn cast_is_strict_by_default() {
    let df = ok(
        json!({"operator": "cast", "columns": [{"name": "id", "dtype": "string"}, {"name": "price", "dtype": "int32"}]}),
        vec![("o", orders())],
    );
    assert_eq!(df.column("id").unwrap().dtype(), &DataType::String);
    assert_eq!(df.column("price").unwrap().dtype(), &DataType::Int32);
    let s = df! {"v" => ["1", "x"]}.unwrap();
    let e = err(
        json!({"operator": "cast", "columns": [{"name": "v", "dtype": "int64"}]}),
        vec![("s", s.clone())],
    );
    assert!(e.contains("conversion from `str` to `i64` failed"), "{e}");
    let df = ok(
        json!({"operator": "cast", "strict": false, "columns": [{"name": "v", "dtype": "int64"}]}),
        vec![("s", s)],
    );
    assert_eq!(i64s(&df, "v"), [Some(1), None]);
    let spec = lookup("cast").unwrap();
    let e = spec
        .parse(&json!({"columns": [{"name": "v", "dtype": "int"}]}))
        .unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.message.as_str()),
        (
            "columns[0].dtype",
            "unknown dtype \"int\" — did you mean \"int8\"?"
        )
    );
}

#[test]
fn aggregate_groups_sorted_and_whole_table() {
    let df = ok(
        json!({"operator": "aggregate", "by": ["region"], "aggregations": [
            {"name": "n", "expr": "count(*)"}, {"name": "qty", "expr": "sum(qty)"}, {"name": "avg_price", "expr": "avg(price)"}
        ]}),
        vec![("o", orders())],
    );
    assert_eq!(
        strs(&df, "region"),
        [
            Some("east".into()),
            Some("north".into()),
            Some("south".into())
        ]
    );
    assert_eq!(i64s(&df, "n"), [Some(1), Some(2), Some(1)]);
    assert_eq!(
        i64s(&df, "qty"),
        [Some(1), Some(7), None],
        "SQL: the sum of only nulls is null"
    );
    let df = ok(
        json!({"operator": "aggregate", "aggregations": [{"name": "total", "expr": "sum(qty * price)"}]}),
        vec![("o", orders())],
    );
    assert_eq!(df.height(), 1);
    assert_eq!(
        df.column("total").unwrap().f64().unwrap().get(0),
        Some(20.0 + 7.5 + 3.0)
    );
    assert_eq!(
        err(
            json!({"operator": "aggregate", "by": ["regon"], "aggregations": [{"name": "n", "expr": "count(*)"}]}),
            vec![("o", orders())]
        ),
        "by[0]: unknown column \"regon\" — did you mean \"region\"?"
    );
}

fn regions() -> DataFrame {
    df! {"region" => ["north", "south", "west"], "manager" => ["Ada", "Bo", "Cy"]}.unwrap()
}

#[test]
fn joins_of_every_kind() {
    let j = |how: &str| {
        ok(
            json!({"operator": "join", "how": how, "on": "region"}),
            vec![("o", orders()), ("r", regions())],
        )
    };
    assert_eq!(j("inner").height(), 3);
    let left = j("left");
    assert_eq!(left.height(), 4);
    assert_eq!(strs(&left, "manager")[3], None, "east has no manager");
    let full = j("full");
    assert_eq!(full.height(), 5);
    assert_eq!(
        names(&full)
            .iter()
            .filter(|n| n.starts_with("region"))
            .count(),
        1,
        "full joins coalesce the key"
    );
    assert_eq!(i64s(&j("semi"), "id"), [Some(1), Some(2), Some(3)]);
    assert_eq!(i64s(&j("anti"), "id"), [Some(4)]);
    assert_eq!(j("right").height(), 4);
    let cross = ok(
        json!({"operator": "join", "how": "cross"}),
        vec![("o", orders()), ("r", regions())],
    );
    assert_eq!(cross.height(), 12);
    assert!(
        names(&cross).contains(&"region_right".to_string()),
        "suffix on clashing names"
    );
    let lr = ok(
        json!({"operator": "join", "leftOn": ["region"], "rightOn": ["area"], "suffix": "_r"}),
        vec![
            ("o", orders()),
            (
                "r",
                regions()
                    .lazy()
                    .rename(["region"], ["area"], true)
                    .collect()
                    .unwrap(),
            ),
        ],
    );
    assert_eq!(lr.height(), 3);
    assert_eq!(
        err(
            json!({"operator": "join", "on": "id"}),
            vec![("o", orders()), ("r", regions())]
        ),
        "on[0]: unknown column \"id\"; the input has: region, manager"
    );
    let typed = df! {"region" => [1i64]}.unwrap();
    assert_eq!(
        err(
            json!({"operator": "join", "on": "region"}),
            vec![("o", orders()), ("r", typed)]
        ),
        "on[0]: cannot join \"region\" (str) with \"region\" (i64): the key types differ; cast one first"
    );
}

#[test]
fn union_vertical_and_diagonal() {
    let a = df! {"x" => [1i64], "y" => ["a"]}.unwrap();
    let b = df! {"x" => [2i64], "y" => ["b"]}.unwrap();
    let c = df! {"y" => ["c"], "z" => [true]}.unwrap();
    let df = ok(
        json!({"operator": "union"}),
        vec![("a", a.clone()), ("b", b.clone())],
    );
    assert_eq!(i64s(&df, "x"), [Some(1), Some(2)], "input order kept");
    assert_eq!(
        err(
            json!({"operator": "union"}),
            vec![("a", a.clone()), ("c", c.clone())]
        ),
        "how: input \"a\" has columns [x, y] but \"c\" has [y, z]; use \"how\": \"diagonal\" to align by name"
    );
    let df = ok(
        json!({"operator": "union", "how": "diagonal"}),
        vec![("a", a), ("c", c)],
    );
    assert_eq!(names(&df), ["x", "y", "z"]);
    assert_eq!(i64s(&df, "x"), [Some(1), None]);
}

#[test]
fn sort_limit_distinct() {
    let df = ok(
        json!({"operator": "sort", "by": [{"column": "qty", "descending": true, "nullsLast": true}, "id"]}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&df, "id"), [Some(3), Some(1), Some(4), Some(2)]);
    let df = ok(
        json!({"operator": "sort", "by": ["region", {"column": "id", "descending": true}]}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&df, "id"), [Some(4), Some(3), Some(1), Some(2)]);
    let df = ok(
        json!({"operator": "limit", "n": 2, "offset": 1}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&df, "id"), [Some(2), Some(3)]);
    let d = ok(
        json!({"operator": "distinct", "subset": ["region"]}),
        vec![("o", orders())],
    );
    assert_eq!(
        i64s(&d, "id"),
        [Some(1), Some(2), Some(4)],
        "first kept, order kept"
    );
    let d = ok(
        json!({"operator": "distinct", "subset": ["region"], "keep": "last"}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&d, "id"), [Some(2), Some(3), Some(4)]);
    let d = ok(
        json!({"operator": "distinct", "subset": ["region"], "keep": "none"}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&d, "id"), [Some(2), Some(4)]);
    let dup = df! {"a" => [1i64, 1, 2]}.unwrap();
    assert_eq!(
        ok(json!({"operator": "distinct"}), vec![("d", dup)]).height(),
        2
    );
}

#[test]
fn fill_null_and_drop_nulls() {
    let df = ok(
        json!({"operator": "fill_null", "columns": [{"name": "qty", "value": 0}]}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&df, "qty"), [Some(2), Some(0), Some(5), Some(1)]);
    let df = ok(
        json!({"operator": "fill_null", "strategy": "forward", "subset": ["qty"]}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&df, "qty"), [Some(2), Some(2), Some(5), Some(1)]);
    let df = ok(
        json!({"operator": "fill_null", "strategy": "max"}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&df, "qty"), [Some(2), Some(5), Some(5), Some(1)]);
    assert_eq!(
        err(
            json!({"operator": "fill_null", "columns": [{"name": "qtty", "value": 1}]}),
            vec![("o", orders())]
        ),
        "columns[0].name: unknown column \"qtty\" — did you mean \"qty\"?"
    );
    let e = lookup("fill_null").unwrap().parse(&json!({})).unwrap_err();
    assert_eq!(e.message, "fill_null needs \"columns\" or \"strategy\"");
    let df = ok(
        json!({"operator": "drop_nulls", "subset": ["qty"]}),
        vec![("o", orders())],
    );
    assert_eq!(i64s(&df, "id"), [Some(1), Some(3), Some(4)]);
    let df = ok(json!({"operator": "drop_nulls"}), vec![("o", orders())]);
    assert_eq!(df.height(), 3);
}

#[test]
fn pivot_and_unpivot() {
    let long = df! {
        "store" => ["a", "a", "b", "b", "a"],
        "month" => ["feb", "jan", "jan", "feb", "jan"],
        "sales" => [1i64, 2, 3, 4, 5],
    }
    .unwrap();
    let wide = ok(
        json!({"operator": "pivot", "index": ["store"], "on": "month", "values": "sales", "aggregate": "sum"}),
        vec![("l", long)],
    );
    assert_eq!(
        names(&wide),
        ["store", "feb", "jan"],
        "one column per value, sorted"
    );
    assert_eq!(strs(&wide, "store"), [Some("a".into()), Some("b".into())]);
    assert_eq!(i64s(&wide, "jan"), [Some(7), Some(3)]);
    assert_eq!(i64s(&wide, "feb"), [Some(1), Some(4)]);
    let back = ok(
        json!({"operator": "unpivot", "index": ["store"], "variableName": "month", "valueName": "sales"}),
        vec![("w", wide)],
    );
    assert_eq!(names(&back), ["store", "month", "sales"]);
    assert_eq!(back.height(), 4);
    let mixed = df! {"k" => [1i64], "a" => [1i64], "b" => ["x"]}.unwrap();
    assert_eq!(
        err(
            json!({"operator": "unpivot", "index": ["k"]}),
            vec![("m", mixed)]
        ),
        "on: columns to unpivot must share a type: \"a\" is i64 but \"b\" is str; cast first"
    );
}

#[test]
fn sql_sees_its_inputs_by_node_id() {
    let df = ok(
        json!({"operator": "sql", "query": "SELECT o.region, r.manager, SUM(o.qty) AS qty FROM orders o JOIN regions r ON o.region = r.region GROUP BY o.region, r.manager ORDER BY o.region"}),
        vec![("orders", orders()), ("regions", regions())],
    );
    assert_eq!(
        strs(&df, "manager"),
        [Some("Ada".into()), Some("Bo".into())]
    );
    let df = ok(
        json!({"operator": "sql", "query": "WITH big AS (SELECT * FROM input WHERE price > 2) SELECT count(*) AS n FROM big"}),
        vec![("orders", orders())],
    );
    assert_eq!(
        i64s(&df, "n"),
        [Some(3)],
        "one input is also `input`; CTEs are allowed"
    );
    let df = ok(
        json!({"operator": "sql", "query": "SELECT id FROM \"my-node.v2\""}),
        vec![("my-node.v2", orders())],
    );
    assert_eq!(df.height(), 4);
}

/// The sql operator must not reach files: table functions are refused when
/// the pipeline is submitted, and names that are not inputs when it is
/// built, even where the file exists and Polars would happily read it.
#[test]
fn sql_cannot_read_files() {
    let dir = std::env::temp_dir().join(format!("mudrock-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret.csv");
    std::fs::write(&secret, "password\nhunter2\n").unwrap();
    let p = secret.display();
    let spec = lookup("sql").unwrap();
    for q in [
        format!("SELECT * FROM read_csv('{p}')"),
        "SELECT * FROM read_parquet('/etc/passwd')".to_string(),
        "SELECT * FROM read_json('/etc/passwd')".to_string(),
        "SELECT * FROM read_ipc('/etc/passwd')".to_string(),
        format!("SELECT * FROM input WHERE id IN (SELECT 1 FROM read_csv('{p}'))"),
        format!("WITH s AS (SELECT * FROM read_csv('{p}')) SELECT * FROM s"),
        format!("SELECT * FROM input JOIN read_csv('{p}') x ON true"),
    ] {
        let e = spec
            .parse(&json!({"query": q}))
            .err()
            .unwrap_or_else(|| panic!("accepted: {q}"));
        assert_eq!(e.field, "query");
        assert!(
            e.message.starts_with("table function read_"),
            "{q}: {}",
            e.message
        );
        assert!(
            e.message
                .ends_with("is not allowed: pipelines read data only through ingestion nodes"),
            "{}",
            e.message
        );
    }
    let q = format!("SELECT * FROM '{p}'");
    let e = spec.parse(&json!({ "query": q })).err().unwrap();
    assert_eq!(
        e.message,
        format!("string-literal table '{p}' is not allowed: a query reads only its inputs")
    );
    for (q, table) in [
        (format!("SELECT * FROM \"{p}\""), p.to_string()),
        (
            "SELECT * FROM other_table".to_string(),
            "other_table".to_string(),
        ),
    ] {
        let e = err(
            json!({"operator": "sql", "query": q}),
            vec![("orders", orders())],
        );
        assert_eq!(
            e,
            format!(
                "query: query reads table \"{table}\", which is not an input; tables: orders, input"
            ),
            "{q}"
        );
    }
    for q in [
        "DROP TABLE input",
        "SHOW TABLES",
        "CREATE TABLE t AS SELECT * FROM input",
        "SELECT 1; SELECT 2",
        "EXPLAIN SELECT * FROM input",
    ] {
        let e = spec
            .parse(&json!({"query": q}))
            .err()
            .unwrap_or_else(|| panic!("accepted: {q}"));
        assert!(e.message.starts_with("query must be"), "{q}: {}", e.message);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn assert_passes_data_through_or_lists_every_failed_check() {
    let cfg = json!({"operator": "assert", "checks": [{"name": "has_rows", "expr": "count(*) > 0"}, {"name": "positive", "expr": "price > 0"}], "notNull": ["id"], "unique": ["id"]});
    let df = ok(cfg, vec![("o", orders())]);
    assert_eq!(df.height(), 4, "data passes through");
    let cfg = json!({"operator": "assert",
        "checks": [{"name": "cheap", "expr": "price < 5"}, {"name": "lots", "expr": "count(*) > 10"}, {"name": "ok", "expr": "id > 0"}],
        "notNull": ["qty"], "unique": ["region"]});
    assert_eq!(
        err(cfg, vec![("o", orders())]),
        "4 of 5 checks failed: cheap (price < 5): 2 of 4 rows fail; lots (count(*) > 10); notNull(qty): 1 null values; unique(region): 1 duplicate values"
    );
    let e = lookup("assert").unwrap().parse(&json!({})).unwrap_err();
    assert_eq!(
        e.message,
        "assert needs \"checks\", \"notNull\" or \"unique\""
    );
}

#[test]
fn registry_lists_every_v1_operator_once() {
    let names = mudrock_operators::names();
    let expected = [
        "filter",
        "select",
        "derive",
        "rename",
        "drop",
        "cast",
        "aggregate",
        "join",
        "union",
        "sort",
        "limit",
        "distinct",
        "fill_null",
        "drop_nulls",
        "pivot",
        "unpivot",
        "sql",
        "assert",
    ];
    assert_eq!(names, expected);
}

/// A sort after an aggregate whose group keys it covers sorts once: the
/// aggregate's own key order is dropped (same rows, less work).
#[test]
fn a_sort_after_an_aggregate_sorts_once() {
    let df = df!("g" => ["b", "a", "b", "c"], "v" => [1i64, 5, 3, 5]).unwrap();
    let agg = parse(json!({"operator": "aggregate", "by": ["g"],
        "aggregations": [{"name": "total", "expr": "sum(v)"}, {"name": "n", "expr": "count(*)"}]}));
    let mut lf = agg
        .build(
            inputs(vec![("in", df)]),
            &mudrock_operators::Limits::default(),
        )
        .unwrap();
    let schema = lf.collect_schema().unwrap();
    let sorts = |lf: &LazyFrame| lf.describe_plan().unwrap().matches("SORT BY").count();
    assert_eq!(sorts(&lf), 1);
    let sort =
        parse(json!({"operator": "sort", "by": [{"column": "total", "descending": true}, "g"]}));
    let out = sort
        .build(
            vec![Input {
                name: "agg".into(),
                schema,
                frame: lf,
            }],
            &mudrock_operators::Limits::default(),
        )
        .unwrap();
    assert_eq!(sorts(&out), 1, "{}", out.describe_plan().unwrap());
    let got = out.collect().unwrap();
    assert_eq!(
        got.column("g")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        vec![Some("a"), Some("c"), Some("b")]
    );
}
