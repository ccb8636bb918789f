//! `mudrock worker`: takes runs from the queue and executes them with the
//! engine, any number of workers on any number of machines.
//!
//! The loop, per worker:
//! - registers in `apalis.workers` and heartbeats every `heartbeat_ms`
//!   (apalis' `keep_alive`); each heartbeat also re-enqueues jobs of workers
//!   whose heartbeat is older than the lease (`heartbeat_ms ×
//!   missed_heartbeats`: apalis' `reenqueue_orphaned`), refreshes
//!   `pipeline_runs.heartbeat_at` of the runs it holds and picks up
//!   cancellation requests;
//! - claims up to its free slots with apalis' `get_jobs` (`FOR UPDATE SKIP
//!   LOCKED`), woken by the queue's NOTIFY or the poll interval;
//! - per job: moves the run to `running` (attempt + 1, fenced by worker id
//!   and attempt), writes node states as the engine reports them, retries
//!   transient failures with exponential backoff and jitter, fails pipeline
//!   errors at once with their message, and finishes run then job.
//!
//! A worker that dies keeps its job locked until its lease runs out; the
//! next heartbeat of any worker re-enqueues it, and whoever claims it runs
//! the same run id again with the next attempt number. The engine deletes
//! the run's commit marker first and writes it last, and caches what the
//! dead attempt finished, so exactly one complete artifact set results.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis_core::backend::TaskResult;
use apalis_core::task::status::Status;
use apalis_core::worker::context::WorkerContext;
use apalis_postgres::PgTask;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::artifacts::{NodeStatus, RunStatus, Trigger};
use crate::config::Config;
pub use crate::config::WorkerConfig;
use crate::db::{self, DbError};
use crate::engine::{Engine, Event, RunOptions};
use crate::error::Fault;
use crate::queue::{QUEUE, RunJob};
use crate::validate;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl WorkerError {
    pub fn fault(&self) -> Fault {
        match self {
            WorkerError::Db(e) => e.fault(),
            WorkerError::Store(_) => Fault::External,
        }
    }
}

/// Flags of a run this worker holds.
#[derive(Clone, Default)]
struct Held {
    /// Shared with the engine: stop between nodes.
    cancel: Arc<AtomicBool>,
    /// Set with `cancel` at shutdown: hand the run back instead of
    /// finishing it `cancelled`.
    release: Arc<AtomicBool>,
}

/// What became of a claimed job.
enum JobOutcome {
    /// The run is finished (or was already): the job is done.
    Done { ok: bool, message: String },
    /// The job goes back to the queue now (shutdown, or the run could not
    /// be started or recorded).
    Release,
    /// `maxConcurrentRuns` reached: offer the job again later.
    Defer,
    /// The run is no longer ours (lease lost); leave the job alone.
    Lost,
}

/// One worker process's state; cheap to clone into job tasks.
#[derive(Clone)]
pub struct Worker {
    pool: PgPool,
    engine: Engine,
    config: Arc<Config>,
    id: String,
    ctx: WorkerContext,
    held: Arc<Mutex<HashMap<Uuid, Held>>>,
}

impl Worker {
    pub fn new(pool: PgPool, engine: Engine, config: Config, id: Option<String>) -> Self {
        let id = id.unwrap_or_else(|| {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            let tag = Uuid::now_v7().simple().to_string();
            format!("{host}-{}-{}", std::process::id(), &tag[tag.len() - 8..])
        });
        Worker {
            pool,
            engine,
            config: Arc::new(config),
            ctx: WorkerContext::new(&id),
            id,
            held: Arc::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn wc(&self) -> &WorkerConfig {
        &self.config.worker
    }

    fn apalis_config(&self, batch: usize) -> apalis_postgres::Config {
        apalis_postgres::Config::default()
            .queue(QUEUE)
            .batch_size(batch.max(1))
            .heartbeat_interval(Duration::from_millis(self.wc().heartbeat_ms))
            .missed_heartbeats(self.wc().missed_heartbeats as usize)
    }

    fn backoff(&self) -> ExponentialBuilder {
        self.wc().retry.backoff()
    }

    /// Retries `f` while the database is unreachable, within the budget.
    async fn db<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        self.db_with(what, self.backoff(), f).await
    }

    /// Like [`Self::db`] but never gives up while the process lives: a
    /// finished run's result must reach the database.
    async fn db_forever<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        self.db_with(what, self.backoff().with_total_delay(None), f)
            .await
    }

