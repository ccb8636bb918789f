//! The scheduler on a real PostgreSQL with time injected (a manual clock,
//! never real waiting): exactly one run per fire time with three
//! schedulers racing, catch-up after a day of downtime, overlap policies
//! enforced in the database, and the tick ledger accounting for every
//! fire time.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use mudrock::schedule::{Catchup, Overlap, SpecInput};
use mudrock::service::scheduler::{Clock, ManualClock, Scheduler, SchedulerConfig};
use mudrock::service::schedules::{self, NewSchedule};
use mudrock::store::{LocalStore, StoreConfig};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const OWNER: &str = "00000000-0000-4000-8000-00000000000a";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
}

struct Fx {
    pool: PgPool,
    opts: PgConnectOptions,
    pipeline: Uuid,
    _dir: tempfile::TempDir,
}

async fn fixture(opts: PgConnectOptions) -> Fx {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(opts.clone())
        .await
        .unwrap();
    mudrock::service::db::migrate(&pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store_cfg = StoreConfig::default();
    store_cfg.dir = dir.path().to_path_buf();
    let store = LocalStore::new(dir.path());
    let project = mudrock::service::projects::create(
        &pool,
        &store_cfg,
        &store,
        "p",
        OWNER.parse().unwrap(),
        &json!({}),
    )
    .await
    .unwrap();
    let doc = json!({"id": "one", "name": "one", "edges": [],
        "nodes": [{"id": "src", "nodeType": "ingestion", "config": {"source": "shared/one.csv"}}]});
    let pipeline = Uuid::now_v7();
    mudrock::service::pipelines::save(&pool, project, pipeline, "pl", "1.0.0", &doc, None)
        .await
        .unwrap();
    Fx {
        pool,
        opts,
        pipeline,
        _dir: dir,
    }
}

/// A schedule created at `at`: it fires at the fire times after it.
async fn schedule(
    fx: &Fx,
    cron: &str,
    overlap: Overlap,
    catchup: Catchup,
    at: DateTime<Utc>,
) -> Uuid {
    let mut conn = fx.pool.acquire().await.unwrap();
    schedules::create(
        &mut conn,
        &NewSchedule {
            pipeline_id: fx.pipeline,
            spec: SpecInput {
                cron: cron.into(),
                timezone: "UTC".into(),
                ..Default::default()
            },
            enabled: true,
            overlap,
            catchup,
            max_lateness_secs: None,
            created_by: Some(OWNER.parse().unwrap()),
        },
        at,
    )
    .await
    .unwrap()
}

/// The test database's URL, for a `mudrock` process.
fn url(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    )
}

async fn pause(pool: &PgPool, schedule: Uuid) {
    sqlx::query("UPDATE pipeline_schedules SET enabled = false WHERE id = $1")
        .bind(schedule)
        .execute(pool)
        .await
        .unwrap();
}

fn scheduler(pool: PgPool, clock: Arc<ManualClock>, name: &str) -> Scheduler {
    Scheduler::new(pool, SchedulerConfig::default(), clock, Some(name.into()))
}

