//! Every change of a run's state, in one place. A run moves
//! `queued → running → succeeded | failed | cancelled`, may go back from
//! `running` to `queued` (a worker hands it back at shutdown), and goes
//! `queued → cancelled` when a client cancels before any worker took it.
//!
//! [`transition`] is the only code that writes `pipeline_runs.status` or
//! `attempt`. A move of a held run is fenced: it applies only while the run
//! is `running` under the same worker and attempt ([`Fence`]), so a worker
//! that lost its lease (another took over with the next attempt) changes
//! nothing. Reads a client makes (run and node states) live here too.
//! A client's cancellation of a queued run is settled in the database
//! (`mudrock_settle_cancel`, migration 0003), so that Supabase RPC callers
//! get the same rule without this process.

use sqlx::{Acquire, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::model::{NodeStatus, RunStatus};
use crate::service::db::DbError;

/// Who holds a running run: its worker and attempt.
#[derive(Debug, Clone, Copy)]
pub struct Fence<'a> {
    pub worker: &'a str,
    pub attempt: i32,
}

/// A change of a run's state.
#[derive(Debug, Clone, Copy)]
pub enum Move<'a> {
    /// Not final → `running` under `worker`, attempt + 1, node states
    /// reset. The caller has locked the run row (and its project's).
    Start { worker: &'a str },
    /// `running` (fenced) → `running` with attempt + 1 after a transient
    /// failure; `note` says why.
    Retry { fence: Fence<'a>, note: &'a str },
    /// `running` (fenced) → final.
    Finish {
        fence: Fence<'a>,
        status: RunStatus,
        error: Option<&'a str>,
    },
    /// `running` (fenced) → `queued`, for another worker.
    Release { fence: Fence<'a> },
    /// Not final and not held → `cancelled`: a queued run cancelled by a
    /// client, or a run found with a cancellation request when it starts.
    Cancel,
}

/// An update of a held run: it matches only the run's fence ($1 run,
/// $2 worker, $3 attempt) while the run is `running`.
macro_rules! fenced {
    ($set:literal) => {
        concat!(
            "UPDATE pipeline_runs SET ",
            $set,
            " WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND status = 'running'",
            " RETURNING attempt"
        )
    };
}

/// Applies `change` to run `run_id`. Returns the run's attempt after the
/// move, or `None` when the move did not apply (fence lost, or the run is
/// not in a state the move starts from).
pub async fn transition(
    conn: &mut PgConnection,
    run_id: Uuid,
    change: Move<'_>,
) -> Result<Option<i32>, DbError> {
    // Timestamps use clock_timestamp(), not now(): now() is when the
    // transaction began, possibly before it waited for a lock, which would
    // date a start before the previous run's end.
    let attempt: Option<i32> = match change {
        Move::Start { worker } => {
            let mut tx = conn.begin().await?;
            let a = sqlx::query_scalar(
                "UPDATE pipeline_runs SET status = 'running', attempt = attempt + 1,
                        started_at = coalesce(started_at, clock_timestamp()), heartbeat_at = now(),
                        worker_id = $2, error = NULL
                 WHERE id = $1 AND status IN ('queued', 'running') RETURNING attempt",
            )
            .bind(run_id)
            .bind(worker)
            .fetch_optional(&mut *tx)
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
            tx.commit().await?;
            a
        }
        Move::Retry { fence, note } => {
            sqlx::query_scalar(fenced!(
                "attempt = attempt + 1, error = $4, heartbeat_at = now()"
            ))
            .bind(run_id)
            .bind(fence.worker)
            .bind(fence.attempt)
            .bind(note)
            .fetch_optional(&mut *conn)
            .await?
        }
        Move::Finish {
            fence,
            status,
            error,
        } => {
            debug_assert!(status.is_final(), "finish with {status:?}");
            sqlx::query_scalar(fenced!(
                "status = $4, error = $5, heartbeat_at = now(),
                 finished_at = greatest(clock_timestamp(), started_at)"
            ))
            .bind(run_id)
            .bind(fence.worker)
            .bind(fence.attempt)
            .bind(status)
            .bind(error)
            .fetch_optional(&mut *conn)
            .await?
        }
        Move::Release { fence } => {
            sqlx::query_scalar(fenced!("status = 'queued', worker_id = NULL"))
                .bind(run_id)
                .bind(fence.worker)
                .bind(fence.attempt)
                .fetch_optional(&mut *conn)
                .await?
        }
        Move::Cancel => {
            sqlx::query_scalar(
                "UPDATE pipeline_runs SET status = 'cancelled', cancel_requested = true,
                        finished_at = greatest(clock_timestamp(), started_at)
                 WHERE id = $1 AND status IN ('queued', 'running') RETURNING attempt",
            )
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    if attempt.is_some() {
        tracing::debug!(run_id = %run_id, change = change.name(), "run state changed");
    }
    Ok(attempt)
}

impl Move<'_> {
    fn name(&self) -> &'static str {
        match self {
            Move::Start { .. } => "start",
            Move::Retry { .. } => "retry",
            Move::Finish { .. } => "finish",
            Move::Release { .. } => "release",
            Move::Cancel => "cancel",
        }
    }
}

/// Asks a run to stop, through the database function `mudrock_cancel_run`
/// (what the API and Supabase RPC call, as the caller under row-level
/// security): a queued run is cancelled at once (`mudrock_settle_cancel`),
/// a running one stops between nodes when its worker next looks (every
/// heartbeat). False when the run is finished, missing or not visible.
pub async fn request_cancel(conn: &mut PgConnection, run_id: Uuid) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar("SELECT mudrock_cancel_run($1)")
        .bind(run_id)
        .fetch_one(&mut *conn)
        .await?)
}

