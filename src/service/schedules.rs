//! Managing schedules (shared by the API and the CLI): create and update
//! with every problem of the specification reported, read, pause and
//! resume, delete, the next fire times in the schedule's zone and in UTC,
//! and the tick ledger. The caller's connection decides whose rights apply
//! (row-level security for the API: editors manage, viewers read).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::schedule::{Catchup, DstFold, DstGap, Overlap, Problem, Spec, SpecInput};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    Some(spec.due_at(id.as_bytes(), &t, ticks.peek()))
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
    check_lateness(new.max_lateness_secs, &mut problems);
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

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub cron: String,
    pub timezone: String,
    pub enabled: bool,
    pub pause_note: Option<String>,
    pub overlap_policy: Overlap,
    pub catchup: Catchup,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub jitter_seconds: i32,
    pub dst_gap: DstGap,
    pub dst_fold: DstFold,
    pub max_lateness_seconds: Option<i32>,
    /// When the scheduler next has something to do for it (a fire time
    /// plus its jitter); none once it has ended.
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
    /// Fire times after this one are still to come.
    pub cursor_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ScheduleRow {
    pub fn spec_input(&self) -> SpecInput {
        SpecInput {
            cron: self.cron.clone(),
            timezone: self.timezone.clone(),
            start_at: self.start_at,
            end_at: self.end_at,
            jitter_secs: self.jitter_seconds.max(0) as u32,
            dst_gap: self.dst_gap,
            dst_fold: self.dst_fold,
        }
    }
}

macro_rules! columns {
    () => {
        "id, pipeline_id, cron, timezone, enabled, pause_note, overlap_policy, catchup, \
         start_at, end_at, jitter_seconds, dst_gap, dst_fold, max_lateness_seconds, \
         next_fire_at, last_fired_at, cursor_at, created_by, created_at, updated_at"
    };
}
/// The columns of a [`ScheduleRow`] (the scheduler reads the same).
pub(crate) const COLUMNS: &str = columns!();
const SCHEDULE: &str = concat!("SELECT ", columns!(), " FROM pipeline_schedules");

/// A schedule, if it exists and the caller may see it.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<ScheduleRow>, DbError> {
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SCHEDULE} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// A pipeline's schedules, oldest first.
pub async fn list(conn: &mut PgConnection, pipeline: Uuid) -> Result<Vec<ScheduleRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SCHEDULE} WHERE pipeline_id = $1 ORDER BY created_at, id"
    )))
    .bind(pipeline)
    .fetch_all(&mut *conn)
    .await?)
}

/// A change to a schedule: `None` leaves a field as it is; for the
/// nullable ones `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct SchedulePatch {
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub start_at: Option<Option<DateTime<Utc>>>,
    pub end_at: Option<Option<DateTime<Utc>>>,
    pub jitter_secs: Option<u32>,
    pub dst_gap: Option<DstGap>,
    pub dst_fold: Option<DstFold>,
    pub overlap: Option<Overlap>,
    pub catchup: Option<Catchup>,
    pub max_lateness_secs: Option<Option<i32>>,
    pub enabled: Option<bool>,
    pub pause_note: Option<Option<String>>,
}

/// The longest pause note.
pub const MAX_NOTE_CHARS: usize = 1_000;

