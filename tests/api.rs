//! The HTTP API on a real PostgreSQL: tokens (every defect is a 401 with
//! mudrock's message), row-level security through the API for owner,
//! editor, viewer and stranger, Idempotency-Key, the bad-input catalogue,
//! and one session over a real socket.

mod api_support;

use api_support::*;
use axum::http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

#[sqlx::test(migrations = false)]
async fn every_token_defect_is_a_401_with_its_reason(_p: PgPoolOptions, opts: PgConnectOptions) {
    let api = Api::new(&opts).await;
    let user = Uuid::now_v7();
    let now = chrono::Utc::now().timestamp();
    let wrong_key = EncodingKey::from_secret(b"another-secret-that-is-long-enough-for-it");
    // `alg: none`, built by hand: header.claims. (empty signature)
    let b64 = |v: &Value| {
        use std::fmt::Write;
        let s = v.to_string();
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                let _ = write!(
                    out,
                    "{}",
                    table[((n >> (18 - 6 * i)) & 63) as usize] as char
                );
            }
        }
        out
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(user, json!({})))
    );
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "missing Authorization: Bearer <token>"),
        ("garbage", Some("not-a-jwt".into()), "malformed token"),
        ("alg none", Some(none), "malformed token"),
        (
            "expired",
            Some(token(user, json!({"exp": now - 60}))),
            "token has expired",
        ),
        (
            "not yet valid",
            Some(token(user, json!({"nbf": now + 600}))),
            "token is not valid yet",
        ),
        (
            "wrong signature",
            Some(sign(Algorithm::HS256, &wrong_key, None, user, json!({}))),
            "token signature does not verify",
        ),
        (
            "wrong audience",
            Some(token(user, json!({"aud": "other"}))),
            "token is for another audience",
        ),
        (
            "no exp",
            Some(token(user, json!({"exp": null}))),
            "token lacks a required claim (exp, sub, aud)",
        ),
        (
            "anon role",
            Some(token(user, json!({"role": "anon"}))),
            "token role must be \"authenticated\"",
        ),
        (
            "sub not a user id",
            Some(token(user, json!({"sub": "someone"}))),
            "token subject is not a user id",
        ),
        (
            "unknown kid",
            Some(rs256(user, "rsa-2")),
            "token is signed with an algorithm or key this server does not accept",
        ),
    ];
    assert!(cases.len() >= 10);
    for (name, tok, message) in &cases {
        let (status, body) = api
            .call(Method::GET, "/v1/projects", tok.as_deref(), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{name}");
        assert_eq!(body["error"]["message"], *message, "{name}");
    }
    // A header that is not "Bearer <token>".
    let req = axum::http::Request::builder()
        .uri("/v1/projects")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body) = api.send(req).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("Authorization must be \"Bearer <token>\"")
        )
    );

    // The three accepted kinds of key: HS256 secret, ES256 PEM, RS256 JWKS.
    for (name, tok) in [
        ("hs256", token(user, json!({}))),
        ("es256", es256(user)),
        ("rs256", rs256(user, "rsa-1")),
    ] {
        let (status, body) = api
            .call(Method::GET, "/v1/projects", Some(&tok), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
}

/// Who is who in the RLS tests.

#[sqlx::test(migrations = false)]
async fn row_level_security_decides_every_endpoint(_p: PgPoolOptions, opts: PgConnectOptions) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let (p, pl) = (t.project, t.pipeline);
    // (what, method, path, body, [owner, editor, viewer, stranger])
    let doc = json!({"definition": pipeline_doc()});
    let cases: Vec<(&str, Method, String, Option<Value>, [u16; 4])> = vec![
        (
            "get project",
            Method::GET,
            format!("/v1/projects/{p}"),
            None,
            [200, 200, 200, 404],
        ),
        (
            "list pipelines",
            Method::GET,
            format!("/v1/projects/{p}/pipelines"),
            None,
            [200, 200, 200, 404],
        ),
        (
            "get pipeline",
            Method::GET,
            format!("/v1/pipelines/{pl}"),
            None,
            [200, 200, 200, 404],
        ),
        (
            "versions",
            Method::GET,
            format!("/v1/pipelines/{pl}/versions"),
            None,
            [200, 200, 200, 404],
        ),
        (
            "permissions",
            Method::GET,
            format!("/v1/projects/{p}/permissions"),
            None,
            [200, 200, 200, 404],
        ),
        (
            "rename project",
            Method::PATCH,
            format!("/v1/projects/{p}"),
            Some(json!({"description": "d"})),
            [200, 200, 403, 404],
        ),
        (
            "save pipeline",
            Method::PUT,
            format!("/v1/pipelines/{pl}"),
            Some(doc.clone()),
            [200, 200, 403, 404],
        ),
        (
            "create pipeline",
            Method::POST,
            format!("/v1/projects/{p}/pipelines"),
            Some(doc.clone()),
            [201, 201, 403, 404],
        ),
        (
            "trigger",
            Method::POST,
            format!("/v1/pipelines/{pl}/runs"),
            None,
            [202, 202, 403, 404],
        ),
        (
            "list runs",
            Method::GET,
            format!("/v1/pipelines/{pl}/runs"),
            None,
            [200, 200, 200, 404],
        ),
        (
            "project runs",
            Method::GET,
            format!("/v1/projects/{p}/runs"),
            None,
            [200, 200, 200, 404],
        ),
        (
            "grant",
            Method::POST,
            format!("/v1/projects/{p}/permissions"),
            Some(json!({"userId": Uuid::now_v7(), "role": "viewer"})),
            [201, 403, 403, 404],
        ),
    ];
    let tokens = [&t.owner, &t.editor, &t.viewer, &t.stranger];
    let who = ["owner", "editor", "viewer", "stranger"];
    let mut failures = Vec::new();
    for (what, method, path, body, expect) in &cases {
        for i in (0..4).rev() {
            let (status, got) = api
                .call(method.clone(), path, Some(tokens[i]), body.clone())
                .await;
            if status.as_u16() != expect[i] {
                failures.push(format!(
                    "{what} as {}: expected {}, got {status} {got}",
                    who[i], expect[i]
                ));
            }
            if status.is_client_error() {
                let code = got["error"]["code"].as_str().unwrap_or("");
                let want = if status == StatusCode::NOT_FOUND {
                    "not_found"
                } else {
                    "forbidden"
                };
                if code != want {
                    failures.push(format!("{what} as {}: code {code}", who[i]));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A run to cancel: viewers may not, editors may.
    let (_, run) = api
        .call(
            Method::POST,
            &format!("/v1/pipelines/{pl}/runs"),
            Some(&t.editor),
            None,
        )
        .await;
    let run = run["runId"].as_str().unwrap().to_string();
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/cancel"),
            Some(&t.viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/cancel"),
            Some(&t.stranger),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/cancel"),
            Some(&t.editor),
            None,
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("cancelled")),
        "{body}"
    );
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/cancel"),
            Some(&t.editor),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("run_finished"))
    );

    // Deleting is the owner's alone; the last owner cannot be removed.
    let owner_id = claims_sub(&t.owner);
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("/v1/projects/{p}/permissions/{owner_id}"),
            Some(&t.owner),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("last_owner")),
        "{body}"
    );
    for (tok, expect) in [
        (&t.stranger, 404),
        (&t.viewer, 403),
        (&t.editor, 403),
        (&t.owner, 204),
    ] {
        let (status, _) = api
            .call(
                Method::DELETE,
                &format!("/v1/pipelines/{pl}"),
                Some(tok),
                None,
            )
            .await;
        assert_eq!(status.as_u16(), expect);
    }
}

