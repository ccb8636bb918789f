//! Purging deleted projects: once a project has been deleted for `[gc]
//! deleted_project_grace_days`, garbage collection deletes every object of
//! its bucket, marks it purged (no restore after that) and says so in the
//! project's audit trail. Until then `mudrock project restore` puts it back.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{GcError, GcOptions};
use crate::service::audit::{self, Entry, Outcome};
use crate::store::{ObjectStore, StoreConfig, StoreError};

/// One purged (or, dry, to be purged) project.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Purge {
    pub project: Uuid,
    pub bucket: String,
    pub deleted_at: DateTime<Utc>,
    pub objects: usize,
    pub bytes: u64,
}

/// Purges every project deleted more than the grace period ago.
pub async fn purge_deleted(
    pool: &PgPool,
    store: &Arc<dyn ObjectStore>,
    buckets: &StoreConfig,
    opts: &GcOptions,
) -> Result<Vec<Purge>, GcError> {
    let due = opts.now - Duration::days(i64::from(opts.config.deleted_project_grace_days));
    let rows: Vec<(Uuid, Option<String>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT project_id, bucket, deleted_at FROM deleted_projects
         WHERE purged_at IS NULL AND deleted_at < $1 ORDER BY deleted_at",
    )
    .bind(due)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for (project, own, deleted_at) in rows {
        let bucket = own.unwrap_or_else(|| buckets.bucket(Some(&project.to_string())));
        let objects = match store.list(&bucket, "").await {
            Ok(o) => o,
            Err(StoreError::NoSuchBucket(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let bytes = objects.iter().map(|o| o.size).sum();
        if !opts.dry_run {
            for o in &objects {
                crate::store::delete_if_present(store.as_ref(), &bucket, &o.key).await?;
            }
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE deleted_projects SET purged_at = $2, snapshot = NULL WHERE project_id = $1",
            )
            .bind(project)
            .bind(opts.now.max(deleted_at))
            .execute(&mut *tx)
            .await?;
            let entry = by_mudrock(project, "GC purge deleted project", bucket.clone());
            audit::append(&mut tx, &entry, Utc::now()).await?;
            tx.commit().await?;
            tracing::info!(project = %project, bucket = %bucket, objects = objects.len(), "gc purged deleted project");
        }
        out.push(Purge {
            project,
            bucket,
            deleted_at,
            objects: objects.len(),
            bytes,
        });
    }
    Ok(out)
}

/// Restores a deleted project that is not purged yet: its row, members,
/// pipelines and saved versions; its bucket was never touched.
pub async fn restore(pool: &PgPool, project: Uuid) -> Result<(), GcError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT mudrock_restore_project($1)")
        .bind(project)
        .execute(&mut *tx)
        .await?;
    let entry = by_mudrock(
        project,
        "CLI project restore",
        format!("/v1/projects/{project}"),
    );
    audit::append(&mut tx, &entry, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

/// An audit row for something mudrock did itself (no user).
fn by_mudrock(project: Uuid, action: &str, target: String) -> Entry {
    Entry {
        project: Some(project),
        user: None,
        role: None,
        action: action.into(),
        target,
        request_id: None,
        outcome: Outcome::Ok,
        status: None,
    }
}
