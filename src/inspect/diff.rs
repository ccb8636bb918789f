//! `inspect diff RUN_A RUN_B`: what changed between two runs — nodes added,
//! removed or reconfigured in the definition, nodes whose cache key moved,
//! and per output: schema changes, row counts, whether the data is the
//! same (blake3 of `data.parquet`), and for a changed output with a key a
//! row diff (rows added, removed, changed by that key; the first N each).
//! Runs of different pipelines may be compared; the diff says so.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::{Bucket, InspectError, RunRef};
use crate::model::RunMeta;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDiff {
    pub a: String,
    pub b: String,
    /// Set when the runs belong to different pipelines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub nodes_added: Vec<String>,
    pub nodes_removed: Vec<String>,
    /// Nodes whose config (or type, or inputs) changed.
    pub nodes_changed: Vec<String>,
    /// Nodes in both whose cache key differs: what had to be recomputed.
    pub cache_keys_changed: Vec<String>,
    pub outputs: Vec<OutputDiff>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputDiff {
    pub output: String,
    pub rows_a: Option<u64>,
    pub rows_b: Option<u64>,
    /// Same bytes in both runs.
    pub identical: bool,
    pub columns_added: Vec<String>,
    pub columns_removed: Vec<String>,
    /// `name: a-type → b-type`.
    pub columns_retyped: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowDiff>,
    /// Why there is no row diff for a changed output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_note: Option<String>,
}

/// Rows by key: counts, and the first N of each as JSON objects.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowDiff {
    pub key: Vec<String>,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub added_rows: Value,
    pub removed_rows: Value,
    /// Changed rows as they are in B, with A's values as `{column}_a`.
    pub changed_rows: Value,
}

fn nodes(m: &RunMeta) -> BTreeMap<String, Value> {
    m.definition["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["id"].as_str()?.to_string(), n.clone())))
        .collect()
}

/// What decides a node's behaviour (not its name or editor position).
fn behaviour(n: &Value) -> Value {
    serde_json::json!([n["nodeType"], n["config"], n["dependencies"]])
}

/// The output's columns and their types from `schema.json`.
fn columns(schema: &Value) -> BTreeMap<String, String> {
    schema["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let dtype = c["dtype"]
                .as_str()
                .map_or_else(|| c["dtype"].to_string(), str::to_string);
            Some((c["name"].as_str()?.to_string(), dtype))
        })
        .collect()
}

/// Compares two runs; `key` names the columns rows are matched by, `show`
/// how many rows of each kind to list.
pub async fn diff(
    bucket: &Bucket,
    a: &RunRef,
    b: &RunRef,
    key: &[String],
    show: usize,
) -> Result<RunDiff, InspectError> {
    let (ma, mb) = (bucket.run(a).await?, bucket.run(b).await?);
    let mut d = RunDiff {
        a: a.run_id.clone(),
        b: b.run_id.clone(),
        ..Default::default()
    };
    if a.pipeline_id != b.pipeline_id {
        d.note = Some(format!(
            "the runs belong to different pipelines ({} and {})",
            a.pipeline_id, b.pipeline_id
        ));
    }
    let (na, nb) = (nodes(&ma), nodes(&mb));
    d.nodes_added = nb
        .keys()
        .filter(|k| !na.contains_key(*k))
        .cloned()
        .collect();
    d.nodes_removed = na
        .keys()
        .filter(|k| !nb.contains_key(*k))
        .cloned()
        .collect();
    d.nodes_changed = na
        .iter()
        .filter(|(k, v)| nb.get(*k).is_some_and(|w| behaviour(v) != behaviour(w)))
        .map(|(k, _)| k.clone())
        .collect();
    let keys_b: BTreeMap<&str, &Option<String>> = mb
        .nodes
        .iter()
        .map(|n| (n.node_id.as_str(), &n.cache_key))
        .collect();
    d.cache_keys_changed = ma
        .nodes
        .iter()
        .filter(|n| {
            keys_b
                .get(n.node_id.as_str())
                .is_some_and(|k| **k != n.cache_key)
        })
        .map(|n| n.node_id.clone())
        .collect();
    let outs: BTreeSet<String> = bucket
        .outputs(a)
        .await?
        .into_iter()
        .chain(bucket.outputs(b).await?)
        .collect();
    for o in outs {
        d.outputs.push(output(bucket, a, b, &o, key, show).await?);
    }
    Ok(d)
}

