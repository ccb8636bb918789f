//! The command line's shape: [`Cli`], its [`Command`]s and their arguments
//! (clap derive).

use super::*;

#[derive(Parser, Debug)]
#[command(name = "mudrock", version, about = "Runs MudRock pipelines")]
pub struct Cli {
    /// Config file (TOML); default `mudrock.toml` if present. `MUDROCK_*`
    /// variables override it.
    #[arg(long, global = true, env = "MUDROCK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines as text or JSON (one object per line, with request ids).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "MUDROCK_LOG_FORMAT")]
    pub log_format: LogFormat,
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
    /// The service: the HTTP API, a worker and a scheduler in one process
    /// (`--roles` to pick), until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Fire scheduled runs (any number of schedulers may run), until
    /// SIGTERM/SIGINT.
    Scheduler(SchedulerArgs),
    /// Manage schedules: create, list, show, pause, resume, delete, next
    /// fire times, the tick ledger, trigger now, backfills.
    #[command(subcommand)]
    Schedule(super::schedule::ScheduleCommand),
    /// What runs left in a bucket, without a database: pipelines, runs, a
    /// run's nodes, an output's rows, a diff of two runs.
    Inspect(super::inspect::InspectArgs),
    /// A run's lineage.json, or its OpenLineage events (`--format
    /// openlineage`), printed or POSTed to an endpoint (`--emit URL`).
    Lineage(super::lineage::LineageArgs),
    /// The audit trail: `verify` recomputes its hash chains.
    #[command(subcommand)]
    Audit(super::audit::AuditCommand),
    /// Apply the projects' retention policies: expired runs, unused cache
    /// entries, old scratch (`--dry-run` to see what would go).
    Gc(super::gc::GcArgs),
    /// Register a legacy bucket (the old "bucket is a project" layout) as a
    /// project; loose objects move under shared/, verified.
    ImportBucket(super::import::ImportArgs),
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// What this process does: api, worker, scheduler (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "api,worker,scheduler")]
    pub roles: Vec<Role>,
    /// Address to listen on (default: the config's `api.listen`).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Worker,
    Scheduler,
}

#[derive(Args, Debug)]
pub struct SchedulerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Scheduler id, recorded with each fire time it accounts for
    /// (default: scheduler-host-pid).
    #[arg(long)]
    pub id: Option<String>,
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
    /// Put back a deleted project whose bucket is not purged yet.
    Restore(ProjectRestoreArgs),
}

#[derive(Args, Debug)]
pub struct ProjectRestoreArgs {
    pub project: uuid::Uuid,
    #[command(flatten)]
    pub db: DbArgs,
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
