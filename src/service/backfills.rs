//! Backfills: a schedule's fire times over a past window (`from`, `to`),
//! run as one object with its own overlap policy and concurrency, each run
//! carrying its nominal time (`scheduled_for`) and the backfill's id.
//! Created and cancelled by callers (row-level security: editors); the
//! scheduler creates the runs as slots free up
//! ([`crate::service::scheduler`]). Cancelling cancels its queued runs.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::schedule::{Overlap, Problem, Spec};
use crate::service::db::DbError;
use crate::service::schedules::{ScheduleError, ScheduleRow};

/// The most fire times one backfill may cover (`schedule.max_backfill_runs`).
pub const MAX_BACKFILL_RUNS: usize = 10_000;
/// The most runs of one backfill at once.
pub const MAX_CONCURRENT: i32 = 100;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillRow {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub from_at: DateTime<Utc>,
    pub to_at: DateTime<Utc>,
    pub overlap_policy: Overlap,
    pub max_concurrent: i32,
    /// Fire times after this one have no run yet.
    pub cursor_at: DateTime<Utc>,
    /// `running`, `done`, `cancelled`.
    pub status: String,
    /// Fire times in the window.
    pub fire_times: i64,
    /// Runs created so far.
    pub runs: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const BACKFILL: &str = "SELECT b.id, b.schedule_id, b.from_at, b.to_at, b.overlap_policy,
        b.max_concurrent, b.cursor_at, b.status::text AS status, b.fire_times,
        (SELECT count(*) FROM pipeline_runs r WHERE r.backfill_id = b.id) AS runs,
        b.created_by, b.created_at, b.finished_at
        FROM schedule_backfills b";

/// A new backfill of `schedule`.
#[derive(Debug, Clone)]
pub struct NewBackfill {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub overlap: Overlap,
    pub max_concurrent: i32,
    pub created_by: Option<Uuid>,
}

/// Checks and creates a backfill; every problem at once.
pub async fn create(
    conn: &mut PgConnection,
    schedule: &ScheduleRow,
    new: &NewBackfill,
    now: DateTime<Utc>,
) -> Result<BackfillRow, ScheduleError> {
    let mut problems = Vec::new();
    let mut p = |field: &'static str, message: String| problems.push(Problem { field, message });
    if new.to <= new.from {
        p("to", format!("{} is not after from {}", new.to, new.from));
    }
    if new.to > now {
        p(
            "to",
            format!("{} is in the future; a backfill runs a past window", new.to),
        );
    }
    if !(1..=MAX_CONCURRENT).contains(&new.max_concurrent) {
        p(
            "maxConcurrent",
            format!(
                "{} is not between 1 and {MAX_CONCURRENT}",
                new.max_concurrent
            ),
        );
    }
    if matches!(new.overlap, Overlap::Skip | Overlap::CancelOther) {
        p(
            "overlapPolicy",
            format!(
                "{} does not apply to a backfill, which runs every fire time of its window: use allow or queue_one",
                new.overlap.name()
            ),
        );
    }
    let spec = Spec::parse(&schedule.spec_input()).map_err(|e| problems.extend(e));
    let fire_times = match &spec {
        Ok(spec) if problems.is_empty() => {
            let n = spec
                .ticks_after(new.from - Duration::microseconds(1))
                .take_while(|t| t.at <= new.to)
                .filter(|t| t.kind.fires())
                .take(MAX_BACKFILL_RUNS + 1)
                .count();
            if n == 0 {
                problems.push(Problem {
                    field: "from",
                    message: "the schedule has no fire time in this window".into(),
                });
            } else if n > MAX_BACKFILL_RUNS {
                problems.push(Problem {
                    field: "to",
                    message: format!(
                        "the window holds more than {MAX_BACKFILL_RUNS} fire times (limit schedule.max_backfill_runs); split it"
                    ),
                });
            }
            n as i64
        }
        _ => 0,
    };
    if !problems.is_empty() {
        return Err(ScheduleError::Invalid(problems));
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO schedule_backfills (id, schedule_id, from_at, to_at, overlap_policy,
             max_concurrent, cursor_at, fire_times, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(schedule.id)
    .bind(new.from)
    .bind(new.to)
    .bind(new.overlap)
    .bind(new.max_concurrent)
    .bind(new.from - Duration::microseconds(1))
    .bind(fire_times)
    .bind(new.created_by)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(get(conn, id)
        .await?
        .ok_or_else(|| ScheduleError::Db(DbError::Query(sqlx::Error::RowNotFound)))?)
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<BackfillRow>, DbError> {
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{BACKFILL} WHERE b.id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// A schedule's backfills, newest first.
pub async fn list(conn: &mut PgConnection, schedule: Uuid) -> Result<Vec<BackfillRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{BACKFILL} WHERE b.schedule_id = $1 ORDER BY b.created_at DESC, b.id DESC"
    )))
    .bind(schedule)
    .fetch_all(&mut *conn)
    .await?)
}

/// Cancels a running backfill and its queued runs (its running runs
/// finish). `Ok(None)` when it was already over; an error when row-level
/// security refused.
pub async fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<u64>, DbError> {
    let moved = sqlx::query(
        "UPDATE schedule_backfills SET status = 'cancelled', finished_at = $2
         WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 0 {
        return Ok(None);
    }
    let cancelled: Vec<bool> = sqlx::query_scalar(
        "SELECT mudrock_cancel_run(id) FROM pipeline_runs
         WHERE backfill_id = $1 AND status = 'queued'",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(cancelled.into_iter().filter(|c| *c).count() as u64))
}
