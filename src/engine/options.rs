//! What a run is given and what it returns: [`RunOptions`] (ids, trigger,
//! concurrency, the Polars engine, limits), progress [`Event`]s, the
//! [`Streaming`] choice, and [`RunResult`].

use tokio_util::sync::CancellationToken;

use super::*;

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
    /// Sources of this many bytes or more are scanned through mappings
    /// whose resident pages are let go behind the scan (see
    /// `engine::ingest::mapped`); smaller ones Polars maps itself.
    pub trim_sources_above_bytes: u64,
    pub events: Option<mpsc::UnboundedSender<Event>>,
    /// Cancelled to stop between nodes (and cut retry waits short); the
    /// run ends `cancelled`. A worker hands each run a child of its own.
    pub cancel: CancellationToken,
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
                scheduled_for: None,
                backfill_id: None,
                requested_by: None,
            },
            attempt: 1,
            use_cache: true,
            concurrency: 4,
            streaming: Streaming::Auto,
            streaming_above_bytes: DEFAULT_STREAMING_ABOVE_BYTES,
            trim_sources_above_bytes: crate::engine::ingest::DEFAULT_TRIM_ABOVE_BYTES,
            events: None,
            cancel: CancellationToken::new(),
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
    /// The most units that computed at once (at most `concurrency`).
    pub peak_computing: usize,
}
