//! TLS to the S3 endpoint: the SDK's own HTTPS client (hyper, rustls on
//! aws-lc), with the CAs of `store.s3.ca_bundle` trusted besides the
//! system's roots; or, for an `http://` endpoint, the same client without
//! TLS, so no process reads the system's roots for a connection that
//! never uses them (a few milliseconds of every CLI run on such a store).

use std::path::Path;

use super::super::{Result, StoreError};

/// The HTTP client for `endpoint`, where the SDK's default is not the
/// one: with extra CAs, or without TLS for a plain `http://` endpoint.
pub(super) fn http_client(
    endpoint: Option<&str>,
    ca: Option<&Path>,
) -> Result<Option<aws_sdk_s3::config::SharedHttpClient>> {
    if let Some(ca) = ca {
        return https_client(ca).map(Some);
    }
    let plain = endpoint.is_some_and(|e| {
        e.get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
    });
    Ok(plain.then(|| aws_smithy_http_client::Builder::new().build_http()))
}

/// The SDK's HTTPS client trusting `ca` (PEM) besides the system's roots.
fn https_client(ca: &Path) -> Result<aws_sdk_s3::config::SharedHttpClient> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_http_endpoint_without_extra_cas_skips_tls() {
        let plain = |e: Option<&str>| http_client(e, None).unwrap().is_some();
        assert!(plain(Some("http://127.0.0.1:7480")));
        assert!(plain(Some("HTTP://minio:9000")));
        assert!(!plain(Some("https://s3.example.com")), "TLS kept");
        assert!(!plain(None), "AWS itself: the SDK's default client");
        assert!(!plain(Some("http")), "too short to be a scheme");
        let missing = Path::new("/nonexistent/ca.pem");
        let err = http_client(Some("http://x"), Some(missing)).unwrap_err();
        assert!(
            err.to_string().contains("store.s3.ca_bundle"),
            "a CA bundle always means TLS, and a missing one is named: {err}"
        );
    }
}
