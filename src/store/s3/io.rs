//! Streaming I/O against S3: a GET read chunk by chunk ([`S3Reader`]) and
//! a multipart upload written part by part ([`S3Writer`]).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};

use super::error::{etag, map_sdk_error};
use crate::store::{ObjectMeta, ObjectReader, ObjectWriter, Result, StoreError};

/// A GET whose body is read as it arrives (the SDK's chunks), never
/// gathered whole.
pub(super) struct S3Reader {
    pub(super) meta: ObjectMeta,
    pub(super) body: ByteStream,
    pub(super) bucket: String,
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

/// Multipart upload: parts go out as the buffer fills; a small object is a
/// single PUT at `finish`. Nothing is visible until completion.
pub(super) struct S3Writer {
    pub(super) client: Client,
    pub(super) bucket: String,
    pub(super) key: String,
    pub(super) part_size: usize,
    pub(super) buf: BytesMut,
    pub(super) upload_id: Option<String>,
    pub(super) parts: Vec<CompletedPart>,
    pub(super) written: u64,
    pub(super) sse: super::sse::Sse,
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
            let out = super::sse::sse_write!(
                self.client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key),
                &self.sse
            )
            .send()
            .await
            .map_err(|e| self.err(e))?;
            self.upload_id = out.upload_id().map(str::to_string);
        }
        let number = self.parts.len() as i32 + 1;
        let out = super::sse::sse_customer!(
            self.client
                .upload_part()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(self.upload_id.clone().unwrap_or_default())
                .part_number(number)
                .body(ByteStream::from(data)),
            &self.sse
        )
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
            let out = super::sse::sse_write!(
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .body(ByteStream::from(rest)),
                &self.sse
            )
            .send()
            .await
            .map_err(|e| self.err(e))?;
            return Ok(ObjectMeta {
                key: self.key.clone(),
                size: self.written,
                version: etag(out.e_tag()),
                modified: None,
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
            modified: None,
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
