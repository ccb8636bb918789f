//! The scheduler's side of backfills: each pass, every running backfill
//! gets runs for its next fire times as its slots free up (at most
//! `maxConcurrent` queued or running; with `queue_one`, none while another
//! scheduled run of the pipeline is active), in the transaction that moves
//! its cursor; a backfill whose window is exhausted and whose runs are all
//! over is `done`. The unique (backfill, scheduled_for) index makes a
//! second run for a fire time impossible.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::schedule::{Overlap, Spec, SpecInput};
use crate::service::db::DbError;

#[derive(Debug, sqlx::FromRow)]
pub(super) struct BackfillDue {
    id: Uuid,
    schedule_id: Uuid,
    pipeline_id: Uuid,
    to_at: DateTime<Utc>,
    overlap_policy: Overlap,
    max_concurrent: i32,
    cursor_at: DateTime<Utc>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    cron: String,
    timezone: String,
    dst_gap: crate::schedule::DstGap,
    dst_fold: crate::schedule::DstFold,
}

pub(super) const DUE: &str = "SELECT b.id, b.schedule_id, s.pipeline_id, b.to_at,
        b.overlap_policy, b.max_concurrent, b.cursor_at, b.created_by, b.created_at, s.cron,
        s.timezone, s.dst_gap, s.dst_fold
        FROM schedule_backfills b JOIN pipeline_schedules s ON s.id = b.schedule_id
        WHERE b.status = 'running' AND (b.created_at, b.id) > ($2, $3)
        ORDER BY b.created_at, b.id
        LIMIT $1
        FOR UPDATE OF b SKIP LOCKED";

impl BackfillDue {
    /// Where the next batch starts (keyset paging: a backfill stays
    /// running across passes).
    pub(super) fn key(&self) -> (DateTime<Utc>, Uuid) {
        (self.created_at, self.id)
    }
}

/// Creates the runs a backfill has room for; returns how many.
pub(super) async fn advance(
    tx: &mut PgConnection,
    b: &BackfillDue,
    now: DateTime<Utc>,
) -> Result<u64, DbError> {
    let spec = match Spec::parse(&SpecInput {
        cron: b.cron.clone(),
        timezone: b.timezone.clone(),
        // The schedule's own window does not bound a backfill.
        start_at: None,
        end_at: None,
        jitter_secs: 0,
        dst_gap: b.dst_gap,
        dst_fold: b.dst_fold,
    }) {
        Ok(s) => s,
        Err(_) => {
            finish(tx, b.id, "cancelled", now).await?;
            return Ok(0);
        }
    };
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pipeline_runs WHERE backfill_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(b.id)
    .fetch_one(&mut *tx)
    .await?;
    let mut room = i64::from(b.max_concurrent) - active;
    if b.overlap_policy == Overlap::QueueOne {
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pipeline_runs WHERE pipeline_id = $1
               AND schedule_id IS NOT NULL AND backfill_id IS DISTINCT FROM $2
               AND status IN ('queued', 'running'))",
        )
        .bind(b.pipeline_id)
        .bind(b.id)
        .fetch_one(&mut *tx)
        .await?;
        if busy {
            room = 0;
        }
    }
    let mut cursor = b.cursor_at;
    let mut created = 0;
    let mut ticks = spec
        .ticks_after(b.cursor_at)
        .take_while(|t| t.at <= b.to_at)
        .filter(|t| t.kind.fires())
        .peekable();
    while room > 0 {
        let Some(t) = ticks.next() else { break };
        let run: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO pipeline_runs (id, pipeline_id, project_id, pipeline_version_id, trigger,
                                        requested_by, schedule_id, scheduled_for, backfill_id)
             SELECT $5, p.id, p.project_id, v.id, 'backfill', $3, $4, $6, $1
             FROM pipelines p
             JOIN LATERAL (SELECT id FROM pipeline_versions WHERE pipeline_id = p.id
                           ORDER BY revision DESC LIMIT 1) v ON true
             WHERE p.id = $2
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(b.id)
        .bind(b.pipeline_id)
        .bind(b.created_by)
        .bind(b.schedule_id)
        .bind(Uuid::now_v7())
        .bind(t.at)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = run {
            sqlx::query("SELECT mudrock_enqueue($1)")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            created += 1;
            room -= 1;
        }
        cursor = t.at;
    }
    let exhausted = ticks.peek().is_none();
    sqlx::query("UPDATE schedule_backfills SET cursor_at = $2 WHERE id = $1")
        .bind(b.id)
        .bind(cursor)
        .execute(&mut *tx)
        .await?;
    if exhausted && active == 0 && created == 0 {
        finish(tx, b.id, "done", now).await?;
    }
    Ok(created)
}

async fn finish(
    tx: &mut PgConnection,
    id: Uuid,
    status: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE schedule_backfills SET status = $2::backfill_status, finished_at = $3
         WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .bind(status)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
