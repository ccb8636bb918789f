//! `[engine]` in the configuration: concurrency, the Polars engine choice,
//! the run limits and the scratch folder, applied to a run's options.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// `Config::scratch_dir`).
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
                sequential_float_sums: false,
                unpacked_group_keys: false,
            },
            max_glob_matches: self.max_glob_matches,
            max_scratch_bytes: self.max_scratch_mb.saturating_mul(1 << 20),
        }
    }
}
