//! A run as OpenLineage 2-0-2 RunEvents, built from its artifacts alone
//! (`metadata.json`, `lineage.json`, each output's `schema.json`).
//!
//! - The run: START at its start, then COMPLETE, FAIL or ABORT (cancelled)
//!   at its end. Job namespace `mudrock.{project}`, job name the pipeline
//!   id; inputs are the source objects read, outputs the run's outputs.
//! - Each node that ran: its own START and COMPLETE or FAIL, job name
//!   `{pipeline}.{node}`, a `parent` facet naming the run; ingestion nodes
//!   list the objects they read, output nodes the dataset they wrote. A
//!   node's run id is derived from the run id and the node id, so the same
//!   node of the same run always has the same id. Skipped nodes never
//!   started and send nothing.
//! - Datasets are named as OpenLineage's naming conventions say: an S3
//!   object is namespace `s3://{bucket}`, name its key; a file of the local
//!   store is namespace `file`, name its absolute path.
//! - Facets: `schema`, `dataSource`, `columnLineage` and
//!   `outputStatistics` on outputs, `jobType` on every job, `sql` on sql
//!   nodes, `errorMessage` on failures, `nominalTime` on scheduled runs.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::{Lineage, NodeStatus, RunMeta, RunStatus, SchemaJson};

mod datasets;
mod facets;

use datasets::{dataset, output_dataset};
pub use facets::SPEC;
use facets::{facet, producer};

/// How objects of the run's bucket are named: `(namespace, name)` of a key.
pub type Namer<'a> = dyn Fn(&str) -> (String, String) + 'a;

/// What events are built from.
pub struct RunArtifacts<'a> {
    pub meta: &'a RunMeta,
    pub lineage: Option<&'a Lineage>,
    /// Each output's `schema.json`, by output id.
    pub schemas: BTreeMap<String, SchemaJson>,
}

