//! Every resource an untrusted pipeline can inflate, with its named limit.
//!
//! A pipeline comes from any editor of any project and runs on shared
//! workers. Document limits ([`DocLimits`], config `[limits]`) are checked
//! at validation; run limits ([`RunLimits`], config `[engine]`) while a run
//! builds and computes its nodes. Every refusal names the key that raises
//! it, e.g. `over the limit engine.max_pivot_columns = 1000: ...`.

use serde::{Deserialize, Serialize};

/// Limits on a pipeline document, checked by `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocLimits {
    /// `limits.max_definition_kb`: the document's size as submitted.
    pub max_definition_kb: usize,
    /// `limits.max_nodes`.
    pub max_nodes: usize,
    /// `limits.max_edges`: edges plus dependencies.
    pub max_edges: usize,
    /// `limits.max_expression_chars`: one expression's length.
    pub max_expression_chars: usize,
}

impl Default for DocLimits {
    fn default() -> Self {
        DocLimits {
            max_definition_kb: 1024,
            max_nodes: 1_000,
            max_edges: 5_000,
            max_expression_chars: mudrock_operators::expr::DEFAULT_MAX_CHARS,
        }
    }
}

impl DocLimits {
    pub fn max_definition_bytes(&self) -> usize {
        self.max_definition_kb.saturating_mul(1024)
    }
}

/// Limits on one run, enforced by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Pivot columns and join rows, enforced by the operators.
    pub ops: mudrock_operators::Limits,
    /// `engine.max_glob_matches`: objects one ingestion node may match.
    pub max_glob_matches: usize,
    /// `engine.max_scratch_mb`: what the run's scratch files may add up to.
    pub max_scratch_bytes: u64,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            ops: mudrock_operators::Limits::default(),
            max_glob_matches: 10_000,
            max_scratch_bytes: 50 << 30,
        }
    }
}

/// The over-the-limit message (see [`mudrock_operators::limits::message`]).
pub use mudrock_operators::limits::message;
