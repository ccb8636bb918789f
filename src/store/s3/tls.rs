//! TLS to the S3 endpoint: the SDK's own HTTPS client (hyper, rustls on
//! aws-lc), with the CAs of `store.s3.ca_bundle` trusted besides the
//! system's roots.

use std::path::Path;

use super::super::{Result, StoreError};

/// The SDK's HTTPS client trusting `ca` (PEM) besides the system's roots.
pub(super) fn https_client(ca: &Path) -> Result<aws_sdk_s3::config::SharedHttpClient> {
    use aws_smithy_http_client::tls;
    let pem = std::fs::read(ca)
        .map_err(|e| StoreError::Other(format!("store.s3.ca_bundle {}: {e}", ca.display())))?;
    let ctx = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::default().with_pem_certificate(pem))
        .build()
        .map_err(|e| StoreError::Other(format!("store.s3.ca_bundle {}: {e}", ca.display())))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(ctx)
        .build_https())
}
