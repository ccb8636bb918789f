//! A round of garbage collection over every project (or one), then the
//! deleted projects past their grace: what `mudrock gc` runs once and the
//! scheduler role of `serve` runs every `[gc] interval_minutes`.

use std::sync::Arc;

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use super::{GcConfig, GcError, GcOptions, GcReport, collect, purge};
use crate::store::ObjectStore;

/// What one round of GC did: each project's report (or error), and the
/// deleted projects it purged.
#[derive(Debug, Default)]
pub struct GcRound {
    pub projects: Vec<Result<GcReport, GcError>>,
    pub purged: Vec<purge::Purge>,
}

/// Collects every project (or one), then (for all) purges deleted
/// projects past their grace: what `mudrock gc` and `serve` do. A project
/// whose GC fails is reported and the others go on.
pub async fn collect_all(
    pool: &PgPool,
    store: &Arc<dyn ObjectStore>,
    buckets: &crate::store::StoreConfig,
    only: Option<Uuid>,
    opts: &GcOptions,
) -> Result<GcRound, GcError> {
    let projects = collect_projects(pool, store, buckets, only, opts).await?;
    let purged = if only.is_none() {
        purge::purge_deleted(pool, store, buckets, opts).await?
    } else {
        Vec::new()
    };
    Ok(GcRound { projects, purged })
}

async fn collect_projects(
    pool: &PgPool,
    store: &Arc<dyn ObjectStore>,
    buckets: &crate::store::StoreConfig,
    only: Option<Uuid>,
    opts: &GcOptions,
) -> Result<Vec<Result<GcReport, GcError>>, GcError> {
    let projects: Vec<(Uuid, serde_json::Value, Option<String>)> = sqlx::query_as(
        "SELECT id, settings, bucket FROM projects WHERE $1::uuid IS NULL OR id = $1 ORDER BY id",
    )
    .bind(only)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(projects.len());
    for (id, settings, own) in projects {
        let bucket = own.unwrap_or_else(|| buckets.bucket(Some(&id.to_string())));
        let r = collect(pool, store, &bucket, id, &settings, opts).await;
        if let Err(e) = &r {
            tracing::warn!(project = %id, error = %e, "gc of project failed");
        }
        out.push(r);
    }
    Ok(out)
}

/// `serve`'s periodic collection: every `interval_minutes`, all projects,
/// by one process at a time (a session advisory lock; the others skip that
/// round), until `stop`.
pub async fn periodic(
    pool: PgPool,
    store: Arc<dyn ObjectStore>,
    buckets: crate::store::StoreConfig,
    config: GcConfig,
    stop: tokio_util::sync::CancellationToken,
) {
    if config.interval_minutes == 0 {
        return;
    }
    let every = std::time::Duration::from_secs(config.interval_minutes.saturating_mul(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let Ok(mut conn) = pool.acquire().await else {
            continue;
        };
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('mudrock.gc'))")
                .fetch_one(&mut *conn)
                .await
                .unwrap_or(false);
        if !locked {
            continue;
        }
        let opts = GcOptions {
            dry_run: false,
            now: Utc::now(),
            config: config.clone(),
        };
        match collect_all(&pool, &store, &buckets, None, &opts).await {
            Ok(round) => {
                let freed: u64 = round.projects.iter().flatten().map(|r| r.bytes_freed).sum();
                tracing::info!(
                    projects = round.projects.len(),
                    purged = round.purged.len(),
                    bytes_freed = freed,
                    "gc round done"
                );
            }
            Err(e) => tracing::warn!(error = %e, "gc round failed"),
        }
        let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext('mudrock.gc'))")
            .execute(&mut *conn)
            .await;
    }
}
