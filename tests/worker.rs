//! The queue and `mudrock worker` on a real PostgreSQL, a fresh database
//! per test: triggering (atomic, idempotent), execution with node states,
//! pipeline errors failing at once, transient failures retried, cancellation,
//! maxConcurrentRuns, graceful shutdown, and a worker killed with SIGKILL in
//! the middle of a run being taken over by another; and each run's
//! OpenLineage events sent to a `[lineage]` endpoint.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::HookedStore;
use mudrock::app::config::Config;
use mudrock::engine::Engine;
use mudrock::model::{NodeStatus, RunStatus};
use mudrock::service::queue::{self, TriggerKind, TriggerRequest};
use mudrock::service::runs;
use mudrock::service::worker::{Worker, WorkerStatus};
use mudrock::store::{LocalStore, ObjectStore};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const OWNER: &str = "00000000-0000-4000-8000-00000000000a";

/// A fresh database with mudrock's and the queue's migrations.
async fn setup(opts: &PgConnectOptions) -> PgPool {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(opts.clone())
        .await
        .unwrap();
    let applied = mudrock::service::db::migrate(&pool).await.unwrap();
    assert_eq!(applied.mudrock, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    pool
}

fn url(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    )
}

/// Config for tests: a local store in `dir`, fast heartbeats and leases.
fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.store.dir = dir.to_path_buf();
    c.worker.heartbeat_ms = 100;
    c.worker.missed_heartbeats = 10; // lease 1 s
    c.worker.poll_ms = 100;
    c.worker.retry.min_delay_ms = 50;
    c.worker.retry.max_delay_ms = 200;
    c.worker.retry.budget_ms = 20_000;
    c.worker.defer_ms = 100;
    c.worker.shutdown_grace_seconds = 30;
    c.engine.concurrency = 1;
    c
}

struct Project {
    id: Uuid,
    bucket: String,
}

async fn project(
    pool: &PgPool,
    cfg: &Config,
    store: &dyn ObjectStore,
    max: Option<u32>,
) -> Project {
    let settings = match max {
        Some(n) => json!({"maxConcurrentRuns": n}),
        None => json!({}),
    };
    let id = mudrock::service::projects::create(
        pool,
        &cfg.store,
        store,
        "p",
        OWNER.parse().unwrap(),
        &settings,
    )
    .await
    .unwrap();
    Project {
        id,
        bucket: cfg.bucket(Some(&id.to_string())),
    }
}

/// A migrated database, a local store in a temp dir, a project (with
/// `max` as its maxConcurrentRuns) and the small pipeline's input.
struct Fx {
    pool: PgPool,
    dir: tempfile::TempDir,
    cfg: Config,
    local: Arc<dyn ObjectStore>,
    p: Project,
}

async fn fixture(opts: &PgConnectOptions, max: Option<u32>, tweak: impl FnOnce(&mut Config)) -> Fx {
    let pool = setup(opts).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let local: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let p = project(&pool, &cfg, local.as_ref(), max).await;
    put(dir.path(), &p.bucket, "in/data.csv", &small_csv());
    Fx {
        pool,
        dir,
        cfg,
        local,
        p,
    }
}

async fn save(pool: &PgPool, project: Uuid, doc: &Value) -> Uuid {
    let id = Uuid::now_v7();
    mudrock::service::pipelines::save(pool, project, id, "pl", "1.0.0", doc, None)
        .await
        .unwrap();
    id
}

async fn trigger(pool: &PgPool, pipeline: Uuid) -> Uuid {
    let mut conn = pool.acquire().await.unwrap();
    queue::trigger(&mut conn, &TriggerRequest::new(pipeline, TriggerKind::Api))
        .await
        .unwrap()
        .run_id
}

async fn run_row(pool: &PgPool, run: Uuid) -> runs::RunRow {
    let mut conn = pool.acquire().await.unwrap();
    runs::get_run(&mut conn, run).await.unwrap().unwrap()
}

