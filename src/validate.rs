//! Validation: from submitted JSON to a [`Pipeline`], or every problem.
//!
//! The document is walked as plain JSON rather than deserialised in one go,
//! so that one bad node does not hide the next: every problem is collected
//! with its JSON path, the node or edge it concerns, and a hint. Nothing here
//! reads data; checks that need schemas happen when a plan is built.

use std::collections::HashMap;
use std::fmt;

use mudrock_operators::{ExprKind, SerdeProblem, did_you_mean, expr, read_serde_message};
use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::pipeline::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a pipeline document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// JSON path (`nodes[3].config.predicate`); `$` for the document.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}: ", self.path)?;
        if let Some(n) = &self.node {
            write!(f, "node \"{n}\": ")?;
        } else if let Some(e) = &self.edge {
            write!(f, "edge \"{e}\": ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " — {h}")?;
        }
        Ok(())
    }
}

/// Every problem found, errors first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// How strict validation is, and how large a document may be.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Not-connected nodes (and an empty pipeline) are errors instead of
    /// warnings.
    pub strict: bool,
    pub limits: crate::limits::DocLimits,
}

/// Parses and validates a document. `Ok` carries the warnings too.
pub fn validate_str(text: &str, opts: Options) -> Result<(Pipeline, Report), Report> {
    // Refused before parsing: a huge document costs nothing.
    if text.len() > opts.limits.max_definition_bytes() {
        return Err(document_error(too_large(text.len(), &opts)));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => validate(v, opts),
        Err(e) => {
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            Err(document_error(format!(
                "invalid JSON at line {} column {}: {msg}",
                e.line(),
                e.column()
            )))
        }
    }
}

/// A report with one error about the whole document.
fn document_error(message: String) -> Report {
    Report {
        diagnostics: vec![Diagnostic {
            severity: Severity::Error,
            path: "$".into(),
            node: None,
            edge: None,
            message,
            hint: None,
        }],
    }
}

fn too_large(size: usize, opts: &Options) -> String {
    crate::limits::message(
        "the pipeline document's size in bytes",
        size,
        "limits.max_definition_kb",
        opts.limits.max_definition_kb,
    )
}

/// Validates a parsed document.
pub fn validate(doc: Value, opts: Options) -> Result<(Pipeline, Report), Report> {
    let mut v = Validator {
        diags: Vec::new(),
        opts,
    };
    let size = serde_json::to_vec(&doc).map_or(usize::MAX, |b| b.len());
    if size > opts.limits.max_definition_bytes() {
        return Err(document_error(too_large(size, &opts)));
    }
    let pipeline = v.run(&doc);
    let mut report = Report {
        diagnostics: v.diags,
    };
    // Errors first, then warnings; each group in document order.
    report
        .diagnostics
        .sort_by_key(|d| d.severity == Severity::Warning);
    match pipeline {
        Some(mut p) if !report.has_errors() => {
            p.definition = doc;
            Ok((p, report))
        }
        _ => Err(report),
    }
}

const ID_RULE: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$";

/// Whether `id` is a valid node id (it becomes a storage path segment).
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Why a source key would leave the bucket, if it would.
pub fn check_source_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("source is empty".into());
    }
    if key.contains("://") || key.starts_with("s3:") || key.starts_with("file:") {
        return Err(format!(
            "source \"{key}\" is a URL; sources are keys inside the project's bucket"
        ));
    }
    if key.starts_with('/') || key.starts_with('\\') || (key.len() > 1 && key.as_bytes()[1] == b':')
    {
        return Err(format!(
            "source \"{key}\" is an absolute path; sources are keys inside the project's bucket"
        ));
    }
    if key.split(['/', '\\']).any(|seg| seg == "..") {
        return Err(format!(
            "source \"{key}\" escapes the bucket: \"..\" is not allowed"
        ));
    }
    if key.contains('\0') {
        return Err("source contains a NUL byte".into());
    }
    Ok(())
}

struct Validator {
    diags: Vec<Diagnostic>,
    opts: Options,
}

/// Per-node facts gathered in the first pass.
struct RawNode {
    id: Option<String>,
    path: String,
    kind: Option<NodeKind>,
    name: String,
    execution: Execution,
    dependencies: Vec<(String, String)>,
}

