//! Copying an object into a local file while hashing it: one GET read as
//! it arrives, or, for a large object whose listed version is known, that
//! version as one GET while a single connection is fast enough and the
//! rest as parts fetched concurrently (ranged reads of that version) when
//! it is not or is cut short. Either way a blocking thread writes and
//! hashes the bytes in order while the next ones are on the wire, memory
//! stays bounded whatever the object's size, and the hash is of exactly
//! the bytes written.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{ObjectMeta, ObjectReader, ObjectStore, Result, StoreError};

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
/// Size of one ranged part; an object of at least two parts may be read in
/// parts ([`download_listed`]).
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

/// Like [`download`], for an object as a listing described it. An object
/// of two parts or more is read as one GET of exactly that version while
/// one connection is fast enough (a server on the same host or network);
/// when its first part came slower than [`STREAM_ENOUGH`] (a distant
/// server, or S3's per-connection throughput), or the stream is cut
/// short, the rest comes as concurrent ranged parts of that version (on
/// S3 each part its own request, retried alone). If the object is no
/// longer that version, it is read as one GET of the current one, whose
/// version the result reports, so the caller sees the change.
pub async fn download_listed(
    store: &dyn ObjectStore,
    bucket: &str,
    listed: &ObjectMeta,
    dest: Option<&Path>,
) -> Result<Downloaded> {
    download_listed_at(store, bucket, listed, dest, STREAM_ENOUGH).await
}

/// A single GET reading at least this many bytes a second over its first
/// part (the request's round trip included) is kept for the whole object.
/// On the test server (Ceph RGW on the same host) one GET reads 65 MiB in
/// ~75 ms and ranged parts take ~1.5× as long; across a WAN, or from S3,
/// one connection gets ~100 MB/s and parts several times that.
pub(crate) const STREAM_ENOUGH: u64 = 256 << 20;

/// [`download_listed`], keeping the stream when it reads `enough` bytes a
/// second or more (`0`: always; `u64::MAX`: parts after the first part).
pub(crate) async fn download_listed_at(
    store: &dyn ObjectStore,
    bucket: &str,
    listed: &ObjectMeta,
    dest: Option<&Path>,
    enough: u64,
) -> Result<Downloaded> {
    if listed.size < 2 * PART_BYTES {
        return download(store, bucket, &listed.key, dest).await;
    }
    match cleaned(dest, of_version(store, bucket, listed, dest, enough)).await? {
        Some(d) => Ok(d),
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
    let (_, end) = pump(&mut *reader, &writer, u64::MAX).await;
    let (blake3, total) = writer.finish(end.map(|_| ())).await?;
    if total != meta.size {
        // A connection cut short without an error: never hand on a prefix.
        return Err(StoreError::Transient(format!(
            "{bucket}/{key}: read {total} of {} bytes",
            meta.size
        )));
    }
    Ok(Downloaded { meta, blake3 })
}

/// Hands `reader`'s chunks to the writer, gathered into batches, until
/// the end or at least `limit` bytes. Returns the bytes handed on and how
/// it stopped: `Ok(true)` at the end, `Ok(false)` at the limit.
async fn pump(reader: &mut dyn ObjectReader, writer: &Writer, limit: u64) -> (u64, Result<bool>) {
    let mut sent = 0u64;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0u64;
    let end = loop {
        if sent + batched >= limit {
            break Ok(false);
        }
        match reader.next_chunk().await {
            Ok(Some(c)) => {
                batched += c.len() as u64;
                batch.push(c);
                if batched >= STREAM_BATCH as u64 {
                    if let Err(e) = writer.send(std::mem::take(&mut batch)).await {
                        return (sent, Err(e));
                    }
                    sent += std::mem::take(&mut batched);
                }
            }
            Ok(None) => break Ok(true),
            Err(e) => break Err(e),
        }
    };
    // What arrived before a failure is good: it is handed on too.
    if !batch.is_empty() {
        if let Err(e) = writer.send(batch).await {
            return (sent, Err(e));
        }
        sent += batched;
    }
    (sent, end)
}

/// The object as `listed.version`: one GET while it is fast enough, the
/// rest as parts; `None` when the object is no longer that version.
async fn of_version(
    store: &dyn ObjectStore,
    bucket: &str,
    listed: &ObjectMeta,
    dest: Option<&Path>,
    enough: u64,
) -> Result<Option<Downloaded>> {
    let key = listed.key.as_str();
    let asked = Instant::now();
    let mut reader = store.reader(bucket, key).await?;
    if reader.meta().version != listed.version {
        return Ok(None);
    }
    let writer = Writer::start(bucket, key, dest)?;
    let (mut got, mut end) = pump(&mut *reader, &writer, PART_BYTES).await;
    let rate = got as f64 / asked.elapsed().as_secs_f64().max(1e-9);
    if matches!(end, Ok(false)) && rate >= enough as f64 {
        let (more, rest) = pump(&mut *reader, &writer, u64::MAX).await;
        got += more;
        end = rest;
    }
    drop(reader);
    let whole = if matches!(end, Ok(true)) && got >= listed.size {
        Ok(true)
    } else {
        match &end {
            Ok(false) => tracing::debug!(
                key,
                bytes_per_sec = rate as u64,
                "one connection is slow, the rest as parts"
            ),
            Err(e) => {
                tracing::debug!(key, at = got, error = %e, "stream cut short, the rest as parts")
            }
            // Ended early without an error: the rest as parts too.
            Ok(true) => {}
        }
        parts_into(store, bucket, listed, got, &writer).await
    };
    let complete = matches!(whole, Ok(true));
    let (blake3, total) = writer.finish(whole.map(|_| ())).await?;
    Ok((complete && total == listed.size).then(|| Downloaded {
        meta: listed.clone(),
        blake3,
    }))
}

/// Hands the writer `listed.version`'s bytes from offset `from` on, as
/// concurrent ranged parts in order; `false` when a part is no longer that
/// version (the object was replaced).
async fn parts_into(
    store: &dyn ObjectStore,
    bucket: &str,
    listed: &ObjectMeta,
    from: u64,
    writer: &Writer,
) -> Result<bool> {
    let key = listed.key.as_str();
    let ranges = (from..listed.size)
        .step_by(PART_BYTES as usize)
        .map(|start| start..(start + PART_BYTES).min(listed.size));
    let mut parts = futures_util::stream::iter(ranges)
        .map(|r| async move {
            let want = r.end - r.start;
            let got = store.get_part(bucket, key, r, &listed.version).await?;
            Ok::<_, StoreError>(got.filter(|b| b.len() as u64 == want))
        })
        .buffered(PARTS_IN_FLIGHT);
    while let Some(part) = parts.next().await {
        match part? {
            Some(b) => writer.send(vec![b]).await?,
            None => return Ok(false),
        }
    }
    Ok(true)
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

#[cfg(test)]
#[path = "download_tests.rs"]
mod tests;
