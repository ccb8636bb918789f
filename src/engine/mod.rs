//! The executor: runs a validated pipeline against an object store.
//!
//! Nodes become Polars lazy frames. Only *materialisation points* are
//! collected: outputs, nodes whose result feeds zero or several consumers,
//! sources of conditional and error edges, asserts, and nodes that ask for
//! `execution.cache: true`. Every other node is fused into its single
//! consumer's plan, so Polars pushes predicates and projections across node
//! boundaries (into the CSV or Parquet scan, typically). A materialisation
//! point and the nodes fused into it form a *unit*; units run as soon as the
//! units they read from are done, concurrently up to a limit, with Polars
//! work on blocking threads.
//!
//! Materialisation points are also the cache points: before running a unit,
//! its root's cache key is looked up, and a verified hit replaces the whole
//! unit (a fully cached run only copies outputs).
//!
//! A unit runs on Polars' in-memory engine, or on its streaming engine when
//! its sources are large ([`Streaming`]); there an output that nothing
//! reads is streamed into its Parquet file instead of being collected.

mod build;
pub mod ingest;
pub mod plan;
mod scratch;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use mudrock_operators::Input;
use polars::prelude::*;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

pub use build::{build_node, error_frame};

use crate::artifacts::*;
use crate::cache::{self, CacheMeta, SourceObject};
use crate::error::{EngineError, NodeError, NodeErrorKind};
use crate::pipeline::{EdgeKind, Format, NodeKind, Pipeline};
use crate::store::{ObjectMeta, ObjectStore};
use crate::validate::canonical_json;
use ingest::SourceData;

/// Progress notifications, for the CLI display and (later) the database.
#[derive(Debug, Clone)]
pub enum Event {
    NodeStarted { node_id: String },
    NodeFinished(Box<NodeRecord>),
}

/// Everything a run needs besides the pipeline.
#[derive(Clone)]
pub struct RunOptions {
    pub bucket: String,
    pub project_id: String,
    pub pipeline_id: String,
    pub run_id: String,
    pub trigger: Trigger,
    pub attempt: u32,
    pub use_cache: bool,
    /// Units running at once.
    pub concurrency: usize,
    /// Which Polars engine computes a unit (see [`Streaming`]).
    pub streaming: Streaming,
    /// With [`Streaming::Auto`]: a unit whose sources add up to more bytes
    /// than this runs on the streaming engine (a row-wise unit always does).
    pub streaming_above_bytes: u64,
    pub events: Option<mpsc::UnboundedSender<Event>>,
    /// Set to stop between nodes; the run ends `cancelled`.
    pub cancel: Arc<AtomicBool>,
    /// What one run may use (pivot columns, join rows, glob matches,
    /// scratch disk); a node over a limit fails naming it.
    pub limits: crate::limits::RunLimits,
}

impl RunOptions {
    /// Whether a unit reading `source_bytes` of sources streams;
    /// `row_wise` says every member computes each row from one input row
    /// (see [`Streaming::Auto`]).
    pub fn streams(&self, source_bytes: u64, row_wise: bool) -> bool {
        match self.streaming {
            Streaming::Always => true,
            Streaming::Never => false,
            Streaming::Auto => row_wise || source_bytes > self.streaming_above_bytes,
        }
    }

    /// Options for a local run of `pipeline` without a project.
    pub fn local(pipeline: &Pipeline) -> Self {
        RunOptions {
            bucket: "project-local".into(),
            project_id: pipeline
                .project_id
                .clone()
                .unwrap_or_else(|| "local".into()),
            pipeline_id: default_pipeline_id(pipeline),
            run_id: uuid::Uuid::now_v7().to_string(),
            trigger: Trigger {
                kind: "cli".into(),
                schedule_id: None,
                requested_by: None,
            },
            attempt: 1,
            use_cache: true,
            concurrency: 4,
            streaming: Streaming::Auto,
            streaming_above_bytes: DEFAULT_STREAMING_ABOVE_BYTES,
            events: None,
            cancel: Arc::new(AtomicBool::new(false)),
            limits: Default::default(),
        }
    }
}

/// When a unit runs on Polars' streaming engine instead of the in-memory
/// one. The streaming engine processes a source in morsels, so a source
/// larger than memory runs in bounded memory, and it is faster on these
/// benches whatever the size; but where rows meet (group-bys, joins) it
/// combines them in no fixed order, so float sums change in their last
/// bits and joined rows come out in another order run to run. The
/// in-memory engine's results are byte-identical run to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Streaming {
    /// Stream units that only filter, project and compute row expressions
    /// (their output is the same on both engines, row for row, in order),
    /// and any unit whose sources exceed `streaming_above_bytes`; the rest
    /// run in memory, deterministically.
    #[default]
    Auto,
    Always,
    Never,
}

/// Sources above 2 GiB stream by default.
pub const DEFAULT_STREAMING_ABOVE_BYTES: u64 = 2 << 30;

/// The pipeline's id, or a storage-safe form of its name.
pub fn default_pipeline_id(p: &Pipeline) -> String {
    if let Some(id) = &p.id {
        if crate::validate::valid_id(id) {
            return id.clone();
        }
    }
    let slug: String = p
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.trim_matches('-').to_string();
    if crate::validate::valid_id(&slug) {
        slug
    } else {
        "pipeline".into()
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub meta: RunMeta,
    /// `pipelines/{id}/runs/{run-id}/`
    pub run_prefix: String,
    /// Whether any Polars work was done (false for a fully cached run).
    pub computed: bool,
}

/// Runs pipelines against one store.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Arc<dyn ObjectStore>,
    scratch: PathBuf,
}

/// A materialised result handed to downstream units.
#[derive(Clone)]
enum Handle {
    Memory(DataFrame),
    Cached(String),
    /// Not computed: every consumer was served by the cache.
    Deferred,
}

/// An ingestion node's matched objects (as listed, and as hashed), or why
/// they could not be resolved.
pub(crate) type Resolved = Result<Vec<(ObjectMeta, SourceObject)>, NodeError>;

/// Facts computed before anything runs.
pub(crate) struct Prepared {
    pub(crate) keys: Vec<Option<String>>,
    pub(crate) cacheable: Vec<bool>,
    /// Whether a materialised node keeps a cache entry. Not an ingestion
    /// node that is materialised only because it fans out: its object in
    /// the store is already the checkpoint, and writing it again as
    /// Parquet cost more than re-reading it saves (its consumers keep
    /// their own entries). `execution.cache: true` asks for one anyway.
    pub(crate) entry: Vec<bool>,
    pub(crate) mat: Vec<bool>,
    /// Root of the unit each node belongs to.
    pub(crate) unit_of: Vec<usize>,
    /// Members of each unit (by root), in topological order.
    pub(crate) members: HashMap<usize, Vec<usize>>,
    pub(crate) order: Vec<usize>,
    pub(crate) sources: Vec<Option<Resolved>>,
    pub(crate) bytes_hashed: u64,
}

/// The state shared by the unit tasks.
struct Ctx {
    store: Arc<dyn ObjectStore>,
    pipeline: Arc<Pipeline>,
    opts: RunOptions,
    prep: Prepared,
    /// Remote sources downloaded by hashing, scanned by units.
    files: ingest::SourceFiles,
    scratch: PathBuf,
    /// What the run's scratch files may add up to.
    budget: Arc<scratch::ScratchBudget>,
    run_prefix: String,
    computed: AtomicBool,
    /// Cache writes of intermediate checkpoints, off the critical path:
    /// downstream units go on with the frame in memory; the run waits for
    /// these before its commit marker. Each yields (node, bytes) when the
    /// entry was written.
    background: std::sync::Mutex<Vec<tokio::task::JoinHandle<Option<(usize, u64)>>>>,
}

