//! An in-memory store for unit tests: the same semantics as the others,
//! nothing on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::{
    ObjectMeta, ObjectReader, ObjectStore, ObjectWriter, OneChunk, Result, StoreError,
    check_bucket, check_key,
};

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: std::sync::Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    buckets: Mutex<BTreeSet<String>>,
    objects: Mutex<BTreeMap<(String, String), (Bytes, u64)>>,
    next_version: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Inner {
    fn check(&self, bucket: &str, key: &str) -> Result<()> {
        check_bucket(bucket)?;
        check_key(key)?;
        if !self.buckets.lock().unwrap().contains(bucket) {
            return Err(StoreError::NoSuchBucket(bucket.into()));
        }
        Ok(())
    }

    fn insert(&self, bucket: &str, key: &str, data: Bytes) -> ObjectMeta {
        let v = self.next_version.fetch_add(1, Ordering::Relaxed);
        let size = data.len() as u64;
        self.objects
            .lock()
            .unwrap()
            .insert((bucket.into(), key.into()), (data, v));
        ObjectMeta {
            key: key.into(),
            size,
            version: format!("v{v}"),
            modified: None,
        }
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        check_bucket(bucket)?;
        self.inner.buckets.lock().unwrap().insert(bucket.into());
        Ok(())
    }

    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<ObjectMeta> {
        self.inner.check(bucket, key)?;
        Ok(self.inner.insert(bucket, key, data))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        self.inner.check(bucket, key)?;
        let objects = self.inner.objects.lock().unwrap();
        objects
            .get(&(bucket.to_string(), key.to_string()))
            .map(|(b, _)| b.clone())
            .ok_or_else(|| StoreError::NotFound {
                bucket: bucket.into(),
                key: key.into(),
            })
    }

    async fn reader(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectReader>> {
        self.inner.check(bucket, key)?;
        let objects = self.inner.objects.lock().unwrap();
        let (data, v) = objects
            .get(&(bucket.to_string(), key.to_string()))
            .ok_or_else(|| StoreError::NotFound {
                bucket: bucket.into(),
                key: key.into(),
            })?;
        Ok(Box::new(OneChunk {
            meta: ObjectMeta {
                key: key.into(),
                size: data.len() as u64,
                version: format!("v{v}"),
                modified: None,
            },
            data: Some(data.clone()),
        }))
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        self.inner.check(bucket, key)?;
        let objects = self.inner.objects.lock().unwrap();
        objects
            .get(&(bucket.to_string(), key.to_string()))
            .map(|(b, v)| ObjectMeta {
                key: key.into(),
                size: b.len() as u64,
                version: format!("v{v}"),
                modified: None,
            })
            .ok_or_else(|| StoreError::NotFound {
                bucket: bucket.into(),
                key: key.into(),
            })
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        check_bucket(bucket)?;
        if !self.inner.buckets.lock().unwrap().contains(bucket) {
            return Err(StoreError::NoSuchBucket(bucket.into()));
        }
        let objects = self.inner.objects.lock().unwrap();
        Ok(objects
            .range((bucket.to_string(), prefix.to_string())..)
            .take_while(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, k), (d, v))| ObjectMeta {
                key: k.clone(),
                size: d.len() as u64,
                version: format!("v{v}"),
                modified: None,
            })
            .collect())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.inner.check(bucket, key)?;
        self.inner
            .objects
            .lock()
            .unwrap()
            .remove(&(bucket.to_string(), key.to_string()));
        Ok(())
    }

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<()> {
        let data = self.get(bucket, from).await?;
        self.put(bucket, to, data).await.map(|_| ())
    }

    async fn writer(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>> {
        self.inner.check(bucket, key)?;
        Ok(Box::new(MemoryWriter {
            inner: self.inner.clone(),
            bucket: bucket.into(),
            key: key.into(),
            buf: BytesMut::new(),
        }))
    }
}

struct MemoryWriter {
    inner: std::sync::Arc<Inner>,
    bucket: String,
    key: String,
    buf: BytesMut,
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        Ok(self
            .inner
            .insert(&self.bucket, &self.key, self.buf.freeze()))
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
