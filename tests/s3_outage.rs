//! Storage outages in the middle of a run, against the real S3 server:
//! the gateway is stopped at an exact point of the run (just before the
//! first cache entry is uploaded). Back within the retry budget, the run
//! succeeds; kept down, the run fails with a storage error and leaves no
//! folder that looks complete.
//!
//! Its own test binary: it stops the shared server, so nothing may run
//! beside it (cargo runs test binaries one after another).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mudrock::engine::{Engine, RunOptions};
use mudrock::model::RunStatus;
use mudrock::store::{ObjectStore, RetryPolicy, RetryingStore, S3Config, S3Store};

fn var(k: &str) -> String {
    std::env::var(k)
        .unwrap_or_else(|_| panic!("{k} is not set: run the suite with scripts/test.sh"))
}

fn gateway(cmd: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/s3-server.sh");
    let ok = std::process::Command::new(script)
        .args([cmd, &var("MUDROCK_TEST_S3_DIR")])
        .status()
        .unwrap()
        .success();
    assert!(ok, "s3-server.sh {cmd} failed");
}

/// A store whose gateway goes down right before the first cache upload;
/// `restart_after` brings it back after that long, if given.
fn outage_store(
    s3: Arc<dyn ObjectStore>,
    restart_after: Option<std::time::Duration>,
    budget_ms: u64,
) -> Arc<dyn ObjectStore> {
    let fired = Arc::new(AtomicBool::new(false));
    let mut hooked = common::HookedStore::new(s3);
    hooked.before = Box::new(move |op, key| {
        if op == "put_file" && key.contains("/cache/") && !fired.swap(true, Ordering::SeqCst) {
            gateway("stop-rgw");
            if let Some(wait) = restart_after {
                std::thread::spawn(move || {
                    std::thread::sleep(wait);
                    gateway("start-rgw");
                });
            }
        }
    });
    let policy = RetryPolicy {
        min_delay_ms: 200,
        max_delay_ms: 2_000,
        budget_ms,
    };
    Arc::new(RetryingStore::new(Arc::new(hooked), policy))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_within_the_budget_is_survived_and_a_longer_one_fails_cleanly() {
    let cfg = S3Config {
        endpoint: Some(var("MUDROCK_TEST_S3_ENDPOINT")),
        access_key_id: Some(var("MUDROCK_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(var("MUDROCK_TEST_S3_SECRET_KEY")),
        ..S3Config::default()
    };
    let s3: Arc<dyn ObjectStore> = Arc::new(S3Store::connect(&cfg).await.unwrap());
    let bucket = format!(
        "project-outage-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    s3.create_bucket(&bucket).await.unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sales/data");
    for f in ["orders.csv", "customers.csv", "products.ndjson"] {
        s3.put(
            &bucket,
            &format!("shared/sales/{f}"),
            std::fs::read(data.join(f)).unwrap().into(),
        )
        .await
        .unwrap();
    }
    let (p, _) = mudrock::validate::validate(common::example(), Default::default()).unwrap();
    let p = Arc::new(p);

    // Down for 3 s in the middle of the run, 60 s of budget: it succeeds.
    let store = outage_store(s3.clone(), Some(std::time::Duration::from_secs(3)), 60_000);
    let mut opts = RunOptions::local(&p);
    opts.bucket = bucket.clone();
    let started = std::time::Instant::now();
    let r = Engine::new(store)
        .run(p.clone(), opts)
        .await
        .expect("the run survives the outage");
    assert_eq!(r.meta.status, RunStatus::Succeeded, "{:?}", r.meta.error);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "the run waited for the gateway"
    );
    assert!(
        s3.head(&bucket, &format!("{}metadata.json", r.run_prefix))
            .await
            .is_ok()
    );

    // Down for good, 3 s of budget: a clear storage error, no commit marker.
    let store = outage_store(s3.clone(), None, 3_000);
    let mut opts = RunOptions::local(&p);
    opts.bucket = bucket.clone();
    opts.use_cache = false;
    opts.run_id = "kept-down".into();
    let err = Engine::new(store)
        .run(p.clone(), opts)
        .await
        .expect_err("the run cannot finish");
    gateway("start-rgw");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.fault(), mudrock::error::Fault::External);
    assert!(
        err.to_string()
            .starts_with("storage temporarily unavailable: "),
        "{err}"
    );
    let prefix = format!("pipelines/{}/runs/kept-down/", r.meta.pipeline_id);
    let left = s3.list(&bucket, &prefix).await.unwrap();
    assert!(
        left.iter()
            .all(|m| !m.key.ends_with("/kept-down/metadata.json")),
        "{left:?}"
    );
}
