//! Inspecting what runs left in a bucket, with no database: the store is
//! the record (storage.md). Lists pipelines and runs, reads a run (an
//! incomplete one — no commit marker, or `running` — is said to be so,
//! never shown as finished), an output's schema and first rows, and
//! compares two runs ([`diff`]) and draws them ([`picture`]). Shared by
//! `mudrock inspect` and usable by the API. Damaged artifacts are reported
//! by file, never a panic.

pub mod diff;
pub mod openlineage;
pub mod picture;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::{RunMeta, RunStatus};
use crate::store::{ObjectStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("bucket \"{0}\" does not exist")]
    NoBucket(String),
    #[error("no run {0} in this bucket")]
    NoRun(String),
    #[error("run {run} is incomplete: {reason}")]
    Incomplete { run: String, reason: String },
    #[error("{file} is damaged: {reason}")]
    Damaged { file: String, reason: String },
    #[error("run {run} has no output \"{output}\" (it has: {have})")]
    NoOutput {
        run: String,
        output: String,
        have: String,
    },
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Store(StoreError),
}

impl InspectError {
    /// The CLI's exit code: 2 for what the operator asked for (a run that
    /// is not there, a damaged file), 3 when the store failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            InspectError::Store(_) => 3,
            _ => 2,
        }
    }
}

fn store_err(bucket: &str, e: StoreError) -> InspectError {
    match e {
        StoreError::NoSuchBucket(_) => InspectError::NoBucket(bucket.to_string()),
        other => InspectError::Store(other),
    }
}

/// Where a run's files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRef {
    pub pipeline_id: String,
    pub run_id: String,
}

impl RunRef {
    pub fn prefix(&self) -> String {
        format!("pipelines/{}/runs/{}/", self.pipeline_id, self.run_id)
    }
}

/// What a bucket holds: a store and a bucket name.
#[derive(Clone)]
pub struct Bucket {
    pub store: Arc<dyn ObjectStore>,
    pub name: String,
}

/// One run in a listing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub pipeline_id: String,
    pub run_id: String,
    /// succeeded, failed, cancelled, or `incomplete`.
    pub status: String,
    pub trigger: Option<String>,
    pub started_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub nodes_cached: usize,
    pub nodes_total: usize,
    /// Why it is incomplete or could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Bucket {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, InspectError> {
        Ok(self
            .store
            .list(&self.name, prefix)
            .await
            .map_err(|e| store_err(&self.name, e))?
            .into_iter()
            .map(|m| m.key)
            .collect())
    }

    pub async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>, InspectError> {
        match self.store.get(&self.name, key).await {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(&self.name, e)),
        }
    }

    /// A JSON artifact, or why not.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, InspectError> {
        let Some(b) = self.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| InspectError::Damaged {
                file: key.to_string(),
                reason: e.to_string(),
            })
    }

    /// The pipelines with runs, and how many runs each has.
    pub async fn pipelines(&self) -> Result<BTreeMap<String, usize>, InspectError> {
        let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for key in self.list("pipelines/").await? {
            let parts: Vec<&str> = key.split('/').collect();
            if let ["pipelines", pl, "runs", run, ..] = parts.as_slice() {
                out.entry(pl.to_string())
                    .or_default()
                    .insert(run.to_string());
            }
        }
        Ok(out.into_iter().map(|(k, v)| (k, v.len())).collect())
    }

    /// Finds a run by id (under one pipeline when given).
    pub async fn find(&self, run: &str, pipeline: Option<&str>) -> Result<RunRef, InspectError> {
        let prefix = match pipeline {
            Some(p) => format!("pipelines/{p}/runs/{run}/"),
            None => "pipelines/".to_string(),
        };
        for key in self.list(&prefix).await? {
            let parts: Vec<&str> = key.split('/').collect();
            if let ["pipelines", pl, "runs", r, ..] = parts.as_slice()
                && *r == run
            {
                return Ok(RunRef {
                    pipeline_id: pl.to_string(),
                    run_id: run.to_string(),
                });
            }
        }
        Err(InspectError::NoRun(run.to_string()))
    }

    /// A pipeline's runs, newest first (by start time).
    pub async fn runs(&self, pipeline: &str) -> Result<Vec<RunSummary>, InspectError> {
        let mut ids = std::collections::BTreeSet::new();
        for key in self.list(&format!("pipelines/{pipeline}/runs/")).await? {
            if let ["pipelines", _, "runs", r, ..] = key.split('/').collect::<Vec<_>>().as_slice() {
                ids.insert(r.to_string());
            }
        }
        let mut out = Vec::new();
        for run_id in ids {
            let r = RunRef {
                pipeline_id: pipeline.to_string(),
                run_id: run_id.clone(),
            };
            out.push(match self.run(&r).await {
                Ok(m) => RunSummary {
                    pipeline_id: pipeline.to_string(),
                    run_id,
                    status: m.status.name().to_string(),
                    trigger: Some(m.trigger.kind.clone()),
                    started_at: Some(m.started_at.clone()),
                    duration_ms: Some(m.duration_ms),
                    nodes_cached: m.nodes.iter().filter(|n| n.cache_hit).count(),
                    nodes_total: m.nodes.len(),
                    note: None,
                },
                Err(e) => RunSummary {
                    pipeline_id: pipeline.to_string(),
                    run_id,
                    status: "incomplete".into(),
                    trigger: None,
                    started_at: None,
                    duration_ms: None,
                    nodes_cached: 0,
                    nodes_total: 0,
                    note: Some(e.to_string()),
                },
            });
        }
        out.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then(b.run_id.cmp(&a.run_id))
        });
        Ok(out)
    }

    /// A finished run's metadata; an incomplete run is an error saying so.
    pub async fn run(&self, r: &RunRef) -> Result<RunMeta, InspectError> {
        let key = format!("{}metadata.json", r.prefix());
        match self.json::<RunMeta>(&key).await? {
            None => Err(InspectError::Incomplete {
                run: r.run_id.clone(),
                reason: "it has no metadata.json (its commit marker): it is running, or died"
                    .into(),
            }),
            Some(m) if m.status == RunStatus::Running || m.status == RunStatus::Queued => {
                Err(InspectError::Incomplete {
                    run: r.run_id.clone(),
                    reason: format!("its metadata.json says {}", m.status.name()),
                })
            }
            Some(m) => Ok(m),
        }
    }
}

