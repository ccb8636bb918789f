//! `mudrock plan`: the order nodes run in, which would come from the cache,
//! and every output's schema, resolved from the lazy plan without running.
//!
//! The same pass gives `validate --store` its data-aware checks: unknown
//! columns and type clashes are found here, with the node and field.

use std::collections::HashMap;

use mudrock_operators::Input;
use polars::prelude::*;
use serde::Serialize;

use super::build::{build_node, error_frame};
use super::{RunOptions, ingest, prepare};
use crate::artifacts::columns_of;
use crate::cache;
use crate::error::{EngineError, NodeError, NodeErrorKind};
use crate::model::ColumnJson;
use crate::model::pipeline::{EdgeKind, NodeKind, Pipeline};
use crate::store::ObjectMeta;
use crate::store::ObjectStore;
use crate::validate::{Diagnostic, Severity};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedNode {
    pub node_id: String,
    pub node_type: String,
    pub operator: Option<String>,
    /// Collected (and cached) rather than fused into its consumer.
    pub materialized: bool,
    pub cache_key: Option<String>,
    /// A verified cache entry exists for this key.
    pub cache_hit: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedOutput {
    pub node_id: String,
    pub columns: Vec<ColumnJson>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    pub pipeline_id: String,
    pub order: Vec<PlannedNode>,
    pub outputs: Vec<PlannedOutput>,
    pub problems: Vec<Diagnostic>,
}

/// Plans a run without executing it.
pub async fn plan(
    store: &dyn ObjectStore,
    pipeline: std::sync::Arc<Pipeline>,
    opts: &RunOptions,
) -> Result<PlanReport, EngineError> {
    store.create_bucket(&opts.bucket).await?;
    // Remote CSV and JSON sources are downloaded to infer their schema.
    let scratch = tempfile::Builder::new()
        .prefix("mudrock-plan-")
        .tempdir()
        .map_err(|e| EngineError::Internal(format!("scratch dir: {e}")))?;
    let budget = super::scratch::ScratchBudget::new(opts.limits.max_scratch_bytes);
    let files = ingest::SourceFiles::new(scratch.path().to_path_buf(), budget.into());
    let prep = prepare(store, opts, &pipeline, &files).await?;
    let mut order = Vec::new();
    for &i in &prep.order {
        let node = &pipeline.nodes[i];
        let mut hit = false;
        if prep.mat[i] && prep.entry[i] {
            if let Some(k) = &prep.keys[i] {
                hit = cache::lookup(store, &opts.bucket, &opts.pipeline_id, k)
                    .await
                    .is_some();
            }
        }
        order.push(PlannedNode {
            node_id: node.id.clone(),
            node_type: node.node_type().into(),
            operator: node.operator_name().map(str::to_string),
            materialized: prep.mat[i],
            cache_key: prep.keys[i].clone(),
            cache_hit: hit,
            skip: node.not_connected.then(|| "not_connected".to_string()),
        });
    }
    // Fused nodes come from the cache when their unit's root does.
    let hits: HashMap<String, bool> = order
        .iter()
        .map(|n| (n.node_id.clone(), n.cache_hit))
        .collect();
    for n in &mut order {
        let i = pipeline
            .nodes
            .iter()
            .position(|x| x.id == n.node_id)
            .unwrap();
        n.cache_hit = hits[&pipeline.nodes[prep.unit_of[i]].id];
    }

    let mut data = HashMap::new();
    let mut problems = Vec::new();
    for (i, src) in prep.sources.iter().enumerate() {
        match src {
            Some(Ok(objs)) => {
                let metas: Vec<_> = objs.iter().map(|(_, o)| ObjectMeta::from(o)).collect();
                let node = &pipeline.nodes[i];
                let parquet = matches!(&node.kind, NodeKind::Ingestion(c) if c.effective_format() == Some(crate::model::pipeline::Format::Parquet));
                let remote = metas
                    .first()
                    .is_some_and(|m| store.local_path(&opts.bucket, &m.key).is_none());
                let fetched = if parquet && remote {
                    // Planning needs the schema, not the data: read footers.
                    ingest::parquet_schema(store, &opts.bucket, &metas[0])
                        .await
                        .map(|s| ingest::SourceData::Schema(Arc::new(s)))
                } else {
                    ingest::fetch(store, &opts.bucket, &metas, &files).await
                };
                match fetched {
                    Ok(d) => {
                        data.insert(i, d);
                    }
                    Err(e) => problems.push(problem(&pipeline, i, &e)),
                }
            }
            Some(Err(e)) => problems.push(problem(&pipeline, i, e)),
            None => {}
        }
    }
    let p = pipeline.clone();
    let prep_order = prep.order.clone();
    let limits = opts.limits.ops;
    let (outputs, more) =
        tokio::task::spawn_blocking(move || schemas(&p, &prep_order, &data, &limits))
            .await
            .map_err(|e| EngineError::Internal(format!("plan task: {e}")))?;
    problems.extend(more);
    Ok(PlanReport {
        pipeline_id: opts.pipeline_id.clone(),
        order,
        outputs,
        problems,
    })
}

fn problem(p: &Pipeline, i: usize, e: &NodeError) -> Diagnostic {
    let node = &p.nodes[i];
    Diagnostic {
        severity: Severity::Error,
        path: e
            .path
            .clone()
            .unwrap_or_else(|| format!("{}.config", node.path)),
        node: Some(node.id.clone()),
        edge: None,
        message: e.message.clone(),
        hint: None,
    }
}

/// Builds every node lazily and resolves schemas.
fn schemas(
    p: &Pipeline,
    order: &[usize],
    data: &HashMap<usize, ingest::SourceData>,
    limits: &mudrock_operators::Limits,
) -> (Vec<PlannedOutput>, Vec<Diagnostic>) {
    let mut frames: HashMap<usize, (LazyFrame, SchemaRef)> = HashMap::new();
    // One pair of plan arenas for every node (see `build::SchemaOf`).
    let (mut lp_arena, mut expr_arena) = (Default::default(), Default::default());
    let mut schema_of = |lf: &mut LazyFrame| lf.schema_with_arenas(&mut lp_arena, &mut expr_arena);
    let mut problems = Vec::new();
    let mut outputs = Vec::new();
    let sample_err = NodeError::new(NodeErrorKind::Data, "");
    for &i in order {
        let node = &p.nodes[i];
        if node.not_connected {
            continue;
        }
        let mut inputs = Vec::new();
        let mut missing = false;
        for e in p.inputs(i) {
            let name = p.nodes[e.source].id.clone();
            if e.kind == EdgeKind::Error {
                let df = error_frame("", &p.nodes[e.source], &sample_err, "");
                inputs.push(Input {
                    name,
                    schema: df.schema().clone(),
                    frame: df.lazy(),
                });
            } else if let Some((lf, s)) = frames.get(&e.source) {
                inputs.push(Input {
                    name,
                    frame: lf.clone(),
                    schema: s.clone(),
                });
            } else {
                missing = true;
            }
        }
        if missing || (matches!(node.kind, NodeKind::Ingestion(_)) && !data.contains_key(&i)) {
            continue;
        }
        match build_node(node, inputs, data.get(&i), &mut schema_of, limits) {
            Ok((lf, schema)) => {
                if matches!(node.kind, NodeKind::Output(_)) {
                    outputs.push(PlannedOutput {
                        node_id: node.id.clone(),
                        columns: columns_of(&schema),
                    });
                }
                frames.insert(i, (lf, schema));
            }
            Err(e) => problems.push(problem(p, i, &e)),
        }
    }
    (outputs, problems)
}
