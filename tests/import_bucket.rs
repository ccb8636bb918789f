//! `mudrock import-bucket` on a real PostgreSQL and a local store: a legacy
//! bucket becomes a project that runs pipelines in place, loose objects
//! move under shared/ verified, a rerun changes nothing, an import stopped
//! at every step in turn loses no byte and resumes, and the bad inputs.

mod api_support;
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use api_support::*;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use mudrock::service::import::{self, ImportError, ImportOptions};
use mudrock::store::ObjectStore;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const LEGACY: &str = "legacy-sales";

/// The legacy bucket's objects: loose ones and one already in the layout.
fn originals() -> BTreeMap<&'static str, &'static [u8]> {
    BTreeMap::from([
        (
            "orders.csv",
            b"region,amount\nnorth,5\nnorth,20\nsouth,30\n" as &[u8],
        ),
        ("2024/jan.csv", b"region,amount\neast,1\n"),
        ("notes.txt", b"from the old days"),
        ("shared/already.csv", b"region,amount\nwest,9\n"),
    ])
}

async fn legacy(store: &Arc<dyn ObjectStore>) {
    legacy_in(store, LEGACY).await
}

async fn legacy_in(store: &Arc<dyn ObjectStore>, bucket: &str) {
    store.create_bucket(bucket).await.unwrap();
    for (k, v) in originals() {
        store.put(bucket, k, Bytes::from_static(v)).await.unwrap();
    }
}

fn opts(owner: Uuid) -> ImportOptions {
    ImportOptions {
        bucket: LEGACY.into(),
        owner,
        name: None,
        dry_run: false,
        keep_originals: false,
    }
}

