//! Local files with the sources' data: S3 objects streamed into the run's
//! scratch directory once (large ones as concurrent parts of the listed
//! version), while they are hashed; local objects in place.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::SourceData;
use crate::error::{NodeError, NodeErrorKind};
use crate::store::{Downloaded, ObjectMeta, ObjectStore, StoreError};

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
    budget: Arc<crate::engine::scratch::ScratchBudget>,
    /// Files this large or larger are scanned through trimmed mappings
    /// ([`SourceData::files`]).
    trim_above: u64,
}

impl SourceFiles {
    /// Files go under `dir` (created on the first download).
    pub fn new(dir: PathBuf, budget: Arc<crate::engine::scratch::ScratchBudget>) -> Self {
        SourceFiles {
            dir,
            files: Mutex::new(HashMap::new()),
            budget,
            trim_above: super::DEFAULT_TRIM_ABOVE_BYTES,
        }
    }

    /// Scans files of `bytes` or more through trimmed mappings.
    pub fn trimming_above(mut self, bytes: u64) -> Self {
        self.trim_above = bytes;
        self
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
                let d = crate::store::download_listed(store, bucket, meta, Some(&path)).await?;
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
    Ok(SourceData::files(paths, files.trim_above))
}
