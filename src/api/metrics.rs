//! `/metrics` in Prometheus' text format: HTTP requests by route and
//! status with latency histograms (recorded by a middleware), node
//! durations, cache hits and busy worker slots (recorded by the worker in
//! the same process), and, read from the database at scrape time, runs by
//! status and the queue's depth. With `api.metrics_token` set, a scrape
//! must send it as a bearer token.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::AppState;
use super::error::ApiError;

/// The process's recorder, installed once (several routers in one test
/// process share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                120.0,
            ])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was installed already; /metrics shows only what it records"
            );
        }
        handle
    })
}

/// Counts every request by route template (never the raw path: ids would
/// make a series each) and status, with its latency.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("mudrock_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("mudrock_http_request_duration_seconds", "route" => route, "method" => method)
        .record(start.elapsed().as_secs_f64());
    res
}

pub(super) async fn metrics(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(want) = &s.config.api.metrics_token {
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(want.as_str()) {
            return Err(ApiError::unauthorized(
                "metrics need Authorization: Bearer <api.metrics_token>",
            ));
        }
    }
    let runs: Vec<(String, i64)> =
        sqlx::query_as("SELECT status::text, count(*) FROM pipeline_runs GROUP BY status")
            .fetch_all(&s.pool)
            .await?;
    for status in ["queued", "running", "succeeded", "failed", "cancelled"] {
        let n = runs
            .iter()
            .find(|(st, _)| st == status)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("mudrock_runs", "status" => status).set(n as f64);
    }
    let depth: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'mudrock.runs' AND status = 'Pending'",
    )
    .fetch_one(&s.pool)
    .await?;
    metrics::gauge!("mudrock_queue_depth").set(depth as f64);
    Ok((
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        handle().render(),
    )
        .into_response())
}
