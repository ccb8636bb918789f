//! One schedule's due fire times, in the transaction that holds its row:
//! plan them ([`schedule::plan_due`]), apply the overlap policy against
//! the pipeline's scheduled runs still queued or running, insert each run
//! with its queue job, record every tick in the ledger, and move the
//! schedule's cursor and next fire time. Commit is all or nothing, and the
//! unique (schedule, scheduled_for) index refuses a second run for a fire
//! time whatever another scheduler does.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::schedule::{Decision, Overlap, PlanInput, Spec, Tick, plan_due};
use crate::service::db::DbError;

pub(super) use crate::service::schedules::COLUMNS as DUE_COLUMNS;
/// A schedule row as the scheduler reads it: the API's row.
pub(super) use crate::service::schedules::ScheduleRow as DueRow;

/// What one schedule's pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub fired: u64,
    pub skipped_overlap: u64,
    pub missed_late: u64,
    pub paused: u64,
    pub dst_skipped: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.fired += o.fired;
        self.skipped_overlap += o.skipped_overlap;
        self.missed_late += o.missed_late;
        self.paused += o.paused;
        self.dst_skipped += o.dst_skipped;
    }
}

pub(super) struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub scheduler: &'a str,
    pub on_time_window: Duration,
    pub max_ticks: usize,
}

/// Accounts for the due fire times of one (locked) schedule; returns what
/// it did and when the schedule is next due.
pub(super) async fn process(
    tx: &mut PgConnection,
    row: &DueRow,
    ctx: &Ctx<'_>,
) -> Result<(Counts, Option<DateTime<Utc>>), DbError> {
    let spec = match Spec::parse(&row.spec_input()) {
        Ok(s) => s,
        Err(problems) => {
            // Written around the API's checks (by hand, or by an older
            // version): pause it, saying why, rather than fail every pass.
            let why: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect();
            tracing::warn!(schedule_id = %row.id, problems = %why.join("; "), "schedule is invalid, pausing it");
            sqlx::query(
                "UPDATE pipeline_schedules SET enabled = false, next_fire_at = NULL,
                        pause_note = left('invalid: ' || $2, 1000), updated_at = now()
                 WHERE id = $1",
            )
            .bind(row.id)
            .bind(why.join("; "))
            .execute(&mut *tx)
            .await?;
            return Ok((Counts::default(), None));
        }
    };
    let seed = row.id.as_bytes().to_vec();
    let plan = plan_due(
        &spec,
        &PlanInput {
            cursor: row.cursor_at,
            now: ctx.now,
            enabled: row.enabled,
            pause_note: row.pause_note.as_deref(),
            catchup: row.catchup,
            max_lateness: row
                .max_lateness_seconds
                .map(|s| Duration::seconds(i64::from(s))),
            on_time_window: ctx.on_time_window,
            max_ticks: ctx.max_ticks,
            seed: &seed,
        },
    );
    let mut counts = Counts::default();
    for (tick, decision) in &plan.decisions {
        let (outcome, run, fire_at, reason) = match decision {
            Decision::Fire { fire_at } => match overlap(tx, row).await? {
                Some(reason) => {
                    counts.skipped_overlap += 1;
                    ("skipped_overlap", None, None, Some(reason))
                }
                None => {
                    let (run, note) = fire(tx, row, tick).await?;
                    counts.fired += 1;
                    ("fired", run, Some(*fire_at), note)
                }
            },
            Decision::MissedLate(m) => {
                counts.missed_late += 1;
                ("missed_late", None, None, Some(m.clone()))
            }
            Decision::Paused(m) => {
                counts.paused += 1;
                ("paused", None, None, Some(m.clone()))
            }
            Decision::DstSkipped(m) => {
                counts.dst_skipped += 1;
                ("dst_skipped", None, None, Some(m.clone()))
            }
        };
        record(
            tx, row.id, tick.at, tick.wall, outcome, run, fire_at, reason, ctx,
        )
        .await?;
    }
    sqlx::query(
        "UPDATE pipeline_schedules
         SET cursor_at = $2, next_fire_at = $3,
             last_fired_at = CASE WHEN $4 THEN $5 ELSE last_fired_at END
         WHERE id = $1",
    )
    .bind(row.id)
    .bind(plan.cursor)
    .bind(plan.next_due)
    .bind(counts.fired > 0)
    .bind(ctx.now)
    .execute(&mut *tx)
    .await?;
    Ok((counts, plan.next_due))
}

