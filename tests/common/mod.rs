//! Helpers shared by the integration tests: a local store in a temp dir,
//! running documents through validation and the engine, reading artifacts.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use mudrock::artifacts::{NodeRecord, RunMeta};
use mudrock::engine::{Engine, RunOptions, RunResult};
use mudrock::store::{LocalStore, ObjectStore};
use mudrock::validate::{self, Options};
use polars::prelude::*;
use serde_json::Value;

pub const BUCKET: &str = "project-local";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn ObjectStore>,
    pub engine: Engine,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(BUCKET)).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
        let engine = Engine::new(store.clone());
        Env { dir, store, engine }
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.path().join(BUCKET).join(key)
    }

    /// Writes an object straight into the bucket.
    pub fn put(&self, key: &str, data: impl AsRef<[u8]>) {
        let p = self.path(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    pub fn exists(&self, key: &str) -> bool {
        self.path(key).exists()
    }

    pub fn read(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.path(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    pub fn json(&self, key: &str) -> Value {
        serde_json::from_slice(&self.read(key)).unwrap()
    }

    pub fn parquet(&self, key: &str) -> DataFrame {
        let f = std::fs::File::open(self.path(key)).unwrap();
        ParquetReader::new(f).finish().unwrap()
    }

    /// Every file under `prefix`, relative to the bucket, sorted.
    pub fn files(&self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.dir.path().join(BUCKET);
        let mut stack = vec![root.join(prefix)];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(
                        p.strip_prefix(&root)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        out.sort();
        out
    }

    pub fn copy_example_data(&self) {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/sales/data");
        for e in std::fs::read_dir(src).unwrap() {
            let p = e.unwrap().path();
            self.put(
                &format!("shared/sales/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read(&p).unwrap(),
            );
        }
    }

    pub async fn run(&self, doc: &Value) -> RunResult {
        self.run_with(doc, |_| {}).await
    }

    pub async fn run_with(&self, doc: &Value, f: impl FnOnce(&mut RunOptions)) -> RunResult {
        let (p, _) = validate::validate(doc.clone(), Options::default())
            .unwrap_or_else(|r| panic!("invalid:\n{r}"));
        let mut opts = RunOptions::local(&p);
        f(&mut opts);
        self.engine
            .run(Arc::new(p), opts)
            .await
            .expect("run completes")
    }
}

pub fn node<'a>(m: &'a RunMeta, id: &str) -> &'a NodeRecord {
    m.nodes
        .iter()
        .find(|n| n.node_id == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

pub fn example() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/sales/pipeline.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// An ingestion node.
pub fn ingest(id: &str, source: &str) -> Value {
    serde_json::json!({"id": id, "nodeType": "ingestion", "config": {"source": source}})
}

/// An operator node with its config (which includes "operator").
pub fn op(id: &str, config: Value, deps: &[&str]) -> Value {
    serde_json::json!({"id": id, "nodeType": "operator", "config": config, "dependencies": deps})
}

pub fn output(id: &str, dep: &str) -> Value {
    serde_json::json!({"id": id, "nodeType": "output", "config": {"format": "parquet"}, "dependencies": [dep]})
}

pub fn doc(id: &str, nodes: Vec<Value>, edges: Vec<Value>) -> Value {
    serde_json::json!({"id": id, "name": id, "nodes": nodes, "edges": edges})
}
