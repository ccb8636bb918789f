//! A request's database work: one transaction as role `authenticated` with
//! the caller's claims in `request.jwt.claims` (what PostgREST does), so
//! row-level security decides what the caller sees and may change. The API
//! has no permission check of its own.

use sqlx::{PgPool, Postgres, Transaction};

use super::auth::Caller;
use super::error::ApiError;

pub type Tx = Transaction<'static, Postgres>;

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
    Ok(tx)
}
