//! The service layer: what runs against PostgreSQL. The [`db`] pool and
//! migrations, the [`queue`] of run jobs (apalis' storage), the [`worker`]s
//! that take jobs and run the engine, [`runs`] (every run-state change,
//! fenced, in one place) and [`pipelines`] (saving and submitting
//! pipelines, shared by the CLI and the API).

pub mod db;
pub mod files;
pub mod pipelines;
pub mod projects;
pub mod queue;
pub mod runs;
pub mod worker;
