//! The sweep coordinator: it expands sweeps into tasks, keeps them in a
//! durable queue and hands them to workers over gRPC.
//!
//! Specs are planned by `sweep_spec`; the types that cross the wire are
//! `sweep_proto`'s.
//!
//! - [`store`]: the store traits (sweeps, workers, the queue, results) and
//!   their PostgreSQL and SQLite backends; all state lives there.
//! - [`service`]: the gRPC services, `Coordinator` for workers and `Sweeps`
//!   for clients, with bearer-token auth.
//! - [`reaper`]: re-queues tasks whose leases expired.
//! - [`seeder`]: adds seeds to sweeps with adaptive seeds, round by round.
//! - [`metrics`]: Prometheus metrics at `/metrics` on the gRPC port.
//! - [`dashboard`]: the web dashboard, on the gRPC port too.
//! - [`run`] wires it all to a listener; [`Config`] holds the settings.
//! - [`error`]: the error type and its one conversion to `tonic::Status`.

mod config;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod reaper;
pub mod seeder;
mod server;
pub mod service;
pub mod store;

pub use config::{Config, TlsIdentity};
pub use server::run;
