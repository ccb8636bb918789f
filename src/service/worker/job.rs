//! One claimed job, start to end: the run started (or deferred, or found
//! finished), executed with in-place retries of transient failures, and
//! the job completed.

use super::*;

impl Worker {
    /// One claimed job, start to end.
    pub(super) async fn process(&self, task: PgTask) {
        let Some(job_id) = task.task_id().map(|t| t.to_string()) else {
            return;
        };
        let job: RunJob = match serde_json::from_slice(&task.args) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(worker = %self.id, job_id, error = %e, "job payload is not a run");
                self.complete_job(&job_id, false, format!("bad payload: {e}"))
                    .await;
                return;
            }
        };
        let job_ref = job_id.as_str();
        let outcome = self.execute(job.run_id, &job_id).await;
        match outcome {
            JobOutcome::Done { ok, message } => self.complete_job(&job_id, ok, message).await,
            JobOutcome::Release => {
                let r = self
                    .db_forever("release job", || async move {
                        sqlx::query(
                            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL,
                                    done_at = NULL, last_result = '{\"Err\": \"handed back by the worker\"}'
                             WHERE id = $1 AND lock_by = $2",
                        )
                        .bind(job_ref)
                        .bind(&self.id)
                        .execute(&self.pool)
                        .await?;
                        Ok(())
                    })
                    .await;
                if let Err(e) = r {
                    tracing::warn!(worker = %self.id, job_id, error = %e, "cannot release the job; its lease will expire");
                }
            }
            JobOutcome::Defer => {
                let delay = self.wc().defer_ms as f64 / 1000.0;
                let r = self
                    .db("defer job", || async move {
                        sqlx::query(
                            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL,
                                    run_at = now() + make_interval(secs => $3),
                                    last_result = '{\"Err\": \"deferred: the project is at maxConcurrentRuns\"}'
                             WHERE id = $1 AND lock_by = $2",
                        )
                        .bind(job_ref)
                        .bind(&self.id)
                        .bind(delay)
                        .execute(&self.pool)
                        .await?;
                        Ok(())
                    })
                    .await;
                if let Err(e) = r {
                    tracing::warn!(worker = %self.id, job_id, error = %e, "cannot defer the job; its lease will expire");
                }
            }
            JobOutcome::Lost => {}
        }
    }

    pub(super) async fn complete_job(&self, job_id: &str, ok: bool, message: String) {
        let Ok(task_id) = job_id.parse() else {
            return;
        };
        let payload = TaskResult {
            task_id,
            attempt: 1,
            status: if ok { Status::Done } else { Status::Failed },
            result: if ok {
                Ok(serde_json::Value::String(message))
            } else {
                Err(message)
            },
        };
        let payload = &payload;
        let r = self
            .db_forever("complete job", || async move {
                let mut conn = self.pool.acquire().await?;
                apalis_postgres::queries::handle_results(&mut *conn, &[payload], &self.id)
                    .await
                    .map_err(DbError::from)?;
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(worker = %self.id, job_id, error = %e, "cannot complete the job");
        }
    }

    /// Claims the run row and executes it; retries transient failures.
    pub(super) async fn execute(&self, run_id: Uuid, job_id: &str) -> JobOutcome {
        let start = match self
            .db("start run", || self.start_run(run_id, job_id))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                // The job is locked by this live worker, so no lease would
                // ever expire for it: hand it back for a later claim.
                tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot start the run, handing the job back");
                return JobOutcome::Release;
            }
        };
        let (mut attempt, row) = match start {
            Start::Run(attempt, row) => (attempt, row),
            Start::Finished(status) => {
                return JobOutcome::Done {
                    ok: true,
                    message: format!("run already {}", status.name()),
                };
            }
            Start::Missing => {
                return JobOutcome::Done {
                    ok: false,
                    message: format!("run {run_id} does not exist"),
                };
            }
            Start::Defer => return JobOutcome::Defer,
        };
        tracing::info!(worker = %self.id, run_id = %run_id, attempt, "run claimed");

        // A definition that fails validation fails the run at once with
        // the whole report: retrying cannot fix it.
        let vopts = validate::Options {
            strict: false,
            limits: self.config.limits,
        };
        let pipeline = match validate::validate(row.definition.clone(), vopts) {
            Ok((p, _)) => Arc::new(p),
            Err(report) => {
                let msg = format!("pipeline is invalid:\n{report}");
                return self
                    .finish(run_id, attempt, RunStatus::Failed, Some(msg))
                    .await;
            }
        };
        // A project over its storage quota runs nothing until it has room.
        match self.over_quota(row.project_id).await {
            Ok(Some(msg)) => {
                return self
                    .finish(run_id, attempt, RunStatus::Failed, Some(msg))
                    .await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot read the project's storage use")
            }
        }
        // The project's bucket: its own for an imported one.
        let bucket = match self
            .db("project bucket", || {
                crate::service::projects::bucket_of(&self.pool, &self.config.store, row.project_id)
            })
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot read the project's bucket, handing the job back");
                return JobOutcome::Release;
            }
        };
        let held: Held = self.handback.child_token();
        self.held.lock().unwrap().insert(run_id, held.clone());
        let _unhold = Unhold(self.held.clone(), run_id);
        let mut backoff = self.backoff().build();
        let scheduled = row
            .scheduled_for
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let mut lineage_start = self.lineage.as_ref().map(|e| {
            let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let event = crate::inspect::openlineage::run_start(
                &row.project_id.to_string(),
                &row.pipeline_id.to_string(),
                &run_id.to_string(),
                &started,
                scheduled.as_deref(),
            );
            crate::service::lineage_sink::spawn_event(e, event, None)
        });
        loop {
            let (tx, rx) = mpsc::unbounded_channel();
            let writer = tokio::spawn(self.clone().write_nodes(run_id, rx));
            let opts = RunOptions {
                bucket: bucket.clone(),
                project_id: row.project_id.to_string(),
                pipeline_id: row.pipeline_id.to_string(),
                run_id: run_id.to_string(),
                trigger: Trigger {
                    kind: row.trigger.name().into(),
                    schedule_id: row.schedule_id.map(|s| s.to_string()),
                    scheduled_for: row
                        .scheduled_for
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    backfill_id: row.backfill_id.map(|s| s.to_string()),
                    requested_by: row.requested_by.map(|s| s.to_string()),
                },
                attempt: attempt as u32,
                use_cache: true,
                concurrency: self.config.engine.concurrency,
                streaming: self.config.engine.streaming,
                streaming_above_bytes: self.config.engine.streaming_above_bytes(),
                trim_sources_above_bytes: crate::engine::ingest::DEFAULT_TRIM_ABOVE_BYTES,
                events: Some(tx),
                cancel: held.clone(),
                limits: self.config.engine.limits(),
            };
            let res = self.engine.run(pipeline.clone(), opts).await;
            let _ = writer.await;
            match res {
                Ok(r) => {
                    self.reconcile_storage(row.project_id, &bucket).await;
                    if self.handback.is_cancelled() && r.meta.status == RunStatus::Cancelled {
                        // The engine committed a `cancelled` run; the run
                        // is not over, so its folder must not look done.
                        let marker = format!("{}metadata.json", r.run_prefix);
                        if let Err(e) = self.engine.store().delete(&bucket, &marker).await {
                            tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot remove the commit marker of a handed-back run");
                        }
                        return self.release(run_id, attempt).await;
                    }
                    if let Some(e) = &self.lineage {
                        let b = crate::inspect::Bucket {
                            store: self.engine.store().clone(),
                            name: bucket.clone(),
                        };
                        let run = crate::inspect::RunRef {
                            pipeline_id: row.pipeline_id.to_string(),
                            run_id: run_id.to_string(),
                        };
                        crate::service::lineage_sink::spawn_finished(
                            e,
                            b,
                            run,
                            lineage_start.take(),
                        );
                    }
                    return self
                        .finish(run_id, attempt, r.meta.status, r.meta.error.clone())
                        .await;
                }
                Err(e) => {
                    let retry = e.is_retryable()
                        && (attempt as u32) < self.wc().max_attempts
                        && !held.is_cancelled();
                    let delay = if retry { backoff.next() } else { None };
                    let Some(delay) = delay else {
                        let fault = e.fault();
                        if let Some(em) = &self.lineage {
                            let at = chrono::Utc::now()
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                            let event = crate::inspect::openlineage::run_failed(
                                &row.project_id.to_string(),
                                &row.pipeline_id.to_string(),
                                &run_id.to_string(),
                                &at,
                                scheduled.as_deref(),
                                &e.to_string(),
                            );
                            crate::service::lineage_sink::spawn_event(
                                em,
                                event,
                                lineage_start.take(),
                            );
                        }
                        tracing::warn!(worker = %self.id, run_id = %run_id, attempt, ?fault, error = %e, "run failed");
                        return self
                            .finish(run_id, attempt, RunStatus::Failed, Some(e.to_string()))
                            .await;
                    };
                    tracing::warn!(worker = %self.id, run_id = %run_id, attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "transient failure, retrying");
                    let note = format!(
                        "attempt {attempt} failed: {e}; retrying in {} ms",
                        delay.as_millis()
                    );
                    // A cancellation during the wait is seen by the next attempt's gates.
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = held.cancelled() => {}
                    }
                    match self
                        .db("next attempt", || self.next_attempt(run_id, attempt, &note))
                        .await
                    {
                        Ok(Some(a)) => attempt = a,
                        Ok(None) => return JobOutcome::Lost,
                        Err(e) => {
                            // The run stays `running` as ours; whoever
                            // claims the handed-back job takes it over.
                            tracing::warn!(worker = %self.id, run_id = %run_id, error = %e, "cannot record the next attempt, handing the job back");
                            return JobOutcome::Release;
                        }
                    }
                }
            }
        }
    }

    /// Why the project may not run now: more bytes in its bucket than its
    /// `storageQuota`.
    async fn over_quota(&self, project: Uuid) -> Result<Option<String>, DbError> {
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT coalesce(s.used_bytes, 0), (p.settings ->> 'storageQuota')::bigint
             FROM projects p LEFT JOIN project_storage s ON s.project_id = p.id WHERE p.id = $1",
        )
        .bind(project)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((used, Some(quota))) if used > quota => Some(format!(
                "the project is over its storage quota: {used} of {quota} bytes used; delete files or raise storageQuota"
            )),
            _ => None,
        })
    }

    /// Sets the project's storage use to what its bucket holds now (runs
    /// add outputs and cache entries). Best effort: the next run tries again.
    async fn reconcile_storage(&self, project: Uuid, bucket: &str) {
        match self.engine.store().list(bucket, "").await {
            Ok(objects) => {
                let bytes = objects.iter().map(|o| o.size).sum();
                if let Err(e) = crate::service::files::reconcile(&self.pool, project, bytes).await {
                    tracing::warn!(worker = %self.id, project = %project, error = %e, "cannot record storage use");
                }
            }
            Err(e) => {
                tracing::warn!(worker = %self.id, project = %project, error = %e, "cannot list the bucket for storage use")
            }
        }
    }
}
