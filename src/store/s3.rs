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
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::{
    ObjectMeta, ObjectReader, ObjectStore, ObjectWriter, Result, StoreError, check_bucket,
    check_key,
};

/// How to reach the S3 server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "snake_case")]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000` for MinIO; none for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// Static credentials; without them the usual AWS chain is used
    /// (environment, profile, instance metadata).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`), as MinIO needs.
    pub force_path_style: bool,
    /// Send and check checksums only when an operation requires them.
    pub checksums_when_required: bool,
    /// Multipart part size in bytes (S3's minimum is 5 MiB).
    pub part_size: usize,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            force_path_style: true,
            checksums_when_required: true,
            part_size: 16 << 20,
        }
    }
}

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    part_size: usize,
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
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// GET an object, or a byte range of it (`bytes=a-b`), into memory.
    async fn fetch(&self, bucket: &str, key: &str, range: Option<String>) -> Result<Bytes> {
        check_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_range(range)
            .send()
            .await
        {
            Ok(o) => o,
            // A range starting past the end: nothing there.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Ok(Bytes::new());
            }
            Err(e) => return Err(map_sdk_error(bucket, key, e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Transient(format!("{bucket}/{key}: reading body: {e}")))?;
        Ok(body.into_bytes())
    }
}

/// A GET whose body is read as it arrives (the SDK's chunks), never
/// gathered whole.
struct S3Reader {
    meta: ObjectMeta,
    body: ByteStream,
    bucket: String,
}

#[async_trait]
impl ObjectReader for S3Reader {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.body.next().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(StoreError::Transient(format!(
                "{}/{}: reading body: {e}",
                self.bucket, self.meta.key
            ))),
        }
    }
}

/// The one place SDK errors become store errors: not found, unauthorized,
/// transient (throttling, timeouts, connection failures, 5xx), other.
pub fn map_sdk_error<E>(bucket: &str, key: &str, e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let msg = format!("{bucket}/{key}: {}", describe(&e));
    match (&e, status, code.as_deref()) {
        (_, _, Some("NoSuchBucket")) => StoreError::NoSuchBucket(bucket.into()),
        (_, _, Some("NoSuchKey" | "NotFound")) | (_, Some(404), _) => StoreError::NotFound {
            bucket: bucket.into(),
            key: key.into(),
        },
        (_, Some(401 | 403), _)
        | (_, _, Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch")) => {
            StoreError::Unauthorized {
                bucket: bucket.into(),
                key: key.into(),
            }
        }
        (
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_),
            _,
            _,
        ) => StoreError::Transient(msg),
        (_, Some(408 | 429 | 500..=599), _)
        | (_, _, Some("SlowDown" | "RequestTimeout" | "ServiceUnavailable")) => {
            StoreError::Transient(msg)
        }
        _ => StoreError::Other(msg),
    }
}

fn describe<E: std::error::Error + ProvideErrorMetadata + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => err.to_string(),
            }
        }
        other => {
            // The SDK's Display is terse ("dispatch failure"); add the source.
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(e) = src {
                s.push_str(": ");
                s.push_str(&e.to_string());
                src = e.source();
            }
            s
        }
    }
}

fn etag(e: Option<&str>) -> String {
    e.unwrap_or_default().trim_matches('"').to_string()
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        check_bucket(bucket)?;
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(match map_sdk_error(bucket, "", e) {
                StoreError::Other(m) => {
                    StoreError::Other(format!("cannot create bucket {bucket}: {m}"))
                }
                other => other,
            }),
        }
    }

    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<ObjectMeta> {
        check_key(key)?;
        let size = data.len() as u64;
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| map_sdk_error(bucket, key, e))?;
        Ok(ObjectMeta {
            key: key.into(),
            size,
            version: etag(out.e_tag()),
        })
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        self.fetch(bucket, key, None).await
    }

    async fn reader(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectReader>> {
        check_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_sdk_error(bucket, key, e))?;
        Ok(Box::new(S3Reader {
            meta: ObjectMeta {
                key: key.into(),
                size: out.content_length().unwrap_or(0) as u64,
                version: etag(out.e_tag()),
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

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        check_key(key)?;
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_sdk_error(bucket, key, e))?;
        Ok(ObjectMeta {
            key: key.into(),
            size: out.content_length().unwrap_or(0) as u64,
            version: etag(out.e_tag()),
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

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<ObjectMeta> {
        check_key(from)?;
        check_key(to)?;
        let source = format!("{bucket}/{}", urlencode_key(from));
        self.client
            .copy_object()
            .bucket(bucket)
            .key(to)
            .copy_source(source)
            .send()
            .await
            .map_err(|e| match map_sdk_error(bucket, from, e) {
                // A missing source reads as NoSuchKey on some servers, 404 on others.
                StoreError::NoSuchBucket(_) => StoreError::NotFound {
                    bucket: bucket.into(),
                    key: from.into(),
                },
                other => other,
            })?;
        self.head(bucket, to).await
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
            let out = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body)
                .send()
                .await
                .map_err(|e| map_sdk_error(bucket, key, e))?;
            return Ok(ObjectMeta {
                key: key.into(),
                size,
                version: etag(out.e_tag()),
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

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/`.
fn urlencode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Multipart upload: parts go out as the buffer fills; a small object is a
/// single PUT at `finish`. Nothing is visible until completion.
struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    part_size: usize,
    buf: BytesMut,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    written: u64,
}

impl S3Writer {
    fn err<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        e: SdkError<E, HttpResponse>,
    ) -> StoreError {
        map_sdk_error(&self.bucket, &self.key, e)
    }

    async fn upload_part(&mut self, data: Bytes) -> Result<()> {
        if self.upload_id.is_none() {
            let out = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .send()
                .await
                .map_err(|e| self.err(e))?;
            self.upload_id = out.upload_id().map(str::to_string);
        }
        let number = self.parts.len() as i32 + 1;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .part_number(number)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| self.err(e))?;
        self.parts.push(
            CompletedPart::builder()
                .set_e_tag(out.e_tag().map(str::to_string))
                .part_number(number)
                .build(),
        );
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for S3Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.written += chunk.len() as u64;
        self.buf.extend_from_slice(&chunk);
        while self.buf.len() >= self.part_size {
            let part = self.buf.split_to(self.part_size).freeze();
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        let rest = self.buf.split().freeze();
        let Some(upload_id) = self.upload_id.clone() else {
            let out = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .body(ByteStream::from(rest))
                .send()
                .await
                .map_err(|e| self.err(e))?;
            return Ok(ObjectMeta {
                key: self.key.clone(),
                size: self.written,
                version: etag(out.e_tag()),
            });
        };
        if !rest.is_empty() {
            self.upload_part(rest).await?;
        }
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(std::mem::take(&mut self.parts)))
            .build();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(done)
            .send()
            .await
            .map_err(|e| self.err(e))?;
        Ok(ObjectMeta {
            key: self.key.clone(),
            size: self.written,
            version: etag(out.e_tag()),
        })
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        if let Some(id) = &self.upload_id {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
