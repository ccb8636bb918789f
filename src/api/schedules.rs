//! Schedules: `/v1/pipelines/{id}/schedules` (create, list) and
//! `/v1/schedules/{id}` (get, update, delete, pause, resume, trigger now,
//! next fire times). Editors manage, viewers read; row-level security
//! decides. Ledger and backfills are in `schedule_tools`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::{Tx, begin_as};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Path, Query};
use super::pipelines::visible_pipeline;
use super::{AppState, Caller};
use crate::schedule::{Catchup, DstFold, DstGap, Overlap, Spec, SpecInput};
use crate::service::queue::{self, TriggerKind, TriggerRequest};
use crate::service::schedules::{
    self as svc, FireTime, NewSchedule, ScheduleError, SchedulePatch, ScheduleRow,
};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(trigger_now))
        .routes(routes!(next))
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::Invalid(problems) => ApiError::unprocessable(
                "invalid_schedule",
                format!(
                    "the schedule has {} problem(s): {}",
                    problems.len(),
                    problems
                        .iter()
                        .map(|p| format!("{}: {}", p.field, p.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
            .with_details(json!({ "problems": problems })),
            ScheduleError::Db(d) => d.into(),
        }
    }
}

/// A visible schedule or 404.
pub(super) async fn visible_schedule(tx: &mut Tx, id: Uuid) -> ApiResult<ScheduleRow> {
    svc::get(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("schedule"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CreateSchedule {
    /// 5 fields (minute first) or 6 (seconds first), or `@hourly` etc.
    cron: String,
    /// An IANA zone; default UTC.
    timezone: Option<String>,
    enabled: Option<bool>,
    overlap_policy: Option<Overlap>,
    catchup: Option<Catchup>,
    start_at: Option<DateTime<Utc>>,
    end_at: Option<DateTime<Utc>>,
    jitter_seconds: Option<u32>,
    dst_gap: Option<DstGap>,
    dst_fold: Option<DstFold>,
    max_lateness_seconds: Option<i32>,
}

/// `Some(None)` for an explicit `null`: clears the field.
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct UpdateSchedule {
    cron: Option<String>,
    timezone: Option<String>,
    enabled: Option<bool>,
    overlap_policy: Option<Overlap>,
    catchup: Option<Catchup>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    start_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    end_at: Option<Option<DateTime<Utc>>>,
    jitter_seconds: Option<u32>,
    dst_gap: Option<DstGap>,
    dst_fold: Option<DstFold>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    max_lateness_seconds: Option<Option<i32>>,
}

/// Creates a schedule on a pipeline (editors); it fires at the fire times
/// after now.
#[utoipa::path(post, path = "/v1/pipelines/{id}/schedules", tag = "schedules", params(("id" = Uuid, Path)),
    request_body = CreateSchedule, security(("bearer" = [])),
    responses((status = 201, body = ScheduleRow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path(pipeline): Path<Uuid>,
    Body(b): Body<CreateSchedule>,
) -> ApiResult<(StatusCode, Json<ScheduleRow>)> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_pipeline(&mut tx, pipeline).await?;
    let new = NewSchedule {
        pipeline_id: pipeline,
        spec: SpecInput {
            cron: b.cron,
            timezone: b.timezone.unwrap_or_else(|| "UTC".into()),
            start_at: b.start_at,
            end_at: b.end_at,
            jitter_secs: b.jitter_seconds.unwrap_or(0),
            dst_gap: b.dst_gap.unwrap_or_default(),
            dst_fold: b.dst_fold.unwrap_or_default(),
        },
        enabled: b.enabled.unwrap_or(true),
        overlap: b.overlap_policy.unwrap_or_default(),
        catchup: b.catchup.unwrap_or_default(),
        max_lateness_secs: b.max_lateness_seconds,
        created_by: Some(caller.user),
    };
    let id = svc::create(&mut tx, &new, Utc::now()).await?;
    let row = visible_schedule(&mut tx, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// A pipeline's schedules.
#[utoipa::path(get, path = "/v1/pipelines/{id}/schedules", tag = "schedules", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = Vec<ScheduleRow>), (status = 404, body = ErrorBody)))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(pipeline): Path<Uuid>,
) -> ApiResult<Json<Vec<ScheduleRow>>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_pipeline(&mut tx, pipeline).await?;
    let rows = svc::list(&mut tx, pipeline).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// A schedule.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = ScheduleRow), (status = 404, body = ErrorBody)))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ScheduleRow>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let row = visible_schedule(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(row))
}

async fn patch(
    s: &AppState,
    caller: &Caller,
    id: Uuid,
    p: SchedulePatch,
) -> ApiResult<Json<ScheduleRow>> {
    let mut tx = begin_as(&s.pool, caller).await?;
    let current = visible_schedule(&mut tx, id).await?;
    let row = svc::update(&mut tx, &current, &p, Utc::now())
        .await?
        .ok_or_else(|| {
            ApiError::forbidden("your role in this project does not allow changing schedules")
        })?;
    tx.commit().await?;
    Ok(Json(row))
}

/// Changes a schedule (editors). A changed cron, zone or window counts
/// from now: its past fire times are not run.
#[utoipa::path(patch, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = Uuid, Path)),
    request_body = UpdateSchedule, security(("bearer" = [])),
    responses((status = 200, body = ScheduleRow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Body(b): Body<UpdateSchedule>,
) -> ApiResult<Json<ScheduleRow>> {
    let p = SchedulePatch {
        cron: b.cron,
        timezone: b.timezone,
        start_at: b.start_at,
        end_at: b.end_at,
        jitter_secs: b.jitter_seconds,
        dst_gap: b.dst_gap,
        dst_fold: b.dst_fold,
        overlap: b.overlap_policy,
        catchup: b.catchup,
        max_lateness_secs: b.max_lateness_seconds,
        enabled: b.enabled,
        pause_note: None,
    };
    patch(&s, &caller, id, p).await
}

/// Deletes a schedule (editors); its runs stay.
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible_schedule(&mut tx, id).await?;
    if !svc::delete(&mut tx, id).await? {
        return Err(ApiError::forbidden(
            "your role in this project does not allow deleting schedules",
        ));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseBody {
    /// Why (shown with the schedule and in the ledger's `paused` entries).
    note: Option<String>,
}

/// Pauses a schedule (editors): its fire times are recorded as `paused`.
#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", params(("id" = Uuid, Path)),
    request_body = PauseBody, security(("bearer" = [])),
    responses((status = 200, body = ScheduleRow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn pause(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Body(b): Body<PauseBody>,
) -> ApiResult<Json<ScheduleRow>> {
    let p = SchedulePatch {
        enabled: Some(false),
        pause_note: Some(b.note.filter(|n| !n.trim().is_empty())),
        ..Default::default()
    };
    patch(&s, &caller, id, p).await
}

/// Resumes a paused schedule (editors): it fires from its next fire time.
#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleRow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn resume(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ScheduleRow>> {
    let p = SchedulePatch {
        enabled: Some(true),
        pause_note: Some(None),
        ..Default::default()
    };
    patch(&s, &caller, id, p).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TriggeredNow {
    run_id: Uuid,
}

/// Runs the schedule's pipeline now (editors), outside its fire times:
/// trigger `schedule` with the schedule's id, no nominal time.
#[utoipa::path(post, path = "/v1/schedules/{id}/trigger", tag = "schedules", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 202, body = TriggeredNow), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn trigger_now(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<TriggeredNow>)> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let sched = visible_schedule(&mut tx, id).await?;
    let mut req = TriggerRequest::new(sched.pipeline_id, TriggerKind::Schedule);
    req.schedule_id = Some(id);
    let t = queue::trigger(&mut tx, &req).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TriggeredNow { run_id: t.run_id }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct NextQuery {
    /// How many (default 10, at most 100).
    count: Option<usize>,
}

/// The next fire times, in the schedule's zone and in UTC.
#[utoipa::path(get, path = "/v1/schedules/{id}/next", tag = "schedules", params(("id" = Uuid, Path), NextQuery),
    security(("bearer" = [])), responses((status = 200, body = Vec<FireTime>), (status = 404, body = ErrorBody)))]
async fn next(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<NextQuery>,
) -> ApiResult<Json<Vec<FireTime>>> {
    let mut tx = begin_as(&s.pool, &caller).await?;
    let row = visible_schedule(&mut tx, id).await?;
    tx.commit().await?;
    let n = q.count.unwrap_or(10);
    if n == 0 || n > svc::MAX_PREVIEW {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("count must be between 1 and {}", svc::MAX_PREVIEW),
        ));
    }
    let spec = Spec::parse(&row.spec_input()).map_err(|p| ScheduleError::Invalid(p))?;
    Ok(Json(svc::next_fire_times(
        &spec,
        row.cursor_at.max(Utc::now()),
        n,
    )))
}
