//! `mudrock audit verify [--project P] [--json]`: recomputes the audit
//! trail's hash chains and names the first row where each breaks (exit 1),
//! or says how many rows and chains are intact (exit 0).

use clap::{Args, Subcommand};
use uuid::Uuid;

use super::*;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check that no audit row was edited, removed or inserted.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only this project's chain.
    #[arg(long)]
    pub project: Option<Uuid>,
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn audit_cmd(c: AuditCommand) -> i32 {
    let AuditCommand::Verify(a) = c;
    let pool = match connect_db(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let v = match crate::service::audit::verify(&pool, a.project).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if v.breaks.is_empty() {
        println!(
            "audit trail intact: {} row(s) in {} chain(s)",
            v.rows, v.chains
        );
    } else {
        for b in &v.breaks {
            let p = b
                .project_id
                .map(|p| p.to_string())
                .unwrap_or_else(|| "(no project)".into());
            println!("project {p}: row {}: {}", b.seq, b.problem);
        }
    }
    if v.breaks.is_empty() { 0 } else { 1 }
}
