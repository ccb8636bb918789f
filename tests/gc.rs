//! Retention and garbage collection on a real PostgreSQL and a local store,
//! the clock injected: which runs, cache entries and scratch a policy
//! removes (dry run first), pinning through the API, a GC stopped between
//! two deletions finished by the next, and bad policies refused.

mod api_support;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use api_support::*;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use mudrock::service::gc::{self, GcConfig, GcOptions};
use mudrock::store::ObjectStore;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// A fabricated world: runs with chosen finish times, their folders and
/// cache entries with chosen write times.
struct World {
    api: Api,
    t: Team,
    bucket: String,
    now: DateTime<Utc>,
}

fn key(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

impl World {
    async fn new(opts: &PgConnectOptions) -> World {
        let api = Api::new(opts).await;
        let t = team(&api).await;
        let bucket = api.settings.store.bucket(Some(&t.project.to_string()));
        World {
            api,
            t,
            bucket,
            now: Utc::now(),
        }
    }

    /// Writes an object and sets its modification time.
    async fn put(&self, key: &str, age: Duration) {
        self.api
            .store
            .put(&self.bucket, key, bytes::Bytes::from(vec![7u8; 100]))
            .await
            .unwrap();
        let path = self.api.dir.path().join(&self.bucket).join(key);
        let when = SystemTime::from(self.now - age);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn exists(&self, key: &str) -> bool {
        self.api.dir.path().join(&self.bucket).join(key).exists()
    }

    /// A finished run `age` ago that used `cache_key`, with its folder.
    async fn run(&self, status: &str, age: Duration, cache_key: Option<&str>) -> Uuid {
        let id = Uuid::now_v7();
        let finished = self.now - age;
        sqlx::query(
            "INSERT INTO pipeline_runs (id, pipeline_id, project_id, pipeline_version_id, trigger, status,
                                        attempt, error, queued_at, started_at, finished_at)
             SELECT $1, $2, $3, v.id, 'api', $4::run_status, 1,
                    CASE WHEN $4 = 'failed' THEN 'boom' END, $5, $5, $5
             FROM pipeline_versions v WHERE v.pipeline_id = $2 LIMIT 1",
        )
        .bind(id)
        .bind(self.t.pipeline)
        .bind(self.t.project)
        .bind(status)
        .bind(finished)
        .execute(&self.api.pool)
        .await
        .unwrap();
        if let Some(k) = cache_key {
            sqlx::query("INSERT INTO node_runs (run_id, node_id, status, cache_key) VALUES ($1, 'out', 'succeeded', $2)")
                .bind(id)
                .bind(k)
                .execute(&self.api.pool)
                .await
                .unwrap();
        }
        let prefix = self.run_prefix(id);
        for f in [
            "outputs/out/data.parquet",
            "outputs/out/metadata.json",
            "lineage.json",
            "metadata.json",
        ] {
            self.put(&format!("{prefix}{f}"), age).await;
        }
        id
    }

    fn run_prefix(&self, id: Uuid) -> String {
        format!("pipelines/{}/runs/{id}/", self.t.pipeline)
    }

    async fn entry(&self, k: &str, age: Duration) {
        for f in ["data.parquet", "metadata.json"] {
            self.put(&format!("pipelines/{}/cache/{k}/{f}", self.t.pipeline), age)
                .await;
        }
    }

    fn entry_exists(&self, k: &str) -> bool {
        self.exists(&format!(
            "pipelines/{}/cache/{k}/metadata.json",
            self.t.pipeline
        ))
    }

    async fn row_exists(&self, id: Uuid) -> bool {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pipeline_runs WHERE id = $1)")
            .bind(id)
            .fetch_one(&self.api.pool)
            .await
            .unwrap()
    }

    async fn policy(&self, retention: serde_json::Value) {
        let (s, body) = self
            .api
            .call(
                Method::PATCH,
                &format!("/v1/projects/{}", self.t.project),
                Some(&self.t.owner),
                Some(json!({"settings": {"retention": retention}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }

    async fn gc(
        &self,
        store: Arc<dyn ObjectStore>,
        dry_run: bool,
    ) -> Result<gc::GcReport, gc::GcError> {
        let settings: serde_json::Value =
            sqlx::query_scalar("SELECT settings FROM projects WHERE id = $1")
                .bind(self.t.project)
                .fetch_one(&self.api.pool)
                .await
                .unwrap();
        let opts = GcOptions {
            dry_run,
            now: self.now,
            config: GcConfig::default(),
        };
        gc::collect(
            &self.api.pool,
            &store,
            &self.bucket,
            self.t.project,
            &settings,
            &opts,
        )
        .await
    }
}

#[sqlx::test(migrations = false)]
async fn the_policy_decides_what_goes_and_a_dry_run_only_says(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = World::new(&opts).await;
    w.policy(
        json!({"keepLast": 2, "keepDays": 10, "failed": {"keepLast": 1}, "cacheUnusedDays": 5}),
    )
    .await;
    let d = Duration::days;
    let (k1, k2, k5, orphan_old, orphan_new) = (key(1), key(2), key(5), key(8), key(9));
    let r1 = w.run("succeeded", d(50), Some(&k1)).await;
    let r2 = w.run("succeeded", d(40), Some(&k2)).await;
    let r3 = w.run("succeeded", d(30), None).await; // pinned
    let r4 = w.run("succeeded", d(20), None).await; // second newest
    let r5 = w.run("cancelled", d(1), Some(&k5)).await; // newest, recent
    let f_old = w.run("failed", d(45), None).await;
    let f_new = w.run("failed", d(2), None).await;
    // Pinning: viewers may not, editors may.
    let pin_path = format!("/v1/runs/{r3}/pin");
    let (s, _) = w
        .api
        .call(Method::POST, &pin_path, Some(&w.t.viewer), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, body) = w
        .api
        .call(Method::POST, &pin_path, Some(&w.t.editor), None)
        .await;
    assert_eq!((s, body["pinned"].as_bool()), (StatusCode::OK, Some(true)));
    w.entry(&k1, d(50)).await; // used only by r1, which goes: unused 50 days
    w.entry(&k2, d(1)).await; // used only by r2, but written yesterday
    w.entry(&k5, d(60)).await; // old, but a kept run uses it
    w.entry(&orphan_old, d(10)).await;
    w.entry(&orphan_new, d(1)).await;
    w.put("temp/source-index/old", d(2)).await;
    w.put("temp/new", Duration::hours(1)).await;

    let store = w.api.store.clone();
    let dry = w.gc(store.clone(), true).await.unwrap();
    let mut runs = dry.runs.clone();
    runs.sort();
    let mut want = vec![r1, r2, f_old];
    want.sort();
    assert_eq!(runs, want);
    let mut entries = dry.cache_entries.clone();
    entries.sort();
    assert_eq!(
        entries,
        [
            format!("{}/{k1}", w.t.pipeline),
            format!("{}/{orphan_old}", w.t.pipeline)
        ]
    );
    assert_eq!(dry.temp_objects, 1);
    // 3 runs × 4 files + 2 entries × 2 files + 1 scratch object, 100 bytes each.
    assert_eq!((dry.objects_deleted, dry.bytes_freed), (17, 1_700));
    assert!(dry.objects_examined >= 3 * 4 + 4 * 4 + 5 * 2 + 2);
    // A dry run deletes nothing.
    for r in [r1, r2, f_old] {
        assert!(w.row_exists(r).await && w.exists(&format!("{}metadata.json", w.run_prefix(r))));
    }
    assert!(w.entry_exists(&k1) && w.exists("temp/source-index/old"));

    let done = w.gc(store.clone(), false).await.unwrap();
    assert_eq!(
        (done.runs.len(), done.cache_entries.len(), done.bytes_freed),
        (3, 2, 1_700)
    );
    for r in [r1, r2, f_old] {
        assert!(!w.row_exists(r).await, "{r} row");
        assert!(
            !w.exists(&format!("{}lineage.json", w.run_prefix(r))),
            "{r} files"
        );
    }
    for r in [r3, r4, r5, f_new] {
        assert!(
            w.row_exists(r).await && w.exists(&format!("{}metadata.json", w.run_prefix(r))),
            "{r} kept"
        );
    }
    assert!(!w.entry_exists(&k1) && !w.entry_exists(&orphan_old));
    assert!(w.entry_exists(&k2) && w.entry_exists(&k5) && w.entry_exists(&orphan_new));
    assert!(!w.exists("temp/source-index/old") && w.exists("temp/new"));
    let nodes: i64 = sqlx::query_scalar("SELECT count(*) FROM node_runs WHERE run_id = ANY($1)")
        .bind(vec![r1, r2])
        .fetch_one(&w.api.pool)
        .await
        .unwrap();
    assert_eq!(nodes, 0);

    // Nothing left to do; unpinned, r3 goes next time.
    let again = w.gc(store.clone(), false).await.unwrap();
    assert_eq!((again.runs.len(), again.objects_deleted), (0, 0));
    let (s, _) = w
        .api
        .call(
            Method::DELETE,
            &format!("/v1/runs/{r3}/pin"),
            Some(&w.t.editor),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(w.gc(store, false).await.unwrap().runs, [r3]);
}

#[sqlx::test(migrations = false)]
async fn a_gc_stopped_between_deletions_is_finished_by_the_next(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = World::new(&opts).await;
    w.policy(json!({"keepLast": 1})).await;
    let old = w.run("succeeded", Duration::days(3), None).await;
    let _new = w.run("succeeded", Duration::days(1), None).await;
    // The store dies after the first deletion: the commit marker.
    let deletes = Arc::new(AtomicUsize::new(0));
    let d2 = deletes.clone();
    let dying: Arc<dyn ObjectStore> = Arc::new(common::HookedStore::failing(
        w.api.store.clone(),
        move |op, _| op == "delete" && d2.fetch_add(1, Ordering::SeqCst) >= 1,
    ));
    let err = w.gc(dying, false).await.unwrap_err();
    assert!(err.to_string().starts_with("the store failed"), "{err}");
    let prefix = w.run_prefix(old);
    // Half deleted: marker gone first, so the folder reads as incomplete;
    // the row is still there for the next GC.
    assert!(!w.exists(&format!("{prefix}metadata.json")));
    assert!(w.exists(&format!("{prefix}lineage.json")));
    assert!(w.row_exists(old).await);
    let b = mudrock::inspect::Bucket {
        store: w.api.store.clone(),
        name: w.bucket.clone(),
    };
    let r = mudrock::inspect::RunRef {
        pipeline_id: w.t.pipeline.to_string(),
        run_id: old.to_string(),
    };
    assert!(matches!(
        b.run(&r).await,
        Err(mudrock::inspect::InspectError::Incomplete { .. })
    ));

    let next = w.gc(w.api.store.clone(), false).await.unwrap();
    assert_eq!(next.runs, [old]);
    assert!(!w.row_exists(old).await);
    assert!(!w.exists(&format!("{prefix}lineage.json")));
}

#[sqlx::test(migrations = false)]
async fn bad_policies_and_missing_buckets_are_errors_and_nothing_is_deleted(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = World::new(&opts).await;
    for (policy, msg) in [
        (
            json!({"keepLast": -1}),
            "retention: invalid value: integer `-1`",
        ),
        (
            json!({"keepDays": 0}),
            "retention.keepDays must be 1 to 36500, not 0",
        ),
        (
            json!({"keepLast": 5, "failed": {"keepDays": 1000000}}),
            "retention.failed.keepDays must be 1 to 36500, not 1000000",
        ),
        (json!({"keep": 5}), "unknown field `keep`"),
    ] {
        let (s, body) = w
            .api
            .call(
                Method::PATCH,
                &format!("/v1/projects/{}", w.t.project),
                Some(&w.t.owner),
                Some(json!({"settings": {"retention": policy}})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(msg),
            "{body}"
        );
    }
    // A policy written around mudrock is refused by GC, naming the project.
    sqlx::query(
        "UPDATE projects SET settings = '{\"retention\": {\"keepLast\": 0}}' WHERE id = $1",
    )
    .bind(w.t.project)
    .execute(&w.api.pool)
    .await
    .unwrap();
    let run = w.run("succeeded", Duration::days(400), None).await;
    let err = w.gc(w.api.store.clone(), false).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "project {}: retention.keepLast must be 1 to 1000000, not 0",
            w.t.project
        )
    );
    assert!(w.row_exists(run).await);
    // A bucket that cannot be listed.
    sqlx::query(
        "UPDATE projects SET settings = '{\"retention\": {\"keepLast\": 1}}' WHERE id = $1",
    )
    .bind(w.t.project)
    .execute(&w.api.pool)
    .await
    .unwrap();
    std::fs::rename(
        w.api.dir.path().join(&w.bucket),
        w.api.dir.path().join("moved"),
    )
    .unwrap();
    let err = w.gc(w.api.store.clone(), false).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(w.row_exists(run).await);
}

#[sqlx::test(migrations = false)]
async fn a_deleted_project_is_restorable_until_its_grace_ends_then_purged(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = World::new(&opts).await;
    let run = w.run("succeeded", Duration::days(1), None).await;
    w.put("shared/data.csv", Duration::days(1)).await;
    let (s, _) = w
        .api
        .call(
            Method::DELETE,
            &format!("/v1/projects/{}", w.t.project),
            Some(&w.t.owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Gone from the API, its bucket untouched.
    let (s, _) = w
        .api
        .call(
            Method::GET,
            &format!("/v1/projects/{}", w.t.project),
            Some(&w.t.owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        w.exists("shared/data.csv") && w.exists(&format!("{}metadata.json", w.run_prefix(run)))
    );

    let round = |now: DateTime<Utc>| {
        let (pool, store, buckets) = (
            w.api.pool.clone(),
            w.api.store.clone(),
            w.api.settings.store.clone(),
        );
        async move {
            let opts = GcOptions {
                dry_run: false,
                now,
                config: GcConfig::default(),
            };
            gc::collect_all(&pool, &store, &buckets, None, &opts)
                .await
                .unwrap()
        }
    };
    // Within the grace (7 days): nothing purged; restored with its members
    // and pipelines.
    assert!(
        round(Utc::now() + Duration::days(6))
            .await
            .purged
            .is_empty()
    );
    gc::purge::restore(&w.api.pool, w.t.project).await.unwrap();
    let (s, p) = w
        .api
        .call(
            Method::GET,
            &format!("/v1/projects/{}", w.t.project),
            Some(&w.t.editor),
            None,
        )
        .await;
    assert_eq!((s, p["role"].as_str()), (StatusCode::OK, Some("editor")));
    let (s, pl) = w
        .api
        .call(
            Method::GET,
            &format!("/v1/pipelines/{}", w.t.pipeline),
            Some(&w.t.owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{pl}");
    let (s, _) = w
        .api
        .call(
            Method::GET,
            &format!("/v1/pipelines/{}/versions/1", w.t.pipeline),
            Some(&w.t.owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Deleted again and past the grace: purged, audited, not restorable.
    let (s, _) = w
        .api
        .call(
            Method::DELETE,
            &format!("/v1/projects/{}", w.t.project),
            Some(&w.t.owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let r = round(Utc::now() + Duration::days(8)).await;
    assert_eq!(r.purged.len(), 1);
    assert_eq!((r.purged[0].project, r.purged[0].objects), (w.t.project, 5));
    assert!(
        !w.exists("shared/data.csv") && !w.exists(&format!("{}lineage.json", w.run_prefix(run)))
    );
    let err = gc::purge::restore(&w.api.pool, w.t.project)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("was purged"), "{err}");
    let purge_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE project_id = $1 AND action = 'GC purge deleted project'",
    )
    .bind(w.t.project)
    .fetch_one(&w.api.pool)
    .await
    .unwrap();
    assert_eq!(purge_rows, 1);
    let v = mudrock::service::audit::verify(&w.api.pool, Some(w.t.project))
        .await
        .unwrap();
    assert!(v.breaks.is_empty(), "{:?}", v.breaks);
    assert!(
        round(Utc::now() + Duration::days(9))
            .await
            .purged
            .is_empty(),
        "purged once"
    );
}
