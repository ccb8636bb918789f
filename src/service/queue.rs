//! The run queue: a `pipeline_runs` row plus a job in apalis' PostgreSQL
//! storage (`apalis.jobs`), always written in one transaction, so there is
//! no run without a job and no job without a run.
//!
//! apalis-postgres 1.0 owns the job table, its claim function
//! (`apalis.get_jobs`: `FOR UPDATE SKIP LOCKED`), worker heartbeats
//! (`apalis.workers.last_seen`) and orphan re-enqueue (jobs locked by a
//! worker whose heartbeat is older than the lease go back to `Pending`).
//! mudrock calls those queries directly (`apalis_postgres::queries`) from
//! its own worker loop (`worker`) instead of apalis' tower worker,
//! because a run needs more than a job: run and node states, fencing by
//! attempt, per-project limits, and surviving a database restart without
//! the worker process giving up.

use apalis_postgres::PgTask;
use serde::{Deserialize, Serialize};
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use crate::service::db::DbError;

/// The apalis queue (job type) runs go through. Named explicitly: apalis'
/// default is the Rust type path, which a rename would silently change.
pub const QUEUE: &str = "mudrock.runs";

/// A job's payload: which run to execute. Everything else is read from
/// the run row when the job is claimed, so the row is the one truth.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunJob {
    pub run_id: Uuid,
}

/// What started a run (`run_trigger` in the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    Api,
    Schedule,
    Cli,
    Retry,
}

impl TriggerKind {
    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::Api => "api",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Cli => "cli",
            TriggerKind::Retry => "retry",
        }
    }
}

/// A request to run a pipeline's latest saved version.
#[derive(Debug, Clone)]
pub struct TriggerRequest {
    pub pipeline_id: Uuid,
    pub trigger: TriggerKind,
    pub requested_by: Option<Uuid>,
    /// Same key, same pipeline: the existing run comes back.
    pub idempotency_key: Option<String>,
    pub schedule_id: Option<Uuid>,
    pub scheduled_for: Option<chrono::DateTime<chrono::Utc>>,
}

impl TriggerRequest {
    pub fn new(pipeline_id: Uuid, trigger: TriggerKind) -> Self {
        TriggerRequest {
            pipeline_id,
            trigger,
            requested_by: None,
            idempotency_key: None,
            schedule_id: None,
            scheduled_for: None,
        }
    }
}

/// The run a trigger produced or found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triggered {
    pub run_id: Uuid,
    /// False when an idempotency key (or a schedule's fire time) matched
    /// an existing run.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("pipeline {0} does not exist (or is not visible)")]
    NoPipeline(Uuid),
    #[error("pipeline {0} has no saved version to run")]
    NoVersion(Uuid),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for TriggerError {
    fn from(e: sqlx::Error) -> Self {
        TriggerError::Db(DbError::Query(e))
    }
}

impl From<apalis_postgres::Error> for TriggerError {
    fn from(e: apalis_postgres::Error) -> Self {
        TriggerError::Db(e.into())
    }
}

/// Inserts the run row and its job in one transaction (a savepoint when
/// `conn` is already in one). With an idempotency key that was used
/// before, returns that run and queues nothing.
pub async fn trigger(
    conn: &mut PgConnection,
    req: &TriggerRequest,
) -> Result<Triggered, TriggerError> {
    let mut tx = conn.begin().await?;
    if let Some(existing) = find_existing(&mut tx, req).await? {
        return Ok(Triggered {
            run_id: existing,
            created: false,
        });
    }
    let project: Option<Uuid> =
        sqlx::query_scalar("SELECT project_id FROM pipelines WHERE id = $1")
            .bind(req.pipeline_id)
            .fetch_optional(&mut *tx)
            .await?;
    let project = project.ok_or(TriggerError::NoPipeline(req.pipeline_id))?;
    let version: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM pipeline_versions WHERE pipeline_id = $1 ORDER BY revision DESC LIMIT 1",
    )
    .bind(req.pipeline_id)
    .fetch_optional(&mut *tx)
    .await?;
    let version = version.ok_or(TriggerError::NoVersion(req.pipeline_id))?;
    // A concurrent trigger with the same key (or fire time) may commit
    // between the lookup above and this insert: the unique indexes decide,
    // and the loser returns the winner's run.
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO pipeline_runs (pipeline_id, project_id, pipeline_version_id, trigger,
                                    requested_by, idempotency_key, schedule_id, scheduled_for)
         VALUES ($1, $2, $3, $4::run_trigger, $5, $6, $7, $8)
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(req.pipeline_id)
    .bind(project)
    .bind(version)
    .bind(req.trigger.name())
    .bind(req.requested_by)
    .bind(&req.idempotency_key)
    .bind(req.schedule_id)
    .bind(req.scheduled_for)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(run_id) = inserted else {
        drop(tx);
        let mut tx = conn.begin().await?;
        let existing = find_existing(&mut tx, req).await?;
        return existing
            .map(|run_id| Triggered {
                run_id,
                created: false,
            })
            .ok_or_else(|| TriggerError::Db(DbError::Query(sqlx::Error::RowNotFound)));
    };
    enqueue(&mut tx, run_id).await?;
    tx.commit().await?;
    Ok(Triggered {
        run_id,
        created: true,
    })
}

/// Puts a job for `run_id` into apalis' table, on `conn` (in the caller's
/// transaction). The job's idempotency key is the run id: one job per run.
pub async fn enqueue(conn: &mut PgConnection, run_id: Uuid) -> Result<(), TriggerError> {
    let payload = serde_json::to_vec(&RunJob { run_id })
        .map_err(|e| TriggerError::Db(DbError::Queue(e.to_string())))?;
    // One attempt as far as apalis' own retry is concerned: mudrock retries
    // transient failures itself (with backoff, inside the claim) and fails
    // pipeline errors at once. Orphan re-enqueue still hands a dead
    // worker's job to another worker whatever this says.
    let task: PgTask = apalis_core::task::builder::TaskBuilder::new(payload)
        .max_attempts(1)
        .idempotency_key(run_id.to_string())
        .build();
    apalis_postgres::queries::push_tasks(conn, QUEUE, vec![task]).await?;
    Ok(())
}

async fn find_existing(
    conn: &mut PgConnection,
    req: &TriggerRequest,
) -> Result<Option<Uuid>, sqlx::Error> {
    if let Some(key) = &req.idempotency_key {
        let found = sqlx::query_scalar(
            "SELECT id FROM pipeline_runs WHERE pipeline_id = $1 AND idempotency_key = $2",
        )
        .bind(req.pipeline_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if let (Some(schedule), Some(at)) = (req.schedule_id, req.scheduled_for) {
        return sqlx::query_scalar(
            "SELECT id FROM pipeline_runs WHERE schedule_id = $1 AND scheduled_for = $2",
        )
        .bind(schedule)
        .bind(at)
        .fetch_optional(&mut *conn)
        .await;
    }
    Ok(None)
}