    async fn db_with<T, F, Fut>(
        &self,
        what: &'static str,
        backoff: ExponentialBuilder,
        f: F,
    ) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        f.retry(backoff)
            .when(DbError::is_retryable)
            .notify(|e, d| {
                tracing::warn!(worker = %self.id, op = what, error = %e, retry_in_ms = d.as_millis() as u64, "database unavailable, retrying");
            })
            .await
    }

    async fn register(&self) -> Result<(), DbError> {
        self.db("register", || async move {
            sqlx::query(
                "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
                 VALUES ($1, $2, 'mudrock', '', now())
                 ON CONFLICT (id) DO UPDATE SET last_seen = now()",
            )
            .bind(&self.id)
            .bind(QUEUE)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Runs until `shutdown` completes, then stops claiming and finishes or
    /// releases what it holds within the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), WorkerError> {
        db::check_current(&self.pool).await?;
        self.register().await?;
        tracing::info!(worker = %self.id, concurrency = self.wc().concurrency, lease_secs = self.wc().lease_secs(), "worker started");
        let mut listener = self.listen().await;
        let mut jobs: JoinSet<()> = JoinSet::new();
        let mut heartbeat = tokio::time::interval(Duration::from_millis(self.wc().heartbeat_ms));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poll = tokio::time::interval(Duration::from_millis(self.wc().poll_ms.max(10)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut stopping = false;
        let mut released = false;
        let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
        let deadline = tokio::time::sleep_until(far);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut shutdown, if !stopping => {
                    stopping = true;
                    tracing::info!(worker = %self.id, running = jobs.len(), grace_secs = self.wc().shutdown_grace_seconds, "shutting down: no new runs");
                    if jobs.is_empty() { break; }
                    deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(self.wc().shutdown_grace_seconds));
                }
                _ = &mut deadline, if stopping => {
                    if released {
                        // Runs that did not reach a node boundary in time:
                        // abandon them; their lease expires and another
                        // worker takes over, as after a crash.
                        tracing::warn!(worker = %self.id, running = jobs.len(), "grace period over, abandoning runs to lease expiry");
                        jobs.abort_all();
                        break;
                    }
                    released = true;
                    tracing::info!(worker = %self.id, running = jobs.len(), "grace period over, handing runs back to the queue");
                    for h in self.held.lock().unwrap().values() {
                        h.release.store(true, Ordering::SeqCst);
                        h.cancel.store(true, Ordering::SeqCst);
                    }
                    deadline.as_mut().reset(tokio::time::Instant::now() + self.wc().lease());
                }
                _ = heartbeat.tick() => self.heartbeat().await,
                _ = poll.tick(), if !stopping => {
                    if listener.is_none() {
                        listener = self.listen().await;
                    }
                    self.claim(&mut jobs).await;
                }
                woke = next_notification(&mut listener), if !stopping => {
                    if !woke { listener = None; }
                    self.claim(&mut jobs).await;
                }
                Some(_) = jobs.join_next() => {
                    if stopping && jobs.is_empty() { break; }
                    if !stopping { self.claim(&mut jobs).await; }
                }
            }
        }
        tracing::info!(worker = %self.id, "worker stopped");
        Ok(())
    }

    /// LISTENs for new jobs; `None` while the database is away (bounded,
    /// so an outage does not stall heartbeats and shutdown).
    async fn listen(&self) -> Option<PgListener> {
        tokio::time::timeout(Duration::from_secs(1), async {
            let mut l = PgListener::connect_with(&self.pool).await.ok()?;
            l.listen("apalis::job::insert").await.ok()?;
            Some(l)
        })
        .await
        .ok()
        .flatten()
    }

    /// Keeps this worker's lease, takes over dead workers' jobs, refreshes
    /// the held runs' heartbeat and reads their cancellation requests.
    async fn heartbeat(&self) {
        let res: Result<(), DbError> = async {
            let mut conn = self.pool.acquire().await?;
            match apalis_postgres::queries::keep_alive(&mut *conn, QUEUE, &self.ctx).await {
                Ok(()) => {}
                // Our row is gone (a database restored from backup, say).
                Err(apalis_postgres::Error::WorkerOutOfSync) => {
                    drop(conn);
                    self.register().await?;
                    conn = self.pool.acquire().await?;
                }
                Err(e) => return Err(e.into()),
            }
            let n = apalis_postgres::queries::reenqueue_orphaned(
                &mut *conn,
                QUEUE,
                self.wc().lease_secs(),
            )
            .await
            .map_err(DbError::from)?;
            if n > 0 {
                tracing::info!(worker = %self.id, jobs = n, "re-enqueued the jobs of workers whose lease expired");
            }
            let ids: Vec<Uuid> = self.held.lock().unwrap().keys().copied().collect();
            if !ids.is_empty() {
                let cancels: Vec<(Uuid, bool)> = sqlx::query_as(
                    "UPDATE pipeline_runs SET heartbeat_at = now()
                     WHERE id = ANY($1) AND worker_id = $2 AND status = 'running'
                     RETURNING id, cancel_requested",
                )
                .bind(&ids)
                .bind(&self.id)
                .fetch_all(&mut *conn)
                .await?;
                let held = self.held.lock().unwrap();
                for (id, cancel) in cancels {
                    if cancel && let Some(h) = held.get(&id) {
                        if !h.cancel.swap(true, Ordering::SeqCst) {
                            tracing::info!(worker = %self.id, run_id = %id, "cancellation requested, stopping between nodes");
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(worker = %self.id, error = %e, "heartbeat failed");
        }
    }

    async fn claim(&self, jobs: &mut JoinSet<()>) {
        let free = self.wc().concurrency.max(1).saturating_sub(jobs.len());
        if free == 0 {
            return;
        }
        let fetched: Result<Vec<PgTask>, DbError> = async {
            let mut conn = self.pool.acquire().await?;
            apalis_postgres::queries::fetch_next(&mut *conn, &self.apalis_config(free), &self.ctx)
                .await
                .map_err(DbError::from)
        }
        .await;
        match fetched {
            Ok(tasks) => {
                for task in tasks {
                    let w = self.clone();
                    jobs.spawn(async move { w.process(task).await });
                }
            }
            Err(e) => tracing::warn!(worker = %self.id, error = %e, "claiming failed"),
        }
    }

    /// One claimed job, start to end.
    async fn process(&self, task: PgTask) {
        let Some(job_id) = task.task_id().map(|t| t.to_string()) else {
            return;
        };
        let job: RunJob = match serde_json::from_slice(&task.args) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(worker = %self.id, job_id, error = %e, "job payload is not a run");
                self.complete_job(&job_id, false, format!("bad payload: {e}"))
                    .await;
                return;
            }
        };
        let job_ref = job_id.as_str();
        let outcome = self.execute(job.run_id, &job_id).await;
        match outcome {
            JobOutcome::Done { ok, message } => self.complete_job(&job_id, ok, message).await,
            JobOutcome::Release => {
                let r = self
                    .db_forever("release job", || async move {
                        sqlx::query(
                            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL,
                                    done_at = NULL, last_result = '{\"Err\": \"handed back by the worker\"}'
                             WHERE id = $1 AND lock_by = $2",
                        )
                        .bind(job_ref)
                        .bind(&self.id)
                        .execute(&self.pool)
                        .await?;
                        Ok(())
                    })
                    .await;
                if let Err(e) = r {
                    tracing::warn!(worker = %self.id, job_id, error = %e, "cannot release the job; its lease will expire");
                }
            }
            JobOutcome::Defer => {
                let delay = self.wc().defer_ms as f64 / 1000.0;
                let r = self
                    .db("defer job", || async move {
                        sqlx::query(
                            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL,
                                    run_at = now() + make_interval(secs => $3)
                             WHERE id = $1 AND lock_by = $2",
                        )
                        .bind(job_ref)
                        .bind(&self.id)
                        .bind(delay)
                        .execute(&self.pool)
                        .await?;
                        Ok(())
                    })
                    .await;
                if let Err(e) = r {
                    tracing::warn!(worker = %self.id, job_id, error = %e, "cannot defer the job; its lease will expire");
                }
            }
            JobOutcome::Lost => {}
        }
    }

    async fn complete_job(&self, job_id: &str, ok: bool, message: String) {
        let Ok(task_id) = job_id.parse() else {
            return;
        };
        let payload = TaskResult {
            task_id,
            attempt: 1,
            status: if ok { Status::Done } else { Status::Failed },
            result: if ok {
                Ok(serde_json::Value::String(message))
            } else {
                Err(message)
            },
        };
        let payload = &payload;
        let r = self
            .db_forever("complete job", || async move {
                let mut conn = self.pool.acquire().await?;
                apalis_postgres::queries::handle_results(&mut *conn, &[payload], &self.id)
                    .await
                    .map_err(DbError::from)?;
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(worker = %self.id, job_id, error = %e, "cannot complete the job");
        }
    }

    /// Claims the run row and executes it; retries transient failures.
    async fn execute(&self, run_id: Uuid, job_id: &str) -> JobOutcome {
        let start = match self
            .db("start run", || self.start_run(run_id, job_id))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                // The job is locked by this live worker, so no lease would
                // ever expire for it: hand it back for a later claim.
                tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot start the run, handing the job back");
                return JobOutcome::Release;
            }
        };
        let (mut attempt, row) = match start {
            Start::Run(attempt, row) => (attempt, row),
            Start::Finished(status) => {
                return JobOutcome::Done {
                    ok: true,
                    message: format!("run already {status}"),
                };
            }
            Start::Missing => {
                return JobOutcome::Done {
                    ok: false,
                    message: format!("run {run_id} does not exist"),
                };
            }
            Start::Defer => return JobOutcome::Defer,
        };
        tracing::info!(worker = %self.id, run_id = %run_id, attempt, "run claimed");

        // A definition that fails validation fails the run at once with
        // the whole report: retrying cannot fix it.
        let vopts = validate::Options {
            strict: false,
            limits: self.config.limits,
        };
        let pipeline = match validate::validate(row.definition.clone(), vopts) {
            Ok((p, _)) => Arc::new(p),
            Err(report) => {
                let msg = format!("pipeline is invalid:\n{report}");
                return self
                    .finish(run_id, attempt, RunStatus::Failed, Some(msg))
                    .await;
            }
        };
        let held = Held::default();
        self.held.lock().unwrap().insert(run_id, held.clone());
        let _unhold = Unhold(self.held.clone(), run_id);
        let mut backoff = self.backoff().build();
        loop {
            let (tx, rx) = mpsc::unbounded_channel();
            let writer = tokio::spawn(self.clone().write_nodes(run_id, rx));
            let opts = RunOptions {
                bucket: self.config.bucket(Some(&row.project_id.to_string())),
                project_id: row.project_id.to_string(),
                pipeline_id: row.pipeline_id.to_string(),
                run_id: run_id.to_string(),
                trigger: Trigger {
                    kind: row.trigger.clone(),
                    schedule_id: row.schedule_id.map(|s| s.to_string()),
                    requested_by: row.requested_by.map(|s| s.to_string()),
                },
                attempt: attempt as u32,
                use_cache: true,
                concurrency: self.config.engine.concurrency,
                streaming: self.config.engine.streaming,
                streaming_above_bytes: self.config.engine.streaming_above_bytes(),
                events: Some(tx),
                cancel: held.cancel.clone(),
                limits: self.config.engine.limits(),
            };
            let res = self.engine.run(pipeline.clone(), opts).await;
            let _ = writer.await;
            match res {
                Ok(r) => {
                    if held.release.load(Ordering::SeqCst) && r.meta.status == RunStatus::Cancelled
                    {
                        // The engine committed a `cancelled` run; the run
                        // is not over, so its folder must not look done.
                        let marker = format!("{}metadata.json", r.run_prefix);
                        let bucket = self.config.bucket(Some(&row.project_id.to_string()));
                        if let Err(e) = self.engine.store().delete(&bucket, &marker).await {
                            tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot remove the commit marker of a handed-back run");
                        }
                        return self.release(run_id, attempt).await;
                    }
                    return self
                        .finish(run_id, attempt, r.meta.status, r.meta.error.clone())
                        .await;
                }
                Err(e) => {
                    let retry = e.is_retryable()
                        && (attempt as u32) < self.wc().max_attempts
                        && !held.cancel.load(Ordering::SeqCst);
                    let delay = if retry { backoff.next() } else { None };
                    let Some(delay) = delay else {
                        let fault = e.fault();
                        tracing::warn!(worker = %self.id, run_id = %run_id, attempt, ?fault, error = %e, "run failed");
                        return self
                            .finish(run_id, attempt, RunStatus::Failed, Some(e.to_string()))
                            .await;
                    };
                    tracing::warn!(worker = %self.id, run_id = %run_id, attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "transient failure, retrying");
                    let note = format!(
                        "attempt {attempt} failed: {e}; retrying in {} ms",
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                    match self
                        .db("next attempt", || self.next_attempt(run_id, attempt, &note))
                        .await
                    {
                        Ok(Some(a)) => attempt = a,
                        Ok(None) => return JobOutcome::Lost,
                        Err(e) => {
                            // The run stays `running` as ours; whoever
                            // claims the handed-back job takes it over.
                            tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot record the next attempt, handing the job back");
                            return JobOutcome::Release;
                        }
                    }
                }
            }
        }
    }

    /// Moves the run to `running` with the next attempt, unless it is
    /// finished, cancelled, or its project is at `maxConcurrentRuns`.
    async fn start_run(&self, run_id: Uuid, job_id: &str) -> Result<Start, DbError> {
        // Timestamps below use clock_timestamp(), not now(): now() is when
        // this transaction began, possibly before it waited for the project
        // lock, which would date a start before the previous run's end.
        let mut tx = self.pool.begin().await?;
        // The job: Queued (claimed) → Running, in the same commit.
        apalis_postgres::queries::lock_tasks(&mut *tx, &[job_id.to_string()], &self.id).await?;
        // Locking the project row serialises run starts within a project,
        // so two workers cannot both take the last free slot.
        let row: Option<RunStartRow> = sqlx::query_as(
            "SELECT r.status::text AS status, r.cancel_requested, r.project_id, r.pipeline_id,
                    r.trigger::text AS trigger, r.schedule_id, r.requested_by,
                    v.dag_definition AS definition,
                    (p.settings ->> 'maxConcurrentRuns')::int AS max_concurrent
             FROM pipeline_runs r
             JOIN pipeline_versions v ON v.id = r.pipeline_version_id
             JOIN projects p ON p.id = r.project_id
             WHERE r.id = $1
             FOR UPDATE OF r, p",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Start::Missing);
        };
        if matches!(row.status.as_str(), "succeeded" | "failed" | "cancelled") {
            return Ok(Start::Finished(row.status));
        }
        if row.cancel_requested {
            sqlx::query(
                "UPDATE pipeline_runs SET status = 'cancelled', finished_at = greatest(clock_timestamp(), started_at)
                 WHERE id = $1",
            )
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Start::Finished("cancelled".into()));
        }
        if let Some(max) = row.max_concurrent {
            let running: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pipeline_runs
                 WHERE project_id = $1 AND status = 'running' AND id <> $2",
            )
            .bind(row.project_id)
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await?;
            if running >= i64::from(max) {
                tracing::debug!(worker = %self.id, run_id = %run_id, running, max, "project at maxConcurrentRuns, deferring");
                return Ok(Start::Defer);
            }
        }
        let attempt: i32 = sqlx::query_scalar(
            "UPDATE pipeline_runs SET status = 'running', attempt = attempt + 1,
                    started_at = coalesce(started_at, clock_timestamp()), heartbeat_at = now(),
                    worker_id = $2, error = NULL
             WHERE id = $1 RETURNING attempt",
        )
        .bind(run_id)
        .bind(&self.id)
        .fetch_one(&mut *tx)
        .await?;
        // Node states start over with every attempt.
        sqlx::query(
            "UPDATE node_runs SET status = 'pending', reason = NULL, cache_key = NULL, cache_hit = false,
                    rows = NULL, bytes = NULL, started_at = NULL, finished_at = NULL, error = NULL
             WHERE run_id = $1",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        // A row per node from the start, so a client sees the whole run.
        let node_ids: Vec<&str> = row.definition["nodes"]
            .as_array()
            .map(|ns| ns.iter().filter_map(|n| n["id"].as_str()).collect())
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO node_runs (run_id, node_id) SELECT $1, unnest($2::text[])
             ON CONFLICT (run_id, node_id) DO NOTHING",
        )
        .bind(run_id)
        .bind(&node_ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Start::Run(attempt, row))
    }

    /// Records a retry; `None` when the run is no longer ours.
    async fn next_attempt(
        &self,
        run_id: Uuid,
        attempt: i32,
        note: &str,
    ) -> Result<Option<i32>, DbError> {
        Ok(sqlx::query_scalar(
            "UPDATE pipeline_runs SET attempt = attempt + 1, error = $4, heartbeat_at = now()
             WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND status = 'running'
             RETURNING attempt",
        )
        .bind(run_id)
        .bind(&self.id)
        .bind(attempt)
        .bind(note)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Writes the run's end, fenced: only the worker and attempt that hold
    /// the run may finish it.
    async fn finish(
        &self,
        run_id: Uuid,
        attempt: i32,
        status: RunStatus,
        error: Option<String>,
    ) -> JobOutcome {
        let name = match status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Cancelled => "cancelled",
            _ => "failed",
        };
        let error = match (status, error) {
            (RunStatus::Failed, None) => Some("failed".to_string()),
            (_, e) => e,
        };
        let error_ref = &error;
        let r = self
            .db_forever("finish run", || async move {
                let n = sqlx::query(
                    "UPDATE pipeline_runs SET status = $4::run_status, error = $5,
                            finished_at = greatest(clock_timestamp(), started_at), heartbeat_at = now()
                     WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND status = 'running'",
                )
                .bind(run_id)
                .bind(&self.id)
                .bind(attempt)
                .bind(name)
                .bind(error_ref)
                .execute(&self.pool)
                .await?;
                Ok(n.rows_affected())
            })
            .await;
        match r {
            Ok(1) => {
                tracing::info!(worker = %self.id, run_id = %run_id, attempt, status = name, "run finished");
                JobOutcome::Done {
                    ok: status == RunStatus::Succeeded,
                    message: error.unwrap_or_else(|| name.to_string()),
                }
            }
            Ok(_) => {
                tracing::warn!(worker = %self.id, run_id = %run_id, attempt, "run was taken over (lease lost); result discarded");
                JobOutcome::Lost
            }
            Err(e) => {
                tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot record the run's end");
                JobOutcome::Lost
            }
        }
    }

    /// Shutdown: the run goes back to `queued` for another worker.
    async fn release(&self, run_id: Uuid, attempt: i32) -> JobOutcome {
        let r = self
            .db_forever("release run", || async move {
                sqlx::query(
                    "UPDATE pipeline_runs SET status = 'queued', worker_id = NULL
                     WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND status = 'running'",
                )
                .bind(run_id)
                .bind(&self.id)
                .bind(attempt)
                .execute(&self.pool)
                .await?;
                Ok(())
            })
            .await;
        match r {
            Ok(()) => {
                tracing::info!(worker = %self.id, run_id = %run_id, "run handed back to the queue");
                JobOutcome::Release
            }
            Err(_) => JobOutcome::Lost,
        }
    }

    /// Writes node states as the engine reports them, in order. Progress
    /// is best effort: a write that cannot be made within the retry budget
    /// is skipped; the run's final status does not depend on it.
    async fn write_nodes(self, run_id: Uuid, mut rx: mpsc::UnboundedReceiver<Event>) {
        let w = &self;
        while let Some(first) = rx.recv().await {
            // Whatever else has arrived goes in the same transaction: one
            // commit for a burst of node events instead of one each.
            let mut batch = vec![first];
            while let Ok(ev) = rx.try_recv() {
                batch.push(ev);
            }
            let batch = &batch;
            let r = w
                .db("node states", || async move {
                    let mut tx = w.pool.begin().await?;
                    for ev in batch {
                        write_node_event(&mut tx, run_id, ev).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(worker = %w.id, run_id = %run_id, events = batch.len(), error = %e, "cannot write node states");
            }
        }
    }
}

async fn write_node_event(
    conn: &mut sqlx::PgConnection,
    run_id: Uuid,
    ev: &Event,
) -> Result<(), DbError> {
    match ev {
        Event::NodeStarted { node_id } => {
            sqlx::query(
                "UPDATE node_runs SET status = 'running', started_at = clock_timestamp()
                 WHERE run_id = $1 AND node_id = $2",
            )
            .bind(run_id)
            .bind(node_id)
            .execute(&mut *conn)
            .await?;
        }
        Event::NodeFinished(rec) => {
            let reason = match (rec.status, &rec.reason) {
                (NodeStatus::Skipped, None) => Some("skipped".to_string()),
                (_, r) => r.clone(),
            };
            sqlx::query(
                "UPDATE node_runs SET status = $3::node_status, reason = $4, cache_key = $5,
                        cache_hit = $6, rows = $7, bytes = $8, error = $9,
                        started_at = coalesce(started_at, clock_timestamp()), finished_at = clock_timestamp()
                 WHERE run_id = $1 AND node_id = $2",
            )
            .bind(run_id)
            .bind(&rec.node_id)
            .bind(rec.status.name())
            .bind(reason)
            .bind(&rec.cache_key)
            .bind(rec.cache_hit)
            .bind(rec.rows.map(|v| v as i64))
            .bind(rec.bytes.map(|v| v as i64))
            .bind(&rec.error)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Removes a run from the held set when its task ends, however it ends.
struct Unhold(Arc<Mutex<HashMap<Uuid, Held>>>, Uuid);

impl Drop for Unhold {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&self.1);
        }
    }
}

enum Start {
    Run(i32, RunStartRow),
    Finished(String),
    Missing,
    Defer,
}

#[derive(sqlx::FromRow)]
struct RunStartRow {
    status: String,
    cancel_requested: bool,
    project_id: Uuid,
    pipeline_id: Uuid,
    trigger: String,
    schedule_id: Option<Uuid>,
    requested_by: Option<Uuid>,
    definition: serde_json::Value,
    max_concurrent: Option<i32>,
}

/// True on a notification; false when the listener broke (it is then
/// rebuilt, and polling covers the gap). Pends forever without one.
async fn next_notification(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}