/// A node's run id: a UUID (version 8) from the run id and node id.
pub fn node_run_id(run_id: &str, node_id: &str) -> String {
    let h = blake3::hash(format!("{run_id}\0{node_id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    uuid::Builder::from_custom_bytes(b).into_uuid().to_string()
}

/// Every event of the run, in order: run START, each node's START and
/// end, run end.
pub fn events(a: &RunArtifacts, name: &Namer) -> Vec<Value> {
    let m = a.meta;
    let namespace = format!("mudrock.{}", m.project_id);
    let empty = Lineage::default();
    let l = a.lineage.unwrap_or(&empty);
    let sources_of = |node: Option<&str>| -> Vec<Value> {
        let mut seen = Vec::new();
        l.sources
            .iter()
            .filter(|s| node.is_none_or(|n| s.node_id == n))
            .filter(|s| {
                let new = !seen.contains(&s.object.key);
                seen.push(s.object.key.clone());
                new
            })
            .map(|s| dataset(name, &s.object.key, Value::Null))
            .collect()
    };
    let outputs_of = |node: Option<&str>| -> Vec<Value> {
        l.outputs
            .iter()
            .filter(|o| node.is_none_or(|n| o.dataframe_id == n))
            .map(|o| output_dataset(a, l, name, o))
            .collect()
    };
    let mut run_facets = json!({});
    if let Some(t) = &m.trigger.scheduled_for {
        run_facets["nominalTime"] = facet("nominalTime", json!({ "nominalStartTime": t }));
    }
    let job = |job_name: &str, job_type: &str, extra: Value| {
        let mut facets = json!({
            "jobType": facet("jobType", json!({
                "processingType": "BATCH",
                "integration": "MUDROCK",
                "jobType": job_type,
            })),
        });
        if let Value::Object(x) = extra {
            for (k, v) in x {
                facets[k] = v;
            }
        }
        json!({ "namespace": namespace, "name": job_name, "facets": facets })
    };
    let event = |kind: &str,
                 time: &str,
                 run: Value,
                 job: Value,
                 inputs: Vec<Value>,
                 outputs: Vec<Value>| {
        json!({
            "eventType": kind,
            "eventTime": time,
            "producer": producer(),
            "schemaURL": format!("{SPEC}#/$defs/RunEvent"),
            "run": run,
            "job": job,
            "inputs": inputs,
            "outputs": outputs,
        })
    };
    let pipeline_job = job(&m.pipeline_id, "PIPELINE", Value::Null);
    let mut out = vec![run_start(
        &m.project_id,
        &m.pipeline_id,
        &m.run_id,
        &m.started_at,
        m.trigger.scheduled_for.as_deref(),
    )];
    let definition_nodes = m.definition["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for n in &m.nodes {
        if !matches!(
            n.status,
            NodeStatus::Succeeded | NodeStatus::Cached | NodeStatus::Failed
        ) {
            continue;
        }
        let started = n.started_at.clone().unwrap_or_else(|| m.started_at.clone());
        let ended = plus_ms(&started, n.duration_ms.unwrap_or(0));
        let mut extra = json!({});
        if n.operator.as_deref() == Some("sql")
            && let Some(q) = definition_nodes
                .iter()
                .find(|d| d["id"] == json!(n.node_id))
                .and_then(|d| d["config"]["query"].as_str())
        {
            extra["sql"] = facet("sql", json!({ "query": q, "dialect": "polars" }));
        }
        let node_job = job(
            &format!("{}.{}", m.pipeline_id, n.node_id),
            &n.node_type.to_uppercase(),
            extra,
        );
        let mut facets = run_facets.clone();
        facets["parent"] = facet(
            "parent",
            json!({
                "run": { "runId": m.run_id },
                "job": { "namespace": namespace, "name": m.pipeline_id },
                "root": {
                    "run": { "runId": m.run_id },
                    "job": { "namespace": namespace, "name": m.pipeline_id },
                },
            }),
        );
        let (inputs, outputs) = match n.node_type.as_str() {
            "ingestion" => (sources_of(Some(&n.node_id)), Vec::new()),
            "output" => (Vec::new(), outputs_of(Some(&n.node_id))),
            _ => (Vec::new(), Vec::new()),
        };
        let run_id = node_run_id(&m.run_id, &n.node_id);
        out.push(event(
            "START",
            &started,
            json!({ "runId": run_id, "facets": facets }),
            node_job.clone(),
            inputs.clone(),
            Vec::new(),
        ));
        let mut end_facets = facets.clone();
        let kind = if n.status == NodeStatus::Failed {
            end_facets["errorMessage"] = facet(
                "errorMessage",
                json!({
                    "message": n.error.clone().unwrap_or_default(),
                    "programmingLanguage": "rust",
                }),
            );
            "FAIL"
        } else {
            "COMPLETE"
        };
        out.push(event(
            kind,
            &ended,
            json!({ "runId": run_id, "facets": end_facets }),
            node_job,
            inputs,
            outputs,
        ));
    }
    let mut end_facets = run_facets;
    let kind = match m.status {
        RunStatus::Succeeded => "COMPLETE",
        RunStatus::Cancelled => "ABORT",
        _ => {
            end_facets["errorMessage"] = facet(
                "errorMessage",
                json!({
                    "message": m.error.clone().unwrap_or_else(|| format!("run {}", m.status.name())),
                    "programmingLanguage": "rust",
                }),
            );
            "FAIL"
        }
    };
    out.push(event(
        kind,
        &m.finished_at,
        json!({ "runId": m.run_id, "facets": end_facets }),
        pipeline_job,
        sources_of(None),
        outputs_of(None),
    ));
    out
}

/// The run's START: what can be said before anything ran (sent by workers
/// as a run starts; the first of [`events`]).
pub fn run_start(
    project: &str,
    pipeline: &str,
    run_id: &str,
    started_at: &str,
    scheduled_for: Option<&str>,
) -> Value {
    bare_run_event(
        "START",
        project,
        pipeline,
        run_id,
        started_at,
        scheduled_for,
        None,
    )
}

/// A run's FAIL when it left no artifacts to build [`events`] from (the
/// engine gave up on it).
pub fn run_failed(
    project: &str,
    pipeline: &str,
    run_id: &str,
    at: &str,
    scheduled_for: Option<&str>,
    message: &str,
) -> Value {
    bare_run_event(
        "FAIL",
        project,
        pipeline,
        run_id,
        at,
        scheduled_for,
        Some(message),
    )
}

fn bare_run_event(
    kind: &str,
    project: &str,
    pipeline: &str,
    run_id: &str,
    at: &str,
    scheduled_for: Option<&str>,
    error: Option<&str>,
) -> Value {
    let mut run_facets = json!({});
    if let Some(t) = scheduled_for {
        run_facets["nominalTime"] = facet("nominalTime", json!({ "nominalStartTime": t }));
    }
    if let Some(m) = error {
        run_facets["errorMessage"] = facet(
            "errorMessage",
            json!({ "message": m, "programmingLanguage": "rust" }),
        );
    }
    json!({
        "eventType": kind,
        "eventTime": at,
        "producer": producer(),
        "schemaURL": format!("{SPEC}#/$defs/RunEvent"),
        "run": { "runId": run_id, "facets": run_facets },
        "job": {
            "namespace": format!("mudrock.{project}"),
            "name": pipeline,
            "facets": {
                "jobType": facet("jobType", json!({
                    "processingType": "BATCH",
                    "integration": "MUDROCK",
                    "jobType": "PIPELINE",
                })),
            },
        },
        "inputs": [],
        "outputs": [],
    })
}

/// An RFC 3339 time plus some milliseconds (the time itself when it does
/// not parse).
fn plus_ms(t: &str, ms: u64) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| {
            (d + chrono::Duration::milliseconds(ms as i64))
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .unwrap_or_else(|_| t.to_string())
}

/// The events of a finished run in `b`.
pub async fn for_run(
    b: &super::Bucket,
    r: &super::RunRef,
) -> Result<Vec<Value>, super::InspectError> {
    let meta = b.run(r).await?;
    let lineage: Option<Lineage> = b.json(&format!("{}lineage.json", r.prefix())).await?;
    let mut schemas = BTreeMap::new();
    for o in b.outputs(r).await? {
        let key = format!("{}outputs/{o}/schema.json", r.prefix());
        if let Some(s) = b.json::<SchemaJson>(&key).await? {
            schemas.insert(o, s);
        }
    }
    let store = b.store.clone();
    let bucket = b.name.clone();
    let namer = move |key: &str| match store.local_path(&bucket, key) {
        Some(p) => {
            let p = std::path::absolute(&p).unwrap_or(p);
            ("file".to_string(), p.display().to_string())
        }
        None => (format!("s3://{bucket}"), key.to_string()),
    };
    Ok(events(
        &RunArtifacts {
            meta: &meta,
            lineage: lineage.as_ref(),
            schemas,
        },
        &namer,
    ))
}
