//! `/v1/projects/{id}/files`: upload (streamed, never whole in memory) to
//! `shared/...` of the project's bucket, list by prefix, download, delete.
//! Before a byte is stored: the caller's right to upload (row-level
//! security on `project_files`), the project's `allowedFileTypes` (by
//! extension, and by the content: a `.csv` that is a ZIP is refused) and
//! its `storageQuota`; a refused or failed upload leaves nothing behind.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::begin_as;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::page::Page;
use super::projects::visible;
use super::{AppState, Caller};
use crate::service::files::{self, FileRow};
use crate::store::{ObjectWriter, StoreError};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(upload, download, delete))
}

/// Bytes looked at to tell a file's real type.
const SNIFF: usize = 8 << 10;

/// The key a path names: under `shared/`, inside the bucket.
fn file_key(key: &str) -> ApiResult<String> {
    let bad =
        |m: String| ApiError::bad_request("invalid_path", m).with_details(json!({"key": key}));
    if !key.starts_with("shared/") || key.ends_with('/') || key.len() > 1024 {
        return Err(bad(
            "files live under shared/ and are named (at most 1024 bytes)".into(),
        ));
    }
    crate::validate::check_source_key(key).map_err(bad)?;
    if key.chars().any(char::is_control) {
        return Err(bad("file names hold no control characters".into()));
    }
    Ok(key.to_string())
}

fn extension(key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// What the first bytes say a file is, when they say anything.
fn sniffed(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some("zip")
    } else if head.starts_with(b"PAR1") {
        Some("parquet")
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if head.starts_with(b"%PDF") {
        Some("pdf")
    } else if head.starts_with(b"\x7fELF") || head.starts_with(b"MZ") {
        Some("executable")
    } else if head.contains(&0) {
        Some("binary")
    } else {
        None
    }
}

/// Refuses content that is not what its extension says.
fn check_content(ext: &str, head: &[u8]) -> ApiResult<()> {
    let found = sniffed(head);
    let ok = match ext {
        "csv" | "tsv" | "txt" | "json" | "ndjson" | "jsonl" => found.is_none(),
        "parquet" => found == Some("parquet") || head.is_empty(),
        "zip" => found == Some("zip"),
        "gz" => found == Some("gzip"),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "content_mismatch",
        format!(
            "the file's content is {} but its name says .{ext}",
            found.map_or("not a valid .parquet".to_string(), |f| format!(
                "a {f} file"
            ))
        ),
    ))
}

fn over_quota(used: u64, quota: u64, incoming: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "over_quota",
        format!(
            "the project would hold more than its storageQuota: {used} of {quota} bytes used, {incoming} more"
        ),
    )
}

/// Uploads a file (owners and editors), streamed; replaces one with the
/// same name.
#[utoipa::path(put, path = "/v1/projects/{id}/files/{*key}", tag = "files",
    params(("id" = Uuid, Path), ("key" = String, Path, description = "shared/...")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"), security(("bearer" = [])),
    responses((status = 201, body = FileRow), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    Path((project, key)): Path<(Uuid, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<FileRow>)> {
    let key = file_key(&key)?;
    let ext = extension(&key);
    let mut tx = begin_as(&s.pool, &caller).await?;
    let usage = files::usage(&mut tx, project)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    if let Some(allowed) = &usage.allowed_types
        && !allowed.contains(&ext)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "file_type_not_allowed",
            format!(
                "the project takes {} files only (allowedFileTypes)",
                allowed.join(", ")
            ),
        ));
    }
    let replaced = files::claim(&mut tx, project, &key).await?;
    let max = s.config.api.max_upload_mb.saturating_mul(1 << 20);
    let room = usage
        .quota
        .map(|q| q.saturating_sub(usage.used.saturating_sub(replaced)));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(len) = declared {
        if len > max {
            return Err(too_large(max));
        }
        if let (Some(room), Some(q)) = (room, usage.quota)
            && len > room
        {
            return Err(over_quota(usage.used, q, len));
        }
    }
    let bucket = s.bucket(project).await?;
    let mut writer = s
        .store
        .writer(&bucket, &key)
        .await
        .map_err(store_unavailable)?;
    let stored = copy(&mut writer, body, &ext, max, room, usage.used, usage.quota).await;
    let (size, hash) = match stored {
        Ok(x) => x,
        Err(e) => {
            let _ = writer.abort().await;
            return Err(e);
        }
    };
    writer.finish().await.map_err(store_unavailable)?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    files::finish(&mut tx, project, &key, size, &hash, content_type).await?;
    let row = files::get(&mut tx, project, &key)
        .await?
        .ok_or_else(|| ApiError::internal("upload", "row vanished"))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)))
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the file is over {max} bytes (api.max_upload_mb)"),
    )
}

