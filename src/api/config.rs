//! `[api]` in the configuration (`MUDROCK_API__*`): where `mudrock serve`
//! listens, how tokens are verified, and the limits of a request.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address and port to listen on.
    pub listen: String,
    pub jwt: JwtConfig,
    /// Largest request body (JSON documents), in KiB.
    pub max_body_kb: u64,
    /// A request taking longer is answered 503 (SSE streams excepted).
    pub request_timeout_secs: u64,
    /// Largest page a list returns (`limit`).
    pub max_page: u32,
    /// Rows an output preview may return at most.
    pub max_preview_rows: u32,
    /// Largest uploaded file, in MiB.
    pub max_upload_mb: u64,
    /// Requests per user per minute; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// When set, `/metrics` wants `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            jwt: JwtConfig::default(),
            max_body_kb: 2048,
            request_timeout_secs: 30,
            max_page: 100,
            max_preview_rows: 1000,
            max_upload_mb: 5120,
            rate_limit_per_minute: 0,
            metrics_token: None,
        }
    }
}

/// How bearer tokens are verified: Supabase's HS256 secret and/or its
/// asymmetric keys (ES256/RS256) from a JWKS file or a PEM public key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// The project's JWT secret (HS256).
    pub hs256_secret: Option<String>,
    /// A JWKS document (`{"keys": [...]}`) with the public signing keys.
    pub jwks_file: Option<PathBuf>,
    /// A PEM public key (EC P-256 for ES256, or RSA for RS256).
    pub pem_file: Option<PathBuf>,
    /// Accepted `aud` values.
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            hs256_secret: None,
            jwks_file: None,
            pem_file: None,
            audience: vec!["authenticated".into()],
            leeway_secs: 0,
        }
    }
}
