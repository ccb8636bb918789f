//! The run queue: a `pipeline_runs` row plus a job in apalis' PostgreSQL
//! storage (`apalis.jobs`), always written in one transaction, so there is
//! no run without a job and no job without a run. Both are written by the
//! database function `mudrock_trigger_run` (migration 0003), which the
//! CLI, the scheduler, the API and Supabase RPC all call.
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

/// What started a run; the PostgreSQL enum `run_trigger`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "run_trigger", rename_all = "lowercase")]
pub enum TriggerKind {
    Api,
    Schedule,
    Backfill,
    Cli,
    Retry,
}

impl TriggerKind {
    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::Api => "api",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Backfill => "backfill",
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
    /// blake3 of the request body an idempotency key came with.
    pub request_hash: Option<String>,
    /// A saved revision to run; the latest when `None`.
    pub revision: Option<i32>,
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
            request_hash: None,
            revision: None,
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
    #[error("idempotency key \"{0}\" was used before with a different request")]
    IdempotencyConflict(String),
    #[error("not allowed to run pipeline {0}")]
    Forbidden(Uuid),
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
/// `conn` is already in one), through the database function
/// `mudrock_trigger_run` that the API and Supabase RPC call too: as the
/// connection's role, so row-level security decides for a caller. With an
/// idempotency key used before, returns that run and queues nothing (a
/// different `request_hash` is a conflict).
pub async fn trigger(
    conn: &mut PgConnection,
    req: &TriggerRequest,
) -> Result<Triggered, TriggerError> {
    let mut tx = conn.begin().await?;
    let row: Result<(Uuid, bool), sqlx::Error> = sqlx::query_as(
        "SELECT run_id, created FROM mudrock_trigger_run($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(req.pipeline_id)
    .bind(&req.idempotency_key)
    .bind(&req.request_hash)
    .bind(req.trigger)
    .bind(req.revision)
    .bind(req.schedule_id)
    .bind(req.scheduled_for)
    .bind(req.requested_by)
    .fetch_one(&mut *tx)
    .await;
    let (run_id, created) = row.map_err(|e| {
        let db = e.as_database_error();
        match (db.and_then(|d| d.constraint()), db.and_then(|d| d.code())) {
            (Some("pipeline_runs_idempotency_conflict"), _) => {
                TriggerError::IdempotencyConflict(req.idempotency_key.clone().unwrap_or_default())
            }
            (Some("mudrock_trigger_pipeline_exists"), _) => {
                TriggerError::NoPipeline(req.pipeline_id)
            }
            (Some("mudrock_trigger_version_exists"), _) => TriggerError::NoVersion(req.pipeline_id),
            (_, Some(c)) if c == "42501" => TriggerError::Forbidden(req.pipeline_id),
            _ => TriggerError::from(e),
        }
    })?;
    tx.commit().await?;
    Ok(Triggered { run_id, created })
}
