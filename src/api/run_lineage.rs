//! A run's lineage as OpenLineage 2-0-2 RunEvents
//! (`GET /v1/runs/{id}/openlineage`), built from its artifacts like
//! `mudrock lineage RUN --format openlineage` builds them.

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Path;
use super::runs::run_folder;
use super::{AppState, Caller};
use crate::inspect::{Bucket, InspectError, RunRef};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openlineage))
}

/// The run's OpenLineage events: the run's START and end, and a START and
/// end per node that ran (with a `parent` facet), datasets named by
/// OpenLineage's conventions, column lineage on outputs.
#[utoipa::path(get, path = "/v1/runs/{id}/openlineage", tag = "runs", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, description = "RunEvents, in order"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn openlineage(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<Value>>> {
    let (bucket, prefix) = run_folder(&s, &caller, id).await?;
    let pipeline_id = prefix
        .strip_prefix("pipelines/")
        .and_then(|p| p.split('/').next())
        .unwrap_or_default()
        .to_string();
    let b = Bucket {
        store: s.store.clone(),
        name: bucket,
    };
    let run = RunRef {
        pipeline_id,
        run_id: id.to_string(),
    };
    match crate::inspect::openlineage::for_run(&b, &run).await {
        Ok(events) => Ok(Json(events)),
        Err(InspectError::NoRun(_) | InspectError::NoBucket(_)) => Err(ApiError::not_found(
            format!("the artifacts of run {id} (written when the run ends)"),
        )),
        Err(InspectError::Incomplete { .. }) => Err(ApiError::conflict(
            "run_incomplete",
            format!("run {id} has not finished: its lineage is written when it ends"),
        )),
        Err(InspectError::Store(e)) => Err(ApiError::unavailable("the store", e)),
        Err(e) => Err(ApiError::internal("run artifacts", e)),
    }
}