fn claims_sub(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = decode_b64url(payload);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["sub"].as_str().unwrap().to_string()
}

fn decode_b64url(s: &str) -> Vec<u8> {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = table.iter().position(|&t| t == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

/// The database refuses a viewer's write by itself: the same insert the
/// trigger makes, issued as the viewer with no API code around it.
#[sqlx::test(migrations = false)]
async fn a_viewer_s_write_is_refused_by_the_database_itself(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let viewer: Uuid = claims_sub(&t.viewer).parse().unwrap();
    let caller = mudrock::api::Caller {
        user: viewer,
        claims: claims(viewer, json!({})),
    };
    let mut tx = mudrock::api::db::begin_as(&api.pool, &caller)
        .await
        .unwrap();
    let err = sqlx::query("SELECT * FROM mudrock_trigger_run($1)")
        .bind(t.pipeline)
        .fetch_all(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("42501")
    );
}

#[sqlx::test(migrations = false)]
async fn an_idempotency_key_returns_the_same_run_and_a_different_body_conflicts(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let path = format!("/v1/pipelines/{}/runs", t.pipeline);
    let keyed = |body: Option<Value>| {
        let mut r = axum::http::Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header("authorization", format!("Bearer {}", t.editor))
            .header("idempotency-key", "nightly-2026-12-02");
        let body = match body {
            Some(b) => {
                r = r.header("content-type", "application/json");
                axum::body::Body::from(b.to_string())
            }
            None => axum::body::Body::empty(),
        };
        r.body(body).unwrap()
    };
    let (s1, first) = api.send(keyed(None)).await;
    let (s2, again) = api.send(keyed(Some(json!({})))).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED),
        "{first} {again}"
    );
    assert_eq!(first["runId"], again["runId"], "an empty body is {{}}");
    assert_eq!(
        (first["created"].as_bool(), again["created"].as_bool()),
        (Some(true), Some(false))
    );
    let (s3, conflict) = api.send(keyed(Some(json!({"revision": 1})))).await;
    assert_eq!(
        (s3, conflict["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_conflict"))
    );
    // Looked up by its key.
    let (s4, found) = api
        .call(
            Method::GET,
            &format!("{path}?idempotencyKey=nightly-2026-12-02"),
            Some(&t.viewer),
            None,
        )
        .await;
    assert_eq!(s4, StatusCode::OK);
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], first["runId"]);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "one run, one job");
}

