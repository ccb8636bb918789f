//! PostgreSQL restarts while runs are in flight: every run still finishes,
//! once. The test makes its own throwaway cluster (the system's
//! `initdb`/`pg_ctl`, as the postgres user when run as root) so that
//! restarting it cannot disturb other tests or the machine's server.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

fn pg_bin(name: &str) -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        && out.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("no PostgreSQL server binaries (initdb) on this machine")
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().expect("initdb not found")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as `postgres` when we are root (initdb refuses root).
fn pg(tool: &str, args: &[&str]) -> std::process::Output {
    let bin = pg_bin(tool);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.args(args).stdin(Stdio::null()).output().unwrap()
}

struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mudrock-pg-restart")
            .tempdir()
            .unwrap();
        if is_root() {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.path().join("data");
        let out = pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        );
        assert!(out.status.success(), "initdb: {out:?}");
        let c = Cluster { dir, port };
        c.ctl("start");
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn ctl(&self, action: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        let out = pg(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-m",
                "fast",
                "-o",
                &opts,
                action,
            ],
        );
        assert!(out.status.success(), "pg_ctl {action}: {out:?}");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_worker(db: &str, store: &Path, id: &str) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_mudrock"))
            .args(["worker", "--id", id, "--concurrency", "2"])
            .env("DATABASE_URL", db)
            .env("MUDROCK_STORE__DIR", store)
            // A lease (5 s) longer than the restart: the workers keep their
            // runs instead of taking each other's over.
            .env("MUDROCK_WORKER__HEARTBEAT_MS", "500")
            .env("MUDROCK_WORKER__MISSED_HEARTBEATS", "10")
            .env("MUDROCK_WORKER__POLL_MS", "200")
            .env("MUDROCK_WORKER__RETRY__MIN_DELAY_MS", "100")
            .env("MUDROCK_WORKER__RETRY__MAX_DELAY_MS", "1000")
            .env("MUDROCK_ENGINE__CONCURRENCY", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn pipeline(steps: usize) -> Value {
    let mut nodes = vec![json!({"id": "src", "nodeType": "ingestion",
        "config": {"source": "in/big.csv"}})];
    let mut prev = "src".to_string();
    for i in 0..steps {
        let id = format!("sort{i:02}");
        let col = if i % 2 == 0 { "a" } else { "b" };
        nodes.push(json!({"id": id, "nodeType": "operator",
            "config": {"operator": "sort", "by": [col, "id"]},
            "dependencies": [prev], "execution": {"cache": true}}));
        prev = id;
    }
    nodes.push(json!({"id": "out", "nodeType": "output", "config": {"format": "parquet"}, "dependencies": [prev]}));
    json!({"id": "restart", "name": "restart", "nodes": nodes, "edges": []})
}

async fn status_counts(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status::text, count(*) FROM pipeline_runs GROUP BY 1 ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_in_flight_survive_a_postgres_restart() {
    let cluster = Cluster::start();
    let pool = mudrock::service::db::connect(&cluster.url()).await.unwrap();
    mudrock::service::db::migrate(&pool).await.unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let mut cfg = mudrock::app::config::Config::default();
    cfg.store.dir = store_dir.path().to_path_buf();
    let store = mudrock::store::LocalStore::new(store_dir.path());
    let project = mudrock::service::projects::create(
        &pool,
        &cfg.store,
        &store,
        "restart",
        Uuid::now_v7(),
        &json!({}),
    )
    .await
    .unwrap();
    let bucket = cfg.bucket(Some(&project.to_string()));
    let csv = store_dir.path().join(&bucket).join("in/big.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(w, "id,a,b").unwrap();
    let mut x: u64 = 7;
    for i in 0..150_000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        writeln!(w, "{i},{},{}", (x >> 33) % 100_000, (x >> 17) % 1000).unwrap();
    }
    drop(w);

    let mut runs = Vec::new();
    for _ in 0..4 {
        let id = Uuid::now_v7();
        mudrock::service::pipelines::save(
            &pool,
            project,
            id,
            "restart",
            "1.0.0",
            &pipeline(6),
            None,
        )
        .await
        .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let t = mudrock::service::queue::trigger(
            &mut conn,
            &mudrock::service::queue::TriggerRequest::new(
                id,
                mudrock::service::queue::TriggerKind::Api,
            ),
        )
        .await
        .unwrap();
        runs.push((id, t.run_id));
    }
    let _w1 = spawn_worker(&cluster.url(), store_dir.path(), "w1");
    let _w2 = spawn_worker(&cluster.url(), store_dir.path(), "w2");

    // Restart while runs are executing.
    let start = Instant::now();
    loop {
        let running: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pipeline_runs WHERE status = 'running'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if running >= 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "runs did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = status_counts(&pool).await;
    cluster.ctl("stop");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.ctl("start");
    eprintln!("restarted PostgreSQL with runs {before:?}");
    assert!(
        before.iter().any(|(s, n)| s == "running" && *n >= 2),
        "{before:?}"
    );

    let start = Instant::now();
    loop {
        let counts = status_counts(&pool).await;
        let finished: i64 = counts
            .iter()
            .filter(|(s, _)| s != "queued" && s != "running")
            .map(|(_, n)| n)
            .sum();
        if finished == runs.len() as i64 {
            assert_eq!(counts, [("succeeded".to_string(), runs.len() as i64)]);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "runs did not finish: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each run committed exactly once.
    for (pl, run) in &runs {
        let runs_dir = store_dir
            .path()
            .join(&bucket)
            .join(format!("pipelines/{pl}/runs"));
        let folders: Vec<_> = std::fs::read_dir(&runs_dir).unwrap().flatten().collect();
        assert_eq!(folders.len(), 1);
        assert!(
            runs_dir
                .join(run.to_string())
                .join("metadata.json")
                .exists()
        );
    }
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempt FROM pipeline_runs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    eprintln!("attempts after the restart: {attempts:?}");
    let jobs: Vec<String> = sqlx::query_scalar("SELECT status FROM apalis.jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(jobs.iter().all(|s| s == "Done"), "{jobs:?}");
}