/// The overlap policy against the pipeline's scheduled runs still queued
/// or running: `Some(reason)` when this fire time must not run.
async fn overlap(tx: &mut PgConnection, row: &DueRow) -> Result<Option<String>, DbError> {
    if row.overlap_policy == Overlap::Allow {
        return Ok(None);
    }
    let active: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, status::text FROM pipeline_runs
         WHERE pipeline_id = $1 AND schedule_id IS NOT NULL AND status IN ('queued', 'running')
         ORDER BY scheduled_for",
    )
    .bind(row.pipeline_id)
    .fetch_all(&mut *tx)
    .await?;
    Ok(match row.overlap_policy {
        Overlap::Allow => None,
        Overlap::Skip => active.first().map(|(id, st)| {
            format!("the pipeline's scheduled run {id} is still {st} and overlapPolicy is skip")
        }),
        Overlap::QueueOne => active
            .iter()
            .find(|(_, st)| st == "queued")
            .map(|(id, _)| format!("run {id} is already waiting and overlapPolicy is queue_one")),
        Overlap::CancelOther => {
            for (id, _) in &active {
                cancel(tx, *id).await?;
            }
            None
        }
    })
}

/// Asks a run to stop (service role): a queued one is cancelled at once.
async fn cancel(tx: &mut PgConnection, run: Uuid) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE pipeline_runs SET cancel_requested = true
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(run)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT mudrock_settle_cancel($1)")
        .bind(run)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Inserts the run of a fire time with its queue job; `None` when the
/// fire time already has one (another scheduler got there first).
async fn fire(
    tx: &mut PgConnection,
    row: &DueRow,
    tick: &Tick,
) -> Result<(Option<Uuid>, Option<String>), DbError> {
    let run: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO pipeline_runs (id, pipeline_id, project_id, pipeline_version_id, trigger,
                                    requested_by, schedule_id, scheduled_for)
         SELECT $5, p.id, p.project_id, v.id, 'schedule', $3, $1, $4
         FROM pipelines p
         JOIN LATERAL (SELECT id FROM pipeline_versions WHERE pipeline_id = p.id
                       ORDER BY revision DESC LIMIT 1) v ON true
         WHERE p.id = $2
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(row.id)
    .bind(row.pipeline_id)
    .bind(row.created_by)
    .bind(tick.at)
    // Time-ordered ids: runs sort in the order they were created.
    .bind(Uuid::now_v7())
    .fetch_optional(&mut *tx)
    .await?;
    match run {
        Some(id) => {
            sqlx::query("SELECT mudrock_enqueue($1)")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok((Some(id), None))
        }
        None => {
            let existing: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM pipeline_runs
                 WHERE schedule_id = $1 AND scheduled_for = $2 AND backfill_id IS NULL",
            )
            .bind(row.id)
            .bind(tick.at)
            .fetch_optional(&mut *tx)
            .await?;
            Ok((existing, Some("this fire time already had its run".into())))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn record(
    tx: &mut PgConnection,
    schedule: Uuid,
    at: DateTime<Utc>,
    wall: NaiveDateTime,
    outcome: &str,
    run: Option<Uuid>,
    fire_at: Option<DateTime<Utc>>,
    reason: Option<String>,
    ctx: &Ctx<'_>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO schedule_ticks (schedule_id, scheduled_for, wall_time, outcome, run_id,
                                     fire_at, reason, recorded_at, recorded_by)
         VALUES ($1, $2, $3, $4::tick_outcome, $5, $6, $7, $8, $9)
         ON CONFLICT DO NOTHING",
    )
    .bind(schedule)
    .bind(at)
    .bind(wall)
    .bind(outcome)
    .bind(run)
    .bind(fire_at)
    .bind(reason)
    .bind(ctx.now)
    .bind(ctx.scheduler)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
