//! Pinning runs: `POST /v1/runs/{id}/pin` keeps a run whatever its
//! project's retention policy says; `DELETE` lets the policy decide again.
//! Editors and owners pin; viewers may not.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::begin_as;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Path;
use super::runs::visible_run;
use super::{AppState, Caller};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pin, unpin))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Pinned {
    run_id: Uuid,
    pinned: bool,
}

async fn set(s: &AppState, caller: &Caller, id: Uuid, pinned: bool) -> ApiResult<Json<Pinned>> {
    let mut tx = begin_as(&s.pool, caller).await?;
    visible_run(&mut tx, id).await?;
    let changed = sqlx::query("UPDATE pipeline_runs SET pinned = $2 WHERE id = $1")
        .bind(id)
        .bind(pinned)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(ApiError::forbidden("only editors and owners pin runs"));
    }
    tx.commit().await?;
    Ok(Json(Pinned { run_id: id, pinned }))
}

/// Keeps the run whatever the retention policy says.
#[utoipa::path(post, path = "/v1/runs/{id}/pin", tag = "runs", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = Pinned), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn pin(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Pinned>> {
    set(&s, &caller, id, true).await
}

/// Lets the retention policy decide about the run again.
#[utoipa::path(delete, path = "/v1/runs/{id}/pin", tag = "runs", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = Pinned), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn unpin(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Pinned>> {
    set(&s, &caller, id, false).await
}
