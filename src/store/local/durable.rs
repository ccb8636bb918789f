//! Durable writes of the local store: each object written to a hidden
//! temporary file beside its target, flushed to disk, then renamed into
//! place, so a crash never leaves a half-written object under its real
//! name.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::TMP_MARK;
use crate::store::{Result, StoreError};

pub(super) fn tmp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("object");
    target.with_file_name(format!(
        ".{name}{TMP_MARK}{}",
        uuid::Uuid::now_v7().simple()
    ))
}

/// `data` in a new temporary file beside `target`, flushed to disk (its
/// folder made if missing); removed again if any step fails.
pub(super) fn durable_tmp(target: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = tmp_path(target);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_data()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Renames `tmp` to `target`; removes `tmp` if that fails.
pub(super) fn rename_into_place(tmp: &Path, target: &Path) -> std::io::Result<()> {
    std::fs::rename(tmp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(tmp);
    })
}

/// Runs blocking file work on tokio's blocking pool: one hop for the whole
/// of it, where `tokio::fs` takes one per call.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("file task failed: {e}"))))
}

/// Every temporary file written and flushed at once, each on a thread of
/// its own (concurrent flushes share the filesystem's journal commit),
/// then renamed into place in order: `(target, key, data)`. A journaling
/// filesystem (ext4, XFS) commits renames in the order they were made, so
/// a marker's rename is never on disk without the ones before it. On an
/// error no temporary file is left, and nothing after the failing object
/// is renamed. One blocking task for the whole batch: a caller that stops
/// waiting (a cancelled run) leaves it to finish or fail as a whole.
pub(super) async fn put_in_order(bucket: &str, items: Vec<(PathBuf, String, Bytes)>) -> Result<()> {
    match blocking(move || Ok(write_in_order(&items))).await {
        Ok(None) => Ok(()),
        Ok(Some((key, e))) => Err(StoreError::io(bucket, &key, e)),
        Err(e) => Err(StoreError::io(bucket, "", e)),
    }
}

/// [`put_in_order`]'s blocking part; the first failure's key and error.
fn write_in_order(items: &[(PathBuf, String, Bytes)]) -> Option<(String, std::io::Error)> {
    let written: Vec<std::io::Result<PathBuf>> = std::thread::scope(|s| {
        let flushes: Vec<_> = items
            .iter()
            .map(|(target, _, data)| s.spawn(move || durable_tmp(target, data)))
            .collect();
        flushes
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("write thread panicked")))
            })
            .collect()
    });
    let mut moves = Vec::with_capacity(items.len());
    let mut failed = None;
    for ((target, key, _), tmp) in items.iter().zip(written) {
        match tmp {
            Ok(tmp) => moves.push((key, tmp, target)),
            Err(e) => {
                failed.get_or_insert((key.clone(), e));
            }
        }
    }
    if failed.is_some() {
        for (_, tmp, _) in &moves {
            let _ = std::fs::remove_file(tmp);
        }
        return failed;
    }
    let mut moves = moves.into_iter();
    while let Some((key, tmp, target)) = moves.next() {
        if let Err(e) = rename_into_place(&tmp, target) {
            // Nothing after a failed one becomes visible.
            for (_, tmp, _) in moves {
                let _ = std::fs::remove_file(tmp);
            }
            return Some((key.clone(), e));
        }
    }
    None
}
