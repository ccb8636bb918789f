//! A unit's inputs as frames: a materialised result in memory, a cache
//! entry (on S3 streamed into scratch first), or nothing to read.

use super::*;

/// Input frames of a unit, fetched before the blocking part.
#[derive(Clone)]
pub(super) enum Ready {
    Frame(DataFrame),
    Path(PathBuf),
    /// A fan-out source's scan, and maybe this unit's precomputed result.
    Shared(Arc<super::fanout::Shared>),
}

impl Ready {
    pub(super) fn lazy(&self) -> PolarsResult<LazyFrame> {
        match self {
            Ready::Frame(df) => Ok(df.clone().lazy()),
            Ready::Shared(s) => Ok(s.scan.clone()),
            Ready::Path(p) => crate::parquet_scan::scan(p),
        }
    }
}

pub(super) async fn ready_handle(ctx: &Ctx, node: usize, h: &Handle) -> Result<Ready, NodeError> {
    match h {
        Handle::Memory(df) => Ok(Ready::Frame(df.clone())),
        Handle::Shared(s) => Ok(Ready::Shared(s.clone())),
        // Only when a consumer's cache entry vanished during the run; the
        // next attempt computes the source.
        Handle::Deferred => Err(NodeError {
            kind: NodeErrorKind::Storage,
            message: format!(
                "input \"{}\" was not read: its consumers' cache entries disappeared during the run",
                ctx.pipeline.nodes[node].id
            ),
            path: None,
            retryable: true,
        }),
        Handle::Cached(key) => {
            let data_key = cache::entry_data_key(&ctx.opts.pipeline_id, key);
            match ctx.store.local_path(&ctx.opts.bucket, &data_key) {
                Some(p) => Ok(Ready::Path(p)),
                // Streamed into a scratch file and scanned from there, as
                // sources are: never whole in memory.
                None => {
                    // One file per reader: units reading the same input
                    // at once must not write into each other's copy.
                    let path = ctx.scratch_file(&format!(
                        "input-{node}-{}.parquet",
                        uuid::Uuid::now_v7().simple()
                    ));
                    let d = crate::store::download(
                        ctx.store.as_ref(),
                        &ctx.opts.bucket,
                        &data_key,
                        Some(&path),
                    )
                    .await
                    .map_err(NodeError::storage)?;
                    let what = format!("input \"{}\"", ctx.pipeline.nodes[node].id);
                    ctx.budget
                        .charge(d.meta.size, &what)
                        .map_err(|m| NodeError::new(NodeErrorKind::Limit, m))?;
                    Ok(Ready::Path(path))
                }
            }
        }
    }
}
