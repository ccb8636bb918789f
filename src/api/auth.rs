//! Bearer tokens: Supabase's claims (`sub` = user id, `role`, `exp`, `aud`)
//! verified with the configured HS256 secret or asymmetric keys (ES256,
//! RS256; a JWKS file or a PEM key). Missing, malformed, expired,
//! not-yet-valid, wrongly signed, `alg: none` and wrong-audience tokens are
//! 401 with mudrock's own message. What a verified caller may do is not
//! decided here: the caller's claims go to PostgreSQL, and row-level
//! security decides ([`super::db`]).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::config::JwtConfig;
use super::error::ApiError;

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Uuid,
    /// The token's claims, as PostgREST hands them to PostgreSQL
    /// (`request.jwt.claims`).
    pub claims: Value,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys tokens may be signed with, and what a token must say.
pub struct Authenticator {
    keys: Vec<Key>,
    audience: Vec<String>,
    leeway: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|k| k.alg).collect();
        f.debug_struct("Authenticator")
            .field("algorithms", &algs)
            .finish()
    }
}

impl Authenticator {
    /// Reads the configured keys; at least one is required.
    pub fn from_config(c: &JwtConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        if let Some(secret) = &c.hs256_secret {
            if secret.len() < 32 {
                return Err("api.jwt.hs256_secret must be at least 32 bytes".into());
            }
            keys.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(path) = &c.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("api.jwt.jwks_file {}: {e}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| format!("api.jwt.jwks_file {}: not a JWKS: {e}", path.display()))?;
            for jwk in &set.keys {
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    _ => continue,
                };
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| format!("api.jwt.jwks_file {}: {e}", path.display()))?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                });
            }
        }
        if let Some(path) = &c.pem_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("api.jwt.pem_file {}: {e}", path.display()))?;
            let (alg, key) = match DecodingKey::from_ec_pem(&pem) {
                Ok(k) => (Algorithm::ES256, k),
                Err(_) => (
                    Algorithm::RS256,
                    DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                        format!(
                            "api.jwt.pem_file {}: not an EC or RSA public key: {e}",
                            path.display()
                        )
                    })?,
                ),
            };
            keys.push(Key {
                kid: None,
                alg,
                key,
            });
        }
        if keys.is_empty() {
            return Err(
                "the API needs a way to verify tokens: set api.jwt.hs256_secret, api.jwt.jwks_file or api.jwt.pem_file"
                    .into(),
            );
        }
        Ok(Authenticator {
            keys,
            audience: c.audience.clone(),
            leeway: c.leeway_secs,
        })
    }

    /// Verifies a bearer token.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let bad = |m: &str| ApiError::unauthorized(m.to_string());
        // An `alg` outside the enum (such as "none") fails here.
        let header = decode_header(token).map_err(|_| bad("malformed token"))?;
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(bad(
                "token is signed with an algorithm or key this server does not accept",
            ));
        }
        let mut v = Validation::new(header.alg);
        v.set_audience(&self.audience);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub", "aud"]);
        let mut last = bad("invalid token");
        for k in candidates {
            match decode::<Value>(token, &k.key, &v) {
                Ok(data) => return caller(data.claims),
                Err(e) => {
                    last = bad(match e.kind() {
                        ErrorKind::ExpiredSignature => "token has expired",
                        ErrorKind::ImmatureSignature => "token is not valid yet",
                        ErrorKind::InvalidAudience => "token is for another audience",
                        ErrorKind::InvalidSignature => "token signature does not verify",
                        ErrorKind::MissingRequiredClaim(_) => {
                            "token lacks a required claim (exp, sub, aud)"
                        }
                        _ => "malformed token",
                    })
                }
            }
        }
        Err(last)
    }
}

fn caller(claims: Value) -> Result<Caller, ApiError> {
    let user = claims["sub"]
        .as_str()
        .and_then(|s| s.parse::<Uuid>().ok())
        .ok_or_else(|| ApiError::unauthorized("token subject is not a user id"))?;
    if claims["role"].as_str() != Some("authenticated") {
        return Err(ApiError::unauthorized(
            "token role must be \"authenticated\"",
        ));
    }
    Ok(Caller { user, claims })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization must be \"Bearer <token>\""))?;
        let caller = state.auth.verify(token)?;
        state.limiter.check(caller.user)?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}