/// Every original byte is reachable: at its key, or moved under shared/.
async fn nothing_lost(store: &Arc<dyn ObjectStore>, bucket: &str) {
    for (k, v) in originals() {
        let here = store.get(bucket, k).await.ok();
        let moved = store.get(bucket, &format!("shared/{k}")).await.ok();
        assert!(
            here.as_deref() == Some(v) || moved.as_deref() == Some(v),
            "{k} lost: here {here:?}, moved {moved:?}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn a_legacy_bucket_becomes_a_project_that_runs_in_place(
    _p: PgPoolOptions,
    opts_: PgConnectOptions,
) {
    let api = Api::new(&opts_).await;
    legacy(&api.store).await;
    let owner = Uuid::now_v7();
    let buckets = api.settings.store.clone();

    let dry = import::import(
        &api.pool,
        &api.store,
        &buckets,
        &ImportOptions {
            dry_run: true,
            ..opts(owner)
        },
    )
    .await
    .unwrap();
    let actions: Vec<(&str, &str)> = dry
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.action.as_str()))
        .collect();
    assert_eq!(
        actions.iter().filter(|(_, a)| *a == "would_move").count(),
        3,
        "{actions:?}"
    );
    let projects: i64 = sqlx::query_scalar("SELECT count(*) FROM projects")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(projects, 0, "a dry run makes no project");
    assert_eq!(
        api.store.get(LEGACY, "orders.csv").await.unwrap().as_ref(),
        originals()["orders.csv"]
    );

    let done = import::import(&api.pool, &api.store, &buckets, &opts(owner))
        .await
        .unwrap();
    let project = done.project.unwrap();
    let mut got: Vec<(String, String, Option<String>)> = done
        .objects
        .iter()
        .map(|o| (o.key.clone(), o.action.clone(), o.to.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "2024/jan.csv".into(),
                "moved".into(),
                Some("shared/2024/jan.csv".into())
            ),
            (
                "notes.txt".into(),
                "moved".into(),
                Some("shared/notes.txt".into())
            ),
            (
                "orders.csv".into(),
                "moved".into(),
                Some("shared/orders.csv".into())
            ),
            ("shared/already.csv".into(), "in_layout".into(), None),
        ]
    );
    for (k, v) in originals() {
        let to = if k.starts_with("shared/") {
            k.to_string()
        } else {
            format!("shared/{k}")
        };
        assert_eq!(
            api.store.get(LEGACY, &to).await.unwrap().as_ref(),
            v,
            "{to}"
        );
        if !k.starts_with("shared/") {
            assert!(api.store.get(LEGACY, k).await.is_err(), "{k} moved away");
        }
    }
    assert!(
        done.verified_bytes
            >= 2 * originals()
                .values()
                .take(3)
                .map(|v| v.len() as u64)
                .sum::<u64>()
    );

    // Twice: nothing changes, nothing is copied or deleted.
    let watching = Arc::new(common::HookedStore::new(api.store.clone()));
    let w: Arc<dyn ObjectStore> = watching.clone();
    let again = import::import(&api.pool, &w, &buckets, &opts(owner))
        .await
        .unwrap();
    assert!(again.resumed && again.project == Some(project));
    assert!(again.objects.iter().all(|o| o.action == "in_layout"));
    assert_eq!(watching.count("put", "") + watching.count("delete", ""), 0);

    // The owner sees the project; a pipeline of it runs in the legacy
    // bucket, reading the moved file.
    let token = token(owner, json!({}));
    let (s, p) = api
        .call(
            Method::GET,
            &format!("/v1/projects/{project}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!((s, p["role"].as_str()), (StatusCode::OK, Some("owner")));
    let mut doc = pipeline_doc();
    doc["nodes"][0]["config"]["source"] = json!("shared/orders.csv");
    let (s, pl) = api
        .call(
            Method::POST,
            &format!("/v1/projects/{project}/pipelines"),
            Some(&token),
            Some(json!({"definition": doc})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{pl}");
    let (s, t) = api
        .call(
            Method::POST,
            &format!("/v1/pipelines/{}/runs", pl["id"].as_str().unwrap()),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    let run = t["runId"].as_str().unwrap().to_string();
    let worker = api.worker("w-import");
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(stop.cancelled_owned()).await }
    });
    let start = Instant::now();
    let status = loop {
        let (_, r) = api
            .call(Method::GET, &format!("/v1/runs/{run}"), Some(&token), None)
            .await;
        let st = r["status"].as_str().unwrap_or("").to_string();
        if ["succeeded", "failed", "cancelled"].contains(&st.as_str()) {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "run still {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(status["status"], "succeeded", "{status}");
    let marker = format!(
        "pipelines/{}/runs/{run}/metadata.json",
        pl["id"].as_str().unwrap()
    );
    assert!(
        api.store.head(LEGACY, &marker).await.is_ok(),
        "the run's artifacts are in the legacy bucket"
    );
}

#[sqlx::test(migrations = false)]
async fn an_import_stopped_at_every_step_loses_nothing_and_resumes(
    _p: PgPoolOptions,
    opts_: PgConnectOptions,
) {
    let api = Api::new(&opts_).await;
    legacy(&api.store).await;
    let owner = Uuid::now_v7();
    let buckets = api.settings.store.clone();
    // 3 copies (a put each on this store) and 3 deletes: stopped before
    // each one in turn, each time on a fresh legacy bucket, then resumed.
    for k in 0..=6usize {
        let bucket = format!("legacy-{k}");
        legacy_in(&api.store, &bucket).await;
        let o = ImportOptions {
            bucket: bucket.clone(),
            ..opts(owner)
        };
        let changes = Arc::new(AtomicUsize::new(0));
        let c = changes.clone();
        let dying: Arc<dyn ObjectStore> = Arc::new(common::HookedStore::failing(
            api.store.clone(),
            move |op, _| {
                ["put", "copy", "delete"].contains(&op) && c.fetch_add(1, Ordering::SeqCst) >= k
            },
        ));
        match import::import(&api.pool, &dying, &buckets, &o).await {
            Err(e) => assert!(matches!(e, ImportError::Store(_)) && k < 6, "{k}: {e}"),
            Ok(_) => assert_eq!(k, 6, "all six changes done"),
        }
        nothing_lost(&api.store, &bucket).await;
        // Resumed: finished, one project, the originals moved.
        let r = import::import(&api.pool, &api.store, &buckets, &o)
            .await
            .unwrap();
        assert!(r.resumed, "{k}: the project the stopped run made is reused");
        nothing_lost(&api.store, &bucket).await;
        for key in ["orders.csv", "2024/jan.csv", "notes.txt"] {
            assert!(
                api.store.get(&bucket, key).await.is_err(),
                "{k}: {key} still loose"
            );
        }
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM projects WHERE bucket = $1")
            .bind(&bucket)
            .fetch_one(&api.pool)
            .await
            .unwrap();
        assert_eq!(n, 1, "{k}: one project however it was resumed");
    }
}

#[sqlx::test(migrations = false)]
async fn bad_imports_are_refused_and_nothing_moves(_p: PgPoolOptions, opts_: PgConnectOptions) {
    let api = Api::new(&opts_).await;
    let owner = Uuid::now_v7();
    let buckets = api.settings.store.clone();
    let run = |bucket: &str| {
        let o = ImportOptions {
            bucket: bucket.into(),
            ..opts(owner)
        };
        let (pool, store, buckets) = (api.pool.clone(), api.store.clone(), buckets.clone());
        async move {
            import::import(&pool, &store, &buckets, &o)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    assert_eq!(
        run("no-such-bucket").await,
        "bucket \"no-such-bucket\" does not exist"
    );
    assert!(run("Bad_Bucket").await.contains("is not a bucket name"));
    // A project's own bucket.
    let t = team(&api).await;
    let theirs = buckets.bucket(Some(&t.project.to_string()));
    assert_eq!(
        run(&theirs).await,
        format!("bucket \"{theirs}\" is already project {}", t.project)
    );
    // A loose name whose place under shared/ holds other bytes.
    legacy(&api.store).await;
    api.store
        .put(
            LEGACY,
            "shared/notes.txt",
            Bytes::from_static(b"something else"),
        )
        .await
        .unwrap();
    let err = run(LEGACY).await;
    assert!(
        err.contains("cannot move under shared/") && err.contains("notes.txt"),
        "{err}"
    );
    assert_eq!(
        api.store.get(LEGACY, "orders.csv").await.unwrap().as_ref(),
        originals()["orders.csv"]
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM projects WHERE bucket = $1")
        .bind(LEGACY)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
