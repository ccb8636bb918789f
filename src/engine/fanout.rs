//! A fan-out source computed together with its consumers.
//!
//! An ingestion node read by several consumers is a materialisation point.
//! Collected alone it would be whole in memory, every column of it, while
//! each consumer unit then works through its own copy. Instead, the
//! consumer units that read only this source (and are not served by the
//! cache) are planned over its one lazy scan and collected together with
//! Polars' `collect_all`: common-subplan elimination shares the scan, the
//! scan reads only the columns some consumer uses, and every consumer's
//! result comes out of one query. Each consumer unit then takes its
//! precomputed result instead of collecting (and does the rest as usual:
//! asserts, conditions, outputs, cache entries); consumers outside the
//! group scan the source lazily.
//!
//! When the joint query fails, nothing is lost: the source is collected
//! alone as before and every consumer computes on its own, so a failure is
//! attributed to its node exactly as without the group.

use std::sync::Mutex;

use super::*;

/// What a fan-out source computed with its consumers hands on.
pub(super) struct Shared {
    /// The source's lazy scan, for consumers outside the group.
    pub(super) scan: LazyFrame,
    /// Each grouped consumer unit's result, taken once by that unit.
    results: Mutex<HashMap<usize, DataFrame>>,
}

impl Shared {
    /// The precomputed result of the unit rooted at `root`, if it has one.
    pub(super) fn take(&self, root: usize) -> Option<DataFrame> {
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&root)
    }
}

/// The consumer units of the fan-out source `root` that can be computed
/// with it: each reads nothing but this source (no other source fused
/// in, no other unit's result), is not served by the
/// cache, has no time limit of its own, and has no member left out of the
/// run. None unless there are two or more and every edge out of the source
/// is a plain data edge.
pub(super) async fn group(ctx: &Ctx, root: usize) -> Vec<usize> {
    let p = &ctx.pipeline;
    let prep = &ctx.prep;
    let is_fanout_source = matches!(p.nodes[root].kind, NodeKind::Ingestion(_))
        && !prep.entry[root]
        && p.nodes[root].execution.timeout_seconds.is_none()
        && p.outputs(root).count() > 1
        && p.outputs(root).all(|e| e.kind == EdgeKind::DataFlow);
    if !is_fanout_source {
        return Vec::new();
    }
    let mut units: Vec<usize> = p.outputs(root).map(|e| prep.unit_of[e.target]).collect();
    units.sort();
    units.dedup();
    let mut out = Vec::new();
    for u in units {
        let members = &prep.members[&u];
        let alone = members.iter().all(|&m| {
            !p.nodes[m].not_connected
                && !matches!(p.nodes[m].kind, NodeKind::Ingestion(_))
                && p.nodes[m].execution.timeout_seconds.is_none()
                && p.inputs(m).all(|e| {
                    e.kind == EdgeKind::DataFlow
                        && (e.source == root || prep.unit_of[e.source] == u)
                })
        });
        if !alone {
            continue;
        }
        let cached = ctx.opts.use_cache
            && prep.entry[u]
            && match &prep.keys[u] {
                Some(k) => ctx.lookup(k).await.is_some(),
                None => false,
            };
        if !cached {
            out.push(u);
        }
    }
    if out.len() < 2 { Vec::new() } else { out }
}

/// Plans every unit of `group` over the source's scan and collects them in
/// one query; the source's row count comes out of it too. None when any
/// of it fails (the caller falls back to the unit-by-unit path).
pub(super) fn compute(
    ctx: &Ctx,
    root: usize,
    group: &[usize],
    data: &SourceData,
    source_bytes: u64,
) -> Option<(Arc<Shared>, u64)> {
    let p = &ctx.pipeline;
    let (mut lp_arena, mut expr_arena) = (Default::default(), Default::default());
    let mut schema_of = |lf: &mut LazyFrame| lf.schema_with_arenas(&mut lp_arena, &mut expr_arena);
    let limits = &ctx.opts.limits.ops;
    let (scan, schema) = build_node(
        &p.nodes[root],
        Vec::new(),
        Some(data),
        &mut schema_of,
        limits,
    )
    .ok()?;
    ctx.columns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(root, schema.iter_names().map(|n| n.to_string()).collect());
    let mut plans = vec![scan.clone().select([len().alias("rows")])];
    // Whether every consumer's result is the same bytes streamed.
    let mut same_streamed = true;
    for &u in group {
        let mut on_streaming = HashMap::new();
        let mut frames: HashMap<usize, (LazyFrame, SchemaRef)> = HashMap::new();
        frames.insert(root, (scan.clone(), schema.clone()));
        for &m in &ctx.prep.members[&u] {
            let inputs = p
                .inputs(m)
                .map(|e| {
                    frames.get(&e.source).map(|(frame, schema)| Input {
                        name: p.nodes[e.source].id.clone(),
                        frame: frame.clone(),
                        schema: schema.clone(),
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            same_bytes::record(&mut on_streaming, p, m, &inputs, limits);
            let built = build_node(&p.nodes[m], inputs, None, &mut schema_of, limits).ok()?;
            frames.insert(m, built);
        }
        same_streamed &= same_bytes::on_streaming(p, &ctx.prep.members[&u], u, &on_streaming);
        plans.push(frames.remove(&u)?.0);
    }
    // The streaming engine when the run would stream all of it (row-wise
    // consumers, or a source over the threshold) or every consumer gives
    // the same bytes streamed: the scan is then read in batches into every
    // consumer.
    let mut all: Vec<usize> = vec![root];
    all.extend(
        group
            .iter()
            .flat_map(|u| ctx.prep.members[u].iter().copied()),
    );
    let auto = ctx.opts.streaming == Streaming::Auto && same_streamed;
    let engine = if auto || ctx.opts.streams(source_bytes, row_wise(p, &all)) {
        polars::prelude::Engine::Streaming
    } else {
        polars::prelude::Engine::InMemory
    };
    let flags = scan.get_current_optimizations();
    let dsl = plans.into_iter().map(|lf| lf.logical_plan).collect();
    let mut dfs = match LazyFrame::collect_all_with_engine(dsl, engine, flags) {
        Ok(dfs) => dfs,
        Err(e) => {
            tracing::debug!(node = %p.nodes[root].id, error = %e, "fan-out group failed; computing unit by unit");
            return None;
        }
    };
    if dfs.len() != group.len() + 1 {
        return None;
    }
    let rows = dfs[0].column("rows").ok()?.get(0).ok()?.extract::<u64>()?;
    let results = group.iter().copied().zip(dfs.drain(1..)).collect();
    Some((
        Arc::new(Shared {
            scan,
            results: Mutex::new(results),
        }),
        rows,
    ))
}
