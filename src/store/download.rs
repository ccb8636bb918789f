//! Copying an object into a local file while hashing it: one GET read as
//! it arrives, or, for a large object whose listed version is known, parts
//! fetched concurrently as ranged reads of that version. Either way a
//! blocking thread writes and hashes the bytes in order while the next
//! ones are on the wire, memory stays bounded whatever the object's size,
//! and the hash is of exactly the bytes written.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{ObjectMeta, ObjectStore, Result, StoreError};

/// What [`download`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The object as read (its version may be newer than a listing's).
    pub meta: ObjectMeta,
    /// blake3 of the bytes, hex.
    pub blake3: String,
}

/// Bytes of a streamed GET gathered into one hand-off to the writer
/// thread: large enough that the hand-off is noise.
const STREAM_BATCH: usize = 4 << 20;
/// Size of one ranged part; objects of at least two parts are read in parts.
pub(crate) const PART_BYTES: u64 = 8 << 20;
/// Ranged parts on the wire at once. With the hand-offs queued for the
/// writer, a download holds at most `(PARTS_IN_FLIGHT + QUEUED + 1)`
/// parts in memory (48 MiB).
const PARTS_IN_FLIGHT: usize = 4;
/// Hand-offs waiting for the writer thread.
const QUEUED: usize = 1;

/// Streams an object into the file `dest` (when given) and hashes it on
/// the way, as one GET of whatever version is current. A failed download
/// removes the partial file.
pub async fn download(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    dest: Option<&Path>,
) -> Result<Downloaded> {
    cleaned(dest, streamed(store, bucket, key, dest)).await
}

/// Like [`download`], for an object as a listing described it: an object
/// of two parts or more is fetched as ranged parts of exactly that
/// version, several at once (on S3 each part its own request, retried
/// alone). If the object is no longer that version, it is read again as
/// one GET of the current one, whose version the result reports, so the
/// caller sees the change.
pub async fn download_listed(
    store: &dyn ObjectStore,
    bucket: &str,
    listed: &ObjectMeta,
    dest: Option<&Path>,
) -> Result<Downloaded> {
    if listed.size < 2 * PART_BYTES {
        return download(store, bucket, &listed.key, dest).await;
    }
    match cleaned(dest, in_parts(store, bucket, listed, dest)).await? {
        Some(blake3) => Ok(Downloaded {
            meta: listed.clone(),
            blake3,
        }),
        None => {
            tracing::debug!(key = %listed.key, version = %listed.version, "object changed since listed, read again whole");
            download(store, bucket, &listed.key, dest).await
        }
    }
}

/// Removes `dest` when the download failed or was abandoned.
async fn cleaned<T>(dest: Option<&Path>, work: impl Future<Output = Result<T>>) -> Result<T> {
    let r = work.await;
    if r.is_err() {
        if let Some(d) = dest {
            let _ = tokio::fs::remove_file(d).await;
        }
    }
    r
}

async fn streamed(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    dest: Option<&Path>,
) -> Result<Downloaded> {
    let mut reader = store.reader(bucket, key).await?;
    let meta = reader.meta().clone();
    let writer = Writer::start(bucket, key, dest)?;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0usize;
    let read = async {
        while let Some(c) = reader.next_chunk().await? {
            batched += c.len();
            batch.push(c);
            if batched >= STREAM_BATCH {
                batched = 0;
                writer.send(std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            writer.send(batch).await?;
        }
        Ok(())
    };
    let read: Result<()> = read.await;
    let (blake3, total) = writer.finish(read).await?;
    if total != meta.size {
        // A connection cut short without an error: never hand on a prefix.
        return Err(StoreError::Transient(format!(
            "{bucket}/{key}: read {total} of {} bytes",
            meta.size
        )));
    }
    Ok(Downloaded { meta, blake3 })
}

/// The object's parts of `listed.version`, in order; `None` when a part
/// is no longer that version (the object was replaced).
async fn in_parts(
    store: &dyn ObjectStore,
    bucket: &str,
    listed: &ObjectMeta,
    dest: Option<&Path>,
) -> Result<Option<String>> {
    let key = listed.key.as_str();
    let writer = Writer::start(bucket, key, dest)?;
    let ranges = (0..listed.size)
        .step_by(PART_BYTES as usize)
        .map(|start| start..(start + PART_BYTES).min(listed.size));
    let mut parts = futures_util::stream::iter(ranges)
        .map(|r| async move {
            let want = r.end - r.start;
            let got = store.get_part(bucket, key, r, &listed.version).await?;
            Ok::<_, StoreError>(got.filter(|b| b.len() as u64 == want))
        })
        .buffered(PARTS_IN_FLIGHT);
    let read = async {
        while let Some(part) = parts.next().await {
            match part? {
                Some(b) => writer.send(vec![b]).await?,
                None => return Ok(false),
            }
        }
        Ok(true)
    };
    let whole: Result<bool> = read.await;
    let complete = matches!(whole, Ok(true));
    let (blake3, total) = writer.finish(whole.map(|_| ())).await?;
    Ok((complete && total == listed.size).then_some(blake3))
}

/// The blocking side of a download: writes and hashes hand-offs in the
/// order they are sent, on its own thread, while the async side reads on.
struct Writer {
    tx: mpsc::Sender<Vec<Bytes>>,
    task: tokio::task::JoinHandle<std::io::Result<(blake3::Hasher, u64)>>,
    what: String,
}

impl Writer {
    fn start(bucket: &str, key: &str, dest: Option<&Path>) -> Result<Writer> {
        let what = format!("{bucket}/{key}");
        let mut file = match dest {
            Some(d) => Some(std::fs::File::create(d).map_err(|e| local(&what, e))?),
            None => None,
        };
        let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(QUEUED);
        let task = tokio::task::spawn_blocking(move || {
            let mut h = blake3::Hasher::new();
            let mut total = 0u64;
            while let Some(chunks) = rx.blocking_recv() {
                for c in &chunks {
                    // blake3's threads pay off from about a megabyte.
                    if c.len() >= 1 << 20 {
                        h.update_rayon(c);
                    } else {
                        h.update(c);
                    }
                    total += c.len() as u64;
                    if let Some(f) = file.as_mut() {
                        f.write_all(c)?;
                    }
                }
            }
            Ok((h, total))
        });
        Ok(Writer { tx, task, what })
    }

    /// Hands bytes to the writer thread; fails when that thread has
    /// stopped (its error comes out of [`Writer::finish`]).
    async fn send(&self, chunks: Vec<Bytes>) -> Result<()> {
        self.tx
            .send(chunks)
            .await
            .map_err(|_| StoreError::Other(format!("{}: local copy stopped", self.what)))
    }

    /// Waits for the writer thread and returns the hash and byte count.
    /// The writer's own failure comes first, then the reading side's.
    async fn finish(self, read: Result<()>) -> Result<(String, u64)> {
        drop(self.tx);
        let written = self
            .task
            .await
            .map_err(|e| StoreError::Other(format!("download task: {e}")))?
            .map_err(|e| local(&self.what, e));
        let (h, total) = written?;
        read?;
        Ok((h.finalize().to_hex().to_string(), total))
    }
}

fn local(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Other(format!("{what}: local copy: {e}"))
}
