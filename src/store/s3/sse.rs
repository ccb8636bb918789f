//! Server-side encryption of what mudrock writes to S3 (`store.s3.sse`):
//! SSE-S3 (`AES256`), SSE-KMS (`aws:kms`, with `sse_kms_key_id` or the
//! bucket's default key) or SSE-C (`customer`, with `sse_customer_key`:
//! 32 bytes, base64). SSE-S3 and SSE-KMS are sent on every write (put,
//! multipart create, copy); SSE-C's key also on every read (get, head,
//! ranged get), on each uploaded part and as the copy source's key, since
//! the server keeps no copy of it.

use crate::store::StoreError;
pub use crate::store::config::SseMode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::Digest as _;

/// The encryption a store applies, resolved from the configuration.
#[derive(Clone, Default)]
pub(crate) enum Sse {
    #[default]
    None,
    Aes256,
    Kms(Option<String>),
    Customer {
        key: String,
        md5: String,
    },
}

impl std::fmt::Debug for Sse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sse::None => write!(f, "none"),
            Sse::Aes256 => write!(f, "AES256"),
            Sse::Kms(k) => write!(f, "aws:kms({})", k.as_deref().unwrap_or("default key")),
            Sse::Customer { .. } => write!(f, "customer(key redacted)"),
        }
    }
}

impl Sse {
    pub(crate) fn from_config(
        mode: SseMode,
        kms_key_id: Option<&str>,
        customer_key: Option<&str>,
    ) -> Result<Sse, StoreError> {
        let bad = |m: &str| StoreError::Other(format!("store.s3: {m}"));
        Ok(match mode {
            SseMode::None => Sse::None,
            SseMode::Aes256 => Sse::Aes256,
            SseMode::Kms => Sse::Kms(kms_key_id.map(str::to_string)),
            SseMode::Customer => {
                let k = customer_key.ok_or_else(|| {
                    bad("sse = \"customer\" needs sse_customer_key (32 bytes, base64)")
                })?;
                let raw = STANDARD
                    .decode(k.trim())
                    .map_err(|_| bad("sse_customer_key is not base64"))?;
                if raw.len() != 32 {
                    return Err(bad(&format!(
                        "sse_customer_key must be 32 bytes (AES-256), not {}",
                        raw.len()
                    )));
                }
                Sse::Customer {
                    key: STANDARD.encode(&raw),
                    md5: STANDARD.encode(md5::Md5::digest(&raw)),
                }
            }
        })
    }
}

/// Applies the write-side encryption to a request builder that has the
/// SSE fields (put, create multipart upload, copy).
macro_rules! sse_write {
    ($b:expr, $sse:expr) => {{
        let b = $b;
        match $sse {
            $crate::store::s3::sse::Sse::None => b,
            $crate::store::s3::sse::Sse::Aes256 => {
                b.server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            }
            $crate::store::s3::sse::Sse::Kms(k) => b
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .set_ssekms_key_id(k.clone()),
            $crate::store::s3::sse::Sse::Customer { key, md5 } => b
                .sse_customer_algorithm("AES256")
                .sse_customer_key(key)
                .sse_customer_key_md5(md5),
        }
    }};
}

/// SSE-C's key on a request that reads (get, head) or uploads a part.
macro_rules! sse_customer {
    ($b:expr, $sse:expr) => {{
        let b = $b;
        match $sse {
            $crate::store::s3::sse::Sse::Customer { key, md5 } => b
                .sse_customer_algorithm("AES256")
                .sse_customer_key(key)
                .sse_customer_key_md5(md5),
            _ => b,
        }
    }};
}

/// SSE-C's key for a copy's source.
macro_rules! sse_copy_source {
    ($b:expr, $sse:expr) => {{
        let b = $b;
        match $sse {
            $crate::store::s3::sse::Sse::Customer { key, md5 } => b
                .copy_source_sse_customer_algorithm("AES256")
                .copy_source_sse_customer_key(key)
                .copy_source_sse_customer_key_md5(md5),
            _ => b,
        }
    }};
}

pub(crate) use {sse_copy_source, sse_customer, sse_write};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_keys_are_checked_and_never_printed() {
        let key = STANDARD.encode([7u8; 32]);
        let s = Sse::from_config(SseMode::Customer, None, Some(&key)).unwrap();
        assert_eq!(format!("{s:?}"), "customer(key redacted)");
        let Sse::Customer { md5, .. } = s else {
            panic!()
        };
        assert_eq!(md5.len(), 24);
        for (k, msg) in [
            (None, "needs sse_customer_key"),
            (Some("%%%"), "is not base64"),
            (Some("AAAA"), "must be 32 bytes (AES-256), not 3"),
        ] {
            let e = Sse::from_config(SseMode::Customer, None, k)
                .unwrap_err()
                .to_string();
            assert!(e.contains(msg), "{e}");
        }
    }
}
