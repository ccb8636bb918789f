//! The `mudrock` command line: `run`, `validate` and `plan` on the embedded
//! default (a local directory as the object store, no database); `migrate`,
//! `worker`, `project create`, `submit` and `cancel` against PostgreSQL.
//!
//! Exit codes: 0 success; 1 the run failed or was cancelled; 2 the pipeline
//! is invalid (or the command line is); 3 storage or internal errors.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::artifacts::{NodeRecord, NodeStatus, RunMeta, RunStatus};
use crate::config::{Config, StoreKind};
use crate::engine::{Event, RunOptions, plan};
use crate::pipeline::Pipeline;
use crate::store::ObjectStore;
use crate::validate::{self, Report};

#[derive(Parser, Debug)]
#[command(name = "mudrock", version, about = "Runs MudRock pipelines")]
pub struct Cli {
    /// Config file (TOML); default `mudrock.toml` if present. `MUDROCK_*`
    /// variables override it.
    #[arg(long, global = true, env = "MUDROCK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline file against the configured store.
    Run(RunArgs),
    /// Check a pipeline file and print every problem.
    Validate(ValidateArgs),
    /// Print the run order, expected cache hits and output schemas.
    Plan(PlanArgs),
    /// Copy local files or directories into the project's bucket.
    Upload(UploadArgs),
    /// Apply the database migrations (PostgreSQL, `DATABASE_URL`).
    Migrate(MigrateArgs),
    /// Take runs from the queue and execute them until SIGTERM/SIGINT.
    Worker(WorkerArgs),
    /// Manage projects (the database row and the project's bucket).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Save a pipeline file as a new version of a project's pipeline and
    /// queue a run of it.
    Submit(SubmitArgs),
    /// Ask a queued or running run to stop.
    Cancel(CancelArgs),
    /// Show the sandbox `worker` runs in; `--try-read` tries reads inside it.
    Sandbox(SandboxArgs),
}

#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// Read this file from inside the sandbox and say whether it could.
    #[arg(long)]
    pub try_read: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Runs at once (default: the config's `worker.concurrency`).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Worker id (default: host-pid-random). Must be unique among workers.
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Create a project and its bucket; prints the project id.
    Create(ProjectCreateArgs),
}

#[derive(Args, Debug)]
pub struct ProjectCreateArgs {
    pub name: String,
    /// The owner's user id (the JWT `sub`).
    #[arg(long)]
    pub owner: uuid::Uuid,
    /// The project's `maxConcurrentRuns`.
    #[arg(long)]
    pub max_concurrent_runs: Option<u32>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    pub file: PathBuf,
    #[arg(long, env = "MUDROCK_PROJECT")]
    pub project: uuid::Uuid,
    /// Pipeline id (default: the document's `id` if it is a UUID, else one
    /// derived from the project and the document's `id`).
    #[arg(long)]
    pub pipeline: Option<uuid::Uuid>,
    /// Same key, same pipeline: the existing run is returned.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Wait for the run to finish and print its node states.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    pub run_id: uuid::Uuid,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only say whether the database is current; change nothing.
    #[arg(long)]
    pub check: bool,
}

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// Files or directories (uploaded recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Key prefix in the bucket, e.g. `shared/sales/`.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Use this directory (one folder per bucket) as the store, whatever
    /// the configuration says.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Project whose bucket (`{bucket_prefix}{id}`) to use; default `local`.
    #[arg(long, env = "MUDROCK_PROJECT")]
    pub project: Option<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Ignore the cache: compute every node (entries are still written).
    #[arg(long)]
    pub no_cache: bool,
    /// Treat not-connected nodes as errors.
    #[arg(long)]
    pub strict: bool,
    /// Print the run's metadata as JSON instead of the summary table.
    #[arg(long)]
    pub json: bool,
    /// Nodes computed at once (default: the config's `engine.concurrency`).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Polars engine: `auto` streams units whose sources exceed
    /// `engine.streaming_above_mb`; `always`; `never` (default: the
    /// config's `engine.streaming`).
    #[arg(long, value_parser = parse_streaming)]
    pub streaming: Option<crate::engine::Streaming>,
    /// Run id (default: a new UUIDv7). Re-using one overwrites that run.
    #[arg(long)]
    pub run_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub strict: bool,
    #[arg(long)]
    pub json: bool,
    /// Also check columns and types against the sources in the store
    /// (implied by `--store`).
    #[arg(long)]
    pub data: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long)]
    pub strict: bool,
    #[arg(long)]
    pub json: bool,
}

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
    init_tracing();
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
    rt.block_on(async {
        match cli.command {
            Command::Run(a) => run(a, config).await,
            Command::Validate(a) => validate_cmd(a, config).await,
            Command::Plan(a) => plan_cmd(a, config).await,
            Command::Upload(a) => upload_cmd(a, config).await,
            Command::Migrate(a) => migrate_cmd(a).await,
            Command::Worker(a) => worker_cmd(a, config).await,
            Command::Project(ProjectCommand::Create(a)) => project_create_cmd(a, config).await,
            Command::Submit(a) => submit_cmd(a, config).await,
            Command::Cancel(a) => cancel_cmd(a).await,
            Command::Sandbox(a) => sandbox_cmd(a, &config, cli.config.as_deref()),
        }
    })
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
        _ => return None,
    };
    let mut write = vec![config.scratch_dir()];
    if config.store.kind == StoreKind::Local {
        write.push(config.store.dir.clone());
    }
    let read = config_file(cli.config.as_deref())
        .into_iter()
        .chain(file)
        .collect();
    Some(crate::sandbox::Paths::new(&config.sandbox, read, write))
}

