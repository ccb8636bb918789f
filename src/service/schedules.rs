//! Managing schedules (shared by the API and the CLI): create with every
//! problem of the specification reported, and the next fire times in the
//! schedule's zone and in UTC. The caller's connection decides whose
//! rights apply (row-level security for the API).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::schedule::{Catchup, Overlap, Problem, Spec, SpecInput};
use crate::service::db::DbError;

/// The most fire times a preview lists (`schedule.preview`).
pub const MAX_PREVIEW: usize = 100;

/// A new schedule.
#[derive(Debug, Clone, Default)]
pub struct NewSchedule {
    pub pipeline_id: Uuid,
    pub spec: SpecInput,
    pub enabled: bool,
    pub overlap: Overlap,
    pub catchup: Catchup,
    pub max_lateness_secs: Option<i32>,
    pub created_by: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The specification is wrong (the caller's fault), every problem.
    #[error("the schedule is invalid")]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ScheduleError {
    fn from(e: sqlx::Error) -> Self {
        ScheduleError::Db(e.into())
    }
}

/// One upcoming fire time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FireTime {
    pub utc: DateTime<Utc>,
    /// In the schedule's zone, with its offset (RFC 3339).
    pub local: String,
    /// True when the wall time fell in a gap and was shifted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shifted: bool,
}

/// The next `n` fire times after `after` (at most [`MAX_PREVIEW`]).
pub fn next_fire_times(spec: &Spec, after: DateTime<Utc>, n: usize) -> Vec<FireTime> {
    spec.ticks_after(after)
        .filter(|t| t.kind.fires())
        .take(n.min(MAX_PREVIEW))
        .map(|t| FireTime {
            utc: t.at,
            local: t.at.with_timezone(&spec.tz()).to_rfc3339(),
            shifted: t.kind == crate::schedule::TickKind::FireShifted,
        })
        .collect()
}

/// When a schedule whose fire times are accounted for up to `cursor` is
/// next due: its next tick (fire times plus jitter).
pub fn next_due(spec: &Spec, id: Uuid, cursor: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut ticks = spec.ticks_after(cursor).peekable();
    let t = ticks.next()?;
    let next = ticks.peek().map(|n| n.at);
    Some(if t.kind.fires() {
        t.at + spec.jitter(id.as_bytes(), t.at, next)
    } else {
        t.at
    })
}

/// Creates a schedule; it fires at the fire times after `now` (a backfill
/// runs a past window).
pub async fn create(
    conn: &mut PgConnection,
    new: &NewSchedule,
    now: DateTime<Utc>,
) -> Result<Uuid, ScheduleError> {
    let mut problems = Vec::new();
    let spec = Spec::validate(&new.spec, now).map_err(|p| problems.extend(p));
    if let Some(s) = new.max_lateness_secs
        && s <= 0
    {
        problems.push(Problem {
            field: "maxLatenessSeconds",
            message: format!("{s} must be positive"),
        });
    }
    let Ok(spec) = spec else {
        return Err(ScheduleError::Invalid(problems));
    };
    if !problems.is_empty() {
        return Err(ScheduleError::Invalid(problems));
    }
    let id = Uuid::now_v7();
    // Fire times after the creation instant.
    let cursor = now;
    let next = next_due(&spec, id, cursor);
    sqlx::query(
        "INSERT INTO pipeline_schedules (id, pipeline_id, cron, timezone, enabled, overlap_policy,
             catchup, start_at, end_at, jitter_seconds, dst_gap, dst_fold, max_lateness_seconds,
             cursor_at, next_fire_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(id)
    .bind(new.pipeline_id)
    .bind(new.spec.cron.trim())
    .bind(new.spec.timezone.trim())
    .bind(new.enabled)
    .bind(new.overlap)
    .bind(new.catchup)
    .bind(new.spec.start_at)
    .bind(new.spec.end_at)
    .bind(new.spec.jitter_secs as i32)
    .bind(new.spec.dst_gap)
    .bind(new.spec.dst_fold)
    .bind(new.max_lateness_secs)
    .bind(cursor)
    .bind(next)
    .bind(new.created_by)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}