fn store_unavailable(e: StoreError) -> ApiError {
    ApiError::unavailable("the store", e)
}

/// Streams the body into `writer`, checking type, size and quota on the
/// way; returns the size and blake3.
async fn copy(
    writer: &mut Box<dyn ObjectWriter>,
    body: Body,
    ext: &str,
    max: u64,
    room: Option<u64>,
    used: u64,
    quota: Option<u64>,
) -> ApiResult<(u64, String)> {
    let mut stream = body.into_data_stream();
    let mut hasher = blake3::Hasher::new();
    let mut head: Vec<u8> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let mut checked = false;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::bad_request("bad_body", "the upload was interrupted"))?;
        total += chunk.len() as u64;
        if total > max {
            return Err(too_large(max));
        }
        if let (Some(room), Some(q)) = (room, quota)
            && total > room
        {
            return Err(over_quota(used, q, total));
        }
        if !checked {
            head.extend_from_slice(&chunk[..chunk.len().min(SNIFF - head.len().min(SNIFF))]);
            if head.len() >= SNIFF {
                check_content(ext, &head)?;
                checked = true;
            }
        }
        tail.extend_from_slice(&chunk[chunk.len().saturating_sub(4)..]);
        let cut = tail.len().saturating_sub(4);
        tail.drain(..cut);
        hasher.update(&chunk);
        writer.write(chunk).await.map_err(store_unavailable)?;
    }
    if !checked {
        check_content(ext, &head)?;
    }
    if ext == "parquet" && (total < 8 || tail != b"PAR1") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_mismatch",
            "the file's content is not a valid .parquet (no footer)",
        ));
    }
    Ok((total, hasher.finalize().to_hex().to_string()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only keys starting with this (default `shared/`).
    prefix: Option<String>,
    limit: Option<u32>,
    /// `nextCursor` of the previous page (the last key seen).
    cursor: Option<String>,
}

/// Uploaded files by key.
#[utoipa::path(get, path = "/v1/projects/{id}/files", tag = "files", params(("id" = Uuid, Path), ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<FileRow>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<FileRow>>> {
    let limit = super::page::limit(q.limit, s.config.api.max_page)?;
    let prefix = q.prefix.unwrap_or_else(|| "shared/".into());
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, project).await?;
    let mut rows = files::list(&mut tx, project, &prefix, q.cursor.as_deref(), limit).await?;
    tx.commit().await?;
    let more = rows.len() as i64 >= limit;
    if more {
        rows.truncate((limit - 1) as usize);
    }
    let next_cursor = if more {
        rows.last().map(|r| r.key.clone())
    } else {
        None
    };
    Ok(Json(Page {
        items: rows,
        next_cursor,
    }))
}

/// Downloads an uploaded file, streamed.
#[utoipa::path(get, path = "/v1/projects/{id}/files/{*key}", tag = "files",
    params(("id" = Uuid, Path), ("key" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "the file"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn download(
    State(s): State<AppState>,
    caller: Caller,
    Path((project, key)): Path<(Uuid, String)>,
) -> ApiResult<Response> {
    let key = file_key(&key)?;
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, project).await?;
    let row = files::get(&mut tx, project, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    tx.commit().await?;
    let reader = s
        .store
        .reader(&s.bucket(project).await?, &key)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => ApiError::not_found("file"),
            e => store_unavailable(e),
        })?;
    let ct = row
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok(([(CONTENT_TYPE, ct)], super::outputs::object_body(reader)).into_response())
}

/// Deletes an uploaded file (owners).
#[utoipa::path(delete, path = "/v1/projects/{id}/files/{*key}", tag = "files",
    params(("id" = Uuid, Path), ("key" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path((project, key)): Path<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    let key = file_key(&key)?;
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, project).await?;
    if files::get(&mut tx, project, &key).await?.is_none() {
        return Err(ApiError::not_found("file"));
    }
    if !files::delete(&mut tx, project, &key).await? {
        return Err(ApiError::forbidden("only owners delete files"));
    }
    s.store
        .delete(&s.bucket(project).await?, &key)
        .await
        .or_else(|e| match e {
            StoreError::NotFound { .. } => Ok(()),
            e => Err(store_unavailable(e)),
        })?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
