//! Garbage collection and a bucket import on the real S3 server (Ceph RGW,
//! started by scripts/test.sh) with a real PostgreSQL: the same rules as
//! on the local store (tests/gc.rs, tests/import_bucket.rs), here with the
//! server's own listing times (the clock is moved forward instead of the
//! objects back).

mod api_support;
mod common;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{Duration, Utc};
use mudrock::service::gc::{self, GcConfig, GcOptions};
use mudrock::service::import::{self, ImportOptions};
use mudrock::store::{ObjectStore, S3Store, StoreKind};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

async fn s3() -> Arc<dyn ObjectStore> {
    Arc::new(S3Store::connect(&common::s3_test_config()).await.unwrap())
}

#[sqlx::test(migrations = false)]
async fn gc_on_s3_keeps_what_the_policy_keeps(_p: PgPoolOptions, opts: PgConnectOptions) {
    let store = s3().await;
    let api = api_support::Api::with_store(&opts, Some(store.clone()), |s| {
        s.store.kind = StoreKind::S3;
        s.store.bucket_prefix = format!("gc{}-", &Uuid::now_v7().simple().to_string()[24..]);
    })
    .await;
    let t = api_support::team(&api).await;
    let bucket = api.settings.store.bucket(Some(&t.project.to_string()));
    sqlx::query("UPDATE projects SET settings = '{\"retention\": {\"keepLast\": 1, \"cacheUnusedDays\": 5}}' WHERE id = $1")
        .bind(t.project)
        .execute(&api.pool)
        .await
        .unwrap();
    let now = Utc::now();
    let mut runs = Vec::new();
    for (age, key) in [(3, "a"), (2, "b")] {
        let id = Uuid::now_v7();
        let at = now - Duration::days(age);
        sqlx::query(
            "INSERT INTO pipeline_runs (id, pipeline_id, project_id, pipeline_version_id, trigger, status, attempt,
                                        queued_at, started_at, finished_at)
             SELECT $1, $2, $3, v.id, 'api', 'succeeded', 1, $4, $4, $4
             FROM pipeline_versions v WHERE v.pipeline_id = $2 LIMIT 1",
        )
        .bind(id)
        .bind(t.pipeline)
        .bind(t.project)
        .bind(at)
        .execute(&api.pool)
        .await
        .unwrap();
        let k = key.repeat(64);
        sqlx::query("INSERT INTO node_runs (run_id, node_id, status, cache_key) VALUES ($1, 'out', 'succeeded', $2)")
            .bind(id)
            .bind(&k)
            .execute(&api.pool)
            .await
            .unwrap();
        for f in ["metadata.json", "lineage.json"] {
            store
                .put(
                    &bucket,
                    &format!("pipelines/{}/runs/{id}/{f}", t.pipeline),
                    Bytes::from_static(b"{}"),
                )
                .await
                .unwrap();
        }
        for f in ["metadata.json", "data.parquet"] {
            store
                .put(
                    &bucket,
                    &format!("pipelines/{}/cache/{k}/{f}", t.pipeline),
                    Bytes::from_static(b"x"),
                )
                .await
                .unwrap();
        }
        runs.push((id, k));
    }
    store
        .put(&bucket, "temp/scratch", Bytes::from_static(b"x"))
        .await
        .unwrap();
    // Ten days on: the older run expires, its entry is unused for more
    // than 5 days; the newer run and its entry stay; the scratch goes.
    let opts = GcOptions {
        dry_run: false,
        now: now + Duration::days(10),
        config: GcConfig::default(),
    };
    let settings: serde_json::Value =
        sqlx::query_scalar("SELECT settings FROM projects WHERE id = $1")
            .bind(t.project)
            .fetch_one(&api.pool)
            .await
            .unwrap();
    let r = gc::collect(&api.pool, &store, &bucket, t.project, &settings, &opts)
        .await
        .unwrap();
    assert_eq!(r.runs, [runs[0].0]);
    assert_eq!(r.cache_entries, [format!("{}/{}", t.pipeline, runs[0].1)]);
    assert_eq!(r.temp_objects, 1);
    let left: Vec<String> = store
        .list(&bucket, "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(
        left.iter()
            .all(|k| !k.contains(&runs[0].0.to_string()) && !k.contains(&runs[0].1)),
        "{left:?}"
    );
    assert!(
        left.iter().any(|k| k.contains(&runs[1].0.to_string()))
            && left.iter().any(|k| k.contains(&runs[1].1))
    );
    assert!(!left.contains(&"temp/scratch".to_string()));
}

#[sqlx::test(migrations = false)]
async fn import_on_s3_moves_verified_and_a_rerun_changes_nothing(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let store = s3().await;
    let api =
        api_support::Api::with_store(&opts, Some(store.clone()), |s| s.store.kind = StoreKind::S3)
            .await;
    let bucket = format!("legacy-{}", &Uuid::now_v7().simple().to_string()[20..]);
    store.create_bucket(&bucket).await.unwrap();
    let big: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 253) as u8).collect();
    store
        .put(&bucket, "big.bin", Bytes::from(big.clone()))
        .await
        .unwrap();
    store
        .put(&bucket, "a/b.csv", Bytes::from_static(b"x,y\n1,2\n"))
        .await
        .unwrap();
    let o = ImportOptions {
        bucket: bucket.clone(),
        owner: Uuid::now_v7(),
        name: None,
        dry_run: false,
        keep_originals: false,
    };
    let r = import::import(&api.pool, &store, &api.settings.store, &o)
        .await
        .unwrap();
    assert_eq!(r.objects.iter().filter(|x| x.action == "moved").count(), 2);
    assert!(r.verified_bytes >= 2 * big.len() as u64);
    assert_eq!(
        store.get(&bucket, "shared/big.bin").await.unwrap().as_ref(),
        &big[..]
    );
    assert!(store.get(&bucket, "big.bin").await.is_err());
    let again = import::import(&api.pool, &store, &api.settings.store, &o)
        .await
        .unwrap();
    assert!(again.resumed && again.objects.iter().all(|x| x.action == "in_layout"));
    let keys: Vec<String> = store
        .list(&bucket, "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["shared/a/b.csv", "shared/big.bin"]);
}
