//! The S3 store against a real S3 server (Ceph RGW, started by
//! `scripts/test.sh` through `scripts/s3-server.sh`). These tests never
//! skip: without a server they fail and say how to start one.

mod common;

use mudrock::store::{ObjectStore, S3Config, S3Store, StoreError, conformance};

fn config() -> S3Config {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run the suite with scripts/test.sh, or start a server with scripts/s3-server.sh start DIR and source DIR/env")
        })
    };
    S3Config {
        endpoint: Some(var("MUDROCK_TEST_S3_ENDPOINT")),
        access_key_id: Some(var("MUDROCK_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(var("MUDROCK_TEST_S3_SECRET_KEY")),
        part_size: 5 << 20,
        ..S3Config::default()
    }
}

/// Bucket names unique to this test run (lowercase, S3 rules).
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_store_conforms() {
    let store = S3Store::connect(&config()).await.unwrap();
    conformance::run_all(&store, &unique("conf")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_are_unauthorized_and_a_dead_endpoint_is_transient() {
    let mut cfg = config();
    cfg.secret_access_key = Some("wrong-secret".into());
    let store = S3Store::connect(&cfg).await.unwrap();
    let err = store.create_bucket(&unique("auth")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{err:?}");

    let mut cfg = config();
    cfg.endpoint = Some("http://127.0.0.1:9".into());
    let store = S3Store::connect(&cfg).await.unwrap();
    let err = store.head("project-x", "k").await.unwrap_err();
    assert!(
        err.is_retryable(),
        "a refused connection is worth retrying: {err:?}"
    );
}
