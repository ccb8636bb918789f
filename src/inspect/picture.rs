//! Pictures of a pipeline, or of a run: Graphviz DOT and Mermaid. Nodes
//! are labelled with their id and kind, and for a run coloured by status
//! with rows and time; edges a run did not take (a false condition, an
//! error edge with no error, an upstream failure) are dashed. SVG and PNG
//! come from Graphviz's `dot` when it is installed.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::model::pipeline::{EdgeKind, Pipeline};
use crate::model::{Lineage, NodeStatus, RunMeta};

/// What a picture shows: the pipeline, and optionally a run of it.
pub struct Picture<'a> {
    pub pipeline: &'a Pipeline,
    pub run: Option<&'a RunMeta>,
    /// Edges the run took (from `lineage.json`); the others are dashed.
    pub lineage: Option<&'a Lineage>,
}

fn colour(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Succeeded => "#b7e4c7",
        NodeStatus::Cached => "#cde4ff",
        NodeStatus::Failed => "#ffb3b3",
        NodeStatus::Skipped => "#e0e0e0",
        NodeStatus::Running | NodeStatus::Pending => "#fff3b0",
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

impl Picture<'_> {
    /// The label lines of a node.
    fn label(&self, id: &str, kind: &str) -> Vec<String> {
        let mut lines = vec![id.to_string(), kind.to_string()];
        if let Some(n) = self
            .run
            .and_then(|r| r.nodes.iter().find(|n| n.node_id == id))
        {
            let mut l = n.status.name().to_string();
            if let Some(rows) = n.rows {
                l.push_str(&format!(", {rows} rows"));
            }
            if let Some(ms) = n.duration_ms {
                l.push_str(&format!(", {ms} ms"));
            }
            lines.push(l);
        }
        lines
    }

    fn status(&self, id: &str) -> Option<NodeStatus> {
        self.run
            .and_then(|r| r.nodes.iter().find(|n| n.node_id == id))
            .map(|n| n.status)
    }

    fn taken(&self) -> Option<BTreeSet<&str>> {
        self.lineage
            .map(|l| l.edges.iter().map(|e| e.edge_id.as_str()).collect())
    }

    fn kind(&self, i: usize) -> String {
        let n = &self.pipeline.nodes[i];
        match n.operator_name() {
            Some(op) => op.to_string(),
            None => n.node_type().to_string(),
        }
    }

    /// Graphviz DOT.
    pub fn dot(&self) -> String {
        let mut out = String::from(
            "digraph pipeline {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\"];\n",
        );
        for (i, n) in self.pipeline.nodes.iter().enumerate() {
            let label = self
                .label(&n.id, &self.kind(i))
                .iter()
                .map(|l| dot_escape(l))
                .collect::<Vec<_>>()
                .join("\\n");
            let fill = self.status(&n.id).map_or("#ffffff", colour);
            out.push_str(&format!(
                "  \"{}\" [label=\"{label}\", fillcolor=\"{fill}\"];\n",
                dot_escape(&n.id)
            ));
        }
        let taken = self.taken();
        for e in &self.pipeline.edges {
            let (s, t) = (
                &self.pipeline.nodes[e.source].id,
                &self.pipeline.nodes[e.target].id,
            );
            let mut attrs = Vec::new();
            match &e.kind {
                EdgeKind::DataFlow => {}
                EdgeKind::Conditional(c) => attrs.push(format!("label=\"if {}\"", dot_escape(c))),
                EdgeKind::Error => attrs.push("label=\"on error\", color=\"#c0392b\"".to_string()),
            }
            if taken.as_ref().is_some_and(|t| !t.contains(e.id.as_str())) {
                attrs.push("style=dashed".into());
            }
            out.push_str(&format!(
                "  \"{}\" -> \"{}\" [{}];\n",
                dot_escape(s),
                dot_escape(t),
                attrs.join(", ")
            ));
        }
        out.push_str("}\n");
        out
    }

    /// Mermaid (`flowchart LR`), for Markdown that renders it.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        // Mermaid ids must be simple: number the nodes.
        for (i, n) in self.pipeline.nodes.iter().enumerate() {
            let label = self
                .label(&n.id, &self.kind(i))
                .iter()
                .map(|l| mermaid_escape(l))
                .collect::<Vec<_>>()
                .join("<br/>");
            out.push_str(&format!("  n{i}[\"{label}\"]\n"));
            if let Some(s) = self.status(&n.id) {
                out.push_str(&format!("  style n{i} fill:{}\n", colour(s)));
            }
        }
        let taken = self.taken();
        for e in &self.pipeline.edges {
            let dashed = taken.as_ref().is_some_and(|t| !t.contains(e.id.as_str()));
            let arrow = if dashed { "-.->" } else { "-->" };
            let label = match &e.kind {
                EdgeKind::DataFlow => String::new(),
                EdgeKind::Conditional(c) => format!("|\"if {}\"|", mermaid_escape(c)),
                EdgeKind::Error => "|\"on error\"|".to_string(),
            };
            out.push_str(&format!("  n{} {arrow}{label} n{}\n", e.source, e.target));
        }
        out
    }
}

/// Renders DOT with Graphviz (`svg` or `png`); a clear error when `dot`
/// is not installed.
pub fn render(dot: &str, format: &str) -> Result<Vec<u8>, String> {
    let mut child = Command::new("dot")
        .arg(format!("-T{format}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "Graphviz is not installed (no `dot` on PATH): install the Debian package \
                 graphviz, or ask for --format dot or mermaid"
                    .to_string()
            }
            _ => format!("cannot run Graphviz' dot: {e}"),
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = dot.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("Graphviz' dot failed: {e}"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!(
            "Graphviz' dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}
