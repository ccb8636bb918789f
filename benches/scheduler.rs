//! The scheduler's cost per due schedule, on a real PostgreSQL:
//!
//!     DATABASE_URL=postgres://root@127.0.0.1:5432/postgres \
//!       cargo bench --bench scheduler -- [SCHEDULES] [PIPELINES]
//!
//! A scratch database (dropped afterwards) with SCHEDULES (default
//! 10,000) enabled per-minute schedules spread over PIPELINES (default
//! 100) pipelines and five zones, overlap `allow`. With an injected clock,
//! each minute's pass fires every schedule once: a run with its queue job
//! and a ledger entry each, in batches of `scheduler.batch`. Reported: the
//! time to fire one minute's worth with one scheduler, then with three
//! racing (each fire time still fires once), and the cost per schedule.
//! Without `DATABASE_URL` the bench says so and exits successfully.

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use mudrock::schedule::{Catchup, Overlap, SpecInput};
use mudrock::service::scheduler::{ManualClock, Scheduler, SchedulerConfig};
use mudrock::service::schedules::{self, NewSchedule};
use mudrock::store::{LocalStore, StoreConfig};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
];

fn main() {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        println!("scheduler bench: DATABASE_URL is not set; nothing measured");
        return;
    };
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let pipelines = args.get(1).copied().unwrap_or(100).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let admin = PgPool::connect(&base).await.unwrap();
        let db = format!("mudrock_scheduler_bench_{}", std::process::id());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&admin).await.unwrap();
        let url: PgConnectOptions = base.parse::<PgConnectOptions>().unwrap().database(&db);
        let pool = PgPoolOptions::new().max_connections(8).connect_with(url.clone()).await.unwrap();
        mudrock::service::db::migrate(&pool).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store_cfg = StoreConfig::default();
        store_cfg.dir = dir.path().to_path_buf();
        let store = LocalStore::new(dir.path());
        let owner: Uuid = "00000000-0000-4000-8000-00000000000a".parse().unwrap();
        let project = mudrock::service::projects::create(&pool, &store_cfg, &store, "bench", owner, &json!({}))
            .await
            .unwrap();
        let doc = json!({"id": "one", "name": "one", "edges": [],
            "nodes": [{"id": "src", "nodeType": "ingestion", "config": {"source": "shared/one.csv"}}]});
        let mut ids = Vec::new();
        for _ in 0..pipelines {
            let id = Uuid::now_v7();
            mudrock::service::pipelines::save(&pool, project, id, "pl", "1.0.0", &doc, None).await.unwrap();
            ids.push(id);
        }
        // Created just after 00:00:00, so the first fire time is 00:01.
        let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let t = Instant::now();
        let mut tx = pool.begin().await.unwrap();
        for i in 0..n {
            let new = NewSchedule {
                pipeline_id: ids[i % pipelines],
                spec: SpecInput {
                    cron: "* * * * *".into(),
                    timezone: ZONES[i % ZONES.len()].into(),
                    ..Default::default()
                },
                enabled: true,
                overlap: Overlap::Allow,
                catchup: Catchup::Latest,
                max_lateness_secs: None,
                created_by: Some(owner),
            };
            schedules::create(&mut tx, &new, t0).await.unwrap();
        }
        tx.commit().await.unwrap();
        println!("created {n} schedules on {pipelines} pipelines in {:.1} s", t.elapsed().as_secs_f64());
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();

        let clock = Arc::new(ManualClock::new(t0));
        let one = Scheduler::new(pool.clone(), SchedulerConfig::default(), clock.clone(), Some("bench-0".into()));
        // Minute 1 warms the caches; minute 2 follows that wave of updates;
        // minute 3 (after a vacuum) and 4 (three schedulers) are measured.
        let minute = move |m: i64| t0 + Duration::minutes(m) + Duration::seconds(1);
        let r = one.pass(minute(1)).await.unwrap();
        assert_eq!(r.counts.fired as usize, n);
        let t = Instant::now();
        let r = one.pass(minute(2)).await.unwrap();
        assert_eq!(r.counts.fired as usize, n);
        println!(
            "one scheduler, the minute after the first wave: {n} fired in {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        sqlx::query("VACUUM ANALYZE").execute(&pool).await.unwrap();
        let t = Instant::now();
        let r = one.pass(minute(3)).await.unwrap();
        let single = t.elapsed();
        assert_eq!(r.counts.fired as usize, n);
        println!(
            "one scheduler: {n} due schedules fired in {:.0} ms ({:.0} µs per schedule, {:.0} fires/s)",
            single.as_secs_f64() * 1e3,
            single.as_secs_f64() * 1e6 / n as f64,
            n as f64 / single.as_secs_f64()
        );

        let mut racing = Vec::new();
        for i in 0..3 {
            let p = PgPoolOptions::new().max_connections(2).connect_with(url.clone()).await.unwrap();
            racing.push(Scheduler::new(p, SchedulerConfig::default(), clock.clone(), Some(format!("bench-{i}"))));
        }
        let t = Instant::now();
        let handles: Vec<_> = racing
            .into_iter()
            .map(|s| tokio::spawn(async move { s.pass(minute(4)).await.unwrap().counts.fired }))
            .collect();
        let mut fired = 0;
        for h in handles {
            fired += h.await.unwrap();
        }
        let three = t.elapsed();
        assert_eq!(fired as usize, n, "three schedulers still fire each schedule once");
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM pipeline_runs").fetch_one(&pool).await.unwrap();
        assert_eq!(runs as usize, 4 * n, "one run per schedule per minute");
        println!(
            "three schedulers racing: {n} due schedules fired in {:.0} ms ({:.0} µs per schedule)",
            three.as_secs_f64() * 1e3,
            three.as_secs_f64() * 1e6 / n as f64
        );
        pool.close().await;
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)"))).execute(&admin).await.unwrap();
    });
}
