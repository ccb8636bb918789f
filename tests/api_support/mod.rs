//! Shared by the API tests: a migrated database, a local store, the router
//! with an HS256 secret (plus the test-only ES256/RS256 keys in
//! tests/data/jwt), tokens for any user, and requests driven in-process.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use mudrock::api::{ApiSettings, AppState};
use mudrock::store::{LocalStore, ObjectStore};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tower::ServiceExt;
use uuid::Uuid;

pub const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt");

pub struct Api {
    pub router: Router,
    pub pool: PgPool,
    pub store: Arc<dyn ObjectStore>,
    pub settings: ApiSettings,
    pub dir: tempfile::TempDir,
}

pub fn settings(dir: &std::path::Path) -> ApiSettings {
    let mut s = ApiSettings::default();
    s.store.dir = dir.to_path_buf();
    s.api.jwt.hs256_secret = Some(SECRET.into());
    s.api.jwt.pem_file = Some(format!("{DATA}/ec-public.pem").into());
    s.api.jwt.jwks_file = Some(format!("{DATA}/jwks.json").into());
    s
}

impl Api {
    pub async fn new(opts: &PgConnectOptions) -> Api {
        Self::with(opts, |_| {}).await
    }

    pub async fn with(opts: &PgConnectOptions, tweak: impl FnOnce(&mut ApiSettings)) -> Api {
        Self::with_store(opts, None, tweak).await
    }

    /// With `store` instead of a local store in a temp dir.
    pub async fn with_store(
        opts: &PgConnectOptions,
        store: Option<Arc<dyn ObjectStore>>,
        tweak: impl FnOnce(&mut ApiSettings),
    ) -> Api {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(opts.clone())
            .await
            .unwrap();
        mudrock::service::db::migrate(&pool).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            store.unwrap_or_else(|| Arc::new(LocalStore::new(dir.path())));
        let mut settings = settings(dir.path());
        tweak(&mut settings);
        let state = AppState::new(pool.clone(), store.clone(), settings.clone()).unwrap();
        Api {
            router: mudrock::api::app(state),
            pool,
            store,
            settings,
            dir,
        }
    }

    /// Sends a request; returns the status and the JSON body (`Null` when
    /// the body is empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    /// A worker on this API's database and store, polling fast.
    pub fn worker(&self, id: &str) -> mudrock::service::worker::Worker {
        let mut ws = mudrock::service::worker::WorkerSettings::default();
        ws.store = self.settings.store.clone();
        ws.worker.poll_ms = 50;
        ws.worker.heartbeat_ms = 100;
        mudrock::service::worker::Worker::new(
            self.pool.clone(),
            mudrock::engine::Engine::new(self.store.clone()),
            ws,
            Some(id.into()),
        )
    }

    /// The API on a real socket (127.0.0.1, any port) until `stop`.
    pub async fn serve(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
        let state =
            AppState::new(self.pool.clone(), self.store.clone(), self.settings.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(mudrock::api::serve(
            listener,
            state,
            stop.clone().cancelled_owned(),
        ));
        (base, server)
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 64 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// A valid token for `user`, with `extra` claims merged over the defaults.
pub fn token(user: Uuid, extra: Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        user,
        extra,
    )
}

pub fn claims(user: Uuid, extra: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({"sub": user.to_string(), "role": "authenticated", "aud": "authenticated",
                       "exp": now + 600, "iat": now});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(&k);
        } else {
            c[k] = v;
        }
    }
    c
}

pub fn sign(
    alg: Algorithm,
    key: &EncodingKey,
    kid: Option<&str>,
    user: Uuid,
    extra: Value,
) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, &claims(user, extra), key).unwrap()
}

pub fn es256(user: Uuid) -> String {
    let pem = std::fs::read(format!("{DATA}/ec-private.pem")).unwrap();
    sign(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(&pem).unwrap(),
        None,
        user,
        json!({}),
    )
}

pub fn rs256(user: Uuid, kid: &str) -> String {
    let pem = std::fs::read(format!("{DATA}/rsa-private.pem")).unwrap();
    sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
        Some(kid),
        user,
        json!({}),
    )
}

/// The real S3 server the suite starts (scripts/test.sh exports where).
pub async fn s3_store() -> Arc<dyn ObjectStore> {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run the suite with scripts/test.sh, or start a server with scripts/s3-server.sh start DIR and source DIR/env")
        })
    };
    let cfg = mudrock::store::S3Config {
        endpoint: Some(var("MUDROCK_TEST_S3_ENDPOINT")),
        access_key_id: Some(var("MUDROCK_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(var("MUDROCK_TEST_S3_SECRET_KEY")),
        part_size: 5 << 20,
        ..Default::default()
    };
    Arc::new(mudrock::store::S3Store::connect(&cfg).await.unwrap())
}

/// A pipeline over `in/data.csv` with two outputs.
pub fn pipeline_doc() -> Value {
    json!({
        "id": "small", "name": "small",
        "nodes": [
            {"id": "src", "nodeType": "ingestion", "config": {"source": "in/data.csv"}},
            {"id": "big", "nodeType": "operator", "config": {"operator": "filter", "predicate": "amount > 10"},
             "dependencies": ["src"]},
            {"id": "agg", "nodeType": "operator", "config": {"operator": "aggregate", "by": ["region"],
             "aggregations": [{"name": "total", "expr": "sum(amount)"}]}, "dependencies": ["big"]},
            {"id": "out", "nodeType": "output", "config": {"format": "parquet"}, "dependencies": ["agg"]}
        ],
        "edges": []
    })
}

pub const CSV: &str = "region,amount\nnorth,5\nnorth,20\nsouth,30\nsouth,40\n";

/// An owner, an editor, a viewer and a stranger around one project with
/// one pipeline.
pub struct Team {
    pub owner: String,
    pub editor: String,
    pub viewer: String,
    pub stranger: String,
    pub project: Uuid,
    pub pipeline: Uuid,
}

pub async fn team(api: &Api) -> Team {
    let (owner_id, editor_id, viewer_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let owner = token(owner_id, json!({}));
    let (status, p) = api
        .call(
            Method::POST,
            "/v1/projects",
            Some(&owner),
            Some(json!({"name": "team", "settings": {"maxConcurrentRuns": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["role"], "owner");
    let project: Uuid = p["id"].as_str().unwrap().parse().unwrap();
    for (user, role) in [(editor_id, "editor"), (viewer_id, "viewer")] {
        let (status, body) = api
            .call(
                Method::POST,
                &format!("/v1/projects/{project}/permissions"),
                Some(&owner),
                Some(json!({"userId": user, "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, pl) = api
        .call(
            Method::POST,
            &format!("/v1/projects/{project}/pipelines"),
            Some(&owner),
            Some(json!({"definition": pipeline_doc(), "tags": ["daily"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pl}");
    Team {
        owner,
        editor: token(editor_id, json!({})),
        viewer: token(viewer_id, json!({})),
        stranger: token(Uuid::now_v7(), json!({})),
        project,
        pipeline: pl["id"].as_str().unwrap().parse().unwrap(),
    }
}
