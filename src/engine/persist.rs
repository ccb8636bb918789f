//! Writing a unit's results: cache entries (in the background for
//! intermediate checkpoints), run outputs with their schema and metadata,
//! and the run's lineage.

use super::*;

/// Writes an intermediate checkpoint's cache entry in the background. A
/// failure costs only the entry (the next run computes the node again): it
/// is logged, and the run goes on with the frame it already has.
pub(super) fn write_behind_entry(
    ctx: &Arc<Ctx>,
    root: usize,
    df: DataFrame,
    conditions: BTreeMap<String, Result<bool, String>>,
) {
    let ctx2 = ctx.clone();
    let h = tokio::spawn(async move {
        let node = ctx2.pipeline.nodes[root].id.clone();
        let path = ctx2.scratch.join(format!("{node}.parquet"));
        let rows = df.height() as u64;
        let p2 = path.clone();
        let budget = ctx2.budget.clone();
        let what = format!("the cache entry of node \"{node}\"");
        let written = tokio::task::spawn_blocking(move || {
            let mut df = df;
            let parquet = write_parquet(&mut df, &p2, crate::model::pipeline::Compression::Zstd)?;
            budget.charge(parquet.bytes, &what)?;
            Ok::<_, String>(parquet)
        })
        .await;
        let w = match written {
            Ok(Ok(parquet)) => Written {
                path,
                parquet,
                export: None,
            },
            Ok(Err(e)) => {
                tracing::warn!(node = %node, error = %e, "cache entry not written");
                return None;
            }
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "cache entry not written");
                return None;
            }
        };
        match persist(&ctx2, root, rows, &w, &conditions).await {
            Ok(_) => Some((root, w.parquet.bytes)),
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "cache entry not written");
                None
            }
        }
    });
    ctx.background.lock().unwrap().push(h);
}

/// Writes the cache entry (data first, metadata last) and, for outputs,
/// the run's artifacts.
pub(super) async fn persist(
    ctx: &Ctx,
    root: usize,
    rows: u64,
    w: &Written,
    conditions: &BTreeMap<String, Result<bool, String>>,
) -> Result<Vec<LineageOutput>, NodeError> {
    let b = &ctx.opts.bucket;
    let node = &ctx.pipeline.nodes[root];
    let compression = match &node.kind {
        NodeKind::Output(c) => c.compression.name(),
        _ => "zstd",
    };
    let mut meta = CacheMeta {
        cache_key: ctx.prep.keys[root].clone().unwrap_or_default(),
        node_id: node.id.clone(),
        rows,
        bytes: w.parquet.bytes,
        blake3: w.parquet.blake3.clone(),
        created_at: now(),
        compression: compression.into(),
        schema: w.parquet.schema.clone(),
        conditions: conditions
            .iter()
            .filter_map(|(k, v)| v.as_ref().ok().map(|v| (k.clone(), *v)))
            .collect(),
        export: w.export.as_ref().map(|(_, x)| x.clone()),
        data_version: None,
    };
    if ctx.cacheable(root) {
        let prefix = cache::entry_prefix(&ctx.opts.pipeline_id, &meta.cache_key);
        let written = ctx
            .store
            .put_file(b, &format!("{prefix}data.parquet"), &w.path)
            .await
            .map_err(NodeError::storage)?;
        meta.data_version = Some(written.version);
        if let Some((xp, x)) = &w.export {
            ctx.store
                .put_file(b, &format!("{prefix}{}", x.cache_file), xp)
                .await
                .map_err(NodeError::storage)?;
        }
        ctx.store
            .put(b, &format!("{prefix}metadata.json"), to_json(&meta))
            .await
            .map_err(NodeError::storage)?;
        if matches!(node.kind, NodeKind::Output(_)) {
            return Ok(vec![write_output(ctx, root, &meta).await?]);
        }
        return Ok(vec![]);
    }
    if matches!(node.kind, NodeKind::Output(_)) {
        // Not cached: write the run's files straight from scratch.
        let prefix = format!("{}outputs/{}/", ctx.run_prefix, node.id);
        ctx.store
            .put_file(b, &format!("{prefix}data.parquet"), &w.path)
            .await
            .map_err(NodeError::storage)?;
        if let Some((xp, x)) = &w.export {
            ctx.store
                .put_file(b, &x.key, xp)
                .await
                .map_err(NodeError::storage)?;
        }
        return Ok(vec![write_output_meta(ctx, root, &meta, None).await?]);
    }
    Ok(vec![])
}

