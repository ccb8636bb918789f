//! Object stores: where sources are read and artifacts are written.
//!
//! One trait, [`ObjectStore`], with buckets and keys as S3 has them, and
//! implementations for a local directory (the embedded default: one folder
//! per bucket) and memory (tests only: the `test-support` feature, as is
//! the conformance suite). The S3 implementation comes with
//! the S3 issue; `conformance` (test-support) is the suite every implementation passes.
//!
//! Writes are atomic per object: a reader sees the old object, the new one,
//! or none, never a prefix. Larger-than-memory writes go through
//! [`ObjectStore::writer`], which streams and only publishes on `finish`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

mod config;
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod download;
mod local;
#[cfg(any(test, feature = "test-support"))]
mod memory;
mod retry;
#[cfg(feature = "service")]
mod s3;

pub use config::{S3Config, SseMode, StoreConfig, StoreKind};
pub use download::{Downloaded, download, download_listed};
pub use local::LocalStore;
#[cfg(any(test, feature = "test-support"))]
pub use memory::MemoryStore;
pub use retry::{RetryPolicy, RetryingStore};
#[cfg(feature = "service")]
pub use s3::{S3Store, map_sdk_error};

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Changes whenever the content may have changed: an ETag on S3,
    /// modification time in nanoseconds on disk. Used by the source hash
    /// index to skip re-reading unchanged sources.
    pub version: String,
    /// When it was last written, where the store says (listings, HEAD):
    /// what garbage collection judges age by. None where unknown.
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A source object as hashed: the version the run's keys cover.
impl From<&crate::model::SourceObject> for ObjectMeta {
    fn from(o: &crate::model::SourceObject) -> Self {
        ObjectMeta {
            key: o.key.clone(),
            size: o.size,
            version: o.version.clone(),
            modified: None,
        }
    }
}

/// Why a store call failed; says whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object not found: {bucket}/{key}")]
    NotFound { bucket: String, key: String },
    #[error("bucket does not exist: {0}")]
    NoSuchBucket(String),
    #[error("invalid object key \"{key}\": {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("access denied to {bucket}/{key}")]
    Unauthorized { bucket: String, key: String },
    /// Timeouts, throttling, connection resets: worth another try.
    #[error("storage temporarily unavailable: {0}")]
    Transient(String),
    #[error("storage error: {0}")]
    Other(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }

    pub(crate) fn io(bucket: &str, key: &str, e: std::io::Error) -> StoreError {
        match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound {
                bucket: bucket.into(),
                key: key.into(),
            },
            std::io::ErrorKind::PermissionDenied => StoreError::Unauthorized {
                bucket: bucket.into(),
                key: key.into(),
            },
            std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::WouldBlock => {
                StoreError::Transient(format!("{bucket}/{key}: {e}"))
            }
            _ => StoreError::Other(format!("{bucket}/{key}: {e}")),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A streaming upload; nothing is visible until [`ObjectWriter::finish`].
#[async_trait]
pub trait ObjectWriter: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<()>;
    async fn finish(self: Box<Self>) -> Result<ObjectMeta>;
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// A streaming download: what was opened, then its bytes chunk by chunk.
#[async_trait]
pub trait ObjectReader: Send {
    /// The object as opened: size and version of the bytes this reader
    /// yields (not of a later overwrite).
    fn meta(&self) -> &ObjectMeta;
    /// The next chunk, or `None` after the last.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>>;
}

/// The whole object as one chunk (stores that hold objects in memory).
pub(crate) struct OneChunk {
    pub(crate) meta: ObjectMeta,
    pub(crate) data: Option<Bytes>,
}

#[async_trait]
impl ObjectReader for OneChunk {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(self.data.take())
    }
}

