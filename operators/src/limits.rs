//! Resources an operator can inflate, each with a named limit.
//!
//! A pipeline is untrusted input: a pivot over an id column or a join on a
//! skewed key can ask for millions of columns or billions of rows. The
//! engine hands every operator these limits (from the `[engine]` section of
//! the config); a node over one fails with the limit's name and how to raise
//! it, and the run's other branches still finish.

/// Limits enforced while a node is built or computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `engine.max_pivot_columns`: output columns one pivot may produce.
    pub max_pivot_columns: usize,
    /// `engine.max_join_rows`: rows one join may produce.
    pub max_join_rows: u64,
    /// Float sums and means are Polars' own, in one unpartitioned query
    /// (a fixed order of additions), instead of exact on a grid
    /// ([`crate::exact_sum`]): the engine sets it to build a unit again
    /// when a value is off the grid.
    pub sequential_float_sums: bool,
    /// Group keys are never packed into one ([`crate::packed_key`]): the
    /// engine sets it to build a unit again when a datetime key was beyond
    /// its packed range.
    pub unpacked_group_keys: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pivot_columns: 1_000,
            max_join_rows: 100_000_000,
            sequential_float_sums: false,
            unpacked_group_keys: false,
        }
    }
}

/// How every over-the-limit message starts; the engine reads it back to
/// record the failure as `limit` (a message may come back through Polars).
pub const PREFIX: &str = "over the limit ";

/// The message for a resource over its limit: what, how much, the limit's
/// name and value, and where to raise it.
pub fn message(
    what: &str,
    value: impl std::fmt::Display,
    key: &str,
    max: impl std::fmt::Display,
) -> String {
    format!(
        "{PREFIX}{key} = {max}: {what} ({value}); raise {key} in the config if this is intended"
    )
}

/// Whether a message (possibly wrapped by Polars) is an over-the-limit one.
pub fn is_limit_message(message: &str) -> bool {
    message.contains(PREFIX)
}
