//! The records a run leaves in the bucket, as the storage spec names them:
//! `schema.json`, a dataframe's and the run's `metadata.json`, node records
//! and statuses, triggers and `lineage.json`.
//!
//! Every JSON file is camelCase, pretty-printed, with a stable key order
//! (struct order here). Plain data: no I/O, no engine.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The format version every artifact mudrock writes carries
/// (`formatVersion`); files written before it existed read as 1.
pub const FORMAT_VERSION: u32 = 1;

pub fn format_version() -> u32 {
    FORMAT_VERSION
}

/// `schema.json`: ordered columns plus Arrow's own schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaJson {
    /// Version of this file's format (bumped when a field changes meaning
    /// or goes away; new optional fields do not bump it).
    #[serde(default = "format_version")]
    pub format_version: u32,
    pub columns: Vec<ColumnJson>,
    /// The schema as arrow-rs reads it back from `data.parquet`, in
    /// arrow-schema's serde form.
    pub arrow: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ColumnJson {
    pub name: String,
    pub dtype: String,
    pub nullable: bool,
    /// Nulls actually present in this output.
    pub null_count: u64,
}

/// A copy written to `exports/` by an output node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    pub key: String,
    pub format: String,
    pub bytes: u64,
    pub blake3: String,
    /// File name inside the cache entry that holds the same bytes.
    pub cache_file: String,
}

/// A dataframe's `metadata.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataframeMeta {
    /// Version of this file's format (bumped when a field changes meaning
    /// or goes away; new optional fields do not bump it).
    #[serde(default = "format_version")]
    pub format_version: u32,
    pub dataframe_id: String,
    pub node_id: String,
    pub run_id: String,
    pub rows: u64,
    pub bytes: u64,
    pub blake3: String,
    pub cache_key: Option<String>,
    pub created_at: String,
    pub compression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportRecord>,
}

/// Per-node record in the run's `metadata.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub node_id: String,
    pub name: String,
    pub node_type: String,
    pub operator: Option<String>,
    pub status: NodeStatus,
    /// Skip reason (`condition_false`, `upstream_failed`, ...) or failure kind.
    pub reason: Option<String>,
    pub cache_key: Option<String>,
    pub cache_hit: bool,
    pub started_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// None where the node was fused into a downstream node's plan and
    /// never materialised on its own.
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub error: Option<String>,
    /// Set on failures: whether an error edge handled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled: Option<bool>,
    /// Computed in one query with this fan-out source and its other
    /// consumers (one shared scan); its time is counted on the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_with: Option<String>,
}

/// A node's state; the PostgreSQL enum `node_status`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[cfg_attr(feature = "service", derive(sqlx::Type))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "service",
    sqlx(type_name = "node_status", rename_all = "lowercase")
)]
pub enum NodeStatus {
    Pending,
    Running,
    Succeeded,
    Cached,
    Failed,
    Skipped,
}

impl NodeStatus {
    pub fn name(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Running => "running",
            NodeStatus::Succeeded => "succeeded",
            NodeStatus::Cached => "cached",
            NodeStatus::Failed => "failed",
            NodeStatus::Skipped => "skipped",
        }
    }

    /// Whether downstream nodes get data from it.
    pub fn has_data(self) -> bool {
        matches!(self, NodeStatus::Succeeded | NodeStatus::Cached)
    }
}

/// A run's state; the PostgreSQL enum `run_status`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[cfg_attr(feature = "service", derive(sqlx::Type))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "service",
    sqlx(type_name = "run_status", rename_all = "lowercase")
)]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the run is over (succeeded, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// What started a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// `api` | `schedule` | `backfill` | `cli` | `retry`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// The nominal fire time of a scheduled or backfill run (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    pub host: String,
    pub version: String,
}

/// A failure that an error edge handled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandledFailure {
    pub node_id: String,
    pub error_kind: String,
    pub message: String,
    pub handled_by: Vec<String>,
}

/// The run's `metadata.json`: written last, the commit marker.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunMeta {
    /// Version of this file's format (bumped when a field changes meaning
    /// or goes away; new optional fields do not bump it).
    #[serde(default = "format_version")]
    pub format_version: u32,
    pub run_id: String,
    pub pipeline_id: String,
    pub project_id: String,
    pub pipeline_version: Option<String>,
    pub definition_hash: String,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub attempt: u32,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub worker: WorkerInfo,
    pub engine: BTreeMap<String, String>,
    pub error: Option<String>,
    pub handled_failures: Vec<HandledFailure>,
    pub nodes: Vec<NodeRecord>,
    pub definition: Value,
}

/// `lineage.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lineage {
    /// Version of this file's format (bumped when a field changes meaning
    /// or goes away; new optional fields do not bump it).
    #[serde(default = "format_version")]
    pub format_version: u32,
    pub run_id: String,
    pub pipeline_id: String,
    /// Edges data went along (an error edge: its source failed).
    pub edges: Vec<LineageEdge>,
    /// Every other edge, with why nothing went along it.
    #[serde(default)]
    pub edges_not_taken: Vec<SkippedEdge>,
    pub sources: Vec<LineageSource>,
    pub outputs: Vec<LineageOutput>,
}

/// An edge no data went along.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedEdge {
    pub edge_id: String,
    pub source: String,
    pub target: String,
    pub edge_type: String,
    /// `condition_false`, `condition_error`, `no_error` (an error edge whose
    /// source succeeded), `source_failed`, `source_skipped`, or the
    /// target's skip reason (`not_connected`, `cancelled`, ...).
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineageEdge {
    pub edge_id: String,
    pub source: String,
    pub target: String,
    pub edge_type: String,
    pub source_cache_key: Option<String>,
    pub target_cache_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineageSource {
    pub node_id: String,
    #[serde(flatten)]
    pub object: SourceObject,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineageOutput {
    pub dataframe_id: String,
    pub path: String,
    pub rows: u64,
    pub blake3: String,
    /// Column lineage: each column of the output, in order, with the source
    /// columns it derives from. Absent when it could not be told (a cache
    /// entry written before mudrock recorded columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnLineage>>,
}

/// One output column's origins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ColumnLineage {
    pub name: String,
    /// Sorted by node then column; empty for a column made from nothing
    /// read (a constant, `count(*)`, an error edge's fields).
    pub sources: Vec<SourceColumn>,
}

/// A column of an ingestion node, and how an output column derives from it
/// along the whole path (the strongest step: copy < transformation <
/// aggregation).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceColumn {
    pub node_id: String,
    pub column: String,
    pub derivation: mudrock_operators::Derivation,
}

/// Pretty JSON with a trailing newline.
pub fn to_json<T: Serialize>(v: &T) -> bytes::Bytes {
    let mut out = serde_json::to_vec_pretty(v).expect("artifact types serialise");
    out.push(b'\n');
    bytes::Bytes::from(out)
}

/// A source object as hashed for the key and recorded in lineage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceObject {
    pub key: String,
    pub size: u64,
    pub version: String,
    pub blake3: String,
}
