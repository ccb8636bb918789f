//! Sending OpenLineage events to an HTTP endpoint (Marquez's
//! `POST /api/v1/lineage`, or any OpenLineage HTTP transport): `[lineage]`
//! in the configuration for workers and `mudrock run`, `--emit URL` for
//! `mudrock lineage`.
//!
//! Lineage is an observer: a run never waits for, nor fails because of, its
//! events. Each event is POSTed as JSON; 5xx answers, 429 and network
//! errors are retried with the crate's backoff within `retry.budget_ms`,
//! other answers are refusals.

use std::time::Duration;

use backon::Retryable;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::retry::RetryPolicy;

/// `[lineage]` in the configuration (`MUDROCK_LINEAGE__*`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LineageConfig {
    /// Where events are POSTed; none: no events are sent.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer {api_key}`.
    pub api_key: Option<String>,
    /// One request's time limit.
    pub timeout_ms: u64,
    pub retry: RetryPolicy,
}

impl Default for LineageConfig {
    fn default() -> Self {
        LineageConfig {
            url: None,
            api_key: None,
            timeout_ms: 5_000,
            retry: RetryPolicy {
                min_delay_ms: 200,
                max_delay_ms: 5_000,
                budget_ms: 30_000,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The URL is not http(s): the configuration's fault.
    #[error("lineage url \"{0}\" is not an http:// or https:// URL")]
    BadUrl(String),
    /// The endpoint answered with an error that a retry will not mend.
    #[error("the lineage endpoint refused an event: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    /// Not reached, or kept failing, within the retry budget.
    #[error("cannot deliver to the lineage endpoint: {0}")]
    Unreachable(String),
}

impl EmitError {
    fn transient(&self) -> bool {
        matches!(self, EmitError::Unreachable(_))
    }
}

/// Delivers events to one endpoint.
#[derive(Debug, Clone)]
pub struct Emitter {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    retry: RetryPolicy,
}

impl Emitter {
    /// An emitter for `config`, or None when it names no URL.
    pub fn from_config(config: &LineageConfig) -> Result<Option<Emitter>, EmitError> {
        match &config.url {
            None => Ok(None),
            Some(url) => Emitter::new(url, config).map(Some),
        }
    }

    pub fn new(url: &str, config: &LineageConfig) -> Result<Emitter, EmitError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
            return Err(EmitError::BadUrl(url.chars().take(200).collect()));
        }
        // rustls without a provider of its own: the process's aws-lc one.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .build()
            .map_err(|e| EmitError::Unreachable(e.to_string()))?;
        Ok(Emitter {
            client,
            url: url.to_string(),
            api_key: config.api_key.clone(),
            retry: config.retry,
        })
    }

    /// Sends one event, retrying transient failures.
    pub async fn send(&self, event: &Value) -> Result<(), EmitError> {
        let once = || async {
            let mut req = self.client.post(&self.url).json(event);
            if let Some(k) = &self.api_key {
                req = req.bearer_auth(k);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| EmitError::Unreachable(without_url(&e)))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(500)
                .collect();
            if status.is_server_error() || status.as_u16() == 429 {
                Err(EmitError::Unreachable(format!("HTTP {status}: {body}")))
            } else {
                Err(EmitError::Refused {
                    status: status.as_u16(),
                    body,
                })
            }
        };
        once.retry(self.retry.backoff())
            .when(EmitError::transient)
            .notify(|e, wait| {
                tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "lineage event not delivered, retrying");
            })
            .await
    }

    /// Sends events in order; stops at the first that cannot be delivered.
    pub async fn send_all(&self, events: &[Value]) -> Result<usize, EmitError> {
        for e in events {
            self.send(e).await?;
        }
        Ok(events.len())
    }
}

/// reqwest's error text without the URL (it may carry credentials).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(s) => format!("{kind}: {s}"),
        None => kind.to_string(),
    }
}

/// Sends an event in the background, after `before` (an earlier event
/// of the same run on its way).
pub fn spawn_event(
    emitter: &Emitter,
    event: Value,
    before: Option<tokio::task::JoinHandle<()>>,
) -> tokio::task::JoinHandle<()> {
    let e = emitter.clone();
    tokio::spawn(async move {
        if let Some(h) = before {
            let _ = h.await;
        }
        if let Err(err) = e.send(&event).await {
            tracing::warn!(error = %err, "openlineage event not delivered");
        }
    })
}

/// Sends a finished run's events, read from its artifacts, in the
/// background, after `start` (the run's START, already on its way; it is
/// not sent again).
pub fn spawn_finished(
    emitter: &Emitter,
    bucket: crate::inspect::Bucket,
    run: crate::inspect::RunRef,
    start: Option<tokio::task::JoinHandle<()>>,
) {
    let e = emitter.clone();
    tokio::spawn(async move {
        let events = match crate::inspect::openlineage::for_run(&bucket, &run).await {
            Ok(ev) => ev,
            Err(err) => {
                tracing::warn!(run_id = %run.run_id, error = %err, "openlineage events not built");
                return;
            }
        };
        let skip = match start {
            Some(h) => {
                let _ = h.await;
                1
            }
            None => 0,
        };
        match e.send_all(&events[skip.min(events.len())..]).await {
            Ok(n) => {
                tracing::debug!(run_id = %run.run_id, events = n, "openlineage events delivered")
            }
            Err(err) => {
                tracing::warn!(run_id = %run.run_id, error = %err, "openlineage events not delivered")
            }
        }
    });
}
