//! Early copies of cached outputs: an output's `data.parquet` is copied
//! from its cache entry into the run folder in the round of the cache
//! lookups, not after them, so a large output's server-side copy is hidden
//! behind the lookup round instead of adding to a fully cached run.
//!
//! The copy is a guess made before the entry is verified. It only stands
//! when the output is served by that verified entry (`write_output` with
//! `verified`, persist.rs); every other writer of the output's data waits
//! for it first ([`EarlyCopies::take`], so a late copy can never land over
//! computed bytes), and a copy nobody took (the output skipped, failed or
//! cancelled) is deleted before the run's lineage and commit marker
//! ([`EarlyCopies::clean`]). On a cold run each guess is one request that
//! finds no entry.

use super::*;

type CopyTask = tokio::task::JoinHandle<Result<(), StoreError>>;

/// The early copies of one run, by output node.
#[derive(Default)]
pub(super) struct EarlyCopies(HashMap<usize, std::sync::Mutex<Option<CopyTask>>>);

impl EarlyCopies {
    /// Starts a copy for every output that is a unit root with a cache
    /// entry to look up (none when the run skips lookups).
    pub(super) fn start(
        store: &Arc<dyn ObjectStore>,
        pipeline: &Pipeline,
        opts: &RunOptions,
        prep: &Prepared,
        run_prefix: &str,
    ) -> Self {
        if !opts.use_cache {
            return Self::default();
        }
        let mut copies = HashMap::new();
        for &root in prep.members.keys() {
            let node = &pipeline.nodes[root];
            let Some(key) = prep.keys[root].as_ref() else {
                continue;
            };
            if !prep.entry[root] || !matches!(node.kind, NodeKind::Output(_)) {
                continue;
            }
            let from = cache::entry_data_key(&opts.pipeline_id, key);
            let to = output_data_key(run_prefix, &node.id);
            let (store, bucket) = (store.clone(), opts.bucket.clone());
            let copy = tokio::spawn(async move { store.copy(&bucket, &from, &to).await });
            copies.insert(root, std::sync::Mutex::new(Some(copy)));
        }
        EarlyCopies(copies)
    }

    /// Waits for `node`'s early copy and takes it: whether it copied the
    /// entry's data (false when there was none, or it was taken before).
    /// Whoever writes the output's data calls this first.
    pub(super) async fn take(&self, node: usize) -> bool {
        let copy = self
            .0
            .get(&node)
            .and_then(|c| c.lock().unwrap_or_else(|e| e.into_inner()).take());
        match copy {
            Some(c) => matches!(c.await, Ok(Ok(()))),
            None => false,
        }
    }

    /// Deletes the copies nobody took: their outputs did not run, and a
    /// committed run folder holds data only for outputs that did.
    pub(super) async fn clean(&self, ctx: &Ctx) -> Result<(), StoreError> {
        let untaken: Vec<usize> = self
            .0
            .iter()
            .filter(|(_, c)| c.lock().unwrap_or_else(|e| e.into_inner()).is_some())
            .map(|(&n, _)| n)
            .collect();
        let deletes = untaken.into_iter().map(|n| async move {
            if !self.take(n).await {
                return Ok(());
            }
            let key = output_data_key(&ctx.run_prefix, &ctx.pipeline.nodes[n].id);
            tracing::debug!(node = %ctx.pipeline.nodes[n].id, "deleting an early copy no output took");
            ctx.store.delete(&ctx.opts.bucket, &key).await
        });
        for r in futures_util::future::join_all(deletes).await {
            r?;
        }
        Ok(())
    }
}
