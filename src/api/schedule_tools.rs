//! A schedule's tick ledger (`/v1/schedules/{id}/ticks`: every fire time
//! with its outcome and reason) and its backfills
//! (`/v1/schedules/{id}/backfills`, `/v1/backfills/{id}`, cancel).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::{Tx, begin_as};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Path, Query};
use super::page;
use super::schedules::visible_schedule;
use super::{AppState, Caller};
use crate::schedule::Overlap;
use crate::service::backfills::{self, BackfillRow, NewBackfill};
use crate::service::schedules::{self as svc, TickRow};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ticks))
        .routes(routes!(create_backfill, list_backfills))
        .routes(routes!(get_backfill))
        .routes(routes!(cancel_backfill))
}

/// The ledger's outcomes.
const OUTCOMES: [&str; 5] = [
    "fired",
    "skipped_overlap",
    "missed_late",
    "paused",
    "dst_skipped",
];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct TicksQuery {
    /// fired, skipped_overlap, missed_late, paused or dst_skipped.
    outcome: Option<String>,
    /// Entries for fire times before this instant (paging: the last
    /// entry's `scheduledFor`).
    before: Option<DateTime<Utc>>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Ticks {
    items: Vec<TickRow>,
    /// Pass as `before` for the next page; none at the end.
    next_before: Option<DateTime<Utc>>,
}

/// Every fire time of a schedule with what became of it, newest first.
#[utoipa::path(get, path = "/v1/schedules/{id}/ticks", tag = "schedules", params(("id" = Uuid, Path), TicksQuery),
    security(("bearer" = [])), responses((status = 200, body = Ticks), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn ticks(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<TicksQuery>,
) -> ApiResult<Json<Ticks>> {
    if let Some(o) = &q.outcome
        && !OUTCOMES.contains(&o.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("outcome \"{o}\" is not one of {}", OUTCOMES.join(", ")),
        ));
    }
    // One more than the page, to know whether there is a next one.
    let fetch = page::limit(q.limit, s.config.api.max_page)?;
    let limit = fetch - 1;
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_schedule(&mut tx, id).await?;
    let mut items = svc::ticks(&mut tx, id, q.before, q.outcome.as_deref(), fetch).await?;
    tx.commit().await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_before = if more {
        items.last().map(|t| t.scheduled_for)
    } else {
        None
    };
    Ok(Json(Ticks { items, next_before }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CreateBackfill {
    /// The window's first instant (inclusive).
    from: DateTime<Utc>,
    /// The window's last instant (inclusive); not in the future.
    to: DateTime<Utc>,
    /// `allow` (default: alongside the schedule's runs) or `queue_one`
    /// (waits while another scheduled run of the pipeline is active).
    overlap_policy: Option<Overlap>,
    /// Runs of the backfill at once (default 1, at most 100).
    max_concurrent: Option<i32>,
}

/// Runs a schedule over a past window (editors), each run carrying its
/// nominal time; the scheduler creates the runs as slots free up.
#[utoipa::path(post, path = "/v1/schedules/{id}/backfills", tag = "schedules", params(("id" = Uuid, Path)),
    request_body = CreateBackfill, security(("bearer" = [])),
    responses((status = 201, body = BackfillRow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_backfill(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Body(b): Body<CreateBackfill>,
) -> ApiResult<(StatusCode, Json<BackfillRow>)> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let sched = visible_schedule(&mut tx, id).await?;
    let new = NewBackfill {
        from: b.from,
        to: b.to,
        overlap: b.overlap_policy.unwrap_or(Overlap::Allow),
        max_concurrent: b.max_concurrent.unwrap_or(1),
        created_by: Some(caller.user),
    };
    let row = backfills::create(&mut tx, &sched, &new, Utc::now()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// A schedule's backfills, newest first.
#[utoipa::path(get, path = "/v1/schedules/{id}/backfills", tag = "schedules", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = Vec<BackfillRow>), (status = 404, body = ErrorBody)))]
async fn list_backfills(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<BackfillRow>>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_schedule(&mut tx, id).await?;
    let rows = backfills::list(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// A backfill with its progress.
#[utoipa::path(get, path = "/v1/backfills/{id}", tag = "schedules", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = BackfillRow), (status = 404, body = ErrorBody)))]
async fn get_backfill(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<BackfillRow>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let row = visible_backfill(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(row))
}

/// Cancels a backfill (editors) and its queued runs; running ones finish.
#[utoipa::path(post, path = "/v1/backfills/{id}/cancel", tag = "schedules", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = BackfillRow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn cancel_backfill(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<BackfillRow>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let row = visible_backfill(&mut tx, id).await?;
    if row.status != "running" {
        return Err(ApiError::conflict(
            "backfill_over",
            format!("backfill {id} is already {}", row.status),
        ));
    }
    if backfills::cancel(&mut tx, id, Utc::now()).await?.is_none() {
        return Err(ApiError::forbidden(
            "your role in this project does not allow cancelling backfills",
        ));
    }
    let row = visible_backfill(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(row))
}

/// A visible backfill or 404.
async fn visible_backfill(tx: &mut Tx, id: Uuid) -> ApiResult<BackfillRow> {
    backfills::get(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("backfill"))
}