async fn output(
    bucket: &Bucket,
    a: &RunRef,
    b: &RunRef,
    o: &str,
    key: &[String],
    show: usize,
) -> Result<OutputDiff, InspectError> {
    let dir = |r: &RunRef| format!("{}outputs/{o}/", r.prefix());
    let meta_a: Option<Value> = bucket.json(&format!("{}metadata.json", dir(a))).await?;
    let meta_b: Option<Value> = bucket.json(&format!("{}metadata.json", dir(b))).await?;
    let schema_a: Value = bucket
        .json(&format!("{}schema.json", dir(a)))
        .await?
        .unwrap_or_default();
    let schema_b: Value = bucket
        .json(&format!("{}schema.json", dir(b)))
        .await?
        .unwrap_or_default();
    let (ca, cb) = (columns(&schema_a), columns(&schema_b));
    let mut out = OutputDiff {
        output: o.to_string(),
        rows_a: meta_a.as_ref().and_then(|m| m["rows"].as_u64()),
        rows_b: meta_b.as_ref().and_then(|m| m["rows"].as_u64()),
        identical: matches!((&meta_a, &meta_b), (Some(x), Some(y))
            if x["blake3"].is_string() && x["blake3"] == y["blake3"]),
        columns_added: cb
            .keys()
            .filter(|k| !ca.contains_key(*k))
            .cloned()
            .collect(),
        columns_removed: ca
            .keys()
            .filter(|k| !cb.contains_key(*k))
            .cloned()
            .collect(),
        columns_retyped: ca
            .iter()
            .filter_map(|(k, t)| {
                cb.get(k)
                    .filter(|u| *u != t)
                    .map(|u| format!("{k}: {t} → {u}"))
            })
            .collect(),
        rows: None,
        rows_note: None,
    };
    if out.identical || key.is_empty() || meta_a.is_none() || meta_b.is_none() {
        return Ok(out);
    }
    for k in key {
        match (ca.contains_key(k), cb.contains_key(k)) {
            (true, true) => {}
            // Not this output's key: no row diff, said so.
            (false, false) => {
                out.rows_note = Some(format!("no row diff: output \"{o}\" has no column \"{k}\""));
                return Ok(out);
            }
            (in_a, _) => {
                let (run, cols) = if in_a {
                    (&b.run_id, &cb)
                } else {
                    (&a.run_id, &ca)
                };
                return Err(InspectError::Data(format!(
                    "key column \"{k}\" is in only one side of output \"{o}\": run {run} does not have it (it has: {})",
                    cols.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
    }
    let fa = bucket
        .local_copy(&format!("{}data.parquet", dir(a)))
        .await?;
    let fb = bucket
        .local_copy(&format!("{}data.parquet", dir(b)))
        .await?;
    let (pa, pb) = (fa.path().to_path_buf(), fb.path().to_path_buf());
    let key = key.to_vec();
    let common: Vec<String> = ca
        .keys()
        .filter(|c| cb.contains_key(*c) && !key.contains(c))
        .cloned()
        .collect();
    out.rows = Some(
        tokio::task::spawn_blocking(move || rows(&pa, &pb, &key, &common, show))
            .await
            .map_err(|e| InspectError::Data(e.to_string()))?
            .map_err(|e| InspectError::Data(format!("comparing output \"{o}\": {e}")))?,
    );
    Ok(out)
}

fn scan(p: &std::path::Path) -> PolarsResult<LazyFrame> {
    crate::parquet_scan::scan(p)
}

fn to_json(mut df: DataFrame) -> PolarsResult<Value> {
    let mut buf = Vec::new();
    JsonWriter::new(&mut buf)
        .with_json_format(JsonFormat::Json)
        .finish(&mut df)?;
    Ok(serde_json::from_slice(&buf).unwrap_or(Value::Null))
}

/// The keyed row diff (blocking: Polars).
fn rows(
    a: &std::path::Path,
    b: &std::path::Path,
    key: &[String],
    common: &[String],
    show: usize,
) -> PolarsResult<RowDiff> {
    let on: Vec<Expr> = key.iter().map(|k| col(k.as_str())).collect();
    let join = |how: JoinType| JoinArgs::new(how).with_suffix(Some("_a".into()));
    let added = scan(b)?.join(scan(a)?, on.clone(), on.clone(), join(JoinType::Anti));
    let removed = scan(a)?.join(scan(b)?, on.clone(), on.clone(), join(JoinType::Anti));
    let any_change = common
        .iter()
        .map(|c| col(c.as_str()).neq_missing(col(format!("{c}_a").as_str())))
        .reduce(|x, y| x.or(y))
        .unwrap_or(lit(false));
    let changed = scan(b)?
        .join(scan(a)?, on.clone(), on, join(JoinType::Inner))
        .filter(any_change);
    let count = |lf: LazyFrame| -> PolarsResult<usize> {
        let df = lf.select([len().alias("n")]).collect()?;
        Ok(df.column("n")?.get(0)?.extract::<usize>().unwrap_or(0))
    };
    Ok(RowDiff {
        key: key.to_vec(),
        added: count(added.clone())?,
        removed: count(removed.clone())?,
        changed: count(changed.clone())?,
        added_rows: to_json(added.limit(show as IdxSize).collect()?)?,
        removed_rows: to_json(removed.limit(show as IdxSize).collect()?)?,
        changed_rows: to_json(changed.limit(show as IdxSize).collect()?)?,
    })
}
