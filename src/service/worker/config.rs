//! `[worker]` in the configuration (`MUDROCK_WORKER__*`): concurrency,
//! heartbeats and the lease, shutdown grace, attempts and backoff; and the
//! [`WorkerSettings`] a worker is built with.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::retry::RetryPolicy;

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

/// Everything a worker reads of the configuration: its own section, the
/// engine's (concurrency, limits), the store's bucket naming and the
/// document limits pipelines are validated with.
#[derive(Debug, Clone, Default)]
pub struct WorkerSettings {
    pub worker: WorkerConfig,
    pub engine: crate::engine::EngineConfig,
    pub store: crate::store::StoreConfig,
    pub limits: crate::limits::DocLimits,
    /// Where finished runs' OpenLineage events go.
    pub lineage: crate::service::lineage_sink::LineageConfig,
}
