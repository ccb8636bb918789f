//! PostgreSQL: the schema's migrations (numbered SQL files in
//! `migrations/`, embedded in the binary) and the check every daemon makes
//! before starting, so none runs against a database that is behind.

use backon::Retryable;
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
    /// apalis' storage refused (its own errors wrap the database's).
    #[error("queue error: {0}")]
    Queue(String),
}

impl From<apalis_postgres::Error> for DbError {
    /// apalis wraps the database's errors: unwrap them so a lost
    /// connection stays retryable.
    fn from(e: apalis_postgres::Error) -> Self {
        match e {
            apalis_postgres::Error::Database(e) => DbError::Query(e),
            other => DbError::Queue(other.to_string()),
        }
    }
}

impl DbError {
    pub fn fault(&self) -> Fault {
        match self {
            DbError::Connect(_) | DbError::Query(_) | DbError::Queue(_) => Fault::External,
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

/// What `migrate` applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// mudrock's own migrations (`migrations/`).
    pub mudrock: Vec<i64>,
    /// apalis-postgres' migrations of the queue schema `apalis` (kept in
    /// `apalis._sqlx_migrations`, apart from mudrock's).
    pub queue: Vec<i64>,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.mudrock.is_empty() && self.queue.is_empty()
    }
}

/// Applies every pending migration, mudrock's and the queue storage's.
pub async fn migrate(pool: &PgPool) -> Result<Applied, DbError> {
    let before = applied(pool, "_sqlx_migrations").await?;
    // Roles are cluster-wide: two databases migrating at once (parallel
    // tests, two deployments on one server) can collide on them with
    // "tuple concurrently updated". The failed migration was rolled back
    // as a whole, so running it again is safe.
    let run = || async {
        // A connection of its own, closed after a failure: sqlx's migrator
        // holds a session advisory lock that a failed run does not release,
        // and a pooled connection would keep it (and block the retry).
        let mut conn = pool.acquire().await?.detach();
        MIGRATOR.run(&mut conn).await.map_err(DbError::from)
    };
    run.retry(crate::retry::MIGRATION.times(5))
        .when(|e| {
            matches!(e, DbError::Migrate(sqlx::migrate::MigrateError::ExecuteMigration(e, _))
                if e.as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "XX000" || c == "40001" || c == "40P01"))
        })
        .await?;
    let queue_before = applied(pool, "apalis._sqlx_migrations").await?;
    apalis_postgres::PostgresStorage::setup(pool).await?;
    let queue = apalis_postgres::PostgresStorage::migrations()
        .iter()
        .map(|m| m.version)
        .filter(|v| !queue_before.contains(v))
        .collect();
    Ok(Applied {
        mudrock: MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| !before.contains(v))
            .collect(),
        queue,
    })
}

async fn applied(pool: &PgPool, table: &'static str) -> Result<Vec<i64>, DbError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    let sql = match table {
        "_sqlx_migrations" => "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        _ => "SELECT version FROM apalis._sqlx_migrations WHERE success ORDER BY version",
    };
    Ok(sqlx::query_scalar(sql).fetch_all(pool).await?)
}

/// Refuses a database that lacks migrations this binary has (or has ones it
/// does not know), naming the command that fixes it.
pub async fn check_current(pool: &PgPool) -> Result<(), DbError> {
    let have = applied(pool, "_sqlx_migrations").await?;
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    if let Some(v) = have.iter().find(|v| !known.contains(v)) {
        return Err(DbError::Ahead(*v));
    }
    let missing: Vec<String> = known
        .iter()
        .filter(|v| !have.contains(v))
        .map(|v| format!("{v:04}"))
        .collect();
    if !missing.is_empty() {
        return Err(DbError::Behind {
            missing: missing.join(", "),
        });
    }
    // The queue's schema is part of "current" too: a worker cannot claim
    // from a table that does not exist.
    let queue_have = applied(pool, "apalis._sqlx_migrations").await?;
    let queue_missing = apalis_postgres::PostgresStorage::migrations()
        .iter()
        .filter(|m| !queue_have.contains(&m.version))
        .count();
    if queue_missing > 0 {
        return Err(DbError::Behind {
            missing: format!("{queue_missing} of the queue storage (apalis)"),
        });
    }
    Ok(())
}
