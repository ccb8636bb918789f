//! Auditing the API: every mutating call (POST, PUT, PATCH, DELETE) and
//! every data access (outputs, run artifacts, lineage, file downloads,
//! pipeline exports) leaves a row in `audit_log` ([`crate::service::audit`]).
//!
//! A middleware puts the call's context in a task-local; the caller's
//! transaction ([`super::db::Tx`]) appends the row when it commits, so the
//! row and the action commit together. A call that commits nothing (refused
//! by row-level security, invalid, failed) is logged after its response, in
//! a transaction of its own, with the outcome its status says.

use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sqlx::PgConnection;
use uuid::Uuid;

use super::AppState;
use crate::service::audit::{self, Entry, Outcome};

/// One audited call in progress.
#[derive(Debug, Clone)]
struct Call {
    user: Option<Uuid>,
    action: String,
    target: String,
    request_id: Option<String>,
    /// Set by a handler that made the project (its id is not in the path).
    project: Option<Uuid>,
    recorded: bool,
}

tokio::task_local! {
    static CALL: Arc<Mutex<Call>>;
}

/// Whether a call is audited: anything that may change state, and reads of
/// data (not of listings and statuses).
fn audited(method: &Method, template: &str) -> bool {
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    template.contains("/outputs/")
        || template.ends_with("/artifacts")
        || template.ends_with("/metadata.json")
        || template.ends_with("/lineage.json")
        || template.ends_with("/openlineage")
        || template.ends_with("/export")
        || template == "/v1/projects/{id}/files/{*key}"
}

/// The middleware (a route layer: the route template is known).
pub async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(template) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        return next.run(req).await;
    };
    if !audited(req.method(), &template) {
        return next.run(req).await;
    }
    let user = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| s.auth.verify(t.trim()).ok())
        .map(|c| c.user);
    let call = Arc::new(Mutex::new(Call {
        user,
        action: format!("{} {template}", req.method()),
        target: req.uri().path().to_string(),
        request_id: req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        project: None,
        recorded: false,
    }));
    let res = CALL.scope(call.clone(), next.run(req)).await;
    let c = call.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !c.recorded {
        let status = res.status().as_u16();
        if let Err(e) = record_alone(&s, &c, status).await {
            tracing::error!(action = %c.action, target = %c.target, error = %e, "audit row not written");
        }
    }
    res
}

/// A handler that created a project says so (its id is in no path).
pub fn note_project(id: Uuid) {
    let _ = CALL.try_with(|c| c.lock().unwrap_or_else(|e| e.into_inner()).project = Some(id));
}

/// The project a call is about: noted by the handler, else from the path
/// (`/v1/{kind}/{id}/...`), looked up without row-level security.
async fn project_of(conn: &mut PgConnection, c: &Call) -> Result<Option<Uuid>, sqlx::Error> {
    if c.project.is_some() {
        return Ok(c.project);
    }
    let mut parts = c.target.trim_start_matches('/').split('/');
    let (Some("v1"), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    let Ok(id) = id.parse::<Uuid>() else {
        return Ok(None);
    };
    sqlx::query_scalar("SELECT mudrock_project_of($1, $2)")
        .bind(kind)
        .bind(id)
        .fetch_one(&mut *conn)
        .await
}

/// Called by the caller's transaction as it commits: appends the call's row
/// (outcome ok) in that transaction. Nothing when the call is not audited
/// or already recorded.
pub(super) async fn record_in(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let Ok(call) = CALL.try_with(|c| c.clone()) else {
        return Ok(());
    };
    let c = call.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if c.recorded {
        return Ok(());
    }
    let project = project_of(conn, &c).await?;
    let role: Option<String> = match project {
        Some(p) => {
            sqlx::query_scalar("SELECT project_role_of($1)::text")
                .bind(p)
                .fetch_one(&mut *conn)
                .await?
        }
        None => None,
    };
    let e = entry(&c, project, role, Outcome::Ok, None);
    as_service(conn).await?;
    audit::append(conn, &e, chrono::Utc::now())
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    call.lock().unwrap_or_else(|e| e.into_inner()).recorded = true;
    Ok(())
}

/// A call that committed nothing, in a transaction of its own.
async fn record_alone(s: &AppState, c: &Call, status: u16) -> Result<(), sqlx::Error> {
    let mut tx = s.pool.begin().await?;
    as_service(&mut tx).await?;
    let project = project_of(&mut tx, c).await?;
    let role: Option<String> =
        match (project, c.user) {
            (Some(p), Some(u)) => sqlx::query_scalar(
                "SELECT role::text FROM project_permissions WHERE project_id = $1 AND user_id = $2",
            )
            .bind(p)
            .bind(u)
            .fetch_optional(&mut *tx)
            .await?,
            _ => None,
        };
    let e = entry(c, project, role, Outcome::of_status(status), Some(status));
    audit::append(&mut tx, &e, chrono::Utc::now())
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    tx.commit().await
}

/// Audit rows are appended as `service_role` only (migration 0012): the
/// caller's role may not write the trail. Local to the transaction; in the
/// caller's own transaction it comes last, after the caller's work.
async fn as_service(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('role', 'service_role', true)")
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

fn entry(
    c: &Call,
    project: Option<Uuid>,
    role: Option<String>,
    outcome: Outcome,
    status: Option<u16>,
) -> Entry {
    Entry {
        project,
        user: c.user,
        role,
        action: c.action.clone(),
        target: c.target.clone(),
        request_id: c.request_id.clone(),
        outcome,
        status,
    }
}
