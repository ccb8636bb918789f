//! Pipeline tools beside saving: export (a document that `POST
//! /v1/projects/{id}/pipelines` imports as is), the difference between two
//! saved versions, and `plan` (order, expected cache hits, output schemas)
//! against the project's bucket without running anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::begin_as;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::pipelines::visible_pipeline;
use super::{AppState, Caller};
use crate::engine::RunOptions;
use crate::service::pipelines as svc;
use crate::validate::{Options, validate};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export))
        .routes(routes!(diff))
        .routes(routes!(plan))
}

/// The pipeline as a document to import elsewhere: `{name, description,
/// tags, definition}`, the body `POST /v1/projects/{id}/pipelines` takes.
#[utoipa::path(get, path = "/v1/pipelines/{id}/export", tag = "pipelines", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, description = "the import document"), (status = 404, body = ErrorBody)))]
async fn export(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let p = visible_pipeline(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(
        json!({"name": p.name, "description": p.description, "tags": p.tags, "definition": p.definition}),
    ))
}

/// Items of a definition's list (`nodes`, `edges`) by id.
fn by_id(def: &Value, list: &str) -> BTreeMap<String, Value> {
    def[list]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, v)| {
            let id = v["id"]
                .as_str()
                .map_or_else(|| format!("#{i}"), str::to_string);
            (id, v.clone())
        })
        .collect()
}

/// What changed between two definitions: nodes and edges added, removed
/// or changed (by id), and the other top-level fields that differ.
pub fn definition_diff(a: &Value, b: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for list in ["nodes", "edges"] {
        let (old, new) = (by_id(a, list), by_id(b, list));
        let added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
        let removed: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
        let changed: Vec<Value> = old
            .iter()
            .filter_map(|(k, v)| {
                let n = new.get(k)?;
                (crate::hash::canonical_json(v) != crate::hash::canonical_json(n))
                    .then(|| json!({"id": k, "before": v, "after": n}))
            })
            .collect();
        out.insert(
            list.into(),
            json!({"added": added, "removed": removed, "changed": changed}),
        );
    }
    let keys: std::collections::BTreeSet<&String> = a
        .as_object()
        .into_iter()
        .chain(b.as_object())
        .flat_map(|o| o.keys())
        .filter(|k| *k != "nodes" && *k != "edges")
        .collect();
    let fields: Vec<Value> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| json!({"field": k, "before": a.get(k), "after": b.get(k)}))
        .collect();
    out.insert("fields".into(), Value::Array(fields));
    Value::Object(out)
}

/// The difference between two saved versions.
#[utoipa::path(get, path = "/v1/pipelines/{id}/versions/{from}/diff/{to}", tag = "pipelines",
    params(("id" = Uuid, Path), ("from" = i32, Path), ("to" = i32, Path)), security(("bearer" = [])),
    responses((status = 200, description = "nodes, edges and fields added, removed, changed"), (status = 404, body = ErrorBody)))]
async fn diff(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, from, to)): Path<(Uuid, i32, i32)>,
) -> ApiResult<Json<Value>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_pipeline(&mut tx, id).await?;
    let mut get = async |rev| {
        svc::version(&mut tx, id, rev)
            .await?
            .and_then(|v| v.definition)
            .ok_or_else(|| ApiError::not_found(format!("version {rev}")))
    };
    let (a, b) = (get(from).await?, get(to).await?);
    tx.commit().await?;
    let mut d = definition_diff(&a, &b);
    d["from"] = json!(from);
    d["to"] = json!(to);
    Ok(Json(d))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanQuery {
    /// Plan this saved revision (default: the latest).
    revision: Option<i32>,
}

/// Order, expected cache hits and output schemas, against the project's
/// bucket, without running anything.
#[utoipa::path(get, path = "/v1/pipelines/{id}/plan", tag = "pipelines", params(("id" = Uuid, Path), PlanQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "the plan"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn plan(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<PlanQuery>,
) -> ApiResult<Json<Value>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let p = visible_pipeline(&mut tx, id).await?;
    let definition = match q.revision {
        None => p.definition,
        Some(rev) => svc::version(&mut tx, id, rev)
            .await?
            .and_then(|v| v.definition)
            .ok_or_else(|| ApiError::not_found(format!("version {rev}")))?,
    };
    tx.commit().await?;
    let opts = Options {
        strict: false,
        limits: s.config.limits,
    };
    let (pipeline, _) = validate(definition, opts).map_err(|r| {
        ApiError::unprocessable(
            "invalid_pipeline",
            "the saved definition does not validate any more",
        )
        .with_details(json!({"diagnostics": r.diagnostics}))
    })?;
    let pipeline = Arc::new(pipeline);
    let mut o = RunOptions::local(&pipeline);
    o.bucket = s.bucket(p.project_id).await?;
    o.project_id = p.project_id.to_string();
    o.pipeline_id = id.to_string();
    let report = crate::engine::plan::plan(s.store.as_ref(), pipeline, &o)
        .await
        .map_err(|e| ApiError::unavailable("the store", e))?;
    serde_json::to_value(report)
        .map(Json)
        .map_err(|e| ApiError::internal("plan", e))
}
