//! The audit trail (`audit_log`, migration 0008): appending a row to its
//! project's hash chain, reading a project's trail, and verifying chains.
//!
//! Each row's `hash` is blake3 over its fields and the previous row's hash
//! ([`row_hash`]), so editing, removing or inserting a row anywhere breaks
//! the chain from there on; [`verify`] finds the first such row. Appends go
//! through `mudrock_audit_append`, which holds the project's lock to the end
//! of the transaction and refuses a row that does not continue the chain.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::db::DbError;

/// What happened to an audited call; the PostgreSQL enum `audit_outcome`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "audit_outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// Done (committed with the action, in its transaction).
    Ok,
    /// Not allowed, or not there for this caller (401, 403, 404).
    Refused,
    /// Refused as invalid (other 4xx).
    Invalid,
    /// Failed on mudrock's or a dependency's side (5xx).
    Failed,
}

impl Outcome {
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=399 => Outcome::Ok,
            401 | 403 | 404 => Outcome::Refused,
            400..=499 => Outcome::Invalid,
            _ => Outcome::Failed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Invalid => "invalid",
            Outcome::Failed => "failed",
        }
    }
}

/// One audited call, before it is chained.
#[derive(Debug, Clone)]
pub struct Entry {
    pub project: Option<Uuid>,
    pub user: Option<Uuid>,
    /// The caller's role in the project (owner, editor, viewer), if any.
    pub role: Option<String>,
    /// Method and route template: `POST /v1/pipelines/{id}/runs`.
    pub action: String,
    /// The path as called: `/v1/pipelines/0191…/runs`.
    pub target: String,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    /// The response's status; None when written in the action's own
    /// transaction, before there is a response.
    pub status: Option<u16>,
}

/// A row of the trail, as owners read it and verify checks it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    pub project_id: Option<Uuid>,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub user_id: Option<Uuid>,
    pub role: Option<String>,
    pub action: String,
    pub target: String,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    pub status: Option<i16>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a row: blake3 over its fields, one per line, and the
