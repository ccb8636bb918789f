//! GETs into memory: a whole object or a byte range of it, and a part of
//! one version (`If-Match` on its ETag) for concurrent downloads.

use bytes::Bytes;

use super::S3Store;
use super::error::map_sdk_error;
use super::sse::sse_customer;
use crate::store::{Result, StoreError, check_key};

impl S3Store {
    /// GET an object, or a byte range of it (`bytes=a-b`), into memory.
    pub(super) async fn fetch(
        &self,
        bucket: &str,
        key: &str,
        range: Option<String>,
    ) -> Result<Bytes> {
        // 416, a range starting past the end: nothing there.
        let got = self.get_bytes(bucket, key, range, None, 416).await?;
        Ok(got.unwrap_or_default())
    }

    /// Bytes `range` of the object if its ETag is still `version`; `None`
    /// when the server answers 412 (another version now).
    pub(super) async fn part(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
        version: &str,
    ) -> Result<Option<Bytes>> {
        let last = range.end.max(range.start + 1) - 1;
        let range = Some(format!("bytes={}-{last}", range.start));
        let if_match = Some(format!("\"{version}\""));
        self.get_bytes(bucket, key, range, if_match, 412).await
    }

    /// One GET into memory; `None` when the server answers `none_on`.
    async fn get_bytes(
        &self,
        bucket: &str,
        key: &str,
        range: Option<String>,
        if_match: Option<String>,
        none_on: u16,
    ) -> Result<Option<Bytes>> {
        check_key(key)?;
        let asked = sse_customer!(
            self.client
                .get_object()
                .bucket(bucket)
                .key(key)
                .set_range(range)
                .set_if_match(if_match),
            &self.sse
        )
        .send()
        .await;
        let out = match asked {
            Ok(o) => o,
            Err(e)
                if e.raw_response()
                    .is_some_and(|r| r.status().as_u16() == none_on) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(map_sdk_error(bucket, key, e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Transient(format!("{bucket}/{key}: reading body: {e}")))?;
        Ok(Some(body.into_bytes()))
    }
}
