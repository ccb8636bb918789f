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
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::store::{
    LocalStore, ObjectStore, RetryPolicy, RetryingStore, S3Config, S3Store, StoreError,
};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub store: StoreConfig,
    pub engine: EngineConfig,
    pub limits: crate::limits::DocLimits,
    pub sandbox: crate::sandbox::SandboxConfig,
    pub worker: crate::worker::WorkerConfig,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Local,
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    pub dir: PathBuf,
    pub bucket_prefix: String,
    pub s3: S3Config,
    pub retry: RetryPolicy,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Local,
            dir: PathBuf::from("mudrock-data"),
            bucket_prefix: "project-".into(),
            s3: S3Config::default(),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Units computed at once.
    pub concurrency: usize,
    /// Which Polars engine computes a unit: `auto` streams units whose
    /// sources exceed `streaming_above_mb`, `always`, or `never`.
    pub streaming: crate::engine::Streaming,
    pub streaming_above_mb: u64,
    /// Output columns one pivot may produce.
    pub max_pivot_columns: usize,
    /// Rows one join may produce.
    pub max_join_rows: u64,
    /// Objects one ingestion node's globs may match.
    pub max_glob_matches: usize,
    /// What one run's scratch files may add up to, in MiB.
    pub max_scratch_mb: u64,
    /// Where runs keep their scratch files (default: see
    /// [`Config::scratch_dir`]).
    pub scratch_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let limits = crate::limits::RunLimits::default();
        EngineConfig {
            concurrency: 4,
            streaming: crate::engine::Streaming::Auto,
            streaming_above_mb: crate::engine::DEFAULT_STREAMING_ABOVE_BYTES >> 20,
            max_pivot_columns: limits.ops.max_pivot_columns,
            max_join_rows: limits.ops.max_join_rows,
            max_glob_matches: limits.max_glob_matches,
            max_scratch_mb: limits.max_scratch_bytes >> 20,
            scratch_dir: None,
        }
    }
}

impl EngineConfig {
    pub fn streaming_above_bytes(&self) -> u64 {
        self.streaming_above_mb.saturating_mul(1 << 20)
    }

    /// Sets what this section decides on a run's options.
    pub fn apply(&self, o: &mut crate::engine::RunOptions) {
        o.concurrency = self.concurrency;
        o.streaming = self.streaming;
        o.streaming_above_bytes = self.streaming_above_bytes();
        o.limits = self.limits();
    }

