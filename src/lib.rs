//! mudrock: the execution side of MudRock.
//!
//! A pipeline document is validated ([`validate`]) into a
//! [`model::pipeline::Pipeline`], planned and run by the [`engine`] against
//! an [`store::ObjectStore`], with a content [`cache`] and the run's records
//! ([`model`]) laid out as the storage spec says. The [`service`] layer
//! (PostgreSQL: runs, the apalis queue, workers) runs the engine for the
//! platform; [`app`] composes the configuration; [`cli`] is on top.
//! Dependencies point one way: model → core → service → app/interfaces.

// model: plain data.
pub mod model;
// core: validate, plan, run, store; no database, no HTTP.
pub mod artifacts;
pub mod bounded;
pub mod cache;
pub mod engine;
pub mod error;
pub mod hash;
pub mod inspect;
pub mod limits;
pub mod outputs;
pub mod parquet_scan;
pub mod retry;
pub mod sandbox;
pub mod schemas;
pub mod store;
pub mod validate;
// service: the database, the queue, workers. The `service` feature (on by
// default) holds it and everything above it; without it the library is the
// core alone, as the fuzz targets build it.
#[cfg(feature = "service")]
pub mod service;
// schedule: fire times as pure time arithmetic (core code; with the
// service because only the scheduler uses it).
#[cfg(feature = "service")]
pub mod schedule;
// app: configuration and wiring; interfaces on top.
#[cfg(feature = "service")]
pub mod api;
#[cfg(feature = "service")]
pub mod app;
#[cfg(feature = "service")]
pub mod cli;

pub use mudrock_operators as operators;
