//! Phase 4, graph checks: size limits, cycles (printed as a path), input
//! arity (not connected nodes), and what operators need of their inputs'
//! names.

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;
use serde_json::Value;

use super::*;
use crate::model::pipeline::*;

impl Validator {
    /// Reports each cycle once, as a path `a → b → a`.
    pub(super) fn cycles(&mut self, raw: &[RawNode], edges: &[Edge]) {
        let mut g = DiGraph::<usize, usize>::new();
        let ix: Vec<_> = (0..raw.len()).map(|i| g.add_node(i)).collect();
        for (k, e) in edges.iter().enumerate() {
            g.add_edge(ix[e.source], ix[e.target], k);
        }
        let mut sccs = tarjan_scc(&g);
        sccs.sort_by_key(|c| c.iter().map(|n| g[*n]).min());
        for scc in sccs {
            let members: Vec<usize> = scc.iter().map(|n| g[*n]).collect();
            let self_loop = members.len() == 1
                && edges
                    .iter()
                    .any(|e| e.source == members[0] && e.target == members[0]);
            if members.len() < 2 && !self_loop {
                continue;
            }
            // Walk from the first member in document order along edges that
            // stay inside the component until a node repeats.
            let start = *members.iter().min().unwrap();
            let mut path = vec![start];
            let mut cur = start;
            loop {
                let next = edges
                    .iter()
                    .filter(|e| e.source == cur && members.contains(&e.target))
                    .map(|e| e.target)
                    .min_by_key(|t| (path.contains(t) && *t != start, *t))
                    .expect("a strongly connected node has an edge inside its component");
                if let Some(pos) = path.iter().position(|&p| p == next) {
                    path.drain(..pos);
                    path.push(next);
                    break;
                }
                path.push(next);
                cur = next;
            }
            let names: Vec<String> = path.iter().map(|&i| known_id(raw, i)).collect();
            let closing = edges
                .iter()
                .find(|e| e.source == path[path.len() - 2] && e.target == path[path.len() - 1])
                .unwrap();
            self.diags.push(Diagnostic {
                severity: Severity::Error,
                path: closing.path.clone(),
                node: None,
                edge: None,
                message: format!("cycle: {}", names.join(" → ")),
                hint: None,
            });
        }
    }

    /// Checks the number of nodes and edges (edges plus dependencies)
    /// before walking them; `false` when over a limit.
    pub(super) fn within_counts(
        &mut self,
        nodes: &Value,
        edges: Option<&Value>,
        base: &str,
    ) -> bool {
        let limits = self.opts.limits;
        let n = nodes.as_array().map_or(0, Vec::len);
        if n > limits.max_nodes {
            self.err_node(
                format!("{base}nodes"),
                None,
                crate::limits::message(
                    "the number of nodes",
                    n,
                    "limits.max_nodes",
                    limits.max_nodes,
                ),
                None,
            );
            return false;
        }
        let deps: usize = nodes.as_array().map_or(0, |a| {
            a.iter()
                .filter_map(|n| n.get("dependencies")?.as_array().map(Vec::len))
                .sum()
        });
        let e = edges.and_then(Value::as_array).map_or(0, Vec::len) + deps;
        if e > limits.max_edges {
            self.err_node(
                format!("{base}edges"),
                None,
                crate::limits::message(
                    "the number of edges and dependencies",
                    e,
                    "limits.max_edges",
                    limits.max_edges,
                ),
                None,
            );
            return false;
        }
        true
    }

    /// Checks what an operator needs of its inputs' names (a sql query
    /// may read only its inputs).
    pub(super) fn inputs_of(
        &mut self,
        r: &RawNode,
        inputs: &[usize],
        edges: &[Edge],
        raw: &[RawNode],
    ) {
        let Some(NodeKind::Operator { op, .. }) = &r.kind else {
            return;
        };
        let names: Vec<String> = inputs
            .iter()
            .map(|&e| known_id(raw, edges[e].source))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        if let Err(e) = op.validate_inputs(&names) {
            let path = join_path(&format!("{}.config", r.path), e.field().unwrap_or(""));
            self.err_node(path, r.id.as_deref(), e.to_string(), None);
        }
    }

    /// Checks ingestion inputs and operator/output arity. Returns whether the
    /// node is not connected (fewer inputs than it needs).
    pub(super) fn arity(
        &mut self,
        r: &RawNode,
        inputs: &[usize],
        edges: &[Edge],
        raw: &[RawNode],
    ) -> bool {
        let Some(kind) = &r.kind else { return false };
        let nid = r.id.as_deref();
        let n = inputs.len();
        let (min, max, what) = match kind {
            NodeKind::Ingestion(_) => {
                if n > 0 {
                    let from: Vec<String> = inputs
                        .iter()
                        .map(|&e| format!("\"{}\"", known_id(raw, edges[e].source)))
                        .collect();
                    self.err_node(
                        &r.path,
                        nid,
                        format!(
                            "an ingestion node takes no inputs, but has {n}: {}",
                            from.join(", ")
                        ),
                        None,
                    );
                }
                return false;
            }
            NodeKind::Operator { spec, op } => {
                let a = op.arity();
                (
                    a.min(),
                    a.max(),
                    format!("operator \"{}\" takes {a}", spec.name),
                )
            }
            NodeKind::Output(_) => (1, Some(1), "an output node takes 1 input".to_string()),
        };
        if let Some(max) = max {
            if n > max {
                self.err_node(&r.path, nid, format!("{what}, but has {n}"), None);
                return false;
            }
        }
        if n < min {
            let sev = if self.opts.strict {
                Severity::Error
            } else {
                Severity::Warning
            };
            let tail = if self.opts.strict {
                ""
            } else {
                "; it will be skipped"
            };
            self.push(
                sev,
                &r.path,
                nid,
                None,
                format!("not connected: {what}, but has {n}{tail}"),
                None,
            );
            return true;
        }
        false
    }
}

pub(super) fn known_id(raw: &[RawNode], i: usize) -> String {
    raw[i].id.clone().unwrap_or_else(|| raw[i].path.clone())
}
