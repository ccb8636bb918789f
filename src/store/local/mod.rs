//! The embedded default: a directory with one folder per bucket.
//!
//! Every write goes to a hidden temporary file next to its target and is
//! renamed into place, so a crash never leaves a half-written object under
//! its real name. That also makes hard links safe for `copy`: an object is
//! never modified in place, only replaced.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    ObjectMeta, ObjectReader, ObjectStore, ObjectWriter, Result, StoreError, check_bucket,
    check_key,
};

mod durable;
mod stream;

use durable::{blocking, durable_tmp, rename_into_place, tmp_path};
use stream::{LocalReader, LocalWriter};

/// Marker in the names of temporary files; listings skip them.
const TMP_MARK: &str = ".mudrock-tmp-";

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf> {
        check_bucket(bucket)?;
        Ok(self.root.join(bucket))
    }

    fn path(&self, bucket: &str, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        if key.ends_with('/') {
            return Err(StoreError::InvalidKey {
                key: key.into(),
                reason: "an object key must not end with /".into(),
            });
        }
        let dir = self.bucket_dir(bucket)?;
        if !dir.is_dir() {
            return Err(StoreError::NoSuchBucket(bucket.into()));
        }
        Ok(dir.join(key))
    }
}

/// An object's metadata; a directory under the key is no object.
fn file_meta(bucket: &str, key: &str, m: &std::fs::Metadata) -> Result<ObjectMeta> {
    if !m.is_file() {
        return Err(StoreError::NotFound {
            bucket: bucket.into(),
            key: key.into(),
        });
    }
    Ok(meta(key, m))
}

fn meta(key: &str, m: &std::fs::Metadata) -> ObjectMeta {
    let nanos = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
    ObjectMeta {
        key: key.to_string(),
        size: m.len(),
        version: format!("{}-{nanos}", m.ino()),
        modified: chrono::DateTime::from_timestamp(m.mtime(), m.mtime_nsec() as u32),
    }
}

async fn ensure_parent(bucket: &str, key: &str, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?;
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let dir = self.bucket_dir(bucket)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| StoreError::io(bucket, "", e))
    }

    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<ObjectMeta> {
        let target = self.path(bucket, key)?;
        let m = blocking(move || {
            let tmp = durable_tmp(&target, &data)?;
            rename_into_place(&tmp, &target)?;
            std::fs::metadata(&target)
        })
        .await
        .map_err(|e| StoreError::io(bucket, key, e))?;
        Ok(meta(key, &m))
    }

    /// See [`durable::put_in_order`].
    async fn put_in_order(&self, bucket: &str, items: Vec<(String, Bytes)>) -> Result<()> {
        let mut targets = Vec::with_capacity(items.len());
        for (key, data) in items {
            targets.push((self.path(bucket, &key)?, key, data));
        }
        durable::put_in_order(bucket, targets).await
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        let path = self.path(bucket, key)?;
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|e| StoreError::io(bucket, key, e))
    }

    async fn reader(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectReader>> {
        let path = self.path(bucket, key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?;
        // Metadata of the open file: an object replaced meanwhile (by
        // rename) does not change what this handle reads.
        let m = file
            .metadata()
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?;
        Ok(Box::new(LocalReader {
            file,
            meta: file_meta(bucket, key, &m)?,
            left: m.len(),
            bucket: bucket.into(),
        }))
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        let path = self.path(bucket, key)?;
        let m = tokio::fs::metadata(&path)
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?;
        file_meta(bucket, key, &m)
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let dir = self.bucket_dir(bucket)?;
        if !dir.is_dir() {
            return Err(StoreError::NoSuchBucket(bucket.into()));
        }
        let prefix = prefix.to_string();
        let bucket = bucket.to_string();
        tokio::task::spawn_blocking(move || {
            // Start from the deepest directory the prefix names.
            let start_rel = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let mut out = Vec::new();
            let mut stack = vec![dir.join(start_rel)];
            while let Some(d) = stack.pop() {
                let entries = match std::fs::read_dir(&d) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io(&bucket, &prefix, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| StoreError::io(&bucket, &prefix, e))?;
                    let path = entry.path();
                    let ft = entry
                        .file_type()
                        .map_err(|e| StoreError::io(&bucket, &prefix, e))?;
                    let Ok(rel) = path.strip_prefix(&dir) else {
                        continue;
                    };
                    let Some(key) = rel.to_str() else { continue };
                    if ft.is_dir() {
                        if key.starts_with(&prefix) || prefix.starts_with(&format!("{key}/")) {
                            stack.push(path);
                        }
                    } else if ft.is_file() && key.starts_with(&prefix) && !key.contains(TMP_MARK) {
                        let m = entry
                            .metadata()
                            .map_err(|e| StoreError::io(&bucket, key, e))?;
                        out.push(meta(key, &m));
                    }
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Other(format!("list task failed: {e}")))?
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let path = self.path(bucket, key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(bucket, key, e)),
        }
    }

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<()> {
        let src = self.path(bucket, from)?;
        let dst = self.path(bucket, to)?;
        ensure_parent(bucket, to, &dst).await?;
        let tmp = tmp_path(&dst);
        // A hard link costs nothing; objects are only ever replaced, never
        // modified, so sharing the inode is safe. Fall back to a real copy
        // across filesystems.
        if tokio::fs::hard_link(&src, &tmp).await.is_err() {
            tokio::fs::copy(&src, &tmp)
                .await
                .map_err(|e| StoreError::io(bucket, from, e))?;
        }
        tokio::fs::rename(&tmp, &dst)
            .await
            .map_err(|e| StoreError::io(bucket, to, e))?;
        // rename() is a no-op when both names already link the same inode
        // (copying an unchanged cache entry again): drop the spare link.
        let _ = tokio::fs::remove_file(&tmp).await;
        Ok(())
    }

    async fn writer(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let target = self.path(bucket, key)?;
        ensure_parent(bucket, key, &target).await?;
        let tmp = tmp_path(&target);
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?;
        Ok(Box::new(LocalWriter {
            file,
            tmp,
            target,
            bucket: bucket.into(),
            key: key.into(),
        }))
    }

    async fn put_file(&self, bucket: &str, key: &str, path: &Path) -> Result<ObjectMeta> {
        let target = self.path(bucket, key)?;
        ensure_parent(bucket, key, &target).await?;
        let tmp = tmp_path(&target);
        // A hard link when the file is on the same filesystem (the engine's
        // scratch files are never modified once handed over), else a copy.
        if tokio::fs::hard_link(path, &tmp).await.is_err() {
            tokio::fs::copy(path, &tmp)
                .await
                .map_err(|e| StoreError::io(bucket, key, e))?;
        }
        tokio::fs::rename(&tmp, &target)
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?;
        self.head(bucket, key).await
    }

    fn local_path(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        self.path(bucket, key).ok()
    }

    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.path(bucket, key)?;
        let mut f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?;
        let size = f
            .metadata()
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?
            .len();
        let end = range.end.min(size);
        let start = range.start.min(end);
        f.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?;
        let mut buf = vec![0u8; (end - start) as usize];
        f.read_exact(&mut buf)
            .await
            .map_err(|e| StoreError::io(bucket, key, e))?;
        Ok(Bytes::from(buf))
    }
}

/// Chunk size of a local streaming read.
const READ_CHUNK: u64 = 8 << 20;
