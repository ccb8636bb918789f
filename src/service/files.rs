//! Uploaded files and storage usage: a `project_files` row per file under
//! `shared/` (written as the caller, so row-level security decides who may
//! upload and delete), and `project_storage.used_bytes` per project, which
//! triggers keep in step with uploads and the worker reconciles against a
//! listing of the bucket.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::service::db::DbError;

/// A project's storage: bytes used and what its settings allow.
#[derive(Debug, Clone)]
pub struct Usage {
    pub used: u64,
    pub quota: Option<u64>,
    pub allowed_types: Option<Vec<String>>,
}

/// The caller's view of a project's storage; `None` if not visible.
pub async fn usage(conn: &mut PgConnection, project: Uuid) -> Result<Option<Usage>, DbError> {
    let row: Option<(i64, Value)> = sqlx::query_as(
        "SELECT coalesce(s.used_bytes, 0), p.settings FROM projects p
         LEFT JOIN project_storage s ON s.project_id = p.id WHERE p.id = $1",
    )
    .bind(project)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(used, settings)| Usage {
        used: used.max(0) as u64,
        quota: settings["storageQuota"].as_u64(),
        allowed_types: settings["allowedFileTypes"].as_array().map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_ascii_lowercase))
                .collect()
        }),
    }))
}

/// Takes the file's row before its bytes are stored (RLS decides here);
/// returns the size of the file it replaces (0 when new).
pub async fn claim(conn: &mut PgConnection, project: Uuid, key: &str) -> Result<u64, DbError> {
    let old: Option<i64> = sqlx::query_scalar(
        "SELECT size FROM project_files WHERE project_id = $1 AND key = $2 FOR UPDATE",
    )
    .bind(project)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO project_files (project_id, key, size, uploaded_by) VALUES ($1, $2, $3, auth.uid())
         ON CONFLICT (project_id, key) DO UPDATE SET uploaded_by = auth.uid(), uploaded_at = now()",
    )
    .bind(project)
    .bind(key)
    .bind(old.unwrap_or(0))
    .execute(&mut *conn)
    .await?;
    Ok(old.unwrap_or(0).max(0) as u64)
}

/// Records what was stored.
pub async fn finish(
    conn: &mut PgConnection,
    project: Uuid,
    key: &str,
    size: u64,
    blake3: &str,
    content_type: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE project_files SET size = $3, blake3 = $4, content_type = $5 WHERE project_id = $1 AND key = $2",
    )
    .bind(project)
    .bind(key)
    .bind(size as i64)
    .bind(blake3)
    .bind(content_type)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One uploaded file.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileRow {
    pub key: String,
    pub size: i64,
    pub content_type: Option<String>,
    pub blake3: Option<String>,
    pub uploaded_by: Option<Uuid>,
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
}

/// Files under `prefix`, by key, after `after`.
pub async fn list(
    conn: &mut PgConnection,
    project: Uuid,
    prefix: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<FileRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT key, size, content_type, blake3, uploaded_by, uploaded_at FROM project_files
         WHERE project_id = $1 AND starts_with(key, $2) AND ($3::text IS NULL OR key > $3)
         ORDER BY key LIMIT $4",
    )
    .bind(project)
    .bind(prefix)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

pub async fn get(
    conn: &mut PgConnection,
    project: Uuid,
    key: &str,
) -> Result<Option<FileRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT key, size, content_type, blake3, uploaded_by, uploaded_at FROM project_files
         WHERE project_id = $1 AND key = $2",
    )
    .bind(project)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Removes a file's row; false when none was removed.
pub async fn delete(conn: &mut PgConnection, project: Uuid, key: &str) -> Result<bool, DbError> {
    let n = sqlx::query("DELETE FROM project_files WHERE project_id = $1 AND key = $2")
        .bind(project)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    Ok(n.rows_affected() == 1)
}

/// Sets a project's usage to what a listing of its bucket found (service
/// role: the worker after each run).
pub async fn reconcile(pool: &PgPool, project: Uuid, bytes: u64) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO project_storage (project_id, used_bytes, reconciled_at) VALUES ($1, $2, now())
         ON CONFLICT (project_id) DO UPDATE SET used_bytes = $2, reconciled_at = now()",
    )
    .bind(project)
    .bind(bytes as i64)
    .execute(pool)
    .await?;
    Ok(())
}
