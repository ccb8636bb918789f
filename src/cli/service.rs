//! Commands against PostgreSQL: `migrate`, `worker`, `project create`,
//! `submit` and `cancel`.

use super::*;
use crate::service::pipelines::{self, Submission};
use crate::service::queue::TriggerKind;
use crate::service::runs;

pub(super) async fn migrate_cmd(a: MigrateArgs) -> i32 {
    let pool = match connect_db(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    if a.check {
        return match crate::service::db::check_current(&pool).await {
            Ok(()) => {
                println!("the database is current");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
    }
    match crate::service::db::migrate(&pool).await {
        Ok(v) if v.is_empty() => {
            println!("the database is current");
            0
        }
        Ok(v) => {
            if !v.mudrock.is_empty() {
                let list: Vec<String> = v.mudrock.iter().map(|v| format!("{v:04}")).collect();
                println!("applied migration(s) {}", list.join(", "));
            }
            if !v.queue.is_empty() {
                println!(
                    "applied {} migration(s) of the queue storage (apalis)",
                    v.queue.len()
                );
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}

pub(super) async fn connect_db(url: &str) -> Result<sqlx::PgPool, i32> {
    crate::service::db::connect(url).await.map_err(|e| {
        eprintln!("error: {e}");
        3
    })
}

/// A connection to a database that is not behind (else exit code 2).
pub(super) async fn connect_current(url: &str) -> Result<sqlx::PgPool, i32> {
    let pool = connect_db(url).await?;
    if let Err(e) = crate::service::db::check_current(&pool).await {
        eprintln!("error: {e}");
        return Err(2);
    }
    Ok(pool)
}

/// SIGTERM or SIGINT, whichever comes first.
pub(super) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(super) async fn worker_cmd(a: WorkerArgs, mut config: Config) -> i32 {
    if let Some(c) = a.concurrency {
        config.worker.concurrency = c.max(1);
    }
    let pool = match connect_db(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let worker =
        crate::service::worker::Worker::new(pool, config.engine(store), config.clone(), a.id);
    match worker.run(shutdown_signal()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            match e.fault() {
                crate::error::Fault::User => 2,
                _ => 3,
            }
        }
    }
}

pub(super) async fn scheduler_cmd(a: SchedulerArgs, config: Config) -> i32 {
    let pool = match connect_current(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    scheduler(pool, &config, a.id).run(shutdown_signal()).await;
    0
}

/// The scheduler of this process, on the system clock.
pub(super) fn scheduler(
    pool: sqlx::PgPool,
    config: &Config,
    id: Option<String>,
) -> crate::service::scheduler::Scheduler {
    crate::service::scheduler::Scheduler::new(
        pool,
        config.scheduler.clone(),
        std::sync::Arc::new(crate::service::scheduler::SystemClock),
        id,
    )
}

pub(super) async fn project_create_cmd(a: ProjectCreateArgs, config: Config) -> i32 {
    let pool = match connect_current(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let settings = match a.max_concurrent_runs {
        Some(n) => serde_json::json!({"maxConcurrentRuns": n}),
        None => serde_json::json!({}),
    };
    match crate::service::projects::create(
        &pool,
        &config.store,
        store.as_ref(),
        &a.name,
        a.owner,
        &settings,
    )
    .await
    {
        Ok(id) => {
            println!("{id}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}

pub(super) async fn submit_cmd(a: SubmitArgs, config: Config) -> i32 {
    let (pipeline, _) = match load(&a.file, false, false, config.limits) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let pool = match connect_current(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let submission = Submission {
        project: a.project,
        pipeline_id: a.pipeline,
        pipeline: &pipeline,
        trigger: TriggerKind::Cli,
        requested_by: None,
        idempotency_key: a.idempotency_key.clone(),
    };
    let s = match pipelines::submit(&pool, &submission).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot submit the pipeline: {e}");
            return 3;
        }
    };
    eprintln!(
        "pipeline {} revision {} ({}); run {} {}",
        s.pipeline_id,
        s.saved.revision,
        &s.saved.definition_hash[..12],
        s.run.run_id,
        if s.run.created {
            "queued"
        } else {
            "already exists (idempotency key)"
        }
    );
    println!("{}", s.run.run_id);
    if !a.wait {
        return 0;
    }
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    let run = match pipelines::wait_final(&mut conn, s.run.run_id, Duration::from_millis(200)).await
    {
        Ok(Some(run)) => run,
        Ok(None) => {
            eprintln!("error: run {} disappeared", s.run.run_id);
            return 3;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    if let Ok(nodes) = runs::node_states(&mut conn, run.id).await {
        for n in nodes {
            eprintln!(
                "  {:<24} {:<10} {}",
                n.node_id,
                n.status.name(),
                n.reason.or(n.error).unwrap_or_default()
            );
        }
    }
    eprintln!(
        "run {} {} (attempt {})",
        run.id,
        run.status.name(),
        run.attempt
    );
    if let Some(e) = run.error {
        eprintln!("{e}");
    }
    if run.status == RunStatus::Succeeded {
        0
    } else {
        1
    }
}

pub(super) async fn cancel_cmd(a: CancelArgs) -> i32 {
    let pool = match connect_db(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    match runs::request_cancel(&mut conn, a.run_id).await {
        Ok(true) => {
            println!("cancellation requested for run {}", a.run_id);
            0
        }
        Ok(false) => {
            eprintln!("run {} is finished or does not exist", a.run_id);
            1
        }
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}
