//! The run's `lineage.json`: edges taken and not taken, source objects
//! read, outputs written, and column lineage.
//!
//! Column lineage is composed along the DAG from each operator's own answer
//! ([`mudrock_operators::Operator::column_lineage`]) over the column names
//! every node had in this run. A node computed now has its names from its
//! built frame; a unit served by the cache has them from its entry, which
//! records the names of its node and every node upstream of it by cache key
//! (a key fixes a node's content, so its columns too).

use mudrock_operators::{Derivation, InputColumns};

use super::*;

/// Columns of the one-row frame an error edge hands on (see
/// [`build::error_frame`]): made by the engine, from no source column.
pub(super) const ERROR_COLUMNS: [&str; 6] = [
    "run_id",
    "node_id",
    "node_name",
    "error_kind",
    "message",
    "failed_at",
];

pub(super) fn lineage(
    ctx: &Ctx,
    by_node: &HashMap<usize, Finished>,
    outputs: Vec<LineageOutput>,
) -> Lineage {
    let p = &ctx.pipeline;
    let status = |i: usize| by_node[&i].record.status;
    let ran = |s: NodeStatus| {
        matches!(
            s,
            NodeStatus::Succeeded | NodeStatus::Cached | NodeStatus::Failed
        )
    };
    let mut edges = Vec::new();
    let mut edges_not_taken = Vec::new();
    for e in &p.edges {
        let (source, target) = (&p.nodes[e.source].id, &p.nodes[e.target].id);
        match not_taken(e, by_node) {
            None if ran(status(e.target)) => edges.push(LineageEdge {
                edge_id: e.id.clone(),
                source: source.clone(),
                target: target.clone(),
                edge_type: e.kind.name().into(),
                source_cache_key: ctx.prep.keys[e.source].clone(),
                target_cache_key: ctx.prep.keys[e.target].clone(),
            }),
            reason => edges_not_taken.push(SkippedEdge {
                edge_id: e.id.clone(),
                source: source.clone(),
                target: target.clone(),
                edge_type: e.kind.name().into(),
                reason: reason.unwrap_or_else(|| {
                    by_node[&e.target]
                        .record
                        .reason
                        .clone()
                        .unwrap_or_else(|| status(e.target).name().to_string())
                }),
            }),
        }
    }
    let mut sources = Vec::new();
    for (i, s) in ctx.prep.sources.iter().enumerate() {
        if let Some(Ok(objs)) = s {
            if ran(status(i)) {
                for (_, o) in objs {
                    sources.push(LineageSource {
                        node_id: p.nodes[i].id.clone(),
                        object: o.clone(),
                    });
                }
            }
        }
    }
    let known = ctx
        .columns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let traced = trace_columns(p, &known);
    let mut outputs = outputs;
    for o in &mut outputs {
        if let Some(i) = p.nodes.iter().position(|n| n.id == o.dataframe_id) {
            o.columns = traced.get(&i).map(|cols| described(p, cols));
        }
    }
    outputs.sort_by(|a, b| a.dataframe_id.cmp(&b.dataframe_id));
    Lineage {
        format_version: FORMAT_VERSION,
        run_id: ctx.opts.run_id.clone(),
        pipeline_id: ctx.opts.pipeline_id.clone(),
        edges,
        edges_not_taken,
        sources,
        outputs,
    }
}

/// Why nothing went along `e`, judged at its source; None when the source
/// handed data on (the target may still not have run).
fn not_taken(e: &Edge, by_node: &HashMap<usize, Finished>) -> Option<String> {
    let src = &by_node[&e.source];
    match &e.kind {
        EdgeKind::Error if src.record.status == NodeStatus::Failed => None,
        EdgeKind::Error => Some("no_error".into()),
        _ if src.record.status == NodeStatus::Failed => Some("source_failed".into()),
        _ if !src.record.status.has_data() => Some("source_skipped".into()),
        EdgeKind::Conditional(c) => match src.conditions.get(c) {
            Some(Ok(false)) => Some("condition_false".into()),
            Some(Err(_)) => Some("condition_error".into()),
            _ => None,
        },
        EdgeKind::DataFlow => None,
    }
}

/// A column's origins in terms of ingestion nodes.
type Traced = Vec<(String, Vec<(usize, String, Derivation)>)>;

