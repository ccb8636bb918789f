//! Why a worker could not start: its database or its store.

use crate::error::Fault;
use crate::service::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl WorkerError {
    pub fn fault(&self) -> Fault {
        match self {
            WorkerError::Db(e) => e.fault(),
            WorkerError::Store(_) => Fault::External,
        }
    }
}
