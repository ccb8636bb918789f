//! Streaming reads and writes of the local store's objects.

use async_trait::async_trait;
use bytes::Bytes;
use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use super::{READ_CHUNK, meta};
use crate::store::{ObjectMeta, ObjectReader, ObjectWriter, Result, StoreError};

pub(super) struct LocalReader {
    pub(super) file: tokio::fs::File,
    pub(super) meta: ObjectMeta,
    pub(super) left: u64,
    pub(super) bucket: String,
}

#[async_trait]
impl ObjectReader for LocalReader {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        use tokio::io::AsyncReadExt;
        if self.left == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; self.left.min(READ_CHUNK) as usize];
        self.file
            .read_exact(&mut buf)
            .await
            .map_err(|e| StoreError::io(&self.bucket, &self.meta.key, e))?;
        self.left -= buf.len() as u64;
        Ok(Some(Bytes::from(buf)))
    }
}

pub(super) struct LocalWriter {
    pub(super) file: tokio::fs::File,
    pub(super) tmp: PathBuf,
    pub(super) target: PathBuf,
    pub(super) bucket: String,
    pub(super) key: String,
}

/// A writer dropped before `finish` (a failed or refused upload) leaves
/// nothing behind: its temporary file goes (after `finish` it is renamed
/// away and this finds nothing).
impl Drop for LocalWriter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.file
            .write_all(&chunk)
            .await
            .map_err(|e| StoreError::io(&self.bucket, &self.key, e))
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        let (b, k) = (self.bucket.clone(), self.key.clone());
        self.file
            .flush()
            .await
            .map_err(|e| StoreError::io(&b, &k, e))?;
        self.file
            .sync_data()
            .await
            .map_err(|e| StoreError::io(&b, &k, e))?;
        tokio::fs::rename(&self.tmp, &self.target)
            .await
            .map_err(|e| StoreError::io(&b, &k, e))?;
        let m = tokio::fs::metadata(&self.target)
            .await
            .map_err(|e| StoreError::io(&b, &k, e))?;
        Ok(meta(&k, &m))
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        // Dropping removes the temporary file (see `Drop`).
        drop(self);
        Ok(())
    }
}