fn sandbox_cmd(a: SandboxArgs, config: &Config, given: Option<&std::path::Path>) -> i32 {
    let cli = Cli {
        config: given.map(PathBuf::from),
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

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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

async fn validate_cmd(a: ValidateArgs, config: Config) -> i32 {
    let (pipeline, report) = match load(&a.file, a.strict, a.json, config.limits) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut diags = report.diagnostics.clone();
    if a.data || a.store.store.is_some() {
        let config = effective(config, &a.store);
        let store = match open(&config).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let pipeline = Arc::new(pipeline);
        let opts = options(&pipeline, &config, &a.store);
        match plan::plan(store.as_ref(), pipeline.clone(), &opts).await {
            Ok(p) => diags.extend(p.problems),
            Err(e) => {
                eprintln!("error: {e}");
                return 3;
            }
        }
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == validate::Severity::Error)
        .count();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"valid": errors == 0, "diagnostics": diags})
            )
            .unwrap()
        );
    } else {
        for d in &diags {
            eprintln!("{d}");
        }
        if errors == 0 {
            println!("{}: valid ({} warning(s))", a.file.display(), diags.len());
        } else {
            eprintln!("{} ({errors} error(s))", a.file.display());
        }
    }
    if errors == 0 { 0 } else { 2 }
}

async fn plan_cmd(a: PlanArgs, config: Config) -> i32 {
    let (pipeline, report) = match load(&a.file, a.strict, a.json, config.limits) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let pipeline = Arc::new(pipeline);
    let config = effective(config, &a.store);
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = options(&pipeline, &config, &a.store);
    let plan = match plan::plan(store.as_ref(), pipeline.clone(), &opts).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plan).unwrap());
    } else {
        for d in report.warnings() {
            eprintln!("{d}");
        }
        println!("plan for {} (bucket {})", plan.pipeline_id, opts.bucket);
        println!(
            "{:<4} {:<24} {:<10} {:<12} {:<6} key",
            "#", "node", "type", "operator", "cache"
        );
        for (k, n) in plan.order.iter().enumerate() {
            let cache = match (&n.skip, n.cache_hit, n.materialized) {
                (Some(_), _, _) => "skip",
                (None, true, _) => "hit",
                (None, false, true) => "miss",
                (None, false, false) => "fused",
            };
            let key = n.cache_key.as_deref().map(|k| &k[..12]).unwrap_or("-");
            println!(
                "{:<4} {:<24} {:<10} {:<12} {:<6} {key}",
                k + 1,
                n.node_id,
                n.node_type,
                n.operator.as_deref().unwrap_or("-"),
                cache
            );
        }
        for o in &plan.outputs {
            println!("\noutput {}:", o.node_id);
            for c in &o.columns {
                println!("  {:<28} {}", c.name, c.dtype);
            }
        }
        for d in &plan.problems {
            eprintln!("{d}");
        }
    }
    if plan
        .problems
        .iter()
        .any(|d| d.severity == validate::Severity::Error)
    {
        2
    } else {
        0
    }
}

