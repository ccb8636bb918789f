//! `/healthz` (the process answers), `/readyz` (the database and the store
//! answer) and the docs page over `/openapi.json`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The database and the store answer.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready"), (status = 503, description = "a dependency does not answer")))]
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let db = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&s.pool)
        .await
        .is_ok();
    let probe = s.config.store.bucket(Some("readyz-probe"));
    let store = match s.store.head(&probe, "none").await {
        Ok(_) => true,
        Err(e) => !e.is_retryable(),
    };
    let status = if db && store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({"database": if db {"ok"} else {"unavailable"}, "store": if store {"ok"} else {"unavailable"}}),
        ),
    )
}

/// A page that lists the API from `/openapi.json` (no assets from
/// elsewhere: the machine may have no internet).
pub(super) async fn docs_page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
