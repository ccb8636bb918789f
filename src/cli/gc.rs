//! `mudrock gc [--project P] [--dry-run] [--json]`: applies every project's
//! retention policy (or one's) to its runs, cache entries and scratch, and
//! says what went (or would go) and the bytes freed.

use clap::Args;
use uuid::Uuid;

use super::*;
use crate::service::gc::{self, GcOptions};

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only this project.
    #[arg(long)]
    pub project: Option<Uuid>,
    /// Delete nothing; list what would go.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn gc_cmd(a: GcArgs, config: Config) -> i32 {
    let pool = match connect_db(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = GcOptions {
        dry_run: a.dry_run,
        now: chrono::Utc::now(),
        config: config.gc.clone(),
    };
    let round = match gc::collect_all(&pool, &store, &config.store, a.project, &opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    let mut code = 0;
    let mut reports = Vec::new();
    for r in round.projects {
        match r {
            Ok(rep) => reports.push(rep),
            Err(e) => {
                eprintln!("error: {e}");
                code = 1;
            }
        }
    }
    if a.json {
        let v = serde_json::json!({"projects": reports, "purged": round.purged});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for p in &round.purged {
            println!(
                "deleted project {} (deleted {}): {} bucket {}: {} object(s), {} bytes",
                p.project,
                p.deleted_at,
                if a.dry_run { "would purge" } else { "purged" },
                p.bucket,
                p.objects,
                p.bytes
            );
        }
        let verb = if a.dry_run { "would delete" } else { "deleted" };
        for r in &reports {
            println!(
                "project {}: {verb} {} run(s), {} cache entr(ies), {} scratch object(s): {} object(s), {} bytes ({} examined)",
                r.project,
                r.runs.len(),
                r.cache_entries.len(),
                r.temp_objects,
                r.objects_deleted,
                r.bytes_freed,
                r.objects_examined
            );
            for run in &r.runs {
                println!("  run {run}");
            }
            for e in &r.cache_entries {
                println!("  cache {e}");
            }
        }
    }
    code
}

/// `mudrock project restore ID`.
pub(super) async fn restore_cmd(a: ProjectRestoreArgs) -> i32 {
    let pool = match connect_db(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    match gc::purge::restore(&pool, a.project).await {
        Ok(()) => {
            println!("project {} restored", a.project);
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
