//! Errors of the engine layer, and whose fault they are.
//!
//! The queue (a later layer) decides from [`Fault`] and
//! [`EngineError::is_retryable`] whether to retry a run or fail it at once
//! with the message: a pipeline error never gets better by retrying, a
//! storage hiccup usually does.

use crate::store::StoreError;

/// Who has to act for the error to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// The pipeline or its data: fix the definition or the input.
    User,
    /// Storage, network, the database: may pass by itself.
    External,
    /// A bug in mudrock.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub fn fault(&self) -> Fault {
        match self {
            EngineError::Store(StoreError::InvalidKey { .. }) => Fault::User,
            EngineError::Store(_) => Fault::External,
            EngineError::Internal(_) => Fault::Internal,
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Why a node failed; recorded in node results and error frames.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeErrorKind {
    /// Config refers to missing columns, types do not fit.
    Config,
    /// The data could not be read or computed (malformed file, bad cast).
    Data,
    /// An assert's checks failed.
    Assertion,
    /// Reading or writing storage failed.
    Storage,
    /// The node ran longer than `execution.timeoutSeconds`.
    Timeout,
    /// The node went over one of the run's limits (pivot columns, join
    /// rows, glob matches, scratch disk); the message names it.
    Limit,
    Internal,
}

impl NodeErrorKind {
    pub fn fault(&self) -> Fault {
        match self {
            NodeErrorKind::Storage => Fault::External,
            NodeErrorKind::Internal => Fault::Internal,
            _ => Fault::User,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            NodeErrorKind::Config => "config",
            NodeErrorKind::Data => "data",
            NodeErrorKind::Assertion => "assertion",
            NodeErrorKind::Storage => "storage",
            NodeErrorKind::Timeout => "timeout",
            NodeErrorKind::Limit => "limit",
            NodeErrorKind::Internal => "internal",
        }
    }
}

/// A node's failure: kind, message, and the config field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    pub kind: NodeErrorKind,
    pub message: String,
    /// JSON path of the offending field (`nodes[2].config.predicate`).
    pub path: Option<String>,
    pub retryable: bool,
}

impl NodeError {
    pub fn new(kind: NodeErrorKind, message: impl Into<String>) -> Self {
        NodeError {
            kind,
            message: message.into(),
            path: None,
            retryable: false,
        }
    }

    /// A failure Polars reported while computing: the data's fault, or a
    /// limit when the message is one of mudrock's over-the-limit messages
    /// coming back through Polars.
    pub fn from_polars(message: &str) -> Self {
        let kind = if mudrock_operators::limits::is_limit_message(message) {
            NodeErrorKind::Limit
        } else {
            NodeErrorKind::Data
        };
        NodeError::new(kind, message)
    }

    /// A storage failure; the scratch budget's refusal (charged where
    /// files are downloaded) is a limit, not a storage problem.
    pub fn storage(e: StoreError) -> Self {
        let message = e.to_string();
        if mudrock_operators::limits::is_limit_message(&message) {
            return NodeError::new(NodeErrorKind::Limit, message);
        }
        NodeError {
            kind: NodeErrorKind::Storage,
            retryable: e.is_retryable(),
            message,
            path: None,
        }
    }
}
