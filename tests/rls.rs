//! Row-level security, cell by cell: every operation on every table, for an
//! owner, an editor, a viewer and a stranger, as the role `authenticated`
//! with the user's JWT claims (a role that does not bypass RLS: not a
//! superuser, not the tables' owner). Each cell runs in its own transaction
//! and is rolled back, so cells cannot influence each other.

use sqlx::{AssertSqlSafe, PgPool};

/// SQL built from this file's constants only: audited.
fn sql(s: impl Into<String>) -> AssertSqlSafe<String> {
    AssertSqlSafe(s.into())
}

const OWNER: &str = "00000000-0000-4000-8000-00000000000a";
const EDITOR: &str = "00000000-0000-4000-8000-00000000000b";
const VIEWER: &str = "00000000-0000-4000-8000-00000000000c";
const STRANGER: &str = "00000000-0000-4000-8000-00000000000d";
const NEWCOMER: &str = "00000000-0000-4000-8000-00000000000e";

const PROJECT: &str = "10000000-0000-4000-8000-000000000001";
const PIPELINE: &str = "20000000-0000-4000-8000-000000000001";
const VERSION: &str = "30000000-0000-4000-8000-000000000001";
const SCHEDULE: &str = "40000000-0000-4000-8000-000000000001";
const RUN: &str = "50000000-0000-4000-8000-000000000001";
const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Rows owned by nobody in particular, made as the superuser.
async fn fixture(pool: &PgPool) {
    let sql = format!(
        "INSERT INTO projects (id, name, owner_id) VALUES ('{PROJECT}', 'p', '{OWNER}');
         INSERT INTO project_permissions (project_id, user_id, role) VALUES
             ('{PROJECT}', '{EDITOR}', 'editor'), ('{PROJECT}', '{VIEWER}', 'viewer');
         INSERT INTO pipelines (id, project_id, name) VALUES ('{PIPELINE}', '{PROJECT}', 'pl');
         INSERT INTO pipeline_versions (id, pipeline_id, revision, version, dag_definition, definition_hash)
             VALUES ('{VERSION}', '{PIPELINE}', 1, '1.0.0', '{{}}', '{HASH}');
         INSERT INTO pipeline_schedules (id, pipeline_id, cron) VALUES ('{SCHEDULE}', '{PIPELINE}', '0 * * * *');
         INSERT INTO pipeline_runs (id, pipeline_id, project_id, pipeline_version_id, trigger)
             VALUES ('{RUN}', '{PIPELINE}', '{PROJECT}', '{VERSION}', 'api');
         INSERT INTO node_runs (run_id, node_id) VALUES ('{RUN}', 'n1');"
    );
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(pool)
        .await
        .unwrap();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied,
}
use Outcome::{Allowed as Y, Denied as N};

