//! The floor's temporal pipelines: `timestamps` (CSV with ISO timestamps
//! read as text and converted with their format, truncated to the month,
//! aggregated) and `dates` (date-heavy Parquet: filter on dates, truncate
//! to the week, aggregate).

use std::path::Path;

use polars::prelude::*;

pub fn timestamps(data: &Path, out: &Path, engine: Engine) -> PolarsResult<()> {
    let path = data.join("events.csv");
    let mut text = Schema::default();
    text.with_column("ts".into(), DataType::String);
    let df = LazyCsvReader::new(PlRefPath::new(path.to_string_lossy().as_ref()))
        .with_has_header(true)
        .with_dtype_overwrite(Some(std::sync::Arc::new(text)))
        .finish()?
        .with_column(col("ts").str().to_datetime(
            Some(TimeUnit::Microseconds),
            None,
            StrptimeOptions {
                format: Some("%Y-%m-%dT%H:%M:%S".into()),
                strict: true,
                exact: true,
                cache: true,
            },
            lit("raise"),
        ))
        .filter(
            col("kind")
                .neq(lit("refund"))
                .and(col("amount").gt_eq(lit(1))),
        )
        .with_column(col("ts").dt().truncate(lit("1mo")).alias("month"))
        .group_by([col("month"), col("kind")])
        .agg([col("amount").sum().alias("revenue"), len().alias("events")])
        .sort(["month", "kind"], Default::default())
        .collect_with_engine(engine)?
        .unwrap_single();
    super::write(out, "out", df)
}

pub fn dates(data: &Path, out: &Path, engine: Engine) -> PolarsResult<()> {
    let path = data.join("events.parquet");
    let df = LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        Default::default(),
    )?
    .filter(
        col("shipped")
            .is_not_null()
            .and(col("day").gt_eq(lit("2024-07-01").str().to_date(Default::default()))),
    )
    .with_columns([
        col("day")
            .cast(DataType::Datetime(TimeUnit::Microseconds, None))
            .dt()
            .truncate(lit("1w"))
            .alias("week"),
        col("ts").dt().hour().alias("hour"),
    ])
    .group_by([col("week"), col("hour")])
    .agg([
        col("amount").sum().alias("revenue"),
        len().alias("events"),
        col("shipped").max().alias("last_shipped"),
        col("ts").min().alias("first_ts"),
    ])
    .sort(["week", "hour"], Default::default())
    .collect_with_engine(engine)?
    .unwrap_single();
    super::write(out, "out", df)
}