/// Supabase RPC: the three functions, called through SQL as role
/// `authenticated` with the caller's claims (what PostgREST does), under
/// the same row-level security and Idempotency-Key rule as the API.
#[sqlx::test(migrations = false)]
async fn the_rpc_functions_work_as_the_authenticated_role(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let as_user = |tok: &str| {
        let user: Uuid = claims_sub(tok).parse().unwrap();
        mudrock::api::Caller {
            user,
            claims: claims(user, json!({})),
        }
    };
    let editor = as_user(&t.editor);
    let viewer = as_user(&t.viewer);
    let stranger = as_user(&t.stranger);
    let hash = "a".repeat(64);

    let mut tx = mudrock::api::db::begin_as(&api.pool, &editor)
        .await
        .unwrap();
    let (run, created): (Uuid, bool) =
        sqlx::query_as("SELECT * FROM mudrock_trigger_run($1, 'rpc-1', $2)")
            .bind(t.pipeline)
            .bind(&hash)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert!(created);
    let (again, created): (Uuid, bool) =
        sqlx::query_as("SELECT * FROM mudrock_trigger_run($1, 'rpc-1', $2)")
            .bind(t.pipeline)
            .bind(&hash)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        (again, created),
        (run, false),
        "same key, same request: same run"
    );
    let err = sqlx::query("SELECT * FROM mudrock_trigger_run($1, 'rpc-1', $2)")
        .bind(t.pipeline)
        .bind("b".repeat(64))
        .fetch_all(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|d| d.constraint()),
        Some("pipeline_runs_idempotency_conflict")
    );
    tx.rollback().await.unwrap();

    // Committed this time: the run and its job together.
    let mut tx = mudrock::api::db::begin_as(&api.pool, &editor)
        .await
        .unwrap();
    let (run, _): (Uuid, bool) = sqlx::query_as("SELECT * FROM mudrock_trigger_run($1)")
        .bind(t.pipeline)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE idempotency_key = $1")
            .bind(run.to_string())
            .fetch_one(&api.pool)
            .await
            .unwrap();
    assert_eq!(jobs, 1);

    // Status: members see it; strangers get NULL.
    for (who, expect) in [(&viewer, true), (&stranger, false)] {
        let mut tx = mudrock::api::db::begin_as(&api.pool, who).await.unwrap();
        let v: Option<Value> = sqlx::query_scalar("SELECT mudrock_run_status($1)")
            .bind(run)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(v.is_some(), expect);
        if let Some(v) = v {
            assert_eq!(v["status"], "queued");
        }
        // The API's one-statement read gives the same answer, and leaves
        // the pooled connection as it found it (its own role, no claims).
        let claims = who.claims.to_string();
        let one = mudrock::service::runs::status_json_as(&api.pool, &claims, run, "{}")
            .await
            .unwrap();
        assert_eq!(one.is_some(), expect);
        let mut conn = api.pool.acquire().await.unwrap();
        let _ = mudrock::service::runs::status_json_as(&mut *conn, &claims, run, "{}")
            .await
            .unwrap();
        let (role, left): (String, Option<String>) = sqlx::query_as(
            "SELECT current_user::text, nullif(current_setting('request.jwt.claims', true), '')",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_ne!(role, "authenticated");
        assert_eq!(left, None);
    }
    // Nor can an RPC caller (already `authenticated`) use it to read as
    // someone else: the stranger forging the viewer's claims is refused.
    let mut tx = mudrock::api::db::begin_as(&api.pool, &stranger)
        .await
        .unwrap();
    let err = sqlx::query("SELECT mudrock_run_status_as($1, $2)")
        .bind(viewer.claims.to_string())
        .bind(run)
        .fetch_one(&mut *tx)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is for the API's own login"),
        "{err}"
    );
    tx.rollback().await.unwrap();
    // Cancel: a viewer's is refused by RLS (nothing changes), an editor's works.
    let mut tx = mudrock::api::db::begin_as(&api.pool, &viewer)
        .await
        .unwrap();
    let ok: bool = sqlx::query_scalar("SELECT mudrock_cancel_run($1)")
        .bind(run)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(!ok);
    tx.commit().await.unwrap();
    let mut tx = mudrock::api::db::begin_as(&api.pool, &editor)
        .await
        .unwrap();
    let ok: bool = sqlx::query_scalar("SELECT mudrock_cancel_run($1)")
        .bind(run)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(ok);
    tx.commit().await.unwrap();
    let status: String = sqlx::query_scalar("SELECT status::text FROM pipeline_runs WHERE id = $1")
        .bind(run)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(status, "cancelled");
}

