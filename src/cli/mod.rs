//! The `mudrock` command line: `run`, `validate` and `plan` on the embedded
//! default (a local directory as the object store, no database); `migrate`,
//! `worker`, `project create`, `submit` and `cancel` against PostgreSQL.
//!
//! Exit codes: 0 success; 1 the run failed or was cancelled; 2 the pipeline
//! is invalid (or the command line is); 3 storage or internal errors.

mod args;
mod audit;
mod gc;
mod import;
mod inspect;
mod lineage;
mod local;
mod render;
mod schedule;
mod serve;
mod service;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::app::config::{Config, StoreKind};
use crate::engine::{Event, RunOptions, plan};
use crate::model::pipeline::Pipeline;
use crate::model::{NodeRecord, NodeStatus, RunMeta, RunStatus};
use crate::store::ObjectStore;
use crate::validate::{self, Report};
pub use args::*;
use local::*;
pub use render::summary_table;
use render::*;
use service::*;

/// Entry point of the binary; returns the exit code.
pub fn main() -> i32 {
    // Long chains of fused nodes make deep lazy plans, and Polars' planner
    // recurses over them on tokio's blocking threads and its own pool,
    // whose default 2 MiB stacks a 40-node chain overflowed (a debug build
    // crashed). 64 MiB is reserved address space, not memory. Set before
    // any thread exists; a user's own RUST_MIN_STACK wins.
    if std::env::var_os("RUST_MIN_STACK").is_none() {
        // SAFETY: no other thread runs yet, so nothing reads the
        // environment concurrently.
        unsafe { std::env::set_var("RUST_MIN_STACK", (64usize << 20).to_string()) };
    }
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // Before any thread exists: Landlock binds this thread and its future
    // children only.
    if let Some(paths) = sandbox_paths(&cli, &config) {
        use crate::sandbox::Status;
        let required = config.sandbox.required;
        match crate::sandbox::apply(&config.sandbox, &paths) {
            Ok(s @ (Status::Unsupported | Status::Partial)) if required => {
                eprintln!("error: sandbox {} and sandbox.required is set", s.name());
                return 3;
            }
            Ok(Status::Unsupported) => tracing::warn!(
                "sandbox not supported by this kernel (no Landlock): the process runs unrestricted"
            ),
            Ok(Status::Partial) => tracing::warn!(
                "sandbox partially enforced: this kernel's Landlock lacks some rules"
            ),
            Ok(status) => tracing::debug!(status = status.name(), "sandbox"),
            Err(e) if required => {
                eprintln!("error: {e}");
                return 3;
            }
            Err(e) => {
                tracing::warn!(error = %e, "sandbox not applied: the process runs unrestricted")
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 3;
        }
    };
    // The command runs on a thread of its own, not on this main thread: the
    // sandbox hides /proc/self/maps, where glibc finds the main thread's
    // stack, and without its bounds every recursion guard (sqlparser,
    // Polars' planner: the `stacker` crate) maps a fresh 2 MiB stack per
    // call. A spawned thread's bounds are known without /proc.
    let command = move || {
        rt.block_on(async move {
            match cli.command {
                Command::Run(a) => run(a, config).await,
                Command::Validate(a) => validate_cmd(a, config).await,
                Command::Plan(a) => plan_cmd(a, config).await,
                Command::Upload(a) => upload_cmd(a, config).await,
                Command::Migrate(a) => migrate_cmd(a).await,
                Command::Worker(a) => worker_cmd(a, config).await,
                Command::Project(ProjectCommand::Create(a)) => project_create_cmd(a, config).await,
                Command::Project(ProjectCommand::Restore(a)) => gc::restore_cmd(a).await,
                Command::Submit(a) => submit_cmd(a, config).await,
                Command::Cancel(a) => cancel_cmd(a).await,
                Command::Sandbox(a) => sandbox_cmd(a, &config, cli.config.as_deref()),
                Command::Serve(a) => serve::serve_cmd(a, config).await,
                Command::Scheduler(a) => scheduler_cmd(a, config).await,
                Command::Schedule(c) => schedule::schedule_cmd(c).await,
                Command::Inspect(a) => inspect::inspect_cmd(a, config).await,
                Command::Lineage(a) => lineage::lineage_cmd(a, config).await,
                Command::Audit(c) => audit::audit_cmd(c).await,
                Command::Gc(a) => gc::gc_cmd(a, config).await,
                Command::ImportBucket(a) => import::import_cmd(a, config).await,
            }
        })
    };
    let ran = std::thread::Builder::new()
        .name("mudrock".into())
        .spawn(command)
        .map(|t| t.join());
    match ran {
        Ok(Ok(code)) => code,
        // A panic was already printed by the panic hook.
        Ok(Err(_)) => 101,
        Err(e) => {
            eprintln!("error: cannot start the command's thread: {e}");
            3
        }
    }
}

/// The config file in use, if any.
fn config_file(given: Option<&std::path::Path>) -> Option<PathBuf> {
    given
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("mudrock.toml")).filter(|p| p.exists()))
}

