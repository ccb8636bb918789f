//! Files through the API: streamed uploads under `shared/`, who may upload
//! and delete (row-level security), `allowedFileTypes` by extension and by
//! content, `storageQuota` before anything is stored (declared or streamed
//! sizes), nothing partial left behind, and a run refused while its project
//! is over quota.

mod api_support;

use std::time::{Duration, Instant};

use api_support::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

fn put(token: &str, path: &str, body: Vec<u8>, declare: bool) -> Request<Body> {
    let mut r = Request::builder()
        .method(Method::PUT)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/csv");
    if declare {
        r = r.header("content-length", body.len());
    }
    // Two chunks: the body arrives as a stream, not as one buffer.
    let half = body.len() / 2;
    let (a, b) = (body[..half].to_vec(), body[half..].to_vec());
    let stream = futures_util::stream::iter([
        Ok::<_, std::io::Error>(bytes::Bytes::from(a)),
        Ok(bytes::Bytes::from(b)),
    ]);
    r.body(Body::from_stream(stream)).unwrap()
}

/// Every file under the project's bucket folder (temporary files included).
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[sqlx::test(migrations = false)]
async fn uploads_are_checked_before_anything_is_stored(_p: PgPoolOptions, opts: PgConnectOptions) {
    let api = Api::new(&opts).await;
    let (owner_id, editor_id, viewer_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let owner = token(owner_id, json!({}));
    let (_, p) = api
        .call(Method::POST, "/v1/projects", Some(&owner),
              Some(json!({"name": "files", "settings": {"allowedFileTypes": ["csv", "parquet"], "storageQuota": 100}})))
        .await;
    let project = p["id"].as_str().unwrap().to_string();
    for (user, role) in [(editor_id, "editor"), (viewer_id, "viewer")] {
        api.call(
            Method::POST,
            &format!("/v1/projects/{project}/permissions"),
            Some(&owner),
            Some(json!({"userId": user, "role": role})),
        )
        .await;
    }
    let (editor, viewer) = (token(editor_id, json!({})), token(viewer_id, json!({})));
    let stranger = token(Uuid::now_v7(), json!({}));
    let bucket_dir = api
        .dir
        .path()
        .join(api.settings.store.bucket(Some(&project)));
    let url = |k: &str| format!("/v1/projects/{project}/files/{k}");
    let csv = b"id,amount\n1,10\n2,20\n".to_vec(); // 20 bytes

    // Who may upload.
    let (status, row) = api
        .send(put(&owner, &url("shared/in/a.csv"), csv.clone(), true))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{row}");
    assert_eq!(row["size"], 20);
    assert_eq!(row["blake3"], blake3::hash(&csv).to_hex().to_string());
    let (status, _) = api
        .send(put(&editor, &url("shared/in/b.csv"), csv.clone(), false))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = api
        .send(put(&viewer, &url("shared/in/c.csv"), csv.clone(), true))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = api
        .send(put(&stranger, &url("shared/in/c.csv"), csv.clone(), true))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let before = files_in(&bucket_dir);

    // Refused before a byte is stored; nothing partial left behind.
    let zip = [b"PK\x03\x04".as_slice(), &[7u8; 30]].concat();
    let cases: Vec<(&str, Vec<u8>, bool, u16, &str)> = vec![
        (
            "shared/in/x.json",
            csv.clone(),
            true,
            415,
            "file_type_not_allowed",
        ),
        ("shared/in/zip.csv", zip, false, 415, "content_mismatch"),
        (
            "shared/in/bad.parquet",
            b"PAR1 not really a parquet file".to_vec(),
            false,
            415,
            "content_mismatch",
        ),
        (
            "shared/in/nul.csv",
            b"id\n\0\0\0".to_vec(),
            true,
            415,
            "content_mismatch",
        ),
        ("shared/in/big.csv", vec![b'x'; 90], true, 413, "over_quota"),
        (
            "shared/in/big-streamed.csv",
            vec![b'x'; 90],
            false,
            413,
            "over_quota",
        ),
        (
            "shared/../escape.csv",
            csv.clone(),
            true,
            400,
            "invalid_path",
        ),
        (
            "shared/%2e%2e/escape.csv",
            csv.clone(),
            true,
            400,
            "invalid_path",
        ),
        ("other/a.csv", csv.clone(), true, 400, "invalid_path"),
        ("shared/dir/", csv.clone(), true, 400, "invalid_path"),
    ];
    for (key, body, declare, status, code) in cases {
        let (got, err) = api.send(put(&owner, &url(key), body, declare)).await;
        assert_eq!(
            (got.as_u16(), err["error"]["code"].as_str()),
            (status, Some(code)),
            "{key}: {err}"
        );
    }
    assert_eq!(
        files_in(&bucket_dir),
        before,
        "nothing stored, no temporary file left"
    );
    let (_, listed) = api
        .call(
            Method::GET,
            &format!("/v1/projects/{project}/files"),
            Some(&viewer),
            None,
        )
        .await;
    let keys: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["shared/in/a.csv", "shared/in/b.csv"]);

    // Replacing a file frees what it held: 40 used, a.csv (20) → 70 fits.
    let (status, body) = api
        .send(put(&owner, &url("shared/in/a.csv"), vec![b'y'; 70], true))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let used: i64 =
        sqlx::query_scalar("SELECT used_bytes FROM project_storage WHERE project_id = $1::uuid")
            .bind(&project)
            .fetch_one(&api.pool)
            .await
            .unwrap();
    assert_eq!(used, 90);

    // Download, then delete (owners only).
    let (status, _) = api
        .call(Method::GET, &url("shared/in/b.csv"), Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let req = Request::builder()
        .uri(url("shared/in/b.csv"))
        .header("authorization", format!("Bearer {viewer}"))
        .body(Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(api.router.clone(), req)
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), csv.as_slice());
    for (tok, expect) in [
        (&stranger, 404),
        (&viewer, 403),
        (&editor, 403),
        (&owner, 204),
    ] {
        let (status, _) = api
            .call(Method::DELETE, &url("shared/in/b.csv"), Some(tok), None)
            .await;
        assert_eq!(status.as_u16(), expect);
    }
    assert!(!bucket_dir.join("shared/in/b.csv").exists());
    let used: i64 =
        sqlx::query_scalar("SELECT used_bytes FROM project_storage WHERE project_id = $1::uuid")
            .bind(&project)
            .fetch_one(&api.pool)
            .await
            .unwrap();
    assert_eq!(used, 70);
}