/// previous row's hash.
pub fn row_hash(r: &AuditRow) -> String {
    let opt = |u: &Option<String>| u.clone().unwrap_or_default();
    let text = [
        r.project_id.map(|p| p.to_string()).unwrap_or_default(),
        r.seq.to_string(),
        r.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        r.user_id.map(|u| u.to_string()).unwrap_or_default(),
        opt(&r.role),
        r.action.clone(),
        r.target.clone(),
        opt(&r.request_id),
        r.outcome.name().to_string(),
        r.status.map(|s| s.to_string()).unwrap_or_default(),
        r.prev_hash.clone(),
    ]
    .map(|f| f.replace('\\', "\\\\").replace('\n', "\\n"))
    .join("\n");
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// The most characters kept of a target or request id.
const MAX_TARGET: usize = 2000;

/// Appends `e` to its project's chain in `conn`'s transaction (the
/// action's own, so both commit or neither). The caller's role needs
/// only EXECUTE on the two functions.
pub async fn append(conn: &mut PgConnection, e: &Entry, now: DateTime<Utc>) -> Result<(), DbError> {
    let (seq, prev): (i64, String) = sqlx::query_as("SELECT seq, hash FROM mudrock_audit_head($1)")
        .bind(e.project)
        .fetch_one(&mut *conn)
        .await?;
    // Microseconds: what timestamptz keeps, so the hash reads back equal.
    let at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let mut row = AuditRow {
        project_id: e.project,
        seq: seq + 1,
        at,
        user_id: e.user,
        role: e.role.clone(),
        action: e.action.chars().take(200).collect(),
        target: e.target.chars().take(MAX_TARGET).collect(),
        request_id: e.request_id.as_ref().map(|r| r.chars().take(200).collect()),
        outcome: e.outcome,
        status: e.status.map(|s| s.clamp(100, 599) as i16),
        prev_hash: prev,
        hash: String::new(),
    };
    row.hash = row_hash(&row);
    sqlx::query("SELECT mudrock_audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(row.project_id)
        .bind(row.seq)
        .bind(row.at)
        .bind(row.user_id)
        .bind(&row.role)
        .bind(&row.action)
        .bind(&row.target)
        .bind(&row.request_id)
        .bind(row.outcome)
        .bind(row.status)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Which rows of a trail to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub action: Option<String>,
    pub user: Option<Uuid>,
    pub outcome: Option<Outcome>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Rows older than this `seq` (the cursor).
    pub before: Option<i64>,
}

/// A project's trail, newest first, as the connection's role may see it
/// (row-level security: owners only).
pub async fn page(
    conn: &mut PgConnection,
    project: Uuid,
    f: &Filter,
    limit: i64,
) -> Result<Vec<AuditRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT project_id, seq, at, user_id, role, action, target, request_id, outcome, status,
                prev_hash, hash
         FROM audit_log
         WHERE coalesce(project_id, '00000000-0000-0000-0000-000000000000'::uuid) = $1
           AND ($2::text IS NULL OR action = $2)
           AND ($3::uuid IS NULL OR user_id = $3)
           AND ($4::audit_outcome IS NULL OR outcome = $4)
           AND ($5::timestamptz IS NULL OR at >= $5)
           AND ($6::timestamptz IS NULL OR at < $6)
           AND ($7::bigint IS NULL OR seq < $7)
         ORDER BY seq DESC LIMIT $8",
    )
    .bind(project)
    .bind(&f.action)
    .bind(f.user)
    .bind(f.outcome)
    .bind(f.since)
    .bind(f.until)
    .bind(f.before)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Break {
    pub project_id: Option<Uuid>,
    pub seq: i64,
    pub problem: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub chains: usize,
    pub rows: u64,
    pub breaks: Vec<Break>,
}

/// Recomputes every chain (or `project`'s), oldest row first, and reports
/// the first break of each: a gap in `seq` (a row removed), a `prev_hash`
/// that is not the previous row's hash (a row removed or inserted), or a
/// hash that does not match the row (a row edited). Needs a role that reads
/// every row (the service's pool).
pub async fn verify(pool: &PgPool, project: Option<Uuid>) -> Result<Verified, DbError> {
    use futures_util::TryStreamExt;
    let mut rows = sqlx::query_as::<_, AuditRow>(
        "SELECT project_id, seq, at, user_id, role, action, target, request_id, outcome, status,
                prev_hash, hash
         FROM audit_log WHERE $1::uuid IS NULL OR project_id = $1
         ORDER BY coalesce(project_id, '00000000-0000-0000-0000-000000000000'::uuid), seq",
    )
    .bind(project)
    .fetch(pool);
    let mut out = Verified::default();
    // (project, expected seq, expected prev hash, broken already)
    let mut cur: Option<(Option<Uuid>, i64, String, bool)> = None;
    while let Some(r) = rows.try_next().await? {
        out.rows += 1;
        if cur.as_ref().is_none_or(|c| c.0 != r.project_id) {
            out.chains += 1;
            cur = Some((r.project_id, 1, "0".repeat(64), false));
        }
        let c = cur.as_mut().expect("set above");
        let problem = if c.3 {
            None
        } else if r.seq != c.1 {
            Some(format!(
                "expected row {} here, found row {}: a row is missing",
                c.1, r.seq
            ))
        } else if r.prev_hash != c.2 {
            Some("prev_hash is not the previous row's hash: a row was removed or inserted".into())
        } else if row_hash(&r) != r.hash {
            Some("the row does not match its hash: it was edited".into())
        } else {
            None
        };
        if let Some(problem) = problem {
            out.breaks.push(Break {
                project_id: r.project_id,
                seq: r.seq,
                problem,
            });
            c.3 = true;
        }
        c.1 = r.seq + 1;
        c.2 = r.hash.clone();
    }
    Ok(out)
}