/// (scheduled_for, outcome) of every ledger entry, in time order.
async fn ticks(pool: &PgPool, schedule: Uuid) -> Vec<(DateTime<Utc>, String)> {
    sqlx::query_as(
        "SELECT scheduled_for, outcome::text FROM schedule_ticks WHERE schedule_id = $1
         ORDER BY scheduled_for, wall_time",
    )
    .bind(schedule)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn runs(pool: &PgPool, schedule: Uuid) -> Vec<(DateTime<Utc>, String)> {
    sqlx::query_as(
        "SELECT scheduled_for, trigger::text FROM pipeline_runs WHERE schedule_id = $1
         ORDER BY scheduled_for",
    )
    .bind(schedule)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn three_schedulers_fire_each_of_1000_times_exactly_once(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let fx = fixture(opts).await;
    // Every second; overlap allowed, so every fire time makes a run.
    let id = schedule(&fx, "* * * * * *", Overlap::Allow, Catchup::All, t0()).await;
    let clock = Arc::new(ManualClock::new(t0()));
    let mut handles = Vec::new();
    for i in 0..3 {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(fx.opts.clone())
            .await
            .unwrap();
        let s = scheduler(pool, clock.clone(), &format!("s{i}"));
        let clock = clock.clone();
        // Each scheduler passes at every instant the clock shows, racing
        // the other two for the same schedule.
        handles.push(tokio::spawn(async move {
            let mut fired = 0;
            loop {
                let now = clock.now();
                fired += s.pass(now).await.unwrap().counts.fired;
                if now >= t0() + Duration::seconds(1_000) {
                    return fired;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    // The clock moves one second at a time, with the schedulers passing
    // as it goes, up to the 1,000th fire time.
    for _ in 0..1_000 {
        clock.advance(Duration::seconds(1));
        tokio::task::yield_now().await;
    }
    let mut fired = 0;
    for h in handles {
        fired += h.await.unwrap();
    }
    let r = runs(&fx.pool, id).await;
    assert_eq!(r.len(), 1_000, "exactly one run per fire time");
    assert_eq!(fired, 1_000, "the schedulers' own counts agree");
    let expect: Vec<DateTime<Utc>> = (1..=1_000).map(|s| t0() + Duration::seconds(s)).collect();
    assert_eq!(r.iter().map(|(at, _)| *at).collect::<Vec<_>>(), expect);
    assert!(r.iter().all(|(_, trig)| trig == "schedule"));
    let jobs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs j JOIN pipeline_runs r ON j.idempotency_key = r.id::text
         WHERE r.schedule_id = $1",
    )
    .bind(id)
    .fetch_one(&fx.pool)
    .await
    .unwrap();
    assert_eq!(jobs, 1_000, "every run has its queue job");
    let l = ticks(&fx.pool, id).await;
    assert_eq!(l.len(), 1_000);
    assert!(l.iter().all(|(_, o)| o == "fired"));
}

#[sqlx::test(migrations = false)]
async fn a_day_of_downtime_with_all_latest_and_none(_p: PgPoolOptions, opts: PgConnectOptions) {
    let fx = fixture(opts).await;
    let all = schedule(&fx, "0 * * * *", Overlap::Allow, Catchup::All, t0()).await;
    let latest = schedule(&fx, "0 * * * *", Overlap::Allow, Catchup::Latest, t0()).await;
    let none = schedule(&fx, "0 * * * *", Overlap::Allow, Catchup::None, t0()).await;
    let clock = Arc::new(ManualClock::new(t0()));
    let s = scheduler(fx.pool.clone(), clock.clone(), "s");
    // Down from t0 until a day and 5 minutes later.
    let back = t0() + Duration::days(1) + Duration::minutes(5);
    let report = s.pass(back).await.unwrap();
    assert_eq!(report.schedules, 3);
    let hours: Vec<DateTime<Utc>> = (1..=24).map(|h| t0() + Duration::hours(h)).collect();

    let r = runs(&fx.pool, all).await;
    assert_eq!(
        r.iter().map(|x| x.0).collect::<Vec<_>>(),
        hours,
        "all: 24 runs in order"
    );
    // Created in fire-time order too (run ids are time-ordered UUIDv7).
    let order: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT scheduled_for FROM pipeline_runs WHERE schedule_id = $1 ORDER BY id",
    )
    .bind(all)
    .fetch_all(&fx.pool)
    .await
    .unwrap();
    assert_eq!(order, hours);

    let r = runs(&fx.pool, latest).await;
    assert_eq!(
        r.iter().map(|x| x.0).collect::<Vec<_>>(),
        [hours[23]],
        "latest: one run"
    );
    let l = ticks(&fx.pool, latest).await;
    assert_eq!(l.len(), 24);
    assert_eq!(l.iter().filter(|x| x.1 == "missed_late").count(), 23);

    assert!(
        runs(&fx.pool, none).await.is_empty(),
        "none: no run (5 min late)"
    );
    let l = ticks(&fx.pool, none).await;
    assert_eq!(l.len(), 24, "each missed fire time is in the ledger");
    assert!(l.iter().all(|x| x.1 == "missed_late"));
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM schedule_ticks WHERE schedule_id = $1 ORDER BY scheduled_for DESC LIMIT 1",
    )
    .bind(none)
    .fetch_one(&fx.pool)
    .await
    .unwrap();
    assert_eq!(
        reason,
        "reached 5m 0s late (no scheduler was running) and catchup is none"
    );

    // A second pass at the same time finds nothing left to do.
    let again = s.pass(back).await.unwrap();
    assert_eq!(again.counts.fired, 0);
}

#[sqlx::test(migrations = false)]
async fn overlap_policies_are_enforced_in_the_database(_p: PgPoolOptions, opts: PgConnectOptions) {
    let fx = fixture(opts).await;
    let clock = Arc::new(ManualClock::new(t0()));
    let s = scheduler(fx.pool.clone(), clock.clone(), "s");
    let minute = |m: i64| t0() + Duration::minutes(m);

    // skip: the first fire's run is still queued (no worker), so the next
    // two are skipped.
    let skip = schedule(&fx, "* * * * *", Overlap::Skip, Catchup::All, t0()).await;
    for m in 1..=3 {
        s.pass(minute(m)).await.unwrap();
    }
    assert_eq!(runs(&fx.pool, skip).await.len(), 1);
    let l = ticks(&fx.pool, skip).await;
    assert_eq!(
        l.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        ["fired", "skipped_overlap", "skipped_overlap"]
    );
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM schedule_ticks WHERE schedule_id = $1 AND outcome = 'skipped_overlap' LIMIT 1",
    )
    .bind(skip)
    .fetch_one(&fx.pool)
    .await
    .unwrap();
    assert!(
        reason.ends_with("is still queued and overlapPolicy is skip"),
        "{reason}"
    );
    // (Paused rather than deleted: a deleted schedule's runs lose their
    // schedule id, and with it their part in overlap.)
    pause(&fx.pool, skip).await;
    sqlx::query("UPDATE pipeline_runs SET status = 'cancelled', finished_at = now() WHERE status = 'queued'")
        .execute(&fx.pool)
        .await
        .unwrap();

    // queue_one: one running, one waiting, the rest skipped.
    let q = schedule(&fx, "* * * * *", Overlap::QueueOne, Catchup::All, minute(3)).await;
    s.pass(minute(4)).await.unwrap();
    let first: Uuid = sqlx::query_scalar("SELECT id FROM pipeline_runs WHERE schedule_id = $1")
        .bind(q)
        .fetch_one(&fx.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE pipeline_runs SET status = 'running', started_at = now() WHERE id = $1")
        .bind(first)
        .execute(&fx.pool)
        .await
        .unwrap();
    s.pass(minute(5)).await.unwrap();
    s.pass(minute(6)).await.unwrap();
    let l = ticks(&fx.pool, q).await;
    assert_eq!(
        l.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        ["fired", "fired", "skipped_overlap"],
        "queue_one: at most one waiting"
    );
    pause(&fx.pool, q).await;

    // cancel_other: the waiting run is cancelled, the running one asked to stop.
    let c = schedule(
        &fx,
        "* * * * *",
        Overlap::CancelOther,
        Catchup::All,
        minute(6),
    )
    .await;
    s.pass(minute(7)).await.unwrap();
    let states: Vec<(String, bool)> = sqlx::query_as(
        "SELECT status::text, cancel_requested FROM pipeline_runs
         WHERE schedule_id = $1 ORDER BY scheduled_for",
    )
    .bind(q)
    .fetch_all(&fx.pool)
    .await
    .unwrap();
    assert_eq!(
        states,
        [
            ("running".to_string(), true),
            ("cancelled".to_string(), true)
        ],
        "the running run is asked to stop, the waiting one is cancelled"
    );
    let l = ticks(&fx.pool, c).await;
    assert_eq!(
        l.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        ["fired"]
    );

    // allow: a run per fire time whatever is running.
    pause(&fx.pool, c).await;
    let a = schedule(&fx, "* * * * *", Overlap::Allow, Catchup::All, minute(7)).await;
    for m in 8..=10 {
        s.pass(minute(m)).await.unwrap();
    }
    assert_eq!(runs(&fx.pool, a).await.len(), 3);
}

#[sqlx::test(migrations = false)]
async fn a_paused_schedule_records_its_fire_times_and_resumes(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let fx = fixture(opts).await;
    let id = schedule(&fx, "*/10 * * * *", Overlap::Allow, Catchup::All, t0()).await;
    sqlx::query("UPDATE pipeline_schedules SET enabled = false, pause_note = 'warehouse migration' WHERE id = $1")
        .bind(id)
        .execute(&fx.pool)
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let s = scheduler(fx.pool.clone(), clock, "s");
    s.pass(t0() + Duration::minutes(30)).await.unwrap();
    assert!(runs(&fx.pool, id).await.is_empty());
    let reasons: Vec<(String, String)> = sqlx::query_as(
        "SELECT outcome::text, reason FROM schedule_ticks WHERE schedule_id = $1 ORDER BY scheduled_for",
    )
    .bind(id)
    .fetch_all(&fx.pool)
    .await
    .unwrap();
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons
            .iter()
            .all(|(o, r)| o == "paused" && r == "the schedule is paused: warehouse migration")
    );
    sqlx::query("UPDATE pipeline_schedules SET enabled = true WHERE id = $1")
        .bind(id)
        .execute(&fx.pool)
        .await
        .unwrap();
    s.pass(t0() + Duration::minutes(40)).await.unwrap();
    assert_eq!(runs(&fx.pool, id).await.len(), 1);
}

/// `mudrock serve --roles scheduler` as a process on the system clock:
/// a per-second schedule gets its runs, and SIGTERM stops it cleanly.
#[sqlx::test(migrations = false)]
async fn the_scheduler_role_of_serve_fires_on_the_system_clock(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let fx = fixture(opts.clone()).await;
    let id = schedule(&fx, "* * * * * *", Overlap::Allow, Catchup::All, Utc::now()).await;
    let url = url(&opts);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mudrock"))
        .args(["serve", "--roles", "scheduler"])
        .env("DATABASE_URL", &url)
        .env("MUDROCK_STORE__DIR", fx._dir.path())
        .env("MUDROCK_SCHEDULER__POLL_MS", "100")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Observed state under a deadline: two fired fire times.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let fired: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM schedule_ticks WHERE schedule_id = $1 AND outcome = 'fired'",
        )
        .bind(id)
        .fetch_one(&fx.pool)
        .await
        .unwrap();
        if fired >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no runs fired within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let recorded_by: String =
        sqlx::query_scalar("SELECT recorded_by FROM schedule_ticks WHERE schedule_id = $1 LIMIT 1")
            .bind(id)
            .fetch_one(&fx.pool)
            .await
            .unwrap();
    assert!(recorded_by.starts_with("scheduler-"), "{recorded_by}");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM ends the scheduler cleanly: {status:?}"
    );
    let r = runs(&fx.pool, id).await;
    assert!(r.len() >= 2 && r.iter().all(|(_, t)| t == "schedule"));
}

/// A fired run, executed by a worker, carries trigger `schedule`, the
/// schedule's id and its nominal fire time into `metadata.json`.
#[sqlx::test(migrations = false)]
async fn a_scheduled_run_says_so_in_its_metadata(_p: PgPoolOptions, opts: PgConnectOptions) {
    let fx = fixture(opts).await;
    let project: Uuid = sqlx::query_scalar("SELECT project_id FROM pipelines WHERE id = $1")
        .bind(fx.pipeline)
        .fetch_one(&fx.pool)
        .await
        .unwrap();
    let mut store_cfg = StoreConfig::default();
    store_cfg.dir = fx._dir.path().to_path_buf();
    let bucket = store_cfg.bucket(Some(&project.to_string()));
    let csv = fx._dir.path().join(&bucket).join("shared/one.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    std::fs::write(&csv, "a,b\n1,2\n").unwrap();
    let id = schedule(&fx, "0 * * * *", Overlap::Skip, Catchup::All, t0()).await;
    let clock = Arc::new(ManualClock::new(t0()));
    scheduler(fx.pool.clone(), clock, "s")
        .pass(t0() + Duration::minutes(61))
        .await
        .unwrap();
    let run: Uuid = sqlx::query_scalar("SELECT id FROM pipeline_runs WHERE schedule_id = $1")
        .bind(id)
        .fetch_one(&fx.pool)
        .await
        .unwrap();
    let mut ws = mudrock::service::worker::WorkerSettings::default();
    ws.store = store_cfg.clone();
    ws.worker.poll_ms = 50;
    let store: Arc<dyn mudrock::store::ObjectStore> = Arc::new(LocalStore::new(fx._dir.path()));
    let worker = mudrock::service::worker::Worker::new(
        fx.pool.clone(),
        mudrock::engine::Engine::new(store),
        ws,
        Some("w".into()),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone().cancelled_owned()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let st: String = sqlx::query_scalar("SELECT status::text FROM pipeline_runs WHERE id = $1")
            .bind(run)
            .fetch_one(&fx.pool)
            .await
            .unwrap();
        if st == "succeeded" {
            break;
        }
        assert!(
            st != "failed" && std::time::Instant::now() < deadline,
            "run is {st}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.cancel();
    handle.await.unwrap().unwrap();
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fx._dir.path().join(&bucket).join(format!(
            "pipelines/{}/runs/{run}/metadata.json",
            fx.pipeline
        )))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["trigger"]["kind"], "schedule", "{meta}");
    assert_eq!(meta["trigger"]["scheduleId"], id.to_string());
    assert_eq!(meta["trigger"]["scheduledFor"], "2026-06-01T01:00:00Z");
}

/// `mudrock schedule ...` on the service connection: create, next fire
/// times, pause with a note, the ledger, and a bad spec refused with its
/// field.
#[sqlx::test(migrations = false)]
async fn the_schedule_cli(_p: PgPoolOptions, opts: PgConnectOptions) {
    let fx = fixture(opts.clone()).await;
    let url = url(&opts);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mudrock"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env("MUDROCK_STORE__DIR", fx._dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let pl = fx.pipeline.to_string();
    let (code, _, err) = cli(&["schedule", "create", &pl, "--cron", "0 25 * * *"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("error: cron: the hour field \"25\" is invalid"),
        "{err}"
    );
    let (code, out, err) = cli(&[
        "schedule",
        "create",
        &pl,
        "--cron",
        "30 2 * * *",
        "--timezone",
        "America/New_York",
        "--dst-gap",
        "skip",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let id = out.trim().to_string();
    id.parse::<Uuid>().unwrap();
    let (code, out, _) = cli(&["schedule", "next", &id, "--count", "3"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().all(|l| l.contains("T02:30:00-0")), "{out}");
    let (code, out, _) = cli(&["schedule", "pause", &id, "--note", "quarter close"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["enabled"].as_bool(), v["pauseNote"].as_str()),
        (Some(false), Some("quarter close"))
    );
    let (code, out, _) = cli(&["schedule", "list", &pl]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (code, out, _) = cli(&["schedule", "ticks", &id]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), ""),
        "no fire time has come yet"
    );
    let (code, _, err) = cli(&["schedule", "show", &Uuid::now_v7().to_string()]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("error: no schedule "), "{err}");
}

/// A per-second schedule paused for a day: one pass accounts for at most
/// `max_ticks_per_pass` of its fire times and returns; the next passes
/// go on from there, each fire time recorded once.
#[sqlx::test(migrations = false)]
async fn a_long_backlog_is_worked_off_a_bounded_chunk_per_pass(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let fx = fixture(opts).await;
    let id = schedule(&fx, "* * * * * *", Overlap::Allow, Catchup::All, t0()).await;
    pause(&fx.pool, id).await;
    let mut cfg = SchedulerConfig::default();
    cfg.max_ticks_per_pass = 500;
    let s = Scheduler::new(
        fx.pool.clone(),
        cfg,
        Arc::new(ManualClock::new(t0())),
        Some("s".into()),
    );
    let now = t0() + Duration::seconds(1_200);
    let first = s.pass(now).await.unwrap();
    assert_eq!((first.schedules, first.counts.paused), (1, 500));
    let second = s.pass(now).await.unwrap();
    assert_eq!(second.counts.paused, 500);
    let third = s.pass(now).await.unwrap();
    assert_eq!(third.counts.paused, 200);
    assert_eq!(s.pass(now).await.unwrap().schedules, 0, "caught up");
    assert_eq!(ticks(&fx.pool, id).await.len(), 1_200);
}
