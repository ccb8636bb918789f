//! How a run's data files get written: Parquet outputs (in memory or
//! streamed) with their `schema.json` facts, and export copies.
//!
//! The records themselves are plain data in [`crate::model::records`];
//! the order of writes (data, then schema, then metadata; outputs, then
//! lineage, then the run's metadata last) is the engine's job.

use std::fs::File;
use std::path::Path;

use parquet::file::metadata::ParquetMetaData;
use polars::prelude::*;

use crate::model::pipeline::{Compression, Format};
use crate::model::records::{ColumnJson, SchemaJson};

pub fn parquet_compression(c: Compression) -> ParquetCompression {
    match c {
        Compression::Zstd => ParquetCompression::Zstd(None),
        Compression::Snappy => ParquetCompression::Snappy,
        Compression::Lz4 => ParquetCompression::Lz4Raw,
        Compression::Gzip => ParquetCompression::Gzip(None),
        Compression::Brotli => ParquetCompression::Brotli(None),
        Compression::Uncompressed => ParquetCompression::Uncompressed,
    }
}

/// A Parquet file written to local scratch, ready to upload.
#[derive(Debug, Clone)]
pub struct WrittenParquet {
    pub bytes: u64,
    pub blake3: String,
    pub schema: SchemaJson,
}

/// Writes `df` as Parquet to `path` (Polars writes row groups in parallel),
/// then reads the footer back with arrow-rs for `schema.json`.
pub fn write_parquet(
    df: &mut DataFrame,
    path: &Path,
    compression: Compression,
) -> Result<WrittenParquet, String> {
    // A new file, never a rewrite: an earlier attempt's file may already be
    // hard-linked into the store, which must not change in place.
    let _ = std::fs::remove_file(path);
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ParquetWriter::new(file)
        .with_compression(parquet_compression(compression))
        .set_parallel(true)
        .finish(df)
        .map_err(|e| format!("writing parquet: {e}"))?;
    let nulls: Vec<u64> = df.columns().iter().map(|c| c.null_count() as u64).collect();
    let (written, _) = parquet_facts(path, df.schema(), |_| Ok(nulls))?;
    Ok(written)
}

/// What the streaming engine wrote: the file's facts and its row count.
#[derive(Debug)]
pub enum Sunk {
    Written(WrittenParquet, u64),
    /// The query failed (a data error, as `collect` would have).
    Query(PolarsError),
    /// The file could not be read back.
    File(String),
}

/// Streams `lf` into a Parquet file at `path` on Polars' streaming engine,
/// never holding the whole result in memory. Row and null counts are read
/// back from the file: from its footer's statistics, else by a second,
/// streaming pass that counts nulls.
pub fn sink_parquet(mut lf: LazyFrame, path: &Path, compression: Compression) -> Sunk {
    let _ = std::fs::remove_file(path);
    let schema = match lf.collect_schema() {
        Ok(s) => s,
        Err(e) => return Sunk::Query(e),
    };
    let options = ParquetWriteOptions {
        compression: parquet_compression(compression),
        ..Default::default()
    };
    let target = SinkTarget::Path(PlRefPath::new(path.to_string_lossy().as_ref()));
    let sunk = lf
        .sink(
            SinkDestination::File { target },
            FileWriteFormat::Parquet(std::sync::Arc::new(options)),
            UnifiedSinkArgs::default(),
        )
        .and_then(|lf| lf.collect_with_engine(Engine::Streaming));
    if let Err(e) = sunk {
        let _ = std::fs::remove_file(path);
        return Sunk::Query(e);
    }
    let nulls = |md: &ParquetMetaData| match footer_null_counts(md, &schema) {
        Some(nulls) => Ok(nulls),
        None => scanned_null_counts(path),
    };
    match parquet_facts(path, &schema, nulls) {
        Ok((w, rows)) => Sunk::Written(w, rows),
        Err(e) => Sunk::File(e),
    }
}

