//! Garbage collection of a project's bucket and run rows, under its
//! retention policy ([`retention`]): `mudrock gc` and the periodic task of
//! `serve`.
//!
//! In order, each step safe to stop at any point:
//! 1. **Expired runs**: for each, the run folder's commit marker
//!    (`metadata.json`) first, so a half-deleted run reads as incomplete,
//!    never as complete with files missing; then its other files; then its
//!    database row (node states and events go with it). A GC stopped in
//!    between leaves a row whose folder is incomplete; the next GC finds the
//!    run still expired and finishes it.
//! 2. **Cache entries** that no remaining run used and that nothing used for
//!    `cacheUnusedDays` (by the runs' records and the entry's own write
//!    time): `metadata.json` first (an entry without it is no entry), then
//!    its data. Pipelines with a run queued or in progress keep all their
//!    entries this time (a run may be about to read one).
//! 3. **Scratch** under `temp/` older than `temp_max_age_hours`.
//!
//! And, across projects, deleted projects' buckets once their grace period
//! is over ([`purge`]).
//!
//! `--dry-run` deletes nothing and reports the same plan with the bytes it
//! would free.

pub mod purge;
pub mod retention;
mod round;

pub use round::{GcRound, collect_all, periodic};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use self::retention::Retention;
use crate::service::db::DbError;
use crate::store::{ObjectMeta, ObjectStore, StoreError};

/// `[gc]` in the configuration (`MUDROCK_GC__*`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// How often `serve` collects every project; 0: never (run `mudrock gc`).
    pub interval_minutes: u64,
    /// Cache entries unused this long go, where a project's policy does not
    /// say (`retention.cacheUnusedDays`).
    pub cache_unused_days: u32,
    /// Scratch under `temp/` older than this goes.
    pub temp_max_age_hours: u32,
    /// A deleted project's bucket is purged this long after the deletion
    /// (restorable until then).
    pub deleted_project_grace_days: u32,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval_minutes: 60,
            cache_unused_days: 30,
            temp_max_age_hours: 24,
            deleted_project_grace_days: 7,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The project's policy is invalid: its owner's to fix.
    #[error("project {project}: {message}")]
    Policy { project: Uuid, message: String },
    /// The store failed (listing, deleting): a later GC tries again.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for GcError {
    fn from(e: sqlx::Error) -> Self {
        GcError::Db(DbError::Query(e))
    }
}

/// What a GC of one project did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub project: Uuid,
    pub dry_run: bool,
    /// Runs deleted (or to be), by id.
    pub runs: Vec<Uuid>,
    /// Cache entries deleted, as `{pipeline}/{key}`.
    pub cache_entries: Vec<String>,
    pub temp_objects: usize,
    pub objects_deleted: usize,
    pub bytes_freed: u64,
    /// Objects listed to decide.
    pub objects_examined: usize,
}

/// When and how: the clock is an input.
#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    pub config: GcConfig,
}

/// A finished run with its rank among its pipeline's runs of its kind
/// (failed or not), newest first.
#[derive(Debug, sqlx::FromRow)]
struct RunAge {
    id: Uuid,
    pipeline_id: Uuid,
    failed: bool,
    pinned: bool,
    finished_at: DateTime<Utc>,
    rank: i64,
}