/// What one finished node hands on.
#[derive(Clone)]
struct Finished {
    record: NodeRecord,
    handle: Option<Handle>,
    error: Option<NodeError>,
    conditions: BTreeMap<String, Result<bool, String>>,
}

struct UnitOutcome {
    nodes: Vec<(usize, Finished)>,
    outputs: Vec<LineageOutput>,
}

impl Engine {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Engine {
            store,
            scratch: std::env::temp_dir(),
        }
    }

    /// Where Parquet files are written before upload.
    pub fn with_scratch(mut self, dir: PathBuf) -> Self {
        self.scratch = dir;
        self
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Runs the pipeline to the end. Node failures are part of the result;
    /// `Err` means the run could not be carried out (storage unavailable).
    pub async fn run(
        &self,
        pipeline: Arc<Pipeline>,
        opts: RunOptions,
    ) -> Result<RunResult, EngineError> {
        let started = Utc::now();
        let clock = Instant::now();
        let store = self.store.clone();
        store.create_bucket(&opts.bucket).await?;
        let run_prefix = format!("pipelines/{}/runs/{}/", opts.pipeline_id, opts.run_id);
        // A retried run overwrites its own folder: remove the old commit
        // marker first so the folder never looks complete mid-retry.
        store
            .delete(&opts.bucket, &format!("{run_prefix}metadata.json"))
            .await?;

        let scratch = tempfile::Builder::new()
            .prefix("mudrock-run-")
            .tempdir_in(&self.scratch)
            .map_err(|e| {
                EngineError::Internal(format!("scratch dir in {}: {e}", self.scratch.display()))
            })?;
        let budget = Arc::new(scratch::ScratchBudget::new(opts.limits.max_scratch_bytes));
        let files = ingest::SourceFiles::new(scratch.path().join("sources"), budget.clone());
        let prep = prepare(store.as_ref(), &opts, &pipeline, &files).await?;
        tracing::info!(
            run_id = %opts.run_id,
            pipeline = %opts.pipeline_id,
            nodes = pipeline.nodes.len(),
            units = prep.members.len(),
            bytes_hashed = prep.bytes_hashed,
            "run started"
        );
        let ctx = Arc::new(Ctx {
            store: store.clone(),
            pipeline: pipeline.clone(),
            opts: opts.clone(),
            prep,
            files,
            scratch: scratch.path().to_path_buf(),
            budget,
            run_prefix: run_prefix.clone(),
            computed: AtomicBool::new(false),
            background: Default::default(),
        });

        let finished = schedule(ctx.clone()).await;
        // Also on error: scratch files must outlive the writes using them.
        let pending: Vec<_> = std::mem::take(&mut *ctx.background.lock().unwrap());
        let mut bytes_written = HashMap::new();
        for h in pending {
            if let Ok(Some((node, bytes))) = h.await {
                bytes_written.insert(node, bytes);
            }
        }
        let finished = finished?;

        // Assemble records in document order.
        let n = pipeline.nodes.len();
        let mut records = Vec::with_capacity(n);
        let mut outputs = Vec::new();
        let mut by_node: HashMap<usize, Finished> = HashMap::new();
        for outcome in finished {
            outputs.extend(outcome.outputs);
            for (i, mut f) in outcome.nodes {
                if let Some(b) = bytes_written.get(&i) {
                    f.record.bytes = Some(*b);
                }
                by_node.insert(i, f);
            }
        }
        let mut handled = Vec::new();
        let mut unhandled = Vec::new();
        for i in 0..n {
            let mut rec = by_node
                .get(&i)
                .map(|f| f.record.clone())
                .expect("every node is finished");
            if rec.status == NodeStatus::Failed {
                let handlers: Vec<String> = pipeline
                    .outputs(i)
                    .filter(|e| e.kind == EdgeKind::Error)
                    .map(|e| pipeline.nodes[e.target].id.clone())
                    .collect();
                rec.handled = Some(!handlers.is_empty());
                if handlers.is_empty() {
                    unhandled.push(format!(
                        "node \"{}\": {}",
                        rec.node_id,
                        rec.error.clone().unwrap_or_default()
                    ));
                } else {
                    handled.push(HandledFailure {
                        node_id: rec.node_id.clone(),
                        error_kind: rec.reason.clone().unwrap_or_default(),
                        message: rec.error.clone().unwrap_or_default(),
                        handled_by: handlers,
                    });
                }
            }
            records.push(rec);
        }
        let cancelled = ctx.opts.cancel.load(Ordering::SeqCst)
            && records
                .iter()
                .any(|r| r.reason.as_deref() == Some("cancelled"));
        let status = if cancelled {
            RunStatus::Cancelled
        } else if unhandled.is_empty() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let error = if unhandled.is_empty() {
            None
        } else {
            Some(unhandled.join("\n"))
        };

        // Lineage, then the run's metadata last: the commit marker.
        let lineage = lineage(&ctx, &by_node, outputs);
        store
            .put(
                &opts.bucket,
                &format!("{run_prefix}lineage.json"),
                to_json(&lineage),
            )
            .await?;
        let finished_at = Utc::now();
        let meta = RunMeta {
            run_id: opts.run_id.clone(),
            pipeline_id: opts.pipeline_id.clone(),
            project_id: opts.project_id.clone(),
            pipeline_version: pipeline.version.clone(),
            definition_hash: cache::definition_hash(&pipeline.definition),
            trigger: opts.trigger.clone(),
            status,
            attempt: opts.attempt,
            started_at: started.to_rfc3339_opts(SecondsFormat::Millis, true),
            finished_at: finished_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            duration_ms: clock.elapsed().as_millis() as u64,
            worker: WorkerInfo {
                host: gethostname::gethostname().to_string_lossy().into_owned(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            engine: BTreeMap::from([
                ("mudrock".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                ("polars".to_string(), "0.55.2".to_string()),
            ]),
            error,
            handled_failures: handled,
            nodes: records,
            definition: pipeline.definition.clone(),
        };
        store
            .put(
                &opts.bucket,
                &format!("{run_prefix}metadata.json"),
                to_json(&meta),
            )
            .await?;
        tracing::info!(run_id = %opts.run_id, status = status.name(), duration_ms = meta.duration_ms, "run finished");
        Ok(RunResult {
            meta,
            run_prefix,
            computed: ctx.computed.load(Ordering::SeqCst),
        })
    }
}

/// Resolves and hashes sources, computes keys and finds the units.
pub(crate) async fn prepare(
    store: &dyn ObjectStore,
    opts: &RunOptions,
    p: &Pipeline,
    files: &ingest::SourceFiles,
) -> Result<Prepared, EngineError> {
    let n = p.nodes.len();
    let order = topo_order(p);
    let mut keys: Vec<Option<String>> = vec![None; n];
    let mut cacheable = vec![true; n];
    let mut sources: Vec<Option<Resolved>> = (0..n).map(|_| None).collect();
    let mut bytes_hashed = 0;
    for &i in &order {
        let node = &p.nodes[i];
        // Error frames carry the run id and time: nothing downstream of an
        // error edge can be cached.
        if p.inputs(i)
            .any(|e| e.kind == EdgeKind::Error || !cacheable[e.source])
        {
            cacheable[i] = false;
        }
        if node.execution.cache == Some(false) {
            cacheable[i] = false;
        }
        keys[i] = match &node.kind {
            NodeKind::Ingestion(cfg) => {
                match ingest::resolve(store, &opts.bucket, cfg, opts.limits.max_glob_matches).await
                {
                    Ok(objs) => {
                        let mut hashed = Vec::with_capacity(objs.len());
                        let mut failed = None;
                        for m in objs {
                            let read = || files.hash(store, &opts.bucket, &m);
                            match cache::hash_source(store, &opts.bucket, &m, read).await {
                                Ok((o, read)) => {
                                    if read {
                                        bytes_hashed += o.size;
                                    }
                                    hashed.push((m, o));
                                }
                                Err(e) => {
                                    failed = Some(NodeError::storage(e));
                                    break;
                                }
                            }
                        }
                        match failed {
                            Some(e) => {
                                sources[i] = Some(Err(e));
                                None
                            }
                            None => {
                                let config =
                                    canonical_json(&serde_json::to_value(cfg).unwrap_or_default());
                                let objs: Vec<SourceObject> =
                                    hashed.iter().map(|(_, o)| o.clone()).collect();
                                sources[i] = Some(Ok(hashed));
                                Some(cache::ingestion_key(&config, &objs))
                            }
                        }
                    }
                    Err(mut e) => {
                        // A source that is not there is the `source` field's problem.
                        if e.kind == NodeErrorKind::Data {
                            e.path = Some(format!("{}.config.source", node.path));
                        }
                        sources[i] = Some(Err(e));
                        None
                    }
                }
            }
            kind => {
                let input_keys: Option<Vec<String>> =
                    p.inputs(i).map(|e| keys[e.source].clone()).collect();
                match input_keys {
                    Some(ks) if !ks.is_empty() => {
                        let (op, version, config) = match kind {
                            NodeKind::Operator { spec, op } => {
                                (spec.name, spec.version, op.config_json())
                            }
                            NodeKind::Output(cfg) => {
                                ("output", 1, serde_json::to_value(cfg).unwrap_or_default())
                            }
                            NodeKind::Ingestion(_) => unreachable!(),
                        };
                        let refs: Vec<&str> = ks.iter().map(String::as_str).collect();
                        Some(cache::node_key(
                            node.node_type(),
                            op,
                            version,
                            &canonical_json(&config),
                            &refs,
                        ))
                    }
                    _ => None,
                }
            }
        };
    }
    let mat: Vec<bool> = (0..n).map(|i| is_mat_point(p, i)).collect();
    // Each non-materialised node has exactly one consumer: follow it down.
    let mut unit_of = vec![usize::MAX; n];
    for &i in order.iter().rev() {
        unit_of[i] = if mat[i] {
            i
        } else {
            unit_of[p.outputs(i).next().expect("one consumer").target]
        };
    }
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    for &i in &order {
        members.entry(unit_of[i]).or_default().push(i);
    }
    let entry = (0..n)
        .map(|i| {
            cacheable[i]
                && keys[i].is_some()
                && (!matches!(p.nodes[i].kind, NodeKind::Ingestion(_))
                    || p.nodes[i].execution.cache == Some(true))
        })
        .collect();
    Ok(Prepared {
        keys,
        cacheable,
        entry,
        mat,
        unit_of,
        members,
        order,
        sources,
        bytes_hashed,
    })
}

pub(crate) fn is_mat_point(p: &Pipeline, i: usize) -> bool {
    let node = &p.nodes[i];
    let outs: Vec<_> = p.outputs(i).collect();
    outs.len() != 1
        || outs.iter().any(|e| e.kind != EdgeKind::DataFlow)
        || matches!(node.kind, NodeKind::Output(_))
        || matches!(&node.kind, NodeKind::Operator { op, .. } if op.needs_check())
        || node.execution.cache == Some(true)
        // A not-connected consumer never runs; keep what feeds it whole.
        || p.nodes[outs[0].target].not_connected
}

/// Topological order (validation guarantees there is no cycle); ties in
/// document order so runs are reproducible.
pub fn topo_order(p: &Pipeline) -> Vec<usize> {
    let n = p.nodes.len();
    let mut indeg: Vec<usize> = (0..n).map(|i| p.nodes[i].inputs.len()).collect();
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for e in p.outputs(i) {
            indeg[e.target] -= 1;
            if indeg[e.target] == 0 {
                ready.insert(e.target);
            }
        }
    }
    debug_assert_eq!(out.len(), n, "validated pipelines are acyclic");
    out
}

/// Runs units as their inputs finish, up to the concurrency limit.
async fn schedule(ctx: Arc<Ctx>) -> Result<Vec<UnitOutcome>, EngineError> {
    let p = ctx.pipeline.clone();
    let roots: Vec<usize> = ctx
        .prep
        .order
        .iter()
        .copied()
        .filter(|&i| ctx.prep.mat[i])
        .collect();
    // Units each unit waits for.
    let deps: HashMap<usize, Vec<usize>> = roots
        .iter()
        .map(|&r| {
            let mut d: Vec<usize> = ctx.prep.members[&r]
                .iter()
                .flat_map(|&m| p.inputs(m).map(|e| e.source))
                .filter(|s| ctx.prep.unit_of[*s] != r)
                .collect();
            d.sort();
            d.dedup();
            (r, d)
        })
        .collect();
    let sem = Arc::new(Semaphore::new(ctx.opts.concurrency.max(1)));
    let mut done: HashMap<usize, Finished> = HashMap::new();
    let mut waiting: Vec<usize> = roots.clone();
    let mut running = JoinSet::new();
    let mut outcomes = Vec::new();
    loop {
        let mut still = Vec::new();
        for r in waiting {
            if deps[&r].iter().all(|d| done.contains_key(d)) {
                let inputs: HashMap<usize, Finished> =
                    deps[&r].iter().map(|d| (*d, done[d].clone())).collect();
                let ctx = ctx.clone();
                let sem = sem.clone();
                running.spawn(async move {
                    let _permit = sem
                        .acquire_owned()
                        .await
                        .expect("semaphore is never closed");
                    run_unit(ctx, r, inputs).await
                });
            } else {
                still.push(r);
            }
        }
        waiting = still;
        let Some(joined) = running.join_next().await else {
            break;
        };
        let outcome =
            joined.map_err(|e| EngineError::Internal(format!("unit task panicked: {e}")))??;
        for (i, f) in &outcome.nodes {
            if ctx.prep.mat[*i] {
                done.insert(*i, f.clone());
            }
        }
        outcomes.push(outcome);
    }
    debug_assert!(waiting.is_empty());
    Ok(outcomes)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Ctx {
    fn record(&self, i: usize, status: NodeStatus) -> NodeRecord {
        let node = &self.pipeline.nodes[i];
        NodeRecord {
            node_id: node.id.clone(),
            name: node.name.clone(),
            node_type: node.node_type().into(),
            operator: node.operator_name().map(str::to_string),
            status,
            reason: None,
            cache_key: self.prep.keys[i].clone(),
            cache_hit: false,
            started_at: None,
            duration_ms: None,
            rows: None,
            bytes: None,
            error: None,
            handled: None,
        }
    }

    fn emit(&self, e: Event) {
        if let Some(tx) = &self.opts.events {
            let _ = tx.send(e);
        }
    }

    /// Whether the node's result gets a cache entry (written even under
    /// `--no-cache`, which only skips lookups, so it refreshes entries).
    fn cacheable(&self, i: usize) -> bool {
        self.prep.cacheable[i] && self.prep.keys[i].is_some()
    }
}

/// Why a node does not run, decided from its inputs.
#[derive(Clone, Debug, PartialEq)]
enum Gate {
    Run,
    Skip(&'static str),
    /// Evaluating a conditional edge failed: the target fails.
    Fail(NodeError),
}

/// Input frames of a unit, fetched before the blocking part.
enum Ready {
    Frame(DataFrame),
    Path(PathBuf),
}

impl Ready {
    fn lazy(&self) -> PolarsResult<LazyFrame> {
        match self {
            Ready::Frame(df) => Ok(df.clone().lazy()),
            Ready::Path(p) => LazyFrame::scan_parquet(
                PlRefPath::new(p.to_string_lossy().as_ref()),
                ScanArgsParquet::default(),
            ),
        }
    }
}

async fn ready_handle(ctx: &Ctx, node: usize, h: &Handle) -> Result<Ready, NodeError> {
    match h {
        Handle::Memory(df) => Ok(Ready::Frame(df.clone())),
        // Only when a consumer's cache entry vanished during the run; the
        // next attempt computes the source.
        Handle::Deferred => Err(NodeError {
            kind: NodeErrorKind::Storage,
            message: format!(
                "input \"{}\" was not read: its consumers' cache entries disappeared during the run",
                ctx.pipeline.nodes[node].id
            ),
            path: None,
            retryable: true,
        }),
        Handle::Cached(key) => {
            let data_key = format!(
                "{}data.parquet",
                cache::entry_prefix(&ctx.opts.pipeline_id, key)
            );
            match ctx.store.local_path(&ctx.opts.bucket, &data_key) {
                Some(p) => Ok(Ready::Path(p)),
                // Streamed into a scratch file and scanned from there, as
                // sources are: never whole in memory.
                None => {
                    // One file per reader: units reading the same input
                    // at once must not write into each other's copy.
                    let path = ctx.scratch.join(format!(
                        "input-{node}-{}.parquet",
                        uuid::Uuid::now_v7().simple()
                    ));
                    let d = crate::store::download(
                        ctx.store.as_ref(),
                        &ctx.opts.bucket,
                        &data_key,
                        Some(&path),
                    )
                    .await
                    .map_err(NodeError::storage)?;
                    let what = format!("input \"{}\"", ctx.pipeline.nodes[node].id);
                    ctx.budget
                        .charge(d.meta.size, &what)
                        .map_err(|m| NodeError::new(NodeErrorKind::Limit, m))?;
                    Ok(Ready::Path(path))
                }
            }
        }
    }
}

/// Runs one unit, with retries for transient failures.
async fn run_unit(
    ctx: Arc<Ctx>,
    root: usize,
    inputs: HashMap<usize, Finished>,
) -> Result<UnitOutcome, EngineError> {
    let retries = ctx.pipeline.nodes[root].execution.retries;
    let mut attempt = 0;
    loop {
        let out = run_unit_once(&ctx, root, &inputs).await?;
        let transient = out
            .nodes
            .iter()
            .any(|(_, f)| f.error.as_ref().is_some_and(|e| e.retryable));
        if !transient || attempt >= retries {
            for (_, f) in &out.nodes {
                ctx.emit(Event::NodeFinished(Box::new(f.record.clone())));
            }
            return Ok(out);
        }
        attempt += 1;
        let wait = std::time::Duration::from_millis(200 * (1 << attempt.min(6)));
        tracing::warn!(node = %ctx.pipeline.nodes[root].id, attempt, wait_ms = wait.as_millis() as u64, "transient failure, retrying unit");
        tokio::time::sleep(wait).await;
    }
}

async fn run_unit_once(
    ctx: &Arc<Ctx>,
    root: usize,
    inputs: &HashMap<usize, Finished>,
) -> Result<UnitOutcome, EngineError> {
    let p = &ctx.pipeline;
    let members = ctx.prep.members[&root].clone();
    let started_at = now();
    let clock = Instant::now();

    // 1. Gates, in topological order.
    let mut gates: HashMap<usize, Gate> = HashMap::new();
    for &m in &members {
        let gate = if ctx.opts.cancel.load(Ordering::SeqCst) {
            Gate::Skip("cancelled")
        } else if p.nodes[m].not_connected {
            Gate::Skip("not_connected")
        } else {
            gate_for(ctx, m, &gates, inputs).await
        };
        gates.insert(m, gate);
    }
    let mut results: Vec<(usize, Finished)> = Vec::new();
    let running: Vec<usize> = members
        .iter()
        .copied()
        .filter(|m| gates[m] == Gate::Run)
        .collect();
    for &m in &members {
        match &gates[&m] {
            Gate::Skip(reason) => {
                let mut r = ctx.record(m, NodeStatus::Skipped);
                r.reason = Some(reason.to_string());
                results.push((
                    m,
                    Finished {
                        record: r,
                        handle: None,
                        error: None,
                        conditions: BTreeMap::new(),
                    },
                ));
            }
            Gate::Fail(e) => {
                let mut r = ctx.record(m, NodeStatus::Failed);
                r.reason = Some(e.kind.name().into());
                r.error = Some(e.message.clone());
                r.started_at = Some(started_at.clone());
                r.duration_ms = Some(0);
                results.push((
                    m,
                    Finished {
                        record: r,
                        handle: None,
                        error: Some(e.clone()),
                        conditions: BTreeMap::new(),
                    },
                ));
            }
            Gate::Run => {}
        }
    }
    if running.is_empty() {
        return Ok(UnitOutcome {
            nodes: results,
            outputs: vec![],
        });
    }
    for &m in &running {
        ctx.emit(Event::NodeStarted {
            node_id: p.nodes[m].id.clone(),
        });
    }
    let unit = Unit {
        root,
        running: running.clone(),
        started_at: started_at.clone(),
        clock,
        decided: results.clone(),
    };

    // 2. Cache lookup for the root.
    let root_runs = gates[&root] == Gate::Run;
    if root_runs && ctx.opts.use_cache && ctx.prep.entry[root] {
        let key = ctx.prep.keys[root].clone().unwrap();
        if let Some(meta) = cache::lookup(
            ctx.store.as_ref(),
            &ctx.opts.bucket,
            &ctx.opts.pipeline_id,
            &key,
        )
        .await
        {
            return cached_unit(ctx, &unit, meta).await;
        }
    }

    // 2b. A fan-out source without an entry of its own is read only if a
    // consumer has to compute: a fully cached run reads no source.
    if root_runs
        && ctx.opts.use_cache
        && ctx.prep.mat[root]
        && matches!(p.nodes[root].kind, NodeKind::Ingestion(_))
        && !ctx.prep.entry[root]
        && consumers_cached(ctx, root).await
    {
        let mut results = unit.decided.clone();
        for &m in &unit.running {
            let mut r = unit.record(ctx, m, NodeStatus::Cached);
            r.reason = Some("consumers_cached".into());
            results.push((
                m,
                Finished {
                    record: r,
                    handle: (m == root).then_some(Handle::Deferred),
                    error: None,
                    conditions: BTreeMap::new(),
                },
            ));
        }
        return Ok(UnitOutcome {
            nodes: results,
            outputs: Vec::new(),
        });
    }

    // 3. Fetch what the blocking part needs: external inputs and sources.
    let mut ready: HashMap<usize, Ready> = HashMap::new();
    let mut error_frames: HashMap<usize, DataFrame> = HashMap::new();
    for &m in &running {
        for e in p.inputs(m) {
            if ctx.prep.unit_of[e.source] == root {
                continue;
            }
            let f = &inputs[&e.source];
            if e.kind == EdgeKind::Error {
                let err = f
                    .error
                    .clone()
                    .unwrap_or_else(|| NodeError::new(NodeErrorKind::Internal, "unknown"));
                error_frames.insert(
                    e.source,
                    error_frame(&ctx.opts.run_id, &p.nodes[e.source], &err, &now()),
                );
            } else if let Some(h) = &f.handle {
                if !ready.contains_key(&e.source) {
                    match ready_handle(ctx, e.source, h).await {
                        Ok(r) => {
                            ready.insert(e.source, r);
                        }
                        Err(err) => {
                            return Ok(unit.fail(ctx, err));
                        }
                    }
                }
            }
        }
    }
    let mut source_data: HashMap<usize, (SourceData, Vec<String>)> = HashMap::new();
    for &m in &running {
        if let Some(src) = &ctx.prep.sources[m] {
            match src {
                Ok(objs) => {
                    let metas: Vec<ObjectMeta> = objs.iter().map(|(_, o)| o.as_hashed()).collect();
                    match ingest::fetch(ctx.store.as_ref(), &ctx.opts.bucket, &metas, &ctx.files)
                        .await
                    {
                        Ok(d) => {
                            source_data
                                .insert(m, (d, metas.iter().map(|o| o.key.clone()).collect()));
                        }
                        Err(err) => {
                            return Ok(unit.fail_at(ctx, m, err));
                        }
                    }
                }
                Err(err) => {
                    return Ok(unit.fail_at(ctx, m, err.clone()));
                }
            }
        }
    }

    // 4. Build and collect, off the async threads.
    ctx.computed.store(true, Ordering::SeqCst);
    let source_bytes: u64 = running
        .iter()
        .filter_map(|&m| ctx.prep.sources[m].as_ref())
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|objs| objs.iter().map(|(meta, _)| meta.size))
        .sum();
    let streaming = ctx.opts.streams(source_bytes, row_wise(p, &running));
    if streaming {
        tracing::debug!(node = %p.nodes[root].id, source_bytes, "unit on the streaming engine");
    }
    let is_output = matches!(p.nodes[root].kind, NodeKind::Output(_));
    // Outputs are the run's result: written before the unit counts as done.
    // An intermediate checkpoint's cache entry is written in the background.
    let write_parquet = root_runs && is_output;
    let write_behind = root_runs && !is_output && ctx.prep.entry[root];
    let job = {
        let ctx = ctx.clone();
        let running = running.clone();
        tokio::task::spawn_blocking(move || {
            compute(
                &ctx,
                root,
                &running,
                ready,
                error_frames,
                source_data,
                write_parquet,
                streaming,
            )
        })
    };
    let timeout = running
        .iter()
        .filter_map(|&m| p.nodes[m].execution.timeout_seconds)
        .reduce(f64::min);
    let computed = match timeout {
        Some(secs) => {
            match tokio::time::timeout(std::time::Duration::from_secs_f64(secs), job).await {
                Ok(j) => j,
                Err(_) => {
                    let err =
                        NodeError::new(NodeErrorKind::Timeout, format!("timed out after {secs}s"));
                    return Ok(unit.fail(ctx, err));
                }
            }
        }
        None => job.await,
    }
    .map_err(|e| EngineError::Internal(format!("compute task failed: {e}")))?;

    // 5. Records, cache entry and output artifacts.
    let elapsed = clock.elapsed().as_millis() as u64;
    let mut outputs = Vec::new();
    for (m, outcome) in computed.members {
        let mut r = ctx.record(m, outcome.status);
        r.started_at = Some(started_at.clone());
        r.duration_ms = Some(elapsed);
        r.rows = outcome.rows;
        r.reason = outcome.reason.map(str::to_string);
        if let Some(e) = &outcome.error {
            r.reason = Some(e.kind.name().into());
            r.error = Some(match &e.path {
                Some(path) => format!("{path}: {}", e.message),
                None => e.message.clone(),
            });
        }
        let mut f = Finished {
            record: r,
            handle: None,
            error: outcome.error,
            conditions: BTreeMap::new(),
        };
        if m == root {
            if let Some(df) = &computed.df {
                f.handle = Some(Handle::Memory(df.clone()));
                f.conditions = computed.conditions.clone();
            }
        }
        results.push((m, f));
    }
    if write_behind && let Some(df) = &computed.df {
        let ok = results
            .iter()
            .any(|(m, f)| *m == root && f.record.status.has_data());
        if ok {
            write_behind_entry(ctx, root, df.clone(), computed.conditions.clone());
        }
    }
    if let (Some(rows), Some(written)) = (computed.rows, &computed.written) {
        match persist(ctx, root, rows, written, &computed.conditions).await {
            Ok(out) => {
                let rec = &mut results
                    .iter_mut()
                    .find(|(m, _)| *m == root)
                    .unwrap()
                    .1
                    .record;
                rec.bytes = Some(written.parquet.bytes);
                outputs.extend(out);
            }
            Err(err) => {
                return Ok(unit.fail(ctx, err));
            }
        }
    }
    Ok(UnitOutcome {
        nodes: results,
        outputs,
    })
}

/// Whether every member computes each output row from one input row, in
/// order: scans, outputs and row-wise operators (`Operator::row_wise`).
pub fn row_wise(p: &Pipeline, members: &[usize]) -> bool {
    members.iter().all(|&m| match &p.nodes[m].kind {
        NodeKind::Ingestion(_) | NodeKind::Output(_) => true,
        NodeKind::Operator { op, .. } => op.row_wise(),
    })
}

/// Decides whether `m` runs, from its inputs' outcomes.
async fn gate_for(
    ctx: &Ctx,
    m: usize,
    gates: &HashMap<usize, Gate>,
    inputs: &HashMap<usize, Finished>,
) -> Gate {
    let p = &ctx.pipeline;
    let mut gate = Gate::Run;
    for e in p.inputs(m) {
        let this = if let Some(g) = gates.get(&e.source) {
            // Inside the unit: only data_flow edges (see is_mat_point).
            match g {
                Gate::Run => Gate::Run,
                Gate::Skip(r) if *r == "upstream_failed" || *r == "cancelled" => Gate::Skip(r),
                Gate::Fail(_) => Gate::Skip("upstream_failed"),
                Gate::Skip(_) => Gate::Skip("upstream_skipped"),
            }
        } else {
            let f = &inputs[&e.source];
            match (f.record.status, &e.kind) {
                (NodeStatus::Failed, EdgeKind::Error) => Gate::Run,
                (NodeStatus::Failed, _) => Gate::Skip("upstream_failed"),
                (s, EdgeKind::Error) if s.has_data() => Gate::Skip("no_error"),
                (s, EdgeKind::DataFlow) if s.has_data() => Gate::Run,
                (s, EdgeKind::Conditional(cond)) if s.has_data() => {
                    match condition(ctx, e.source, f, cond).await {
                        Ok(true) => Gate::Run,
                        Ok(false) => Gate::Skip("condition_false"),
                        Err(msg) => Gate::Fail(NodeError {
                            kind: NodeErrorKind::Config,
                            message: format!("condition \"{cond}\" of edge \"{}\" {msg}", e.id),
                            path: Some(format!("{}.condition", e.path)),
                            retryable: false,
                        }),
                    }
                }
                (NodeStatus::Skipped, _) if f.record.reason.as_deref() == Some("cancelled") => {
                    Gate::Skip("cancelled")
                }
                (NodeStatus::Skipped, _)
                    if f.record.reason.as_deref() == Some("upstream_failed") =>
                {
                    Gate::Skip("upstream_failed")
                }
                _ => Gate::Skip("upstream_skipped"),
            }
        };
        // upstream_failed wins over other skip reasons; a failure over all.
        gate = match (gate, this) {
            (Gate::Fail(e), _) | (_, Gate::Fail(e)) => Gate::Fail(e),
            (Gate::Skip("upstream_failed"), _) | (_, Gate::Skip("upstream_failed")) => {
                Gate::Skip("upstream_failed")
            }
            (Gate::Skip(r), _) => Gate::Skip(r),
            (_, g) => g,
        };
    }
    gate
}

/// A conditional edge's value: recorded when the source was computed or
/// cached, else evaluated on its data.
async fn condition(ctx: &Ctx, source: usize, f: &Finished, cond: &str) -> Result<bool, String> {
    if let Some(v) = f.conditions.get(cond) {
        return v.clone();
    }
    let Some(h) = &f.handle else {
        return Err("has no data to evaluate".into());
    };
    let ready = ready_handle(ctx, source, h).await.map_err(|e| e.message)?;
    let cond = cond.to_string();
    ctx.computed.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || {
        let lf = ready.lazy().map_err(|e| e.to_string())?;
        mudrock_operators::sqlutil::eval_bool(lf, &cond)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Where a member stands relative to the node that failed in its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Failed,
    /// Downstream of the failure: skipped (`upstream_failed`).
    Below,
    /// Upstream of it or beside it: fine, but never materialised alone.
    Above,
}

/// Roles of the running members, in topological order, when `at` fails.
fn roles(p: &Pipeline, running: &[usize], at: usize) -> Vec<(usize, Role)> {
    let mut failed_or_below = vec![at];
    running
        .iter()
        .map(|&m| {
            let role = if m == at {
                Role::Failed
            } else if p.inputs(m).any(|e| failed_or_below.contains(&e.source)) {
                failed_or_below.push(m);
                Role::Below
            } else {
                Role::Above
            };
            (m, role)
        })
        .collect()
}

/// One unit's run: who is in it, who runs, and what was decided before
/// anything ran (skips and gate failures of the members that do not run).
struct Unit {
    root: usize,
    running: Vec<usize>,
    started_at: String,
    clock: Instant,
    decided: Vec<(usize, Finished)>,
}

impl Unit {
    fn record(&self, ctx: &Ctx, m: usize, status: NodeStatus) -> NodeRecord {
        let mut r = ctx.record(m, status);
        r.started_at = Some(self.started_at.clone());
        r.duration_ms = Some(self.clock.elapsed().as_millis() as u64);
        r
    }

    /// `at` failed with `err`; members below it are skipped.
    fn fail_at(&self, ctx: &Ctx, at: usize, err: NodeError) -> UnitOutcome {
        let mut nodes = self.decided.clone();
        for (m, role) in roles(&ctx.pipeline, &self.running, at) {
            let (status, reason, error) = match role {
                Role::Failed => (
                    NodeStatus::Failed,
                    Some(err.kind.name().to_string()),
                    Some(err.clone()),
                ),
                Role::Below => (
                    NodeStatus::Skipped,
                    Some("upstream_failed".to_string()),
                    None,
                ),
                Role::Above => (NodeStatus::Succeeded, None, None),
            };
            let mut r = self.record(ctx, m, status);
            r.reason = reason;
            r.error = error.as_ref().map(|e| e.message.clone());
            nodes.push((
                m,
                Finished {
                    record: r,
                    handle: None,
                    error,
                    conditions: BTreeMap::new(),
                },
            ));
        }
        UnitOutcome {
            nodes,
            outputs: vec![],
        }
    }

    /// A failure of the unit as a whole (storage, timeout): pinned on the
    /// root, whose result it concerns.
    fn fail(&self, ctx: &Ctx, err: NodeError) -> UnitOutcome {
        self.fail_at(ctx, self.root, err)
    }
}

/// A unit whose root hit the cache: nothing is computed.
/// Whether every unit fed by `root` will be served from the cache (plain
/// data-flow consumers with a verified entry).
async fn consumers_cached(ctx: &Ctx, root: usize) -> bool {
    let p = &ctx.pipeline;
    for e in p.outputs(root) {
        if e.kind != EdgeKind::DataFlow {
            return false;
        }
        let u = ctx.prep.unit_of[e.target];
        if !ctx.prep.entry[u] || p.nodes[e.target].not_connected {
            return false;
        }
        let Some(key) = &ctx.prep.keys[u] else {
            return false;
        };
        if cache::lookup(
            ctx.store.as_ref(),
            &ctx.opts.bucket,
            &ctx.opts.pipeline_id,
            key,
        )
        .await
        .is_none()
        {
            return false;
        }
    }
    true
}

async fn cached_unit(
    ctx: &Arc<Ctx>,
    unit: &Unit,
    meta: CacheMeta,
) -> Result<UnitOutcome, EngineError> {
    let root = unit.root;
    let mut results = unit.decided.clone();
    let mut outputs = Vec::new();
    let key = meta.cache_key.clone();
    if matches!(ctx.pipeline.nodes[root].kind, NodeKind::Output(_)) {
        match write_output(ctx, root, &meta).await {
            Ok(o) => outputs.push(o),
            Err(err) => {
                return Ok(unit.fail(ctx, err));
            }
        }
    }
    for &m in &unit.running {
        let mut r = unit.record(ctx, m, NodeStatus::Cached);
        r.cache_hit = true;
        let mut f = Finished {
            record: r,
            handle: None,
            error: None,
            conditions: BTreeMap::new(),
        };
        if m == root {
            f.record.rows = Some(meta.rows);
            f.record.bytes = Some(meta.bytes);
            f.handle = Some(Handle::Cached(key.clone()));
            f.conditions = meta
                .conditions
                .iter()
                .map(|(k, v)| (k.clone(), Ok(*v)))
                .collect();
        }
        results.push((m, f));
    }
    Ok(UnitOutcome {
        nodes: results,
        outputs,
    })
}

/// What the blocking part of a unit produced.
struct Computed {
    members: Vec<(usize, MemberOutcome)>,
    /// The root's result; None when it failed or was streamed to a file.
    df: Option<DataFrame>,
    /// The root's row count when it has data.
    rows: Option<u64>,
    conditions: BTreeMap<String, Result<bool, String>>,
    written: Option<Written>,
}

struct MemberOutcome {
    status: NodeStatus,
    reason: Option<&'static str>,
    rows: Option<u64>,
    error: Option<NodeError>,
}

struct Written {
    path: PathBuf,
    parquet: WrittenParquet,
    export: Option<(PathBuf, ExportRecord)>,
}

fn compute(
    ctx: &Ctx,
    root: usize,
    running: &[usize],
    ready: HashMap<usize, Ready>,
    error_frames: HashMap<usize, DataFrame>,
    sources: HashMap<usize, (SourceData, Vec<String>)>,
    write: bool,
    streaming: bool,
) -> Computed {
    let engine = if streaming {
        polars::prelude::Engine::Streaming
    } else {
        polars::prelude::Engine::InMemory
    };
    let collect = |lf: LazyFrame| lf.collect_with_engine(engine).map(|r| r.unwrap_single());
    let p = &ctx.pipeline;
    let mut frames: HashMap<usize, (LazyFrame, SchemaRef)> = HashMap::new();
    // One pair of plan arenas for the unit (see `build::SchemaOf`).
    let (mut lp_arena, mut expr_arena) = (Default::default(), Default::default());
    let mut schema_of = |lf: &mut LazyFrame| lf.schema_with_arenas(&mut lp_arena, &mut expr_arena);
    let mut outcomes: Vec<(usize, MemberOutcome)> = Vec::new();
    let ok = |rows| MemberOutcome {
        status: NodeStatus::Succeeded,
        reason: None,
        rows,
        error: None,
    };
    let fail = |e: NodeError| MemberOutcome {
        status: NodeStatus::Failed,
        reason: None,
        rows: None,
        error: Some(e),
    };
    let skip = || MemberOutcome {
        status: NodeStatus::Skipped,
        reason: Some("upstream_failed"),
        rows: None,
        error: None,
    };

    // Build every member; a member whose input failed to build is skipped.
    let mut broken: Vec<usize> = Vec::new();
    for &m in running {
        if p.inputs(m).any(|e| broken.contains(&e.source)) {
            broken.push(m);
            outcomes.push((m, skip()));
            continue;
        }
        let mut inputs = Vec::new();
        let mut input_err = None;
        for e in p.inputs(m) {
            let name = p.nodes[e.source].id.clone();
            let (frame, schema) = if let Some((lf, s)) = frames.get(&e.source) {
                (lf.clone(), s.clone())
            } else if let Some(df) = error_frames.get(&e.source) {
                (df.clone().lazy(), df.schema().clone())
            } else if let Some(r) = ready.get(&e.source) {
                match r
                    .lazy()
                    .and_then(|mut lf| lf.collect_schema().map(|s| (lf, s)))
                {
                    Ok(x) => x,
                    Err(err) => {
                        input_err = Some(NodeError::new(
                            NodeErrorKind::Data,
                            format!("reading input \"{name}\": {err}"),
                        ));
                        break;
                    }
                }
            } else {
                input_err = Some(NodeError::new(
                    NodeErrorKind::Internal,
                    format!("input \"{name}\" has no data"),
                ));
                break;
            };
            inputs.push(Input {
                name,
                frame,
                schema,
            });
        }
        let built = match input_err {
            Some(e) => Err(e),
            None => build_node(
                &p.nodes[m],
                inputs,
                sources.get(&m).map(|(d, _)| d),
                &mut schema_of,
                &ctx.opts.limits.ops,
            ),
        };
        match built {
            Ok(x) => {
                frames.insert(m, x);
            }
            Err(e) => {
                broken.push(m);
                outcomes.push((m, fail(e)));
            }
        }
    }
    let Some((root_lf, _)) = frames.get(&root).cloned() else {
        // The root did not build: members that did are fine but unused.
        for &m in running {
            if frames.contains_key(&m) && !outcomes.iter().any(|(x, _)| *x == m) {
                outcomes.push((m, ok(None)));
            }
        }
        return Computed {
            members: outcomes,
            df: None,
            rows: None,
            conditions: BTreeMap::new(),
            written: None,
        };
    };

    // Where the root's Parquet goes when it is written.
    let path = ctx.scratch.join(format!("{}.parquet", p.nodes[root].id));
    // An output with nothing downstream and no export, on the streaming
    // engine, is streamed straight into its Parquet file: the result is
    // never whole in memory.
    let sink = match &p.nodes[root].kind {
        NodeKind::Output(c)
            if streaming && write && c.export.is_none() && p.outputs(root).next().is_none() =>
        {
            Some(c.compression)
        }
        _ => None,
    };
    let collected = match sink {
        Some(compression) => match sink_parquet(root_lf, &path, compression) {
            Sunk::Written(parquet, rows) => {
                for &m in running {
                    outcomes.push((m, ok((m == root).then_some(rows))));
                }
                if let Err(m) = ctx.budget.charge(parquet.bytes, &what_of(p, root)) {
                    return storage_failure(outcomes, root, m);
                }
                return Computed {
                    members: outcomes,
                    df: None,
                    rows: Some(rows),
                    conditions: BTreeMap::new(),
                    written: Some(Written {
                        path,
                        parquet,
                        export: None,
                    }),
                };
            }
            Sunk::Query(e) => Err(e),
            Sunk::File(msg) => {
                for &m in running {
                    outcomes.push((m, ok(None)));
                }
                return storage_failure(outcomes, root, msg);
            }
        },
        None => collect(root_lf),
    };
    // Collect the root; on failure find the member that fails.
    let mut df = match collected {
        Ok(df) => df,
        Err(e) => {
            let mut culprit = None;
            if running.len() > 1 {
                for &m in running {
                    if m == root {
                        break;
                    }
                    if let Err(e) = collect(frames[&m].0.clone()) {
                        culprit = Some((m, e));
                        break;
                    }
                }
            }
            let (at, e) = culprit.unwrap_or((root, e));
            let mut message = build::clean_polars(&e.to_string());
            if let Some((data, keys)) = sources.get(&at) {
                if let NodeKind::Ingestion(cfg) = &p.nodes[at].kind {
                    if let Some((key, msg)) = ingest::culprit(cfg, data, keys) {
                        message = format!("{key}: {}", build::clean_polars(&msg));
                    }
                }
            }
            for (m, role) in roles(p, running, at) {
                // Members that failed to build are already recorded.
                if outcomes.iter().any(|(x, _)| *x == m) {
                    continue;
                }
                let o = match role {
                    Role::Failed => fail(NodeError::from_polars(&message)),
                    Role::Below => skip(),
                    Role::Above => ok(None),
                };
                outcomes.push((m, o));
            }
            return Computed {
                members: outcomes,
                df: None,
                rows: None,
                conditions: BTreeMap::new(),
                written: None,
            };
        }
    };
    let rows = df.height() as u64;
    // Asserts look at the data.
    if let NodeKind::Operator { op, .. } = &p.nodes[root].kind {
        if op.needs_check() {
            if let Err(e) = op.check(&df) {
                for &m in running {
                    if m != root {
                        outcomes.push((m, ok(None)));
                    }
                }
                outcomes.push((root, fail(build::op_error(&p.nodes[root], e))));
                return Computed {
                    members: outcomes,
                    df: None,
                    rows: None,
                    conditions: BTreeMap::new(),
                    written: None,
                };
            }
        }
    }
    for &m in running {
        outcomes.push((m, ok(if m == root { Some(rows) } else { None })));
    }
    let mut conditions = BTreeMap::new();
    for e in p.outputs(root) {
        if let EdgeKind::Conditional(c) = &e.kind {
            conditions
                .entry(c.clone())
                .or_insert_with(|| mudrock_operators::sqlutil::eval_bool(df.clone().lazy(), c));
        }
    }
    let written = if write {
        let compression = match &p.nodes[root].kind {
            NodeKind::Output(c) => c.compression,
            _ => crate::pipeline::Compression::Zstd,
        };
        match write_parquet(&mut df, &path, compression).and_then(|parquet| {
            ctx.budget.charge(parquet.bytes, &what_of(p, root))?;
            Ok(parquet)
        }) {
            Ok(parquet) => {
                let export = match &p.nodes[root].kind {
                    NodeKind::Output(c) => c.export.as_ref().map(|x| {
                        let format = Format::from_extension(x).unwrap_or(Format::Csv);
                        let xp = ctx.scratch.join(format!(
                            "{}.export.{}",
                            p.nodes[root].id,
                            format.name()
                        ));
                        write_export(&mut df, &xp, format, compression).and_then(|bytes| {
                            ctx.budget.charge(bytes, &format!("export \"{x}\""))?;
                            let blake3 = cache::hash_file(&xp).map_err(|e| e.to_string())?;
                            Ok((
                                xp,
                                ExportRecord {
                                    key: x.clone(),
                                    format: format.name().into(),
                                    bytes,
                                    blake3,
                                    cache_file: format!("export.{}", format.name()),
                                },
                            ))
                        })
                    }),
                    _ => None,
                };
                match export.transpose() {
                    Ok(export) => Some(Written {
                        path,
                        parquet,
                        export,
                    }),
                    Err(msg) => return storage_failure(outcomes, root, msg),
                }
            }
            Err(msg) => return storage_failure(outcomes, root, msg),
        }
    } else {
        None
    };
    Computed {
        members: outcomes,
        df: Some(df),
        rows: Some(rows),
        conditions,
        written,
    }
}

/// What a unit root's scratch file is, for the scratch budget's message.
fn what_of(p: &Pipeline, root: usize) -> String {
    format!("the result of node \"{}\"", p.nodes[root].id)
}

/// The root failed writing its scratch file: over the scratch budget (a
/// limit) or the disk refused (internal).
fn storage_failure(
    mut outcomes: Vec<(usize, MemberOutcome)>,
    root: usize,
    msg: String,
) -> Computed {
    let kind = if mudrock_operators::limits::is_limit_message(&msg) {
        NodeErrorKind::Limit
    } else {
        NodeErrorKind::Internal
    };
    for (m, o) in &mut outcomes {
        if *m == root {
            o.status = NodeStatus::Failed;
            o.error = Some(NodeError::new(kind.clone(), msg.clone()));
        }
    }
    Computed {
        members: outcomes,
        df: None,
        rows: None,
        conditions: BTreeMap::new(),
        written: None,
    }
}

/// Writes an intermediate checkpoint's cache entry in the background. A
/// failure costs only the entry (the next run computes the node again): it
/// is logged, and the run goes on with the frame it already has.
fn write_behind_entry(
    ctx: &Arc<Ctx>,
    root: usize,
    df: DataFrame,
    conditions: BTreeMap<String, Result<bool, String>>,
) {
    let ctx2 = ctx.clone();
    let h = tokio::spawn(async move {
        let node = ctx2.pipeline.nodes[root].id.clone();
        let path = ctx2.scratch.join(format!("{node}.parquet"));
        let rows = df.height() as u64;
        let p2 = path.clone();
        let budget = ctx2.budget.clone();
        let what = format!("the cache entry of node \"{node}\"");
        let written = tokio::task::spawn_blocking(move || {
            let mut df = df;
            let parquet = write_parquet(&mut df, &p2, crate::pipeline::Compression::Zstd)?;
            budget.charge(parquet.bytes, &what)?;
            Ok::<_, String>(parquet)
        })
        .await;
        let w = match written {
            Ok(Ok(parquet)) => Written {
                path,
                parquet,
                export: None,
            },
            Ok(Err(e)) => {
                tracing::warn!(node = %node, error = %e, "cache entry not written");
                return None;
            }
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "cache entry not written");
                return None;
            }
        };
        match persist(&ctx2, root, rows, &w, &conditions).await {
            Ok(_) => Some((root, w.parquet.bytes)),
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "cache entry not written");
                None
            }
        }
    });
    ctx.background.lock().unwrap().push(h);
}

