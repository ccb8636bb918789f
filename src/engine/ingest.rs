//! Ingestion: resolving a node's source keys and globs to objects, and
//! scanning them with Polars.
//!
//! Sources are always scanned from local files, so Polars can push filters
//! and projections into the reader and stream what does not fit in memory:
//! on the local store the objects themselves, on S3 copies streamed into
//! the run's scratch directory while they are hashed ([`SourceFiles`]).

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use globset::GlobBuilder;
use polars::prelude::*;
use tokio::sync::OnceCell;

use crate::error::{NodeError, NodeErrorKind};
use crate::model::pipeline::{Format, IngestionConfig};
use crate::store::{Downloaded, ObjectMeta, ObjectStore, StoreError};

fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '[', '{'])
}

/// Every object a source names, sorted by key, without duplicates; at most
/// `max_matches` (`engine.max_glob_matches`) in all.
pub async fn resolve(
    store: &dyn ObjectStore,
    bucket: &str,
    cfg: &IngestionConfig,
    max_matches: usize,
) -> Result<Vec<ObjectMeta>, NodeError> {
    let mut out: Vec<ObjectMeta> = Vec::new();
    for key in cfg.source.keys() {
        if is_glob(key) {
            let glob = GlobBuilder::new(key)
                .literal_separator(true)
                .build()
                .map_err(|e| {
                    NodeError::new(
                        NodeErrorKind::Config,
                        format!("invalid glob \"{key}\": {}", e.kind()),
                    )
                })?
                .compile_matcher();
            let literal_end = key.find(['*', '?', '[', '{']).unwrap_or(key.len());
            let prefix = &key[..literal_end];
            let listed = store
                .list(bucket, prefix)
                .await
                .map_err(NodeError::storage)?;
            let before = out.len();
            out.extend(listed.into_iter().filter(|m| glob.is_match(&m.key)));
            if out.len() == before {
                return Err(NodeError::new(
                    NodeErrorKind::Data,
                    format!("no object matches \"{key}\""),
                ));
            }
            if out.len() > max_matches {
                return Err(NodeError::new(
                    NodeErrorKind::Limit,
                    mudrock_operators::limits::message(
                        &format!("objects matched by \"{key}\""),
                        out.len(),
                        "engine.max_glob_matches",
                        max_matches,
                    ),
                ));
            }
        } else {
            match store.head(bucket, key).await {
                Ok(m) => out.push(m),
                Err(StoreError::NotFound { .. }) => {
                    return Err(NodeError::new(
                        NodeErrorKind::Data,
                        format!("source \"{key}\" not found in bucket {bucket}"),
                    ));
                }
                Err(e) => return Err(NodeError::storage(e)),
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

/// Where the bytes of the sources are.
#[derive(Clone)]
pub enum SourceData {
    Paths(Vec<PathBuf>),
    /// Only the schema (read from Parquet footers): enough to plan.
    Schema(SchemaRef),
}

impl SourceData {
    fn len(&self) -> usize {
        match self {
            SourceData::Paths(p) => p.len(),
            SourceData::Schema(_) => 1,
        }
    }

    /// Only the i-th source (to find which file is malformed).
    pub fn single(&self, i: usize) -> SourceData {
        match self {
            SourceData::Paths(p) => SourceData::Paths(vec![p[i].clone()]),
            SourceData::Schema(s) => SourceData::Schema(s.clone()),
        }
    }

    fn sources(&self) -> ScanSources {
        match self {
            SourceData::Paths(p) => {
                let paths: Vec<PlRefPath> = p
                    .iter()
                    .map(|p| PlRefPath::new(p.to_string_lossy().as_ref()))
                    .collect();
                ScanSources::Paths(paths.into())
            }
            SourceData::Schema(_) => ScanSources::Buffers(Arc::from(Vec::new())),
        }
    }

    fn read_all(&self) -> std::io::Result<Vec<Vec<u8>>> {
        match self {
            SourceData::Paths(p) => p.iter().map(std::fs::read).collect(),
            SourceData::Schema(_) => Ok(Vec::new()),
        }
    }
}

/// Remote sources copied into the run's scratch directory, once per run.
///
/// On a store without local paths (S3), a source is streamed into a file
/// while it is hashed; the unit that reads it scans that file. So hashing
/// and scanning read the same bytes, the object is downloaded once, never
/// held whole in memory, and Polars scans it in place with pushdown and,
/// on the streaming engine, bounded memory. On the local store the object
/// itself is the file.
pub struct SourceFiles {
    dir: PathBuf,
    files: Mutex<HashMap<String, Arc<OnceCell<(Downloaded, PathBuf)>>>>,
    /// Every download is charged to the run's scratch budget first.
    budget: Arc<super::scratch::ScratchBudget>,
}

impl SourceFiles {
    /// Files go under `dir` (created on the first download).
    pub fn new(dir: PathBuf, budget: Arc<super::scratch::ScratchBudget>) -> Self {
        SourceFiles {
            dir,
            files: Mutex::new(HashMap::new()),
            budget,
        }
    }

    /// The object's file in the scratch directory, downloaded (and
    /// hashed) the first time any caller asks for it.
    async fn download(
        &self,
        store: &dyn ObjectStore,
        bucket: &str,
        meta: &ObjectMeta,
    ) -> Result<(Downloaded, PathBuf), StoreError> {
        let key = meta.key.as_str();
        let (cell, n) = {
            let mut files = self.files.lock().unwrap();
            let n = files.len();
            (files.entry(key.to_string()).or_default().clone(), n)
        };
        let got = cell
            .get_or_try_init(|| async {
                // Charged at the size listed: a source is never larger
                // than that and still the version the run keyed.
                self.budget
                    .charge(meta.size, &format!("source \"{key}\""))
                    .map_err(StoreError::Other)?;
                tokio::fs::create_dir_all(&self.dir).await.map_err(|e| {
                    StoreError::Other(format!("scratch dir {}: {e}", self.dir.display()))
                })?;
                // A counter keeps names apart; the object's own name stays
                // at the end for whoever looks in the scratch directory.
                let name = key.rsplit('/').next().unwrap_or("source");
                let path = self.dir.join(format!("{n:04}-{name}"));
                let d = crate::store::download(store, bucket, key, Some(&path)).await?;
                tracing::debug!(key, bytes = d.meta.size, path = %path.display(), "source downloaded");
                Ok::<_, StoreError>((d, path))
            })
            .await?;
        Ok(got.clone())
    }

    /// Hashes a source: in place on the local store, else while
    /// downloading it. Returns the object as read and its blake3.
    pub async fn hash(
        &self,
        store: &dyn ObjectStore,
        bucket: &str,
        meta: &ObjectMeta,
    ) -> Result<(ObjectMeta, String), StoreError> {
        if store.local_path(bucket, &meta.key).is_some() {
            let h = crate::cache::hash_object(store, bucket, &meta.key).await?;
            return Ok((meta.clone(), h));
        }
        let (d, _) = self.download(store, bucket, meta).await?;
        Ok((d.meta, d.blake3))
    }

    /// A local file with the source's bytes. Fails when the object read
    /// is not the version the run's cache keys were computed from (it was
    /// replaced during the run): its results would be filed under the old
    /// content's key. Retrying the unit cannot help; a new run can.
    pub async fn path(
        &self,
        store: &dyn ObjectStore,
        bucket: &str,
        hashed: &ObjectMeta,
    ) -> Result<PathBuf, NodeError> {
        if let Some(p) = store.local_path(bucket, &hashed.key) {
            return Ok(p);
        }
        let (d, path) = self
            .download(store, bucket, hashed)
            .await
            .map_err(NodeError::storage)?;
        if d.meta.version != hashed.version {
            return Err(NodeError::new(
                NodeErrorKind::Storage,
                format!(
                    "source \"{}\" changed while the run read it (version {} became {}); run again to use the new version",
                    hashed.key, hashed.version, d.meta.version
                ),
            ));
        }
        Ok(path)
    }
}

/// Local files with the sources' data: the objects themselves on the
/// local store, else copies in the run's scratch directory. `objects` are
/// as hashed (their version is the one the keys cover).
pub async fn fetch(
    store: &dyn ObjectStore,
    bucket: &str,
    objects: &[ObjectMeta],
    files: &SourceFiles,
) -> Result<SourceData, NodeError> {
    let mut paths = Vec::with_capacity(objects.len());
    for o in objects {
        paths.push(files.path(store, bucket, o).await?);
    }
    Ok(SourceData::Paths(paths))
}

fn overrides(cfg: &IngestionConfig) -> Option<Schema> {
    cfg.options.schema_overrides.as_ref().map(|ovs| {
        ovs.iter()
            .filter_map(|o| {
                mudrock_operators::dtype::parse(&o.dtype)
                    .map(|dt| Field::new(o.name.as_str().into(), dt))
            })
            .collect()
    })
}

/// A lazy scan over the sources in the node's format.
pub fn scan(cfg: &IngestionConfig, data: &SourceData) -> PolarsResult<LazyFrame> {
    if let SourceData::Schema(s) = data {
        let lf = DataFrame::empty_with_schema(s).lazy();
        return Ok(match overrides(cfg) {
            Some(o) => lf.with_columns(
                o.iter()
                    .map(|(n, dt)| col(n.clone()).strict_cast(dt.clone()))
                    .collect::<Vec<_>>(),
            ),
            None => lf,
        });
    }
    let format = cfg.effective_format().unwrap_or(Format::Csv);
    let o = &cfg.options;
    let overrides = overrides(cfg);
    let lf = match format {
        Format::Csv => {
            let mut r = LazyCsvReader::new_with_sources(data.sources())
                .with_has_header(o.has_header.unwrap_or(true))
                .with_separator(
                    o.delimiter
                        .as_deref()
                        .map(|d| d.as_bytes()[0])
                        .unwrap_or(b','),
                )
                .with_try_parse_dates(o.try_parse_dates.unwrap_or(false))
                .with_skip_rows(o.skip_rows.unwrap_or(0));
            if let Some(q) = &o.quote_char {
                r = r.with_quote_char(Some(q.as_bytes()[0]));
            }
            if let Some(c) = &o.comment_prefix {
                r = r.with_comment_prefix(Some(c.as_str().into()));
            }
            if let Some(nv) = &o.null_values {
                r = r.with_null_values(Some(NullValues::AllColumns(
                    nv.iter().map(|s| s.as_str().into()).collect(),
                )));
            }
            if let Some(n) = o.infer_schema_length {
                r = r.with_infer_schema_length(Some(n));
            }
            if let Some(s) = &overrides {
                r = r.with_dtype_overwrite(Some(Arc::new(s.clone())));
            }
            return r.finish();
        }
        Format::Parquet => {
            LazyFrame::scan_parquet_sources(data.sources(), ScanArgsParquet::default())?
        }
        Format::Ndjson => {
            let mut r = LazyJsonLineReader::new_with_sources(data.sources());
            if let Some(n) = o.infer_schema_length.and_then(std::num::NonZeroUsize::new) {
                r = r.with_infer_schema_length(Some(n));
            }
            if let Some(s) = &overrides {
                r = r.with_schema_overwrite(Some(Arc::new(s.clone())));
            }
            return r.finish();
        }
        Format::Json => {
            // JSON arrays have no lazy reader: read each file eagerly.
            let mut frames = Vec::with_capacity(data.len());
            for bytes in data
                .read_all()
                .map_err(|e| polars_err!(ComputeError: "{e}"))?
            {
                let mut r = JsonReader::new(Cursor::new(bytes)).with_json_format(JsonFormat::Json);
                if let Some(n) = o.infer_schema_length.and_then(std::num::NonZeroUsize::new) {
                    r = r.infer_schema_len(Some(n));
                }
                frames.push(r.finish()?.lazy());
            }
            if frames.len() == 1 {
                frames.pop().unwrap()
            } else {
                concat_lf_diagonal(frames, UnionArgs::default())?
            }
        }
    };
    // Parquet and JSON carry their own types; overrides become casts.
    Ok(match overrides {
        Some(s) => lf.with_columns(
            s.iter()
                .map(|(n, dt)| col(n.clone()).strict_cast(dt.clone()))
                .collect::<Vec<_>>(),
        ),
        None => lf,
    })
}

/// Which source file breaks a failing scan, for the error message.
pub fn culprit(
    cfg: &IngestionConfig,
    data: &SourceData,
    keys: &[String],
) -> Option<(String, String)> {
    for (i, key) in keys.iter().enumerate().take(data.len()) {
        if let Err(e) = scan(cfg, &data.single(i)).and_then(|lf| lf.collect()) {
            return Some((key.clone(), e.to_string()));
        }
    }
    None
}

/// The schema of a Parquet object from its footer alone: two ranged reads
/// (the 8-byte tail, then the metadata), never the data.
pub async fn parquet_schema(
    store: &dyn ObjectStore,
    bucket: &str,
    meta: &ObjectMeta,
) -> Result<Schema, NodeError> {
    let bad = |m: String| NodeError::new(NodeErrorKind::Data, format!("{}: {m}", meta.key));
    let size = meta.size;
    if size < 12 {
        return Err(bad("not a Parquet file (too small)".into()));
    }
    let tail = store
        .get_range(bucket, &meta.key, size - 8..size)
        .await
        .map_err(NodeError::storage)?;
    if &tail[4..] != b"PAR1" {
        return Err(bad("not a Parquet file (no PAR1 footer)".into()));
    }
    let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if len + 12 > size {
        return Err(bad("corrupt Parquet footer length".into()));
    }
    let footer = store
        .get_range(bucket, &meta.key, size - 8 - len..size - 8)
        .await
        .map_err(NodeError::storage)?;
    let md = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&footer)
        .map_err(|e| bad(e.to_string()))?;
    let fm = md.file_metadata();
    let arrow = parquet::arrow::parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata())
        .map_err(|e| bad(e.to_string()))?;
    arrow
        .fields()
        .iter()
        .map(|f| polars_type(f.data_type()).map(|dt| Field::new(f.name().as_str().into(), dt)))
        .collect::<Option<Schema>>()
        .ok_or_else(|| bad("a column type is not supported for planning".into()))
}

/// Polars' type for an Arrow type, for the types mudrock handles.
fn polars_type(dt: &arrow_schema::DataType) -> Option<DataType> {
    use arrow_schema::{DataType as A, TimeUnit as U};
    let unit = |u: &U| match u {
        U::Second | U::Millisecond => TimeUnit::Milliseconds,
        U::Microsecond => TimeUnit::Microseconds,
        U::Nanosecond => TimeUnit::Nanoseconds,
    };
    Some(match dt {
        A::Boolean => DataType::Boolean,
        A::Int8 => DataType::Int8,
        A::Int16 => DataType::Int16,
        A::Int32 => DataType::Int32,
        A::Int64 => DataType::Int64,
        A::UInt8 => DataType::UInt8,
        A::UInt16 => DataType::UInt16,
        A::UInt32 => DataType::UInt32,
        A::UInt64 => DataType::UInt64,
        A::Float16 | A::Float32 => DataType::Float32,
        A::Float64 => DataType::Float64,
        A::Utf8 | A::LargeUtf8 | A::Utf8View => DataType::String,
        A::Binary | A::LargeBinary | A::BinaryView | A::FixedSizeBinary(_) => DataType::Binary,
        A::Date32 => DataType::Date,
        A::Date64 => DataType::Datetime(TimeUnit::Milliseconds, None),
        A::Timestamp(u, _) => DataType::Datetime(unit(u), None),
        A::Time32(_) | A::Time64(_) => DataType::Time,
        A::Duration(u) => DataType::Duration(unit(u)),
        A::Null => DataType::Null,
        A::List(f) | A::LargeList(f) | A::ListView(f) | A::LargeListView(f) => {
            DataType::List(Box::new(polars_type(f.data_type())?))
        }
        _ => return None,
    })
}