async fn run(a: RunArgs, config: Config) -> i32 {
    let (pipeline, report) = match load(&a.file, a.strict, a.json, config.limits) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if !a.json {
        for d in report.warnings() {
            eprintln!("{d}");
        }
    }
    let pipeline = Arc::new(pipeline);
    let config = effective(config, &a.store);
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut opts = options(&pipeline, &config, &a.store);
    opts.use_cache = !a.no_cache;
    if let Some(n) = a.concurrency {
        opts.concurrency = n;
    }
    if let Some(m) = a.streaming {
        opts.streaming = m;
    }
    if let Some(id) = &a.run_id {
        if !validate::valid_id(id) {
            eprintln!("error: invalid --run-id \"{id}\"");
            return 2;
        }
        opts.run_id = id.clone();
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    opts.events = Some(tx);
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("cancelling after the running nodes finish (ctrl-c again to abort)");
            cancel.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        }
    });
    let show_progress = !a.json && std::io::stderr().is_terminal();
    let progress = tokio::spawn(progress_display(rx, pipeline.clone(), show_progress));
    let engine = config.engine(store);
    let bucket = opts.bucket.clone();
    // The engine holds the only event sender: the display ends with the run.
    let result = engine.run(pipeline, opts).await;
    let _ = progress.await;
    match result {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r.meta).unwrap());
            } else {
                print_summary(&r.meta);
                println!("artifacts: {}", location(&config, &bucket, &r.run_prefix));
            }
            match r.meta.status {
                RunStatus::Succeeded => 0,
                _ => 1,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}

/// One spinner per node, finished with its status as events arrive.
async fn progress_display(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    p: Arc<Pipeline>,
    show: bool,
) {
    let multi = MultiProgress::with_draw_target(if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let width = p.nodes.iter().map(|n| n.id.len()).max().unwrap_or(4).max(4);
    let style = ProgressStyle::with_template("{spinner} {msg}").unwrap();
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    for n in &p.nodes {
        let b = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
        b.set_message(format!("{:<width$}  pending", n.id));
        bars.insert(n.id.clone(), b);
    }
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::NodeStarted { node_id } => {
                if let Some(b) = bars.get(&node_id) {
                    b.enable_steady_tick(Duration::from_millis(100));
                    b.set_message(format!("{node_id:<width$}  running"));
                }
            }
            Event::NodeFinished(r) => {
                if let Some(b) = bars.get(&r.node_id) {
                    let mark = match r.status {
                        NodeStatus::Succeeded => "✓",
                        NodeStatus::Cached => "●",
                        NodeStatus::Failed => "✗",
                        _ => "-",
                    };
                    b.set_style(ProgressStyle::with_template("{msg}").unwrap());
                    b.finish_with_message(format!(
                        "{mark} {:<width$}  {}",
                        r.node_id,
                        describe(&r)
                    ));
                }
            }
        }
    }
    for b in bars.values() {
        if !b.is_finished() {
            b.finish_and_clear();
        }
    }
    let _ = multi.clear();
}

fn describe(r: &NodeRecord) -> String {
    let mut s = r.status.name().to_string();
    if let Some(reason) = &r.reason {
        s.push_str(&format!(" ({reason})"));
    }
    if let Some(rows) = r.rows {
        s.push_str(&format!(", {rows} rows"));
    }
    s
}

/// The table printed after a run.
pub fn summary_table(m: &RunMeta) -> String {
    let width = m
        .nodes
        .iter()
        .map(|n| n.node_id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<10} {:>10} {:>9}  {:<5}  {}\n",
        "node", "status", "rows", "time", "cache", "detail"
    );
    for n in &m.nodes {
        let rows = n.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
        let time = n
            .duration_ms
            .map(|d| format!("{d} ms"))
            .unwrap_or_else(|| "-".into());
        let cache = if n.cache_hit { "hit" } else { "-" };
        let detail = match (&n.error, &n.reason) {
            (Some(e), _) => {
                let first = e.lines().next().unwrap_or("");
                if n.handled == Some(true) {
                    format!("handled: {first}")
                } else {
                    first.to_string()
                }
            }
            (None, Some(r)) => r.clone(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:<width$}  {:<10} {:>10} {:>9}  {:<5}  {detail}\n",
            n.node_id,
            n.status.name(),
            rows,
            time,
            cache
        ));
    }
    out.push_str(&format!(
        "run {} {} in {} ms\n",
        m.run_id,
        m.status.name(),
        m.duration_ms
    ));
    if let Some(e) = &m.error {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

fn print_summary(m: &RunMeta) {
    print!("{}", summary_table(m));
}

/// Files under `path` with the key each gets below `prefix`.
fn upload_list(path: &std::path::Path, prefix: &str) -> std::io::Result<Vec<(PathBuf, String)>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_file() {
        return Ok(vec![(path.to_path_buf(), format!("{prefix}{name}"))]);
    }
    // A directory's contents go straight under the prefix (like `cp dir/.`).
    let mut out = Vec::new();
    let mut stack = vec![(path.to_path_buf(), prefix.to_string())];
    while let Some((dir, pre)) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                stack.push((entry.path(), format!("{pre}{name}/")));
            } else {
                out.push((entry.path(), format!("{pre}{name}")));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

async fn upload_cmd(a: UploadArgs, config: Config) -> i32 {
    let config = effective(config, &a.store);
    let prefix = if a.to.is_empty() || a.to.ends_with('/') {
        a.to.clone()
    } else {
        format!("{}/", a.to)
    };
    if let Err(e) = crate::validate::check_source_key(&format!("{prefix}x")) {
        eprintln!("error: --to: {e}");
        return 2;
    }
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let bucket = config.bucket(a.store.project.as_deref());
    if let Err(e) = store.create_bucket(&bucket).await {
        eprintln!("error: {e}");
        return 3;
    }
    for p in &a.paths {
        let files = match upload_list(p, &prefix) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return 2;
            }
        };
        for (path, key) in files {
            match store.put_file(&bucket, &key, &path).await {
                Ok(m) => println!(
                    "{} -> {} ({} bytes)",
                    path.display(),
                    location(&config, &bucket, &key),
                    m.size
                ),
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return 3;
                }
            }
        }
    }
    0
}

