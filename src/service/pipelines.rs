//! Pipelines as the platform keeps them: a pipeline row per project and
//! an immutable version per save; how a document's id names a pipeline;
//! submitting (save, then trigger) and waiting for the run. Shared by the
//! CLI and the API.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::model::pipeline::Pipeline;
use crate::service::db::DbError;
use crate::service::queue::{self, TriggerError, TriggerKind, TriggerRequest, Triggered};
use crate::service::runs::{self, RunRow};

/// A saved pipeline version.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SavedVersion {
    pub id: uuid::Uuid,
    pub revision: i32,
    pub definition_hash: String,
}

/// Saves a pipeline's definition: the pipeline row takes it, and an
/// immutable version (next revision, blake3 of the canonical definition)
/// is appended. Runs in the caller's transaction and role, so RLS decides
/// whether the caller may.
pub async fn save_version(
    conn: &mut sqlx::PgConnection,
    pipeline_id: uuid::Uuid,
    version: &str,
    definition: &serde_json::Value,
    created_by: Option<uuid::Uuid>,
) -> Result<SavedVersion, DbError> {
    let hash = crate::cache::definition_hash(definition);
    // Locks the pipeline so concurrent saves take consecutive revisions.
    let updated = sqlx::query(
        "UPDATE pipelines SET dag_definition = $2, version = $3, updated_at = now() WHERE id = $1",
    )
    .bind(pipeline_id)
    .bind(definition)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(DbError::Query(sqlx::Error::RowNotFound));
    }
    Ok(sqlx::query_as(
        "INSERT INTO pipeline_versions (pipeline_id, revision, version, dag_definition, definition_hash, created_by)
         SELECT $1, coalesce(max(revision), 0) + 1, $2, $3, $4, $5 FROM pipeline_versions WHERE pipeline_id = $1
         RETURNING id, revision, definition_hash",
    )
    .bind(pipeline_id)
    .bind(version)
    .bind(definition)
    .bind(&hash)
    .bind(created_by)
    .fetch_one(&mut *conn)
    .await?)
}

/// Creates or updates the pipeline `id` of `project` from a document and
/// saves it as a new immutable version (an unchanged definition still
/// gets one: saving is an explicit act). Returns the version.
pub async fn save(
    pool: &PgPool,
    project: uuid::Uuid,
    id: uuid::Uuid,
    name: &str,
    version: &str,
    definition: &serde_json::Value,
    created_by: Option<uuid::Uuid>,
) -> Result<SavedVersion, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO pipelines (id, project_id, name) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
    )
    .bind(id)
    .bind(project)
    .bind(name)
    .execute(&mut *tx)
    .await?;
    let saved = save_version(&mut tx, id, version, definition, created_by).await?;
    tx.commit().await?;
    Ok(saved)
}

/// The pipeline a document names within `project`: its `id` when that is a
/// UUID, else a UUID derived from project and id (the same file submitted
/// again becomes the next version of the same pipeline), else a new one.
pub fn pipeline_uuid(project: Uuid, doc_id: Option<&str>) -> Uuid {
    match doc_id {
        Some(i) => i.parse().unwrap_or_else(|_| {
            let h = blake3::hash(format!("mudrock pipeline {project} {i}").as_bytes());
            let mut b = [0u8; 16];
            b.copy_from_slice(&h.as_bytes()[..16]);
            uuid::Builder::from_random_bytes(b).into_uuid()
        }),
        None => Uuid::now_v7(),
    }
}

/// What to submit: a validated pipeline, where, and how the run is keyed.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub project: Uuid,
    /// Overrides the id the document names.
    pub pipeline_id: Option<Uuid>,
    pub pipeline: &'a Pipeline,
    pub trigger: TriggerKind,
    pub requested_by: Option<Uuid>,
    pub idempotency_key: Option<String>,
}

/// A submission's result: the pipeline, its saved version and the run.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub pipeline_id: Uuid,
    pub saved: SavedVersion,
    pub run: Triggered,
}

/// Saves the pipeline as its next version and queues a run of it.
pub async fn submit(pool: &PgPool, s: &Submission<'_>) -> Result<Submitted, TriggerError> {
    let id = s
        .pipeline_id
        .unwrap_or_else(|| pipeline_uuid(s.project, s.pipeline.id.as_deref()));
    let version = s.pipeline.version.as_deref().unwrap_or("1.0.0");
    let saved = save(
        pool,
        s.project,
        id,
        &s.pipeline.name,
        version,
        &s.pipeline.definition,
        s.requested_by,
    )
    .await?;
    let mut req = TriggerRequest::new(id, s.trigger);
    req.requested_by = s.requested_by;
    req.idempotency_key = s.idempotency_key.clone();
    let mut conn = pool.acquire().await.map_err(DbError::from)?;
    let run = queue::trigger(&mut conn, &req).await?;
    Ok(Submitted {
        pipeline_id: id,
        saved,
        run,
    })
}