/// Writes the cache entry (data first, metadata last) and, for outputs,
/// the run's artifacts.
async fn persist(
    ctx: &Ctx,
    root: usize,
    rows: u64,
    w: &Written,
    conditions: &BTreeMap<String, Result<bool, String>>,
) -> Result<Vec<LineageOutput>, NodeError> {
    let b = &ctx.opts.bucket;
    let node = &ctx.pipeline.nodes[root];
    let compression = match &node.kind {
        NodeKind::Output(c) => c.compression.name(),
        _ => "zstd",
    };
    let mut meta = CacheMeta {
        cache_key: ctx.prep.keys[root].clone().unwrap_or_default(),
        node_id: node.id.clone(),
        rows,
        bytes: w.parquet.bytes,
        blake3: w.parquet.blake3.clone(),
        created_at: now(),
        compression: compression.into(),
        schema: w.parquet.schema.clone(),
        conditions: conditions
            .iter()
            .filter_map(|(k, v)| v.as_ref().ok().map(|v| (k.clone(), *v)))
            .collect(),
        export: w.export.as_ref().map(|(_, x)| x.clone()),
        data_version: None,
    };
    if ctx.cacheable(root) {
        let prefix = cache::entry_prefix(&ctx.opts.pipeline_id, &meta.cache_key);
        let written = ctx
            .store
            .put_file(b, &format!("{prefix}data.parquet"), &w.path)
            .await
            .map_err(NodeError::storage)?;
        meta.data_version = Some(written.version);
        if let Some((xp, x)) = &w.export {
            ctx.store
                .put_file(b, &format!("{prefix}{}", x.cache_file), xp)
                .await
                .map_err(NodeError::storage)?;
        }
        ctx.store
            .put(b, &format!("{prefix}metadata.json"), to_json(&meta))
            .await
            .map_err(NodeError::storage)?;
        if matches!(node.kind, NodeKind::Output(_)) {
            return Ok(vec![write_output(ctx, root, &meta).await?]);
        }
        return Ok(vec![]);
    }
    if matches!(node.kind, NodeKind::Output(_)) {
        // Not cached: write the run's files straight from scratch.
        let prefix = format!("{}outputs/{}/", ctx.run_prefix, node.id);
        ctx.store
            .put_file(b, &format!("{prefix}data.parquet"), &w.path)
            .await
            .map_err(NodeError::storage)?;
        if let Some((xp, x)) = &w.export {
            ctx.store
                .put_file(b, &x.key, xp)
                .await
                .map_err(NodeError::storage)?;
        }
        return Ok(vec![write_output_meta(ctx, root, &meta, None).await?]);
    }
    Ok(vec![])
}

