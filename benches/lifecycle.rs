//! What garbage collection and a bucket import cost on the S3 server:
//!
//!     DATABASE_URL=postgres://root@127.0.0.1:5432/postgres \
//!     MUDROCK_TEST_S3_ENDPOINT=... MUDROCK_TEST_S3_ACCESS_KEY=... MUDROCK_TEST_S3_SECRET_KEY=... \
//!       cargo bench --bench lifecycle -- [RUNS] [LOOSE]
//!
//! (`source DIR/env` after `scripts/s3-server.sh start DIR` sets the S3
//! variables.) A scratch database (dropped afterwards) and a project on the
//! S3 server with RUNS (default 1,000) finished runs of four objects each
//! and 500 cache entries of two: a dry-run GC (list + decide: objects
//! examined per second), then a GC keeping the last 100 runs (objects
//! deleted per second). Then a legacy bucket with LOOSE (default 200)
//! 256 KiB objects imported (server-side copy, blake3 of both sides,
//! delete): objects and bytes verified per second. The work is S3 round
//! trips, so a dev build (`--profile dev`) measures the same thing.
//! Without the variables the bench says so and exits successfully.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt;
use mudrock::service::gc::{self, GcConfig, GcOptions};
use mudrock::service::import::{self, ImportOptions};
use mudrock::store::{ObjectStore, S3Config, S3Store, StoreConfig, StoreKind};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

fn main() {
    let vars = [
        "DATABASE_URL",
        "MUDROCK_TEST_S3_ENDPOINT",
        "MUDROCK_TEST_S3_ACCESS_KEY",
        "MUDROCK_TEST_S3_SECRET_KEY",
    ];
    let Some(v): Option<Vec<String>> = vars.iter().map(|k| std::env::var(k).ok()).collect() else {
        println!(
            "lifecycle bench: {} must be set; nothing measured",
            vars.join(", ")
        );
        return;
    };
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = args.first().copied().unwrap_or(1_000).max(101);
    let loose = args.get(1).copied().unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let admin = PgPool::connect(&v[0]).await.unwrap();
        let db = format!("mudrock_lifecycle_bench_{}", std::process::id());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&admin).await.unwrap();
        let url: PgConnectOptions = v[0].parse::<PgConnectOptions>().unwrap().database(&db);
        let pool = PgPoolOptions::new().max_connections(8).connect_with(url).await.unwrap();
        mudrock::service::db::migrate(&pool).await.unwrap();
        let s3 = S3Config {
            endpoint: Some(v[1].clone()),
            access_key_id: Some(v[2].clone()),
            secret_access_key: Some(v[3].clone()),
            ..S3Config::default()
        };
        let store: Arc<dyn ObjectStore> = Arc::new(S3Store::connect(&s3).await.unwrap());
        let mut buckets = StoreConfig::default();
        buckets.kind = StoreKind::S3;
        buckets.bucket_prefix = format!("lcb{}-", std::process::id());
        let owner = Uuid::now_v7();
        let project = mudrock::service::projects::create(&pool, &buckets, store.as_ref(), "bench", owner, &json!({}))
            .await
            .unwrap();
        let bucket = buckets.bucket(Some(&project.to_string()));
        let pipeline = Uuid::now_v7();
        let doc = json!({"id": "one", "name": "one", "edges": [],
            "nodes": [{"id": "src", "nodeType": "ingestion", "config": {"source": "shared/one.csv"}}]});
        mudrock::service::pipelines::save(&pool, project, pipeline, "pl", "1.0.0", &doc, None).await.unwrap();
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO pipeline_runs (pipeline_id, project_id, pipeline_version_id, trigger, status, attempt,
                                        queued_at, started_at, finished_at)
             SELECT $1, $2, v.id, 'api', 'succeeded', 1, t, t, t
             FROM pipeline_versions v, generate_series(1, $3) g,
                  LATERAL (SELECT now() - make_interval(mins => g) AS t) x
             WHERE v.pipeline_id = $1 RETURNING id",
        )
        .bind(pipeline)
        .bind(project)
        .bind(runs as i32)
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut keys: Vec<String> = Vec::new();
        for id in &ids {
            for f in ["metadata.json", "lineage.json", "outputs/out/metadata.json", "outputs/out/data.parquet"] {
                keys.push(format!("pipelines/{pipeline}/runs/{id}/{f}"));
            }
        }
        for i in 0..500 {
            for f in ["metadata.json", "data.parquet"] {
                keys.push(format!("pipelines/{pipeline}/cache/{:064x}/{f}", i));
            }
        }
        let t = Instant::now();
        put_all(&store, &bucket, &keys, 512).await;
        let put_s = t.elapsed().as_secs_f64();
        println!("setup: {} objects PUT in {put_s:.1} s ({:.0}/s, 32 at a time)", keys.len(), keys.len() as f64 / put_s);

        let settings = json!({"retention": {"keepLast": 100}});
        let opts = |dry_run| GcOptions { dry_run, now: Utc::now(), config: GcConfig::default() };
        let t = Instant::now();
        let dry = gc::collect(&pool, &store, &bucket, project, &settings, &opts(true)).await.unwrap();
        let dry_s = t.elapsed().as_secs_f64();
        println!(
            "gc --dry-run: {} objects examined in {dry_s:.2} s = {:.0} objects/s; would delete {} runs ({} objects)",
            dry.objects_examined,
            dry.objects_examined as f64 / dry_s,
            dry.runs.len(),
            dry.objects_deleted
        );
        let t = Instant::now();
        let done = gc::collect(&pool, &store, &bucket, project, &settings, &opts(false)).await.unwrap();
        let gc_s = t.elapsed().as_secs_f64();
        println!(
            "gc: {} objects examined, {} runs and {} objects deleted in {gc_s:.2} s = {:.0} objects examined/s, {:.0} deleted/s",
            done.objects_examined,
            done.runs.len(),
            done.objects_deleted,
            done.objects_examined as f64 / gc_s,
            done.objects_deleted as f64 / gc_s
        );

        // A legacy bucket: LOOSE objects of 256 KiB, imported.
        let legacy = format!("legacy-lcb{}", std::process::id());
        store.create_bucket(&legacy).await.unwrap();
        let loose_keys: Vec<String> = (0..loose).map(|i| format!("old/{i:05}.csv")).collect();
        put_all(&store, &legacy, &loose_keys, 256 << 10).await;
        let t = Instant::now();
        let r = import::import(&pool, &store, &buckets, &ImportOptions {
            bucket: legacy.clone(), owner, name: None, dry_run: false, keep_originals: false,
        })
        .await
        .unwrap();
        let imp_s = t.elapsed().as_secs_f64();
        let moved = r.objects.iter().filter(|o| o.action == "moved").count();
        println!(
            "import-bucket: {moved} objects of 256 KiB moved in {imp_s:.2} s = {:.0} objects/s, {:.1} MiB/s verified (blake3 of both sides, {} bytes)",
            moved as f64 / imp_s,
            r.verified_bytes as f64 / (1 << 20) as f64 / imp_s,
            r.verified_bytes
        );
        pool.close().await;
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)"))).execute(&admin).await.unwrap();
    });
}

async fn put_all(store: &Arc<dyn ObjectStore>, bucket: &str, keys: &[String], size: usize) {
    let body = Bytes::from(vec![b'x'; size]);
    futures_util::stream::iter(keys.iter().cloned())
        .map(|k| {
            let (store, body, bucket) = (store.clone(), body.clone(), bucket.to_string());
            async move { store.put(&bucket, &k, body).await.unwrap() }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}
