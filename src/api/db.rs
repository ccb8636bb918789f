//! A request's database work: one transaction as role `authenticated` with
//! the caller's claims in `request.jwt.claims` (what PostgREST does), so
//! row-level security decides what the caller sees and may change. The API
//! has no permission check of its own.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::auth::Caller;
use super::error::ApiError;

/// The caller's transaction. Committing it also appends the call's audit
/// row, in the same transaction ([`super::audit`]).
pub struct Tx(Transaction<'static, Postgres>);

impl Tx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        super::audit::record_in(&mut self.0).await?;
        self.0.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.0.rollback().await
    }
}

impl std::ops::Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.0
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.0
    }
}

/// Begins the caller's transaction.
pub async fn begin_as(pool: &PgPool, caller: &Caller) -> Result<Tx, ApiError> {
    let mut tx = pool.begin().await?;
    // One round trip: `set_config('role', ...)` is `SET LOCAL ROLE` (what
    // PostgREST does), local to the transaction like the claims.
    sqlx::query(
        "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
    )
    .bind(caller.claims.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(Tx(tx))
}