#[sqlx::test(migrations = false)]
async fn a_run_does_not_start_while_its_project_is_over_quota(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let api = Api::new(&opts).await;
    let owner = token(Uuid::now_v7(), json!({}));
    let (_, p) = api
        .call(
            Method::POST,
            "/v1/projects",
            Some(&owner),
            Some(json!({"name": "full"})),
        )
        .await;
    let project = p["id"].as_str().unwrap().to_string();
    let (status, _) = api
        .send(put(
            &owner,
            &format!("/v1/projects/{project}/files/shared/in/data.csv"),
            CSV.as_bytes().to_vec(),
            true,
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut doc = pipeline_doc();
    doc["nodes"][0]["config"]["source"] = json!("shared/in/data.csv");
    let (_, pl) = api
        .call(
            Method::POST,
            &format!("/v1/projects/{project}/pipelines"),
            Some(&owner),
            Some(json!({"definition": doc})),
        )
        .await;
    // The quota drops below what is stored.
    let (status, _) = api
        .call(
            Method::PATCH,
            &format!("/v1/projects/{project}"),
            Some(&owner),
            Some(json!({"settings": {"storageQuota": 10}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, t) = api
        .call(
            Method::POST,
            &format!("/v1/pipelines/{}/runs", pl["id"].as_str().unwrap()),
            Some(&owner),
            None,
        )
        .await;
    let run = t["runId"].as_str().unwrap().to_string();

    let stop = tokio_util::sync::CancellationToken::new();
    let worker = api.worker("w");
    let handle = tokio::spawn(worker.run(stop.clone().cancelled_owned()));
    let start = Instant::now();
    let r: Value = loop {
        let (_, r) = api
            .call(Method::GET, &format!("/v1/runs/{run}"), Some(&owner), None)
            .await;
        if r["status"] == "failed" || r["status"] == "succeeded" {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(r["status"], "failed");
    let expected = format!(
        "the project is over its storage quota: {} of 10 bytes used; delete files or raise storageQuota",
        CSV.len()
    );
    assert_eq!(r["error"].as_str(), Some(expected.as_str()));
    assert!(
        r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "pending"),
        "nothing ran"
    );
}
