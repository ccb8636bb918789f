//! A project's audit trail for its owners: `GET /v1/projects/{id}/audit`,
//! newest first, filtered by action, user, outcome and time, paged by an
//! opaque cursor. Row-level security lets only owners read it; a member who
//! is not an owner is told so (403), anyone else finds no project (404).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::begin_as;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::page::{self, Page};
use super::projects::visible;
use super::{AppState, Caller};
use crate::service::audit::{self, AuditRow, Filter, Outcome};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct AuditQuery {
    /// Method and route template, e.g. `POST /v1/pipelines/{id}/runs`.
    action: Option<String>,
    user: Option<Uuid>,
    /// ok, refused, invalid or failed.
    #[param(value_type = Option<String>)]
    outcome: Option<Outcome>,
    /// From this time (RFC 3339), inclusive.
    since: Option<DateTime<Utc>>,
    /// Before this time, exclusive.
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Reads an audit cursor: `a{seq}`, seq ≥ 1.
fn cursor(c: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(c) = c else { return Ok(None) };
    c.strip_prefix('a')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 1)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "the cursor is not one this API gave out")
        })
}

/// The project's audit trail (owners only), newest first.
#[utoipa::path(get, path = "/v1/projects/{id}/audit", tag = "projects",
    params(("id" = Uuid, Path), AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<AuditRow>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditRow>>> {
    let limit = page::limit(q.limit, s.config.api.max_page)?;
    let before = cursor(q.cursor.as_deref())?;
    if let (Some(a), Some(b)) = (q.since, q.until)
        && a >= b
    {
        return Err(ApiError::bad_request(
            "invalid_range",
            "since must be before until",
        ));
    }
    let mut tx = begin_as(&s.pool, &caller).await?;
    let project = visible(&mut tx, id).await?;
    if project.role.as_deref() != Some("owner") {
        return Err(ApiError::forbidden(
            "only the project's owners read its audit trail",
        ));
    }
    let f = Filter {
        action: q.action,
        user: q.user,
        outcome: q.outcome,
        since: q.since,
        until: q.until,
        before,
    };
    let mut rows = audit::page(&mut tx, id, &f, limit).await?;
    tx.commit().await?;
    let more = rows.len() as i64 >= limit;
    if more {
        rows.truncate((limit - 1) as usize);
    }
    let next_cursor = if more {
        rows.last().map(|r| format!("a{}", r.seq))
    } else {
        None
    };
    Ok(Json(Page {
        items: rows,
        next_cursor,
    }))
}
