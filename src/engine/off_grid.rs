//! Fast paths that can meet a value they cannot take, and build the unit
//! once more without them:
//! - float sums off the exact grid: a unit whose aggregate met a value the
//!   exact sum cannot hold (`mudrock_operators::exact_sum`: bits finer than
//!   2^-64, NaN, ∞, a total that could overflow) computes with Polars' own
//!   float sums in one unpartitioned query, a fixed order of additions
//!   (`Limits::sequential_float_sums`);
//! - a datetime group key beyond the range its packing left it
//!   (`mudrock_operators::packed_key`) groups by the keys themselves
//!   (`Limits::unpacked_group_keys`).
//!
//! Both ways the result is the same run to run; only the rare unit that
//! needs it computes twice.

use mudrock_operators::{Limits, exact_sum, packed_key};

use super::*;

/// `compute` (a unit's blocking part under the given limits) with the fast
/// paths, and again without the ones a member failed on.
pub(super) fn exact_or_in_order(
    ctx: &Ctx,
    root: usize,
    compute: impl Fn(&Limits) -> Computed,
) -> Computed {
    let first = compute(&ctx.opts.limits.ops);
    let off_grid = failed_on(&first, exact_sum::is_off_grid);
    let wide = failed_on(&first, packed_key::is_wide);
    if !off_grid && !wide {
        return first;
    }
    let node = &ctx.pipeline.nodes[root].id;
    if off_grid {
        tracing::info!(node = %node, "float sum off the exact grid: summing without the grid");
    }
    if wide {
        tracing::info!(node = %node, "group key beyond its packed range: grouping unpacked");
    }
    let base = ctx.opts.limits.ops;
    compute(&Limits {
        sequential_float_sums: base.sequential_float_sums || off_grid,
        unpacked_group_keys: base.unpacked_group_keys || wide,
        ..base
    })
}

/// Whether a member failed with an error `is` recognises.
fn failed_on(c: &Computed, is: fn(&str) -> bool) -> bool {
    c.members
        .iter()
        .any(|(_, o)| o.error.as_ref().is_some_and(|e| is(&e.message)))
}
