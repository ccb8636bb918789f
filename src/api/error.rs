//! The API's one error type: `{"error": {"code", "message", "details"}}`
//! with a status code. Database, trigger and store errors map here; SQL,
//! paths and internals never reach a response (a 500 says only that
//! something failed and is logged with the request's id).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::service::db::DbError;
use crate::service::queue::TriggerError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds, sent as `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

/// The error body, for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `invalid_pipeline`, ...
    pub code: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// Also what a caller gets for what exists but is not theirs to see.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// A failure that is not the caller's: logged, answered without detail.
    pub fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(what, error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed on the server; it has been logged",
        )
    }

    pub fn unavailable(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::warn!(what, error = %err, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what} is unavailable; try again"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}

/// Database errors by what the database said, never by its text: row-level
/// security refusals are 403, missing rows 404, named constraints 409/422.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if matches!(e, sqlx::Error::RowNotFound) {
            return ApiError::not_found("resource");
        }
        if matches!(
            e,
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
        ) {
            return ApiError::unavailable("the database", e);
        }
        let Some(db) = e.as_database_error() else {
            return ApiError::internal("database", e);
        };
        let constraint = db.constraint().map(str::to_string);
        match db.code().as_deref() {
            // insufficient_privilege: RLS refused a row, or no grant.
            Some("42501") => ApiError::forbidden("your role in this project does not allow this"),
            Some("23505") => ApiError::conflict("conflict", "it exists already")
                .with_details(json!({"constraint": constraint})),
            Some("23514") if constraint.as_deref() == Some("project_permissions_keep_an_owner") => {
                ApiError::conflict("last_owner", "a project must keep at least one owner")
            }
            Some("23514") | Some("23502") | Some("22P02") | Some("22023") => {
                ApiError::unprocessable("constraint", "the value breaks a rule of the data")
                    .with_details(json!({"constraint": constraint}))
            }
            Some("23503") => ApiError::conflict(
                "referenced",
                "it refers to, or is referred to by, another row",
            )
            .with_details(json!({"constraint": constraint})),
            Some("P0002") => ApiError::not_found("resource"),
            Some("57P01" | "57P02" | "57P03" | "40001" | "40P01") => {
                ApiError::unavailable("the database", e)
            }
            _ => ApiError::internal("database", e),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Query(q) => q.into(),
            DbError::Connect(c) => ApiError::unavailable("the database", c),
            other => ApiError::internal("database", other),
        }
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        match e {
            TriggerError::NoPipeline(_) => ApiError::not_found("pipeline"),
            TriggerError::NoVersion(_) => {
                ApiError::conflict("no_version", "the pipeline has no saved version to run")
            }
            TriggerError::IdempotencyConflict(key) => ApiError::conflict(
                "idempotency_conflict",
                format!("Idempotency-Key \"{key}\" was used before with a different request"),
            ),
            TriggerError::Forbidden(_) => {
                ApiError::forbidden("your role in this project does not allow triggering runs")
            }
            TriggerError::Db(d) => d.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
