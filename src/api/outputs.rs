//! A run's outputs: `schema.json`, a preview (the first rows as JSON, rows
//! capped by `api.max_preview_rows`, text cells by
//! `outputs::MAX_PREVIEW_CELL_CHARS`) and the data, streamed as Parquet or
//! converted to CSV on the fly. Output names are node ids: anything else
//! (`..`, slashes, encoded or not) is a 400 before the store is asked.

use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::begin_as;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::{AppState, Caller};
use crate::store::StoreError;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(schema))
        .routes(routes!(preview))
        .routes(routes!(data))
}

/// Bucket and key of an output's file, for a caller who can see the run.
async fn output_key(
    s: &AppState,
    caller: &Caller,
    run: Uuid,
    node: &str,
    file: &str,
) -> ApiResult<(String, String)> {
    if !crate::validate::valid_id(node) {
        return Err(ApiError::bad_request(
            "invalid_path",
            "an output is named by its node id (letters, digits, _ . -)",
        )
        .with_details(json!({"node": node})));
    }
    let mut tx = begin_as(&s.pool, caller).await?;
    let r = super::runs::visible_run(&mut tx, run).await?;
    tx.commit().await?;
    Ok((
        s.bucket(r.project_id).await?,
        format!(
            "pipelines/{}/runs/{run}/outputs/{node}/{file}",
            r.pipeline_id
        ),
    ))
}

fn store_error(what: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } | StoreError::NoSuchBucket(_) => ApiError::not_found(what),
        e => ApiError::unavailable("the store", e),
    }
}

/// The output's `schema.json`.
#[utoipa::path(get, path = "/v1/runs/{id}/outputs/{node}/schema", tag = "runs",
    params(("id" = Uuid, Path), ("node" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "schema.json"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn schema(
    State(s): State<AppState>,
    caller: Caller,
    Path((run, node)): Path<(Uuid, String)>,
) -> ApiResult<Json<Value>> {
    let (bucket, key) = output_key(&s, &caller, run, &node, "schema.json").await?;
    let bytes = s
        .store
        .get(&bucket, &key)
        .await
        .map_err(|e| store_error("output", e))?;
    serde_json::from_slice(&bytes)
        .map(Json)
        .map_err(|e| ApiError::internal("schema.json", e))
}

/// A local file with the object's bytes: the object itself on the local
/// store, else a download into a temporary folder (kept with the file).
async fn local_copy(
    s: &AppState,
    bucket: &str,
    key: &str,
) -> ApiResult<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(p) = s.store.local_path(bucket, key) {
        if p.exists() {
            return Ok((p, None));
        }
        return Err(ApiError::not_found("output"));
    }
    let dir = tempfile::tempdir().map_err(|e| ApiError::internal("temp dir", e))?;
    let path = dir.path().join("data.parquet");
    crate::store::download(s.store.as_ref(), bucket, key, Some(&path))
        .await
        .map_err(|e| store_error("output", e))?;
    Ok((path, Some(dir)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct PreviewQuery {
    /// Rows to return (1 to `api.max_preview_rows`, default 100).
    rows: Option<u32>,
}

/// The first rows of an output as JSON objects.
#[utoipa::path(get, path = "/v1/runs/{id}/outputs/{node}/preview", tag = "runs",
    params(("id" = Uuid, Path), ("node" = String, Path), PreviewQuery), security(("bearer" = [])),
    responses((status = 200, description = "{columns, rows}"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn preview(
    State(s): State<AppState>,
    caller: Caller,
    Path((run, node)): Path<(Uuid, String)>,
    Query(q): Query<PreviewQuery>,
) -> ApiResult<Json<Value>> {
    let max = s.config.api.max_preview_rows;
    let rows = match q.rows {
        None => 100.min(max),
        Some(n) if n >= 1 && n <= max => n,
        Some(n) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("rows {n} is out of range: 1 to {max} (api.max_preview_rows)"),
            ));
        }
    };
    let (bucket, key) = output_key(&s, &caller, run, &node, "data.parquet").await?;
    let (path, dir) = local_copy(&s, &bucket, &key).await?;
    let rows = tokio::task::spawn_blocking(move || {
        let r = crate::outputs::preview(&path, rows as usize);
        drop(dir);
        r
    })
    .await
    .map_err(|e| ApiError::internal("preview", e))?
    .map_err(|e| ApiError::internal("preview", e))?;
    Ok(Json(
        json!({"node": node, "rows": rows, "maxCellChars": crate::outputs::MAX_PREVIEW_CELL_CHARS}),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct DataQuery {
    /// `parquet` (default: the stored file) or `csv` (converted on the fly).
    format: Option<String>,
}

/// The output's data, streamed.
#[utoipa::path(get, path = "/v1/runs/{id}/outputs/{node}/data", tag = "runs",
    params(("id" = Uuid, Path), ("node" = String, Path), DataQuery), security(("bearer" = [])),
    responses((status = 200, description = "the file"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn data(
    State(s): State<AppState>,
    caller: Caller,
    Path((run, node)): Path<(Uuid, String)>,
    Query(q): Query<DataQuery>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("parquet") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("format \"{other}\": parquet or csv"),
            ));
        }
    };
    let (bucket, key) = output_key(&s, &caller, run, &node, "data.parquet").await?;
    if !csv {
        let reader = s
            .store
            .reader(&bucket, &key)
            .await
            .map_err(|e| store_error("output", e))?;
        let body = object_body(reader);
        let headers = [
            (CONTENT_TYPE, "application/vnd.apache.parquet".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{node}.parquet\""),
            ),
        ];
        return Ok((headers, body).into_response());
    }
    let (path, dir) = local_copy(&s, &bucket, &key).await?;
    let out = tempfile::tempdir().map_err(|e| ApiError::internal("temp dir", e))?;
    let csv_path = out.path().join("data.csv");
    let target = csv_path.clone();
    tokio::task::spawn_blocking(move || {
        let r = crate::outputs::parquet_to_csv(&path, &target);
        drop(dir);
        r
    })
    .await
    .map_err(|e| ApiError::internal("csv", e))?
    .map_err(|e| ApiError::internal("csv", e))?;
    let file = tokio::fs::File::open(&csv_path)
        .await
        .map_err(|e| ApiError::internal("csv", e))?;
    // The folder lives as long as the stream that reads from it.
    let body = futures_util::stream::unfold((file, out), |(mut file, out)| async move {
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                    (file, out),
                ))
            }
            Err(e) => Some((Err(e), (file, out))),
        }
    });
    let headers = [
        (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
        (
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{node}.csv\""),
        ),
    ];
    Ok((headers, Body::from_stream(body)).into_response())
}

/// An object's bytes as a response body, chunk by chunk as the store
/// yields them (never gathered whole).
pub(super) fn object_body(reader: Box<dyn crate::store::ObjectReader>) -> Body {
    Body::from_stream(futures_util::stream::unfold(
        Some(reader),
        |reader| async move {
            let mut reader = reader?;
            match reader.next_chunk().await {
                Ok(Some(b)) => Some((Ok::<_, StoreError>(b), Some(reader))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        },
    ))
}
