//! Projects: creating one (the row, its owner and its bucket, together).

use sqlx::PgPool;

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
    owner: uuid::Uuid,
    settings: &serde_json::Value,
) -> Result<uuid::Uuid, ProjectError> {
    let mut tx = pool.begin().await?;
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO projects (name, owner_id, settings) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(owner)
    .bind(settings)
    .fetch_one(&mut *tx)
    .await?;
    buckets
        .create_project_bucket(store, &id.to_string())
        .await
        .map_err(ProjectError::Bucket)?;
    tx.commit().await?;
    Ok(id)
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot create the project's bucket: {0}")]
    Bucket(#[source] crate::store::StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ProjectError {
    fn from(e: sqlx::Error) -> Self {
        ProjectError::Db(DbError::Query(e))
    }
}
