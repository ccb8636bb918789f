//! mudrock: the execution side of MudRock.
//!
//! A pipeline document is validated ([`validate`]) into a [`pipeline::Pipeline`],
//! planned and run by the [`engine`] against an [`store::ObjectStore`], with a
//! content [`cache`] and the run [`artifacts`] laid out as the storage spec
//! says. The [`queue`] (PostgreSQL, apalis' storage) feeds [`worker`]s that
//! run the engine for the platform.

pub mod artifacts;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod engine;
pub mod error;
pub mod hash;
pub mod limits;
pub mod pipeline;
pub mod queue;
pub mod sandbox;
pub mod store;
pub mod validate;
pub mod worker;

pub use mudrock_operators as operators;
