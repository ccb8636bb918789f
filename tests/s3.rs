//! The S3 store against a real S3 server (Ceph RGW, started by
//! `scripts/test.sh` through `scripts/s3-server.sh`). These tests never
//! skip: without a server they fail and say how to start one.

mod common;

use std::sync::Arc;

use mudrock::app::config::{Config, StoreConfig, StoreKind};
use mudrock::engine::{Engine, RunOptions, RunResult};
use mudrock::model::RunStatus;
use mudrock::store::{ObjectStore, S3Config, S3Store, StoreError, conformance};
use mudrock::validate;

fn config() -> S3Config {
    common::s3_test_config()
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

/// Runs the example against `store` in `bucket`, uploading its data first.
async fn run_example(store: Arc<dyn ObjectStore>, bucket: &str) -> RunResult {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sales/data");
    for f in ["orders.csv", "customers.csv", "products.ndjson"] {
        let bytes = std::fs::read(data.join(f)).unwrap();
        store
            .put(bucket, &format!("shared/sales/{f}"), bytes.into())
            .await
            .unwrap();
    }
    let (p, _) = validate::validate(common::example(), Default::default()).unwrap();
    let p = Arc::new(p);
    let mut opts = RunOptions::local(&p);
    opts.bucket = bucket.to_string();
    Engine::new(store).run(p, opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_on_s3_writes_the_same_tree_and_hits_the_cache_without_rehashing_sources() {
    let config = Config {
        store: StoreConfig {
            kind: StoreKind::S3,
            s3: config(),
            ..Default::default()
        },
        ..Default::default()
    };
    let s3 = config.open_store().await.unwrap();
    let project = unique("e2e");
    let bucket = config
        .store
        .create_project_bucket(s3.as_ref(), &project)
        .await
        .unwrap();
    assert_eq!(bucket, format!("project-{project}"));
    config
        .store
        .create_project_bucket(s3.as_ref(), &project)
        .await
        .expect("creating it again is fine");
    assert!(
        config
            .store
            .create_project_bucket(s3.as_ref(), "Bad_Id")
            .await
            .is_err()
    );

    let hooked = Arc::new(common::HookedStore::new(s3.clone()));
    let first = run_example(hooked.clone(), &bucket).await;
    assert_eq!(
        first.meta.status,
        RunStatus::Succeeded,
        "{:?}",
        first.meta.error
    );
    // Each source is streamed into the run's scratch directory once, hashed
    // on the way, and scanned from there: never fetched whole.
    for f in ["orders.csv", "customers.csv", "products.ndjson"] {
        let key = format!("shared/sales/{f}");
        assert_eq!(hooked.count("reader", &key), 1, "{key} downloaded once");
    }
    assert_eq!(hooked.count("get", "shared/"), 0, "no source read whole");

    // The same run on the local store: same files, same output bytes.
    let env = common::Env::new();
    env.copy_example_data();
    let local = env.run(&common::example()).await;
    let rel = |keys: Vec<String>, prefix: &str| -> Vec<String> {
        keys.into_iter()
            .map(|k| k.strip_prefix(prefix).unwrap().to_string())
            .collect()
    };
    let s3_files: Vec<String> = s3
        .list(&bucket, &first.run_prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(
        rel(s3_files, &first.run_prefix),
        rel(env.files(&local.run_prefix), &local.run_prefix)
    );
    let s3_data = s3
        .get(
            &bucket,
            &format!("{}outputs/sales_by_region/data.parquet", first.run_prefix),
        )
        .await
        .unwrap();
    let local_data = env.read(&format!(
        "{}outputs/sales_by_region/data.parquet",
        local.run_prefix
    ));
    assert_eq!(
        blake3::hash(&s3_data),
        blake3::hash(&local_data),
        "identical outputs on S3 and on disk"
    );
    assert!(
        s3.head(&bucket, "exports/sales/by_region.csv")
            .await
            .is_ok()
    );
    let meta: serde_json::Value = serde_json::from_slice(
        &s3.get(&bucket, &format!("{}metadata.json", first.run_prefix))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["status"], "succeeded");

    // Second run: every node that succeeded before is cached, and the source
    // hash index (ETag + size) means no source is hashed again. `customers`
    // fans out and keeps no cache entry of its own (its object is the
    // checkpoint): it is read again because one consumer, the failing
    // assert, runs every time; everything else comes from the cache.
    let hooked = Arc::new(common::HookedStore::new(s3.clone()));
    let second = run_example(hooked.clone(), &bucket).await;
    assert_eq!(second.meta.status, RunStatus::Succeeded);
    for n in &second.meta.nodes {
        let expect_cached = !matches!(
            n.node_id.as_str(),
            "unique_emails" | "customer_issues" | "customers"
        );
        assert_eq!(n.cache_hit, expect_cached, "{}", n.node_id);
    }
    let gets: Vec<String> = hooked
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(op, k)| {
            (op == "get" || op == "reader")
                && (k.starts_with("shared/") || k.ends_with("data.parquet"))
        })
        .map(|(op, k)| format!("{op} {k}"))
        .collect();
    assert_eq!(
        gets,
        ["reader shared/sales/customers.csv"],
        "the failing assert's input is the only data downloaded; verifying hits needs none"
    );
    let s3_files: Vec<String> = s3
        .list(&bucket, &second.run_prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(s3_files.len(), 14, "{s3_files:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn planning_reads_only_parquet_footers() {
    use polars::prelude::*;
    let s3: Arc<dyn ObjectStore> = Arc::new(S3Store::connect(&config()).await.unwrap());
    let bucket = format!("project-{}", unique("plan"));
    s3.create_bucket(&bucket).await.unwrap();
    let n = 200_000i64;
    let mut df = df!("id" => (0..n).collect::<Vec<_>>(), "name" => (0..n).map(|i| format!("n{i}")).collect::<Vec<_>>()).unwrap();
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df).unwrap();
    s3.put(&bucket, "shared/big.parquet", buf.into())
        .await
        .unwrap();
    let doc = serde_json::json!({"id": "p", "nodes": [
        common::ingest("src", "shared/big.parquet"),
        common::op("d", serde_json::json!({"operator": "derive", "columns": [{"name": "twice", "expr": "id * 2"}]}), &["src"]),
        common::output("out", "d")
    ]});
    let (p, _) = validate::validate(doc, Default::default()).unwrap();
    let p = Arc::new(p);
    let mut opts = RunOptions::local(&p);
    opts.bucket = bucket.clone();
    // The first plan hashes the source for its cache key (one download);
    // the hash index spares the next one that.
    let first = Arc::new(common::HookedStore::new(s3.clone()));
    mudrock::engine::plan::plan(first.as_ref(), p.clone(), &opts)
        .await
        .unwrap();
    assert_eq!(first.count("reader", "shared/"), 1, "hashed once");
    assert_eq!(
        first.count("get", "shared/"),
        0,
        "streamed, not fetched whole"
    );
    let hooked = Arc::new(common::HookedStore::new(s3.clone()));
    let plan = mudrock::engine::plan::plan(hooked.as_ref(), p, &opts)
        .await
        .unwrap();
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    let cols: Vec<(&str, &str)> = plan.outputs[0]
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.dtype.as_str()))
        .collect();
    assert_eq!(
        cols,
        [("id", "int64"), ("name", "string"), ("twice", "int64")]
    );
    assert_eq!(
        hooked.count("get", "shared/") + hooked.count("reader", "shared/"),
        0,
        "the schema comes without a download"
    );
    assert_eq!(
        hooked.count("get_range", "shared/big.parquet"),
        2,
        "the tail, then the footer"
    );
}
