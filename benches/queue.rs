//! Queue throughput and trigger→start latency through PostgreSQL.
//!
//!     DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!       cargo bench --bench queue -- [RUNS] [WORKERS...]
//!
//! Makes a scratch database (dropped afterwards), a project with a local
//! store in a temp dir, and a trivial one-node pipeline (one ingestion of a
//! 3-row CSV). Then, for each worker count (default 1 and 4):
//! - throughput: RUNS runs (default 200) are queued first, then the
//!   workers start; runs/second = RUNS / time until the last one finished;
//! - latency: with the workers idle, 50 runs are triggered one at a time,
//!   each after the previous finished; trigger→start is `started_at −
//!   queued_at` as PostgreSQL recorded them (median and p95).
//!
//! Each worker is a `Worker` with its own connection pool on a shared
//! multi-threaded runtime, as separate processes would be. Without
//! `DATABASE_URL` the bench says so and exits successfully.

use std::time::{Duration, Instant};

use mudrock::app::config::Config;
use mudrock::engine::Engine;
use mudrock::service::queue::{TriggerKind, TriggerRequest};
use mudrock::service::worker::Worker;
use mudrock::store::{LocalStore, ObjectStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

async fn trigger(pool: &PgPool, pipeline: Uuid) -> Uuid {
    let mut conn = pool.acquire().await.unwrap();
    mudrock::service::queue::trigger(&mut conn, &TriggerRequest::new(pipeline, TriggerKind::Api))
        .await
        .unwrap()
        .run_id
}

async fn unfinished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pipeline_runs WHERE status IN ('queued', 'running')")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn start_workers(
    n: usize,
    url: &PgConnectOptions,
    store: std::sync::Arc<dyn ObjectStore>,
    cfg: &Config,
) -> Vec<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    (0..n)
        .map(|i| {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let url = url.clone();
            let store = store.clone();
            let cfg = cfg.clone();
            let h = tokio::spawn(async move {
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with(url)
                    .await
                    .unwrap();
                let w = Worker::new(pool, Engine::new(store), cfg, Some(format!("bench-{i}")));
                w.run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
            (tx, h)
        })
        .collect()
}

async fn stop(
    workers: Vec<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
) {
    for (tx, h) in workers {
        let _ = tx.send(());
        let _ = h.await;
    }
}

fn main() {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        println!("queue bench: DATABASE_URL is not set; nothing measured");
        return;
    };
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = args.first().copied().unwrap_or(200);
    let counts: Vec<usize> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![1, 4]
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let admin = PgPool::connect(&base).await.unwrap();
        let db = format!("mudrock_bench_{}", std::process::id());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&admin)
            .await
            .unwrap();
        let url: PgConnectOptions = base.parse::<PgConnectOptions>().unwrap().database(&db);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(url.clone())
            .await
            .unwrap();
        mudrock::service::db::migrate(&pool).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.store.dir = dir.path().to_path_buf();
        cfg.worker.concurrency = 2;
        cfg.worker.heartbeat_ms = 1000;
        let store: std::sync::Arc<dyn ObjectStore> =
            std::sync::Arc::new(LocalStore::new(dir.path()));
        let project = mudrock::service::projects::create(
            &pool,
            &cfg.store,
            store.as_ref(),
            "bench",
            Uuid::now_v7(),
            &serde_json::json!({}),
        )
        .await
        .unwrap();
        let bucket = cfg.bucket(Some(&project.to_string()));
        let csv = dir.path().join(&bucket).join("in/one.csv");
        std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
        std::fs::write(&csv, "a,b\n1,2\n3,4\n5,6\n").unwrap();
        let doc = serde_json::json!({"id": "one", "name": "one", "edges": [],
            "nodes": [{"id": "src", "nodeType": "ingestion", "config": {"source": "in/one.csv"}}]});
        let pipeline = Uuid::now_v7();
        mudrock::service::pipelines::save(&pool, project, pipeline, "one", "1.0.0", &doc, None)
            .await
            .unwrap();

        println!(
            "queue bench: {runs} runs of a one-node pipeline, worker concurrency {} each",
            cfg.worker.concurrency
        );
        for &n in &counts {
            for _ in 0..runs {
                trigger(&pool, pipeline).await;
            }
            let t = Instant::now();
            let workers = start_workers(n, &url, store.clone(), &cfg);
            while unfinished(&pool).await > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let secs = t.elapsed().as_secs_f64();
            let failed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pipeline_runs WHERE status <> 'succeeded'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(failed, 0, "runs failed");
            println!(
                "workers={n}: {runs} runs in {secs:.2} s = {:.1} runs/s",
                runs as f64 / secs
            );

            // Trigger→start latency with idle workers.
            let mut lat = Vec::new();
            for _ in 0..50 {
                let run = trigger(&pool, pipeline).await;
                loop {
                    let ms: Option<f64> = sqlx::query_scalar(
                        "SELECT extract(epoch FROM started_at - queued_at)::float8 * 1000
                         FROM pipeline_runs WHERE id = $1 AND status = 'succeeded'",
                    )
                    .bind(run)
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
                    if let Some(ms) = ms {
                        lat.push(ms);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!(
                "workers={n}: trigger→start median {:.1} ms, p95 {:.1} ms (50 runs)",
                lat[lat.len() / 2],
                lat[lat.len() * 95 / 100]
            );
            stop(workers).await;
            sqlx::query("DELETE FROM pipeline_runs")
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)")))
            .execute(&admin)
            .await
            .unwrap();
    });
}