/// Copies an output's data from its cache entry into the run folder.
async fn write_output(
    ctx: &Ctx,
    root: usize,
    meta: &CacheMeta,
) -> Result<LineageOutput, NodeError> {
    let b = &ctx.opts.bucket;
    let node = &ctx.pipeline.nodes[root];
    let entry = cache::entry_prefix(&ctx.opts.pipeline_id, &meta.cache_key);
    let prefix = format!("{}outputs/{}/", ctx.run_prefix, node.id);
    ctx.store
        .copy(
            b,
            &format!("{entry}data.parquet"),
            &format!("{prefix}data.parquet"),
        )
        .await
        .map_err(NodeError::storage)?;
    if let Some(x) = &meta.export {
        ctx.store
            .copy(b, &format!("{entry}{}", x.cache_file), &x.key)
            .await
            .map_err(NodeError::storage)?;
    }
    write_output_meta(ctx, root, meta, Some(meta.cache_key.clone())).await
}

/// `schema.json` then the dataframe's `metadata.json`.
async fn write_output_meta(
    ctx: &Ctx,
    root: usize,
    meta: &CacheMeta,
    cache_key: Option<String>,
) -> Result<LineageOutput, NodeError> {
    let b = &ctx.opts.bucket;
    let node = &ctx.pipeline.nodes[root];
    let prefix = format!("{}outputs/{}/", ctx.run_prefix, node.id);
    ctx.store
        .put(b, &format!("{prefix}schema.json"), to_json(&meta.schema))
        .await
        .map_err(NodeError::storage)?;
    let dm = DataframeMeta {
        dataframe_id: node.id.clone(),
        node_id: node.id.clone(),
        run_id: ctx.opts.run_id.clone(),
        rows: meta.rows,
        bytes: meta.bytes,
        blake3: meta.blake3.clone(),
        cache_key: cache_key.or_else(|| ctx.prep.keys[root].clone()),
        created_at: now(),
        compression: meta.compression.clone(),
        export: meta.export.clone(),
    };
    ctx.store
        .put(b, &format!("{prefix}metadata.json"), to_json(&dm))
        .await
        .map_err(NodeError::storage)?;
    Ok(LineageOutput {
        dataframe_id: node.id.clone(),
        path: format!("{prefix}data.parquet"),
        rows: meta.rows,
        blake3: meta.blake3.clone(),
    })
}

