//! Planning a run before anything computes: sources resolved and hashed,
//! cache keys, which nodes are materialisation points, the units they root,
//! and the topological order.

use super::*;

/// An ingestion node's matched objects (as listed, and as hashed), or why
/// they could not be resolved.
pub(crate) type Resolved = Result<Vec<(ObjectMeta, SourceObject)>, NodeError>;

/// Facts computed before anything runs.
pub(crate) struct Prepared {
    pub(crate) keys: Vec<Option<String>>,
    pub(crate) cacheable: Vec<bool>,
    /// Whether a materialised node keeps a cache entry. Not an ingestion
    /// node that is materialised only because it fans out: its object in
    /// the store is already the checkpoint, and writing it again as
    /// Parquet cost more than re-reading it saves (its consumers keep
    /// their own entries). `execution.cache: true` asks for one anyway.
    pub(crate) entry: Vec<bool>,
    pub(crate) mat: Vec<bool>,
    /// Root of the unit each node belongs to.
    pub(crate) unit_of: Vec<usize>,
    /// Members of each unit (by root), in topological order.
    pub(crate) members: HashMap<usize, Vec<usize>>,
    pub(crate) order: Vec<usize>,
    pub(crate) sources: Vec<Option<Resolved>>,
    pub(crate) bytes_hashed: u64,
}

/// Resolves and hashes sources, computes keys and finds the units.
pub(crate) async fn prepare(
    store: &dyn ObjectStore,
    opts: &RunOptions,
    p: &Pipeline,
    files: &ingest::SourceFiles,
) -> Result<Prepared, EngineError> {
    let n = p.nodes.len();
    let order = topo_order(p);
    let mut keys: Vec<Option<String>> = vec![None; n];
    let mut cacheable = vec![true; n];
    let mut sources: Vec<Option<Resolved>> = (0..n).map(|_| None).collect();
    let mut bytes_hashed = 0;
    // Every source at once: each is a listing or HEAD, then its hash from
    // the source index (or a download), round trips that do not depend on
    // one another.
    let ingestion: Vec<(usize, &crate::model::pipeline::IngestionConfig)> = order
        .iter()
        .filter_map(|&i| match &p.nodes[i].kind {
            NodeKind::Ingestion(cfg) => Some((i, cfg)),
            _ => None,
        })
        .collect();
    let mut resolved: HashMap<usize, Result<(Vec<(ObjectMeta, SourceObject)>, u64), NodeError>> =
        futures_util::future::join_all(
            ingestion
                .iter()
                .map(|&(i, cfg)| async move { (i, resolve_source(store, opts, cfg, files).await) }),
        )
        .await
        .into_iter()
        .collect();
    for &i in &order {
        let node = &p.nodes[i];
        // Error frames carry the run id and time: nothing downstream of an
        // error edge can be cached.
        if p.inputs(i)
            .any(|e| e.kind == EdgeKind::Error || !cacheable[e.source])
        {
            cacheable[i] = false;
        }
        if node.execution.cache == Some(false) {
            cacheable[i] = false;
        }
        keys[i] = match &node.kind {
            NodeKind::Ingestion(cfg) => match resolved.remove(&i).expect("every source resolved") {
                Ok((hashed, read)) => {
                    bytes_hashed += read;
                    let config = canonical_json(&serde_json::to_value(cfg).unwrap_or_default());
                    let objs: Vec<SourceObject> = hashed.iter().map(|(_, o)| o.clone()).collect();
                    sources[i] = Some(Ok(hashed));
                    Some(cache::ingestion_key(&config, &objs))
                }
                Err(mut e) => {
                    // A source that is not there is the `source` field's problem.
                    if e.kind == NodeErrorKind::Data && e.path.is_none() {
                        e.path = Some(format!("{}.config.source", node.path));
                    }
                    sources[i] = Some(Err(e));
                    None
                }
            },
            kind => {
                let input_keys: Option<Vec<String>> =
                    p.inputs(i).map(|e| keys[e.source].clone()).collect();
                match input_keys {
                    Some(ks) if !ks.is_empty() => {
                        let (op, version, config) = match kind {
                            NodeKind::Operator { spec, op } => {
                                (spec.name, spec.version, op.config_json())
                            }
                            NodeKind::Output(cfg) => {
                                ("output", 1, serde_json::to_value(cfg).unwrap_or_default())
                            }
                            NodeKind::Ingestion(_) => unreachable!(),
                        };
                        let refs: Vec<&str> = ks.iter().map(String::as_str).collect();
                        Some(cache::node_key(
                            node.node_type(),
                            op,
                            version,
                            &canonical_json(&config),
                            &refs,
                        ))
                    }
                    _ => None,
                }
            }
        };
    }
    let mat: Vec<bool> = (0..n).map(|i| is_mat_point(p, i)).collect();
    // Each non-materialised node has exactly one consumer: follow it down.
    let mut unit_of = vec![usize::MAX; n];
    for &i in order.iter().rev() {
        unit_of[i] = if mat[i] {
            i
        } else {
            unit_of[p.outputs(i).next().expect("one consumer").target]
        };
    }
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    for &i in &order {
        members.entry(unit_of[i]).or_default().push(i);
    }
    let entry = (0..n)
        .map(|i| {
            cacheable[i]
                && keys[i].is_some()
                && (!matches!(p.nodes[i].kind, NodeKind::Ingestion(_))
                    || p.nodes[i].execution.cache == Some(true))
        })
        .collect();
    Ok(Prepared {
        keys,
        cacheable,
        entry,
        mat,
        unit_of,
        members,
        order,
        sources,
        bytes_hashed,
    })
}

