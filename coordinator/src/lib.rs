//! The sweep coordinator: it expands sweeps into tasks, keeps them in a
//! durable queue and hands them to workers over gRPC.
//!
//! - [`spec`]: the sweep spec (TOML) as written.
//! - [`planner`]: checks a spec and expands its grid into tasks.
//! - [`store`]: the [`store::Store`] trait and its PostgreSQL and SQLite
//!   backends; all state lives there.
//! - [`service`]: the gRPC services, `Coordinator` for workers and `Sweeps`
//!   for clients, with bearer-token auth.
//! - [`reaper`]: re-queues tasks whose leases expired.
//! - [`run`] wires it all to a listener; [`Config`] holds the settings.
//! - [`error`]: the error type and its one conversion to `tonic::Status`.

mod config;
pub mod error;
pub mod planner;
pub mod reaper;
mod server;
pub mod service;
pub mod spec;
pub mod store;

pub use config::Config;
pub use server::run;
