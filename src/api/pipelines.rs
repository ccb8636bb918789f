//! `/v1/projects/{id}/pipelines` and `/v1/pipelines/{id}`: create, list
//! (by tag, paged), get, update (every save a new immutable version),
//! delete, versions (list, get, restore), export and validate.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::{Tx, begin_as};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Path, Query};
use super::page::{self, Page};
use super::projects::visible;
use super::{AppState, Caller};
use crate::model::pipeline::Pipeline;
use crate::service::pipelines::{self as svc, PipelineRow, VersionRow};
use crate::validate::{Diagnostic, Options, validate};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(check))
        .routes(routes!(get, update, delete))
        .routes(routes!(versions))
        .routes(routes!(version))
        .routes(routes!(restore))
}

/// The pipeline, if the caller can see it; else 404.
pub(super) async fn visible_pipeline(tx: &mut Tx, id: Uuid) -> ApiResult<PipelineRow> {
    svc::get(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("pipeline"))
}

/// Validates a definition; every problem with its JSON path on failure.
fn validated(s: &AppState, definition: &Value) -> ApiResult<(Pipeline, Vec<Diagnostic>)> {
    let opts = Options {
        strict: false,
        limits: s.config.limits,
    };
    match validate(definition.clone(), opts) {
        Ok((p, report)) => Ok((p, report.diagnostics)),
        Err(report) => {
            let n = report.errors().count();
            Err(ApiError::unprocessable(
                "invalid_pipeline",
                format!("the pipeline has {n} problem(s); see details.diagnostics"),
            )
            .with_details(json!({"diagnostics": report.diagnostics})))
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreatePipeline {
    /// Defaults to the document's `name`.
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// The pipeline document (pipeline.md): `nodes`, `edges`, ...
    #[schema(value_type = Object)]
    definition: Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Saved {
    #[serde(flatten)]
    pipeline: PipelineRow,
    /// Warnings of the saved definition (errors refuse the save).
    #[schema(value_type = Vec<Object>)]
    warnings: Vec<Diagnostic>,
}

/// Creates a pipeline and saves its first version (owners and editors).
#[utoipa::path(post, path = "/v1/projects/{id}/pipelines", tag = "pipelines", params(("id" = Uuid, Path)),
    request_body = CreatePipeline, security(("bearer" = [])),
    responses((status = 201, body = Saved), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Body(b): Body<CreatePipeline>,
) -> ApiResult<(StatusCode, Json<Saved>)> {
    let (p, warnings) = validated(&s, &b.definition)?;
    let name = b.name.unwrap_or_else(|| p.name.clone());
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, project).await?;
    let version = p.version.as_deref().unwrap_or("1.0.0");
    let (id, _) = svc::create_in(
        &mut tx,
        project,
        &name,
        b.description.as_deref(),
        &b.tags,
        version,
        &p.definition,
        Some(caller.user),
    )
    .await?;
    let pipeline = visible_pipeline(&mut tx, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(Saved { pipeline, warnings })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only pipelines with this tag.
    tag: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A project's pipelines, newest first.
#[utoipa::path(get, path = "/v1/projects/{id}/pipelines", tag = "pipelines",
    params(("id" = Uuid, Path), ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<PipelineRow>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<PipelineRow>>> {
    let limit = page::limit(q.limit, s.config.api.max_page)?;
    let after = page::cursor(q.cursor.as_deref())?;
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, project).await?;
    let rows = svc::list(&mut tx, project, q.tag.as_deref(), after, limit).await?;
    tx.commit().await?;
    Ok(Json(page::page(rows, limit, |r| (r.created_at, r.id))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Check {
    #[schema(value_type = Object)]
    definition: Value,
}

/// Validates a definition without saving it: 200 with the warnings, or
/// 422 `invalid_pipeline` with every problem and its JSON path.
#[utoipa::path(post, path = "/v1/projects/{id}/pipelines/validate", tag = "pipelines",
    params(("id" = Uuid, Path)), request_body = Check, security(("bearer" = [])),
    responses((status = 200, description = "valid, with warnings"), (status = 422, body = ErrorBody)))]
async fn check(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Body(b): Body<Check>,
) -> ApiResult<Json<Value>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, project).await?;
    tx.commit().await?;
    let (_, warnings) = validated(&s, &b.definition)?;
    Ok(Json(json!({"valid": true, "diagnostics": warnings})))
}

/// One pipeline with its current definition.
#[utoipa::path(get, path = "/v1/pipelines/{id}", tag = "pipelines", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = PipelineRow), (status = 404, body = ErrorBody)))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PipelineRow>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let row = visible_pipeline(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(row))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdatePipeline {
    name: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    /// The new definition; the current one is saved again when absent.
    #[schema(value_type = Object)]
    definition: Option<Value>,
}

/// Saves a new version (and changes name, description, tags if given).
#[utoipa::path(put, path = "/v1/pipelines/{id}", tag = "pipelines", params(("id" = Uuid, Path)),
    request_body = UpdatePipeline, security(("bearer" = [])),
    responses((status = 200, body = Saved), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Body(b): Body<UpdatePipeline>,
) -> ApiResult<Json<Saved>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let current = visible_pipeline(&mut tx, id).await?;
    let definition = b.definition.unwrap_or(current.definition);
    let (p, warnings) = validated(&s, &definition)?;
    save(
        &mut tx,
        id,
        &b.name,
        &b.description,
        b.tags.as_deref(),
        &p,
        caller.user,
    )
    .await?;
    let pipeline = visible_pipeline(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(Saved { pipeline, warnings }))
}

async fn save(
    tx: &mut Tx,
    id: Uuid,
    name: &Option<String>,
    description: &Option<String>,
    tags: Option<&[String]>,
    p: &Pipeline,
    user: Uuid,
) -> ApiResult<()> {
    let version = p.version.as_deref().unwrap_or("1.0.0");
    svc::update(
        tx,
        id,
        name.as_deref(),
        description.as_deref(),
        tags,
        version,
        &p.definition,
        Some(user),
    )
    .await?
    .ok_or_else(|| ApiError::forbidden("only owners and editors save a pipeline"))?;
    Ok(())
}

/// Deletes a pipeline with its versions and runs (owners).
#[utoipa::path(delete, path = "/v1/pipelines/{id}", tag = "pipelines", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_pipeline(&mut tx, id).await?;
    if !svc::delete(&mut tx, id).await? {
        return Err(ApiError::forbidden("only owners delete a pipeline"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Saved versions, newest first.
#[utoipa::path(get, path = "/v1/pipelines/{id}/versions", tag = "pipelines", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = Vec<VersionRow>), (status = 404, body = ErrorBody)))]
async fn versions(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<VersionRow>>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_pipeline(&mut tx, id).await?;
    let rows = svc::versions(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// One saved version with its definition.
#[utoipa::path(get, path = "/v1/pipelines/{id}/versions/{revision}", tag = "pipelines",
    params(("id" = Uuid, Path), ("revision" = i32, Path)), security(("bearer" = [])),
    responses((status = 200, body = VersionRow), (status = 404, body = ErrorBody)))]
async fn version(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, revision)): Path<(Uuid, i32)>,
) -> ApiResult<Json<VersionRow>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_pipeline(&mut tx, id).await?;
    let row = svc::version(&mut tx, id, revision)
        .await?
        .ok_or_else(|| ApiError::not_found("version"))?;
    tx.commit().await?;
    Ok(Json(row))
}

/// Saves a new version equal to an old one.
#[utoipa::path(post, path = "/v1/pipelines/{id}/versions/{revision}/restore", tag = "pipelines",
    params(("id" = Uuid, Path), ("revision" = i32, Path)), security(("bearer" = [])),
    responses((status = 200, body = Saved), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn restore(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, revision)): Path<(Uuid, i32)>,
) -> ApiResult<Json<Saved>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_pipeline(&mut tx, id).await?;
    let old = svc::version(&mut tx, id, revision)
        .await?
        .ok_or_else(|| ApiError::not_found("version"))?;
    let definition = old.definition.unwrap_or_default();
    // Saved before under today's limits or not, it is checked again.
    let (p, warnings) = validated(&s, &definition)?;
    save(&mut tx, id, &None, &None, None, &p, caller.user).await?;
    let pipeline = visible_pipeline(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(Saved { pipeline, warnings }))
}
