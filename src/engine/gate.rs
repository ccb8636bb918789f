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
            within_unit(g)
        } else {
            let f = &inputs[&e.source];
            let value = match &e.kind {
                EdgeKind::Conditional(cond) if f.record.status.has_data() => {
                    Some(condition(ctx, e.source, f, cond).await)
                }
                _ => None,
            };
            across_units(f.record.status, f.record.reason.as_deref(), &e.kind, value)
                .unwrap_or_else(|msg| {
                    let cond = match &e.kind {
                        EdgeKind::Conditional(c) => c.as_str(),
                        _ => "",
                    };
                    Gate::Fail(NodeError {
                        kind: NodeErrorKind::Config,
                        message: format!("condition \"{cond}\" of edge \"{}\" {msg}", e.id),
                        path: Some(format!("{}.condition", e.path)),
                        retryable: false,
                    })
                })
        };
        gate = combine(gate, this);
    }
    gate
}

/// What an input inside the same unit says: its own gate, passed on.
pub(super) fn within_unit(g: &Gate) -> Gate {
    match g {
        Gate::Run => Gate::Run,
        Gate::Skip(r) if *r == "upstream_failed" || *r == "cancelled" => Gate::Skip(r),
        Gate::Fail(_) => Gate::Skip("upstream_failed"),
        Gate::Skip(_) => Gate::Skip("upstream_skipped"),
    }
}

/// What an edge from another unit says, given its source's outcome and,
/// for a conditional edge from a source with data, the condition's value
/// (`Err` when evaluating it failed: returned as is).
pub(super) fn across_units(
    status: NodeStatus,
    reason: Option<&str>,
    kind: &EdgeKind,
    condition: Option<Result<bool, String>>,
) -> Result<Gate, String> {
    Ok(match (status, kind) {
        (NodeStatus::Failed, EdgeKind::Error) => Gate::Run,
        (NodeStatus::Failed, _) => Gate::Skip("upstream_failed"),
        (s, EdgeKind::Error) if s.has_data() => Gate::Skip("no_error"),
        (s, EdgeKind::DataFlow) if s.has_data() => Gate::Run,
        (s, EdgeKind::Conditional(_)) if s.has_data() => match condition {
            Some(Ok(true)) => Gate::Run,
            Some(Ok(false)) => Gate::Skip("condition_false"),
            Some(Err(msg)) => return Err(msg),
            None => Gate::Skip("condition_false"),
        },
        (NodeStatus::Skipped, _) if reason == Some("cancelled") => Gate::Skip("cancelled"),
        (NodeStatus::Skipped, _) if reason == Some("upstream_failed") => {
            Gate::Skip("upstream_failed")
        }
        _ => Gate::Skip("upstream_skipped"),
    })
}

/// Two inputs' verdicts as one: a failure wins, then upstream_failed,
/// then the first skip reason; run only when both run.
pub(super) fn combine(a: Gate, b: Gate) -> Gate {
    match (a, b) {
        (Gate::Fail(e), _) | (_, Gate::Fail(e)) => Gate::Fail(e),
        (Gate::Skip("upstream_failed"), _) | (_, Gate::Skip("upstream_failed")) => {
            Gate::Skip("upstream_failed")
        }
        (Gate::Skip(r), _) => Gate::Skip(r),
        (_, g) => g,
    }
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
