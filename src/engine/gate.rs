//! Whether a unit may run at all: its inputs' outcomes, conditional edges
//! (evaluated once per condition) and error edges decide run or skip.

use super::*;

/// Why a node does not run, decided from its inputs.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Gate {
    Run,
    Skip(&'static str),
    /// Evaluating a conditional edge failed: the target fails.
    Fail(NodeError),
}

/// Decides whether `m` runs, from its inputs' outcomes.
pub(super) async fn gate_for(
    ctx: &Ctx,
    m: usize,
    gates: &HashMap<usize, Gate>,
    inputs: &HashMap<usize, Finished>,
) -> Gate {
    let p = &ctx.pipeline;
    let mut gate = Gate::Run;
    for e in p.inputs(m) {
        let this = if let Some(g) = gates.get(&e.source) {
            // Inside the unit: only data_flow edges (see is_mat_point).
            match g {
                Gate::Run => Gate::Run,
                Gate::Skip(r) if *r == "upstream_failed" || *r == "cancelled" => Gate::Skip(r),
                Gate::Fail(_) => Gate::Skip("upstream_failed"),
                Gate::Skip(_) => Gate::Skip("upstream_skipped"),
            }
        } else {
            let f = &inputs[&e.source];
            match (f.record.status, &e.kind) {
                (NodeStatus::Failed, EdgeKind::Error) => Gate::Run,
                (NodeStatus::Failed, _) => Gate::Skip("upstream_failed"),
                (s, EdgeKind::Error) if s.has_data() => Gate::Skip("no_error"),
                (s, EdgeKind::DataFlow) if s.has_data() => Gate::Run,
                (s, EdgeKind::Conditional(cond)) if s.has_data() => {
                    match condition(ctx, e.source, f, cond).await {
                        Ok(true) => Gate::Run,
                        Ok(false) => Gate::Skip("condition_false"),
                        Err(msg) => Gate::Fail(NodeError {
                            kind: NodeErrorKind::Config,
                            message: format!("condition \"{cond}\" of edge \"{}\" {msg}", e.id),
                            path: Some(format!("{}.condition", e.path)),
                            retryable: false,
                        }),
                    }
                }
                (NodeStatus::Skipped, _) if f.record.reason.as_deref() == Some("cancelled") => {
                    Gate::Skip("cancelled")
                }
                (NodeStatus::Skipped, _)
                    if f.record.reason.as_deref() == Some("upstream_failed") =>
                {
                    Gate::Skip("upstream_failed")
                }
                _ => Gate::Skip("upstream_skipped"),
            }
        };
        // upstream_failed wins over other skip reasons; a failure over all.
        gate = match (gate, this) {
            (Gate::Fail(e), _) | (_, Gate::Fail(e)) => Gate::Fail(e),
            (Gate::Skip("upstream_failed"), _) | (_, Gate::Skip("upstream_failed")) => {
                Gate::Skip("upstream_failed")
            }
            (Gate::Skip(r), _) => Gate::Skip(r),
            (_, g) => g,
        };
    }
    gate
}

/// A conditional edge's value: recorded when the source was computed or
/// cached, else evaluated on its data.
pub(super) async fn condition(
    ctx: &Ctx,
    source: usize,
    f: &Finished,
    cond: &str,
) -> Result<bool, String> {
    if let Some(v) = f.conditions.get(cond) {
        return v.clone();
    }
    let Some(h) = &f.handle else {
        return Err("has no data to evaluate".into());
    };
    let ready = ready_handle(ctx, source, h).await.map_err(|e| e.message)?;
    let cond = cond.to_string();
    ctx.computed.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || {
        let lf = ready.lazy().map_err(|e| e.to_string())?;
        mudrock_operators::sqlutil::eval_bool(lf, &cond)
    })
    .await
    .map_err(|e| e.to_string())?
}
