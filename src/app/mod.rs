//! Wiring: the layered [`config`] and what is built from it (stores,
//! engines, pools). Interfaces (CLI, API) start here.

pub mod config;
