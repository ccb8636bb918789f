//! Float sums off the exact grid: a unit whose aggregate met a value the
//! exact sum cannot hold (`mudrock_operators::exact_sum`: bits finer than
//! 2^-64, NaN, ∞, a total that could overflow) computes once more with
//! Polars' own float sums in one unpartitioned query, a fixed order of
//! additions (`Limits::sequential_float_sums`). Both ways the result is the
//! same run to run; only the rare unit that needs it computes twice.

use mudrock_operators::{Limits, exact_sum};

use super::*;

/// `compute` (a unit's blocking part under the given limits) with exact
/// float sums, and again without them when a member failed because a
/// value was off the grid.
pub(super) fn exact_or_in_order(
    ctx: &Ctx,
    root: usize,
    compute: impl Fn(&Limits) -> Computed,
) -> Computed {
    let exact = compute(&ctx.opts.limits.ops);
    if !off_grid(&exact) {
        return exact;
    }
    tracing::info!(node = %ctx.pipeline.nodes[root].id, "float sum off the exact grid: summing without the grid");
    compute(&Limits {
        sequential_float_sums: true,
        ..ctx.opts.limits.ops
    })
}

/// Whether a member failed on a value off the exact grid.
fn off_grid(c: &Computed) -> bool {
    c.members.iter().any(|(_, o)| {
        o.error
            .as_ref()
            .is_some_and(|e| exact_sum::is_off_grid(&e.message))
    })
}
