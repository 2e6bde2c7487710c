//! One suite for the `Store` contract, run against a real SQLite file and a
//! real PostgreSQL database, one module per area of the contract.

mod cache;
mod checkpoints;
#[path = "../common/mod.rs"]
mod common;
mod extend;
mod helpers;
mod queue;
mod reader;
mod reports;
mod results;
mod rounds;
mod schema;
mod sweeps;
