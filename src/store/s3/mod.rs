//! The production store: S3 (MinIO, Ceph RGW, AWS) through aws-sdk-s3.
//!
//! Path-style addressing and a custom endpoint for MinIO-likes; checksums
//! only when required by default, because the SDK's newer default sends
//! checksums several S3 servers reject. Large objects are uploaded in parts
//! of `part_size`, so memory stays bounded by one part whatever the file.
//! SDK errors are mapped to [`StoreError`] kinds in one place,
//! [`map_sdk_error`]. The SDK does not retry: `RetryingStore` does, with
//! the configured budget.

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::{Bytes, BytesMut};

mod error;
mod get;
mod io;
pub(crate) mod sse;
mod tls;

pub use error::map_sdk_error;
use error::{etag, time, urlencode_key};
use io::{S3Reader, S3Writer};
use sse::{Sse, sse_copy_source, sse_customer, sse_write};

use super::{
    ObjectMeta, ObjectReader, ObjectStore, ObjectWriter, Result, S3Config, StoreError,
    check_bucket, check_key,
};

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    part_size: usize,
    sse: Sse,
    /// Buckets this process created or found: a worker's later runs skip
    /// the round trip (mudrock never deletes a bucket).
    known_buckets: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl S3Store {
    pub async fn connect(cfg: &S3Config) -> Result<Self> {
        if cfg.part_size < 5 << 20 {
            return Err(StoreError::Other(format!(
                "part_size {} is below S3's minimum of 5 MiB",
                cfg.part_size
            )));
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()));
        if let Some(e) = &cfg.endpoint {
            loader = loader.endpoint_url(e);
        }
        if let (Some(k), Some(s)) = (&cfg.access_key_id, &cfg.secret_access_key) {
            loader =
                loader.credentials_provider(Credentials::new(k, s, None, None, "mudrock-config"));
        }
        // One retry layer: `RetryingStore` (with the configured budget)
        // wraps this store, so the SDK's own retries would only multiply
        // the waits. Timeouts keep a hung server from stalling a run.
        loader = loader
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .operation_attempt_timeout(std::time::Duration::from_secs(300))
                    .build(),
            );
        let sse = Sse::from_config(
            cfg.sse,
            cfg.sse_kms_key_id.as_deref(),
            cfg.sse_customer_key.as_deref(),
        )?;
        if let Some(client) = tls::http_client(cfg.endpoint.as_deref(), cfg.ca_bundle.as_deref())? {
            loader = loader.http_client(client);
        }
        let shared = loader.load().await;
        let mut b =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(cfg.force_path_style);
        if cfg.checksums_when_required {
            b = b
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Store {
            client: Client::from_conf(b.build()),
            part_size: cfg.part_size,
            sse,
            known_buckets: Default::default(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Copies by reading and writing (with this store's encryption), one
    /// part in memory at a time.
    async fn copy_through(&self, bucket: &str, from: &str, to: &str) -> Result<()> {
        let mut r = self.reader(bucket, from).await?;
        let mut w = self.writer(bucket, to).await?;
        while let Some(chunk) = r.next_chunk().await? {
            if let Err(e) = w.write(chunk).await {
                let _ = w.abort().await;
                return Err(e);
            }
        }
        w.finish().await.map(|_| ())
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        check_bucket(bucket)?;
        let known = || self.known_buckets.lock().unwrap_or_else(|e| e.into_inner());
        if known().contains(bucket) {
            return Ok(());
        }
        match self.client.create_bucket().bucket(bucket).send().await {
            Err(e)
                if !matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                return Err(match map_sdk_error(bucket, "", e) {
                    StoreError::Other(m) => {
                        StoreError::Other(format!("cannot create bucket {bucket}: {m}"))
                    }
                    other => other,
                });
            }
            _ => {}
        }
        known().insert(bucket.to_string());
        Ok(())
    }

    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<ObjectMeta> {
        check_key(key)?;
        let size = data.len() as u64;
        let out = sse_write!(
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(data)),
            &self.sse
        )
        .send()
        .await
        .map_err(|e| map_sdk_error(bucket, key, e))?;
        Ok(ObjectMeta {
            key: key.into(),
            size,
            version: etag(out.e_tag()),
            modified: None,
        })
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        self.fetch(bucket, key, None).await
    }

    async fn reader(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectReader>> {
        check_key(key)?;
        let out = sse_customer!(self.client.get_object().bucket(bucket).key(key), &self.sse)
            .send()
            .await
            .map_err(|e| map_sdk_error(bucket, key, e))?;
        Ok(Box::new(S3Reader {
            meta: ObjectMeta {
                key: key.into(),
                size: out.content_length().unwrap_or(0) as u64,
                version: etag(out.e_tag()),
                modified: time(out.last_modified()),
            },
            body: out.body,
            bucket: bucket.into(),
        }))
    }

    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        check_key(key)?;
        if range.end <= range.start {
            // S3 has no empty range; still say whether the object exists.
            self.head(bucket, key).await?;
            return Ok(Bytes::new());
        }
        self.fetch(
            bucket,
            key,
            Some(format!("bytes={}-{}", range.start, range.end - 1)),
        )
        .await
    }

    async fn get_part(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
        version: &str,
    ) -> Result<Option<Bytes>> {
        self.part(bucket, key, range, version).await
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        check_key(key)?;
        let out = sse_customer!(self.client.head_object().bucket(bucket).key(key), &self.sse)
            .send()
            .await
            .map_err(|e| map_sdk_error(bucket, key, e))?;
        Ok(ObjectMeta {
            key: key.into(),
            size: out.content_length().unwrap_or(0) as u64,
            version: etag(out.e_tag()),
            modified: time(out.last_modified()),
        })
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| map_sdk_error(bucket, prefix, e))?;
            for o in page.contents() {
                out.push(ObjectMeta {
                    key: o.key().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or(0) as u64,
                    version: etag(o.e_tag()),
                    modified: time(o.last_modified()),
                });
            }
            match (page.is_truncated(), page.next_continuation_token()) {
                (Some(true), Some(t)) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        check_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match map_sdk_error(bucket, key, e) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<()> {
        check_key(from)?;
        check_key(to)?;
        let source = format!("{bucket}/{}", urlencode_key(from));
        let req = self
            .client
            .copy_object()
            .bucket(bucket)
            .key(to)
            .copy_source(source);
        let sent = sse_copy_source!(sse_write!(req, &self.sse), &self.sse)
            .send()
            .await;
        // Some servers (Ceph RGW) do not implement a server-side copy with
        // encryption headers: copy through this process then, streaming.
        if let Err(e) = &sent
            && e.code() == Some("NotImplemented")
            && !matches!(self.sse, Sse::None)
        {
            return self.copy_through(bucket, from, to).await;
        }
        sent.map_err(|e| match map_sdk_error(bucket, from, e) {
            // A missing source reads as NoSuchKey on some servers, 404 on others.
            StoreError::NoSuchBucket(_) => StoreError::NotFound {
                bucket: bucket.into(),
                key: from.into(),
            },
            other => other,
        })?;
        Ok(())
    }

    async fn writer(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>> {
        check_key(key)?;
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: bucket.into(),
            key: key.into(),
            part_size: self.part_size,
            buf: BytesMut::new(),
            upload_id: None,
            parts: Vec::new(),
            written: 0,
            sse: self.sse.clone(),
        }))
    }

    async fn put_file(&self, bucket: &str, key: &str, path: &Path) -> Result<ObjectMeta> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?
            .len();
        if size as usize <= self.part_size {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?;
            check_key(key)?;
            let out = sse_write!(
                self.client.put_object().bucket(bucket).key(key).body(body),
                &self.sse
            )
            .send()
            .await
            .map_err(|e| map_sdk_error(bucket, key, e))?;
            return Ok(ObjectMeta {
                key: key.into(),
                size,
                version: etag(out.e_tag()),
                modified: None,
            });
        }
        // Larger files stream through the multipart writer, one part in memory.
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?;
        let mut w = self.writer(bucket, key).await?;
        let mut buf = vec![0u8; self.part_size];
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                match f.read(&mut buf[filled..]).await {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(StoreError::Other(format!("{}: {e}", path.display())));
                    }
                }
            }
            if filled == 0 {
                break;
            }
            if let Err(e) = w.write(Bytes::copy_from_slice(&buf[..filled])).await {
                let _ = w.abort().await;
                return Err(e);
            }
        }
        w.finish().await
    }
}
