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
mod cached;
mod compute;
mod config;
mod ctx;
mod early;
mod fanout;
mod gate;
pub mod ingest;
mod inputs;
mod lineage;
mod off_grid;
mod options;
mod persist;
pub mod plan;
mod prepare;
mod roles;
mod same_bytes;
mod schedule;
mod scratch;
mod scratch_failure;
#[cfg(test)]
mod tests;
mod unit;

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
use cached::*;
use compute::*;
pub use config::EngineConfig;
use gate::*;
use inputs::*;
use lineage::*;
pub use options::*;
use persist::*;
use prepare::*;
pub use prepare::{row_wise, topo_order};
use roles::*;
use schedule::*;
use scratch_failure::*;
use unit::*;

use crate::artifacts::*;
use crate::cache::{self, CacheMeta, SourceObject};
use crate::error::{EngineError, NodeError, NodeErrorKind};
use crate::hash::canonical_json;
use crate::model::pipeline::{Edge, EdgeKind, Format, NodeKind, Pipeline};
use crate::model::*;
use crate::store::{ObjectMeta, ObjectStore, StoreError};
use ingest::SourceData;

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
    /// A fan-out source computed with its consumers (fanout.rs).
    Shared(Arc<fanout::Shared>),
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
    /// Units computing (Polars work in progress) now and at most; a
    /// timed-out unit counts until its computation really ends.
    computing: scratch::Gauge,
    /// Cache writes of intermediate checkpoints, off the critical path:
    /// downstream units go on with the frame in memory; the run waits for
    /// these before its commit marker. Each yields (node, bytes) when the
    /// entry was written.
    background: std::sync::Mutex<Vec<tokio::task::JoinHandle<Option<(usize, u64)>>>>,
    /// Column names of every node built in this run or read from a cache
    /// entry: what column lineage is traced over.
    columns: std::sync::Mutex<HashMap<usize, Vec<String>>>,
    /// Outputs' data copied from their entries beside the lookups (early.rs).
    early: early::EarlyCopies,
    /// Cache lookups by key, each done once per run ([`Ctx::lookup`]).
    lookups: std::sync::Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Option<CacheMeta>>>>>,
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
        let run_prefix = format!("pipelines/{}/runs/{}/", opts.pipeline_id, opts.run_id);

        let scratch = scratch::RunScratch::new(&self.scratch);
        let budget = Arc::new(scratch::ScratchBudget::new(opts.limits.max_scratch_bytes));
        let files = ingest::SourceFiles::new(scratch.path().join("sources"), budget.clone())
            .trimming_above(opts.trim_sources_above_bytes);
        // A retried run overwrites its own folder: remove the old commit
        // marker before anything is written there (so the folder never
        // looks complete mid-retry), while the sources are resolved.
        let marker = format!("{run_prefix}metadata.json");
        let b = &opts.bucket;
        // The bucket is made sure of in the same round: it exists for all
        // but a project's first run, and where it did not exist yet for the
        // other requests, there was no marker to delete and no source to
        // find (a source in a missing bucket is a missing source).
        let (created, deleted, prep) = tokio::join!(
            store.create_bucket(b),
            store.delete(b, &marker),
            prepare(store.as_ref(), &opts, &pipeline, &files)
        );
        created?;
        match deleted {
            Ok(()) | Err(StoreError::NoSuchBucket(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let prep = prep?;
        tracing::info!(
            run_id = %opts.run_id,
            pipeline = %opts.pipeline_id,
            nodes = pipeline.nodes.len(),
            units = prep.members.len(),
            bytes_hashed = prep.bytes_hashed,
            "run started"
        );
        let early = early::EarlyCopies::start(&store, &pipeline, &opts, &prep, &run_prefix);
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
            computing: Default::default(),
            background: Default::default(),
            columns: Default::default(),
            early,
            lookups: Default::default(),
        });
        // Every unit root's cache entry is looked up at once, now: a unit
        // then finds its answer waiting instead of starting a round trip
        // after the units it reads from, so a fully cached run costs one
        // round of lookups, not one per level of the DAG.
        if opts.use_cache {
            let keys: Vec<String> = ctx
                .prep
                .members
                .keys()
                .filter(|&&r| ctx.prep.entry[r])
                .filter_map(|&r| ctx.prep.keys[r].clone())
                .collect();
            let c = ctx.clone();
            tokio::spawn(async move {
                futures_util::future::join_all(keys.iter().map(|k| c.lookup(k))).await;
            });
        }

        let finished = schedule(ctx.clone()).await;
        // Also on error: scratch files must outlive the writes using them.
        let pending: Vec<_> = std::mem::take(&mut *ctx.background.lock().unwrap());
        let mut bytes_written = HashMap::new();
        for h in pending {
            if let Ok(Some((node, bytes))) = h.await {
                bytes_written.insert(node, bytes);
            }
        }
        let cleaned = ctx.early.clean(&ctx).await;
        let finished = finished?;
        cleaned?;

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
        let cancelled = ctx.opts.cancel.is_cancelled()
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
        let finished_at = Utc::now();
        let meta = RunMeta {
            format_version: FORMAT_VERSION,
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
            .put_in_order(
                &opts.bucket,
                vec![
                    (format!("{run_prefix}lineage.json"), to_json(&lineage)),
                    (format!("{run_prefix}metadata.json"), to_json(&meta)),
                ],
            )
            .await?;
        tracing::info!(run_id = %opts.run_id, status = status.name(), duration_ms = meta.duration_ms, "run finished");
        Ok(RunResult {
            meta,
            run_prefix,
            computed: ctx.computed.load(Ordering::SeqCst),
            peak_computing: ctx.computing.peak(),
        })
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}