/// An output of a run: its metadata, schema and first rows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputView {
    pub output: String,
    pub metadata: serde_json::Value,
    pub schema: serde_json::Value,
    pub rows: serde_json::Value,
}

impl Bucket {
    /// The output ids of a finished run.
    pub async fn outputs(&self, r: &RunRef) -> Result<Vec<String>, InspectError> {
        let mut out = std::collections::BTreeSet::new();
        for key in self.list(&format!("{}outputs/", r.prefix())).await? {
            if let Some(rest) = key.strip_prefix(&format!("{}outputs/", r.prefix()))
                && let Some((id, _)) = rest.split_once('/')
            {
                out.insert(id.to_string());
            }
        }
        Ok(out.into_iter().collect())
    }

    /// An output's metadata, schema and first `rows` rows (at most
    /// [`crate::outputs::MAX_PREVIEW_CELL_CHARS`] characters per cell).
    pub async fn output(
        &self,
        r: &RunRef,
        output: &str,
        rows: usize,
    ) -> Result<OutputView, InspectError> {
        self.run(r).await?;
        let dir = format!("{}outputs/{output}/", r.prefix());
        let Some(metadata) = self
            .json::<serde_json::Value>(&format!("{dir}metadata.json"))
            .await?
        else {
            return Err(InspectError::NoOutput {
                run: r.run_id.clone(),
                output: output.to_string(),
                have: self.outputs(r).await?.join(", "),
            });
        };
        let schema = self
            .json::<serde_json::Value>(&format!("{dir}schema.json"))
            .await?
            .unwrap_or(serde_json::Value::Null);
        let file = self.local_copy(&format!("{dir}data.parquet")).await?;
        let path = file.path().to_path_buf();
        let key = format!("{dir}data.parquet");
        let rows = tokio::task::spawn_blocking(move || crate::outputs::preview(&path, rows))
            .await
            .map_err(|e| InspectError::Data(e.to_string()))?
            .map_err(|reason| InspectError::Damaged { file: key, reason })?;
        Ok(OutputView {
            output: output.to_string(),
            metadata,
            schema,
            rows,
        })
    }

    /// A local file holding an object: the file itself on a local store,
    /// a downloaded copy otherwise (deleted with the guard).
    pub async fn local_copy(&self, key: &str) -> Result<LocalCopy, InspectError> {
        if let Some(p) = self.store.local_path(&self.name, key) {
            if !p.exists() {
                return Err(InspectError::Damaged {
                    file: key.to_string(),
                    reason: "it is missing".into(),
                });
            }
            return Ok(LocalCopy::Store(p));
        }
        let tmp = tempfile::NamedTempFile::new().map_err(|e| InspectError::Data(e.to_string()))?;
        crate::store::download(self.store.as_ref(), &self.name, key, Some(tmp.path()))
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => InspectError::Damaged {
                    file: key.to_string(),
                    reason: "it is missing".into(),
                },
                other => store_err(&self.name, other),
            })?;
        Ok(LocalCopy::Temp(tmp))
    }
}

/// See [`Bucket::local_copy`].
pub enum LocalCopy {
    Store(std::path::PathBuf),
    Temp(tempfile::NamedTempFile),
}

impl LocalCopy {
    pub fn path(&self) -> &std::path::Path {
        match self {
            LocalCopy::Store(p) => p,
            LocalCopy::Temp(t) => t.path(),
        }
    }
}
