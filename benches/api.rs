//! The HTTP API under load, over a real socket:
//!
//!     DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!       cargo bench --bench api -- [TRIGGERS] [READ_SECS] [SUBSCRIBERS]
//!
//! A scratch database (dropped afterwards), a local store, `mudrock serve`'s
//! API in-process on 127.0.0.1 and two idle workers, a one-node pipeline.
//! - trigger→running: TRIGGERS (default 200) runs triggered one at a time
//!   with `POST /v1/pipelines/{id}/runs`, each after the previous one
//!   finished; latency is `started_at − queued_at` as PostgreSQL recorded
//!   them (p50, p99), and the POST's own round trip beside it;
//! - status reads: 16 clients `GET /v1/runs/{id}` (with node states) for
//!   READ_SECS (default 5); reads per second;
//! - SSE fan-out: SUBSCRIBERS (default 100) clients follow one run's
//!   `/events`; time from the run's final event being committed to each
//!   subscriber receiving it (p50, p99), and events delivered.
//! Without `DATABASE_URL` the bench says so and exits successfully.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use jsonwebtoken::{EncodingKey, Header, encode};
use mudrock::api::{ApiSettings, AppState};
use mudrock::engine::Engine;
use mudrock::service::worker::{Worker, WorkerSettings};
use mudrock::store::{LocalStore, ObjectStore};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

