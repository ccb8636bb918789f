//! Building one node's lazy frame from its inputs, shared by `plan` and
//! the executor, and the frame an error edge hands to its target.

use mudrock_operators::{Input, Limits, OpError};
use polars::prelude::*;

use super::ingest::{self, SourceData};
use crate::error::{NodeError, NodeErrorKind};
use crate::model::pipeline::{Node, NodeKind};

/// Resolves frames' schemas in one pair of Polars plan arenas shared by
/// every node built in a unit (or a `plan`), so a node's schema is derived
/// from its input's already-resolved plan instead of re-resolving the whole
/// growing plan from the scan for every node (what `collect_schema` on a
/// fresh frame does: quadratic in the chain's length).
pub type SchemaOf<'a> = dyn FnMut(&mut LazyFrame) -> PolarsResult<SchemaRef> + 'a;

/// Builds `node`'s frame and resolves its schema, so that config problems
/// (unknown columns, type clashes) are pinned on the node that has them.
pub fn build_node(
    node: &Node,
    inputs: Vec<Input>,
    sources: Option<&SourceData>,
    schema_of: &mut SchemaOf<'_>,
    limits: &Limits,
) -> Result<(LazyFrame, SchemaRef), NodeError> {
    let lf = match &node.kind {
        NodeKind::Ingestion(cfg) => {
            let data = sources.ok_or_else(|| {
                NodeError::new(NodeErrorKind::Internal, "ingestion without source data")
            })?;
            ingest::scan(cfg, data)
                .map_err(|e| NodeError::new(NodeErrorKind::Data, e.to_string()))?
        }
        NodeKind::Operator { op, .. } => op.build(inputs, limits).map_err(|e| op_error(node, e))?,
        NodeKind::Output(_) => inputs
            .into_iter()
            .next()
            .map(|i| i.frame)
            .ok_or_else(|| NodeError::new(NodeErrorKind::Internal, "output without input"))?,
    };
    let mut lf = lf;
    let schema = schema_of(&mut lf).map_err(|e| {
        let kind = if matches!(node.kind, NodeKind::Ingestion(_)) {
            NodeErrorKind::Data
        } else {
            NodeErrorKind::Config
        };
        NodeError::new(kind, clean_polars(&e.to_string()))
    })?;
    // The plan now points into the shared arenas; a frame Polars SQL made
    // still carries SQL's own arenas, which `collect_schema` would read
    // that pointer from. A frame without arenas of its own resolves afresh.
    Ok((LazyFrame::from(lf.logical_plan), schema))
}

/// Maps an operator's error to a node error carrying the JSON path.
pub fn op_error(node: &Node, e: OpError) -> NodeError {
    match e {
        OpError::Config { field, message } => NodeError {
            kind: NodeErrorKind::Config,
            path: Some(if field.is_empty() {
                format!("{}.config", node.path)
            } else {
                format!("{}.config.{field}", node.path)
            }),
            message,
            retryable: false,
        },
        OpError::Polars(p) => NodeError::from_polars(&clean_polars(&p.to_string())),
        OpError::CheckFailed(m) => NodeError::new(NodeErrorKind::Assertion, m),
        OpError::Limit(m) => NodeError::new(NodeErrorKind::Limit, m),
    }
}

/// Polars appends plan dumps ("Resolved plan until failure: ...") that say
/// nothing to a pipeline author; keep the first paragraph.
pub fn clean_polars(msg: &str) -> String {
    let first = msg
        .split("\n\nResolved plan until failure")
        .next()
        .unwrap_or(msg);
    let first = first
        .split("\n\nThis error occurred with the following context stack")
        .next()
        .unwrap_or(first);
    first.trim().to_string()
}

/// The one-row frame an error edge delivers.
pub fn error_frame(run_id: &str, node: &Node, err: &NodeError, failed_at: &str) -> DataFrame {
    df! {
        "run_id" => [run_id],
        "node_id" => [node.id.as_str()],
        "node_name" => [node.name.as_str()],
        "error_kind" => [err.kind.name()],
        "message" => [err.message.as_str()],
        "failed_at" => [failed_at],
    }
    .expect("fixed columns")
}
