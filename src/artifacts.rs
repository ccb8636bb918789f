//! The files a run leaves in the bucket, and how Parquet gets written.
//!
//! Layout and field names follow the storage spec: every JSON file is
//! camelCase, pretty-printed, with a stable key order (struct order here).
//! Ordering of writes (data, then schema, then metadata; outputs, then
//! lineage, then the run's metadata last) is the engine's job.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use parquet::file::metadata::ParquetMetaData;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pipeline::{Compression, Format};
use crate::store::ObjectMeta;

/// `schema.json`: ordered columns plus Arrow's own schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaJson {
    pub columns: Vec<ColumnJson>,
    /// The schema as arrow-rs reads it back from `data.parquet`, in
    /// arrow-schema's serde form.
    pub arrow: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ColumnJson {
    pub name: String,
    pub dtype: String,
    pub nullable: bool,
    /// Nulls actually present in this output.
    pub null_count: u64,
}

/// A copy written to `exports/` by an output node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    pub key: String,
    pub format: String,
    pub bytes: u64,
    pub blake3: String,
    /// File name inside the cache entry that holds the same bytes.
    pub cache_file: String,
}

/// A dataframe's `metadata.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataframeMeta {
    pub dataframe_id: String,
    pub node_id: String,
    pub run_id: String,
    pub rows: u64,
    pub bytes: u64,
    pub blake3: String,
    pub cache_key: Option<String>,
    pub created_at: String,
    pub compression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportRecord>,
}

/// Per-node record in the run's `metadata.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub node_id: String,
    pub name: String,
    pub node_type: String,
    pub operator: Option<String>,
    pub status: NodeStatus,
    /// Skip reason (`condition_false`, `upstream_failed`, ...) or failure kind.
    pub reason: Option<String>,
    pub cache_key: Option<String>,
    pub cache_hit: bool,
    pub started_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// None where the node was fused into a downstream node's plan and
    /// never materialised on its own.
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub error: Option<String>,
    /// Set on failures: whether an error edge handled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled: Option<bool>,
}

/// A node's state; the PostgreSQL enum `node_status`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "node_status", rename_all = "lowercase")]
pub enum NodeStatus {
    Pending,
    Running,
    Succeeded,
    Cached,
    Failed,
    Skipped,
}

impl NodeStatus {
    pub fn name(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Running => "running",
            NodeStatus::Succeeded => "succeeded",
            NodeStatus::Cached => "cached",
            NodeStatus::Failed => "failed",
            NodeStatus::Skipped => "skipped",
        }
    }

    /// Whether downstream nodes get data from it.
    pub fn has_data(self) -> bool {
        matches!(self, NodeStatus::Succeeded | NodeStatus::Cached)
    }
}

/// A run's state; the PostgreSQL enum `run_status`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "run_status", rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the run is over (succeeded, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// What started a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// `api` | `schedule` | `cli` | `retry`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    pub host: String,
    pub version: String,
}

/// A failure that an error edge handled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HandledFailure {
    pub node_id: String,
    pub error_kind: String,
    pub message: String,
    pub handled_by: Vec<String>,
}

/// The run's `metadata.json`: written last, the commit marker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMeta {
    pub run_id: String,
    pub pipeline_id: String,
    pub project_id: String,
    pub pipeline_version: Option<String>,
    pub definition_hash: String,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub attempt: u32,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub worker: WorkerInfo,
    pub engine: BTreeMap<String, String>,
    pub error: Option<String>,
    pub handled_failures: Vec<HandledFailure>,
    pub nodes: Vec<NodeRecord>,
    pub definition: Value,
}

/// `lineage.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lineage {
    pub run_id: String,
    pub pipeline_id: String,
    pub edges: Vec<LineageEdge>,
    pub sources: Vec<LineageSource>,
    pub outputs: Vec<LineageOutput>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LineageEdge {
    pub edge_id: String,
    pub source: String,
    pub target: String,
    pub edge_type: String,
    pub source_cache_key: Option<String>,
    pub target_cache_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LineageSource {
    pub node_id: String,
    #[serde(flatten)]
    pub object: SourceObject,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LineageOutput {
    pub dataframe_id: String,
    pub path: String,
    pub rows: u64,
    pub blake3: String,
}

/// Pretty JSON with a trailing newline.
pub fn to_json<T: Serialize>(v: &T) -> bytes::Bytes {
    let mut out = serde_json::to_vec_pretty(v).expect("artifact types serialise");
    out.push(b'\n');
    bytes::Bytes::from(out)
}

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
    let scan = LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        ScanArgsParquet::default(),
    )
    .map_err(|e| e.to_string())?;
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

/// A source object as hashed for the key and recorded in lineage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SourceObject {
    pub key: String,
    pub size: u64,
    pub version: String,
    pub blake3: String,
}

impl SourceObject {
    /// The object as hashed: the version the run's keys cover.
    pub fn as_hashed(&self) -> ObjectMeta {
        ObjectMeta {
            key: self.key.clone(),
            size: self.size,
            version: self.version.clone(),
        }
    }
}
