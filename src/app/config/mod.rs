//! Layered configuration: built-in defaults, then a TOML file, then
//! `MUDROCK_*` environment variables (sections and keys joined by `__`:
//! `MUDROCK_STORE__KIND=s3`, `MUDROCK_STORE__S3__ENDPOINT=http://...`).
//!
//! ```toml
//! [store]
//! kind = "s3"                # or "local" (default)
//! dir = "mudrock-data"       # local: one folder per bucket
//! bucket_prefix = "project-" # bucket of project P: "{bucket_prefix}{P}"
//! [store.s3]
//! endpoint = "http://127.0.0.1:9000"
//! region = "us-east-1"
//! access_key_id = "..."      # else the usual AWS credential chain
//! secret_access_key = "..."
//! force_path_style = true
//! checksums_when_required = true
//! part_size = 16777216
//! [store.retry]
//! min_delay_ms = 100
//! max_delay_ms = 5000
//! budget_ms = 60000
//! [engine]
//! concurrency = 4
//! streaming = "auto"         # Polars engine per unit: "auto", "always", "never"
//! streaming_above_mb = 2048  # auto: units whose sources exceed this stream
//! max_pivot_columns = 1000   # run limits: a node over one fails naming it
//! max_join_rows = 100000000
//! max_glob_matches = 10000
//! max_scratch_mb = 51200
//! scratch_dir = "..."        # default: {store.dir}/.scratch, or $TMPDIR/mudrock-scratch on S3
//! [limits]                   # document limits, checked by validate
//! max_definition_kb = 1024
//! max_nodes = 1000
//! max_edges = 5000
//! max_expression_chars = 10000
//! [sandbox]                  # Landlock (Linux): see sandbox.rs
//! enabled = true
//! extra_read = []            # more paths the process may read
//! [worker]                   # `mudrock worker` (see worker.rs)
//! concurrency = 2            # runs at once
//! heartbeat_ms = 5000
//! missed_heartbeats = 3      # lease = heartbeat_ms × missed_heartbeats
//! poll_ms = 1000
//! shutdown_grace_seconds = 30
//! max_attempts = 5
//! defer_ms = 2000
//! [worker.retry]
//! min_delay_ms = 500
//! max_delay_ms = 30000
//! budget_ms = 300000
//! [api]                      # `mudrock serve` (see api/config.rs)
//! listen = "127.0.0.1:8080"
//! max_body_kb = 2048
//! request_timeout_secs = 30
//! max_page = 100
//! max_preview_rows = 1000
//! rate_limit_per_minute = 0  # per user; 0 = off
//! [gc]                       # retention: `mudrock gc`, and serve every interval
//! interval_minutes = 60      # 0: serve does not collect
//! cache_unused_days = 30     # where a project's retention does not say
//! temp_max_age_hours = 24
//! deleted_project_grace_days = 7  # a deleted project's bucket is purged after this
//! [lineage]                  # OpenLineage events of finished runs
//! url = "http://marquez:5000/api/v1/lineage"   # none: no events
//! api_key = "..."            # sent as a bearer token
//! timeout_ms = 5000
//! [api.jwt]
//! hs256_secret = "..."       # and/or jwks_file / pem_file (ES256, RS256)
//! audience = ["authenticated"]
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

pub use crate::engine::EngineConfig;
pub use crate::service::worker::{WorkerConfig, WorkerSettings};
pub use crate::store::{StoreConfig, StoreKind};

use crate::store::{LocalStore, ObjectStore, RetryingStore, S3Store, StoreError};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub store: StoreConfig,
    pub engine: EngineConfig,
    pub limits: crate::limits::DocLimits,
    pub sandbox: crate::sandbox::SandboxConfig,
    pub worker: WorkerConfig,
    pub api: crate::api::config::ApiConfig,
    pub scheduler: crate::service::scheduler::SchedulerConfig,
    pub lineage: crate::service::lineage_sink::LineageConfig,
    pub gc: crate::service::gc::GcConfig,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Defaults, then `file` (or `mudrock.toml` in the working directory if
    /// it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) if !f.exists() => {
                return Err(ConfigError(format!("{} does not exist", f.display())));
            }
            Some(f) => fig = fig.merge(Toml::file(f)),
            None if Path::new("mudrock.toml").exists() => {
                fig = fig.merge(Toml::file("mudrock.toml"))
            }
            None => {}
        }
        Self::with_env(fig)
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }

    fn with_env(fig: Figment) -> Figment {
        // Only the config's own sections: other MUDROCK_* variables (like
        // MUDROCK_PROJECT) belong to the command line.
        fig.merge(
            Env::prefixed("MUDROCK_")
                .split("__")
                // Filters see keys after the split, before lowercasing:
                // `STORE.S3.ENDPOINT`.
                .filter(|k| {
                    let section = k.as_str().split('.').next().unwrap_or("");
                    [
                        "store",
                        "engine",
                        "limits",
                        "sandbox",
                        "worker",
                        "api",
                        "scheduler",
                        "lineage",
                        "gc",
                    ]
                    .iter()
                    .any(|s| section.eq_ignore_ascii_case(s))
                }),
        )
    }

    /// The bucket of a project; local runs without one use `local`.
    pub fn bucket(&self, project: Option<&str>) -> String {
        self.store.bucket(project)
    }

    /// Where the engine writes Parquet before handing it to the store: for
    /// the local store a folder inside it, so handing over is a hard link
    /// instead of a copy; for S3 the system's temp dir.
    /// `engine.scratch_dir` when set. Its own folder, so the sandbox can
    /// allow it alone rather than the whole temp dir.
    pub fn scratch_dir(&self) -> PathBuf {
        if let Some(d) = &self.engine.scratch_dir {
            return d.clone();
        }
        match self.store.kind {
            StoreKind::Local => self.store.dir.join(".scratch"),
            StoreKind::S3 => std::env::temp_dir().join("mudrock-scratch"),
        }
    }

    /// The engine for this configuration's store.
    pub fn engine(&self, store: Arc<dyn ObjectStore>) -> crate::engine::Engine {
        let dir = self.scratch_dir();
        let engine = crate::engine::Engine::new(store);
        if std::fs::create_dir_all(&dir).is_ok() {
            engine.with_scratch(dir)
        } else {
            engine
        }
    }

    /// The configured store; S3 with retries for transient failures.
    pub async fn open_store(&self) -> Result<Arc<dyn ObjectStore>, StoreError> {
        Ok(match self.store.kind {
            StoreKind::Local => Arc::new(LocalStore::new(&self.store.dir)),
            StoreKind::S3 => {
                let s3: Arc<dyn ObjectStore> = Arc::new(S3Store::connect(&self.store.s3).await?);
                Arc::new(RetryingStore::new(s3, self.store.retry))
            }
        })
    }
}

/// What a worker needs of the configuration.
impl From<Config> for WorkerSettings {
    fn from(c: Config) -> Self {
        WorkerSettings {
            worker: c.worker,
            engine: c.engine,
            store: c.store,
            limits: c.limits,
            lineage: c.lineage,
        }
    }
}

/// What the API needs of the configuration.
impl From<Config> for crate::api::ApiSettings {
    fn from(c: Config) -> Self {
        crate::api::ApiSettings {
            api: c.api,
            store: c.store,
            limits: c.limits,
        }
    }
}