/// Every node whose columns, and whose inputs' columns, are known: its
/// columns traced back to ingestion nodes' columns.
pub(super) fn trace_columns(
    p: &Pipeline,
    known: &HashMap<usize, Vec<String>>,
) -> HashMap<usize, Traced> {
    let error_columns: Vec<String> = ERROR_COLUMNS.iter().map(|c| c.to_string()).collect();
    let mut traced: HashMap<usize, Traced> = HashMap::new();
    for i in topo_order(p) {
        let Some(columns) = known.get(&i) else {
            continue;
        };
        let node = &p.nodes[i];
        let cols: Option<Traced> = match &node.kind {
            NodeKind::Ingestion(_) => Some(
                columns
                    .iter()
                    .map(|c| (c.clone(), vec![(i, c.clone(), Derivation::Copy)]))
                    .collect(),
            ),
            NodeKind::Output(_) => p.inputs(i).next().and_then(|e| {
                if e.kind == EdgeKind::Error {
                    Some(columns.iter().map(|c| (c.clone(), Vec::new())).collect())
                } else {
                    traced.get(&e.source).cloned()
                }
            }),
            NodeKind::Operator { op, .. } => {
                // Each input's names and traced columns (none for an error
                // frame's), in input order.
                let mut ins: Vec<(&str, Vec<String>, Option<&Traced>)> = Vec::new();
                let mut complete = true;
                for e in p.inputs(i) {
                    let name = p.nodes[e.source].id.as_str();
                    if e.kind == EdgeKind::Error {
                        ins.push((name, error_columns.clone(), None));
                    } else if let Some(t) = traced.get(&e.source) {
                        ins.push((name, t.iter().map(|(c, _)| c.clone()).collect(), Some(t)));
                    } else {
                        complete = false;
                    }
                }
                complete.then(|| {
                    let views: Vec<InputColumns> = ins
                        .iter()
                        .map(|(n, c, _)| InputColumns {
                            name: n,
                            columns: c,
                        })
                        .collect();
                    let local = op.column_lineage(&views, columns);
                    columns
                        .iter()
                        .zip(local.into_iter().chain(std::iter::repeat(Vec::new())))
                        .map(|(c, origins)| {
                            let mut out: Vec<(usize, String, Derivation)> = Vec::new();
                            for o in origins {
                                let Some((_, _, Some(t))) = ins.get(o.input) else {
                                    continue;
                                };
                                let Some((_, up)) = t.iter().find(|(n, _)| *n == o.column) else {
                                    continue;
                                };
                                out.extend(
                                    up.iter()
                                        .map(|(n, col, how)| (*n, col.clone(), (*how).max(o.how))),
                                );
                            }
                            (c.clone(), out)
                        })
                        .collect()
                })
            }
        };
        if let Some(c) = cols {
            traced.insert(i, c);
        }
    }
    traced
}

/// The traced columns as `lineage.json` tells them: sorted, each source
/// column once with its strongest derivation.
fn described(p: &Pipeline, cols: &Traced) -> Vec<ColumnLineage> {
    cols.iter()
        .map(|(name, origins)| {
            let mut sources: Vec<SourceColumn> = origins
                .iter()
                .map(|(n, c, how)| SourceColumn {
                    node_id: p.nodes[*n].id.clone(),
                    column: c.clone(),
                    derivation: *how,
                })
                .collect();
            sources.sort_by(|a, b| {
                (&a.node_id, &a.column, std::cmp::Reverse(a.derivation)).cmp(&(
                    &b.node_id,
                    &b.column,
                    std::cmp::Reverse(b.derivation),
                ))
            });
            sources.dedup_by(|x, y| x.node_id == y.node_id && x.column == y.column);
            ColumnLineage {
                name: name.clone(),
                sources,
            }
        })
        .collect()
}

/// The cache keys and column names of `root` and every node upstream of
/// it, for its cache entry.
pub(super) fn upstream_columns(ctx: &Ctx, root: usize) -> BTreeMap<String, Vec<String>> {
    let known = ctx.columns.lock().unwrap_or_else(|e| e.into_inner());
    let p = &ctx.pipeline;
    let mut out = BTreeMap::new();
    let mut stack = vec![root];
    let mut seen = vec![false; p.nodes.len()];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        if let (Some(k), Some(c)) = (&ctx.prep.keys[i], known.get(&i)) {
            out.insert(k.clone(), c.clone());
        }
        stack.extend(p.inputs(i).map(|e| e.source));
    }
    out
}

/// Records the column names of nodes built or read from a cache entry.
pub(super) fn remember_columns(ctx: &Ctx, entry: &CacheMeta) {
    let mut known = ctx.columns.lock().unwrap_or_else(|e| e.into_inner());
    for (i, k) in ctx.prep.keys.iter().enumerate() {
        if let Some(c) = k.as_ref().and_then(|k| entry.columns.get(k)) {
            known.entry(i).or_insert_with(|| c.clone());
        }
    }
}