async fn migrate_cmd(a: MigrateArgs) -> i32 {
    let pool = match connect_db(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    if a.check {
        return match crate::db::check_current(&pool).await {
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
    match crate::db::migrate(&pool).await {
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

async fn connect_db(url: &str) -> Result<sqlx::PgPool, i32> {
    crate::db::connect(url).await.map_err(|e| {
        eprintln!("error: {e}");
        3
    })
}

/// A connection to a database that is not behind (else exit code 2).
async fn connect_current(url: &str) -> Result<sqlx::PgPool, i32> {
    let pool = connect_db(url).await?;
    if let Err(e) = crate::db::check_current(&pool).await {
        eprintln!("error: {e}");
        return Err(2);
    }
    Ok(pool)
}

/// SIGTERM or SIGINT, whichever comes first.
async fn shutdown_signal() {
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

async fn worker_cmd(a: WorkerArgs, mut config: Config) -> i32 {
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
    let worker = crate::worker::Worker::new(pool, config.engine(store), config.clone(), a.id);
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

async fn project_create_cmd(a: ProjectCreateArgs, config: Config) -> i32 {
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
    match crate::db::create_project(&pool, &config, store.as_ref(), &a.name, a.owner, &settings)
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

async fn submit_cmd(a: SubmitArgs, config: Config) -> i32 {
    let (pipeline, _) = match load(&a.file, false, false, config.limits) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let pool = match connect_current(&a.db.database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    // The document's id names the pipeline within the project: the same
    // file submitted again becomes the next version of the same pipeline.
    let id = a.pipeline.unwrap_or_else(|| match pipeline.id.as_deref() {
        Some(i) => i.parse().unwrap_or_else(|_| {
            let h = blake3::hash(format!("mudrock pipeline {} {i}", a.project).as_bytes());
            let mut b = [0u8; 16];
            b.copy_from_slice(&h.as_bytes()[..16]);
            uuid::Builder::from_random_bytes(b).into_uuid()
        }),
        None => uuid::Uuid::now_v7(),
    });
    let version = pipeline.version.clone().unwrap_or_else(|| "1.0.0".into());
    let saved = match crate::db::save_pipeline(
        &pool,
        a.project,
        id,
        &pipeline.name,
        &version,
        &pipeline.definition,
        None,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot save the pipeline: {e}");
            return 3;
        }
    };
    let mut req = crate::queue::TriggerRequest::new(id, crate::queue::TriggerKind::Cli);
    req.idempotency_key = a.idempotency_key.clone();
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    let t = match crate::queue::trigger(&mut conn, &req).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    eprintln!(
        "pipeline {id} revision {} ({}); run {} {}",
        saved.revision,
        &saved.definition_hash[..12],
        t.run_id,
        if t.created {
            "queued"
        } else {
            "already exists (idempotency key)"
        }
    );
    println!("{}", t.run_id);
    if !a.wait {
        return 0;
    }
    loop {
        match crate::queue::get_run(&mut conn, t.run_id).await {
            Ok(Some(run))
                if matches!(run.status.as_str(), "succeeded" | "failed" | "cancelled") =>
            {
                if let Ok(nodes) = crate::queue::node_states(&mut conn, t.run_id).await {
                    for n in nodes {
                        eprintln!(
                            "  {:<24} {:<10} {}",
                            n.node_id,
                            n.status,
                            n.reason.or(n.error).unwrap_or_default()
                        );
                    }
                }
                eprintln!("run {} {} (attempt {})", run.id, run.status, run.attempt);
                if let Some(e) = run.error {
                    eprintln!("{e}");
                }
                return if run.status == "succeeded" { 0 } else { 1 };
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => {
                eprintln!("error: {e}");
                return 3;
            }
        }
    }
}

async fn cancel_cmd(a: CancelArgs) -> i32 {
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
    match crate::queue::request_cancel(&mut conn, a.run_id).await {
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