/// What the commands that run pipelines may touch (`None`: the command
/// is not sandboxed): the store and scratch directories, the config file
/// and the pipeline file.
fn sandbox_paths(cli: &Cli, config: &Config) -> Option<crate::sandbox::Paths> {
    let (config, file) = match &cli.command {
        Command::Run(a) => (effective(config.clone(), &a.store), Some(a.file.clone())),
        Command::Worker(_) | Command::Sandbox(_) => (config.clone(), None),
        Command::Serve(_) | Command::Scheduler(_) => (config.clone(), None),
        _ => return None,
    };
    let mut write = vec![config.scratch_dir()];
    if config.store.kind == StoreKind::Local {
        write.push(config.store.dir.clone());
    }
    // The API's token keys are read once at start, inside the sandbox.
    let keys = [&config.api.jwt.jwks_file, &config.api.jwt.pem_file]
        .into_iter()
        .flatten()
        .cloned();
    let read = config_file(cli.config.as_deref())
        .into_iter()
        .chain(file)
        .chain(keys)
        .collect();
    Some(crate::sandbox::Paths::new(&config.sandbox, read, write))
}

fn sandbox_cmd(a: SandboxArgs, config: &Config, given: Option<&std::path::Path>) -> i32 {
    let cli = Cli {
        config: given.map(PathBuf::from),
        log_format: LogFormat::Text,
        command: Command::Sandbox(SandboxArgs { try_read: vec![] }),
    };
    let status = crate::sandbox::status().unwrap_or(crate::sandbox::Status::Disabled);
    println!("sandbox: {}", status.name());
    if let Some(p) = sandbox_paths(&cli, config) {
        for r in &p.read {
            println!("  read  {}", r.display());
        }
        for w in &p.write {
            println!("  write {}", w.display());
        }
    }
    for f in &a.try_read {
        match std::fs::read(f) {
            Ok(b) => println!("read {}: allowed ({} bytes)", f.display(), b.len()),
            Err(e) => println!("read {}: denied ({e})", f.display()),
        }
    }
    0
}

fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => fmt.try_init(),
        LogFormat::Json => fmt.json().with_current_span(true).try_init(),
    };
    polars::error::set_warning_function(polars_warning);
}

/// Polars' warnings as log events instead of bare lines on stderr. Its
/// deprecations are about Polars' own API (standard SQL such as `CAST('2024-07-01'
/// AS DATE)` triggers one), which a pipeline's author cannot act on: debug.
fn polars_warning(message: &str, kind: polars::error::PolarsWarning) {
    use polars::error::PolarsWarning;
    let message = message.replace('\n', " ");
    match kind {
        PolarsWarning::UserWarning => tracing::warn!(target: "polars", %message, "polars warning"),
        other => tracing::debug!(target: "polars", kind = ?other, %message, "polars warning"),
    }
}

/// Reads and validates a file; prints the report; `None` when invalid.
fn load(
    file: &PathBuf,
    strict: bool,
    json: bool,
    limits: crate::limits::DocLimits,
) -> Result<(Pipeline, Report), i32> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return Err(2);
        }
    };
    match validate::validate_str(&text, validate::Options { strict, limits }) {
        Ok(ok) => Ok(ok),
        Err(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"valid": false, "diagnostics": report.diagnostics})
                    )
                    .unwrap()
                );
            } else {
                eprint!("{report}");
                eprintln!("{} ({} error(s))", file.display(), report.errors().count());
            }
            Err(2)
        }
    }
}

/// The configuration with `--store` applied.
fn effective(mut config: Config, s: &StoreArgs) -> Config {
    if let Some(dir) = &s.store {
        config.store.kind = StoreKind::Local;
        config.store.dir = dir.clone();
    }
    config
}

fn parse_streaming(s: &str) -> Result<crate::engine::Streaming, String> {
    use crate::engine::Streaming;
    match s {
        "auto" => Ok(Streaming::Auto),
        "always" => Ok(Streaming::Always),
        "never" => Ok(Streaming::Never),
        _ => Err("expected auto, always or never".into()),
    }
}

async fn open(config: &Config) -> Result<Arc<dyn ObjectStore>, i32> {
    config.open_store().await.map_err(|e| {
        eprintln!("error: {e}");
        3
    })
}

fn options(p: &Pipeline, config: &Config, s: &StoreArgs) -> RunOptions {
    let mut o = RunOptions::local(p);
    o.bucket = config.bucket(s.project.as_deref());
    if let Some(id) = &s.project {
        o.project_id = id.clone();
    }
    config.engine.apply(&mut o);
    o
}

/// Where a run's folder is, for people: a path or an s3:// URL.
fn location(config: &Config, bucket: &str, prefix: &str) -> String {
    match config.store.kind {
        StoreKind::Local => config
            .store
            .dir
            .join(bucket)
            .join(prefix)
            .display()
            .to_string(),
        StoreKind::S3 => format!("s3://{bucket}/{prefix}"),
    }
}
