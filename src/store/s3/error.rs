//! The one place SDK errors become [`StoreError`]s, ETags become object
//! versions, and keys become `x-amz-copy-source` paths.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::store::StoreError;

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
        // Not implemented stays not implemented: no retry helps.
        (_, Some(501), _) | (_, _, Some("NotImplemented")) => StoreError::Other(msg),
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

pub(super) fn etag(e: Option<&str>) -> String {
    e.unwrap_or_default().trim_matches('"').to_string()
}

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/`.
pub(super) fn urlencode_key(key: &str) -> String {
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

/// An S3 time as chrono's.
pub(super) fn time(
    t: Option<&aws_sdk_s3::primitives::DateTime>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn answer(status: u16, code: &str) -> StoreError {
        let err = GetObjectError::generic(ErrorMetadata::builder().code(code).build());
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        map_sdk_error("b", "k", SdkError::service_error(err, raw))
    }

    #[test]
    fn statuses_and_codes_map_to_what_a_retry_can_do() {
        assert!(matches!(
            answer(404, "NoSuchKey"),
            StoreError::NotFound { .. }
        ));
        assert!(matches!(
            answer(403, "AccessDenied"),
            StoreError::Unauthorized { .. }
        ));
        assert!(answer(503, "SlowDown").is_retryable());
        assert!(answer(500, "InternalError").is_retryable());
        // A server that does not implement a request never will.
        let e = answer(501, "NotImplemented");
        assert!(!e.is_retryable(), "{e:?}");
        assert_eq!(e.to_string(), "storage error: b/k: NotImplemented");
    }
}
