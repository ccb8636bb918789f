//! Phase 1, the document walk: where nodes and edges are (top level or
//! `dagDefinition`), each node and edge read, ids unique, dependencies made
//! edges, input order fixed, and the [`Pipeline`] assembled.

use std::collections::HashMap;

use mudrock_operators::did_you_mean;
use serde_json::{Map, Value};

use super::*;
use crate::model::pipeline::*;

impl Validator {
    pub(super) fn run(&mut self, doc: &Value) -> Option<Pipeline> {
        let Some(top) = doc.as_object() else {
            self.err_node("$", None, "a pipeline must be a JSON object", None);
            return None;
        };
        let (nodes, edges, base) = self.locate(top)?;

        if !self.within_counts(nodes, edges, base) {
            return None;
        }
        let mut raw = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        match nodes {
            Value::Array(items) if items.is_empty() => {
                let sev = if self.opts.strict {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                self.push(
                    sev,
                    format!("{base}nodes"),
                    None,
                    None,
                    "the pipeline has no nodes: a run would do nothing".to_string(),
                    None,
                );
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let r = self.node(&format!("{base}nodes[{i}]"), item);
                    if let Some(id) = &r.id {
                        if let Some(&first) = ids.get(id) {
                            let first_path: String = raw
                                .get(first)
                                .map(|r: &RawNode| r.path.clone())
                                .unwrap_or_default();
                            self.err_node(
                                format!("{}.id", r.path),
                                Some(id),
                                format!("duplicate id \"{id}\" (first at {first_path})"),
                                None,
                            );
                        } else {
                            ids.insert(id.clone(), raw.len());
                        }
                    }
                    raw.push(r);
                }
            }
            _ => {
                self.err_node(
                    format!("{base}nodes"),
                    None,
                    "must be an array of nodes",
                    None,
                );
                return None;
            }
        }
        let known: Vec<String> = raw.iter().filter_map(|r| r.id.clone()).collect();

        let mut out_edges: Vec<Edge> = Vec::new();
        let mut edge_ids: HashMap<String, String> = HashMap::new();
        match edges {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("{base}edges[{i}]");
                    if let Some(e) = self.edge(&path, item, &ids, &known) {
                        if let Some(first) = edge_ids.get(&e.id) {
                            self.err_edge(
                                format!("{path}.id"),
                                Some(&e.id),
                                format!("duplicate id \"{}\" (first at {first})", e.id),
                                None,
                            );
                            continue;
                        }
                        edge_ids.insert(e.id.clone(), path.clone());
                        if let Some(dup) = out_edges
                            .iter()
                            .find(|o| o.source == e.source && o.target == e.target)
                        {
                            let (s, t) = (&known_id(&raw, e.source), &known_id(&raw, e.target));
                            self.err_edge(
                                path.clone(),
                                Some(&e.id),
                                format!("duplicates edge \"{}\" ({s} → {t})", dup.id),
                                None,
                            );
                            continue;
                        }
                        out_edges.push(e);
                    }
                }
            }
            Some(_) => self.err_edge(
                format!("{base}edges"),
                None,
                "must be an array of edges",
                None,
            ),
        }

        // Dependencies without an edge are data_flow edges.
        for (target, r) in raw.iter().enumerate() {
            let Some(tid) = r.id.as_deref() else { continue };
            if ids.get(tid) != Some(&target) {
                continue;
            }
            for (k, (path, dep)) in r.dependencies.iter().enumerate() {
                if r.dependencies[..k].iter().any(|(_, d)| d == dep) {
                    self.diags.push(Diagnostic {
                        severity: Severity::Error,
                        path: path.clone(),
                        node: Some(tid.to_string()),
                        edge: None,
                        message: format!("\"{dep}\" is listed twice: a node takes each input once"),
                        hint: Some(
                            "to join a table with itself, use a sql node: \
                             SELECT ... FROM t AS a JOIN t AS b ON ..."
                                .into(),
                        ),
                    });
                    continue;
                }
                match ids.get(dep) {
                    None => {
                        let hint = did_you_mean(dep, known.iter().map(String::as_str));
                        self.diags.push(Diagnostic {
                            severity: Severity::Error,
                            path: path.clone(),
                            node: Some(tid.to_string()),
                            edge: None,
                            message: format!("unknown node \"{dep}\""),
                            hint,
                        });
                    }
                    Some(&source) => {
                        if !out_edges
                            .iter()
                            .any(|e| e.source == source && e.target == target)
                        {
                            out_edges.push(Edge {
                                id: format!("{dep}->{tid}"),
                                source,
                                target,
                                kind: EdgeKind::DataFlow,
                                path: path.clone(),
                            });
                        }
                    }
                }
            }
        }

        self.cycles(&raw, &out_edges);

        // Input order: the order of `dependencies`, then the rest of the edges.
        let mut nodes_out = Vec::new();
        for (idx, r) in raw.iter().enumerate() {
            // A node without a usable id has no edges to check.
            if r.id.as_ref().is_none_or(|id| ids.get(id) != Some(&idx)) {
                continue;
            }
            let mut inputs: Vec<usize> = (0..out_edges.len())
                .filter(|&e| out_edges[e].target == idx)
                .collect();
            let dep_pos = |e: usize| {
                let src = &known_id(&raw, out_edges[e].source);
                r.dependencies
                    .iter()
                    .position(|(_, d)| d == src)
                    .unwrap_or(usize::MAX)
            };
            inputs.sort_by_key(|&e| dep_pos(e));
            let not_connected = self.arity(r, &inputs, &out_edges, &raw);
            self.inputs_of(r, &inputs, &out_edges, &raw);
            if let (Some(id), Some(kind)) = (r.id.clone(), r.kind.as_ref()) {
                let _ = kind;
                nodes_out.push((idx, id, inputs, not_connected));
            }
        }

        if self.diags.iter().any(|d| d.severity == Severity::Error) {
            return None;
        }
        let mut nodes = Vec::with_capacity(raw.len());
        for ((_, id, inputs, not_connected), r) in nodes_out.into_iter().zip(raw) {
            nodes.push(Node {
                id,
                name: r.name,
                path: r.path,
                kind: r.kind.expect("errors returned above"),
                execution: r.execution,
                inputs,
                not_connected,
            });
        }
        let str_field = |k: &str| top.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Pipeline {
            id: str_field("id"),
            project_id: str_field("projectId"),
            name: str_field("name").unwrap_or_else(|| "pipeline".into()),
            version: str_field("version"),
            nodes,
            edges: out_edges,
            definition: Value::Null,
        })
    }

    /// Finds `nodes`/`edges` at the top level or under `dagDefinition`.
    pub(super) fn locate<'a>(
        &mut self,
        top: &'a Map<String, Value>,
    ) -> Option<(&'a Value, Option<&'a Value>, &'static str)> {
        let dag = top.get("dagDefinition").filter(|v| !v.is_null());
        let top_nodes = top.get("nodes");
        match (top_nodes, dag) {
            (Some(n), None) => Some((n, top.get("edges"), "")),
            (None, Some(d)) => {
                let Some(d) = d.as_object() else {
                    self.err_node(
                        "dagDefinition",
                        None,
                        "must be an object with \"nodes\" and \"edges\"",
                        None,
                    );
                    return None;
                };
                match d.get("nodes") {
                    Some(n) => Some((n, d.get("edges"), "dagDefinition.")),
                    None => {
                        self.err_node("dagDefinition.nodes", None, "missing", None);
                        None
                    }
                }
            }
            (Some(n), Some(d)) => {
                let same = d.get("nodes") == Some(n) && d.get("edges") == top.get("edges");
                if !same {
                    self.err_node(
                        "dagDefinition",
                        None,
                        "disagrees with the top-level \"nodes\"/\"edges\"",
                        Some("keep only one of the two".into()),
                    );
                    return None;
                }
                Some((n, top.get("edges"), ""))
            }
            (None, None) => {
                self.err_node(
                    "nodes",
                    None,
                    "missing: a pipeline needs \"nodes\" (or \"dagDefinition.nodes\")",
                    None,
                );
                None
            }
        }
    }
}
