//! Date and datetime columns of CSV sources: read as text and converted
//! with one format, giving what Polars' reader gave on valid data, and a
//! node error naming the column, value and row on invalid data.

mod common;

use std::sync::Arc;

use common::*;
use mudrock::model::{NodeStatus, RunStatus};
use polars::prelude::*;
use serde_json::{Value, json};

fn overrides(cols: &[(&str, &str)]) -> Value {
    Value::Array(
        cols.iter()
            .map(|(n, t)| json!({"name": n, "dtype": t}))
            .collect(),
    )
}

/// What Polars' CSV reader gives with the overrides as dtypes (the
/// behaviour before the conversion).
fn polars_reads(env: &Env, key: &str, cols: &[(&str, DataType)]) -> DataFrame {
    let mut s = Schema::default();
    for (n, t) in cols {
        s.with_column((*n).into(), t.clone());
    }
    CsvReadOptions::default()
        .with_schema_overwrite(Some(Arc::new(s)))
        .try_into_reader_with_file_path(Some(env.path(key)))
        .unwrap()
        .finish()
        .unwrap()
}

async fn read_through_mudrock(env: &Env, key: &str, ovs: Value) -> Result<DataFrame, String> {
    let d = doc(
        "dates",
        vec![
            json!({"id": "src", "nodeType": "ingestion",
                   "config": {"source": key, "options": {"schemaOverrides": ovs}}}),
            output("out", "src"),
        ],
        vec![],
    );
    let r = env.run(&d).await;
    if r.meta.status != RunStatus::Succeeded {
        return Err(node(&r.meta, "src").error.clone().unwrap_or_default());
    }
    Ok(env.parquet(&format!("{}outputs/out/data.parquet", r.run_prefix)))
}

const DT: DataType = DataType::Datetime(TimeUnit::Microseconds, None);