/// Refreshes the heartbeat of the runs `worker` holds (fenced by worker);
/// returns each run still held with its cancellation request.
pub async fn heartbeat(
    conn: &mut PgConnection,
    worker: &str,
    runs: &[Uuid],
) -> Result<Vec<(Uuid, bool)>, DbError> {
    Ok(sqlx::query_as(
        "UPDATE pipeline_runs SET heartbeat_at = now()
         WHERE id = ANY($1) AND worker_id = $2 AND status = 'running'
         RETURNING id, cancel_requested",
    )
    .bind(runs)
    .bind(worker)
    .fetch_all(&mut *conn)
    .await?)
}

/// A run row as a client watching progress sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub project_id: Uuid,
    pub pipeline_version_id: Uuid,
    pub status: RunStatus,
    pub attempt: i32,
    pub error: Option<String>,
    pub worker_id: Option<String>,
    pub cancel_requested: bool,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn get_run(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<RunRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, pipeline_id, project_id, pipeline_version_id, status, attempt,
                error, worker_id, cancel_requested, started_at, finished_at
         FROM pipeline_runs WHERE id = $1",
    )
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// A node's state in `node_runs`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    pub node_id: String,
    pub status: NodeStatus,
    pub reason: Option<String>,
    pub cache_hit: bool,
    pub rows: Option<i64>,
    pub error: Option<String>,
}

pub async fn node_states(conn: &mut PgConnection, run_id: Uuid) -> Result<Vec<NodeRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT node_id, status, reason, cache_hit, rows, error
         FROM node_runs WHERE run_id = $1 ORDER BY node_id",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// A run in a list.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunListRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub project_id: Uuid,
    #[schema(value_type = String)]
    pub status: RunStatus,
    pub trigger: crate::service::queue::TriggerKind,
    pub attempt: i32,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub requested_by: Option<Uuid>,
    pub queued_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub pipeline: Option<Uuid>,
    pub project: Option<Uuid>,
    pub status: Option<RunStatus>,
    pub trigger: Option<crate::service::queue::TriggerKind>,
    pub idempotency_key: Option<String>,
}

/// Runs, newest first, after `(queued_at, id)`.
pub async fn list(
    conn: &mut PgConnection,
    f: &RunFilter,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<RunListRow>, DbError> {
    let (at, after_id) = after.unzip();
    Ok(sqlx::query_as(
        "SELECT id, pipeline_id, project_id, status, trigger, attempt, error,
                idempotency_key, requested_by, queued_at, started_at, finished_at
         FROM pipeline_runs
         WHERE ($1::uuid IS NULL OR pipeline_id = $1) AND ($2::uuid IS NULL OR project_id = $2)
           AND ($3::run_status IS NULL OR status = $3) AND ($4::run_trigger IS NULL OR trigger = $4)
           AND ($5::text IS NULL OR idempotency_key = $5)
           AND ($6::timestamptz IS NULL OR (queued_at, id) < ($6, $7))
         ORDER BY queued_at DESC, id DESC LIMIT $8",
    )
    .bind(f.pipeline)
    .bind(f.project)
    .bind(f.status)
    .bind(&f.trigger)
    .bind(&f.idempotency_key)
    .bind(at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// A run with its node states as JSON (`mudrock_run_status`, what Supabase
/// RPC callers get too), read as the caller with these JWT claims in one
/// statement (its own implicit transaction, under row-level security;
/// `mudrock_run_status_as`, migration 0006): the API's hot status read.
/// `merge` (a JSON object) is merged into it, and it comes back as JSON
/// text, ready to send: no parse and re-serialisation on the hot path.
/// `None` when missing or not visible.
pub async fn status_json_as(
    db: impl PgExecutor<'_>,
    claims: &str,
    run_id: Uuid,
    merge: &str,
) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT (mudrock_run_status_as($1, $2) || $3::jsonb)::text")
            .bind(claims)
            .bind(run_id)
            .bind(merge)
            .fetch_one(db)
            .await?,
    )
}