async fn wait_finished(pool: &PgPool, run: Uuid, limit: Duration) -> runs::RunRow {
    let start = Instant::now();
    loop {
        let r = run_row(pool, run).await;
        if r.status.is_final() {
            return r;
        }
        assert!(
            start.elapsed() < limit,
            "run {run} still {} after {limit:?}",
            r.status.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker on its own multi-threaded runtime (so a test's blocking store
/// hook cannot starve its heartbeat), stopped by dropping/sending `stop`.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    /// The worker itself, for its status (test signals).
    worker: Worker,
}

impl Running {
    fn start(opts: &PgConnectOptions, store: Arc<dyn ObjectStore>, cfg: Config, id: &str) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let opts = opts.clone();
        let id = id.to_string();
        let (wtx, wrx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(3)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .connect_with(opts)
                    .await
                    .map_err(|e| e.to_string())?;
                let w = Worker::new(pool, Engine::new(store), cfg, Some(id));
                let _ = wtx.send(w.clone());
                w.run(async {
                    let _ = rx.await;
                })
                .await
                .map_err(|e| e.to_string())
            })
        });
        let worker = wrx.recv().expect("the worker thread starts");
        Running {
            stop: Some(tx),
            thread: Some(thread),
            worker,
        }
    }

    /// Waits (under a deadline) until the worker's status satisfies `ok`.
    async fn wait_until(&self, what: &str, ok: impl Fn(&WorkerStatus) -> bool) {
        let start = Instant::now();
        loop {
            let st = self.worker.status();
            if ok(&st) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "never {what}: {st:?}"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends the shutdown signal and waits for the worker to exit.
    fn stop(mut self) -> Result<(), String> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn put(store_dir: &std::path::Path, bucket: &str, key: &str, data: &[u8]) {
    let p = store_dir.join(bucket).join(key);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn small_csv() -> Vec<u8> {
    let mut s = String::from("id,region,amount\n");
    for i in 0..200 {
        s.push_str(&format!("{i},{},{}\n", ["n", "s", "e"][i % 3], i * 7 % 101));
    }
    s.into_bytes()
}

/// source → filter (a checkpoint) → two branches, aggregate → `out` and
/// count → `out2`. With engine concurrency 1 the branches run one after
/// the other, so a run held at its first output still has nodes to come.
fn small_pipeline() -> Value {
    json!({
        "id": "small", "name": "small",
        "nodes": [
            {"id": "src", "nodeType": "ingestion", "config": {"source": "in/data.csv"}},
            {"id": "big", "nodeType": "operator", "config": {"operator": "filter", "predicate": "amount > 10"},
             "dependencies": ["src"], "execution": {"cache": true}},
            {"id": "agg", "nodeType": "operator", "config": {"operator": "aggregate", "by": ["region"],
             "aggregations": [{"name": "total", "expr": "sum(amount)"}]}, "dependencies": ["big"]},
            {"id": "out", "nodeType": "output", "config": {"format": "parquet"}, "dependencies": ["agg"]},
            {"id": "cnt", "nodeType": "operator", "config": {"operator": "aggregate",
             "aggregations": [{"name": "n", "expr": "count(*)"}]}, "dependencies": ["big"]},
            {"id": "out2", "nodeType": "output", "config": {"format": "parquet"}, "dependencies": ["cnt"]}
        ],
        "edges": []
    })
}

fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[sqlx::test(migrations = false)]
async fn trigger_is_atomic_and_idempotent(_p: PgPoolOptions, opts: PgConnectOptions) {
    let pool = setup(&opts).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = LocalStore::new(dir.path());
    let p = project(&pool, &cfg, &store, None).await;
    assert!(
        dir.path().join(&p.bucket).is_dir(),
        "project creation makes the bucket"
    );
    let pl = save(&pool, p.id, &small_pipeline()).await;

    let mut conn = pool.acquire().await.unwrap();
    let mut req = TriggerRequest::new(pl, TriggerKind::Api);
    req.idempotency_key = Some("abc".into());
    let a = queue::trigger(&mut conn, &req).await.unwrap();
    let b = queue::trigger(&mut conn, &req).await.unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.run_id, b.run_id, "the same key returns the same run");
    req.idempotency_key = Some("other".into());
    let c = queue::trigger(&mut conn, &req).await.unwrap();
    assert_ne!(c.run_id, a.run_id);

    // One job per run, carrying the run id, in the named queue.
    let jobs: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT job_type, job FROM apalis.jobs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(jobs.len(), 2);
    let mut ids: Vec<Uuid> = jobs
        .iter()
        .map(|(t, j)| {
            assert_eq!(t, queue::QUEUE);
            serde_json::from_slice::<queue::RunJob>(j).unwrap().run_id
        })
        .collect();
    ids.sort();
    let mut want = vec![a.run_id, c.run_id];
    want.sort();
    assert_eq!(ids, want);

    // A pipeline without a saved version: nothing is written at all.
    sqlx::query("INSERT INTO pipelines (id, project_id, name) VALUES ($1, $2, 'empty')")
        .bind(Uuid::nil())
        .bind(p.id)
        .execute(&pool)
        .await
        .unwrap();
    let err = queue::trigger(
        &mut conn,
        &TriggerRequest::new(Uuid::nil(), TriggerKind::Api),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline 00000000-0000-0000-0000-000000000000 has no saved version to run"
    );
    let (runs, jobs): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pipeline_runs), (SELECT count(*) FROM apalis.jobs)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((runs, jobs), (2, 2));

    // A job insert that fails takes its run row with it (one transaction).
    sqlx::query("ALTER TABLE apalis.jobs ADD CONSTRAINT no_more_jobs CHECK (false) NOT VALID")
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        queue::trigger(&mut conn, &TriggerRequest::new(pl, TriggerKind::Api))
            .await
            .is_err()
    );
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM pipeline_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 2, "no run without a job");
}

