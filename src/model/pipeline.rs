//! The validated pipeline: what the rest of the engine works from.
//!
//! Built only by `validate`, so every value here has been checked:
//! ids are well-formed and unique, edges name existing nodes, configs parsed
//! into their typed structs, expressions parse, and the graph has no cycle.

use mudrock_operators::{Operator, OperatorSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A validated pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pub id: Option<String>,
    pub project_id: Option<String>,
    pub name: String,
    pub version: Option<String>,
    pub nodes: Vec<Node>,
    /// The effective edges: `edges` plus `dependencies` without an edge.
    pub edges: Vec<Edge>,
    /// The document as submitted (stored with every run).
    pub definition: Value,
}

impl Pipeline {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Edges into `node`, in input order.
    pub fn inputs(&self, node: usize) -> impl Iterator<Item = &Edge> {
        self.nodes[node].inputs.iter().map(|&e| &self.edges[e])
    }

    /// Edges out of `node`, in document order.
    pub fn outputs(&self, node: usize) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.source == node)
    }
}

#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub name: String,
    /// JSON path of the node in the document (`nodes[3]`).
    pub path: String,
    pub kind: NodeKind,
    pub execution: Execution,
    /// Indices into [`Pipeline::edges`], in input order.
    pub inputs: Vec<usize>,
    /// Lacks required inputs: reported as a warning and skipped at run time.
    pub not_connected: bool,
}

impl Node {
    pub fn node_type(&self) -> &'static str {
        match self.kind {
            NodeKind::Ingestion(_) => "ingestion",
            NodeKind::Operator { .. } => "operator",
            NodeKind::Output(_) => "output",
        }
    }

    pub fn operator_name(&self) -> Option<&'static str> {
        match &self.kind {
            NodeKind::Operator { spec, .. } => Some(spec.name),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub enum NodeKind {
    Ingestion(IngestionConfig),
    Operator {
        spec: &'static OperatorSpec,
        op: Box<dyn Operator>,
    },
    Output(OutputConfig),
}

/// Per-node execution settings; never change results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Execution {
    /// `true`: always keep a cache entry; `false`: never; absent: the engine
    /// caches where it materialises anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// Extra attempts after a transient (storage) failure.
    #[serde(default)]
    pub retries: u32,
    /// Seconds a unit may compute (fractions allowed); must be positive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub id: String,
    pub source: usize,
    pub target: usize,
    pub kind: EdgeKind,
    /// Where it came from (`edges[2]` or `nodes[4].dependencies[0]`).
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeKind {
    DataFlow,
    Conditional(String),
    Error,
}

impl EdgeKind {
    pub fn name(&self) -> &'static str {
        match self {
            EdgeKind::DataFlow => "data_flow",
            EdgeKind::Conditional(_) => "conditional",
            EdgeKind::Error => "error",
        }
    }
}

/// An ingestion node's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngestionConfig {
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default)]
    pub options: IngestOptions,
}

impl IngestionConfig {
    /// The declared format, else the one the source's extension implies.
    pub fn effective_format(&self) -> Option<Format> {
        self.format.or_else(|| {
            let first = match &self.source {
                Source::One(s) => s.as_str(),
                Source::Many(v) => v.first().map(String::as_str).unwrap_or(""),
            };
            Format::from_extension(first)
        })
    }
}

/// A key, a glob, or a list of keys inside the project's bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Source {
    One(String),
    Many(Vec<String>),
}

impl Source {
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Source::One(s) => vec![s.as_str()],
            Source::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Parquet,
    Json,
    Ndjson,
}

impl Format {
    pub const NAMES: &[&str] = &["csv", "parquet", "json", "ndjson"];

    pub fn from_extension(key: &str) -> Option<Format> {
        let lower = key.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        Some(match ext {
            "csv" | "tsv" => Format::Csv,
            "parquet" | "pq" => Format::Parquet,
            "json" => Format::Json,
            "ndjson" | "jsonl" => Format::Ndjson,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }
}

/// Reader options. Options that do not apply to the format are rejected at
/// validation rather than ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngestOptions {
    /// csv: one character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_char: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_rows: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub try_parse_dates: Option<bool>,
    /// csv, ndjson, json: rows read to infer types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infer_schema_length: Option<usize>,
    /// Every format: types forced for named columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_overrides: Option<Vec<SchemaOverride>>,
}

impl IngestOptions {
    /// Options set that only csv understands.
    pub fn csv_only(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.delimiter.is_some() {
            v.push("delimiter");
        }
        if self.has_header.is_some() {
            v.push("hasHeader");
        }
        if self.null_values.is_some() {
            v.push("nullValues");
        }
        if self.quote_char.is_some() {
            v.push("quoteChar");
        }
        if self.skip_rows.is_some() {
            v.push("skipRows");
        }
        if self.comment_prefix.is_some() {
            v.push("commentPrefix");
        }
        if self.try_parse_dates.is_some() {
            v.push("tryParseDates");
        }
        v
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaOverride {
    pub name: String,
    pub dtype: String,
    /// csv, `date`/`datetime` only: the strftime format of the column's
    /// text (inferred from the first rows when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// An output node's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutputConfig {
    #[serde(default = "parquet")]
    pub format: String,
    #[serde(default)]
    pub compression: Compression,
    /// A key under `exports/`; its extension picks the format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
}

fn parquet() -> String {
    "parquet".into()
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Snappy,
    Lz4,
    Gzip,
    Brotli,
    Uncompressed,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Gzip => "gzip",
            Compression::Brotli => "brotli",
            Compression::Uncompressed => "uncompressed",
        }
    }
}