/// Null counts per column from the row groups' statistics (no data read),
/// when every column is a flat leaf with a null count in every row group.
fn footer_null_counts(md: &ParquetMetaData, schema: &Schema) -> Option<Vec<u64>> {
    let leaves = md.file_metadata().schema_descr().columns();
    if leaves.len() != schema.len() {
        return None;
    }
    let mut nulls = vec![0u64; leaves.len()];
    for (i, (leaf, (name, _))) in leaves.iter().zip(schema.iter()).enumerate() {
        let parts = leaf.path().parts();
        if parts.len() != 1 || parts[0] != name.as_str() {
            return None;
        }
        for rg in md.row_groups() {
            nulls[i] += rg.column(i).statistics()?.null_count_opt()?;
        }
    }
    Some(nulls)
}

/// Null counts per column by a streaming pass over the file.
fn scanned_null_counts(path: &Path) -> Result<Vec<u64>, String> {
    let scan = crate::parquet_scan::scan(path).map_err(|e| e.to_string())?;
    let counts = scan
        .select([all().as_expr().null_count()])
        .collect_with_engine(Engine::Streaming)
        .map_err(|e| format!("reading back null counts: {e}"))?
        .unwrap_single();
    Ok(counts
        .columns()
        .iter()
        .map(|c| {
            c.cast(&DataType::UInt64)
                .ok()
                .and_then(|c| c.u64().ok().and_then(|ca| ca.get(0)))
                .unwrap_or(0)
        })
        .collect())
}

/// Size, blake3 and `schema.json` of a written Parquet file, and its row
/// count from the footer. Names and types come from Polars' `schema`,
/// nullability and the Arrow schema from the footer (read once, with
/// arrow-rs), null counts from `nulls` (which may use that footer).
fn parquet_facts(
    path: &Path,
    schema: &Schema,
    nulls: impl FnOnce(&ParquetMetaData) -> Result<Vec<u64>, String>,
) -> Result<(WrittenParquet, u64), String> {
    let bytes = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    let blake3 = crate::hash::hash_file(path).map_err(|e| e.to_string())?;
    let file = File::open(path).map_err(|e| e.to_string())?;
    let meta = parquet::arrow::arrow_reader::ArrowReaderMetadata::load(&file, Default::default())
        .map_err(|e| format!("reading back parquet footer: {e}"))?;
    let rows = meta.metadata().file_metadata().num_rows() as u64;
    let nulls = nulls(meta.metadata())?;
    let arrow = meta.schema();
    let columns = schema
        .iter()
        .zip(nulls.iter().chain(std::iter::repeat(&0)))
        .map(|((name, dtype), nulls)| ColumnJson {
            name: name.to_string(),
            dtype: mudrock_operators::dtype::name(dtype),
            nullable: arrow
                .field_with_name(name)
                .map(|f| f.is_nullable())
                .unwrap_or(true),
            null_count: *nulls,
        })
        .collect();
    let schema = SchemaJson {
        format_version: crate::model::FORMAT_VERSION,
        columns,
        arrow: serde_json::to_value(arrow.as_ref()).map_err(|e| e.to_string())?,
    };
    Ok((
        WrittenParquet {
            bytes,
            blake3,
            schema,
        },
        rows,
    ))
}

/// Columns of a schema without data (for `plan`).
pub fn columns_of(schema: &Schema) -> Vec<ColumnJson> {
    schema
        .iter()
        .map(|(n, dt)| ColumnJson {
            name: n.to_string(),
            dtype: mudrock_operators::dtype::name(dt),
            nullable: true,
            null_count: 0,
        })
        .collect()
}

/// Writes an export copy in the format its key's extension names.
pub fn write_export(
    df: &mut DataFrame,
    path: &Path,
    format: Format,
    compression: Compression,
) -> Result<u64, String> {
    let _ = std::fs::remove_file(path);
    let mut file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let r = match format {
        Format::Csv => CsvWriter::new(&mut file).include_header(true).finish(df),
        Format::Parquet => ParquetWriter::new(&mut file)
            .with_compression(parquet_compression(compression))
            .finish(df)
            .map(|_| ()),
        Format::Json => JsonWriter::new(&mut file)
            .with_json_format(JsonFormat::Json)
            .finish(df),
        Format::Ndjson => JsonWriter::new(&mut file)
            .with_json_format(JsonFormat::JsonLines)
            .finish(df),
    };
    r.map_err(|e| format!("writing {} export: {e}", format.name()))?;
    Ok(std::fs::metadata(path).map_err(|e| e.to_string())?.len())
}