const SECRET: &str = "a-bench-secret-that-is-long-enough-for-hs256";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        println!("api bench: DATABASE_URL is not set; nothing measured");
        return;
    };
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let triggers = args.first().copied().unwrap_or(200) as usize;
    let read_secs = args.get(1).copied().unwrap_or(5);
    let subscribers = args.get(2).copied().unwrap_or(100) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let admin = PgPool::connect(&base).await.unwrap();
        let db = format!("mudrock_api_bench_{}", std::process::id());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&admin).await.unwrap();
        let url: PgConnectOptions = base.parse::<PgConnectOptions>().unwrap().database(&db);
        let pool = PgPoolOptions::new().max_connections(32).connect_with(url.clone()).await.unwrap();
        mudrock::service::db::migrate(&pool).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(LocalStore::new(dir.path()));
        let mut settings = ApiSettings::default();
        settings.store.dir = dir.path().to_path_buf();
        settings.api.jwt.hs256_secret = Some(SECRET.into());
        settings.api.max_page = 100;
        let state = AppState::new(pool.clone(), store.clone(), settings.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(mudrock::api::serve(listener, state, stop.clone().cancelled_owned()));
        for i in 0..2 {
            let mut ws = WorkerSettings::default();
            ws.store = settings.store.clone();
            ws.worker.concurrency = 2;
            let wpool = PgPoolOptions::new().max_connections(4).connect_with(url.clone()).await.unwrap();
            let w = Worker::new(wpool, Engine::new(store.clone()), ws, Some(format!("bench-{i}")));
            tokio::spawn(w.run(stop.clone().cancelled_owned()));
        }

        let user = Uuid::now_v7();
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"sub": user, "role": "authenticated", "aud": "authenticated", "exp": now + 3600});
        let token = encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
        let http = reqwest::Client::new();
        let post = |path: String, body: serde_json::Value| {
            http.post(format!("{base_url}{path}")).bearer_auth(&token).json(&body).send()
        };
        let p: serde_json::Value = post("/v1/projects".into(), json!({"name": "bench"})).await.unwrap().json().await.unwrap();
        let project = p["id"].as_str().unwrap().to_string();
        let bucket = settings.store.bucket(Some(&project));
        store.put(&bucket, "shared/one.csv", "a,b\n1,2\n3,4\n".into()).await.unwrap();
        let doc = json!({"id": "one", "name": "one", "edges": [],
            "nodes": [{"id": "src", "nodeType": "ingestion", "config": {"source": "shared/one.csv"}}]});
        let pl: serde_json::Value = post(format!("/v1/projects/{project}/pipelines"), json!({"definition": doc}))
            .await.unwrap().json().await.unwrap();
        let pipeline = pl["id"].as_str().unwrap().to_string();

        // trigger→running with idle workers.
        let (mut lat, mut rtt) = (Vec::new(), Vec::new());
        let mut last = String::new();
        for _ in 0..triggers {
            let t = Instant::now();
            let r: serde_json::Value = post(format!("/v1/pipelines/{pipeline}/runs"), json!({})).await.unwrap().json().await.unwrap();
            rtt.push(t.elapsed().as_secs_f64() * 1000.0);
            let run: Uuid = r["runId"].as_str().unwrap().parse().unwrap();
            last = run.to_string();
            loop {
                let ms: Option<f64> = sqlx::query_scalar(
                    "SELECT extract(epoch FROM started_at - queued_at)::float8 * 1000
                     FROM pipeline_runs WHERE id = $1 AND status IN ('succeeded', 'failed')",
                )
                .bind(run)
                .fetch_optional(&pool)
                .await
                .unwrap();
                if let Some(ms) = ms {
                    lat.push(ms);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        println!(
            "trigger→running ({triggers} runs, idle workers): p50 {:.1} ms, p99 {:.1} ms; POST round trip p50 {:.1} ms, p99 {:.1} ms",
            pct(&mut lat, 0.5), pct(&mut lat, 0.99), pct(&mut rtt, 0.5), pct(&mut rtt, 0.99)
        );

        // Status reads.
        let deadline = Instant::now() + Duration::from_secs(read_secs);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let http = http.clone();
            let url = format!("{base_url}/v1/runs/{last}");
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                    let _ = r.bytes().await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut reads = 0;
        for t in tasks {
            reads += t.await.unwrap();
        }
        println!("status reads (GET /v1/runs/{{id}} with nodes, 16 clients): {:.0} reads/s", reads as f64 / read_secs as f64);

        // SSE fan-out: subscribers follow a queued run; the workers are
        // stopped first so the run waits until every stream is open.
        stop.cancel();
        let stop2 = tokio_util::sync::CancellationToken::new();
        let state = AppState::new(pool.clone(), store.clone(), settings.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(mudrock::api::serve(listener, state, stop2.clone().cancelled_owned()));
        let r: serde_json::Value = http.post(format!("{base_url}/v1/pipelines/{pipeline}/runs")).bearer_auth(&token)
            .json(&json!({})).send().await.unwrap().json().await.unwrap();
        let run = r["runId"].as_str().unwrap().to_string();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut subs = Vec::new();
        for _ in 0..subscribers {
            let res = http.get(format!("{base_url}/v1/runs/{run}/events")).bearer_auth(&token).send().await.unwrap();
            let tx = tx.clone();
            subs.push(tokio::spawn(async move {
                let mut body = res.bytes_stream();
                let mut buf = String::new();
                let mut events = 0;
                while let Some(chunk) = body.next().await {
                    buf.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
                    while let Some(end) = buf.find("\n\n") {
                        let block: String = buf.drain(..end + 2).collect();
                        if block.contains("id:") {
                            events += 1;
                        }
                        if block.contains("\"status\":\"succeeded\"") && block.contains("event: run") {
                            let _ = tx.send(Instant::now());
                        }
                    }
                }
                events
            }));
        }
        let mut ws = WorkerSettings::default();
        ws.store = settings.store.clone();
        let wpool = PgPoolOptions::new().max_connections(4).connect_with(url.clone()).await.unwrap();
        let w = Worker::new(wpool, Engine::new(store.clone()), ws, Some("bench-sse".into()));
        tokio::spawn(w.run(stop2.clone().cancelled_owned()));
        let mut got = Vec::new();
        while got.len() < subscribers {
            match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                Ok(Some(t)) => got.push(t),
                _ => {
                    let st: String = sqlx::query_scalar("SELECT status::text FROM pipeline_runs WHERE id = $1::uuid")
                        .bind(&run).fetch_one(&pool).await.unwrap();
                    panic!("{} of {subscribers} subscribers saw the end; the run is {st}", got.len());
                }
            }
        }
        let committed: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "SELECT finished_at FROM pipeline_runs WHERE id = $1::uuid",
        )
        .bind(&run)
        .fetch_one(&pool)
        .await
        .unwrap();
        let first = *got.iter().min().unwrap();
        let mut spread: Vec<f64> = got.iter().map(|t| (*t - first).as_secs_f64() * 1000.0).collect();
        let mut events = 0;
        for s in subs {
            events += s.await.unwrap();
        }
        let wall_to_first = (chrono::Utc::now() - committed).num_milliseconds() as f64 - first.elapsed().as_secs_f64() * 1000.0;
        println!(
            "SSE fan-out ({subscribers} subscribers on one run): final event commit→first delivery {wall_to_first:.1} ms, \
             then all within p50 {:.1} ms, p99 {:.1} ms; {events} events delivered",
            pct(&mut spread, 0.5), pct(&mut spread, 0.99)
        );
        stop2.cancel();
        drop(pool);
        let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)"))).execute(&admin).await;
    });
}
