//! What units ask of the run's shared state: a cache entry looked up once
//! per run, a node's record, an event for watchers, whether a node is cached.

use super::*;

impl Ctx {
    /// The cache entry under `key`, looked up (and verified) once per run:
    /// units and the fan-out check ask for the same entries.
    pub(super) async fn lookup(&self, key: &str) -> Option<CacheMeta> {
        let cell = self
            .lookups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| {
            cache::lookup(
                self.store.as_ref(),
                &self.opts.bucket,
                &self.opts.pipeline_id,
                key,
            )
        })
        .await
        .clone()
    }

    pub(super) fn record(&self, i: usize, status: NodeStatus) -> NodeRecord {
        let node = &self.pipeline.nodes[i];
        NodeRecord {
            node_id: node.id.clone(),
            name: node.name.clone(),
            node_type: node.node_type().into(),
            operator: node.operator_name().map(str::to_string),
            status,
            reason: None,
            cache_key: self.prep.keys[i].clone(),
            cache_hit: false,
            started_at: None,
            duration_ms: None,
            rows: None,
            bytes: None,
            error: None,
            handled: None,
            computed_with: None,
        }
    }

    /// `name` in the run's scratch directory, made on first use.
    pub(super) fn scratch_file(&self, name: &str) -> std::path::PathBuf {
        scratch::file_in(&self.scratch, name)
    }

    pub(super) fn emit(&self, e: Event) {
        if let Some(tx) = &self.opts.events {
            let _ = tx.send(e);
        }
    }

    /// Whether the node's result gets a cache entry (written even under
    /// `--no-cache`, which only skips lookups, so it refreshes entries).
    pub(super) fn cacheable(&self, i: usize) -> bool {
        self.prep.cacheable[i] && self.prep.keys[i].is_some()
    }
}
