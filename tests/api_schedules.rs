//! Schedules through the API: who may do what (row-level security for
//! owner, editor, viewer and stranger on every schedule endpoint), the
//! bad-input catalogue (each status, code and field pinned), the ledger
//! and backfills driven by a scheduler pass with an injected time, and
//! the preview over a real socket.

mod api_support;

use std::sync::Arc;

use api_support::*;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use mudrock::service::scheduler::{ManualClock, Scheduler, SchedulerConfig};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

async fn create(api: &Api, t: &Team, who: &str, body: Value) -> (StatusCode, Value) {
    api.call(
        Method::POST,
        &format!("/v1/pipelines/{}/schedules", t.pipeline),
        Some(who),
        Some(body),
    )
    .await
}

#[sqlx::test(migrations = false)]
async fn every_schedule_endpoint_under_row_level_security(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let body =
        json!({"cron": "0 3 * * *", "timezone": "Europe/Paris", "overlapPolicy": "queue_one"});
    let (s, v) = create(&api, &t, &t.viewer, body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = create(&api, &t, &t.stranger, body.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = create(&api, &t, &t.editor, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["overlapPolicy"], "queue_one");
    assert_eq!(v["catchup"], "latest");
    assert_eq!(v["dstGap"], "shift");
    let id = v["id"].as_str().unwrap().to_string();
    // 03:00 Paris is 01:00 or 02:00 UTC.
    let next: DateTime<Utc> = v["nextFireAt"].as_str().unwrap().parse().unwrap();
    assert!(
        matches!(next.format("%H:%M").to_string().as_str(), "01:00" | "02:00"),
        "{next}"
    );

    let path = |p: &str| format!("/v1/schedules/{id}{p}");
    // Reads: members yes, strangers 404.
    for (who, expect) in [(&t.viewer, 200), (&t.owner, 200), (&t.stranger, 404)] {
        for p in ["", "/next", "/ticks", "/backfills"] {
            let (s, v) = api.call(Method::GET, &path(p), Some(who), None).await;
            assert_eq!(s.as_u16(), expect, "{p}: {v}");
        }
    }
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/v1/pipelines/{}/schedules", t.pipeline),
            Some(&t.viewer),
            None,
        )
        .await;
    assert_eq!((s, v.as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    let (_, v) = api
        .call(Method::GET, &path("/next?count=3"), Some(&t.viewer), None)
        .await;
    let n = v.as_array().unwrap();
    assert_eq!(n.len(), 3);
    assert!(
        n[0]["local"].as_str().unwrap().contains("T03:00:00+0"),
        "{v}"
    );

    // Writes: the viewer is refused by the database, the editor may.
    for (m, p, b) in [
        (Method::PATCH, "", Some(json!({"cron": "0 4 * * *"}))),
        (Method::POST, "/pause", Some(json!({"note": "no"}))),
        (Method::POST, "/resume", None),
        (Method::POST, "/trigger", None),
        (
            Method::POST,
            "/backfills",
            Some(json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-03T00:00:00Z"})),
        ),
        (Method::DELETE, "", None),
    ] {
        let (s, v) = api
            .call(m.clone(), &path(p), Some(&t.viewer), b.clone())
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "viewer {m} {p}: {v}");
        let (s, v) = api.call(m.clone(), &path(p), Some(&t.stranger), b).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "stranger {m} {p}: {v}");
    }
    let (s, v) = api
        .call(
            Method::PATCH,
            &path(""),
            Some(&t.editor),
            Some(json!({"cron": "30 4 * * *", "maxLatenessSeconds": 600})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["cron"].as_str(), v["maxLatenessSeconds"].as_i64()),
        (Some("30 4 * * *"), Some(600))
    );
    let (s, v) = api
        .call(
            Method::PATCH,
            &path(""),
            Some(&t.editor),
            Some(json!({"maxLatenessSeconds": null})),
        )
        .await;
    assert_eq!(
        (s, v["maxLatenessSeconds"].clone()),
        (StatusCode::OK, Value::Null),
        "null clears"
    );
    let (s, v) = api
        .call(
            Method::POST,
            &path("/pause"),
            Some(&t.editor),
            Some(json!({"note": "warehouse migration"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["enabled"].as_bool(), v["pauseNote"].as_str()),
        (Some(false), Some("warehouse migration"))
    );
    let (_, v) = api
        .call(Method::POST, &path("/resume"), Some(&t.editor), None)
        .await;
    assert_eq!(
        (v["enabled"].as_bool(), v["pauseNote"].clone()),
        (Some(true), Value::Null)
    );
    let (s, v) = api
        .call(Method::POST, &path("/trigger"), Some(&t.editor), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let run = v["runId"].as_str().unwrap().to_string();
    let (_, r) = api
        .call(
            Method::GET,
            &format!("/v1/runs/{run}"),
            Some(&t.viewer),
            None,
        )
        .await;
    assert_eq!(r["status"], "queued");
    let trig: (String, Option<Uuid>) =
        sqlx::query_as("SELECT trigger::text, schedule_id FROM pipeline_runs WHERE id = $1::uuid")
            .bind(&run)
            .fetch_one(&api.pool)
            .await
            .unwrap();
    assert_eq!(trig, ("schedule".to_string(), Some(id.parse().unwrap())));
    let (s, _) = api
        .call(Method::DELETE, &path(""), Some(&t.editor), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.call(Method::GET, &path(""), Some(&t.owner), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = false)]
async fn bad_schedules_are_refused_with_the_field_named(_p: PgPoolOptions, opts: PgConnectOptions) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "second out of range",
            json!({"cron": "60 * * * * *"}),
            422,
            "cron",
            "the second field \"60\" is invalid",
        ),
        (
            "minute out of range",
            json!({"cron": "60 * * * *"}),
            422,
            "cron",
            "the minute field \"60\" is invalid",
        ),
        (
            "hour out of range",
            json!({"cron": "0 24 * * *"}),
            422,
            "cron",
            "the hour field \"24\" is invalid",
        ),
        (
            "day of month out of range",
            json!({"cron": "0 0 32 * *"}),
            422,
            "cron",
            "the day-of-month field \"32\" is invalid",
        ),
        (
            "month out of range",
            json!({"cron": "0 0 1 13 *"}),
            422,
            "cron",
            "the month field \"13\" is invalid",
        ),
        (
            "day of week out of range",
            json!({"cron": "0 0 * * 9"}),
            422,
            "cron",
            "the day-of-week field \"9\" is invalid",
        ),
        (
            "too few fields",
            json!({"cron": "0 0 *"}),
            422,
            "cron",
            "has 3 fields; expected 5",
        ),
        (
            "unknown macro",
            json!({"cron": "@sometimes"}),
            422,
            "cron",
            "is not a known macro",
        ),
        (
            "never fires",
            json!({"cron": "0 0 31 2 *"}),
            422,
            "cron",
            "never fires (no date matches it)",
        ),
        (
            "unknown zone",
            json!({"cron": "@daily", "timezone": "Atlantis/Capital"}),
            422,
            "timezone",
            "unknown time zone \"Atlantis/Capital\"",
        ),
        (
            "misspelt zone",
            json!({"cron": "@daily", "timezone": "America/New_Yrok"}),
            422,
            "timezone",
            "did you mean \"America/New_York\"?",
        ),
        (
            "end before start",
            json!({"cron": "@daily", "startAt": "2030-01-02T00:00:00Z", "endAt": "2030-01-01T00:00:00Z"}),
            422,
            "endAt",
            "is not after startAt",
        ),
        (
            "window in the past",
            json!({"cron": "@daily", "endAt": "2020-01-01T00:00:00Z"}),
            422,
            "endAt",
            "never fires between",
        ),
        (
            "jitter over the interval",
            json!({"cron": "*/5 * * * *", "jitterSeconds": 600}),
            422,
            "jitterSeconds",
            "is not shorter than the 300 s between two fires",
        ),
        (
            "lateness not positive",
            json!({"cron": "@daily", "maxLatenessSeconds": 0}),
            422,
            "maxLatenessSeconds",
            "must be positive",
        ),
    ];
    for (name, body, status, field, message) in &cases {
        let (s, v) = create(&api, &t, &t.editor, body.clone()).await;
        assert_eq!(s.as_u16(), *status, "{name}: {v}");
        assert_eq!(v["error"]["code"], "invalid_schedule", "{name}: {v}");
        let problems = v["error"]["details"]["problems"].as_array().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p["field"] == *field && p["message"].as_str().unwrap().contains(message)),
            "{name}: {v}"
        );
    }
    // Values outside the enums, unknown fields: the body is refused
    // before anything is checked, naming the field.
    for (name, body, needle) in [
        (
            "overlap outside the enum",
            json!({"cron": "@daily", "overlapPolicy": "sometimes"}),
            "overlapPolicy",
        ),
        (
            "catchup outside the enum",
            json!({"cron": "@daily", "catchup": "most"}),
            "catchup",
        ),
        (
            "dstFold outside the enum",
            json!({"cron": "@daily", "dstFold": "middle"}),
            "dstFold",
        ),
        (
            "unknown field",
            json!({"cron": "@daily", "every": "day"}),
            "every",
        ),
    ] {
        let (s, v) = create(&api, &t, &t.editor, body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {v}");
        assert_eq!(v["error"]["code"], "invalid_body", "{name}: {v}");
        assert!(
            v["error"]["details"]["reason"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{name}: {v}"
        );
    }
    // A pipeline the caller cannot see is a 404, not a 422.
    let (s, _) = create(&api, &t, &t.stranger, json!({"cron": "0 0 31 2 *"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/v1/pipelines/{}/schedules", Uuid::now_v7()),
            Some(&t.editor),
            Some(json!({"cron": "@daily"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // Backfills.
    let (_, v) = create(&api, &t, &t.editor, json!({"cron": "0 * * * *"})).await;
    let id = v["id"].as_str().unwrap();
    let future = (Utc::now() + Duration::days(1)).to_rfc3339();
    for (body, field, message) in [
        (
            json!({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
            "to",
            "is not after from",
        ),
        (
            json!({"from": "2026-01-01T00:00:00Z", "to": future}),
            "to",
            "is in the future",
        ),
        (
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "overlapPolicy": "skip"}),
            "overlapPolicy",
            "use allow or queue_one",
        ),
        (
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "maxConcurrent": 0}),
            "maxConcurrent",
            "is not between 1 and 100",
        ),
        (
            json!({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
            "to",
            "more than 10000 fire times",
        ),
        (
            json!({"from": "2026-01-01T00:10:00Z", "to": "2026-01-01T00:20:00Z"}),
            "from",
            "no fire time in this window",
        ),
    ] {
        let (s, v) = api
            .call(
                Method::POST,
                &format!("/v1/schedules/{id}/backfills"),
                Some(&t.editor),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let problems = v["error"]["details"]["problems"].as_array().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p["field"] == field && p["message"].as_str().unwrap().contains(message)),
            "{v}"
        );
    }
    for q in ["/next?count=0", "/next?count=101", "/ticks?outcome=maybe"] {
        let (s, v) = api
            .call(
                Method::GET,
                &format!("/v1/schedules/{id}{q}"),
                Some(&t.viewer),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
    assert!(cases.len() + 15 >= 30);
}

#[sqlx::test(migrations = false)]
async fn the_ledger_and_a_backfill_through_the_api(_p: PgPoolOptions, opts: PgConnectOptions) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let (_, v) = create(
        &api,
        &t,
        &t.editor,
        json!({"cron": "0 * * * *", "overlapPolicy": "allow", "catchup": "all"}),
    )
    .await;
    let id: Uuid = v["id"].as_str().unwrap().parse().unwrap();
    let created: DateTime<Utc> = v["createdAt"].as_str().unwrap().parse().unwrap();
    let clock = Arc::new(ManualClock::new(created));
    let s = Scheduler::new(
        api.pool.clone(),
        SchedulerConfig::default(),
        clock,
        Some("test".into()),
    );
    // Three hours later: three fire times, three runs. Exactly three hours:
    // an hourly cron has exactly three fire times in (created, created +
    // 3 h], where a minute more held a fourth when the schedule was
    // created in the last minute of an hour.
    s.pass(created + Duration::hours(3)).await.unwrap();
    let (st, v) = api
        .call(
            Method::GET,
            &format!("/v1/schedules/{id}/ticks?limit=2"),
            Some(&t.viewer),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|i| i["outcome"] == "fired" && i["runId"].is_string())
    );
    let before = v["nextBefore"].as_str().unwrap();
    let (_, v2) = api
        .call(
            Method::GET,
            &format!(
                "/v1/schedules/{id}/ticks?limit=2&before={}",
                before.replace('+', "%2B")
            ),
            Some(&t.viewer),
            None,
        )
        .await;
    assert_eq!(v2["items"].as_array().unwrap().len(), 1, "{v2}");
    assert!(v2["nextBefore"].is_null());

    // A backfill of a past day, two at a time.
    let from = created - Duration::days(2);
    let to = from + Duration::hours(5) - Duration::seconds(1);
    let (st, b) = api
        .call(
            Method::POST,
            &format!("/v1/schedules/{id}/backfills"),
            Some(&t.editor),
            Some(json!({"from": from, "to": to, "maxConcurrent": 2})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(b["fireTimes"], 5);
    let bid = b["id"].as_str().unwrap().to_string();
    let now = created + Duration::hours(3) + Duration::minutes(2);
    assert_eq!(s.pass(now).await.unwrap().backfill_runs, 2, "two at a time");
    assert_eq!(
        s.pass(now).await.unwrap().backfill_runs,
        0,
        "no room until one ends"
    );
    let rows: Vec<(DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT scheduled_for, trigger::text FROM pipeline_runs WHERE backfill_id = $1::uuid ORDER BY scheduled_for",
    )
    .bind(&bid)
    .fetch_all(&api.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.1 == "backfill"));
    assert!(rows[0].0 > from - Duration::hours(1) && rows[1].0 > rows[0].0);
    // Cancelling the backfill cancels its queued runs.
    let (st, v) = api
        .call(
            Method::POST,
            &format!("/v1/backfills/{bid}/cancel"),
            Some(&t.viewer),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = api
        .call(
            Method::POST,
            &format!("/v1/backfills/{bid}/cancel"),
            Some(&t.editor),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "cancelled");
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pipeline_runs WHERE backfill_id = $1::uuid AND status <> 'cancelled'",
    )
    .bind(&bid)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    let (st, _) = api
        .call(
            Method::POST,
            &format!("/v1/backfills/{bid}/cancel"),
            Some(&t.editor),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        s.pass(now).await.unwrap().backfill_runs,
        0,
        "a cancelled backfill makes no runs"
    );
}

#[sqlx::test(migrations = false)]
async fn next_fire_times_over_a_real_socket(_p: PgPoolOptions, opts: PgConnectOptions) {
    let api = Api::new(&opts).await;
    let t = team(&api).await;
    let (_, v) = create(
        &api,
        &t,
        &t.editor,
        json!({"cron": "30 2 * * *", "timezone": "America/New_York", "dstGap": "shift"}),
    )
    .await;
    let id = v["id"].as_str().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let (base, server) = api.serve(&stop).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/v1/schedules/{id}/next?count=5"))
        .bearer_auth(&t.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    let times = v.as_array().unwrap();
    assert_eq!(times.len(), 5);
    for f in times {
        let local = f["local"].as_str().unwrap();
        assert!(local.contains("T02:30:00-0") || f["shifted"] == true, "{f}");
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}
