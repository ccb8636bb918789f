//! S3 encryption and TLS against the test S3 server (Ceph RGW, started by
//! scripts/test.sh with SSE-C allowed without TLS behind the proxy and a
//! test SSE-KMS key):
//! - SSE-C for real: the store round-trips (put, multipart writer, copy,
//!   ranged get, head) with its key; a store with another key, or none,
//!   reads nothing and says why.
//! - SSE-KMS for real: objects written with the key id are encrypted with
//!   it (RGW's HEAD says so).
//! - TLS: the store talks https to a local TLS proxy in front of RGW whose
//!   certificate chains to a test CA given as `ca_bundle` (and is refused
//!   without it); the proxy records the encryption headers of every request,
//!   which is how SSE-S3 (`AES256`, which this RGW has no backend for) is
//!   checked: the header is on every write.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use mudrock::store::{ObjectStore, S3Config, S3Store, SseMode, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config() -> S3Config {
    common::s3_test_config()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

fn key_b64(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

async fn store(cfg: &S3Config) -> S3Store {
    S3Store::connect(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_c_round_trips_with_its_key_and_nothing_reads_without_it() {
    let mut cfg = config();
    cfg.sse = SseMode::Customer;
    cfg.sse_customer_key = Some(key_b64(1));
    let s = store(&cfg).await;
    let b = unique("ssec");
    s.create_bucket(&b).await.unwrap();
    s.put(&b, "small", Bytes::from_static(b"secret rows"))
        .await
        .unwrap();
    // Multipart: more than one 5 MiB part.
    let big: Vec<u8> = (0..(11u32 << 20)).map(|i| (i % 251) as u8).collect();
    let mut w = s.writer(&b, "big").await.unwrap();
    w.write(Bytes::from(big.clone())).await.unwrap();
    w.finish().await.unwrap();
    assert_eq!(
        s.get(&b, "small").await.unwrap(),
        Bytes::from_static(b"secret rows")
    );
    assert_eq!(s.get(&b, "big").await.unwrap().as_ref(), &big[..]);
    assert_eq!(
        s.get_range(&b, "big", 10..20).await.unwrap().as_ref(),
        &big[10..20]
    );
    let head = s.head(&b, "big").await.unwrap();
    assert_eq!(head.size, big.len() as u64);
    // A part of the version, as large sources are downloaded: the key goes
    // with it too.
    let part = s
        .get_part(&b, "big", (1 << 20)..(9 << 20), &head.version)
        .await
        .unwrap();
    assert!(
        part.as_deref() == Some(&big[1 << 20..9 << 20]),
        "a part of an SSE-C object"
    );
    s.copy(&b, "small", "copied").await.unwrap();
    assert_eq!(
        s.get(&b, "copied").await.unwrap(),
        Bytes::from_static(b"secret rows")
    );

    // Another key, and no key: nothing comes back, and the error is clear.
    for other in [Some(key_b64(2)), None] {
        let mut c = config();
        if let Some(k) = other.clone() {
            c.sse = SseMode::Customer;
            c.sse_customer_key = Some(k);
        }
        let o = store(&c).await;
        let err = o.get(&b, "small").await.unwrap_err();
        assert!(!matches!(err, StoreError::NotFound { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(!msg.contains("secret rows"), "{msg}");
        assert!(o.head(&b, "small").await.is_err(), "{other:?}");
    }
    // A bad key never reaches the server.
    let mut c = config();
    c.sse = SseMode::Customer;
    c.sse_customer_key = Some("c2hvcnQ=".into());
    let err = S3Store::connect(&c).await.unwrap_err().to_string();
    assert!(
        err.ends_with("store.s3: sse_customer_key must be 32 bytes (AES-256), not 5"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_kms_encrypts_with_the_named_key() {
    let mut cfg = config();
    cfg.sse = SseMode::Kms;
    cfg.sse_kms_key_id = Some("mudrock-test".into());
    let s = store(&cfg).await;
    let b = unique("ssekms");
    s.create_bucket(&b).await.unwrap();
    s.put(&b, "k", Bytes::from_static(b"rows")).await.unwrap();
    assert_eq!(s.get(&b, "k").await.unwrap(), Bytes::from_static(b"rows"));
    let head = s
        .client()
        .head_object()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|e| e.as_str()),
        Some("aws:kms")
    );
    assert_eq!(head.ssekms_key_id(), Some("mudrock-test"));
}

/// A test CA and a certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    common::tls::ca(dir, "ca", true);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// A TLS proxy in front of `upstream` (plain TCP) that records the request
/// line and the `x-amz-server-side-encryption*` headers of each request.
async fn tls_proxy(cert: &Path, key: &Path, upstream: String) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer, pki_types::pem::PemObject};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, upstream, seen) = (acceptor.clone(), upstream.clone(), seen2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = tokio::io::split(tls);
                let (mut ur, mut uw) = up.into_split();
                let to_server = async move {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        for line in String::from_utf8_lossy(&buf[..n]).split("\r\n") {
                            let l = line.to_ascii_lowercase();
                            let method = ["put ", "get ", "head ", "post "]
                                .iter()
                                .any(|m| l.starts_with(m));
                            if method
                                || l.starts_with("x-amz-server-side-encryption")
                                || l.starts_with("x-amz-copy-source-server-side-encryption")
                            {
                                seen.lock().unwrap().push(line.to_string());
                            }
                        }
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = uw.shutdown().await;
                };
                let to_client = async move {
                    let _ = tokio::io::copy(&mut ur, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(to_server, to_client);
            });
        }
    });
    (format!("https://127.0.0.1:{}", addr.port()), seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_custom_ca_and_the_encryption_headers_on_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let upstream = config()
        .endpoint
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let (endpoint, seen) = tls_proxy(&cert, &key, upstream).await;

    // Without the CA the certificate is not trusted.
    let mut untrusting = config();
    untrusting.endpoint = Some(endpoint.clone());
    let s = store(&untrusting).await;
    let err = s.create_bucket(&unique("tls")).await.unwrap_err();
    assert!(!matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request got through: {:?}",
        seen.lock().unwrap()
    );

    // With it: SSE-KMS through TLS, every write carries the headers.
    let mut cfg = config();
    cfg.endpoint = Some(endpoint.clone());
    cfg.ca_bundle = Some(ca.clone());
    cfg.sse = SseMode::Kms;
    cfg.sse_kms_key_id = Some("mudrock-test".into());
    let s = store(&cfg).await;
    let b = unique("tls");
    s.create_bucket(&b).await.unwrap();
    s.put(&b, "a", Bytes::from_static(b"over tls"))
        .await
        .unwrap();
    s.copy(&b, "a", "b").await.unwrap();
    assert_eq!(
        s.get(&b, "b").await.unwrap(),
        Bytes::from_static(b"over tls")
    );
    let lines = seen.lock().unwrap().clone();
    let puts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("PUT /"))
        .map(|(i, _)| i)
        .collect();
    // Create bucket, put, copy (which RGW does not implement with SSE
    // headers, so the store copies through itself: a GET and a PUT).
    assert!(puts.len() >= 3, "{lines:#?}");
    for &i in &puts[1..] {
        let headers: Vec<&String> = lines[i + 1..]
            .iter()
            .take_while(|l| {
                !l.starts_with("PUT ") && !l.starts_with("GET ") && !l.starts_with("HEAD ")
            })
            .collect();
        assert!(
            headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case("x-amz-server-side-encryption: aws:kms")),
            "{lines:#?}"
        );
        assert!(
            headers.iter().any(|h| h
                .eq_ignore_ascii_case("x-amz-server-side-encryption-aws-kms-key-id: mudrock-test")),
            "{lines:#?}"
        );
    }

    // SSE-S3 (AES256): the header goes on every write (this RGW has no
    // SSE-S3 backend, so the write itself is refused: the header is what is
    // checked here) and SSE-C's key on reads.
    seen.lock().unwrap().clear();
    let mut aes = cfg.clone();
    aes.sse = SseMode::Aes256;
    aes.sse_kms_key_id = None;
    let s = store(&aes).await;
    let _ = s.put(&b, "c", Bytes::from_static(b"x")).await;
    let lines = seen.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.eq_ignore_ascii_case("x-amz-server-side-encryption: AES256")),
        "{lines:#?}"
    );

    seen.lock().unwrap().clear();
    let mut ssec = cfg.clone();
    ssec.sse = SseMode::Customer;
    ssec.sse_customer_key = Some(key_b64(3));
    let s = store(&ssec).await;
    s.put(&b, "d", Bytes::from_static(b"customer"))
        .await
        .unwrap();
    assert_eq!(
        s.get(&b, "d").await.unwrap(),
        Bytes::from_static(b"customer")
    );
    s.head(&b, "d").await.unwrap();
    let lines = seen.lock().unwrap().clone();
    let algo = lines
        .iter()
        .filter(|l| {
            l.eq_ignore_ascii_case("x-amz-server-side-encryption-customer-algorithm: AES256")
        })
        .count();
    assert_eq!(algo, 3, "put, get and head carry the key: {lines:#?}");
}
