//! The sections of the configuration: `[store]`, `[engine]` and `[worker]`
//! (`[limits]` and `[sandbox]` live with what they limit: `crate::limits`,
//! `crate::sandbox`), each with its defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{RetryPolicy, S3Config};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Local,
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    pub dir: PathBuf,
    pub bucket_prefix: String,
    pub s3: S3Config,
    pub retry: RetryPolicy,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Local,
            dir: PathBuf::from("mudrock-data"),
            bucket_prefix: "project-".into(),
            s3: S3Config::default(),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Units computed at once.
    pub concurrency: usize,
    /// Which Polars engine computes a unit: `auto` streams units whose
    /// sources exceed `streaming_above_mb`, `always`, or `never`.
    pub streaming: crate::engine::Streaming,
    pub streaming_above_mb: u64,
    /// Output columns one pivot may produce.
    pub max_pivot_columns: usize,
    /// Rows one join may produce.
    pub max_join_rows: u64,
    /// Objects one ingestion node's globs may match.
    pub max_glob_matches: usize,
    /// What one run's scratch files may add up to, in MiB.
    pub max_scratch_mb: u64,
    /// Where runs keep their scratch files (default: see
    /// [`Config::scratch_dir`]).
    pub scratch_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let limits = crate::limits::RunLimits::default();
        EngineConfig {
            concurrency: 4,
            streaming: crate::engine::Streaming::Auto,
            streaming_above_mb: crate::engine::DEFAULT_STREAMING_ABOVE_BYTES >> 20,
            max_pivot_columns: limits.ops.max_pivot_columns,
            max_join_rows: limits.ops.max_join_rows,
            max_glob_matches: limits.max_glob_matches,
            max_scratch_mb: limits.max_scratch_bytes >> 20,
            scratch_dir: None,
        }
    }
}

impl EngineConfig {
    pub fn streaming_above_bytes(&self) -> u64 {
        self.streaming_above_mb.saturating_mul(1 << 20)
    }

    /// Sets what this section decides on a run's options.
    pub fn apply(&self, o: &mut crate::engine::RunOptions) {
        o.concurrency = self.concurrency;
        o.streaming = self.streaming;
        o.streaming_above_bytes = self.streaming_above_bytes();
        o.limits = self.limits();
    }

    /// The run limits this section sets.
    pub fn limits(&self) -> crate::limits::RunLimits {
        crate::limits::RunLimits {
            ops: mudrock_operators::Limits {
                max_pivot_columns: self.max_pivot_columns,
                max_join_rows: self.max_join_rows,
            },
            max_glob_matches: self.max_glob_matches,
            max_scratch_bytes: self.max_scratch_mb.saturating_mul(1 << 20),
        }
    }
}

/// `[worker]` in the configuration (`MUDROCK_WORKER__*`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Runs executed at once by one worker.
    pub concurrency: usize,
    /// How often the worker says it is alive (and looks for cancellations).
    pub heartbeat_ms: u64,
    /// Heartbeats a worker may miss before its runs are taken over:
    /// the lease is `heartbeat_ms × missed_heartbeats` (at least 1 s).
    pub missed_heartbeats: u32,
    /// Fallback poll interval; new jobs normally wake the worker by NOTIFY.
    pub poll_ms: u64,
    /// On SIGTERM/SIGINT: time to finish running runs before they are
    /// stopped between nodes and handed back to the queue.
    pub shutdown_grace_seconds: u64,
    /// Executions of one run (transient failures and takeovers included).
    pub max_attempts: u32,
    /// Backoff between attempts after a transient failure, and for
    /// database calls while the database is away.
    pub retry: RetryPolicy,
    /// A run held back by its project's `maxConcurrentRuns` is offered
    /// again after this long.
    pub defer_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 2,
            heartbeat_ms: 5_000,
            missed_heartbeats: 3,
            poll_ms: 1_000,
            shutdown_grace_seconds: 30,
            max_attempts: 5,
            retry: RetryPolicy {
                min_delay_ms: 500,
                max_delay_ms: 30_000,
                budget_ms: 300_000,
            },
            defer_ms: 2_000,
        }
    }
}

impl WorkerConfig {
    /// How long a silent worker keeps its runs.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms * u64::from(self.missed_heartbeats.max(1)))
    }

    /// apalis measures leases in whole seconds.
    pub fn lease_secs(&self) -> u64 {
        self.lease().as_secs().max(1)
    }
}
