//! The sweep worker: leases tasks from a coordinator and trains them with
//! burn.
//!
//! - [`device`]: turns `cpu` / `cuda:N` into a burn device, in one place.
//! - [`data`]: MNIST-format IDX datasets, where to find them, the built-in
//!   sample.
//! - [`model`]: MLPs and CNNs from a task's shape, weights as a flat vector;
//!   [`mlp64`]: an MLP's exact loss gradient in f64, for second-order work.
//! - [`experiments`]: one module per experiment kind.
//! - [`runner`]: the worker's loop: register, lease, heartbeat, run, end;
//!   [`client`] connects and retries, [`report`] ships metrics and artifacts.
//! - [`rng`]: the seeded generator behind weights, data order and shuffles.
//! - [`error`]: dataset errors.

pub mod client;
pub mod data;
pub mod device;
pub mod error;
pub mod experiments;
pub mod mlp64;
pub mod model;
pub mod report;
pub mod rng;
pub mod runner;

pub use runner::{Config, run};
