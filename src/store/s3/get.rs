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
        check_key(key)?;
        let out = match sse_customer!(
            self.client
                .get_object()
                .bucket(bucket)
                .key(key)
                .set_range(range),
            &self.sse
        )
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

    /// Bytes `range` of the object if its ETag is still `version`; `None`
    /// when the server answers 412 (another version now).
    pub(super) async fn part(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
        version: &str,
    ) -> Result<Option<Bytes>> {
        check_key(key)?;
        let last = range.end.max(range.start + 1) - 1;
        let asked = sse_customer!(
            self.client
                .get_object()
                .bucket(bucket)
                .key(key)
                .if_match(format!("\"{version}\""))
                .range(format!("bytes={}-{last}", range.start)),
            &self.sse
        )
        .send()
        .await;
        let out = match asked {
            Ok(o) => o,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
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
