//! A worker's side of a run's life: starting it (under the project's
//! `maxConcurrentRuns`), retrying, finishing and releasing it — each move
//! through [`runs::transition`], fenced by worker and attempt — and node
//! states as the engine reports them.

use super::*;
use crate::service::runs::{self, Fence, Move};

impl Worker {
    /// Moves the run to `running` with the next attempt, unless it is
    /// finished, cancelled, or its project is at `maxConcurrentRuns`.
    pub(super) async fn start_run(&self, run_id: Uuid, job_id: &str) -> Result<Start, DbError> {
        let mut tx = self.pool.begin().await?;
        // The job: Queued (claimed) → Running, in the same commit.
        apalis_postgres::queries::lock_tasks(&mut *tx, &[job_id.to_string()], &self.id).await?;
        // Locking the project row serialises run starts within a project,
        // so two workers cannot both take the last free slot.
        let row: Option<RunStartRow> = sqlx::query_as(
            "SELECT r.status, r.cancel_requested, r.project_id, r.pipeline_id,
                    r.trigger, r.schedule_id, r.scheduled_for, r.backfill_id, r.requested_by,
                    v.dag_definition AS definition,
                    (p.settings ->> 'maxConcurrentRuns')::int AS max_concurrent,
                    s.overlap_policy::text AS overlap_policy
             FROM pipeline_runs r
             JOIN pipeline_versions v ON v.id = r.pipeline_version_id
             JOIN projects p ON p.id = r.project_id
             LEFT JOIN pipeline_schedules s ON s.id = r.schedule_id AND r.backfill_id IS NULL
             WHERE r.id = $1
             FOR UPDATE OF r, p",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Start::Missing);
        };
        if row.status.is_final() {
            return Ok(Start::Finished(row.status));
        }
        if row.cancel_requested {
            runs::transition(&mut tx, run_id, Move::Cancel).await?;
            tx.commit().await?;
            return Ok(Start::Finished(RunStatus::Cancelled));
        }
        if let Some(max) = row.max_concurrent {
            let running: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pipeline_runs
                 WHERE project_id = $1 AND status = 'running' AND id <> $2",
            )
            .bind(row.project_id)
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await?;
            if running >= i64::from(max) {
                tracing::debug!(worker = %self.id, run_id = %run_id, running, max, "project at maxConcurrentRuns, deferring");
                return Ok(Start::Defer);
            }
        }
        // `queue_one` (and `skip`, whose run a trigger-now may still
        // overlap): a scheduled run waits while another scheduled run of
        // its pipeline is running.
        if matches!(row.overlap_policy.as_deref(), Some("queue_one" | "skip")) {
            let busy: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pipeline_runs
                 WHERE pipeline_id = $1 AND schedule_id IS NOT NULL AND status = 'running'
                   AND id <> $2)",
            )
            .bind(row.pipeline_id)
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await?;
            if busy {
                tracing::debug!(worker = %self.id, run_id = %run_id, "scheduled run waits for its pipeline's running one (queue_one)");
                return Ok(Start::Defer);
            }
        }
        let Some(attempt) =
            runs::transition(&mut tx, run_id, Move::Start { worker: &self.id }).await?
        else {
            return Ok(Start::Missing);
        };
        // A row per node from the start, so a client sees the whole run.
        let node_ids: Vec<&str> = row.definition["nodes"]
            .as_array()
            .map(|ns| ns.iter().filter_map(|n| n["id"].as_str()).collect())
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO node_runs (run_id, node_id) SELECT $1, unnest($2::text[])
             ON CONFLICT (run_id, node_id) DO NOTHING",
        )
        .bind(run_id)
        .bind(&node_ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Start::Run(attempt, row))
    }

    /// Records a retry; `None` when the run is no longer ours.
    pub(super) async fn next_attempt(
        &self,
        run_id: Uuid,
        attempt: i32,
        note: &str,
    ) -> Result<Option<i32>, DbError> {
        let mut conn = self.pool.acquire().await?;
        let fence = Fence {
            worker: &self.id,
            attempt,
        };
        runs::transition(&mut conn, run_id, Move::Retry { fence, note }).await
    }

    /// Writes the run's end, fenced: only the worker and attempt that hold
    /// the run may finish it.
    pub(super) async fn finish(
        &self,
        run_id: Uuid,
        attempt: i32,
        status: RunStatus,
        error: Option<String>,
    ) -> JobOutcome {
        let status = match status {
            RunStatus::Succeeded | RunStatus::Cancelled => status,
            _ => RunStatus::Failed,
        };
        let name = status.name();
        let error = match (status, error) {
            (RunStatus::Failed, None) => Some("failed".to_string()),
            (_, e) => e,
        };
        let error_ref = &error;
        let r = self
            .db_forever("finish run", || async move {
                let mut conn = self.pool.acquire().await?;
                let fence = Fence {
                    worker: &self.id,
                    attempt,
                };
                let change = Move::Finish {
                    fence,
                    status,
                    error: error_ref.as_deref(),
                };
                runs::transition(&mut conn, run_id, change).await
            })
            .await;
        match r {
            Ok(Some(_)) => {
                tracing::info!(worker = %self.id, run_id = %run_id, attempt, status = name, "run finished");
                JobOutcome::Done {
                    ok: status == RunStatus::Succeeded,
                    message: error.unwrap_or_else(|| name.to_string()),
                }
            }
            Ok(_) => {
                tracing::warn!(worker = %self.id, run_id = %run_id, attempt, "run was taken over (lease lost); result discarded");
                JobOutcome::Lost
            }
            Err(e) => {
                tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot record the run's end");
                JobOutcome::Lost
            }
        }
    }

    /// Shutdown: the run goes back to `queued` for another worker.
    pub(super) async fn release(&self, run_id: Uuid, attempt: i32) -> JobOutcome {
        let r = self
            .db_forever("release run", || async move {
                let mut conn = self.pool.acquire().await?;
                let fence = Fence {
                    worker: &self.id,
                    attempt,
                };
                runs::transition(&mut conn, run_id, Move::Release { fence }).await
            })
            .await;
        match r {
            Ok(Some(_)) => {
                tracing::info!(worker = %self.id, run_id = %run_id, "run handed back to the queue");
                JobOutcome::Release
            }
            Ok(None) | Err(_) => JobOutcome::Lost,
        }
    }

    /// Writes node states as the engine reports them, in order. Progress
    /// is best effort: a write that cannot be made within the retry budget
    /// is skipped; the run's final status does not depend on it.
    pub(super) async fn write_nodes(self, run_id: Uuid, mut rx: mpsc::UnboundedReceiver<Event>) {
        let w = &self;
        while let Some(first) = rx.recv().await {
            // Whatever else has arrived goes in the same transaction: one
            // commit for a burst of node events instead of one each.
            let mut batch = vec![first];
            while let Ok(ev) = rx.try_recv() {
                batch.push(ev);
            }
            let batch = &batch;
            let r = w
                .db("node states", || async move {
                    let mut tx = w.pool.begin().await?;
                    for ev in batch {
                        write_node_event(&mut tx, run_id, ev).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(worker = %w.id, run_id = %run_id, events = batch.len(), error = %e, "cannot write node states");
            }
        }
    }
}

pub(super) async fn write_node_event(
    conn: &mut sqlx::PgConnection,
    run_id: Uuid,
    ev: &Event,
) -> Result<(), DbError> {
    match ev {
        Event::NodeStarted { node_id } => {
            sqlx::query(
                "UPDATE node_runs SET status = 'running', started_at = clock_timestamp()
                 WHERE run_id = $1 AND node_id = $2",
            )
            .bind(run_id)
            .bind(node_id)
            .execute(&mut *conn)
            .await?;
        }
        Event::NodeFinished(rec) => {
            metrics::counter!("mudrock_nodes_total", "status" => rec.status.name(), "cache_hit" => if rec.cache_hit { "true" } else { "false" })
                .increment(1);
            if let Some(ms) = rec.duration_ms {
                metrics::histogram!("mudrock_node_duration_seconds").record(ms as f64 / 1000.0);
            }
            let reason = match (rec.status, &rec.reason) {
                (NodeStatus::Skipped, None) => Some("skipped".to_string()),
                (_, r) => r.clone(),
            };
            sqlx::query(
                "UPDATE node_runs SET status = $3::node_status, reason = $4, cache_key = $5,
                        cache_hit = $6, rows = $7, bytes = $8, error = $9,
                        started_at = coalesce(started_at, clock_timestamp()), finished_at = clock_timestamp()
                 WHERE run_id = $1 AND node_id = $2",
            )
            .bind(run_id)
            .bind(&rec.node_id)
            .bind(rec.status)
            .bind(reason)
            .bind(&rec.cache_key)
            .bind(rec.cache_hit)
            .bind(rec.rows.map(|v| v as i64))
            .bind(rec.bytes.map(|v| v as i64))
            .bind(&rec.error)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

pub(super) enum Start {
    Run(i32, RunStartRow),
    Finished(RunStatus),
    Missing,
    Defer,
}

#[derive(sqlx::FromRow)]
pub(super) struct RunStartRow {
    pub(super) status: RunStatus,
    pub(super) cancel_requested: bool,
    pub(super) project_id: Uuid,
    pub(super) pipeline_id: Uuid,
    pub(super) trigger: crate::service::queue::TriggerKind,
    pub(super) schedule_id: Option<Uuid>,
    pub(super) scheduled_for: Option<chrono::DateTime<chrono::Utc>>,
    pub(super) backfill_id: Option<Uuid>,
    pub(super) requested_by: Option<Uuid>,
    pub(super) definition: serde_json::Value,
    pub(super) max_concurrent: Option<i32>,
    pub(super) overlap_policy: Option<String>,
}
