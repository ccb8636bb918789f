//! Validation: from submitted JSON to a [`Pipeline`], or every problem.
//!
//! The document is walked as plain JSON rather than deserialised in one go,
//! so that one bad node does not hide the next: every problem is collected
//! with its JSON path, the node or edge it concerns, and a hint. Nothing here
//! reads data; checks that need schemas happen when a plan is built.
//!
//! A short orchestrator ([`validate`]) over the phases, one file each:
//! the document walk (`document`), a node's envelope (`node`), per-kind
//! configs (`kinds`), edges (`edges`) and graph checks (`graph`).

mod document;
mod edges;
mod graph;
mod kinds;
mod node;

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::model::pipeline::*;
use graph::known_id;
pub use kinds::check_source_key;
use kinds::{join_path, serde_problem};
pub use node::valid_id;

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
    pub(super) fn push(
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

    pub(super) fn err_node(
        &mut self,
        path: impl Into<String>,
        node: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, path, node, None, message, hint);
    }

    pub(super) fn err_edge(
        &mut self,
        path: impl Into<String>,
        edge: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, path, None, edge, message, hint);
    }
}