/// Buckets of objects addressed by key.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Creates the bucket; succeeds if it exists.
    async fn create_bucket(&self, bucket: &str) -> Result<()>;
    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<ObjectMeta>;
    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes>;
    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta>;
    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// Removes the object; removing a missing object succeeds.
    async fn delete(&self, bucket: &str, key: &str) -> Result<()>;
    /// Copies `from` to `to` in the bucket (server-side where the store can).
    /// Returns nothing: on S3 the object's size and version would cost a
    /// HEAD more, and no caller needs them (`head` asks).
    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<()>;
    async fn writer(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>>;

    /// Puts `items` so that each becomes visible only once every one before
    /// it is stored: the last can be a commit marker (a run's
    /// `metadata.json` after its `lineage.json`). The default puts them one
    /// after another; the local store makes all of them durable at once and
    /// then renames them into place in order (one disk flush, not one per
    /// object). On an error, items before the failing one may be visible,
    /// never one after it.
    async fn put_in_order(&self, bucket: &str, items: Vec<(String, Bytes)>) -> Result<()> {
        for (key, data) in items {
            self.put(bucket, &key, data).await?;
        }
        Ok(())
    }

    /// Bytes `range` of an object, clamped to its end: lets Parquet readers
    /// fetch a footer or a column chunk without the whole object.
    async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> Result<Bytes> {
        let all = self.get(bucket, key).await?;
        let end = (range.end as usize).min(all.len());
        Ok(all.slice((range.start as usize).min(end)..end))
    }

    /// Bytes `range` of the object if it is still version `version` (as a
    /// listing or HEAD reported it), `None` if it is another version now:
    /// lets a large object be fetched in parts, concurrently, without
    /// mixing two versions' bytes. S3 asks with `If-Match`; the default
    /// reads the range, then checks the version is unchanged (versions
    /// never repeat, so the bytes were that version's).
    async fn get_part(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
        version: &str,
    ) -> Result<Option<Bytes>> {
        let data = self.get_range(bucket, key, range).await?;
        Ok((self.head(bucket, key).await?.version == version).then_some(data))
    }

    /// Opens an object for a streaming read, so an object larger than
    /// memory can be copied or hashed chunk by chunk ([`download`]).
    async fn reader(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectReader>> {
        let data = self.get(bucket, key).await?;
        let mut meta = self.head(bucket, key).await?;
        meta.size = data.len() as u64;
        Ok(Box::new(OneChunk {
            meta,
            data: Some(data),
        }))
    }

    /// Uploads a local file, streaming it in chunks.
    async fn put_file(&self, bucket: &str, key: &str, path: &Path) -> Result<ObjectMeta> {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?;
        let mut w = self.writer(bucket, key).await?;
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(StoreError::Other(format!("{}: {e}", path.display())));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = w.write(Bytes::copy_from_slice(&buf[..n])).await {
                let _ = w.abort().await;
                return Err(e);
            }
        }
        w.finish().await
    }

    /// A local path holding the object, when the store is a directory:
    /// lets Polars scan sources in place (with pushdown) instead of
    /// reading them into memory first.
    fn local_path(&self, _bucket: &str, _key: &str) -> Option<PathBuf> {
        None
    }
}

/// Deletes an object; one already gone is fine (a resumed GC or import
/// finishing the work of one that stopped).
pub async fn delete_if_present(store: &dyn ObjectStore, bucket: &str, key: &str) -> Result<()> {
    match store.delete(bucket, key).await {
        Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Checks that a key is a relative path that stays inside its bucket.
pub fn check_key(key: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(StoreError::InvalidKey {
            key: key.to_string(),
            reason: reason.to_string(),
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.starts_with('/') {
        return bad("must not start with /");
    }
    if key.contains('\0') || key.contains('\\') {
        return bad("must not contain NUL or backslash");
    }
    if key.split('/').any(|s| s == ".." || s == ".") {
        return bad("must not contain . or .. segments");
    }
    if key.split('/').any(|s| s.is_empty()) && !key.ends_with('/') {
        return bad("must not contain empty segments");
    }
    Ok(())
}

/// Checks a bucket name the way S3 does (lowercase, digits, dots, dashes).
pub fn check_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && bucket.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidKey {
            key: bucket.into(),
            reason: "not a valid bucket name".into(),
        })
    }
}