/// Runs `sql` as `user` and says whether it took effect.
async fn attempt(pool: &PgPool, user: &str, sql: &str) -> Outcome {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
        .bind(format!(
            "{{\"sub\": \"{user}\", \"role\": \"authenticated\"}}"
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
    // The premise of the whole test: this role cannot bypass RLS.
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert!(!superuser && !bypass, "the test role must not bypass RLS");
    let outcome = if sql.trim_start().to_uppercase().starts_with("SELECT") {
        let n: i64 = sqlx::query_scalar(self::sql(sql))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        if n > 0 { Y } else { N }
    } else {
        match sqlx::query(self::sql(sql)).execute(&mut *tx).await {
            Ok(r) if r.rows_affected() > 0 => Y,
            Ok(_) => N, // filtered out by a policy
            Err(e) => {
                let code = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.to_string());
                // 42501: no privilege or a policy's WITH CHECK; 23514: a
                // named CHECK or trigger (immutable versions). Anything
                // else is a bug in the test or the schema.
                assert!(
                    matches!(code.as_deref(), Some("42501" | "23514")),
                    "{sql}: {e}"
                );
                N
            }
        }
    };
    tx.rollback().await.unwrap();
    outcome
}

#[sqlx::test(migrations = "./migrations")]
async fn every_operation_for_every_role(pool: PgPool) {
    fixture(&pool).await;
    let users = [
        ("owner", OWNER),
        ("editor", EDITOR),
        ("viewer", VIEWER),
        ("stranger", STRANGER),
    ];
    let new_id = "60000000-0000-4000-8000-000000000001";
    #[rustfmt::skip]
    let matrix: Vec<(&str, String, [Outcome; 4])> = vec![
        ("see the project", format!("SELECT count(*) FROM projects WHERE id = '{PROJECT}'"), [Y, Y, Y, N]),
        ("rename the project", format!("UPDATE projects SET name = 'x' WHERE id = '{PROJECT}'"), [Y, Y, N, N]),
        ("take over the project", format!("UPDATE projects SET owner_id = '{STRANGER}' WHERE id = '{PROJECT}'"), [N, N, N, N]),
        ("delete the project", format!("DELETE FROM projects WHERE id = '{PROJECT}'"), [Y, N, N, N]),
        ("create a project of one's own", "INSERT INTO projects (name, owner_id) SELECT 'mine', auth.uid()".to_string(), [Y, Y, Y, Y]),
        ("create a project for someone else", format!("INSERT INTO projects (name, owner_id) VALUES ('theirs', '{NEWCOMER}')"), [N, N, N, N]),
        ("see the permissions", format!("SELECT count(*) FROM project_permissions WHERE project_id = '{PROJECT}'"), [Y, Y, Y, N]),
        ("grant a permission", format!("INSERT INTO project_permissions (project_id, user_id, role) VALUES ('{PROJECT}', '{NEWCOMER}', 'viewer')"), [Y, N, N, N]),
        ("change a role", format!("UPDATE project_permissions SET role = 'editor' WHERE project_id = '{PROJECT}' AND user_id = '{VIEWER}'"), [Y, N, N, N]),
        ("revoke a permission", format!("DELETE FROM project_permissions WHERE project_id = '{PROJECT}' AND user_id = '{VIEWER}'"), [Y, N, N, N]),
        ("see the pipeline", format!("SELECT count(*) FROM pipelines WHERE id = '{PIPELINE}'"), [Y, Y, Y, N]),
        ("create a pipeline", format!("INSERT INTO pipelines (project_id, name) VALUES ('{PROJECT}', 'new')"), [Y, Y, N, N]),
        ("update the pipeline", format!("UPDATE pipelines SET dag_definition = '{{\"nodes\": []}}' WHERE id = '{PIPELINE}'"), [Y, Y, N, N]),
        ("move the pipeline to another project", format!("UPDATE pipelines SET project_id = '{new_id}' WHERE id = '{PIPELINE}'"), [N, N, N, N]),
        ("delete the pipeline", format!("DELETE FROM pipelines WHERE id = '{PIPELINE}'"), [Y, N, N, N]),
        ("see a version", format!("SELECT count(*) FROM pipeline_versions WHERE id = '{VERSION}'"), [Y, Y, Y, N]),
        ("save a version", format!("INSERT INTO pipeline_versions (pipeline_id, revision, version, dag_definition, definition_hash) VALUES ('{PIPELINE}', 2, '1.0.1', '{{}}', '{HASH}')"), [Y, Y, N, N]),
        ("change a version", format!("UPDATE pipeline_versions SET version = 'x' WHERE id = '{VERSION}'"), [N, N, N, N]),
        ("delete a version", format!("DELETE FROM pipeline_versions WHERE id = '{VERSION}'"), [N, N, N, N]),
        ("see the schedule", format!("SELECT count(*) FROM pipeline_schedules WHERE id = '{SCHEDULE}'"), [Y, Y, Y, N]),
        ("create a schedule", format!("INSERT INTO pipeline_schedules (pipeline_id, cron) VALUES ('{PIPELINE}', '*/5 * * * *')"), [Y, Y, N, N]),
        ("update the schedule", format!("UPDATE pipeline_schedules SET enabled = false WHERE id = '{SCHEDULE}'"), [Y, Y, N, N]),
        ("delete the schedule (editors manage schedules, issue 15)", format!("DELETE FROM pipeline_schedules WHERE id = '{SCHEDULE}'"), [Y, Y, N, N]),
        ("see the run", format!("SELECT count(*) FROM pipeline_runs WHERE id = '{RUN}'"), [Y, Y, Y, N]),
        ("trigger a run", format!("INSERT INTO pipeline_runs (pipeline_id, project_id, pipeline_version_id, trigger) VALUES ('{PIPELINE}', '{PROJECT}', '{VERSION}', 'api')"), [Y, Y, N, N]),
        ("cancel the run", format!("UPDATE pipeline_runs SET cancel_requested = true WHERE id = '{RUN}'"), [Y, Y, N, N]),
        ("mark the run succeeded (worker's job)", format!("UPDATE pipeline_runs SET status = 'succeeded', started_at = now(), finished_at = now() WHERE id = '{RUN}'"), [N, N, N, N]),
        ("delete the run", format!("DELETE FROM pipeline_runs WHERE id = '{RUN}'"), [Y, N, N, N]),
        ("see node states", format!("SELECT count(*) FROM node_runs WHERE run_id = '{RUN}'"), [Y, Y, Y, N]),
        ("write node states (worker's job)", format!("INSERT INTO node_runs (run_id, node_id) VALUES ('{RUN}', 'n2')"), [N, N, N, N]),
    ];
    let mut wrong = Vec::new();
    for (what, sql, expected) in &matrix {
        for (i, (who, user)) in users.iter().enumerate() {
            let got = attempt(&pool, user, sql).await;
            if got != expected[i] {
                wrong.push(format!(
                    "{who} / {what}: expected {:?}, got {got:?}",
                    expected[i]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cells wrong:\n{}",
        wrong.len(),
        matrix.len() * 4,
        wrong.join("\n")
    );
    assert_eq!(
        matrix.len() * users.len(),
        120,
        "the matrix covers 30 operations x 4 roles"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_project_always_keeps_an_owner(pool: PgPool) {
    fixture(&pool).await;
    let owners: i64 = sqlx::query_scalar(sql(format!(
        "SELECT count(*) FROM project_permissions WHERE project_id = '{PROJECT}' AND role = 'owner'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(owners, 1, "the creator became its owner");
    // The owner cannot demote or remove themself while they are the last one.
    for stmt in [
        format!(
            "UPDATE project_permissions SET role = 'editor' WHERE project_id = '{PROJECT}' AND user_id = '{OWNER}'"
        ),
        format!(
            "DELETE FROM project_permissions WHERE project_id = '{PROJECT}' AND user_id = '{OWNER}'"
        ),
    ] {
        let err = sqlx::query(sql(stmt)).execute(&pool).await.unwrap_err();
        assert!(
            err.to_string().contains("must keep at least one owner"),
            "{err}"
        );
    }
    // With a second owner, the first may go.
    sqlx::query(sql(format!("UPDATE project_permissions SET role = 'owner' WHERE project_id = '{PROJECT}' AND user_id = '{EDITOR}'")))
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(attempt(&pool, OWNER, &format!("DELETE FROM project_permissions WHERE project_id = '{PROJECT}' AND user_id = '{OWNER}'")).await, Y);
    // Deleting the whole project takes every permission with it.
    sqlx::query(sql(format!("DELETE FROM projects WHERE id = '{PROJECT}'")))
        .execute(&pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn daemons_refuse_a_database_that_is_behind(pool: PgPool) {
    let err = mudrock::service::db::check_current(&pool)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the database is behind: migration(s) 0001, 0002, 0003, 0004, 0005, 0006, 0007, 0008, 0009, 0010, 0011, 0012 not applied; run `mudrock migrate`"
    );
    // Half-way (mudrock's own tables but not the queue's) is still behind.
    mudrock::service::db::MIGRATOR.run(&pool).await.unwrap();
    let err = mudrock::service::db::check_current(&pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("the database is behind: migration(s) 23 of the queue storage (apalis) not applied; run `mudrock migrate`"),
        "{err}"
    );
    let applied = mudrock::service::db::migrate(&pool).await.unwrap();
    assert!(applied.mudrock.is_empty());
    assert_eq!(applied.queue.len(), 23);
    mudrock::service::db::check_current(&pool)
        .await
        .expect("current after migrating");
    assert!(
        mudrock::service::db::migrate(&pool)
            .await
            .unwrap()
            .is_empty(),
        "migrating again is a no-op"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn named_checks_guard_the_invariants(pool: PgPool) {
    fixture(&pool).await;
    let cases = [
        (
            format!("UPDATE pipeline_runs SET status = 'running' WHERE id = '{RUN}'"),
            "pipeline_runs_running_has_started",
        ),
        (
            format!(
                "UPDATE pipeline_runs SET status = 'succeeded', started_at = now() WHERE id = '{RUN}'"
            ),
            "pipeline_runs_finished_iff_terminal",
        ),
        (
            format!(
                "UPDATE pipeline_runs SET status = 'failed', started_at = now(), finished_at = now() WHERE id = '{RUN}'"
            ),
            "pipeline_runs_failed_has_error",
        ),
        (
            format!("UPDATE pipeline_runs SET attempt = -1 WHERE id = '{RUN}'"),
            "pipeline_runs_attempt_not_negative",
        ),
        (
            format!("UPDATE node_runs SET status = 'skipped' WHERE run_id = '{RUN}'"),
            "node_runs_skipped_has_reason",
        ),
        (
            format!("UPDATE node_runs SET cache_key = 'nope' WHERE run_id = '{RUN}'"),
            "node_runs_cache_key_is_blake3_hex",
        ),
        (
            format!(
                "UPDATE projects SET settings = '{{\"maxConcurrentRuns\": 0}}' WHERE id = '{PROJECT}'"
            ),
            "projects_max_concurrent_runs_positive",
        ),
        (
            format!("UPDATE pipeline_versions SET version = '2' WHERE id = '{VERSION}'"),
            "pipeline_versions_immutable",
        ),
    ];
    for (stmt, constraint) in cases {
        let err = sqlx::query(sql(stmt.clone()))
            .execute(&pool)
            .await
            .unwrap_err();
        let db = err
            .as_database_error()
            .unwrap_or_else(|| panic!("{stmt}: {err}"));
        assert_eq!(db.constraint(), Some(constraint), "{stmt}: {err}");
    }
    // One run per Idempotency-Key.
    let dup = format!(
        "INSERT INTO pipeline_runs (pipeline_id, project_id, pipeline_version_id, trigger, idempotency_key) VALUES
         ('{PIPELINE}', '{PROJECT}', '{VERSION}', 'api', 'k1'), ('{PIPELINE}', '{PROJECT}', '{VERSION}', 'api', 'k1')"
    );
    let err = sqlx::query(sql(dup)).execute(&pool).await.unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().constraint(),
        Some("pipeline_runs_idempotency_uq")
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn saving_appends_immutable_versions_whose_hash_runs_carry(pool: PgPool) {
    fixture(&pool).await;
    let pipeline: uuid::Uuid = PIPELINE.parse().unwrap();
    let def = common_definition();
    let mut conn = pool.acquire().await.unwrap();
    let v2 = mudrock::service::pipelines::save_version(&mut conn, pipeline, "1.1.0", &def, None)
        .await
        .unwrap();
    assert_eq!(v2.revision, 2, "after the fixture's revision 1");
    // Key order does not matter to the hash; content does.
    let reordered: serde_json::Value = serde_json::from_str(&def.to_string()).unwrap();
    let v3 =
        mudrock::service::pipelines::save_version(&mut conn, pipeline, "1.1.0", &reordered, None)
            .await
            .unwrap();
    assert_eq!((v3.revision, &v3.definition_hash), (3, &v2.definition_hash));
    let mut changed = def.clone();
    changed["nodes"][0]["config"]["source"] = serde_json::json!("shared/other.csv");
    let v4 =
        mudrock::service::pipelines::save_version(&mut conn, pipeline, "1.2.0", &changed, None)
            .await
            .unwrap();
    assert_ne!(v4.definition_hash, v2.definition_hash);
    let stored: serde_json::Value =
        sqlx::query_scalar("SELECT dag_definition FROM pipelines WHERE id = $1")
            .bind(pipeline)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored, changed,
        "the pipeline row holds the latest definition"
    );

    // A run of that version carries the same hash in its metadata.
    let (p, _) = mudrock::validate::validate(def.clone(), Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(mudrock::store::LocalStore::new(dir.path()));
    use mudrock::store::ObjectStore;
    store.create_bucket("project-local").await.unwrap();
    store
        .put("project-local", "shared/orders.csv", "id\n1\n".into())
        .await
        .unwrap();
    let p = std::sync::Arc::new(p);
    let r = mudrock::engine::Engine::new(store)
        .run(p.clone(), mudrock::engine::RunOptions::local(&p))
        .await
        .unwrap();
    assert_eq!(r.meta.definition_hash, v2.definition_hash);

    // Versions cannot be edited, even by the superuser.
    let err = sqlx::query("UPDATE pipeline_versions SET dag_definition = '{}' WHERE revision = 2")
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().constraint(),
        Some("pipeline_versions_immutable")
    );
}

fn common_definition() -> serde_json::Value {
    serde_json::json!({"nodes": [
        {"id": "orders", "nodeType": "ingestion", "config": {"source": "shared/orders.csv"}},
        {"id": "out", "nodeType": "output", "config": {}, "dependencies": ["orders"]}
    ], "edges": []})
}

#[sqlx::test(migrations = false)]
async fn the_queue_tables_are_closed_to_api_callers(pool: PgPool) {
    // apalis' tables hold no user-facing data and have no policies: callers
    // inside RLS (anon, authenticated) cannot reach the schema at all; only
    // the worker's service connection uses it.
    mudrock::service::db::migrate(&pool).await.unwrap();
    for role in ["authenticated", "anon"] {
        for table in ["apalis.jobs", "apalis.workers"] {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(sql(format!("SET LOCAL ROLE {role}")))
                .execute(&mut *tx)
                .await
                .unwrap();
            let err = sqlx::query(sql(format!("SELECT count(*) FROM {table}")))
                .execute(&mut *tx)
                .await
                .unwrap_err();
            let code = err.as_database_error().and_then(|d| d.code()).unwrap();
            assert_eq!(code, "42501", "{role} on {table}: {err}");
        }
    }
}
