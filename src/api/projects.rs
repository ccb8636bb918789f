//! `/v1/projects`: create (row and bucket), list, get, update (name,
//! description, settings, checked), delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::{Tx, begin_as};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Path, Query};
use super::page::{self, Page, PageQuery};
use super::{AppState, Caller};
use crate::service::projects::{self, ProjectError, ProjectRow};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
}

/// The project, if the caller can see it; else 404 (never 403: whether a
/// project exists is not told to strangers).
pub(super) async fn visible(tx: &mut Tx, id: Uuid) -> ApiResult<ProjectRow> {
    projects::get(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))
}

impl From<ProjectError> for ApiError {
    fn from(e: ProjectError) -> Self {
        match e {
            ProjectError::Settings(m) => ApiError::unprocessable("invalid_settings", m),
            ProjectError::Bucket(b) => ApiError::unavailable("the project's storage", b),
            ProjectError::Db(d) => d.into(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateProject {
    name: String,
    description: Option<String>,
    /// `maxConcurrentRuns`, `storageQuota` (bytes), `allowedFileTypes`
    /// (extensions), `autoSave`.
    #[schema(value_type = Object)]
    settings: Option<Value>,
}

/// Creates a project; the caller becomes its owner and its bucket is made.
#[utoipa::path(post, path = "/v1/projects", tag = "projects", request_body = CreateProject,
    security(("bearer" = [])),
    responses((status = 201, body = ProjectRow), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Body(b): Body<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectRow>)> {
    if b.name.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "name must not be blank",
        ));
    }
    let settings = b.settings.unwrap_or_else(|| json!({}));
    let mut tx = begin_as(&s.pool, &caller).await?;
    let id = projects::create_in(
        &mut tx,
        &s.config.store,
        s.store.as_ref(),
        &b.name,
        b.description.as_deref(),
        caller.user,
        &settings,
    )
    .await?;
    super::audit::note_project(id);
    let row = visible(&mut tx, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Projects the caller can see, newest first.
#[utoipa::path(get, path = "/v1/projects", tag = "projects", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<ProjectRow>), (status = 400, body = ErrorBody)))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<ProjectRow>>> {
    let limit = page::limit(q.limit, s.config.api.max_page)?;
    let after = page::cursor(q.cursor.as_deref())?;
    let mut tx = begin_as(&s.pool, &caller).await?;
    let rows = projects::list(&mut tx, after, limit).await?;
    tx.commit().await?;
    Ok(Json(page::page(rows, limit, |r| (r.created_at, r.id))))
}

/// One project, with the caller's role in it.
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "projects", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ProjectRow), (status = 404, body = ErrorBody)))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ProjectRow>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let row = visible(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(row))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateProject {
    name: Option<String>,
    description: Option<String>,
    /// Merged key by key into the current settings; `null` removes a key.
    #[schema(value_type = Object)]
    settings: Option<Value>,
}

/// Changes name, description or settings (owners and editors).
#[utoipa::path(patch, path = "/v1/projects/{id}", tag = "projects", params(("id" = Uuid, Path)),
    request_body = UpdateProject, security(("bearer" = [])),
    responses((status = 200, body = ProjectRow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Body(b): Body<UpdateProject>,
) -> ApiResult<Json<ProjectRow>> {
    if b.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "name must not be blank",
        ));
    }
    if b.settings.as_ref().is_some_and(|v| !v.is_object()) {
        return Err(ApiError::unprocessable(
            "invalid_settings",
            "settings must be an object",
        ));
    }
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, id).await?;
    let row = projects::update(
        &mut tx,
        id,
        b.name.as_deref(),
        b.description.as_deref(),
        b.settings.as_ref(),
    )
    .await?
    .ok_or_else(|| ApiError::forbidden("only owners and editors change a project"))?;
    tx.commit().await?;
    Ok(Json(row))
}

/// Deletes a project with its pipelines and runs (owners).
#[utoipa::path(delete, path = "/v1/projects/{id}", tag = "projects", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, id).await?;
    if !projects::delete(&mut tx, id).await? {
        return Err(ApiError::forbidden("only owners delete a project"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
