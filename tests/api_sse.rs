//! Live progress over Server-Sent Events, read by a real HTTP client: a
//! run's stream follows it live (LISTEN/NOTIFY) to its end, a client that
//! reconnects with Last-Event-ID misses and repeats nothing, and only
//! members see a project's events.

mod api_support;

use std::time::Duration;

use api_support::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// One parsed event.
#[derive(Debug, Clone, PartialEq)]
struct Ev {
    id: i64,
    kind: String,
    data: Value,
}

/// An open event stream, read event by event.
struct Reader {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Reader {
    fn new(res: reqwest::Response) -> Self {
        Reader {
            body: res.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event, or `None` when the stream ended. Keep-alive
    /// comments are skipped; 60 s without an event fails the test.
    async fn next(&mut self) -> Option<Ev> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if let Some(id) = id {
                    return Some(Ev {
                        id,
                        kind,
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("no event within 60 s")?;
            self.buf
                .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    /// Events until the stream ends.
    async fn rest(&mut self) -> Vec<Ev> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}

#[sqlx::test(migrations = false)]
async fn a_run_s_events_stream_live_and_resume_without_loss_or_repeat(
    _p: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let api = Api::new(&opts).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let (base, server) = api.serve(&stop).await;
    let http = reqwest::Client::new();
    let owner = token(Uuid::now_v7(), json!({}));
    let stranger = token(Uuid::now_v7(), json!({}));

    let (_, p) = api
        .call(
            axum::http::Method::POST,
            "/v1/projects",
            Some(&owner),
            Some(json!({"name": "live"})),
        )
        .await;
    let project = p["id"].as_str().unwrap().to_string();
    let bucket = api.settings.store.bucket(Some(&project));
    api.store
        .put(&bucket, "in/data.csv", CSV.as_bytes().to_vec().into())
        .await
        .unwrap();
    let (_, pl) = api
        .call(
            axum::http::Method::POST,
            &format!("/v1/projects/{project}/pipelines"),
            Some(&owner),
            Some(json!({"definition": pipeline_doc()})),
        )
        .await;
    let (_, t) = api
        .call(
            axum::http::Method::POST,
            &format!("/v1/pipelines/{}/runs", pl["id"].as_str().unwrap()),
            Some(&owner),
            None,
        )
        .await;
    let run = t["runId"].as_str().unwrap().to_string();
    let url = format!("{base}/v1/runs/{run}/events");

    // Only members may follow it; a Last-Event-ID must be one we gave out.
    let r = http.get(&url).bearer_auth(&stranger).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(&url)
        .bearer_auth(&owner)
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Connected while the run is queued: the first event is already there.
    let first = http.get(&url).bearer_auth(&owner).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert!(
        first.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut a_stream = Reader::new(first);
    let queued = a_stream.next().await.unwrap();
    assert_eq!(
        (queued.kind.as_str(), queued.data["status"].as_str()),
        ("run", Some("queued"))
    );
    // The worker starts only now: what follows arrives live.
    let worker = api.worker("w1");
    let worker = tokio::spawn(worker.run(stop.clone().cancelled_owned()));
    let mut a = vec![queued];
    while a.len() < 3 {
        a.push(a_stream.next().await.expect("the run goes on"));
    }
    drop(a_stream); // the client goes away mid-run

    // Reconnect after the 2nd event: the rest comes once, to the end.
    let resume_at = a[1].id;
    let again = http
        .get(&url)
        .bearer_auth(&owner)
        .header("last-event-id", resume_at.to_string())
        .send()
        .await
        .unwrap();
    let b = Reader::new(again).rest().await;
    let last = b.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.data["status"].as_str()),
        ("run", Some("succeeded")),
        "{b:?}"
    );

    // Everything the database recorded, in order, once.
    let all: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM run_events WHERE run_id = $1 ORDER BY id")
            .bind(run.parse::<Uuid>().unwrap())
            .fetch_all(&api.pool)
            .await
            .unwrap();
    let got: Vec<i64> = a[..2].iter().chain(&b).map(|e| e.id).collect();
    assert_eq!(got, all, "no event lost or repeated across the reconnect");
    let nodes: Vec<&str> = b
        .iter()
        .filter(|e| e.kind == "node" && e.data["status"] == "succeeded")
        .map(|e| e.data["nodeId"].as_str().unwrap())
        .collect();
    for n in ["src", "big", "agg", "out"] {
        assert!(nodes.contains(&n), "{n} succeeded in {nodes:?}");
    }

    // Many followers of one run, connected while it waits: each one sees
    // its final state (a stream that learns the run is over from the run's
    // row reads once more before it ends, so the last event is never lost).
    let (_, t2) = api
        .call(
            axum::http::Method::POST,
            &format!("/v1/pipelines/{}/runs", pl["id"].as_str().unwrap()),
            Some(&owner),
            None,
        )
        .await;
    let run2 = t2["runId"].as_str().unwrap().to_string();
    let mut followers = Vec::new();
    for _ in 0..12 {
        let r = http
            .get(format!("{base}/v1/runs/{run2}/events"))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap();
        followers.push(tokio::spawn(async move { Reader::new(r).rest().await }));
    }
    for f in followers {
        let evs = f.await.unwrap();
        let last = evs.last().unwrap();
        assert_eq!(
            (last.kind.as_str(), last.data["status"].as_str()),
            ("run", Some("succeeded")),
            "{evs:?}"
        );
    }

    // A project's stream: from now on, members only.
    let r = http
        .get(format!("{base}/v1/projects/{project}/events"))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(format!("{base}/v1/projects/{project}/events?after=0"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    let mut p_stream = Reader::new(r);
    let mut p_events = Vec::new();
    while p_events.len() < all.len() {
        p_events.push(p_stream.next().await.unwrap().id);
    }
    assert_eq!(p_events, all);

    // Shutdown ends open streams, so the server drains.
    let open = http
        .get(format!("{base}/v1/projects/{project}/events"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    stop.cancel();
    assert!(Reader::new(open).rest().await.is_empty());
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    worker.await.unwrap().unwrap();
}
