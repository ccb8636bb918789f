//! The audit trail on a real PostgreSQL through the API: mutations and data
//! reads logged with who, what, where, when and the outcome (refusals
//! too), owners reading it (filters, paging, a forged cursor), no API role
//! able to change it, and `mudrock audit verify` finding an edited and a
//! removed row.

mod api_support;

use api_support::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

async fn trail(api: &Api, t: &Team, query: &str) -> (StatusCode, Value) {
    api.call(
        Method::GET,
        &format!("/v1/projects/{}/audit{query}", t.project),
        Some(&t.owner),
        None,
    )
    .await
}

fn actions(page: &Value) -> Vec<(String, String, Option<i64>)> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
                r["status"].as_i64(),
            )
        })
        .collect()
}

#[sqlx::test(migrations = false)]
async fn calls_are_logged_with_their_outcome_and_owners_read_them(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let pl = t.pipeline;
    // A data read, a refused write by a stranger, an invalid write.
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/v1/pipelines/{pl}/export"),
            Some(&t.viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/v1/projects/{}/pipelines", t.project),
            Some(&t.stranger),
            Some(json!({"definition": pipeline_doc()})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .call(
            Method::PATCH,
            &format!("/v1/projects/{}", t.project),
            Some(&t.owner),
            Some(json!({"settings": {"maxConcurrentRuns": 0}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Reads of listings are not audited.
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/v1/projects/{}/pipelines", t.project),
            Some(&t.owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, page) = trail(&api, &t, "").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(
        actions(&page),
        [
            (
                "PATCH /v1/projects/{id}".into(),
                "invalid".into(),
                Some(422)
            ),
            (
                "POST /v1/projects/{id}/pipelines".into(),
                "refused".into(),
                Some(404)
            ),
            ("GET /v1/pipelines/{id}/export".into(), "ok".into(), None),
            ("POST /v1/projects/{id}/pipelines".into(), "ok".into(), None),
            (
                "POST /v1/projects/{id}/permissions".into(),
                "ok".into(),
                None
            ),
            (
                "POST /v1/projects/{id}/permissions".into(),
                "ok".into(),
                None
            ),
            ("POST /v1/projects".into(), "ok".into(), None),
        ]
    );
    let items = page["items"].as_array().unwrap();
    let seqs: Vec<i64> = items.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(items[2]["role"], "viewer");
    assert_eq!(
        items[2]["target"],
        json!(format!("/v1/pipelines/{pl}/export"))
    );
    assert!(items[1]["role"].is_null() && items[1]["userId"].is_string());
    assert_eq!(items[6]["role"], "owner");
    for w in items.windows(2) {
        assert_eq!(w[0]["prevHash"], w[1]["hash"], "chained");
    }

    // Filters and paging; a forged cursor is a 400.
    let (_, refused) = trail(&api, &t, "?outcome=refused").await;
    assert_eq!(actions(&refused).len(), 1);
    let (_, by_action) = trail(&api, &t, "?action=POST%20/v1/projects/%7Bid%7D/permissions").await;
    assert_eq!(actions(&by_action).len(), 2);
    let (_, first) = trail(&api, &t, "?limit=3").await;
    assert_eq!(actions(&first).len(), 3);
    let cursor = first["nextCursor"].as_str().unwrap().to_string();
    let (_, second) = trail(&api, &t, &format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(second["items"][0]["seq"], 4);
    for bad in ["x", "a0", "a-1", "a99999999999999999999"] {
        let (s, e) = trail(&api, &t, &format!("?cursor={bad}")).await;
        let e = &e["error"];
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_cursor")),
            "{bad}"
        );
    }
    // Owners only.
    for (who, want) in [
        (&t.editor, StatusCode::FORBIDDEN),
        (&t.viewer, StatusCode::FORBIDDEN),
        (&t.stranger, StatusCode::NOT_FOUND),
    ] {
        let (s, _) = api
            .call(
                Method::GET,
                &format!("/v1/projects/{}/audit", t.project),
                Some(who),
                None,
            )
            .await;
        assert_eq!(s, want);
    }
}

/// Runs `stmt` (binding `project` if given) as `role` with `claims` in a
/// transaction of its own, which must fail: its SQLSTATE and the error.
async fn refused_as(
    pool: &sqlx::PgPool,
    role: &str,
    claims: &Value,
    stmt: &'static str,
    project: Option<Uuid>,
) -> (String, sqlx::Error) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)")
        .bind(role)
        .bind(claims.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut q = sqlx::query(stmt);
    if let Some(p) = project {
        q = q.bind(p);
    }
    let err = q.execute(&mut *tx).await.unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .unwrap_or_default()
        .to_string();
    (code, err)
}

#[sqlx::test(migrations = false)]
async fn no_api_role_can_change_the_trail_and_verify_finds_tampering(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let owner_claims = claims(Uuid::now_v7(), json!({}));
    // As the API's roles, with an owner's claims: no update, delete,
    // insert; the append function refuses a row that breaks the chain.
    for role in ["authenticated", "service_role", "anon"] {
        for stmt in [
            "UPDATE audit_log SET action = 'x'",
            "DELETE FROM audit_log",
            "INSERT INTO audit_log (project_id, seq, at, action, target, outcome, prev_hash, hash) \
             VALUES (NULL, 99, now(), 'x', 'x', 'ok', repeat('0', 64), repeat('0', 64))",
            "TRUNCATE audit_log",
        ] {
            let (code, err) = refused_as(&api.pool, role, &owner_claims, stmt, None).await;
            assert_eq!(code, "42501", "{role}: {stmt}: {err}");
        }
    }
    // The append functions: not for a caller's role (any signed-in user
    // could add a well-chained row over Supabase RPC), only service_role,
    // and even then a row must continue its chain.
    let append = "SELECT mudrock_audit_append($1, 1, now(), NULL, NULL, 'x', 'x', NULL, 'ok', NULL, repeat('0', 64), repeat('1', 64))";
    for role in ["authenticated", "anon"] {
        for stmt in ["SELECT * FROM mudrock_audit_head($1)", append] {
            let (code, err) =
                refused_as(&api.pool, role, &owner_claims, stmt, Some(t.project)).await;
            assert_eq!(code, "42501", "{role}: {stmt}: {err}");
        }
    }
    let (_, err) = refused_as(
        &api.pool,
        "service_role",
        &owner_claims,
        append,
        Some(t.project),
    )
    .await;
    assert!(
        err.to_string().contains("does not continue the chain"),
        "{err}"
    );

    let v = mudrock::service::audit::verify(&api.pool, None)
        .await
        .unwrap();
    assert!(v.breaks.is_empty(), "{:?}", v.breaks);
    assert_eq!(v.rows, 4);

    // Someone with the database's owner role edits one row and removes another.
    let edit = |sql: &'static str| {
        let pool = api.pool.clone();
        let project = t.project;
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(sql)
                .bind(project)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    edit("UPDATE audit_log SET target = '/v1/elsewhere' WHERE project_id = $1 AND seq = 2").await;
    let v = mudrock::service::audit::verify(&api.pool, Some(t.project))
        .await
        .unwrap();
    assert_eq!(v.breaks.len(), 1);
    assert_eq!(
        (v.breaks[0].seq, v.breaks[0].problem.contains("edited")),
        (2, true),
        "{:?}",
        v.breaks
    );

    edit("UPDATE audit_log SET target = '/v1/projects/' || $1::text || '/permissions' WHERE project_id = $1 AND seq = 2").await;
    edit("DELETE FROM audit_log WHERE project_id = $1 AND seq = 3").await;
    let db = format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mudrock"))
        .args(["audit", "verify", "--database-url", &db])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout.trim(),
        format!(
            "project {}: row 4: expected row 3 here, found row 4: a row is missing",
            t.project
        )
    );
}