impl Validator {
    fn push(
        &mut self,
        severity: Severity,
        path: impl Into<String>,
        node: Option<&str>,
        edge: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            path: path.into(),
            node: node.map(str::to_string),
            edge: edge.map(str::to_string),
            message: message.into(),
            hint,
        });
    }

    fn err_node(
        &mut self,
        path: impl Into<String>,
        node: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, path, node, None, message, hint);
    }

    fn err_edge(
        &mut self,
        path: impl Into<String>,
        edge: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, path, None, edge, message, hint);
    }

    fn run(&mut self, doc: &Value) -> Option<Pipeline> {
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
    fn locate<'a>(
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

    fn node(&mut self, path: &str, item: &Value) -> RawNode {
        let mut r = RawNode {
            id: None,
            path: path.to_string(),
            kind: None,
            name: String::new(),
            execution: Execution::default(),
            dependencies: Vec::new(),
        };
        let Some(obj) = item.as_object() else {
            self.err_node(path, None, "a node must be an object", None);
            return r;
        };
        let id = match obj.get("id") {
            None => {
                self.err_node(format!("{path}.id"), None, "missing", None);
                None
            }
            Some(Value::String(s)) if valid_id(s) => Some(s.clone()),
            Some(Value::String(s)) => {
                self.err_node(
                    format!("{path}.id"),
                    None,
                    format!("invalid id \"{s}\": must match {ID_RULE}"),
                    None,
                );
                None
            }
            Some(_) => {
                self.err_node(format!("{path}.id"), None, "must be a string", None);
                None
            }
        };
        r.id = id.clone();
        let nid = id.as_deref();
        r.name = obj
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| id.clone().unwrap_or_default());

        if let Some(deps) = obj.get("dependencies").filter(|v| !v.is_null()) {
            match deps.as_array() {
                Some(a) => {
                    for (i, d) in a.iter().enumerate() {
                        match d.as_str() {
                            Some(s) => r
                                .dependencies
                                .push((format!("{path}.dependencies[{i}]"), s.to_string())),
                            None => self.err_node(
                                format!("{path}.dependencies[{i}]"),
                                nid,
                                "must be a node id",
                                None,
                            ),
                        }
                    }
                }
                None => self.err_node(
                    format!("{path}.dependencies"),
                    nid,
                    "must be an array of node ids",
                    None,
                ),
            }
        }
        if let Some(ex) = obj.get("execution").filter(|v| !v.is_null()) {
            match serde_json::from_value::<Execution>(ex.clone()) {
                Ok(e)
                    if e.timeout_seconds
                        .is_some_and(|t| !(t > 0.0 && t.is_finite())) =>
                {
                    self.err_node(
                        format!("{path}.execution.timeoutSeconds"),
                        nid,
                        "must be a positive number of seconds",
                        None,
                    );
                }
                Ok(e) => r.execution = e,
                Err(e) => {
                    let (field, message, hint) = serde_problem(&e.to_string());
                    let p = if field.is_empty() {
                        format!("{path}.execution")
                    } else {
                        format!("{path}.execution.{field}")
                    };
                    self.err_node(p, nid, message, hint);
                }
            }
        }

        let config = obj
            .get("config")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let cpath = format!("{path}.config");
        if !config.is_object() {
            self.err_node(&cpath, nid, "must be an object", None);
            return r;
        }
        let node_type = match obj.get("nodeType") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                self.err_node(format!("{path}.nodeType"), nid, "must be a string", None);
                return r;
            }
            None => {
                self.err_node(
                    format!("{path}.nodeType"),
                    nid,
                    "missing: one of ingestion, operator, output",
                    None,
                );
                return r;
            }
        };
        r.kind = match node_type {
            "ingestion" => self.ingestion(&cpath, nid, &config),
            "operator" => self.operator(&cpath, nid, &config),
            "output" => self.output(&cpath, nid, &config),
            other => {
                let hint = did_you_mean(other, ["ingestion", "operator", "output"])
                    .or(Some("one of ingestion, operator, output".into()));
                self.err_node(
                    format!("{path}.nodeType"),
                    nid,
                    format!("unknown node type \"{other}\""),
                    hint,
                );
                None
            }
        };
        r
    }

    fn ingestion(&mut self, cpath: &str, nid: Option<&str>, config: &Value) -> Option<NodeKind> {
        let cfg: IngestionConfig = match serde_path_to_error::deserialize(config) {
            Ok(c) => c,
            Err(e) => {
                let path = e.path().to_string();
                let (field, message, hint) = serde_problem(&e.inner().to_string());
                let prefix = if path == "." || path.is_empty() {
                    String::new()
                } else {
                    path.clone()
                };
                let full = join_path(cpath, &join_field(&prefix, &field));
                let message = if message.starts_with("data did not match any variant") {
                    "must be a key, a glob, or a list of keys".to_string()
                } else {
                    message
                };
                self.err_node(full, nid, message, hint);
                return None;
            }
        };
        let mut ok = true;
        match &cfg.source {
            Source::One(s) => {
                if let Err(m) = check_source_key(s) {
                    self.err_node(format!("{cpath}.source"), nid, m, None);
                    ok = false;
                }
            }
            Source::Many(v) => {
                if v.is_empty() {
                    self.err_node(format!("{cpath}.source"), nid, "source list is empty", None);
                    ok = false;
                }
                for (i, s) in v.iter().enumerate() {
                    if let Err(m) = check_source_key(s) {
                        self.err_node(format!("{cpath}.source[{i}]"), nid, m, None);
                        ok = false;
                    }
                }
            }
        }
        for k in cfg.source.keys() {
            if let Err(e) = globset::Glob::new(k) {
                self.err_node(
                    format!("{cpath}.source"),
                    nid,
                    format!("invalid glob \"{k}\": {}", e.kind()),
                    None,
                );
                ok = false;
            }
        }
        let format = cfg.effective_format();
        if format.is_none() {
            self.err_node(
                format!("{cpath}.format"),
                nid,
                format!(
                    "cannot infer the format of \"{}\"",
                    cfg.source.keys().first().copied().unwrap_or("")
                ),
                Some("set \"format\" to one of csv, parquet, json, ndjson".into()),
            );
            ok = false;
        }
        let o = &cfg.options;
        if format.is_some_and(|f| f != Format::Csv) {
            if let Some(opt) = o.csv_only().first() {
                self.err_node(
                    format!("{cpath}.options.{opt}"),
                    nid,
                    format!(
                        "option \"{opt}\" applies to csv only, not {}",
                        format.unwrap().name()
                    ),
                    None,
                );
                ok = false;
            }
        }
        if format == Some(Format::Parquet) && o.infer_schema_length.is_some() {
            self.err_node(
                format!("{cpath}.options.inferSchemaLength"),
                nid,
                "option \"inferSchemaLength\" does not apply to parquet",
                None,
            );
            ok = false;
        }
        for (name, val) in [("delimiter", &o.delimiter), ("quoteChar", &o.quote_char)] {
            if let Some(v) = val {
                if v.len() != 1 {
                    self.err_node(
                        format!("{cpath}.options.{name}"),
                        nid,
                        format!("must be a single ASCII character, got \"{v}\""),
                        None,
                    );
                    ok = false;
                }
            }
        }
        if let Some(ovs) = &o.schema_overrides {
            for (i, s) in ovs.iter().enumerate() {
                if mudrock_operators::dtype::parse(&s.dtype).is_none() {
                    let hint =
                        did_you_mean(&s.dtype, mudrock_operators::dtype::NAMES.iter().copied())
                            .or_else(|| {
                                Some(format!(
                                    "one of: {}",
                                    mudrock_operators::dtype::NAMES.join(", ")
                                ))
                            });
                    self.err_node(
                        format!("{cpath}.options.schemaOverrides[{i}].dtype"),
                        nid,
                        format!("unknown dtype \"{}\"", s.dtype),
                        hint,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(NodeKind::Ingestion(cfg))
    }

    fn operator(&mut self, cpath: &str, nid: Option<&str>, config: &Value) -> Option<NodeKind> {
        let obj = config.as_object().expect("checked by caller");
        let name = match obj.get("operator") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                self.err_node(format!("{cpath}.operator"), nid, "must be a string", None);
                return None;
            }
            None => {
                self.err_node(
                    format!("{cpath}.operator"),
                    nid,
                    "missing",
                    Some(format!("one of: {}", mudrock_operators::names().join(", "))),
                );
                return None;
            }
        };
        let Some(spec) = mudrock_operators::lookup(&name) else {
            let hint = did_you_mean(&name, mudrock_operators::names())
                .or_else(|| Some(format!("one of: {}", mudrock_operators::names().join(", "))));
            self.err_node(
                format!("{cpath}.operator"),
                nid,
                format!("unknown operator \"{name}\""),
                hint,
            );
            return None;
        };
        let mut rest = obj.clone();
        rest.remove("operator");
        let op = match spec.parse(&Value::Object(rest)) {
            Ok(op) => op,
            Err(e) => {
                self.err_node(join_path(cpath, &e.field), nid, e.message, e.hint);
                return None;
            }
        };
        let mut ok = true;
        let max = self.opts.limits.max_expression_chars;
        for x in op.expressions() {
            if let Err(r) = expr::check_syntax(&x.text, x.kind, max) {
                self.err_node(join_path(cpath, &x.field), nid, r.message, r.hint);
                ok = false;
            }
        }
        ok.then_some(NodeKind::Operator { spec, op })
    }

    fn output(&mut self, cpath: &str, nid: Option<&str>, config: &Value) -> Option<NodeKind> {
        let cfg: OutputConfig = match serde_path_to_error::deserialize(config) {
            Ok(c) => c,
            Err(e) => {
                let path = e.path().to_string();
                let (field, message, hint) = serde_problem(&e.inner().to_string());
                let prefix = if path == "." { String::new() } else { path };
                let field = if prefix.is_empty() || prefix == field {
                    field
                } else {
                    join_field(&prefix, &field)
                };
                self.err_node(join_path(cpath, &field), nid, message, hint);
                return None;
            }
        };
        let mut ok = true;
        if cfg.format != "parquet" {
            self.err_node(
                format!("{cpath}.format"),
                nid,
                format!("outputs are always parquet, got \"{}\"", cfg.format),
                Some("use \"export\" for a copy in another format".into()),
            );
            ok = false;
        }
        if let Some(x) = &cfg.export {
            if let Err(m) = check_source_key(x) {
                self.err_node(
                    format!("{cpath}.export"),
                    nid,
                    m.replace("source", "export"),
                    None,
                );
                ok = false;
            } else if !x.starts_with("exports/") {
                self.err_node(
                    format!("{cpath}.export"),
                    nid,
                    format!("export \"{x}\" must be under exports/"),
                    None,
                );
                ok = false;
            } else if Format::from_extension(x).is_none() {
                self.err_node(
                    format!("{cpath}.export"),
                    nid,
                    format!("cannot tell the format of export \"{x}\""),
                    Some("end it in .csv, .parquet, .json or .ndjson".into()),
                );
                ok = false;
            }
        }
        ok.then_some(NodeKind::Output(cfg))
    }

    fn edge(
        &mut self,
        path: &str,
        item: &Value,
        ids: &HashMap<String, usize>,
        known: &[String],
    ) -> Option<Edge> {
        let Some(obj) = item.as_object() else {
            self.err_edge(path, None, "an edge must be an object", None);
            return None;
        };
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::Null) => path.to_string(),
            Some(_) => {
                self.err_edge(
                    format!("{path}.id"),
                    None,
                    "must be a non-empty string",
                    None,
                );
                return None;
            }
        };
        let eid = Some(id.as_str());
        let mut ends = [None, None];
        for (slot, field) in ["sourceNodeId", "targetNodeId"].into_iter().enumerate() {
            match obj.get(field) {
                Some(Value::String(s)) => match ids.get(s) {
                    Some(&i) => ends[slot] = Some(i),
                    None => {
                        let hint = did_you_mean(s, known.iter().map(String::as_str));
                        self.err_edge(
                            format!("{path}.{field}"),
                            eid,
                            format!("unknown node \"{s}\""),
                            hint,
                        );
                    }
                },
                Some(_) => self.err_edge(format!("{path}.{field}"), eid, "must be a node id", None),
                None => self.err_edge(format!("{path}.{field}"), eid, "missing", None),
            }
        }
        let condition = match obj.get("condition") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err_edge(format!("{path}.condition"), eid, "must be a string", None);
                return None;
            }
        };
        let kind = match obj
            .get("edgeType")
            .and_then(Value::as_str)
            .unwrap_or("data_flow")
        {
            "data_flow" => EdgeKind::DataFlow,
            "error" => EdgeKind::Error,
            "conditional" => match &condition {
                Some(c) if !c.trim().is_empty() => match expr::check_syntax(
                    c,
                    ExprKind::Aggregate,
                    self.opts.limits.max_expression_chars,
                ) {
                    Ok(_) => EdgeKind::Conditional(c.clone()),
                    Err(r) => {
                        let m = match r.message.strip_prefix("expression does not parse: ") {
                            Some(rest) => format!("condition does not parse: {rest}"),
                            None => r.message,
                        };
                        self.err_edge(format!("{path}.condition"), eid, m, r.hint);
                        return None;
                    }
                },
                _ => {
                    self.err_edge(
                        format!("{path}.condition"),
                        eid,
                        "a conditional edge needs a condition",
                        Some("e.g. \"count(*) > 0\"".into()),
                    );
                    return None;
                }
            },
            other => {
                let hint = did_you_mean(other, ["data_flow", "conditional", "error"])
                    .or(Some("one of data_flow, conditional, error".into()));
                self.err_edge(
                    format!("{path}.edgeType"),
                    eid,
                    format!("unknown edge type \"{other}\""),
                    hint,
                );
                return None;
            }
        };
        if condition.is_some() && !matches!(kind, EdgeKind::Conditional(_)) {
            self.err_edge(
                format!("{path}.condition"),
                eid,
                format!("a condition on a {} edge would be ignored", kind.name()),
                Some("set \"edgeType\": \"conditional\"".into()),
            );
            return None;
        }
        let [Some(source), Some(target)] = ends else {
            return None;
        };
        Some(Edge {
            id,
            source,
            target,
            kind,
            path: path.to_string(),
        })
    }

    /// Reports each cycle once, as a path `a → b → a`.
    fn cycles(&mut self, raw: &[RawNode], edges: &[Edge]) {
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
    fn within_counts(&mut self, nodes: &Value, edges: Option<&Value>, base: &str) -> bool {
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
    fn inputs_of(&mut self, r: &RawNode, inputs: &[usize], edges: &[Edge], raw: &[RawNode]) {
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
    fn arity(&mut self, r: &RawNode, inputs: &[usize], edges: &[Edge], raw: &[RawNode]) -> bool {
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

fn known_id(raw: &[RawNode], i: usize) -> String {
    raw[i].id.clone().unwrap_or_else(|| raw[i].path.clone())
}

fn join_path(base: &str, field: &str) -> String {
    if field.is_empty() {
        base.to_string()
    } else if field.starts_with('[') {
        format!("{base}{field}")
    } else {
        format!("{base}.{field}")
    }
}

fn join_field(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else if field.is_empty() || prefix.ends_with(field) {
        prefix.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Serde's complaint as (field, message, hint) for the document's own
/// structs (ingestion, output, execution).
fn serde_problem(msg: &str) -> (String, String, Option<String>) {
    match read_serde_message(msg) {
        SerdeProblem::UnknownField { name, expected } => {
            let hint = did_you_mean(&name, expected.iter().map(String::as_str))
                .or_else(|| Some(format!("expected one of: {}", expected.join(", "))));
            let message = format!("unknown field \"{name}\"");
            (name, message, hint)
        }
        SerdeProblem::MissingField(name) => (name, "missing".to_string(), None),
        SerdeProblem::UnknownVariant { name, expected } => {
            let hint = did_you_mean(&name, expected.iter().map(String::as_str))
                .or_else(|| Some(format!("one of: {}", expected.join(", "))));
            (String::new(), format!("unknown value \"{name}\""), hint)
        }
        SerdeProblem::Other(message) => (String::new(), message, None),
    }
}

/// Canonical JSON: keys sorted at every level, no whitespace. Used for
/// hashing, so a re-ordered but equal config hashes the same.
pub fn canonical_json(v: &Value) -> String {
    // serde_json's Map may preserve insertion order (a feature some
    // dependency can switch on), so sort explicitly rather than trust it.
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                write_canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}
