//! `/v1/projects/{id}/permissions`: who has which role; owners grant,
//! change and revoke (the database keeps at least one owner).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::begin_as;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Path};
use super::projects::visible;
use super::{AppState, Caller};
use crate::service::projects::{self, PermissionRow};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, grant))
        .routes(routes!(change, revoke))
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Role {
    Owner,
    Editor,
    Viewer,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Grant {
    user_id: Uuid,
    role: Role,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Change {
    role: Role,
}

/// Members of a project and their roles.
#[utoipa::path(get, path = "/v1/projects/{id}/permissions", tag = "permissions", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<PermissionRow>), (status = 404, body = ErrorBody)))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<PermissionRow>>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, id).await?;
    let rows = projects::permissions(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// Grants a user a role (owners).
#[utoipa::path(post, path = "/v1/projects/{id}/permissions", tag = "permissions", params(("id" = Uuid, Path)),
    request_body = Grant, security(("bearer" = [])),
    responses((status = 201, body = PermissionRow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn grant(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Body(b): Body<Grant>,
) -> ApiResult<(StatusCode, Json<PermissionRow>)> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, id).await?;
    let row = projects::grant(&mut tx, id, b.user_id, b.role.name()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Changes a member's role (owners; never the last owner away).
#[utoipa::path(patch, path = "/v1/projects/{id}/permissions/{user}", tag = "permissions",
    params(("id" = Uuid, Path), ("user" = Uuid, Path)), request_body = Change, security(("bearer" = [])),
    responses((status = 200, body = PermissionRow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn change(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(Uuid, Uuid)>,
    Body(b): Body<Change>,
) -> ApiResult<Json<PermissionRow>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, id).await?;
    if !projects::permissions(&mut tx, id)
        .await?
        .iter()
        .any(|p| p.user_id == user)
    {
        return Err(ApiError::not_found("permission"));
    }
    let row = projects::grant(&mut tx, id, user, b.role.name()).await?;
    tx.commit().await?;
    Ok(Json(row))
}

/// Revokes a member's access (owners; never the last owner).
#[utoipa::path(delete, path = "/v1/projects/{id}/permissions/{user}", tag = "permissions",
    params(("id" = Uuid, Path), ("user" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, id).await?;
    if !projects::permissions(&mut tx, id)
        .await?
        .iter()
        .any(|p| p.user_id == user)
    {
        return Err(ApiError::not_found("permission"));
    }
    if !projects::revoke(&mut tx, id, user).await? {
        return Err(ApiError::forbidden("only owners revoke access"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
