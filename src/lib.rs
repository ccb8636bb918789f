//! mudrock: the execution side of MudRock.
//!
//! A pipeline document is validated ([`validate`]) into a [`pipeline::Pipeline`],
//! planned and run by the [`engine`] against an [`store::ObjectStore`], with a
//! content [`cache`] and the run [`artifacts`] laid out as the storage spec
//! says. The [`queue`] (PostgreSQL, apalis' storage) feeds [`worker`]s that
//! run the engine for the platform.

// model: plain data.
pub mod model;
// core: validate, plan, run, store; no database, no HTTP.
pub mod artifacts;
pub mod cache;
pub mod engine;
pub mod error;
pub mod hash;
pub mod limits;
pub mod retry;
pub mod store;
pub mod validate;
// service: the database, the queue, workers.
pub mod service;
// app: configuration and wiring; interfaces on top.
pub mod app;
pub mod cli;
pub mod sandbox;

pub use mudrock_operators as operators;