/// Collects one project. `settings` is its `settings` (the policy).
pub async fn collect(
    pool: &PgPool,
    store: &Arc<dyn ObjectStore>,
    bucket: &str,
    project: Uuid,
    settings: &serde_json::Value,
    opts: &GcOptions,
) -> Result<GcReport, GcError> {
    let policy = Retention::from_settings(settings)
        .map_err(|message| GcError::Policy { project, message })?;
    let mut report = GcReport {
        project,
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let objects = store.list(bucket, "").await?;
    report.objects_examined = objects.len();

    // 1. Expired runs.
    let runs: Vec<RunAge> = sqlx::query_as(
        "SELECT id, pipeline_id, status = 'failed' AS failed, pinned, finished_at,
                row_number() OVER (PARTITION BY pipeline_id, status = 'failed'
                                   ORDER BY finished_at DESC, id DESC) AS rank
         FROM pipeline_runs
         WHERE project_id = $1 AND status IN ('succeeded', 'failed', 'cancelled')",
    )
    .bind(project)
    .fetch_all(pool)
    .await?;
    let expired: Vec<&RunAge> = runs
        .iter()
        .filter(|r| {
            !r.pinned
                && !policy
                    .rule_for(r.failed)
                    .keeps(r.rank as u64, r.finished_at, opts.now)
        })
        .collect();
    // When each cache key was last used, before the runs that say so go.
    let last_use: HashMap<String, DateTime<Utc>> = sqlx::query_as::<_, (String, DateTime<Utc>)>(
        "SELECT n.cache_key, max(coalesce(r.started_at, r.queued_at))
         FROM node_runs n JOIN pipeline_runs r ON r.id = n.run_id
         WHERE r.project_id = $1 AND n.cache_key IS NOT NULL GROUP BY n.cache_key",
    )
    .bind(project)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    // Runs one after another would be a round trip per object: several
    // runs at once, each still marker first, then its row.
    let jobs: Vec<(Uuid, String, Vec<ObjectMeta>)> = expired
        .iter()
        .map(|r| {
            let prefix = format!("pipelines/{}/runs/{}/", r.pipeline_id, r.id);
            let files = objects
                .iter()
                .filter(|o| o.key.starts_with(&prefix))
                .cloned()
                .collect();
            (r.id, prefix, files)
        })
        .collect();
    let deleted = futures_util::stream::iter(jobs)
        .map(|(id, prefix, files)| {
            delete_run(
                pool.clone(),
                store.clone(),
                bucket.to_string(),
                project,
                id,
                prefix,
                files,
                opts.dry_run,
            )
        })
        .buffer_unordered(RUNS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    for d in deleted {
        let (id, (n, bytes)) = d?;
        report.runs.push(id);
        report.objects_deleted += n;
        report.bytes_freed += bytes;
    }

    // 2. Cache entries no remaining run uses and unused for long enough.
    let gone: Vec<Uuid> = expired.iter().map(|r| r.id).collect();
    let (used, busy): (BTreeSet<String>, BTreeSet<Uuid>) = {
        let used: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT n.cache_key FROM node_runs n JOIN pipeline_runs r ON r.id = n.run_id
             WHERE r.project_id = $1 AND n.cache_key IS NOT NULL AND r.id <> ALL($2)",
        )
        .bind(project)
        .bind(&gone)
        .fetch_all(pool)
        .await?;
        let busy: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT pipeline_id FROM pipeline_runs
             WHERE project_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(project)
        .fetch_all(pool)
        .await?;
        (used.into_iter().collect(), busy.into_iter().collect())
    };
    let unused_days = policy
        .cache_unused_days
        .unwrap_or(opts.config.cache_unused_days);
    let cutoff = opts.now - Duration::days(i64::from(unused_days));
    let mut entries: BTreeMap<(String, String), Vec<&ObjectMeta>> = BTreeMap::new();
    for o in &objects {
        let mut parts = o.key.splitn(5, '/');
        if let (Some("pipelines"), Some(pl), Some("cache"), Some(key), Some(_)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            entries
                .entry((pl.to_string(), key.to_string()))
                .or_default()
                .push(o);
        }
    }
    for ((pl, key), files) in entries {
        let busy_pipeline = pl.parse::<Uuid>().is_ok_and(|p| busy.contains(&p));
        if used.contains(&key) || busy_pipeline {
            continue;
        }
        let written = files.iter().filter_map(|f| f.modified).max();
        let last = [written, last_use.get(&key).copied()]
            .into_iter()
            .flatten()
            .max();
        // Unknown age (a store that does not say): kept.
        if last.is_none_or(|t| t >= cutoff) {
            continue;
        }
        let prefix = format!("pipelines/{pl}/cache/{key}/");
        let (n, bytes) = delete_marker_first(
            store,
            bucket,
            &files,
            "metadata.json",
            &prefix,
            opts.dry_run,
        )
        .await?;
        report.objects_deleted += n;
        report.bytes_freed += bytes;
        report.cache_entries.push(format!("{pl}/{key}"));
    }

    // 3. Old scratch.
    let temp_cutoff = opts.now - Duration::hours(i64::from(opts.config.temp_max_age_hours));
    for o in objects.iter().filter(|o| o.key.starts_with("temp/")) {
        if o.modified.is_some_and(|t| t < temp_cutoff) {
            if !opts.dry_run {
                delete(store, bucket, &o.key).await?;
            }
            report.temp_objects += 1;
            report.objects_deleted += 1;
            report.bytes_freed += o.size;
        }
    }
    Ok(report)
}

/// Runs deleted at once.
const RUNS_AT_ONCE: usize = 8;

/// One expired run: its folder (marker first), then its row.
#[allow(clippy::too_many_arguments)]
async fn delete_run(
    pool: PgPool,
    store: Arc<dyn ObjectStore>,
    bucket: String,
    project: Uuid,
    id: Uuid,
    prefix: String,
    files: Vec<ObjectMeta>,
    dry_run: bool,
) -> Result<(Uuid, (usize, u64)), GcError> {
    let refs: Vec<&ObjectMeta> = files.iter().collect();
    let freed =
        delete_marker_first(&store, &bucket, &refs, "metadata.json", &prefix, dry_run).await?;
    if !dry_run {
        sqlx::query("DELETE FROM pipeline_runs WHERE id = $1")
            .bind(id)
            .execute(&pool)
            .await?;
        tracing::info!(project = %project, run_id = %id, "gc deleted run");
    }
    Ok((id, freed))
}

/// Deletes `files` (all under `prefix`): `{prefix}{marker}` first and
/// alone, then the rest at once. Returns the objects and bytes.
async fn delete_marker_first(
    store: &Arc<dyn ObjectStore>,
    bucket: &str,
    files: &[&ObjectMeta],
    marker: &str,
    prefix: &str,
    dry_run: bool,
) -> Result<(usize, u64), GcError> {
    let marker_key = format!("{prefix}{marker}");
    let bytes = files.iter().map(|f| f.size).sum();
    if !dry_run {
        if files.iter().any(|f| f.key == marker_key) {
            delete(store, bucket, &marker_key).await?;
        }
        let rest = files.iter().filter(|f| f.key != marker_key);
        futures_util::future::try_join_all(rest.map(|f| delete(store, bucket, &f.key))).await?;
    }
    Ok((files.len(), bytes))
}

/// Deletes one object; already gone is fine (a GC finishing another's work).
async fn delete(store: &Arc<dyn ObjectStore>, bucket: &str, key: &str) -> Result<(), GcError> {
    Ok(crate::store::delete_if_present(store.as_ref(), bucket, key).await?)
}