/// Copies an output's data from its cache entry into the run folder.
pub(super) async fn write_output(
    ctx: &Ctx,
    root: usize,
    meta: &CacheMeta,
) -> Result<LineageOutput, NodeError> {
    let b = &ctx.opts.bucket;
    let node = &ctx.pipeline.nodes[root];
    let entry = cache::entry_prefix(&ctx.opts.pipeline_id, &meta.cache_key);
    let prefix = format!("{}outputs/{}/", ctx.run_prefix, node.id);
    ctx.store
        .copy(
            b,
            &format!("{entry}data.parquet"),
            &format!("{prefix}data.parquet"),
        )
        .await
        .map_err(NodeError::storage)?;
    if let Some(x) = &meta.export {
        ctx.store
            .copy(b, &format!("{entry}{}", x.cache_file), &x.key)
            .await
            .map_err(NodeError::storage)?;
    }
    write_output_meta(ctx, root, meta, Some(meta.cache_key.clone())).await
}

/// `schema.json` then the dataframe's `metadata.json`.
pub(super) async fn write_output_meta(
    ctx: &Ctx,
    root: usize,
    meta: &CacheMeta,
    cache_key: Option<String>,
) -> Result<LineageOutput, NodeError> {
    let b = &ctx.opts.bucket;
    let node = &ctx.pipeline.nodes[root];
    let prefix = format!("{}outputs/{}/", ctx.run_prefix, node.id);
    ctx.store
        .put(b, &format!("{prefix}schema.json"), to_json(&meta.schema))
        .await
        .map_err(NodeError::storage)?;
    let dm = DataframeMeta {
        dataframe_id: node.id.clone(),
        node_id: node.id.clone(),
        run_id: ctx.opts.run_id.clone(),
        rows: meta.rows,
        bytes: meta.bytes,
        blake3: meta.blake3.clone(),
        cache_key: cache_key.or_else(|| ctx.prep.keys[root].clone()),
        created_at: now(),
        compression: meta.compression.clone(),
        export: meta.export.clone(),
    };
    ctx.store
        .put(b, &format!("{prefix}metadata.json"), to_json(&dm))
        .await
        .map_err(NodeError::storage)?;
    Ok(LineageOutput {
        dataframe_id: node.id.clone(),
        path: format!("{prefix}data.parquet"),
        rows: meta.rows,
        blake3: meta.blake3.clone(),
    })
}

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
    let edges = p
        .edges
        .iter()
        .filter(|e| {
            let src_ok = if e.kind == EdgeKind::Error {
                status(e.source) == NodeStatus::Failed
            } else {
                status(e.source).has_data()
            };
            src_ok && ran(status(e.target))
        })
        .map(|e| LineageEdge {
            edge_id: e.id.clone(),
            source: p.nodes[e.source].id.clone(),
            target: p.nodes[e.target].id.clone(),
            edge_type: e.kind.name().into(),
            source_cache_key: ctx.prep.keys[e.source].clone(),
            target_cache_key: ctx.prep.keys[e.target].clone(),
        })
        .collect();
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
    let mut outputs = outputs;
    outputs.sort_by(|a, b| a.dataframe_id.cmp(&b.dataframe_id));
    Lineage {
        run_id: ctx.opts.run_id.clone(),
        pipeline_id: ctx.opts.pipeline_id.clone(),
        edges,
        sources,
        outputs,
    }
}
