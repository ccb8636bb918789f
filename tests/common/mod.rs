//! Helpers shared by the integration tests: a local store in a temp dir,
//! running documents through validation and the engine, reading artifacts.
#![allow(dead_code)]

pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;

use mudrock::engine::{Engine, RunOptions, RunResult};
use mudrock::model::{NodeRecord, RunMeta};
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

/// A store decorator for tests: records every call, can fail the calls
/// `fail` picks with a transient error, and runs `before` ahead of each call
/// (to stop a server at an exact point of a run).
pub struct HookedStore {
    pub inner: Arc<dyn ObjectStore>,
    pub fail: Box<dyn Fn(&str, &str) -> bool + Send + Sync>,
    pub before: Box<dyn Fn(&str, &str) + Send + Sync>,
    pub calls: std::sync::Mutex<Vec<(String, String)>>,
    /// Hide the inner store's local paths, so a local directory behaves
    /// like a remote store (sources are downloaded, not read in place).
    pub remote: bool,
    /// A round trip's time, as on a remote server (zero: none).
    pub latency: std::time::Duration,
    /// The deepest chain of calls each waiting for the one before: a
    /// call's depth is one more than the deepest call finished when it
    /// started. With a latency, the run's round trips on its critical path.
    pub depth: std::sync::atomic::AtomicUsize,
    /// Each call's depth, as ("op key", depth), in the order they ended.
    pub rounds: std::sync::Mutex<Vec<(String, usize)>>,
}

impl HookedStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        HookedStore {
            inner,
            fail: Box::new(|_, _| false),
            before: Box::new(|_, _| {}),
            calls: Default::default(),
            remote: false,
            latency: std::time::Duration::ZERO,
            depth: Default::default(),
            rounds: Default::default(),
        }
    }

    /// A store without local paths over `inner`.
    pub fn remote(inner: Arc<dyn ObjectStore>) -> Self {
        HookedStore {
            remote: true,
            ..Self::new(inner)
        }
    }

    pub fn failing(
        inner: Arc<dyn ObjectStore>,
        fail: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        HookedStore {
            fail: Box::new(fail),
            ..Self::new(inner)
        }
    }

    /// Calls of `op` on keys starting with `prefix`.
    pub fn count(&self, op: &str, prefix: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, k)| o == op && k.starts_with(prefix))
            .count()
    }

    /// One call: recorded, maybe failed, delayed by the latency, its depth
    /// counted.
    async fn call<T>(
        &self,
        op: &str,
        key: &str,
        f: impl std::future::Future<Output = mudrock::store::Result<T>>,
    ) -> mudrock::store::Result<T> {
        use std::sync::atomic::Ordering;
        self.enter(op, key)?;
        let depth = self.depth.load(Ordering::SeqCst) + 1;
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let r = f.await;
        self.depth.fetch_max(depth, Ordering::SeqCst);
        self.rounds
            .lock()
            .unwrap()
            .push((format!("{op} {key}"), depth));
        r
    }

    fn enter(&self, op: &str, key: &str) -> mudrock::store::Result<()> {
        (self.before)(op, key);
        self.calls
            .lock()
            .unwrap()
            .push((op.to_string(), key.to_string()));
        if (self.fail)(op, key) {
            return Err(mudrock::store::StoreError::Transient("injected".into()));
        }
        Ok(())
    }
}

impl std::fmt::Debug for HookedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookedStore({:?})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for HookedStore {
    async fn create_bucket(&self, b: &str) -> mudrock::store::Result<()> {
        self.call("create_bucket", b, self.inner.create_bucket(b))
            .await
    }
    async fn put(
        &self,
        b: &str,
        k: &str,
        d: bytes::Bytes,
    ) -> mudrock::store::Result<mudrock::store::ObjectMeta> {
        self.call("put", k, self.inner.put(b, k, d)).await
    }
    async fn get(&self, b: &str, k: &str) -> mudrock::store::Result<bytes::Bytes> {
        self.call("get", k, self.inner.get(b, k)).await
    }
    async fn get_range(
        &self,
        b: &str,
        k: &str,
        r: std::ops::Range<u64>,
    ) -> mudrock::store::Result<bytes::Bytes> {
        self.call("get_range", k, self.inner.get_range(b, k, r))
            .await
    }
    async fn get_part(
        &self,
        b: &str,
        k: &str,
        r: std::ops::Range<u64>,
        v: &str,
    ) -> mudrock::store::Result<Option<bytes::Bytes>> {
        self.call("get_part", k, self.inner.get_part(b, k, r, v))
            .await
    }
    async fn head(&self, b: &str, k: &str) -> mudrock::store::Result<mudrock::store::ObjectMeta> {
        self.call("head", k, self.inner.head(b, k)).await
    }
    async fn list(
        &self,
        b: &str,
        p: &str,
    ) -> mudrock::store::Result<Vec<mudrock::store::ObjectMeta>> {
        self.call("list", p, self.inner.list(b, p)).await
    }
    async fn delete(&self, b: &str, k: &str) -> mudrock::store::Result<()> {
        self.call("delete", k, self.inner.delete(b, k)).await
    }
    async fn copy(&self, b: &str, f: &str, t: &str) -> mudrock::store::Result<()> {
        self.call("copy", t, self.inner.copy(b, f, t)).await
    }
    async fn writer(
        &self,
        b: &str,
        k: &str,
    ) -> mudrock::store::Result<Box<dyn mudrock::store::ObjectWriter>> {
        self.call("writer", k, self.inner.writer(b, k)).await
    }
    async fn put_file(
        &self,
        b: &str,
        k: &str,
        p: &std::path::Path,
    ) -> mudrock::store::Result<mudrock::store::ObjectMeta> {
        self.call("put_file", k, self.inner.put_file(b, k, p)).await
    }
    async fn reader(
        &self,
        b: &str,
        k: &str,
    ) -> mudrock::store::Result<Box<dyn mudrock::store::ObjectReader>> {
        self.call("reader", k, self.inner.reader(b, k)).await
    }
    fn local_path(&self, b: &str, k: &str) -> Option<PathBuf> {
        if self.remote {
            return None;
        }
        self.inner.local_path(b, k)
    }
}

/// An OpenLineage endpoint on a real socket: records what it accepts,
/// answers `fail_first` requests with 503 and everything with `status`
/// once those are spent.
pub async fn endpoint(
    fail_first: usize,
    status: u16,
) -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::http::StatusCode;
    let got: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (g, s) = (got.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/api/v1/lineage",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                if s.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail_first {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let code = StatusCode::from_u16(status).unwrap();
                if code.is_success() {
                    g.lock().unwrap().push(v);
                }
                code
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/api/v1/lineage"), got)
}

/// The test S3 server's settings (scripts/s3-server.sh's DIR/env).
pub fn s3_test_config() -> mudrock::store::S3Config {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run the suite with scripts/test.sh, or start a server with scripts/s3-server.sh start DIR and source DIR/env")
        })
    };
    mudrock::store::S3Config {
        endpoint: Some(var("MUDROCK_TEST_S3_ENDPOINT")),
        access_key_id: Some(var("MUDROCK_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(var("MUDROCK_TEST_S3_SECRET_KEY")),
        part_size: 5 << 20,
        ..mudrock::store::S3Config::default()
    }
}