    /// The run limits this section sets.
    pub fn limits(&self) -> crate::limits::RunLimits {
        crate::limits::RunLimits {
            ops: mudrock_operators::Limits {
                max_pivot_columns: self.max_pivot_columns,
                max_join_rows: self.max_join_rows,
            },
            max_glob_matches: self.max_glob_matches,
            max_scratch_bytes: self.max_scratch_mb.saturating_mul(1 << 20),
        }
    }
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
                    ["store", "engine", "limits", "sandbox", "worker"]
                        .iter()
                        .any(|s| section.eq_ignore_ascii_case(s))
                }),
        )
    }

    /// The bucket of a project; local runs without one use `local`.
    pub fn bucket(&self, project: Option<&str>) -> String {
        format!("{}{}", self.store.bucket_prefix, project.unwrap_or("local"))
    }

    /// Creates the bucket of a new project (idempotent). Project ids become
    /// part of a bucket name, so they must be lowercase letters, digits and
    /// dashes (UUIDs are).
    pub async fn create_project_bucket(
        &self,
        store: &dyn ObjectStore,
        project_id: &str,
    ) -> Result<String, StoreError> {
        let ok = !project_id.is_empty()
            && project_id
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !project_id.starts_with('-');
        let bucket = self.bucket(Some(project_id));
        if !ok {
            return Err(StoreError::InvalidKey {
                key: bucket,
                reason: format!(
                    "project id \"{project_id}\" must be lowercase letters, digits and dashes"
                ),
            });
        }
        store.create_bucket(&bucket).await.map_err(|e| match e {
            StoreError::Other(m) => StoreError::Other(format!(
                "cannot create the bucket of project {project_id}: {m}"
            )),
            other => other,
        })?;
        Ok(bucket)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mudrock.toml",
                r#"
                [store]
                kind = "s3"
                bucket_prefix = "acme-"
                [store.s3]
                endpoint = "http://file:9000"
                region = "eu-west-1"
                "#,
            )?;
            jail.set_env("MUDROCK_STORE__S3__ENDPOINT", "http://env:9000");
            jail.set_env("MUDROCK_ENGINE__CONCURRENCY", "7");
            jail.set_env("MUDROCK_PROJECT", "not-config");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.store.kind, StoreKind::S3, "file over defaults");
            assert_eq!(c.store.s3.region, "eu-west-1");
            assert_eq!(
                c.store.s3.endpoint.as_deref(),
                Some("http://env:9000"),
                "environment over file"
            );
            assert_eq!(c.engine.concurrency, 7);
            assert_eq!(c.store.s3.part_size, 16 << 20, "defaults fill the rest");
            assert_eq!(c.bucket(Some("p1")), "acme-p1");
            assert_eq!(c.bucket(None), "acme-local");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[store]\nknd = \"s3\"\n")?;
            let e = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("knd"), "{e}");
            assert!(Config::load(Some(Path::new("missing.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn limits_and_the_sandbox_are_configured_like_the_rest() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "l.toml",
                "[engine]\nmax_pivot_columns = 7\nmax_scratch_mb = 2\n[limits]\nmax_nodes = 3\n\
                 [sandbox]\nextra_read = [\"/opt/certs\"]\n",
            )?;
            jail.set_env("MUDROCK_SANDBOX__ENABLED", "false");
            jail.set_env("MUDROCK_ENGINE__MAX_JOIN_ROWS", "99");
            let c = Config::load(Some(Path::new("l.toml"))).map_err(|e| e.to_string())?;
            let run = c.engine.limits();
            assert_eq!(run.ops.max_pivot_columns, 7);
            assert_eq!(run.ops.max_join_rows, 99);
            assert_eq!(run.max_scratch_bytes, 2 << 20);
            assert_eq!(run.max_glob_matches, 10_000, "defaults fill the rest");
            assert_eq!(c.limits.max_nodes, 3);
            assert_eq!(c.limits.max_expression_chars, 10_000);
            assert!(!c.sandbox.enabled);
            assert_eq!(c.sandbox.extra_read, [PathBuf::from("/opt/certs")]);
            jail.create_file("bad.toml", "[limits]\nmax_node = 3\n")?;
            let e = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("max_node"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_engine_section_decides_streaming() {
        use crate::engine::{RunOptions, Streaming};
        figment::Jail::expect_with(|jail| {
            let p: crate::pipeline::Pipeline = crate::validate::validate(
                serde_json::json!({"id": "p", "name": "p", "edges": [], "nodes": [
                    {"id": "a", "nodeType": "ingestion", "config": {"source": "a.csv"}}
                ]}),
                Default::default(),
            )
            .map(|(p, _)| p)
            .map_err(|r| r.to_string())?;
            let mut o = RunOptions::local(&p);
            let c = Config::load(None).map_err(|e| e.to_string())?;
            c.engine.apply(&mut o);
            assert_eq!(o.streaming, Streaming::Auto);
            assert!(
                !o.streams(2 << 30, false) && o.streams((2 << 30) + 1, false),
                "auto: above 2 GiB"
            );
            assert!(o.streams(0, true), "auto: row-wise units whatever the size");

            jail.create_file(
                "m.toml",
                "[engine]\nstreaming = \"auto\"\nstreaming_above_mb = 1\n",
            )?;
            let c = Config::load(Some(Path::new("m.toml"))).map_err(|e| e.to_string())?;
            c.engine.apply(&mut o);
            assert!(!o.streams(1 << 20, false) && o.streams((1 << 20) + 1, false));

            jail.set_env("MUDROCK_ENGINE__STREAMING", "never");
            let c = Config::load(Some(Path::new("m.toml"))).map_err(|e| e.to_string())?;
            c.engine.apply(&mut o);
            assert!(!o.streams(u64::MAX, true), "never");

            jail.set_env("MUDROCK_ENGINE__STREAMING", "sometimes");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("sometimes"), "{e}");
            Ok(())
        });
    }
}
