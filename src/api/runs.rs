//! Runs: trigger (202, `Idempotency-Key`), get (with node states), list per
//! pipeline and per project (cursor paging, filters), cancel, re-run, and
//! what a run left in the bucket (artifacts, `metadata.json`,
//! `lineage.json`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::{Tx, begin_as};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::page::{self, Page};
use super::pipelines::visible_pipeline;
use super::projects::visible;
use super::{AppState, Caller};
use crate::model::RunStatus;
use crate::service::queue::{self, TriggerKind, TriggerRequest};
use crate::service::runs::{self, RunFilter, RunListRow};
use crate::store::StoreError;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trigger, list_for_pipeline))
        .routes(routes!(list_for_project))
        .routes(routes!(get))
        .routes(routes!(cancel))
        .routes(routes!(rerun))
        .routes(routes!(artifacts))
        .routes(routes!(metadata))
        .routes(routes!(lineage))
}

/// The longest `Idempotency-Key` accepted.
const MAX_KEY: usize = 255;

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TriggerBody {
    /// Run this saved revision instead of the latest.
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<i32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Triggered {
    run_id: Uuid,
    /// False when the Idempotency-Key matched an earlier run.
    created: bool,
    #[schema(value_type = Object)]
    links: Value,
}

fn links(run: Uuid) -> Value {
    json!({"self": format!("/v1/runs/{run}"), "events": format!("/v1/runs/{run}/events"),
           "artifacts": format!("/v1/runs/{run}/artifacts")})
}

/// An optional JSON body: empty is `{}`.
fn trigger_body(headers: &HeaderMap, bytes: &Bytes) -> ApiResult<TriggerBody> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(TriggerBody::default());
    }
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::bad_request("malformed_json", "the body is not valid JSON"))?;
    serde_json::from_value(v).map_err(|e| {
        ApiError::unprocessable(
            "invalid_body",
            "the body does not have the expected fields and types",
        )
        .with_details(json!({"reason": e.to_string()}))
    })
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().ok().map(str::trim).unwrap_or("");
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters"),
        ));
    }
    Ok(Some(key.to_string()))
}

/// Queues a run of the pipeline's latest saved version (owners and
/// editors). The same `Idempotency-Key` with the same body returns the
/// same run; with another body it is a 409.
#[utoipa::path(post, path = "/v1/pipelines/{id}/runs", tag = "runs", params(("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "repeat-safe trigger")),
    request_body(content = Option<TriggerBody>), security(("bearer" = [])),
    responses((status = 202, body = Triggered), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn trigger(
    State(s): State<AppState>,
    caller: Caller,
    Path(pipeline): Path<Uuid>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Triggered>)> {
    let body = trigger_body(&headers, &bytes)?;
    let key = idempotency_key(&headers)?;
    let mut tx = begin_as(&s.pool, &caller).await?;
    let t = start(&mut tx, pipeline, TriggerKind::Api, key, &body).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(t)))
}

async fn start(
    tx: &mut Tx,
    pipeline: Uuid,
    kind: TriggerKind,
    key: Option<String>,
    body: &TriggerBody,
) -> ApiResult<Triggered> {
    let mut req = TriggerRequest::new(pipeline, kind);
    req.revision = body.revision;
    if key.is_some() {
        let canonical = serde_json::to_value(body).unwrap_or_default();
        req.request_hash = Some(crate::hash::hash_bytes(
            crate::hash::canonical_json(&canonical).as_bytes(),
        ));
    }
    req.idempotency_key = key;
    let t = queue::trigger(tx, &req).await?;
    Ok(Triggered {
        run_id: t.run_id,
        created: t.created,
        links: links(t.run_id),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RunQuery {
    /// queued, running, succeeded, failed or cancelled.
    #[param(value_type = Option<String>)]
    status: Option<RunStatus>,
    /// api, schedule, cli or retry.
    #[param(value_type = Option<String>)]
    trigger: Option<TriggerKind>,
    /// The run triggered with this Idempotency-Key.
    idempotency_key: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_runs(
    s: &AppState,
    caller: &Caller,
    mut f: RunFilter,
    q: RunQuery,
) -> ApiResult<Page<RunListRow>> {
    let limit = page::limit(q.limit, s.config.api.max_page)?;
    let after = page::cursor(q.cursor.as_deref())?;
    f.status = q.status;
    f.trigger = q.trigger;
    f.idempotency_key = q.idempotency_key;
    let mut tx = begin_as(&s.pool, caller).await?;
    // The scope must be visible: a 404, not an empty page, for a stranger.
    if let Some(id) = f.pipeline {
        visible_pipeline(&mut tx, id).await?;
    }
    if let Some(id) = f.project {
        visible(&mut tx, id).await?;
    }
    let rows = runs::list(&mut tx, &f, after, limit).await?;
    tx.commit().await?;
    Ok(page::page(rows, limit, |r| (r.queued_at, r.id)))
}

/// A pipeline's runs, newest first (also: look a run up by its key).
#[utoipa::path(get, path = "/v1/pipelines/{id}/runs", tag = "runs", params(("id" = Uuid, Path), RunQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<RunListRow>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_for_pipeline(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<RunQuery>,
) -> ApiResult<Json<Page<RunListRow>>> {
    let f = RunFilter {
        pipeline: Some(id),
        ..Default::default()
    };
    Ok(Json(list_runs(&s, &caller, f, q).await?))
}

/// A project's runs, newest first.
#[utoipa::path(get, path = "/v1/projects/{id}/runs", tag = "runs", params(("id" = Uuid, Path), RunQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<RunListRow>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_for_project(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<RunQuery>,
) -> ApiResult<Json<Page<RunListRow>>> {
    let f = RunFilter {
        project: Some(id),
        ..Default::default()
    };
    Ok(Json(list_runs(&s, &caller, f, q).await?))
}

/// The run visible to the caller; else 404.
pub(super) async fn visible_run(tx: &mut Tx, id: Uuid) -> ApiResult<runs::RunRow> {
    runs::get_run(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))
}

/// A run: status, attempt, error, timings and node states.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, description = "the run with its nodes"), (status = 404, body = ErrorBody)))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<([(axum::http::HeaderName, &'static str); 1], String)> {
    // One statement instead of a request transaction, and the JSON text
    // as PostgreSQL made it: clients poll this.
    let merge = json!({ "links": links(id) }).to_string();
    let body = runs::status_json_as(&s.pool, &caller.claims.to_string(), id, &merge)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    ))
}