#[sqlx::test(migrations = false)]
async fn worker_runs_and_records_node_states(_p: PgPoolOptions, opts: PgConnectOptions) {
    let Fx {
        pool,
        dir,
        cfg,
        local: store,
        p,
    } = fixture(&opts, None, |_| {}).await;
    let pl = save(&pool, p.id, &small_pipeline()).await;
    let run = trigger(&pool, pl).await;
    let w = Running::start(&opts, store.clone(), cfg.clone(), "w1");
    let row = wait_finished(&pool, run, Duration::from_secs(60)).await;
    assert_eq!(row.status, RunStatus::Succeeded, "{:?}", row.error);
    assert_eq!(row.attempt, 1);
    assert_eq!(row.worker_id.as_deref(), Some("w1"));

    let mut conn = pool.acquire().await.unwrap();
    let nodes = runs::node_states(&mut conn, run).await.unwrap();
    let states: Vec<(&str, &str)> = nodes
        .iter()
        .map(|n| (n.node_id.as_str(), n.status.name()))
        .collect();
    assert_eq!(
        states,
        [
            ("agg", "succeeded"),
            ("big", "succeeded"),
            ("cnt", "succeeded"),
            ("out", "succeeded"),
            ("out2", "succeeded"),
            ("src", "succeeded")
        ]
    );
    assert_eq!(
        nodes.iter().find(|n| n.node_id == "out").unwrap().rows,
        Some(3)
    );

    // The artifacts carry the exact version's hash.
    let hash: String = sqlx::query_scalar(
        "SELECT v.definition_hash FROM pipeline_runs r JOIN pipeline_versions v
         ON v.id = r.pipeline_version_id WHERE r.id = $1",
    )
    .bind(run)
    .fetch_one(&pool)
    .await
    .unwrap();
    let meta_path = dir
        .path()
        .join(&p.bucket)
        .join(format!("pipelines/{pl}/runs/{run}/metadata.json"));
    let meta: Value = serde_json::from_slice(&std::fs::read(meta_path).unwrap()).unwrap();
    assert_eq!(meta["definitionHash"], json!(hash));
    assert_eq!(meta["attempt"], json!(1));
    assert_eq!(meta["status"], json!("succeeded"));

    // The job is done and stays done.
    let status: String = sqlx::query_scalar("SELECT status FROM apalis.jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "Done");

    // A second run of the unchanged pipeline is served from the cache.
    let run2 = trigger(&pool, pl).await;
    let row2 = wait_finished(&pool, run2, Duration::from_secs(60)).await;
    assert_eq!(row2.status, RunStatus::Succeeded);
    let nodes2 = runs::node_states(&mut conn, run2).await.unwrap();
    assert!(
        nodes2
            .iter()
            .filter(|n| n.node_id != "src")
            .all(|n| n.cache_hit && n.status == NodeStatus::Cached),
        "{nodes2:?}"
    );
    w.stop().unwrap();
}

#[sqlx::test(migrations = false)]
async fn invalid_pipeline_fails_at_once_with_the_report(_p: PgPoolOptions, opts: PgConnectOptions) {
    let pool = setup(&opts).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let p = project(&pool, &cfg, store.as_ref(), None).await;
    // Stored in the database without going through validation.
    let bad = json!({
        "nodes": [
            {"id": "src", "nodeType": "ingestion", "config": {"source": "in/data.csv"}},
            {"id": "f", "nodeType": "operator", "config": {"operator": "fliter", "predicate": "x > 1"},
             "dependencies": ["src"]},
            {"id": "out", "nodeType": "output", "config": {"format": "parquet"}, "dependencies": ["g"]}
        ],
        "edges": []
    });
    let pl = save(&pool, p.id, &bad).await;
    let run = trigger(&pool, pl).await;
    let w = Running::start(&opts, store, cfg, "w1");
    let row = wait_finished(&pool, run, Duration::from_secs(30)).await;
    w.stop().unwrap();
    assert_eq!(row.status, RunStatus::Failed);
    assert_eq!(row.attempt, 1, "never retried");
    let error = row.error.unwrap();
    assert!(error.starts_with("pipeline is invalid:\n"), "{error}");
    // Every problem, not just the first.
    assert!(
        error.contains(r#"node "f": unknown operator "fliter""#),
        "{error}"
    );
    assert!(
        error.contains(r#"node "out""#) && error.contains(r#""g""#),
        "{error}"
    );
    let (status, n): (String, i64) = sqlx::query_as(
        "SELECT status, (SELECT count(*) FROM apalis.jobs) FROM apalis.jobs LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), n), ("Failed", 1));
}

#[sqlx::test(migrations = false)]
async fn transient_failures_are_retried_with_a_new_attempt(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let Fx {
        pool,
        dir: _dir, // keeps the store alive
        cfg,
        local,
        p,
    } = fixture(&opts, None, |_| {}).await;
    let pl = save(&pool, p.id, &small_pipeline()).await;
    // The first two attempts cannot write lineage.json: storage "down".
    let failures = Arc::new(AtomicUsize::new(0));
    let f = failures.clone();
    let hooked: Arc<dyn ObjectStore> = Arc::new(HookedStore::failing(local, move |op, key| {
        op == "put" && key.ends_with("lineage.json") && f.fetch_add(1, Ordering::SeqCst) < 2
    }));
    let run = trigger(&pool, pl).await;
    let w = Running::start(&opts, hooked, cfg, "w1");
    let row = wait_finished(&pool, run, Duration::from_secs(60)).await;
    w.stop().unwrap();
    assert_eq!(row.status, RunStatus::Succeeded, "{:?}", row.error);
    assert_eq!(row.attempt, 3, "two transient failures, then success");
    assert_eq!(failures.load(Ordering::SeqCst), 3);
    assert_eq!(row.error, None);
}

#[sqlx::test(migrations = false)]
async fn a_lasting_storage_failure_fails_after_max_attempts(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let Fx {
        pool,
        dir: _dir, // keeps the store alive
        cfg,
        local,
        p,
    } = fixture(&opts, None, |c| c.worker.max_attempts = 2).await;
    let pl = save(&pool, p.id, &small_pipeline()).await;
    let hooked: Arc<dyn ObjectStore> = Arc::new(HookedStore::failing(local, |op, key| {
        op == "put" && key.ends_with("lineage.json")
    }));
    let run = trigger(&pool, pl).await;
    let w = Running::start(&opts, hooked, cfg, "w1");
    let row = wait_finished(&pool, run, Duration::from_secs(60)).await;
    w.stop().unwrap();
    assert_eq!(row.status, RunStatus::Failed);
    assert_eq!(row.attempt, 2);
    assert_eq!(
        row.error.as_deref(),
        Some("storage temporarily unavailable: injected")
    );
}

/// A store hook that blocks runs once started (claimed, running, no node
/// finished) until the test lets them go: at the delete of the old commit
/// marker, a request each run makes exactly once, from its own task. (It
/// blocks a thread of the worker's runtime, so it must not catch requests
/// a run makes several of at once, such as its outputs' early copies.)
fn gate(local: Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Arc<AtomicBool>, Arc<AtomicBool>) {
    let reached = Arc::new(AtomicBool::new(false));
    let go = Arc::new(AtomicBool::new(false));
    let (r, g) = (reached.clone(), go.clone());
    let mut h = HookedStore::new(local);
    h.before = Box::new(move |op, key| {
        if op == "delete" && key.contains("/runs/") && key.ends_with("/metadata.json") {
            r.store(true, Ordering::SeqCst);
            while !g.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    (Arc::new(h), reached, go)
}

async fn wait_flag(flag: &AtomicBool) {
    let start = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gate never reached"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn cancellation_is_honoured_between_nodes(_p: PgPoolOptions, opts: PgConnectOptions) {
    let Fx {
        pool,
        dir: _dir, // keeps the store alive
        cfg,
        local,
        p,
    } = fixture(&opts, None, |_| {}).await;
    let pl = save(&pool, p.id, &small_pipeline()).await;

    // Queued runs are cancelled at once, and never start.
    let queued = trigger(&pool, pl).await;
    let mut conn = pool.acquire().await.unwrap();
    assert!(runs::request_cancel(&mut conn, queued).await.unwrap());
    assert_eq!(run_row(&pool, queued).await.status, RunStatus::Cancelled);

    let (store, reached, go) = gate(local);
    let run = trigger(&pool, pl).await;
    let w = Running::start(&opts, store, cfg, "w1");
    wait_flag(&reached).await;
    assert!(runs::request_cancel(&mut conn, run).await.unwrap());
    // A heartbeat carries the request to the run's token.
    w.wait_until("saw the cancellation", |st| st.held == [(run, true)])
        .await;
    go.store(true, Ordering::SeqCst);
    let row = wait_finished(&pool, run, Duration::from_secs(60)).await;
    w.stop().unwrap();
    assert_eq!(row.status, RunStatus::Cancelled);
    let nodes = runs::node_states(&mut conn, run).await.unwrap();
    let skipped: Vec<&str> = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Skipped && n.reason.as_deref() == Some("cancelled"))
        .map(|n| n.node_id.as_str())
        .collect();
    assert!(!skipped.is_empty(), "{nodes:?}");
    assert!(
        !runs::request_cancel(&mut conn, run).await.unwrap(),
        "already finished"
    );
    assert_eq!(run_row(&pool, queued).await.attempt, 0, "never started");
}

#[sqlx::test(migrations = false)]
async fn max_concurrent_runs_holds_per_project(_p: PgPoolOptions, opts: PgConnectOptions) {
    let Fx {
        pool,
        dir: _dir, // keeps the store alive
        cfg,
        local,
        p,
    } = fixture(&opts, Some(1), |c| c.worker.concurrency = 4).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        // Separate pipelines, so nothing is served from another's cache.
        let pl = save(&pool, p.id, &small_pipeline()).await;
        runs.push(trigger(&pool, pl).await);
    }
    let (store, reached, go) = gate(local);
    let w1 = Running::start(&opts, store.clone(), cfg.clone(), "w1");
    let w2 = Running::start(&opts, store, cfg, "w2");
    wait_flag(&reached).await;
    // Two workers with free slots, three queued runs: both others are
    // offered and deferred, and still one runs.
    let start = Instant::now();
    loop {
        let deferred: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE last_result::text LIKE '%deferred: the project is at maxConcurrentRuns%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if deferred == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "runs were not deferred"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pipeline_runs WHERE status = 'running'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(running, 1);
    go.store(true, Ordering::SeqCst);
    for r in &runs {
        assert_eq!(
            wait_finished(&pool, *r, Duration::from_secs(60))
                .await
                .status,
            RunStatus::Succeeded
        );
    }
    // Never overlapped: each started after the previous one finished.
    let spans: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT started_at, finished_at FROM pipeline_runs ORDER BY started_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "runs overlapped: {spans:?}");
    }
    w1.stop().unwrap();
    w2.stop().unwrap();
}

#[sqlx::test(migrations = false)]
async fn shutdown_hands_unfinished_runs_back(_p: PgPoolOptions, opts: PgConnectOptions) {
    let Fx {
        pool,
        dir,
        cfg,
        local,
        p,
    } = fixture(&opts, None, |c| c.worker.shutdown_grace_seconds = 0).await;
    let pl = save(&pool, p.id, &small_pipeline()).await;
    let (store, reached, go) = gate(local.clone());
    let run = trigger(&pool, pl).await;
    let w1 = Running::start(&opts, store, cfg.clone(), "w1");
    wait_flag(&reached).await;
    // SIGTERM-equivalent while the run is mid-way; the gate opens after
    // the grace period, so the run stops at the next node boundary.
    let probe = w1.worker.clone();
    let stopper = std::thread::spawn(move || w1.stop());
    let start = Instant::now();
    while !probe.status().handing_back {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never handed back"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    go.store(true, Ordering::SeqCst);
    stopper.join().unwrap().unwrap();
    let row = run_row(&pool, run).await;
    assert_eq!(
        (row.status.name(), row.worker_id.as_deref()),
        ("queued", None)
    );
    let marker = dir
        .path()
        .join(&p.bucket)
        .join(format!("pipelines/{pl}/runs/{run}/metadata.json"));
    assert!(!marker.exists(), "a handed-back run must not look finished");
    let job: String = sqlx::query_scalar("SELECT status FROM apalis.jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(job, "Pending", "the job is back in the queue");
    // Another worker finishes it under the same run id.
    let w2 = Running::start(&opts, local, cfg, "w2");
    let row = wait_finished(&pool, run, Duration::from_secs(60)).await;
    w2.stop().unwrap();
    assert_eq!(row.status, RunStatus::Succeeded);
    assert_eq!(row.attempt, 2);
    assert_eq!(row.worker_id.as_deref(), Some("w2"));
}

/// `mudrock worker` as a process, for killing.
fn spawn_worker(db: &str, store_dir: &std::path::Path, id: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mudrock"))
        .args(["worker", "--id", id])
        .env("DATABASE_URL", db)
        .env("MUDROCK_STORE__DIR", store_dir)
        .env("MUDROCK_WORKER__HEARTBEAT_MS", "200")
        .env("MUDROCK_WORKER__MISSED_HEARTBEATS", "5")
        .env("MUDROCK_WORKER__POLL_MS", "200")
        .env("MUDROCK_ENGINE__CONCURRENCY", "1")
        .env("RUST_LOG", "mudrock=info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A chain of checkpointed sorts over enough rows that a run takes seconds.
fn slow_pipeline(steps: usize) -> Value {
    let mut nodes = vec![json!({"id": "src", "nodeType": "ingestion",
        "config": {"source": "in/big.csv"}})];
    let mut prev = "src".to_string();
    for i in 0..steps {
        let id = format!("step{i:02}");
        let col = if i % 2 == 0 { "a" } else { "b" };
        nodes.push(json!({"id": id, "nodeType": "operator",
            "config": {"operator": "derive", "columns": [{"name": format!("c{i}"), "expr": format!("{col} * 2 + {i}")}]},
            "dependencies": [prev], "execution": {"cache": true}}));
        let sid = format!("sort{i:02}");
        nodes.push(json!({"id": sid, "nodeType": "operator",
            "config": {"operator": "sort", "by": [format!("c{i}"), "id"]},
            "dependencies": [id], "execution": {"cache": true}}));
        prev = sid;
    }
    nodes.push(json!({"id": "out", "nodeType": "output", "config": {"format": "parquet"}, "dependencies": [prev]}));
    json!({"id": "slow", "name": "slow", "nodes": nodes, "edges": []})
}

fn big_csv(rows: usize) -> Vec<u8> {
    let mut w = Vec::with_capacity(rows * 24);
    writeln!(w, "id,a,b").unwrap();
    let mut x: u64 = 42;
    for i in 0..rows {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        writeln!(w, "{i},{},{}", (x >> 33) % 100_000, (x >> 17) % 1000).unwrap();
    }
    w
}

#[sqlx::test(migrations = false)]
async fn a_killed_worker_s_run_is_taken_over_and_finished_once(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = setup(&opts).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let local = LocalStore::new(dir.path());
    let p = project(&pool, &cfg, &local, None).await;
    put(dir.path(), &p.bucket, "in/big.csv", &big_csv(300_000));
    let pl = save(&pool, p.id, &slow_pipeline(8)).await;
    let run = trigger(&pool, pl).await;
    let db = url(&opts);

    let mut first = spawn_worker(&db, dir.path(), "doomed");
    // Kill it once some, not all, checkpoints are committed to the cache
    // (entries are written behind the computation; metadata.json last).
    let cache_dir = dir
        .path()
        .join(&p.bucket)
        .join(format!("pipelines/{pl}/cache"));
    let start = Instant::now();
    let done_before_kill = loop {
        let entries = std::fs::read_dir(&cache_dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().join("metadata.json").exists())
                    .count()
            })
            .unwrap_or(0);
        if entries >= 3 {
            break entries;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run did not progress"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let row = run_row(&pool, run).await;
    assert_eq!(
        (row.status.name(), row.attempt, row.worker_id.as_deref()),
        ("running", 1, Some("doomed")),
        "killed mid-run (after {done_before_kill} checkpoints)"
    );
    let run_dir = dir
        .path()
        .join(&p.bucket)
        .join(format!("pipelines/{pl}/runs/{run}"));
    assert!(
        !run_dir.join("metadata.json").exists(),
        "a dead run's folder must not look complete"
    );

    // Another worker takes the run over once the lease (1 s) has expired.
    let mut second = spawn_worker(&db, dir.path(), "rescuer");
    let row = wait_finished(&pool, run, Duration::from_secs(180)).await;
    assert_eq!(row.status, RunStatus::Succeeded, "{:?}", row.error);
    // Attempt 2 normally; on a starved machine the rescuer may retry a
    // transient failure or lose and retake its own lease: more attempts,
    // still one run and one artifact set, from the last attempt.
    assert!(row.attempt >= 2, "attempt {}", row.attempt);
    assert_eq!(row.worker_id.as_deref(), Some("rescuer"));
    assert_eq!(row.id, run, "same run id");

    // Exactly one complete set of artifacts: one run folder, one commit
    // marker, one output, all from attempt 2.
    let runs_dir = dir
        .path()
        .join(&p.bucket)
        .join(format!("pipelines/{pl}/runs"));
    let folders: Vec<_> = std::fs::read_dir(&runs_dir).unwrap().flatten().collect();
    assert_eq!(folders.len(), 1);
    let files = files_under(&run_dir);
    assert_eq!(
        files
            .iter()
            .filter(|f| f.ends_with("metadata.json") && !f.contains('/'))
            .count(),
        1
    );
    assert_eq!(
        files
            .iter()
            .filter(|f| f.starts_with("outputs/") && f.ends_with("data.parquet"))
            .count(),
        1,
        "{files:?}"
    );
    let meta: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["attempt"], json!(row.attempt));
    assert_eq!(meta["runId"], json!(run.to_string()));
    // What attempt 1 finished was not computed again.
    let mut conn = pool.acquire().await.unwrap();
    let nodes = runs::node_states(&mut conn, run).await.unwrap();
    let hits = nodes.iter().filter(|n| n.cache_hit).count();
    assert!(hits >= 2, "{nodes:?}");
    // The job is completed just after the run row is final: wait for it
    // before stopping the rescuer (killed earlier, it could die between
    // the two and leave the job running).
    let start = Instant::now();
    loop {
        let job: String = sqlx::query_scalar("SELECT status FROM apalis.jobs")
            .fetch_one(&pool)
            .await
            .unwrap();
        if job == "Done" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "job still {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_project_whose_bucket_cannot_be_made_is_not_created(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = setup(&opts).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let local: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let broken = HookedStore::failing(local.clone(), |op, _| op == "create_bucket");
    let err = mudrock::service::projects::create(
        &pool,
        &cfg.store,
        &broken,
        "p",
        OWNER.parse().unwrap(),
        &json!({}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot create the project's bucket: storage temporarily unavailable: injected"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM projects")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "no project without its bucket");
    // Idempotent: an existing bucket is fine.
    let p = project(&pool, &cfg, local.as_ref(), None).await;
    local.create_bucket(&p.bucket).await.unwrap();
    assert!(dir.path().join(&p.bucket).is_dir());
    let owner: String =
        sqlx::query_scalar("SELECT role::text FROM project_permissions WHERE project_id = $1")
            .bind(p.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(owner, "owner", "the creator becomes owner");
}

#[sqlx::test(migrations = false)]
async fn a_worker_runs_no_more_than_its_concurrency(_p: PgPoolOptions, opts: PgConnectOptions) {
    // No project limit: only the worker's own slots hold runs back.
    let Fx {
        pool,
        dir: _dir, // keeps the store alive
        cfg,
        local,
        p,
    } = fixture(&opts, None, |c| c.worker.concurrency = 2).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        let pl = save(&pool, p.id, &small_pipeline()).await;
        runs.push(trigger(&pool, pl).await);
    }
    let (store, reached, go) = gate(local);
    let w = Running::start(&opts, store, cfg, "w1");
    wait_flag(&reached).await;
    // Two runs held; the worker then looks for work (twice, so at least
    // one full round after both started) and takes nothing more.
    w.wait_until("held two runs", |st| st.held.len() == 2).await;
    let rounds = w.worker.status().claim_rounds;
    w.wait_until("looked for work again", |st| st.claim_rounds >= rounds + 2)
        .await;
    let (running, queued): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE status = 'queued')
         FROM pipeline_runs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((running, queued), (2, 1), "two slots, three runs");
    go.store(true, Ordering::SeqCst);
    for r in &runs {
        assert_eq!(
            wait_finished(&pool, *r, Duration::from_secs(60))
                .await
                .status,
            RunStatus::Succeeded
        );
    }
    w.stop().unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_worker_sends_each_run_s_openlineage_events(_p: PgPoolOptions, opts: PgConnectOptions) {
    let (url, got) = common::endpoint(1, 200).await;
    let Fx {
        pool,
        cfg,
        local: store,
        p,
        dir: _dir,
    } = fixture(&opts, None, |c| {
        c.lineage.url = Some(url);
        c.lineage.retry.min_delay_ms = 10;
    })
    .await;
    let pl = save(&pool, p.id, &small_pipeline()).await;
    let run = trigger(&pool, pl).await;
    let w = Running::start(&opts, store.clone(), cfg.clone(), "w1");
    let row = wait_finished(&pool, run, Duration::from_secs(60)).await;
    assert_eq!(row.status, RunStatus::Succeeded, "{:?}", row.error);
    // Sent in the background: wait for the run's COMPLETE.
    let start = Instant::now();
    let events = loop {
        let events = got.lock().unwrap().clone();
        if events
            .iter()
            .any(|e| e["eventType"] == "COMPLETE" && e["run"]["runId"] == json!(run))
        {
            break events;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no COMPLETE for {run}: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    w.stop().unwrap();
    // The START went first (sent as the run started, after one 503), once;
    // then a START and COMPLETE per node, under the run; the run's end last.
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap().into(),
                e["job"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(kinds[0], ("START".into(), pl.to_string()));
    assert_eq!(
        kinds.last().unwrap(),
        &("COMPLETE".to_string(), pl.to_string())
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == ("START".to_string(), pl.to_string()))
            .count(),
        1
    );
    assert_eq!(events.len(), 2 + 2 * 6, "{kinds:?}");
    assert_eq!(
        events[0]["job"]["namespace"],
        json!(format!("mudrock.{}", p.id))
    );
    for e in &events[1..events.len() - 1] {
        assert_eq!(e["run"]["facets"]["parent"]["run"]["runId"], json!(run));
    }
}
