//! How mudrock scans a Parquet file with Polars: its own columns only.
//! Polars' default scan also turns every `key=value` folder name in the
//! file's path into a column (Hive partitions), so a source under
//! `shared/date=2024-01-01/` or a store kept under such a folder would gain
//! columns on the local store (whose paths hold them) and not on S3 (whose
//! sources are read from scratch copies), and a buffer could not be
//! scanned at all. Sources, cache entries and outputs are all read this way.

use std::path::Path;

use polars::prelude::*;

/// Polars' defaults without Hive partitions.
pub fn args() -> ScanArgsParquet {
    let mut args = ScanArgsParquet::default();
    args.hive_options.enabled = Some(false);
    args
}

/// A lazy scan of one local Parquet file.
pub fn scan(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(PlRefPath::new(path.to_string_lossy().as_ref()), args())
}
