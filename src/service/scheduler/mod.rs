//! `mudrock scheduler` (and the `scheduler` role of `mudrock serve`):
//! fires recurring runs from `pipeline_schedules`, exactly once per fire
//! time whatever the number of schedulers.
//!
//! A pass takes due schedules (`next_fire_at <= now`, paused ones too:
//! their fire times are recorded as `paused`) in batches with `FOR UPDATE
//! SKIP LOCKED`, so schedulers share the work without waiting on each
//! other; each schedule's fire times are planned, fired and recorded
//! ([`fire`]) in the transaction that moves its cursor. A run is created
//! only in that transaction, and the unique (schedule, scheduled_for)
//! index makes a second one impossible. Time comes from a [`Clock`], so
//! tests drive passes through any number of fire times without waiting.

mod backfill;
mod clock;
mod config;
mod fire;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::SchedulerConfig;
pub use fire::Counts;
use fire::{Ctx, DUE_COLUMNS, DueRow};

use crate::service::db::DbError;

/// A scheduler instance.
#[derive(Clone)]
pub struct Scheduler {
    pool: PgPool,
    id: String,
    config: SchedulerConfig,
    clock: Arc<dyn Clock>,
}

/// What one pass did, over every schedule it took.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub schedules: u64,
    pub counts: Counts,
    /// Runs created for backfills.
    pub backfill_runs: u64,
}

impl Scheduler {
    pub fn new(
        pool: PgPool,
        config: SchedulerConfig,
        clock: Arc<dyn Clock>,
        id: Option<String>,
    ) -> Self {
        let id = id.unwrap_or_else(|| {
            format!(
                "scheduler-{}-{}",
                gethostname::gethostname().to_string_lossy(),
                std::process::id()
            )
        });
        Scheduler {
            pool,
            id,
            config,
            clock,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Accounts for every fire time due at `now`.
    pub async fn pass(&self, now: DateTime<Utc>) -> Result<PassReport, DbError> {
        let mut report = PassReport::default();
        let ctx = Ctx {
            now,
            scheduler: &self.id,
            on_time_window: Duration::seconds(i64::from(self.config.on_time_window_seconds)),
            max_ticks: self.config.max_ticks_per_pass.max(1),
        };
        // Each schedule once per pass: one with more than
        // `max_ticks_per_pass` due fire times (a long pause of a
        // per-second schedule) goes on in the next pass, not forever in
        // this one. Only those (still due after their turn) are listed.
        let mut seen: Vec<uuid::Uuid> = Vec::new();
        loop {
            let mut tx = self.pool.begin().await?;
            let rows: Vec<DueRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {DUE_COLUMNS} FROM pipeline_schedules
                 WHERE next_fire_at <= $1 AND NOT (id = ANY($3))
                 ORDER BY next_fire_at
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED"
            )))
            .bind(now)
            .bind(self.config.batch.max(1))
            .bind(&seen)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                tx.commit().await?;
                break;
            }
            for row in &rows {
                let (counts, next_due) = fire::process(&mut tx, row, &ctx).await?;
                report.counts += counts;
                report.schedules += 1;
                if next_due.is_some_and(|n| n <= now) {
                    seen.push(row.id);
                }
            }
            tx.commit().await?;
        }
        report.backfill_runs = self.backfills(now).await?;
        Ok(report)
    }

    /// Gives every running backfill the runs it has room for.
    async fn backfills(&self, now: DateTime<Utc>) -> Result<u64, DbError> {
        let mut after = (DateTime::<Utc>::UNIX_EPOCH, uuid::Uuid::nil());
        let mut created = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let rows: Vec<backfill::BackfillDue> = sqlx::query_as(backfill::DUE)
                .bind(self.config.batch.max(1))
                .bind(after.0)
                .bind(after.1)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = rows.last() else {
                tx.commit().await?;
                return Ok(created);
            };
            after = last.key();
            for b in &rows {
                created += backfill::advance(&mut tx, b, now).await?;
            }
            tx.commit().await?;
        }
    }

    /// The earliest next fire time of any schedule.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT min(next_fire_at) FROM pipeline_schedules")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Deletes ledger entries past the retention.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, DbError> {
        let cutoff = now - Duration::days(i64::from(self.config.tick_retention_days));
        let r = sqlx::query("DELETE FROM schedule_ticks WHERE recorded_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Passes until `stop`: at the earliest next fire time, at most every
    /// `poll_ms`. A failed pass (database away) is logged and retried at
    /// the next poll.
    pub async fn run(self, stop: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let poll = StdDuration::from_millis(self.config.poll_ms.max(10));
        let mut last_prune: Option<DateTime<Utc>> = None;
        tracing::info!(scheduler = %self.id, "scheduler started");
        loop {
            let now = self.clock.now();
            match self.pass(now).await {
                Ok(r) if r.schedules > 0 => {
                    tracing::debug!(scheduler = %self.id, schedules = r.schedules,
                        fired = r.counts.fired, skipped_overlap = r.counts.skipped_overlap,
                        missed_late = r.counts.missed_late, paused = r.counts.paused,
                        dst_skipped = r.counts.dst_skipped, "pass")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(scheduler = %self.id, error = %e, "scheduler pass failed"),
            }
            if last_prune.is_none_or(|p| now - p > Duration::hours(1)) {
                match self.prune(now).await {
                    Ok(n) => {
                        tracing::debug!(scheduler = %self.id, deleted = n, "tick ledger pruned")
                    }
                    Err(e) => {
                        tracing::warn!(scheduler = %self.id, error = %e, "tick ledger prune failed")
                    }
                }
                last_prune = Some(now);
            }
            let until = match self.next_due().await {
                // Another scheduler may hold an overdue schedule: do not
                // spin on it.
                Ok(Some(t)) => t.max(now + Duration::milliseconds(20)),
                _ => now + Duration::from_std(poll).unwrap_or_default(),
            };
            tokio::select! {
                _ = &mut stop => break,
                _ = self.clock.sleep_until(until, poll) => {}
            }
        }
        tracing::info!(scheduler = %self.id, "scheduler stopped");
    }
}
