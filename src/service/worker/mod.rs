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

mod config;
mod error;
mod job;
mod runs;

use std::collections::HashMap;
use std::future::Future;
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
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::engine::{Engine, Event, RunOptions};
use crate::model::{NodeStatus, RunStatus, Trigger};
use crate::service::db::{self, DbError};
use crate::service::queue::{QUEUE, RunJob};
use crate::validate;
pub use config::{WorkerConfig, WorkerSettings};
pub use error::WorkerError;
use runs::*;

/// A run this worker holds: its cancellation token, shared with the
/// engine (stop between nodes), a child of the worker's `handback` token.
type Held = CancellationToken;

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
    config: Arc<WorkerSettings>,
    id: String,
    ctx: WorkerContext,
    held: Arc<Mutex<HashMap<Uuid, Held>>>,
    /// Cancelled when the shutdown grace period ends: every held run stops
    /// at its next node boundary and goes back to the queue instead of
    /// finishing `cancelled`.
    handback: CancellationToken,
    /// Times the loop looked for work (free slots or not).
    claim_rounds: Arc<std::sync::atomic::AtomicU64>,
    /// Where runs' OpenLineage events go, if anywhere.
    lineage: Option<crate::service::lineage_sink::Emitter>,
}

/// What a worker is doing, for health checks and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    /// Runs held, each with whether it has been asked to stop.
    pub held: Vec<(Uuid, bool)>,
    /// Times the loop looked for work; a round with no free slot counts.
    pub claim_rounds: u64,
    /// The shutdown grace period is over: held runs go back to the queue.
    pub handing_back: bool,
}

impl Worker {
    pub fn new(
        pool: PgPool,
        engine: Engine,
        config: impl Into<WorkerSettings>,
        id: Option<String>,
    ) -> Self {
        let id = id.unwrap_or_else(|| {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            let tag = Uuid::now_v7().simple().to_string();
            format!("{host}-{}-{}", std::process::id(), &tag[tag.len() - 8..])
        });
        let config: WorkerSettings = config.into();
        let lineage = crate::service::lineage_sink::Emitter::from_config(&config.lineage)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "no openlineage events will be sent");
                None
            });
        Worker {
            pool,
            engine,
            lineage,
            config: Arc::new(config),
            ctx: WorkerContext::new(&id),
            id,
            held: Arc::default(),
            handback: CancellationToken::new(),
            claim_rounds: Arc::default(),
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
        self.db_with(what, self.wc().retry.forever(), f).await
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
                    self.handback.cancel();
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
                let cancels = crate::service::runs::heartbeat(&mut conn, &self.id, &ids).await?;
                let held = self.held.lock().unwrap();
                for (id, cancel) in cancels {
                    if cancel && let Some(h) = held.get(&id) {
                        if !h.is_cancelled() {
                            h.cancel();
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

    /// What this worker is doing now.
    pub fn status(&self) -> WorkerStatus {
        let mut held: Vec<(Uuid, bool)> = self
            .held
            .lock()
            .unwrap()
            .iter()
            .map(|(id, t)| (*id, t.is_cancelled()))
            .collect();
        held.sort();
        WorkerStatus {
            held,
            claim_rounds: self.claim_rounds.load(std::sync::atomic::Ordering::SeqCst),
            handing_back: self.handback.is_cancelled(),
        }
    }

    async fn claim(&self, jobs: &mut JoinSet<()>) {
        self.claim_rounds
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        metrics::gauge!("mudrock_worker_slots_busy", "worker" => self.id.clone())
            .set(jobs.len() as f64);
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

/// True on a notification; false when the listener broke (it is then
/// rebuilt, and polling covers the gap). Pends forever without one.
async fn next_notification(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}