/// Asks a run to stop: a queued run is cancelled at once, a running one
/// at its next node boundary. 409 when it is already over.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 202, description = "cancellation requested"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let run = visible_run(&mut tx, id).await?;
    if run.status.is_final() {
        return Err(ApiError::conflict(
            "run_finished",
            format!("run {id} is already {}", run.status.name()),
        ));
    }
    if !runs::request_cancel(&mut tx, id).await? {
        return Err(ApiError::forbidden("only owners and editors cancel runs"));
    }
    let after = visible_run(&mut tx, id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"runId": id, "status": after.status.name(), "cancelRequested": true})),
    ))
}

/// Runs the same saved version again, as a new run (trigger `retry`).
#[utoipa::path(post, path = "/v1/runs/{id}/rerun", tag = "runs", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 202, body = Triggered), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn rerun(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<Triggered>)> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let run = visible_run(&mut tx, id).await?;
    let revision: i32 = sqlx::query_scalar("SELECT revision FROM pipeline_versions WHERE id = $1")
        .bind(run.pipeline_version_id)
        .fetch_one(&mut *tx)
        .await?;
    let body = TriggerBody {
        revision: Some(revision),
    };
    let t = start(&mut tx, run.pipeline_id, TriggerKind::Retry, None, &body).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(t)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Artifact {
    /// Below the run's folder: `metadata.json`, `outputs/{node}/data.parquet`, ...
    key: String,
    size: u64,
}

/// The run's folder in the bucket and its project's bucket.
pub(super) async fn run_folder(
    s: &AppState,
    caller: &Caller,
    id: Uuid,
) -> ApiResult<(String, String)> {
    let mut tx = begin_as(&s.pool, caller).await?;
    let run = visible_run(&mut tx, id).await?;
    tx.commit().await?;
    Ok((
        s.bucket(run.project_id).await?,
        format!("pipelines/{}/runs/{id}/", run.pipeline_id),
    ))
}

/// What the run wrote: outputs, schemas, metadata, lineage.
#[utoipa::path(get, path = "/v1/runs/{id}/artifacts", tag = "runs", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = Vec<Artifact>), (status = 404, body = ErrorBody)))]
async fn artifacts(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<Artifact>>> {
    let (bucket, prefix) = run_folder(&s, &caller, id).await?;
    let objects = match s.store.list(&bucket, &prefix).await {
        Ok(o) => o,
        Err(StoreError::NoSuchBucket(_)) => Vec::new(),
        Err(e) => return Err(ApiError::unavailable("the store", e)),
    };
    Ok(Json(
        objects
            .into_iter()
            .filter_map(|o| {
                o.key.strip_prefix(&prefix).map(|k| Artifact {
                    key: k.to_string(),
                    size: o.size,
                })
            })
            .collect(),
    ))
}

async fn run_file(s: &AppState, caller: &Caller, id: Uuid, name: &str) -> ApiResult<Json<Value>> {
    let (bucket, prefix) = run_folder(s, caller, id).await?;
    match s.store.get(&bucket, &format!("{prefix}{name}")).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|e| ApiError::internal("run file", e)),
        Err(StoreError::NotFound { .. } | StoreError::NoSuchBucket(_)) => Err(ApiError::not_found(
            format!("{name} of run {id} (written when the run ends)"),
        )),
        Err(e) => Err(ApiError::unavailable("the store", e)),
    }
}

/// The run's `metadata.json` (written last: the run's commit marker).
#[utoipa::path(get, path = "/v1/runs/{id}/metadata.json", tag = "runs", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, description = "metadata.json"), (status = 404, body = ErrorBody)))]
async fn metadata(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    run_file(&s, &caller, id, "metadata.json").await
}

/// The run's `lineage.json`.
#[utoipa::path(get, path = "/v1/runs/{id}/lineage.json", tag = "runs", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, description = "lineage.json"), (status = 404, body = ErrorBody)))]
async fn lineage(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    run_file(&s, &caller, id, "lineage.json").await
}
