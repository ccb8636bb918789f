//! `mudrock serve`: the HTTP API, a worker and a scheduler in one process
//! (or any of them, with `--roles`), sharing the database pool and the
//! store. SIGTERM or SIGINT stops them gracefully: the API stops accepting
//! and drains its requests, the worker stops claiming and finishes or
//! hands back runs, the scheduler finishes its pass. The scheduler role also
//! collects garbage every `[gc] interval_minutes`.

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::service::{connect_current, shutdown_signal};
use super::*;

pub(super) async fn serve_cmd(a: ServeArgs, mut config: Config) -> i32 {
    if let Some(l) = a.listen {
        config.api.listen = l;
    }
    let pool = match connect_current(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stop = CancellationToken::new();
    let mut tasks: JoinSet<Result<(), String>> = JoinSet::new();
    if a.roles.contains(&Role::Api) {
        let state = match crate::api::AppState::new(pool.clone(), store.clone(), config.clone()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        let listener = match tokio::net::TcpListener::bind(&config.api.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", config.api.listen);
                return 3;
            }
        };
        let stop = stop.clone();
        tasks.spawn(async move {
            crate::api::serve(listener, state, stop.cancelled_owned())
                .await
                .map_err(|e| format!("api: {e}"))
        });
    }
    if a.roles.contains(&Role::Scheduler) {
        let scheduler = super::service::scheduler(pool.clone(), &config, None);
        let stop2 = stop.clone();
        tasks.spawn(async move {
            scheduler.run(stop2.cancelled_owned()).await;
            Ok(())
        });
        // Retention runs on the same timer duty (`[gc] interval_minutes`).
        tokio::spawn(crate::service::gc::periodic(
            pool.clone(),
            store.clone(),
            config.store.clone(),
            config.gc.clone(),
            stop.clone(),
        ));
    }
    if a.roles.contains(&Role::Worker) {
        let worker =
            crate::service::worker::Worker::new(pool, config.engine(store), config.clone(), None);
        let stop = stop.clone();
        tasks.spawn(async move {
            worker
                .run(stop.cancelled_owned())
                .await
                .map_err(|e| format!("worker: {e}"))
        });
    }
    if tasks.is_empty() {
        eprintln!("error: --roles names nothing to run");
        return 2;
    }
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            stop.cancel();
        }
    });
    let mut code = 0;
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) | Err(e) = r.map_err(|e| e.to_string()) {
            eprintln!("error: {e}");
            code = 3;
            // One role failing stops the others.
            stop.cancel();
        }
    }
    code
}
