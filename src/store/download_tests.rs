//! [`download_listed`]'s choice between one GET and ranged parts, on a
//! store whose reader yields 1 MiB chunks and can be cut short, counting
//! the bytes asked for by range.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::*;
use crate::store::{MemoryStore, ObjectWriter};

const MIB: u64 = 1 << 20;

/// A memory store whose reader hands out 1 MiB chunks and fails (once
/// per reader) after `cut_at` bytes; `ranged` counts bytes read by range.
#[derive(Debug)]
struct Chunked {
    inner: MemoryStore,
    cut_at: u64,
    ranged: AtomicU64,
}

struct ChunkReader {
    meta: ObjectMeta,
    data: Bytes,
    pos: usize,
    cut_at: u64,
}

#[async_trait]
impl ObjectReader for ChunkReader {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.pos as u64 >= self.cut_at {
            return Err(StoreError::Transient("connection reset".into()));
        }
        if self.pos == self.data.len() {
            return Ok(None);
        }
        let end = (self.pos + MIB as usize).min(self.data.len());
        let c = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(Some(c))
    }
}

#[async_trait]
impl ObjectStore for Chunked {
    async fn create_bucket(&self, b: &str) -> Result<()> {
        self.inner.create_bucket(b).await
    }
    async fn put(&self, b: &str, k: &str, d: Bytes) -> Result<ObjectMeta> {
        self.inner.put(b, k, d).await
    }
    async fn get(&self, b: &str, k: &str) -> Result<Bytes> {
        self.inner.get(b, k).await
    }
    async fn get_range(&self, b: &str, k: &str, r: Range<u64>) -> Result<Bytes> {
        self.ranged.fetch_add(r.end - r.start, Ordering::SeqCst);
        self.inner.get_range(b, k, r).await
    }
    async fn head(&self, b: &str, k: &str) -> Result<ObjectMeta> {
        self.inner.head(b, k).await
    }
    async fn list(&self, b: &str, p: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(b, p).await
    }
    async fn delete(&self, b: &str, k: &str) -> Result<()> {
        self.inner.delete(b, k).await
    }
    async fn copy(&self, b: &str, f: &str, t: &str) -> Result<()> {
        self.inner.copy(b, f, t).await
    }
    async fn writer(&self, b: &str, k: &str) -> Result<Box<dyn ObjectWriter>> {
        self.inner.writer(b, k).await
    }
    async fn reader(&self, b: &str, k: &str) -> Result<Box<dyn ObjectReader>> {
        Ok(Box::new(ChunkReader {
            meta: self.inner.head(b, k).await?,
            data: self.inner.get(b, k).await?,
            pos: 0,
            cut_at: self.cut_at,
        }))
    }
}

/// Downloads a 2-part-and-a-bit object from a store cut at `cut_at`,
/// keeping the stream at `enough` bytes a second; checks the file and
/// hash, and returns the bytes read by range.
async fn ranged_bytes(cut_at: u64, enough: u64) -> u64 {
    let store = Chunked {
        inner: MemoryStore::new(),
        cut_at,
        ranged: AtomicU64::new(0),
    };
    store.create_bucket("bkt").await.unwrap();
    let data: Vec<u8> = (0..2 * PART_BYTES + 12_345)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let listed = store
        .put("bkt", "obj", Bytes::from(data.clone()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("obj");
    let d = download_listed_at(&store, "bkt", &listed, Some(&dest), enough)
        .await
        .expect("download");
    assert_eq!(d.meta, listed);
    assert_eq!(d.blake3, blake3::hash(&data).to_hex().to_string());
    assert!(std::fs::read(&dest).unwrap() == data, "the bytes in order");
    store.ranged.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_fast_connection_reads_the_whole_object_in_one_get() {
    assert_eq!(ranged_bytes(u64::MAX, 0).await, 0);
}

#[tokio::test]
async fn a_slow_connection_leaves_all_after_the_first_part_to_ranged_parts() {
    let size = 2 * PART_BYTES + 12_345;
    assert_eq!(ranged_bytes(u64::MAX, u64::MAX).await, size - PART_BYTES);
}

#[tokio::test]
async fn a_stream_cut_short_goes_on_as_parts_from_where_it_stopped() {
    let size = 2 * PART_BYTES + 12_345;
    // Cut after 5 chunks: the fifth, batched when the error came, counts.
    assert_eq!(ranged_bytes(5 * MIB, 0).await, size - 5 * MIB);
    // Cut at once: everything by range.
    assert_eq!(ranged_bytes(0, 0).await, size);
}