#[tokio::test(flavor = "multi_thread")]
async fn valid_columns_read_exactly_as_the_reader_read_them() {
    let env = Env::new();
    let files = [
        (
            "shared/t/iso.csv",
            "id,ts,day\n1,2024-01-05T10:11:12,2024-01-05\n2,,\n3,1969-12-31T23:59:59.999999,1969-12-31\n4,2024-02-29T00:00:00.5,2024-02-29\n",
        ),
        (
            "shared/t/space.csv",
            "id,ts,day\n1,2024-01-05 10:11,05.01.2024\n2,2024-12-31 23:59,31.12.2024\n",
        ),
        (
            "shared/t/dateonly.csv",
            "id,ts,day\n1,2024-01-05,2024/01/05\n2,2023-07-01,2023/07/01\n",
        ),
        (
            "shared/t/dmy.csv",
            "id,ts,day\n1,05/01/2024 10:11:12,05-01-2024\n2,31/12/2024 00:00:01,31-12-2024\n",
        ),
        // Two formats in one column: left to the reader, as before.
        (
            "shared/t/mixed.csv",
            "id,ts,day\n1,2024-01-05 10:11,2024-01-05\n2,2024-01-05 10:11:12,2024-01-06\n",
        ),
    ];
    // Whole seconds (read by Polars' fast parser), then a fraction past
    // the sample: that batch is read again with the full format.
    let mut late = String::from("id,ts,day\n");
    for i in 0..1000 {
        late.push_str(&format!(
            "{i},2024-01-{:02}T10:11:12,2024-01-01\n",
            i % 28 + 1
        ));
    }
    late.push_str("1000,2024-03-01T00:00:00.25,2024-03-01\n");
    let files: Vec<(&str, &str)> = files
        .into_iter()
        .chain([("shared/t/late-fraction.csv", late.as_str())])
        .collect();
    for (key, body) in files {
        env.put(key, body);
        let ours =
            read_through_mudrock(&env, key, overrides(&[("ts", "datetime"), ("day", "date")]))
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        let theirs = polars_reads(&env, key, &[("ts", DT), ("day", DataType::Date)]);
        assert_eq!(ours.schema(), theirs.schema(), "{key}");
        assert!(ours.equals_missing(&theirs), "{key}:\n{ours}\n{theirs}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_value_fails_the_node_naming_column_value_row_and_format() {
    let env = Env::new();
    env.put(
        "shared/t/bad.csv",
        "id,ts\n1,2024-01-05T10:11:12\n2,2024-01-06T00:00:00\n3,2024-13-01T00:00:00\n4,2024-01-07T00:00:00\n",
    );
    let e = read_through_mudrock(&env, "shared/t/bad.csv", overrides(&[("ts", "datetime")]))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "shared/t/bad.csv: column \"ts\": value \"2024-13-01T00:00:00\" at row 3 is not a datetime \
         in the format \"%Y-%m-%dT%H:%M:%S%.f\" (inferred from the first rows; set \
         schemaOverrides[0].format to read another)"
    );
    // A value past the sample of the first rows is found as well.
    let mut body = String::from("id,day\n");
    for i in 0..1000 {
        body.push_str(&format!("{i},2024-01-{:02}\n", i % 28 + 1));
    }
    body.push_str("1000,yesterday\n");
    env.put("shared/t/late.csv", &body);
    let e = read_through_mudrock(&env, "shared/t/late.csv", overrides(&[("day", "date")]))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "shared/t/late.csv: column \"day\": value \"yesterday\" at row 1001 is not a date in the \
         format \"%Y-%m-%d\" (inferred from the first rows; set schemaOverrides[0].format to read another)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_given_format_reads_what_no_candidate_does() {
    let env = Env::new();
    env.put(
        "shared/t/us.csv",
        "id,ts\n1,Jan 05 2024 10:11\n2,Dec 31 2024 23:59\n",
    );
    let ovs = json!([{"name": "ts", "dtype": "datetime", "format": "%b %d %Y %H:%M"}]);
    let df = read_through_mudrock(&env, "shared/t/us.csv", ovs.clone())
        .await
        .unwrap();
    let ts = df.column("ts").unwrap();
    assert_eq!(ts.dtype(), &DT);
    assert_eq!(
        ts.get(1).unwrap().to_string(),
        "2024-12-31 23:59:00",
        "{df}"
    );
    // Without it, the reader's own parsing fails the node, as before.
    let e = read_through_mudrock(&env, "shared/t/us.csv", overrides(&[("ts", "datetime")]))
        .await
        .unwrap_err();
    assert!(e.starts_with("shared/t/us.csv: "), "{e}");
    // And with it, a value it does not read is named with the given format.
    env.put(
        "shared/t/us2.csv",
        "id,ts\n1,Jan 05 2024 10:11\n2,2024-12-31\n",
    );
    let e = read_through_mudrock(&env, "shared/t/us2.csv", ovs)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "shared/t/us2.csv: column \"ts\": value \"2024-12-31\" at row 2 is not a datetime in the \
         format \"%b %d %Y %H:%M\" (given in schemaOverrides[0].format)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn date_trunc_runs_natively_on_dates_and_datetimes() {
    let env = Env::new();
    env.put(
        "shared/t/ev.csv",
        "id,ts\n1,2024-05-15T10:11:12\n2,2024-05-16T08:00:00\n3,2024-08-01T00:00:00\n",
    );
    let d = doc(
        "trunc",
        vec![
            json!({"id": "ev", "nodeType": "ingestion", "config": {"source": "shared/t/ev.csv",
                   "options": {"schemaOverrides": [{"name": "ts", "dtype": "datetime"}]}}}),
            op(
                "d",
                json!({"operator": "derive", "columns": [
                    {"name": "q", "expr": "date_trunc('quarter', ts)"},
                    {"name": "w", "expr": "date_trunc('week', CAST(ts AS DATE))"},
                    {"name": "h", "expr": "date_trunc('hour', ts)"}
                ]}),
                &["ev"],
            ),
            output("out", "d"),
        ],
        vec![],
    );
    let r = env.run(&d).await;
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
    let df = env.parquet(&format!("{}outputs/out/data.parquet", r.run_prefix));
    let show = |c: &str, i: usize| df.column(c).unwrap().get(i).unwrap().to_string();
    assert_eq!(show("q", 0), "2024-04-01 00:00:00");
    assert_eq!(show("q", 2), "2024-07-01 00:00:00");
    // 2024-05-15 is a Wednesday: its week starts on Monday the 13th.
    assert_eq!(show("w", 1), "2024-05-13 00:00:00");
    assert_eq!(show("h", 0), "2024-05-15 10:00:00");
    assert_eq!(node(&r.meta, "d").status, NodeStatus::Succeeded);
}
