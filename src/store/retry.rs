//! Retries for transient storage errors, as a decorator over any store.
//!
//! Only [`StoreError::Transient`] is retried (timeouts, throttling, refused
//! connections, 5xx); not found, unauthorized and the rest fail at once.
//! The crate's one policy ([`crate::retry`]), bounded by a total delay: the
//! budget a storage outage may last before the run fails with the storage error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::Retryable;
use bytes::Bytes;

use super::{ObjectMeta, ObjectReader, ObjectStore, ObjectWriter, Result, StoreError};
pub use crate::retry::RetryPolicy;

#[derive(Debug, Clone)]
pub struct RetryingStore {
    inner: Arc<dyn ObjectStore>,
    policy: RetryPolicy,
}

impl RetryingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, policy: RetryPolicy) -> Self {
        RetryingStore { inner, policy }
    }
}

fn log(op: &'static str, key: &str) -> impl FnMut(&StoreError, Duration) {
    let key = key.to_string();
    move |e, wait| tracing::warn!(op, key = %key, error = %e, wait_ms = wait.as_millis() as u64, "transient storage error, retrying")
}

/// Runs `f` until it succeeds, fails for good, or the budget is spent.
macro_rules! retried {
    ($self:ident, $op:literal, $key:expr, $f:expr) => {
        ($f).retry($self.policy.backoff())
            .when(StoreError::is_retryable)
            .notify(log($op, $key))
            .await
    };
}

#[async_trait]
impl ObjectStore for RetryingStore {
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        retried!(self, "create_bucket", bucket, || self
            .inner
            .create_bucket(bucket))
    }

    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<ObjectMeta> {
        retried!(self, "put", key, || self.inner.put(
            bucket,
            key,
            data.clone()
        ))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        retried!(self, "get", key, || self.inner.get(bucket, key))
    }

    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        retried!(self, "get_range", key, || self.inner.get_range(
            bucket,
            key,
            range.clone()
        ))
    }

    async fn get_part(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
        version: &str,
    ) -> Result<Option<Bytes>> {
        retried!(self, "get_part", key, || self.inner.get_part(
            bucket,
            key,
            range.clone(),
            version
        ))
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        retried!(self, "head", key, || self.inner.head(bucket, key))
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        retried!(self, "list", prefix, || self.inner.list(bucket, prefix))
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        retried!(self, "delete", key, || self.inner.delete(bucket, key))
    }

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<()> {
        retried!(self, "copy", to, || self.inner.copy(bucket, from, to))
    }

    /// Opening is retried; a chunk that fails mid-stream is not (the
    /// bytes before it are gone): `download` callers try again whole.
    async fn reader(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectReader>> {
        retried!(self, "reader", key, || self.inner.reader(bucket, key))
    }

    /// A streaming write cannot be replayed from here (the chunks are gone);
    /// callers that can replay use `put_file`, which is retried whole.
    async fn writer(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>> {
        retried!(self, "writer", key, || self.inner.writer(bucket, key))
    }

    async fn put_file(&self, bucket: &str, key: &str, path: &Path) -> Result<ObjectMeta> {
        retried!(self, "put_file", key, || self
            .inner
            .put_file(bucket, key, path))
    }

    fn local_path(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        self.inner.local_path(bucket, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails the first `n` gets with a transient error, or always with
    /// `NotFound` when `n` is `usize::MAX`.
    #[derive(Debug)]
    struct Flaky {
        inner: MemoryStore,
        left: AtomicUsize,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl ObjectStore for Flaky {
        async fn create_bucket(&self, b: &str) -> Result<()> {
            self.inner.create_bucket(b).await
        }
        async fn put(&self, b: &str, k: &str, d: Bytes) -> Result<ObjectMeta> {
            self.inner.put(b, k, d).await
        }
        async fn get(&self, b: &str, k: &str) -> Result<Bytes> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(StoreError::Transient("flaky".into()));
            }
            self.inner.get(b, k).await
        }
        async fn head(&self, b: &str, k: &str) -> Result<ObjectMeta> {
            self.calls.fetch_add(1, Ordering::SeqCst);
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
    }

    fn policy(budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            min_delay_ms: 1,
            max_delay_ms: 5,
            budget_ms,
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_within_the_budget_and_others_are_not() {
        let flaky = Arc::new(Flaky {
            inner: MemoryStore::new(),
            left: AtomicUsize::new(3),
            calls: AtomicUsize::new(0),
        });
        flaky.create_bucket("bkt").await.unwrap();
        flaky
            .put("bkt", "k", Bytes::from_static(b"v"))
            .await
            .unwrap();
        let store = RetryingStore::new(flaky.clone(), policy(1_000));
        assert_eq!(store.get("bkt", "k").await.unwrap().as_ref(), b"v");
        assert_eq!(
            flaky.calls.load(Ordering::SeqCst),
            4,
            "three failures, then success"
        );

        // Not found is final: one call.
        flaky.calls.store(0, Ordering::SeqCst);
        assert!(matches!(
            store.head("bkt", "missing").await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);

        // A failure outlasting the budget surfaces as the transient error.
        flaky.left.store(usize::MAX, Ordering::SeqCst);
        let store = RetryingStore::new(flaky.clone(), policy(20));
        let err = store.get("bkt", "k").await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
}
