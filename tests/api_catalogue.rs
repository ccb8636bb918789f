//! Bad input through the API, each case pinned to its status and error
//! code: malformed and mistyped bodies, bodies over the limit, bad ids and
//! cursors, invalid pipelines and settings, impossible state changes, path
//! traversal. None may be a 500.

mod api_support;

use api_support::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

enum Send {
    Json(Method, String, Value),
    Raw(Method, String, &'static str, String),
    Plain(Method, String),
    Keyed(String, String),
}

#[sqlx::test(migrations = false)]
async fn bad_input_gets_its_status_and_code_never_a_500(_p: PgPoolOptions, opts: PgConnectOptions) {
    let api = Api::with(&opts, |s| s.api.max_body_kb = 4).await;
    let owner = token(Uuid::now_v7(), json!({}));
    let (_, p) = api
        .call(
            Method::POST,
            "/v1/projects",
            Some(&owner),
            Some(json!({"name": "p"})),
        )
        .await;
    let project = p["id"].as_str().unwrap().to_string();
    let (_, pl) = api
        .call(
            Method::POST,
            &format!("/v1/projects/{project}/pipelines"),
            Some(&owner),
            Some(json!({"definition": pipeline_doc()})),
        )
        .await;
    let pipeline = pl["id"].as_str().unwrap().to_string();
    // A finished run: queued, then cancelled.
    let (_, run) = api
        .call(
            Method::POST,
            &format!("/v1/pipelines/{pipeline}/runs"),
            Some(&owner),
            None,
        )
        .await;
    let run = run["runId"].as_str().unwrap().to_string();
    api.call(
        Method::POST,
        &format!("/v1/runs/{run}/cancel"),
        Some(&owner),
        None,
    )
    .await;
    // A deleted pipeline.
    let (_, gone) = api
        .call(
            Method::POST,
            &format!("/v1/projects/{project}/pipelines"),
            Some(&owner),
            Some(json!({"definition": pipeline_doc()})),
        )
        .await;
    let gone = gone["id"].as_str().unwrap().to_string();
    api.call(
        Method::DELETE,
        &format!("/v1/pipelines/{gone}"),
        Some(&owner),
        None,
    )
    .await;
    let owner_id = {
        let (_, perms) = api
            .call(
                Method::GET,
                &format!("/v1/projects/{project}/permissions"),
                Some(&owner),
                None,
            )
            .await;
        perms[0]["userId"].as_str().unwrap().to_string()
    };
    let nobody = Uuid::now_v7();
    let proj = format!("/v1/projects/{project}");
    let pipe = format!("/v1/pipelines/{pipeline}");
    let mut bad_doc = pipeline_doc();
    bad_doc["nodes"][1]["config"]["predicate"] = json!("amount >");
    let big = "x".repeat(5 * 1024);
    use Send::*;
    let cases: Vec<(&str, Send, u16, &str)> = vec![
        (
            "malformed JSON",
            Raw(
                Method::POST,
                "/v1/projects".into(),
                "application/json",
                "{\"name\": ".into(),
            ),
            400,
            "malformed_json",
        ),
        (
            "wrong content type",
            Raw(
                Method::POST,
                "/v1/projects".into(),
                "text/plain",
                "{\"name\": \"p\"}".into(),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            Raw(
                Method::POST,
                "/v1/projects".into(),
                "",
                "{\"name\": \"p\"}".into(),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown field",
            Json(
                Method::POST,
                "/v1/projects".into(),
                json!({"name": "p", "colour": "red"}),
            ),
            422,
            "invalid_body",
        ),
        (
            "wrong field type",
            Json(Method::POST, "/v1/projects".into(), json!({"name": 7})),
            422,
            "invalid_body",
        ),
        (
            "body not an object",
            Json(Method::POST, "/v1/projects".into(), json!([1, 2])),
            422,
            "invalid_body",
        ),
        (
            "body over the limit",
            Json(Method::POST, "/v1/projects".into(), json!({"name": big})),
            413,
            "too_large",
        ),
        (
            "blank name",
            Json(Method::POST, "/v1/projects".into(), json!({"name": "  "})),
            422,
            "invalid_name",
        ),
        (
            "unknown setting",
            Json(
                Method::POST,
                "/v1/projects".into(),
                json!({"name": "p", "settings": {"maxConcurentRuns": 2}}),
            ),
            422,
            "invalid_settings",
        ),
        (
            "zero maxConcurrentRuns",
            Json(
                Method::PATCH,
                proj.clone(),
                json!({"settings": {"maxConcurrentRuns": 0}}),
            ),
            422,
            "invalid_settings",
        ),
        (
            "maxConcurrentRuns a string",
            Json(
                Method::PATCH,
                proj.clone(),
                json!({"settings": {"maxConcurrentRuns": "two"}}),
            ),
            422,
            "invalid_settings",
        ),
        (
            "file type with a dot",
            Json(
                Method::PATCH,
                proj.clone(),
                json!({"settings": {"allowedFileTypes": [".csv"]}}),
            ),
            422,
            "invalid_settings",
        ),
        (
            "negative quota",
            Json(
                Method::PATCH,
                proj.clone(),
                json!({"settings": {"storageQuota": -1}}),
            ),
            422,
            "invalid_settings",
        ),
        (
            "settings not an object",
            Json(Method::PATCH, proj.clone(), json!({"settings": [1]})),
            422,
            "invalid_settings",
        ),
        (
            "project id not a UUID",
            Plain(Method::GET, "/v1/projects/not-a-uuid".into()),
            400,
            "invalid_path",
        ),
        (
            "pipeline id not a UUID",
            Plain(Method::GET, "/v1/pipelines/123".into()),
            400,
            "invalid_path",
        ),
        (
            "run id not a UUID",
            Plain(Method::GET, "/v1/runs/zzz".into()),
            400,
            "invalid_path",
        ),
        (
            "revision not a number",
            Plain(Method::GET, format!("{pipe}/versions/first")),
            400,
            "invalid_path",
        ),
        (
            "encoded traversal as an id",
            Plain(
                Method::GET,
                "/v1/runs/..%2F..%2Fetc%2Fpasswd/artifacts".into(),
            ),
            400,
            "invalid_path",
        ),
        (
            "traversal in the path",
            Plain(Method::GET, format!("/v1/runs/{run}/../../../etc/passwd")),
            404,
            "not_found",
        ),
        (
            "absolute path as an id",
            Plain(Method::GET, "/v1/runs/%2Fetc%2Fpasswd/metadata.json".into()),
            400,
            "invalid_path",
        ),
        (
            "unknown route",
            Plain(Method::GET, "/v1/nothing".into()),
            404,
            "not_found",
        ),
        (
            "wrong method",
            Plain(Method::PUT, "/v1/projects".into()),
            405,
            "method_not_allowed",
        ),
        (
            "forged cursor",
            Plain(Method::GET, "/v1/projects?cursor=abc".into()),
            400,
            "invalid_cursor",
        ),
        (
            "cursor out of range",
            Plain(
                Method::GET,
                format!("/v1/projects?cursor=99999999999999999999.{nobody}"),
            ),
            400,
            "invalid_cursor",
        ),
        (
            "cursor with a bad id",
            Plain(
                Method::GET,
                "/v1/projects?cursor=1700000000000000.nope".into(),
            ),
            400,
            "invalid_cursor",
        ),
        (
            "limit zero",
            Plain(Method::GET, "/v1/projects?limit=0".into()),
            400,
            "invalid_limit",
        ),
        (
            "limit over the cap",
            Plain(Method::GET, "/v1/projects?limit=100000".into()),
            400,
            "invalid_limit",
        ),
        (
            "limit not a number",
            Plain(Method::GET, "/v1/projects?limit=ten".into()),
            400,
            "invalid_query",
        ),
        (
            "unknown query parameter",
            Plain(Method::GET, "/v1/projects?sort=name".into()),
            400,
            "invalid_query",
        ),
        (
            "unknown run status",
            Plain(Method::GET, format!("{pipe}/runs?status=done")),
            400,
            "invalid_query",
        ),
        (
            "unknown trigger",
            Plain(Method::GET, format!("{pipe}/runs?trigger=cron")),
            400,
            "invalid_query",
        ),
        (
            "invalid pipeline",
            Json(
                Method::POST,
                format!("{proj}/pipelines"),
                json!({"definition": bad_doc}),
            ),
            422,
            "invalid_pipeline",
        ),
        (
            "definition not a pipeline",
            Json(
                Method::POST,
                format!("{proj}/pipelines"),
                json!({"definition": "nodes"}),
            ),
            422,
            "invalid_pipeline",
        ),
        (
            "validate an invalid pipeline",
            Json(
                Method::POST,
                format!("{proj}/pipelines/validate"),
                json!({"definition": {"nodes": [{"id": "a"}]}}),
            ),
            422,
            "invalid_pipeline",
        ),
        (
            "save an invalid pipeline",
            Json(
                Method::PUT,
                pipe.clone(),
                json!({"definition": {"nodes": 3}}),
            ),
            422,
            "invalid_pipeline",
        ),
        (
            "unknown version",
            Plain(Method::GET, format!("{pipe}/versions/99")),
            404,
            "not_found",
        ),
        (
            "restore an unknown version",
            Plain(Method::POST, format!("{pipe}/versions/99/restore")),
            404,
            "not_found",
        ),
        (
            "cancel a finished run",
            Plain(Method::POST, format!("/v1/runs/{run}/cancel")),
            409,
            "run_finished",
        ),
        (
            "metadata of a run that never ran",
            Plain(Method::GET, format!("/v1/runs/{run}/metadata.json")),
            404,
            "not_found",
        ),
        (
            "unknown run",
            Plain(Method::GET, format!("/v1/runs/{nobody}")),
            404,
            "not_found",
        ),
        (
            "trigger a deleted pipeline",
            Plain(Method::POST, format!("/v1/pipelines/{gone}/runs")),
            404,
            "not_found",
        ),
        (
            "trigger an unknown revision",
            Json(
                Method::POST,
                format!("{pipe}/runs"),
                json!({"revision": 42}),
            ),
            409,
            "no_version",
        ),
        (
            "trigger with an unknown field",
            Json(Method::POST, format!("{pipe}/runs"), json!({"revison": 1})),
            422,
            "invalid_body",
        ),
        (
            "trigger with malformed JSON",
            Raw(
                Method::POST,
                format!("{pipe}/runs"),
                "application/json",
                "{".into(),
            ),
            400,
            "malformed_json",
        ),
        (
            "trigger with a text body",
            Raw(
                Method::POST,
                format!("{pipe}/runs"),
                "text/plain",
                "go".into(),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "idempotency key too long",
            Keyed(format!("{pipe}/runs"), "k".repeat(300)),
            400,
            "invalid_idempotency_key",
        ),
        (
            "idempotency key with spaces",
            Keyed(format!("{pipe}/runs"), "two words".into()),
            400,
            "invalid_idempotency_key",
        ),
        (
            "grant a role that does not exist",
            Json(
                Method::POST,
                format!("{proj}/permissions"),
                json!({"userId": nobody, "role": "admin"}),
            ),
            422,
            "invalid_body",
        ),
        (
            "grant to a user id that is not one",
            Json(
                Method::POST,
                format!("{proj}/permissions"),
                json!({"userId": "bob", "role": "viewer"}),
            ),
            422,
            "invalid_body",
        ),
        (
            "remove the last owner",
            Plain(Method::DELETE, format!("{proj}/permissions/{owner_id}")),
            409,
            "last_owner",
        ),
        (
            "demote the last owner",
            Json(
                Method::PATCH,
                format!("{proj}/permissions/{owner_id}"),
                json!({"role": "viewer"}),
            ),
            409,
            "last_owner",
        ),
        (
            "change a non-member's role",
            Json(
                Method::PATCH,
                format!("{proj}/permissions/{nobody}"),
                json!({"role": "viewer"}),
            ),
            404,
            "not_found",
        ),
        (
            "revoke a non-member",
            Plain(Method::DELETE, format!("{proj}/permissions/{nobody}")),
            404,
            "not_found",
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (name, send, status, code) in cases {
        let req = match send {
            Json(m, path, body) => Request::builder()
                .method(m)
                .uri(path)
                .header("authorization", format!("Bearer {owner}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            Raw(m, path, ct, body) => {
                let mut r = Request::builder()
                    .method(m)
                    .uri(path)
                    .header("authorization", format!("Bearer {owner}"));
                if !ct.is_empty() {
                    r = r.header("content-type", ct);
                }
                r.body(Body::from(body))
            }
            Plain(m, path) => Request::builder()
                .method(m)
                .uri(path)
                .header("authorization", format!("Bearer {owner}"))
                .body(Body::empty()),
            Keyed(path, key) => Request::builder()
                .method(Method::POST)
                .uri(path)
                .header("authorization", format!("Bearer {owner}"))
                .header("idempotency-key", key)
                .body(Body::empty()),
        }
        .unwrap();
        let (got, body) = api.send(req).await;
        assert_ne!(got, StatusCode::INTERNAL_SERVER_ERROR, "{name}: {body}");
        if got.as_u16() != status || body["error"]["code"] != code {
            failures.push(format!(
                "{name}: expected {status} {code}, got {got} {body}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
