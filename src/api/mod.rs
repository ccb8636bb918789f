//! The HTTP API (`/v1`, JSON) the platform drives mudrock with: projects,
//! permissions, pipelines, runs and schedules, plus health and the OpenAPI
//! document.
//!
//! [`app`] builds the router from an [`AppState`] (tests drive it
//! in-process); [`serve`] puts it on a socket with graceful shutdown.
//! Every request that touches data runs in one transaction as the caller
//! (role `authenticated`, claims in `request.jwt.claims`), so PostgreSQL's
//! row-level security is the one place that decides who may do what.
//! Handlers are thin: the SQL lives in `service`, shared with the CLI.

pub mod audit;
mod audit_trail;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
mod events;
pub mod extract;
mod files;
mod health;
pub mod limit;
pub mod metrics;
mod outputs;
pub mod page;
mod permissions;
mod pipeline_tools;
mod pipelines;
mod projects;
mod run_lineage;
mod run_pins;
mod runs;
mod schedule_tools;
mod schedules;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use sqlx::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::store::{ObjectStore, StoreConfig};
pub use auth::{Authenticator, Caller};
pub use error::{ApiError, ApiResult};

/// What the API reads of the configuration: its own section, the store's
/// bucket naming and the document limits pipelines are validated with.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    pub api: config::ApiConfig,
    pub store: StoreConfig,
    pub limits: crate::limits::DocLimits,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: Arc<dyn ObjectStore>,
    pub config: Arc<ApiSettings>,
    pub auth: Arc<Authenticator>,
    /// New run events, by project (one LISTEN per process).
    pub events: events::Notifier,
    /// Cancelled at shutdown: event streams end so the server can drain.
    pub stop: tokio_util::sync::CancellationToken,
    pub limiter: Arc<limit::RateLimiter>,
}

impl AppState {
    pub fn new(
        pool: PgPool,
        store: Arc<dyn ObjectStore>,
        settings: impl Into<ApiSettings>,
    ) -> Result<Self, String> {
        let config: ApiSettings = settings.into();
        let auth = Authenticator::from_config(&config.api.jwt)?;
        let limiter = Arc::new(limit::RateLimiter::new(config.api.rate_limit_per_minute));
        metrics::handle();
        Ok(AppState {
            events: events::notifier(pool.clone()),
            pool,
            store,
            config: Arc::new(config),
            auth: Arc::new(auth),
            stop: tokio_util::sync::CancellationToken::new(),
            limiter,
        })
    }

    /// The bucket of a project (its own, for an imported one).
    pub async fn bucket(&self, project: uuid::Uuid) -> Result<String, error::ApiError> {
        Ok(crate::service::projects::bucket_of(&self.pool, &self.config.store, project).await?)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "mudrock API", description = "Projects, pipelines and runs of MudRock's execution side. \
        Every call but the health checks needs `Authorization: Bearer <JWT>` (Supabase claims); \
        row-level security in PostgreSQL decides what the caller may see and do."),
    modifiers(&BearerAuth),
    tags((name = "projects"), (name = "permissions"), (name = "pipelines"), (name = "runs"), (name = "schedules"), (name = "files"), (name = "health"))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(projects::routes())
        .merge(audit_trail::routes())
        .merge(permissions::routes())
        .merge(pipelines::routes())
        .merge(pipeline_tools::routes())
        .merge(runs::routes())
        .merge(run_lineage::routes())
        .merge(run_pins::routes())
        .merge(schedules::routes())
        .merge(schedule_tools::routes())
        .merge(outputs::routes())
        .merge(files::routes())
        .merge(health::routes())
}

/// The OpenAPI document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    doc.merge(events::routes().split_for_parts().1);
    doc
}

/// The API's router.
pub fn app(state: AppState) -> Router {
    let (router, mut doc) = routes().split_for_parts();
    // Event streams live as long as their runs: no request timeout.
    let (streams, events_doc) = events::routes().split_for_parts();
    doc.merge(events_doc);
    let doc = Arc::new(doc);
    let request_id = HeaderName::from_static("x-request-id");
    let api = &state.config.api;
    let timeout = Duration::from_secs(api.request_timeout_secs.max(1));
    let body = (api.max_body_kb as usize).saturating_mul(1024);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/docs", axum::routing::get(health::docs_page))
        .route("/metrics", axum::routing::get(metrics::metrics))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .merge(streams)
        // After routing, so the route template is known.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), audit::track))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
        .layer(DefaultBodyLimit::max(body))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Serves `app(state)` on `listener` until `shutdown` completes, then
/// stops accepting and drains the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "api listening");
    let stop = state.stop.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Open event streams end, so draining finishes.
            stop.cancel();
        })
        .await
}
