//! The service layer: what runs against PostgreSQL. The [`db`] pool and
//! migrations, the [`queue`] of run jobs (apalis' storage), the [`worker`]s
//! that take jobs and run the engine, [`runs`] (every run-state change,
//! fenced, in one place), [`pipelines`] (saving and submitting
//! pipelines, shared by the CLI and the API), the [`scheduler`] that fires
//! recurring runs and the [`schedules`] it fires, and the
//! [`lineage_sink`] that sends OpenLineage events.

pub mod audit;
pub mod backfills;
pub mod db;
pub mod files;
pub mod gc;
pub mod import;
pub mod lineage_sink;
pub mod pipelines;
pub mod projects;
pub mod queue;
pub mod runs;
pub mod scheduler;
pub mod schedules;
pub mod worker;
