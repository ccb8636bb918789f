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
