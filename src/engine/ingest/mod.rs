//! Ingestion: resolving a node's source keys and globs to objects, and
//! scanning them with Polars.
//!
//! Sources are always scanned from local files, so Polars can push filters
//! and projections into the reader and stream what does not fit in memory:
//! on the local store the objects themselves, on S3 copies streamed into
//! the run's scratch directory while they are hashed ([`SourceFiles`]).

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use globset::GlobBuilder;
use polars::prelude::*;

use crate::error::{NodeError, NodeErrorKind};
use crate::model::pipeline::{Format, IngestionConfig};
use crate::store::{ObjectMeta, ObjectStore, StoreError};

mod files;
mod iso;
mod mapped;
mod schema;
pub mod temporal;

pub use files::{SourceFiles, fetch};
pub use mapped::DEFAULT_TRIM_ABOVE_BYTES;
pub use schema::parquet_schema;

/// The characters that make a source key a glob.
const GLOB_CHARS: [char; 4] = ['*', '?', '[', '{'];

pub(crate) fn is_glob(key: &str) -> bool {
    key.contains(GLOB_CHARS)
}

/// Every object a source names, sorted by key, without duplicates; at most
/// `max_matches` (`engine.max_glob_matches`) in all.
pub async fn resolve(
    store: &dyn ObjectStore,
    bucket: &str,
    cfg: &IngestionConfig,
    max_matches: usize,
) -> Result<Vec<ObjectMeta>, NodeError> {
    // Every key's listing or HEAD at once (a few at a time); problems are
    // reported in the order of the keys, as if one went after the other.
    let keys = cfg.source.keys();
    let found = crate::bounded::at_most(
        RESOLVE_CONCURRENCY,
        keys.iter().map(|key| resolve_key(store, bucket, key)),
    )
    .await;
    let mut out: Vec<ObjectMeta> = Vec::new();
    for (key, objs) in keys.iter().zip(found) {
        out.extend(objs?);
        if is_glob(key) && out.len() > max_matches {
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
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

/// Store requests one source node has in flight while resolving its keys
/// (and, beside them, asking for their source-index entries).
pub(crate) const RESOLVE_CONCURRENCY: usize = 16;

/// One key's objects: a glob's matches (one listing of its literal
/// prefix) or the object itself (a HEAD).
async fn resolve_key(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
) -> Result<Vec<ObjectMeta>, NodeError> {
    if !is_glob(key) {
        return match store.head(bucket, key).await {
            Ok(m) => Ok(vec![m]),
            // (In a project's first run the bucket may not exist yet.)
            Err(StoreError::NotFound { .. } | StoreError::NoSuchBucket(_)) => Err(NodeError::new(
                NodeErrorKind::Data,
                format!("source \"{key}\" not found in bucket {bucket}"),
            )),
            Err(e) => Err(NodeError::storage(e)),
        };
    }
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
    let literal_end = key.find(GLOB_CHARS).unwrap_or(key.len());
    let listed = match store.list(bucket, &key[..literal_end]).await {
        Ok(l) => l,
        Err(StoreError::NoSuchBucket(_)) => Vec::new(),
        Err(e) => return Err(NodeError::storage(e)),
    };
    let matched: Vec<ObjectMeta> = listed
        .into_iter()
        .filter(|m| glob.is_match(&m.key))
        .collect();
    if matched.is_empty() {
        return Err(NodeError::new(
            NodeErrorKind::Data,
            format!("no object matches \"{key}\""),
        ));
    }
    Ok(matched)
}

/// Where the bytes of the sources are.
#[derive(Clone)]
pub enum SourceData {
    /// Local files, and what Polars scans them as: made once, so every
    /// scan of the unit reads one source (one mapping; one scan where
    /// Polars shares common subplans).
    Paths {
        paths: Vec<PathBuf>,
        scan: ScanSources,
    },
    /// Only the schema (read from Parquet footers): enough to plan.
    Schema(SchemaRef),
}

impl SourceData {
    /// The files `paths`, those of `trim_above` bytes or more read through
    /// mappings whose pages are let go behind the scan ([`mapped`]).
    pub fn files(paths: Vec<PathBuf>, trim_above: u64) -> SourceData {
        let scan = mapped::scan_sources(&paths, trim_above);
        SourceData::Paths { paths, scan }
    }

    fn len(&self) -> usize {
        match self {
            SourceData::Paths { paths, .. } => paths.len(),
            SourceData::Schema(_) => 1,
        }
    }

    /// Only the i-th source (to find which file is malformed).
    pub fn single(&self, i: usize) -> SourceData {
        match self {
            SourceData::Paths { paths, .. } => SourceData::files(vec![paths[i].clone()], u64::MAX),
            SourceData::Schema(s) => SourceData::Schema(s.clone()),
        }
    }

    fn sources(&self) -> ScanSources {
        match self {
            SourceData::Paths { scan, .. } => scan.clone(),
            SourceData::Schema(_) => ScanSources::Buffers(Arc::from(Vec::new())),
        }
    }

    fn read_all(&self) -> std::io::Result<Vec<Vec<u8>>> {
        match self {
            SourceData::Paths { paths, .. } => paths.iter().map(std::fs::read).collect(),
            SourceData::Schema(_) => Ok(Vec::new()),
        }
    }
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
            let converted = temporal::plan(cfg, data, |names| sample(cfg, data, names));
            let lf = csv_reader(cfg, data.sources(), overrides.as_ref(), &converted).finish()?;
            return Ok(if converted.is_empty() {
                lf
            } else {
                lf.with_columns(converted.iter().map(|c| c.expr(true)).collect::<Vec<_>>())
            });
        }
        Format::Parquet => {
            LazyFrame::scan_parquet_sources(data.sources(), crate::parquet_scan::args())?
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

/// The CSV reader with the node's options; the `converted` columns are
/// read as text (see [`temporal`]).
fn csv_reader(
    cfg: &IngestionConfig,
    sources: ScanSources,
    overrides: Option<&Schema>,
    converted: &[temporal::Converted],
) -> LazyCsvReader {
    let o = &cfg.options;
    let mut r = LazyCsvReader::new_with_sources(sources)
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
    if let Some(s) = overrides {
        let mut s = s.clone();
        for c in converted {
            s.with_column(c.column.as_str().into(), DataType::String);
        }
        r = r.with_dtype_overwrite(Some(Arc::new(s)));
    }
    r
}

/// The first rows of the first file, the named columns as text: the
/// sample a date format is inferred from.
fn sample(cfg: &IngestionConfig, data: &SourceData, names: &[String]) -> Option<DataFrame> {
    let SourceData::Paths { paths, .. } = data else {
        return None;
    };
    let first = SourceData::files(vec![paths.first()?.clone()], u64::MAX);
    let mut text = overrides(cfg).unwrap_or_default();
    for n in names {
        text.with_column(n.as_str().into(), DataType::String);
    }
    csv_reader(cfg, first.sources(), Some(&text), &[])
        .with_n_rows(Some(temporal::SAMPLE_ROWS))
        .finish()
        .ok()?
        .select(names.iter().map(|n| col(n.as_str())).collect::<Vec<_>>())
        .collect()
        .ok()
}

/// For a CSV scan that fails: the first value of a converted date or
/// datetime column that its format does not read, as the node's error.
fn bad_temporal_value(cfg: &IngestionConfig, data: &SourceData) -> Option<String> {
    if cfg.effective_format().unwrap_or(Format::Csv) != Format::Csv {
        return None;
    }
    let converted = temporal::plan(cfg, data, |names| sample(cfg, data, names));
    if converted.is_empty() {
        return None;
    }
    let lf = csv_reader(cfg, data.sources(), overrides(cfg).as_ref(), &converted)
        .finish()
        .ok()?;
    temporal::first_bad(lf, &converted)
}

/// Which source file breaks a failing scan, for the error message.
pub fn culprit(
    cfg: &IngestionConfig,
    data: &SourceData,
    keys: &[String],
) -> Option<(String, String)> {
    for (i, key) in keys.iter().enumerate().take(data.len()) {
        if let Err(e) = scan(cfg, &data.single(i)).and_then(|lf| lf.collect()) {
            let message = bad_temporal_value(cfg, &data.single(i)).unwrap_or_else(|| e.to_string());
            return Some((key.clone(), message));
        }
    }
    None
}
