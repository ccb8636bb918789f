//! Reading a run's outputs back, for the API and inspection: the first
//! rows as JSON with every text cell capped, and Parquet turned into CSV on
//! Polars' streaming engine (bounded memory whatever the size). Blocking:
//! call from a blocking thread.

use std::path::Path;

use polars::prelude::*;

/// Longest text cell a preview returns; longer ones are cut and end in `…`.
pub const MAX_PREVIEW_CELL_CHARS: usize = 1_000;

/// The first `rows` rows of a Parquet file as a JSON array of objects.
pub fn preview(parquet: &Path, rows: usize) -> Result<serde_json::Value, String> {
    let mut lf = crate::parquet_scan::scan(parquet)
        .map_err(|e| e.to_string())?
        .limit(rows as IdxSize);
    let schema = lf.collect_schema().map_err(|e| e.to_string())?;
    let capped: Vec<Expr> = schema
        .iter()
        .map(|(name, dtype)| {
            let c = col(name.clone());
            if dtype == &DataType::String {
                let long = c
                    .clone()
                    .str()
                    .len_chars()
                    .gt(lit(MAX_PREVIEW_CELL_CHARS as u32));
                when(long)
                    .then(
                        c.clone()
                            .str()
                            .slice(lit(0), lit(MAX_PREVIEW_CELL_CHARS as u64))
                            + lit("…"),
                    )
                    .otherwise(c)
                    .alias(name.clone())
            } else {
                c
            }
        })
        .collect();
    let mut df = lf.select(capped).collect().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    JsonWriter::new(&mut out)
        .with_json_format(JsonFormat::Json)
        .finish(&mut df)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&out).map_err(|e| e.to_string())
}

/// Writes a Parquet file's rows as CSV (with a header) to `csv`.
pub fn parquet_to_csv(parquet: &Path, csv: &Path) -> Result<(), String> {
    let lf = crate::parquet_scan::scan(parquet).map_err(|e| e.to_string())?;
    let target = SinkTarget::Path(PlRefPath::new(csv.to_string_lossy().as_ref()));
    lf.sink(
        SinkDestination::File { target },
        FileWriteFormat::Csv(CsvWriterOptions::default()),
        UnifiedSinkArgs::default(),
    )
    .and_then(|lf| lf.collect_with_engine(Engine::Streaming))
    .map(|_| ())
    .map_err(|e| e.to_string())
}
