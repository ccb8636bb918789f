//! Writing a unit's results: cache entries (in the background for
//! intermediate checkpoints), run outputs with their schema and metadata,
//! (the run's lineage is [`super::lineage`]).

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
        let path = ctx2.scratch_file(&format!("{node}.parquet"));
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
        format_version: FORMAT_VERSION,
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
        columns: upstream_columns(ctx, root),
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
            return Ok(vec![write_output(ctx, root, &meta, false).await?]);
        }
        return Ok(vec![]);
    }
    if matches!(node.kind, NodeKind::Output(_)) {
        // Not cached: write the run's files straight from scratch (after
        // any early copy, which must not land over them).
        ctx.early.take(root).await;
        ctx.store
            .put_file(b, &output_data_key(&ctx.run_prefix, &node.id), &w.path)
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
/// `verified`: `meta` is the entry this run's lookup verified, the one the
/// output's early copy (early.rs) copied; a copy that stands is not
/// made again.
pub(super) async fn write_output(
    ctx: &Ctx,
    root: usize,
    meta: &CacheMeta,
    verified: bool,
) -> Result<LineageOutput, NodeError> {
    let b = &ctx.opts.bucket;
    let node = &ctx.pipeline.nodes[root];
    let entry = cache::entry_prefix(&ctx.opts.pipeline_id, &meta.cache_key);
    // The copies and the metadata at once: nothing reads a run's folder
    // before its commit marker, written after every output.
    let data = async {
        if ctx.early.take(root).await && verified {
            return Ok(());
        }
        ctx.store
            .copy(
                b,
                &cache::entry_data_key(&ctx.opts.pipeline_id, &meta.cache_key),
                &output_data_key(&ctx.run_prefix, &node.id),
            )
            .await
            .map_err(NodeError::storage)
    };
    let export = async {
        match &meta.export {
            Some(x) => ctx
                .store
                .copy(b, &format!("{entry}{}", x.cache_file), &x.key)
                .await
                .map_err(NodeError::storage),
            None => Ok(()),
        }
    };
    let (data, export, written) = tokio::join!(
        data,
        export,
        write_output_meta(ctx, root, meta, Some(meta.cache_key.clone()))
    );
    data?;
    export?;
    written
}

/// The key of an output's data in the run folder.
pub(super) fn output_data_key(run_prefix: &str, node_id: &str) -> String {
    format!("{run_prefix}outputs/{node_id}/data.parquet")
}

/// `schema.json` and the dataframe's `metadata.json`, at once.
pub(super) async fn write_output_meta(
    ctx: &Ctx,
    root: usize,
    meta: &CacheMeta,
    cache_key: Option<String>,
) -> Result<LineageOutput, NodeError> {
    let b = &ctx.opts.bucket;
    let node = &ctx.pipeline.nodes[root];
    let prefix = format!("{}outputs/{}/", ctx.run_prefix, node.id);
    let dm = DataframeMeta {
        format_version: FORMAT_VERSION,
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
    let schema_key = format!("{prefix}schema.json");
    let meta_key = format!("{prefix}metadata.json");
    let (schema, written) = tokio::join!(
        ctx.store.put(b, &schema_key, to_json(&meta.schema)),
        ctx.store.put(b, &meta_key, to_json(&dm))
    );
    schema.map_err(NodeError::storage)?;
    written.map_err(NodeError::storage)?;
    Ok(LineageOutput {
        dataframe_id: node.id.clone(),
        path: output_data_key(&ctx.run_prefix, &node.id),
        rows: meta.rows,
        blake3: meta.blake3.clone(),
        columns: None,
    })
}