/// A source's objects, each with its content hash, and the bytes read to
/// hash them (objects the source index did not know).
///
/// The index entries of the keys the node names literally are asked for
/// together with the objects' HEADs (an entry needs only the key), so a
/// known source costs one round trip, not two; a glob's matches have theirs
/// asked for once listed. Objects are hashed a few at a time.
async fn resolve_source(
    store: &dyn ObjectStore,
    opts: &RunOptions,
    cfg: &crate::model::pipeline::IngestionConfig,
    files: &ingest::SourceFiles,
) -> Result<(Vec<(ObjectMeta, SourceObject)>, u64), NodeError> {
    let b = &opts.bucket;
    let literal = cfg
        .source
        .keys()
        .into_iter()
        .filter(|k| !ingest::is_glob(k));
    let (objs, indexed) = tokio::join!(
        ingest::resolve(store, b, cfg, opts.limits.max_glob_matches),
        crate::bounded::at_most(
            ingest::RESOLVE_CONCURRENCY,
            literal.map(|k| async move { (k, cache::source_index(store, b, k).await) })
        )
    );
    let objs = objs?;
    let mut indexed: HashMap<&str, Option<cache::IndexEntry>> = indexed.into_iter().collect();
    let hashes: Vec<_> = objs
        .into_iter()
        .map(|m| {
            let known = indexed.remove(m.key.as_str());
            async move {
                let indexed = match known {
                    Some(entry) => entry,
                    None => cache::source_index(store, b, &m.key).await,
                };
                let read = || files.hash(store, b, &m);
                let (o, was_read) = cache::hash_source(store, b, &m, indexed, read)
                    .await
                    .map_err(NodeError::storage)?;
                Ok::<_, NodeError>(((m, o), was_read))
            }
        })
        .collect();
    let hashed = crate::bounded::at_most(HASH_CONCURRENCY, hashes).await;
    let mut out = Vec::with_capacity(hashed.len());
    let mut bytes = 0;
    for h in hashed {
        let ((m, o), was_read) = h?;
        if was_read {
            bytes += o.size;
        }
        out.push((m, o));
    }
    Ok((out, bytes))
}

/// Objects of one source node hashed (index lookups, downloads) at once.
const HASH_CONCURRENCY: usize = 4;

pub(crate) fn is_mat_point(p: &Pipeline, i: usize) -> bool {
    let node = &p.nodes[i];
    let outs: Vec<_> = p.outputs(i).collect();
    outs.len() != 1
        || outs.iter().any(|e| e.kind != EdgeKind::DataFlow)
        || matches!(node.kind, NodeKind::Output(_))
        || matches!(&node.kind, NodeKind::Operator { op, .. } if op.needs_check())
        || node.execution.cache == Some(true)
        // A not-connected consumer never runs; keep what feeds it whole.
        || p.nodes[outs[0].target].not_connected
}

/// Topological order (validation guarantees there is no cycle); ties in
/// document order so runs are reproducible.
pub fn topo_order(p: &Pipeline) -> Vec<usize> {
    let n = p.nodes.len();
    let mut indeg: Vec<usize> = (0..n).map(|i| p.nodes[i].inputs.len()).collect();
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for e in p.outputs(i) {
            indeg[e.target] -= 1;
            if indeg[e.target] == 0 {
                ready.insert(e.target);
            }
        }
    }
    debug_assert_eq!(out.len(), n, "validated pipelines are acyclic");
    out
}

/// Whether every member computes each output row from one input row, in
/// order: scans, outputs and row-wise operators (`Operator::row_wise`).
pub fn row_wise(p: &Pipeline, members: &[usize]) -> bool {
    members.iter().all(|&m| match &p.nodes[m].kind {
        NodeKind::Ingestion(_) | NodeKind::Output(_) => true,
        NodeKind::Operator { op, .. } => op.row_wise(),
    })
}
