//! `mudrock import-bucket BUCKET --owner USER [--name NAME] [--dry-run]
//! [--keep-originals] [--json]`: a legacy bucket becomes a project, its
//! loose objects moved under `shared/` (see `service::import`), with a
//! report of every object and where it went.

use clap::Args;
use uuid::Uuid;

use super::*;
use crate::service::import::{self, ImportOptions};

#[derive(Args, Debug)]
pub struct ImportArgs {
    pub bucket: String,
    #[command(flatten)]
    pub db: DbArgs,
    /// The user who owns the new project.
    #[arg(long)]
    pub owner: Uuid,
    /// The project's name (default: the bucket's).
    #[arg(long)]
    pub name: Option<String>,
    /// Change nothing; report what would happen.
    #[arg(long)]
    pub dry_run: bool,
    /// Copy loose objects under shared/ but leave the originals.
    #[arg(long)]
    pub keep_originals: bool,
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn import_cmd(a: ImportArgs, config: Config) -> i32 {
    let pool = match connect_db(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = ImportOptions {
        bucket: a.bucket.clone(),
        owner: a.owner,
        name: a.name,
        dry_run: a.dry_run,
        keep_originals: a.keep_originals,
    };
    let report = match import::import(&pool, &store, &config.store, &opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                import::ImportError::Store(_) | import::ImportError::Db(_) => 3,
                _ => 2,
            };
        }
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return 0;
    }
    for o in &report.objects {
        match &o.to {
            Some(to) => println!("{:<10} {} → {to} ({} bytes)", o.action, o.key, o.size),
            None => println!("{:<10} {} ({} bytes)", o.action, o.key, o.size),
        }
    }
    let moved = report.objects.iter().filter(|o| o.to.is_some()).count();
    match (report.dry_run, report.project) {
        (true, _) => println!(
            "dry run: bucket {} would become a project; {moved} object(s) would go under shared/",
            report.bucket
        ),
        (false, Some(p)) => println!(
            "bucket {} is project {p}{}: {moved} object(s) under shared/, {} bytes verified",
            report.bucket,
            if report.resumed { " (resumed)" } else { "" },
            report.verified_bytes
        ),
        (false, None) => {}
    }
    0
}