#[sqlx::test(migrations = false)]
async fn a_user_over_the_rate_limit_gets_429_with_retry_after(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let api = Api::with(&opts, |s| s.api.rate_limit_per_minute = 3).await;
    let other = token(Uuid::now_v7(), json!({}));
    let minute = || chrono::Utc::now().timestamp() / 60;
    // The limit is per wall-clock minute (its logic is unit-tested with
    // injected time); here, the calls must fall in one minute: retried if a
    // boundary fell between them.
    for attempt in 0..3 {
        let busy = token(Uuid::now_v7(), json!({}));
        let start = minute();
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for _ in 0..4 {
            let req = axum::http::Request::builder()
                .uri("/v1/projects")
                .header("authorization", format!("Bearer {busy}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let res = tower::ServiceExt::oneshot(api.router.clone(), req)
                .await
                .unwrap();
            statuses.push(res.status().as_u16());
            if let Some(v) = res.headers().get("retry-after") {
                retry_after = Some(v.to_str().unwrap().parse::<u64>().unwrap());
            }
        }
        if minute() != start {
            assert!(attempt < 2, "three minute boundaries in a row");
            continue;
        }
        assert_eq!(statuses, [200, 200, 200, 429]);
        assert!(
            retry_after.is_some_and(|s| (1..=60).contains(&s)),
            "{retry_after:?}"
        );
        break;
    }
    assert_eq!(
        api.call(Method::GET, "/v1/projects", Some(&other), None)
            .await
            .0,
        StatusCode::OK,
        "per user"
    );
}
