//! The coordinator over real gRPC: a server on 127.0.0.1:0 with a SQLite file
//! (or a fresh PostgreSQL database) and tonic clients driving whole task life
//! cycles, one module per area.

mod cache;
mod checkpoints;
#[path = "../common/mod.rs"]
mod common;
mod helpers;
mod input;
mod lifecycle;
mod service;
mod wire;
