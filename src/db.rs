//! PostgreSQL: the schema's migrations (numbered SQL files in
//! `migrations/`, embedded in the binary) and the check every daemon makes
//! before starting, so none runs against a database that is behind.

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::error::Fault;

/// The migrations, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting failed: the server may be down or restarting.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("the database is behind: migration(s) {missing} not applied; run `mudrock migrate`")]
    Behind { missing: String },
    #[error("the database has migration {0} that this mudrock does not know; upgrade mudrock")]
    Ahead(i64),
    #[error("migrating failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

impl DbError {
    pub fn fault(&self) -> Fault {
        match self {
            DbError::Connect(_) | DbError::Query(_) => Fault::External,
            DbError::Behind { .. } | DbError::Ahead(_) => Fault::User,
            DbError::Migrate(_) => Fault::Internal,
        }
    }

    /// Connection losses and server restarts pass; the rest does not.
    pub fn is_retryable(&self) -> bool {
        match self {
            DbError::Connect(_) => true,
            DbError::Query(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                ) || e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| {
                        // admin_shutdown, crash_shutdown, cannot_connect_now,
                        // serialization_failure, deadlock_detected
                        matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "40001" | "40P01")
                    })
            }
            _ => false,
        }
    }
}

pub async fn connect(url: &str) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await
        .map_err(DbError::Connect)
}

/// Applies every pending migration; returns the versions applied.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, DbError> {
    let before = applied(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !before.contains(v))
        .collect())
}

async fn applied(pool: &PgPool) -> Result<Vec<i64>, DbError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?,
    )
}

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
pub async fn save_pipeline_version(
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

/// Refuses a database that lacks migrations this binary has (or has ones it
/// does not know), naming the command that fixes it.
pub async fn check_current(pool: &PgPool) -> Result<(), DbError> {
    let have = applied(pool).await?;
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    if let Some(v) = have.iter().find(|v| !known.contains(v)) {
        return Err(DbError::Ahead(*v));
    }
    let missing: Vec<String> = known
        .iter()
        .filter(|v| !have.contains(v))
        .map(|v| format!("{v:04}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DbError::Behind {
            missing: missing.join(", "),
        })
    }
}
