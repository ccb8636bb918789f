//! The aggregate's fast paths and their way back. Float sums: exact
//! whatever order rows arrive in (partitioned, so the group-by runs on
//! Polars' fast path), and Polars' own sum in one unpartitioned query when
//! a value is off the exact grid; both the same run to run. Group keys: a
//! datetime and a small integer packed into one key, and grouped as they
//! are when a datetime is beyond the packing's range.

mod common;

use common::*;
use mudrock::model::RunStatus;
use serde_json::json;

fn pipeline() -> serde_json::Value {
    doc(
        "sums",
        vec![
            ingest("src", "shared/s/v.csv"),
            op(
                "by_g",
                json!({"operator": "aggregate", "by": ["g"], "aggregations": [
                    {"name": "total", "expr": "sum(v)"},
                    {"name": "mean", "expr": "avg(v)"},
                    {"name": "n", "expr": "count(*)"}
                ]}),
                &["src"],
            ),
            output("out", "by_g"),
        ],
        vec![],
    )
}

/// `total` and `mean` of group `a` after a run over `csv`, and the
/// output's bytes.
async fn sums(csv: &str) -> (f64, f64, Vec<u8>) {
    let env = Env::new();
    env.put("shared/s/v.csv", csv);
    let r = env.run(&pipeline()).await;
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
    let key = format!("{}outputs/out/data.parquet", r.run_prefix);
    let df = env.parquet(&key);
    let get = |c: &str| df.column(c).unwrap().f64().unwrap().get(0).unwrap();
    (get("total"), get("mean"), env.read(&key))
}

#[tokio::test(flavor = "multi_thread")]
async fn float_sums_are_exact_and_the_same_run_to_run() {
    let csv = "g,v\na,0.1\na,0.2\nb,5\na,0.3\n";
    let (total, mean, bytes) = sums(csv).await;
    // Exactly 0.1 + 0.2 + 0.3 of their binary values, rounded once: 0.6.
    // Added in row order they give 0.6000000000000001.
    assert_eq!(total, 0.6);
    assert_eq!(mean, 0.6 / 3.0);
    let (_, _, again) = sums(csv).await;
    assert!(bytes == again, "the output's bytes changed between runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn values_off_the_grid_are_summed_in_one_unpartitioned_query() {
    // 1e-30 has bits far below 2^-64: the exact sum cannot hold it, the
    // unit computes again with Polars' own (fixed-order) sum, and the
    // tiny values are not truncated away.
    let (total, mean, _) = sums("g,v\na,1e-30\na,2e-30\nb,5\na,4e-30\n").await;
    assert!((total / 7e-30 - 1.0).abs() < 1e-12, "{total}");
    assert!((mean / (7e-30 / 3.0) - 1.0).abs() < 1e-12, "{mean}");
    // Same for a value too large for the grid.
    let (total, _, _) = sums("g,v\na,9007199254740992\na,0.5\nb,5\n").await;
    assert!(
        (total / 9_007_199_254_740_992.5 - 1.0).abs() < 1e-12,
        "{total}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_streams_the_aggregate_and_gives_the_in_memory_values() {
    use mudrock::engine::Streaming;
    // Enough rows for several morsels and partitions; magnitudes mixed so
    // that any order of additions would show in the last bits.
    let mut csv = String::from("g,v\n");
    for i in 0..60_000u32 {
        let v = if i % 3 == 0 {
            (f64::from(i) * 0.37).sin() * 1e9
        } else {
            0.1 + 0.001 * f64::from(i % 1000)
        };
        csv.push_str(&format!("{},{v}\n", i % 11));
    }
    let doc = pipeline();
    let mut outputs = Vec::new();
    for mode in [Streaming::Auto, Streaming::Never, Streaming::Auto] {
        let env = Env::new();
        env.put("shared/s/v.csv", &csv);
        let r = env.run_with(&doc, |o| o.streaming = mode).await;
        assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
        outputs.push(env.parquet(&format!("{}outputs/out/data.parquet", r.run_prefix)));
    }
    assert_eq!(outputs[0].height(), 11);
    for o in &outputs[1..] {
        assert!(o.equals_missing(&outputs[0]), "{o}\n{}", outputs[0]);
    }
}

/// `week, hour` groups over timestamps: packed into one key, and once more
/// with a timestamp in 2300 (beyond the ±142 years a µs datetime keeps
/// beside an Int8), where the unit is built again unpacked. Both give the
/// groups the one-query form gives.
#[tokio::test(flavor = "multi_thread")]
async fn datetime_keys_pack_and_fall_back_beyond_their_range() {
    for far in ["2024-03-05 11:00:00", "2300-01-01 11:00:00"] {
        let env = Env::new();
        let csv = format!(
            "ts,v\n2024-03-04 10:00:00,1\n2024-03-05 10:30:00,2\n\
             2024-03-12 10:00:00,4\n{far},8\n,16\n"
        );
        env.put("shared/t.csv", &csv);
        let d = doc(
            "keys",
            vec![
                json!({"id": "src", "nodeType": "ingestion", "config": {"source": "shared/t.csv",
                       "options": {"schemaOverrides": [{"name": "ts", "dtype": "datetime"}]}}}),
                op(
                    "parts",
                    json!({"operator": "derive", "columns": [
                        {"name": "week", "expr": "date_trunc('week', ts)"},
                        {"name": "hour", "expr": "date_part('hour', ts)"}
                    ]}),
                    &["src"],
                ),
                op(
                    "by_week",
                    json!({"operator": "aggregate", "by": ["week", "hour"], "aggregations": [
                        {"name": "total", "expr": "sum(v)"}
                    ]}),
                    &["parts"],
                ),
                output("out", "by_week"),
            ],
            vec![],
        );
        let r = env.run(&d).await;
        assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
        let df = env.parquet(&format!("{}outputs/out/data.parquet", r.run_prefix));
        let col = |c: &str| {
            df.column(c)
                .unwrap()
                .to_physical_repr()
                .cast(&polars::prelude::DataType::Int64)
                .unwrap()
        };
        let (w, h, t) = (col("week"), col("hour"), col("total"));
        let mut got: Vec<(Option<i64>, Option<i64>, Option<i64>)> = (0..df.height())
            .map(|i| {
                (
                    w.i64().unwrap().get(i),
                    h.i64().unwrap().get(i),
                    t.i64().unwrap().get(i),
                )
            })
            .collect();
        got.sort();
        // Monday of the week holding `day`, in µs since 1970.
        let monday = |day: &str| {
            let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
            let m = d.week(chrono::Weekday::Mon).first_day();
            Some(m.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() * 1_000_000)
        };
        let mut want = vec![
            (None, None, Some(16)),
            (monday("2024-03-04"), Some(10), Some(3)),
            (monday("2024-03-12"), Some(10), Some(4)),
            (monday(&far[..10]), Some(11), Some(8)),
        ];
        want.sort();
        assert_eq!(got, want, "{far}\n{df}");
    }
}