/// Waits until run `run_id` is final, looking every `every`; `None` when
/// the run does not exist (or is not visible).
pub async fn wait_final(
    conn: &mut PgConnection,
    run_id: Uuid,
    every: Duration,
) -> Result<Option<RunRow>, DbError> {
    loop {
        match runs::get_run(conn, run_id).await? {
            Some(run) if run.status.is_final() => return Ok(Some(run)),
            Some(_) => tokio::time::sleep(every).await,
            None => return Ok(None),
        }
    }
}

/// A pipeline as the API shows it: its row and latest saved revision.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub version: String,
    pub tags: Vec<String>,
    /// The latest saved revision (versions are numbered from 1).
    pub revision: Option<i32>,
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const PIPELINE: &str = "SELECT p.id, p.project_id, p.name, p.description, p.version, p.tags,
        (SELECT max(revision) FROM pipeline_versions v WHERE v.pipeline_id = p.id) AS revision,
        p.dag_definition AS definition, p.created_at, p.updated_at FROM pipelines p";

/// Creates a pipeline in `project` and saves its first version.
#[allow(clippy::too_many_arguments)]
pub async fn create_in(
    conn: &mut PgConnection,
    project: Uuid,
    name: &str,
    description: Option<&str>,
    tags: &[String],
    version: &str,
    definition: &serde_json::Value,
    created_by: Option<Uuid>,
) -> Result<(Uuid, SavedVersion), DbError> {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO pipelines (project_id, name, description, tags) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(project)
    .bind(name)
    .bind(description)
    .bind(tags)
    .fetch_one(&mut *conn)
    .await?;
    let saved = save_version(conn, id, version, definition, created_by).await?;
    Ok((id, saved))
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<PipelineRow>, DbError> {
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{PIPELINE} WHERE p.id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// A project's pipelines, newest first, optionally with a tag.
pub async fn list(
    conn: &mut PgConnection,
    project: Uuid,
    tag: Option<&str>,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<PipelineRow>, DbError> {
    let (at, after_id) = after.unzip();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PIPELINE} WHERE p.project_id = $1 AND ($2::text IS NULL OR $2 = ANY (p.tags))
           AND ($3::timestamptz IS NULL OR (p.created_at, p.id) < ($3, $4))
         ORDER BY p.created_at DESC, p.id DESC LIMIT $5"
    )))
    .bind(project)
    .bind(tag)
    .bind(at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Changes name, description and tags (when given) and saves `definition`
/// as the next version. `None` when the caller may not change the row.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
    tags: Option<&[String]>,
    version: &str,
    definition: &serde_json::Value,
    created_by: Option<Uuid>,
) -> Result<Option<SavedVersion>, DbError> {
    let n = sqlx::query(
        "UPDATE pipelines SET name = coalesce($2, name), description = coalesce($3, description),
                tags = coalesce($4, tags), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(description)
    .bind(tags)
    .execute(&mut *conn)
    .await?;
    if n.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(Some(
        save_version(conn, id, version, definition, created_by).await?,
    ))
}

/// Deletes a pipeline (its versions and runs go with it).
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, DbError> {
    let n = sqlx::query("DELETE FROM pipelines WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(n.rows_affected() == 1)
}

/// One saved version.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionRow {
    pub id: Uuid,
    pub revision: i32,
    pub version: String,
    pub definition_hash: String,
    pub created_by: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Object)]
    pub definition: Option<serde_json::Value>,
}

/// A pipeline's versions, newest first, without their definitions.
pub async fn versions(conn: &mut PgConnection, pipeline: Uuid) -> Result<Vec<VersionRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, revision, version, definition_hash, created_by, created_at, NULL::jsonb AS definition
         FROM pipeline_versions WHERE pipeline_id = $1 ORDER BY revision DESC",
    )
    .bind(pipeline)
    .fetch_all(&mut *conn)
    .await?)
}

/// One version with its definition.
pub async fn version(
    conn: &mut PgConnection,
    pipeline: Uuid,
    revision: i32,
) -> Result<Option<VersionRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, revision, version, definition_hash, created_by, created_at, dag_definition AS definition
         FROM pipeline_versions WHERE pipeline_id = $1 AND revision = $2",
    )
    .bind(pipeline)
    .bind(revision)
    .fetch_optional(&mut *conn)
    .await?)
}
