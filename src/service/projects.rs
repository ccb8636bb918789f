//! Projects and who may use them: creating one (the row, its owner and its
//! bucket, together), reading, updating its settings (checked), deleting,
//! and its permissions. Every function runs on the caller's connection, so
//! for an API caller row-level security decides; none checks roles itself.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::service::db::DbError;

/// Creates a project (the creator becomes its owner) and its bucket, with
/// the folder markers the layout needs. The row is committed only once
/// the bucket exists, so a bucket that cannot be made leaves no project
/// behind; an existing bucket is fine (idempotent).
pub async fn create(
    pool: &PgPool,
    buckets: &crate::store::StoreConfig,
    store: &dyn crate::store::ObjectStore,
    name: &str,
    owner: Uuid,
    settings: &Value,
) -> Result<Uuid, ProjectError> {
    let mut tx = pool.begin().await?;
    let id = create_in(&mut tx, buckets, store, name, None, owner, settings).await?;
    tx.commit().await?;
    Ok(id)
}

/// [`create`] inside the caller's transaction (committing is the caller's).
pub async fn create_in(
    conn: &mut PgConnection,
    buckets: &crate::store::StoreConfig,
    store: &dyn crate::store::ObjectStore,
    name: &str,
    description: Option<&str>,
    owner: Uuid,
    settings: &Value,
) -> Result<Uuid, ProjectError> {
    check_settings(settings).map_err(ProjectError::Settings)?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO projects (name, description, owner_id, settings) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(description)
    .bind(owner)
    .bind(settings)
    .fetch_one(&mut *conn)
    .await?;
    buckets
        .create_project_bucket(store, &id.to_string())
        .await
        .map_err(ProjectError::Bucket)?;
    Ok(id)
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot create the project's bucket: {0}")]
    Bucket(#[source] crate::store::StoreError),
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ProjectError {
    fn from(e: sqlx::Error) -> Self {
        ProjectError::Db(DbError::Query(e))
    }
}

/// The settings mudrock knows, as the platform stores them (camelCase).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Settings {
    max_concurrent_runs: Option<u32>,
    storage_quota: Option<u64>,
    allowed_file_types: Option<Vec<String>>,
    auto_save: Option<bool>,
    retention: Option<serde_json::Value>,
}

/// Checks a project's settings: known keys with the right types and
/// ranges; the message names the key.
pub fn check_settings(v: &Value) -> Result<(), String> {
    let s: Settings = serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = e.inner().to_string();
        match crate::operators::read_serde_message(&inner) {
            crate::operators::SerdeProblem::UnknownField { name, expected } => {
                let hint =
                    crate::operators::did_you_mean(&name, expected.iter().map(String::as_str))
                        .map(|h| format!(" — {h}"))
                        .unwrap_or_default();
                format!("unknown setting \"{name}\"{hint}")
            }
            _ => format!(
                "{}: {}",
                e.path(),
                inner.split(" at line ").next().unwrap_or(&inner)
            ),
        }
    })?;
    if s.max_concurrent_runs == Some(0) {
        return Err("maxConcurrentRuns must be at least 1".into());
    }
    for t in s.allowed_file_types.iter().flatten() {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "allowedFileTypes: \"{t}\" is not a file extension (letters and digits, no dot)"
            ));
        }
    }
    if s.retention.is_some() {
        crate::service::gc::retention::Retention::from_settings(v)?;
    }
    let _ = (s.storage_quota, s.auto_save);
    Ok(())
}

/// A project as its members see it, with the caller's role.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub owner_id: Uuid,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// The caller's role: owner, editor or viewer.
    pub role: Option<String>,
}

const PROJECT: &str = "SELECT id, name, description, owner_id, settings, created_at, updated_at,
        project_role_of(id)::text AS role FROM projects";

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<ProjectRow>, DbError> {
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{PROJECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Projects visible to the caller, newest first, after `(created, id)`.
pub async fn list(
    conn: &mut PgConnection,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ProjectRow>, DbError> {
    let (at, id) = after.unzip();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PROJECT} WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
         ORDER BY created_at DESC, id DESC LIMIT $3"
    )))
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Changes name, description and settings (merged key by key; a `null`
/// value removes a key). `None` when no row was changed.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
    settings: Option<&Value>,
) -> Result<Option<ProjectRow>, ProjectError> {
    if let Some(s) = settings {
        let merged: Option<Value> = sqlx::query_scalar(
            "SELECT jsonb_strip_nulls(settings || $2) FROM projects WHERE id = $1",
        )
        .bind(id)
        .bind(s)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(m) = &merged {
            check_settings(m).map_err(ProjectError::Settings)?;
        }
    }
    let n = sqlx::query(
        "UPDATE projects SET name = coalesce($2, name), description = coalesce($3, description),
                settings = CASE WHEN $4::jsonb IS NULL THEN settings ELSE jsonb_strip_nulls(settings || $4) END,
                updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(description)
    .bind(settings)
    .execute(&mut *conn)
    .await?;
    if n.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(get(conn, id).await?)
}

/// Deletes a project; false when no row was deleted.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, DbError> {
    let n = sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(n.rows_affected() == 1)
}

/// One user's role in a project.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionRow {
    pub user_id: Uuid,
    pub role: String,
    pub granted_by: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn permissions(
    conn: &mut PgConnection,
    project: Uuid,
) -> Result<Vec<PermissionRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT user_id, role::text AS role, granted_by, created_at FROM project_permissions
         WHERE project_id = $1 ORDER BY created_at, user_id",
    )
    .bind(project)
    .fetch_all(&mut *conn)
    .await?)
}

/// Grants `role` (or changes it); the granter is the caller.
pub async fn grant(
    conn: &mut PgConnection,
    project: Uuid,
    user: Uuid,
    role: &str,
) -> Result<PermissionRow, DbError> {
    Ok(sqlx::query_as(
        "INSERT INTO project_permissions (project_id, user_id, role, granted_by)
         VALUES ($1, $2, $3::project_role, auth.uid())
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role
         RETURNING user_id, role::text AS role, granted_by, created_at",
    )
    .bind(project)
    .bind(user)
    .bind(role)
    .fetch_one(&mut *conn)
    .await?)
}

/// Revokes a user's access; false when no row was removed.
pub async fn revoke(conn: &mut PgConnection, project: Uuid, user: Uuid) -> Result<bool, DbError> {
    let n = sqlx::query("DELETE FROM project_permissions WHERE project_id = $1 AND user_id = $2")
        .bind(project)
        .bind(user)
        .execute(&mut *conn)
        .await?;
    Ok(n.rows_affected() == 1)
}

/// The bucket a project's data lives in: the one it was imported with, or
/// the configured naming. Read without row-level security (the service's
/// pool): callers have already checked the caller may see the project.
pub async fn bucket_of(
    pool: &PgPool,
    buckets: &crate::store::StoreConfig,
    project: Uuid,
) -> Result<String, DbError> {
    let own: Option<Option<String>> =
        sqlx::query_scalar("SELECT bucket FROM projects WHERE id = $1")
            .bind(project)
            .fetch_optional(pool)
            .await?;
    Ok(own
        .flatten()
        .unwrap_or_else(|| buckets.bucket(Some(&project.to_string()))))
}