fn lineage(ctx: &Ctx, by_node: &HashMap<usize, Finished>, outputs: Vec<LineageOutput>) -> Lineage {
    let p = &ctx.pipeline;
    let status = |i: usize| by_node[&i].record.status;
    let ran = |s: NodeStatus| {
        matches!(
            s,
            NodeStatus::Succeeded | NodeStatus::Cached | NodeStatus::Failed
        )
    };
    let edges = p
        .edges
        .iter()
        .filter(|e| {
            let src_ok = if e.kind == EdgeKind::Error {
                status(e.source) == NodeStatus::Failed
            } else {
                status(e.source).has_data()
            };
            src_ok && ran(status(e.target))
        })
        .map(|e| LineageEdge {
            edge_id: e.id.clone(),
            source: p.nodes[e.source].id.clone(),
            target: p.nodes[e.target].id.clone(),
            edge_type: e.kind.name().into(),
            source_cache_key: ctx.prep.keys[e.source].clone(),
            target_cache_key: ctx.prep.keys[e.target].clone(),
        })
        .collect();
    let mut sources = Vec::new();
    for (i, s) in ctx.prep.sources.iter().enumerate() {
        if let Some(Ok(objs)) = s {
            if ran(status(i)) {
                for (_, o) in objs {
                    sources.push(LineageSource {
                        node_id: p.nodes[i].id.clone(),
                        object: o.clone(),
                    });
                }
            }
        }
    }
    let mut outputs = outputs;
    outputs.sort_by(|a, b| a.dataframe_id.cmp(&b.dataframe_id));
    Lineage {
        run_id: ctx.opts.run_id.clone(),
        pipeline_id: ctx.opts.pipeline_id.clone(),
        edges,
        sources,
        outputs,
    }
}