/// Applies a change (the row must be visible: `current`). A changed time
/// specification counts from `now`: the new spec's past fire times are
/// not run. `Ok(None)` when row-level security refused the write.
pub async fn update(
    conn: &mut PgConnection,
    current: &ScheduleRow,
    patch: &SchedulePatch,
    now: DateTime<Utc>,
) -> Result<Option<ScheduleRow>, ScheduleError> {
    let mut input = current.spec_input();
    let before = input.clone();
    if let Some(c) = &patch.cron {
        input.cron = c.trim().to_string();
    }
    if let Some(t) = &patch.timezone {
        input.timezone = t.trim().to_string();
    }
    if let Some(s) = patch.start_at {
        input.start_at = s;
    }
    if let Some(e) = patch.end_at {
        input.end_at = e;
    }
    if let Some(j) = patch.jitter_secs {
        input.jitter_secs = j;
    }
    if let Some(g) = patch.dst_gap {
        input.dst_gap = g;
    }
    if let Some(f) = patch.dst_fold {
        input.dst_fold = f;
    }
    let mut problems = Vec::new();
    let spec = Spec::validate(&input, now).map_err(|p| problems.extend(p));
    let max_lateness = patch
        .max_lateness_secs
        .unwrap_or(current.max_lateness_seconds);
    check_lateness(max_lateness, &mut problems);
    let note = patch
        .pause_note
        .clone()
        .unwrap_or(current.pause_note.clone());
    check_note(note.as_deref(), &mut problems);
    let (Ok(spec), true) = (spec, problems.is_empty()) else {
        return Err(ScheduleError::Invalid(problems));
    };
    let cursor = if input != before {
        current.cursor_at.max(now)
    } else {
        current.cursor_at
    };
    let next = next_due(&spec, current.id, cursor);
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE pipeline_schedules SET cron = $2, timezone = $3, start_at = $4,
                end_at = $5, jitter_seconds = $6, dst_gap = $7, dst_fold = $8,
                overlap_policy = $9, catchup = $10, max_lateness_seconds = $11, enabled = $12,
                pause_note = $13, cursor_at = $14, next_fire_at = $15, updated_at = $16
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(current.id)
    .bind(&input.cron)
    .bind(&input.timezone)
    .bind(input.start_at)
    .bind(input.end_at)
    .bind(input.jitter_secs as i32)
    .bind(input.dst_gap)
    .bind(input.dst_fold)
    .bind(patch.overlap.unwrap_or(current.overlap_policy))
    .bind(patch.catchup.unwrap_or(current.catchup))
    .bind(max_lateness)
    .bind(patch.enabled.unwrap_or(current.enabled))
    .bind(note)
    .bind(cursor)
    .bind(next)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(DbError::from)?;
    Ok(row)
}

fn check_lateness(secs: Option<i32>, problems: &mut Vec<Problem>) {
    if let Some(s) = secs
        && s <= 0
    {
        problems.push(Problem {
            field: "maxLatenessSeconds",
            message: format!("{s} must be positive"),
        });
    }
}

fn check_note(note: Option<&str>, problems: &mut Vec<Problem>) {
    if let Some(n) = note
        && n.chars().count() > MAX_NOTE_CHARS
    {
        problems.push(Problem {
            field: "note",
            message: format!("is longer than {MAX_NOTE_CHARS} characters"),
        });
    }
}

/// Deletes a schedule; false when row-level security refused it.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, DbError> {
    let n = sqlx::query("DELETE FROM pipeline_schedules WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(n.rows_affected() == 1)
}

/// One ledger entry.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TickRow {
    pub scheduled_for: DateTime<Utc>,
    /// The wall-clock time in the schedule's zone that the cron matched.
    #[schema(value_type = String)]
    pub wall_time: chrono::NaiveDateTime,
    /// `fired`, `skipped_overlap`, `missed_late`, `paused`, `dst_skipped`.
    pub outcome: String,
    pub run_id: Option<Uuid>,
    pub fire_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: Option<String>,
}

/// Ledger entries of a schedule, newest first, before `before` (paging),
/// optionally one outcome only.
pub async fn ticks(
    conn: &mut PgConnection,
    schedule: Uuid,
    before: Option<DateTime<Utc>>,
    outcome: Option<&str>,
    limit: i64,
) -> Result<Vec<TickRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT scheduled_for, wall_time, outcome::text AS outcome, run_id, fire_at, reason,
                recorded_at, recorded_by
         FROM schedule_ticks
         WHERE schedule_id = $1 AND ($2::timestamptz IS NULL OR scheduled_for < $2)
           AND ($3::text IS NULL OR outcome::text = $3)
         ORDER BY scheduled_for DESC, wall_time DESC
         LIMIT $4",
    )
    .bind(schedule)
    .bind(before)
    .bind(outcome)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}
