//! The API over a real socket, end to end with a worker in the process:
//! create a project, put its data, create a pipeline, trigger, watch the
//! run reach `succeeded`, list its artifacts and read its metadata; health,
//! readiness and the OpenAPI document on the way.

mod api_support;

use std::time::Duration;

use futures_util::StreamExt;

use api_support::*;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

#[sqlx::test(migrations = false)]
async fn a_pipeline_goes_from_creation_to_artifacts_over_http(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    flow(&Api::new(&opts).await).await;
}

/// The same flow with the project's bucket on the real S3 server (Ceph
/// RGW): uploads, outputs read back through downloads instead of files.
#[sqlx::test(migrations = false)]
async fn the_flow_runs_on_the_real_s3_server(_p: PgPoolOptions, opts: PgConnectOptions) {
    let prefix = format!("e2e-{}-", &Uuid::now_v7().simple().to_string()[24..]);
    let api = Api::with_store(&opts, Some(s3_store().await), |s| {
        s.store.bucket_prefix = prefix
    })
    .await;
    flow(&api).await;
}

async fn flow(api: &Api) {
    let stop = tokio_util::sync::CancellationToken::new();
    let (base, server) = api.serve(&stop).await;
    let worker = api.worker("w1");
    let worker = tokio::spawn(worker.run(stop.clone().cancelled_owned()));

    let http = reqwest::Client::new();
    let user = Uuid::now_v7();
    let auth = format!("Bearer {}", token(user, json!({})));
    let get = |path: String| {
        let http = http.clone();
        let auth = auth.clone();
        let base = base.clone();
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let id = r
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_string());
            (status, r.json::<Value>().await.unwrap_or(Value::Null), id)
        }
    };
    let post = |path: String, body: Value| {
        let http = http.clone();
        let auth = auth.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(format!("{base}{path}"))
                .header("authorization", auth)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    // Health, readiness and the API's own description.
    let (status, body, request_id) = get("/healthz".into()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    assert!(
        request_id.is_some_and(|id| id.len() == 36),
        "every response names its request"
    );
    let (status, body, _) = get("/readyz".into()).await;
    assert_eq!(
        (status, body["database"].as_str()),
        (200, Some("ok")),
        "{body}"
    );
    let (status, doc, _) = get("/openapi.json".into()).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/projects",
        "/v1/pipelines/{id}/runs",
        "/v1/runs/{id}/cancel",
        "/v1/projects/{id}/permissions",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }

    // Project, data, pipeline, run.
    let (status, project) = post("/v1/projects".into(), json!({"name": "sales"})).await;
    assert_eq!(status, 201, "{project}");
    let project: Uuid = project["id"].as_str().unwrap().parse().unwrap();
    // The data goes up through the API.
    let r = http
        .put(format!(
            "{base}/v1/projects/{project}/files/shared/in/data.csv"
        ))
        .header("authorization", &auth)
        .header("content-type", "text/csv")
        .body(CSV)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let mut doc = pipeline_doc();
    doc["nodes"][0]["config"]["source"] = json!("shared/in/data.csv");
    let (status, pipeline) = post(
        format!("/v1/projects/{project}/pipelines"),
        json!({"definition": doc}),
    )
    .await;
    assert_eq!(status, 201, "{pipeline}");
    let pipeline = pipeline["id"].as_str().unwrap().to_string();
    let (status, t) = post(format!("/v1/pipelines/{pipeline}/runs"), json!({})).await;
    assert_eq!(status, 202, "{t}");
    let run = t["runId"].as_str().unwrap().to_string();
    assert_eq!(t["links"]["self"], format!("/v1/runs/{run}"));

    // Follow the run's event stream to its end.
    let events = http
        .get(format!("{base}/v1/runs/{run}/events"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    let mut body = events.bytes_stream();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the run's stream ends when the run does");
    let last = text
        .split("\n\n")
        .filter(|b| b.contains("event: run"))
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("\"status\":\"succeeded\""), "{text}");
    let (_, done, _) = get(format!("/v1/runs/{run}")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let nodes: Vec<(&str, &str)> = done["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["nodeId"].as_str().unwrap(), n["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("agg", "succeeded"),
            ("big", "succeeded"),
            ("out", "succeeded"),
            ("src", "succeeded")
        ]
    );

    let (status, files, _) = get(format!("/v1/runs/{run}/artifacts")).await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    for k in [
        "metadata.json",
        "lineage.json",
        "outputs/out/data.parquet",
        "outputs/out/schema.json",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
    let (status, meta, _) = get(format!("/v1/runs/{run}/metadata.json")).await;
    assert_eq!((status, meta["status"].as_str()), (200, Some("succeeded")));
    // Its OpenLineage events: the run's START first, COMPLETE last, with
    // the output's column lineage.
    let (status, events, _) = get(format!("/v1/runs/{run}/openlineage")).await;
    assert_eq!(status, 200, "{events}");
    let events = events.as_array().unwrap();
    assert_eq!(events[0]["eventType"], "START");
    assert_eq!(events[0]["run"]["runId"], json!(run));
    let last = events.last().unwrap();
    assert_eq!(last["eventType"], "COMPLETE");
    let out = &last["outputs"][0];
    assert!(
        out["name"]
            .as_str()
            .unwrap()
            .ends_with("outputs/out/data.parquet"),
        "{out}"
    );
    assert!(
        out["facets"]["columnLineage"]["fields"].is_object(),
        "{out}"
    );
    let (status, list, _) = get(format!("/v1/projects/{project}/runs?status=succeeded")).await;
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );

    // The output: schema, a preview, the data as Parquet and as CSV.
    let (status, schema, _) = get(format!("/v1/runs/{run}/outputs/out/schema")).await;
    assert_eq!(status, 200, "{schema}");
    let (status, preview, _) = get(format!("/v1/runs/{run}/outputs/out/preview?rows=1")).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["rows"].as_array().map(Vec::len), Some(1));
    let (status, preview, _) = get(format!("/v1/runs/{run}/outputs/out/preview")).await;
    assert_eq!(status, 200);
    let mut totals: Vec<(String, i64)> = preview["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["region"].as_str().unwrap().to_string(),
                r["total"].as_i64().unwrap(),
            )
        })
        .collect();
    totals.sort();
    assert_eq!(
        totals,
        [("north".to_string(), 20), ("south".to_string(), 70)]
    );
    let download = |q: &'static str| {
        let http = http.clone();
        let url = format!("{base}/v1/runs/{run}/outputs/out/data{q}");
        let auth = auth.clone();
        async move {
            let r = http
                .get(url)
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            (r.status().as_u16(), ct, r.bytes().await.unwrap())
        }
    };
    let (status, ct, bytes) = download("").await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/vnd.apache.parquet")
    );
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    let (status, ct, bytes) = download("?format=csv").await;
    assert_eq!((status, ct.as_str()), (200, "text/csv; charset=utf-8"));
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.remove(0), "region,total");
    lines.sort();
    assert_eq!(lines, ["north,20", "south,70"]);
    // Names are node ids: traversal and other outputs' files are refused.
    for (path, expect) in [
        (
            format!("/v1/runs/{run}/outputs/..%2F..%2F..%2Fmetadata.json/schema"),
            400,
        ),
        (format!("/v1/runs/{run}/outputs/%2Fetc%2Fpasswd/data"), 400),
        (format!("/v1/runs/{run}/outputs/.hidden/data"), 400),
        (format!("/v1/runs/{run}/outputs/nope/schema"), 404),
        (
            format!("/v1/runs/{run}/outputs/out/preview?rows=100000"),
            400,
        ),
        (format!("/v1/runs/{run}/outputs/out/data?format=xlsx"), 400),
    ] {
        let (status, body, _) = get(path.clone()).await;
        assert_eq!(status, expect, "{path}: {body}");
        assert_ne!(status, 500);
    }

    // Plan after the run: the output is a cache hit now.
    let (status, plan, _) = get(format!("/v1/pipelines/{pipeline}/plan")).await;
    assert_eq!(status, 200, "{plan}");
    let out = plan["order"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == "out")
        .unwrap();
    assert_eq!(out["cacheHit"], true, "{plan}");
    // Export, import elsewhere; a changed save and the diff of versions.
    let (status, exported, _) = get(format!("/v1/pipelines/{pipeline}/export")).await;
    assert_eq!(status, 200);
    let (status, imported) = post(
        format!("/v1/projects/{project}/pipelines"),
        exported.clone(),
    )
    .await;
    assert_eq!(status, 201, "{imported}");
    assert_eq!(imported["definition"], exported["definition"]);
    let mut changed = exported["definition"].clone();
    changed["nodes"][1]["config"]["predicate"] = json!("amount > 25");
    let r = http
        .put(format!("{base}/v1/pipelines/{pipeline}"))
        .header("authorization", &auth)
        .json(&json!({"definition": changed}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, d, _) = get(format!("/v1/pipelines/{pipeline}/versions/1/diff/2")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["nodes"]["changed"][0]["id"], "big", "{d}");
    assert_eq!(d["nodes"]["added"], json!([]));
    assert_eq!(d["edges"]["changed"], json!([]));

    // Metrics: requests by route template, runs by status, the worker's
    // nodes, and the queue.
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "mudrock_http_requests_total{route=\"/v1/runs/{id}\",method=\"GET\",status=\"200\"}",
        "mudrock_http_request_duration_seconds_bucket{route=\"/v1/projects\",method=\"POST\"",
        "mudrock_runs{status=\"succeeded\"} 1",
        "mudrock_queue_depth 0",
        "mudrock_nodes_total{status=\"succeeded\",cache_hit=\"false\"}",
        "mudrock_node_duration_seconds_bucket",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    assert!(!text.contains(&run), "no ids in metric labels");

    stop.cancel();
    server.await.unwrap().unwrap();
    worker.await.unwrap().unwrap();
}
