//! Float sums off the exact grid: a unit whose aggregate met a value the
//! exact sum cannot hold (`mudrock_operators::exact_sum`: |x| ≥ 2^52, bits
//! finer than 2^-64, NaN, ∞) computes once more with Polars' own float
//! sums in one unpartitioned query, a fixed order of additions
//! (`Limits::sequential_float_sums`). Both ways the result is the same run
//! to run; only the rare unit that needs it computes twice.

use mudrock_operators::{Limits, exact_sum};

use super::*;

/// [`compute`] with exact float sums, and again without them when one
/// member failed because a value was off the grid.
pub(super) fn compute_exact_or_in_order(
    ctx: &Ctx,
    root: usize,
    running: &[usize],
    ready: HashMap<usize, Ready>,
    error_frames: HashMap<usize, DataFrame>,
    sources: HashMap<usize, (SourceData, Vec<String>)>,
    write: bool,
    streaming: bool,
) -> Computed {
    let exact = compute(
        ctx,
        root,
        running,
        ready.clone(),
        error_frames.clone(),
        sources.clone(),
        write,
        streaming,
        &ctx.opts.limits.ops,
    );
    if !off_grid(&exact) {
        return exact;
    }
    tracing::info!(node = %ctx.pipeline.nodes[root].id, "float sum off the exact grid: summing without the grid");
    let in_order = Limits {
        sequential_float_sums: true,
        ..ctx.opts.limits.ops
    };
    compute(
        ctx,
        root,
        running,
        ready,
        error_frames,
        sources,
        write,
        streaming,
        &in_order,
    )
}

/// Whether a member failed on a value off the exact grid.
fn off_grid(c: &Computed) -> bool {
    c.members.iter().any(|(_, o)| {
        o.error
            .as_ref()
            .is_some_and(|e| exact_sum::is_off_grid(&e.message))
    })
}
