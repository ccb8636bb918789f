//! Live progress as Server-Sent Events: `GET /v1/runs/{id}/events` and
//! `GET /v1/projects/{id}/events`. Events come from `run_events` (migration
//! 0004: run and node state changes, ids in commit order per project), read
//! as the caller under row-level security, woken by PostgreSQL's
//! LISTEN/NOTIFY (one listener per process, fanned out in memory) with a
//! poll as a safety net. `Last-Event-ID` (or `?after=`) resumes after the
//! last event seen: none is lost or repeated. A run's stream ends after its
//! final state; streams end when the server shuts down.

use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::db::begin_as;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::projects::visible;
use super::runs::visible_run;
use super::{AppState, Caller};
use crate::service::runs;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_events))
        .routes(routes!(project_events))
}

/// Events read per query.
const BATCH: i64 = 500;
/// Re-read this often even without a notification (a lost LISTEN
/// connection, a notification dropped under load).
const POLL: Duration = Duration::from_secs(5);

/// Fans the process's one LISTEN connection out to the open streams: each
/// message is the id of a project with new events.
pub type Notifier = Arc<broadcast::Sender<Uuid>>;

/// Starts the listener task; it ends when the notifier is dropped.
pub fn notifier(pool: sqlx::PgPool) -> Notifier {
    let (tx, _) = broadcast::channel(1024);
    let tx = Arc::new(tx);
    let weak: Weak<broadcast::Sender<Uuid>> = Arc::downgrade(&tx);
    tokio::spawn(async move {
        loop {
            if weak.strong_count() == 0 {
                return;
            }
            let listener = async {
                let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                l.listen("mudrock_run_events").await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut l = match listener.await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for run events; streams poll meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                let n = tokio::time::timeout(POLL, l.recv()).await;
                let Some(tx) = weak.upgrade() else { return };
                match n {
                    Ok(Ok(n)) => {
                        if let Ok(p) = n.payload().parse() {
                            let _ = tx.send(p);
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "run events listener lost; reconnecting");
                        break;
                    }
                    Err(_) => {}
                }
            }
        }
    });
    tx
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Resume after this event id (as `Last-Event-ID`, for clients that
    /// cannot set headers).
    after: Option<i64>,
}

fn resume_after(headers: &HeaderMap, q: &EventsQuery) -> ApiResult<Option<i64>> {
    let header = headers.get("last-event-id").map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_last_event_id",
                    "Last-Event-ID must be an event id this API gave out",
                )
            })
    });
    match (header.transpose()?, q.after) {
        (Some(h), _) => Ok(Some(h)),
        (None, Some(a)) if a >= 0 => Ok(Some(a)),
        (None, Some(_)) => Err(ApiError::bad_request(
            "invalid_query",
            "after must not be negative",
        )),
        (None, None) => Ok(None),
    }
}

#[derive(Clone, Copy)]
enum Scope {
    Run { run: Uuid, project: Uuid },
    Project(Uuid),
}

impl Scope {
    fn project(self) -> Uuid {
        match self {
            Scope::Run { project, .. } | Scope::Project(project) => project,
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    kind: String,
    data: serde_json::Value,
}

type Stream = Sse<axum::response::sse::KeepAliveStream<ReceiverStream<Result<Event, Infallible>>>>;

/// A run's events: its state and its nodes' states, from the start (or
/// after `Last-Event-ID`) until the run is over.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs", params(("id" = Uuid, Path), EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "resume after this event")),
    security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of `run` and `node` events"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn run_events(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Stream> {
    let after = resume_after(&headers, &q)?;
    let mut tx = begin_as(&s.pool, &caller).await?;
    let run = visible_run(&mut tx, id).await?;
    tx.commit().await?;
    let scope = Scope::Run {
        run: id,
        project: run.project_id,
    };
    Ok(stream(s, caller, scope, after.unwrap_or(0)))
}

/// A project's events, for every run: from now (or after `Last-Event-ID`).
#[utoipa::path(get, path = "/v1/projects/{id}/events", tag = "runs", params(("id" = Uuid, Path), EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "resume after this event")),
    security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of `run` and `node` events"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn project_events(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Stream> {
    let after = resume_after(&headers, &q)?;
    let mut tx = begin_as(&s.pool, &caller).await?;
    visible(&mut tx, id).await?;
    let after = match after {
        Some(a) => a,
        None => {
            sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM run_events WHERE project_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
        }
    };
    tx.commit().await?;
    Ok(stream(s, caller, Scope::Project(id), after))
}

fn stream(s: AppState, caller: Caller, scope: Scope, mut last: i64) -> Stream {
    let (tx, rx) = mpsc::channel(64);
    let mut notes = s.events.subscribe();
    tokio::spawn(async move {
        let mut settled = false;
        loop {
            let rows = match fetch(&s, &caller, scope, last).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(code = e.code, error = %e.message, "event stream read failed; closing it");
                    return;
                }
            };
            let full = rows.len() as i64 == BATCH;
            let mut over = false;
            for r in rows {
                last = r.id;
                over |= r.kind == "run"
                    && matches!(
                        r.data["status"].as_str(),
                        Some("succeeded" | "failed" | "cancelled")
                    );
                let ev = Event::default()
                    .id(r.id.to_string())
                    .event(r.kind)
                    .json_data(&r.data)
                    .unwrap_or_default();
                if tx.send(Ok(ev)).await.is_err() {
                    return; // the client went away
                }
            }
            if let Scope::Run { run, .. } = scope
                && !full
            {
                // The final event commits with the final status: once the
                // status is seen final, one more read has that event.
                if over || settled {
                    return;
                }
                if run_is_over(&s, &caller, run).await {
                    settled = true;
                    continue;
                }
            }
            if full {
                continue;
            }
            // Wait for news of this project, the poll, or shutdown.
            let wait = async {
                loop {
                    match notes.recv().await {
                        Ok(p) if p == scope.project() => return,
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = s.stop.cancelled() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default())
}

async fn fetch(
    s: &AppState,
    caller: &Caller,
    scope: Scope,
    after: i64,
) -> Result<Vec<Row>, ApiError> {
    let mut tx = begin_as(&s.pool, caller).await?;
    let (project, run) = match scope {
        Scope::Run { run, project } => (project, Some(run)),
        Scope::Project(p) => (p, None),
    };
    let rows = sqlx::query_as(
        "SELECT id, kind, data FROM run_events
         WHERE project_id = $1 AND ($2::uuid IS NULL OR run_id = $2) AND id > $3
         ORDER BY id LIMIT $4",
    )
    .bind(project)
    .bind(run)
    .bind(after)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

async fn run_is_over(s: &AppState, caller: &Caller, run: Uuid) -> bool {
    let Ok(mut tx) = begin_as(&s.pool, caller).await else {
        return false;
    };
    let over = matches!(runs::get_run(&mut tx, run).await, Ok(Some(r)) if r.status.is_final());
    let _ = tx.commit().await;
    over
}
