//! `[store]` in the configuration: which store, where, the bucket naming
//! (`{bucket_prefix}{project}`), how to reach S3 and the retry policy for
//! transient errors.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ObjectStore, RetryPolicy, StoreError};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Local,
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    pub dir: PathBuf,
    pub bucket_prefix: String,
    pub s3: S3Config,
    pub retry: RetryPolicy,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Local,
            dir: PathBuf::from("mudrock-data"),
            bucket_prefix: "project-".into(),
            s3: S3Config::default(),
            retry: RetryPolicy::default(),
        }
    }
}

impl StoreConfig {
    /// The bucket of a project; local runs without one use `local`.
    pub fn bucket(&self, project: Option<&str>) -> String {
        format!("{}{}", self.bucket_prefix, project.unwrap_or("local"))
    }

    /// Creates the bucket of a new project (idempotent). Project ids become
    /// part of a bucket name, so they must be lowercase letters, digits and
    /// dashes (UUIDs are).
    pub async fn create_project_bucket(
        &self,
        store: &dyn ObjectStore,
        project_id: &str,
    ) -> Result<String, StoreError> {
        let ok = !project_id.is_empty()
            && project_id
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !project_id.starts_with('-');
        let bucket = self.bucket(Some(project_id));
        if !ok {
            return Err(StoreError::InvalidKey {
                key: bucket,
                reason: format!(
                    "project id \"{project_id}\" must be lowercase letters, digits and dashes"
                ),
            });
        }
        store.create_bucket(&bucket).await.map_err(|e| match e {
            StoreError::Other(m) => StoreError::Other(format!(
                "cannot create the bucket of project {project_id}: {m}"
            )),
            other => other,
        })?;
        Ok(bucket)
    }
}

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
    /// Server-side encryption of every object mudrock writes: "none",
    /// "AES256" (SSE-S3), "aws:kms" (SSE-KMS) or "customer" (SSE-C).
    pub sse: SseMode,
    /// SSE-KMS: the key (none: the bucket's default KMS key).
    pub sse_kms_key_id: Option<String>,
    /// SSE-C: the 32-byte key, base64 (better set through
    /// MUDROCK_STORE__S3__SSE_CUSTOMER_KEY than in a file).
    pub sse_customer_key: Option<String>,
    /// PEM file of the CA(s) an https endpoint's certificate chains to,
    /// trusted besides the system's roots.
    pub ca_bundle: Option<std::path::PathBuf>,
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
            sse: Default::default(),
            sse_kms_key_id: None,
            sse_customer_key: None,
            ca_bundle: None,
        }
    }
}

/// `store.s3.sse`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseMode {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    Kms,
    #[serde(rename = "customer")]
    Customer,
}
