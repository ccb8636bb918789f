//! A unit served by the cache: its root's entry verified and reused, and a
//! fan-out source whose consumers are all cached left unread.

use super::*;

/// One unit's run: who is in it, who runs, and what was decided before
/// anything ran (skips and gate failures of the members that do not run).
pub(super) struct Unit {
    pub(super) root: usize,
    pub(super) running: Vec<usize>,
    pub(super) started_at: String,
    pub(super) clock: Instant,
    pub(super) decided: Vec<(usize, Finished)>,
}

impl Unit {
    pub(super) fn record(&self, ctx: &Ctx, m: usize, status: NodeStatus) -> NodeRecord {
        let mut r = ctx.record(m, status);
        r.started_at = Some(self.started_at.clone());
        r.duration_ms = Some(self.clock.elapsed().as_millis() as u64);
        r
    }

    /// `at` failed with `err`; members below it are skipped.
    pub(super) fn fail_at(&self, ctx: &Ctx, at: usize, err: NodeError) -> UnitOutcome {
        let mut nodes = self.decided.clone();
        for (m, role) in roles(&ctx.pipeline, &self.running, at) {
            let (status, reason, error) = match role {
                Role::Failed => (
                    NodeStatus::Failed,
                    Some(err.kind.name().to_string()),
                    Some(err.clone()),
                ),
                Role::Below => (
                    NodeStatus::Skipped,
                    Some("upstream_failed".to_string()),
                    None,
                ),
                Role::Above => (NodeStatus::Succeeded, None, None),
            };
            let mut r = self.record(ctx, m, status);
            r.reason = reason;
            r.error = error.as_ref().map(|e| e.message.clone());
            nodes.push((
                m,
                Finished {
                    record: r,
                    handle: None,
                    error,
                    conditions: BTreeMap::new(),
                },
            ));
        }
        UnitOutcome {
            nodes,
            outputs: vec![],
        }
    }

    /// A failure of the unit as a whole (storage, timeout): pinned on the
    /// root, whose result it concerns.
    pub(super) fn fail(&self, ctx: &Ctx, err: NodeError) -> UnitOutcome {
        self.fail_at(ctx, self.root, err)
    }
}

/// A unit whose root hit the cache: nothing is computed.
/// Whether every unit fed by `root` will be served from the cache (plain
/// data-flow consumers with a verified entry).
pub(super) async fn consumers_cached(ctx: &Ctx, root: usize) -> bool {
    let p = &ctx.pipeline;
    for e in p.outputs(root) {
        if e.kind != EdgeKind::DataFlow {
            return false;
        }
        let u = ctx.prep.unit_of[e.target];
        if !ctx.prep.entry[u] || p.nodes[e.target].not_connected {
            return false;
        }
        let Some(key) = &ctx.prep.keys[u] else {
            return false;
        };
        if ctx.lookup(key).await.is_none() {
            return false;
        }
    }
    true
}

pub(super) async fn cached_unit(
    ctx: &Arc<Ctx>,
    unit: &Unit,
    meta: CacheMeta,
) -> Result<UnitOutcome, EngineError> {
    let root = unit.root;
    let mut results = unit.decided.clone();
    let mut outputs = Vec::new();
    let key = meta.cache_key.clone();
    remember_columns(ctx, &meta);
    if matches!(ctx.pipeline.nodes[root].kind, NodeKind::Output(_)) {
        match write_output(ctx, root, &meta, true).await {
            Ok(o) => outputs.push(o),
            Err(err) => {
                return Ok(unit.fail(ctx, err));
            }
        }
    }
    for &m in &unit.running {
        let mut r = unit.record(ctx, m, NodeStatus::Cached);
        r.cache_hit = true;
        let mut f = Finished {
            record: r,
            handle: None,
            error: None,
            conditions: BTreeMap::new(),
        };
        if m == root {
            f.record.rows = Some(meta.rows);
            f.record.bytes = Some(meta.bytes);
            f.handle = Some(Handle::Cached(key.clone()));
            f.conditions = meta
                .conditions
                .iter()
                .map(|(k, v)| (k.clone(), Ok(*v)))
                .collect();
        }
        results.push((m, f));
    }
    Ok(UnitOutcome {
        nodes: results,
        outputs,
    })
}
