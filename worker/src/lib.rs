//! The sweep worker: leases tasks from a coordinator and trains them with
//! burn.
//!
//! - [`device`]: turns `cpu` / `cuda:N` into a burn device, in one place.
//! - [`data`]: MNIST-format IDX datasets, where to find them, the built-in
//!   sample.
//! - [`model`]: MLPs and CNNs from a task's shape, weights as a flat vector;
//!   [`kernels`]: their convolution and pooling on flex, forward and
//!   backward;
//!   [`mlp64`]: an MLP's exact loss gradient in f64, for second-order work.
//! - [`experiments`]: one module per experiment kind; [`memory`]: what a
//!   task needs of its device, checked before it starts; [`checkpoint`]: a
//!   task's training state at a step boundary, as bytes another attempt
//!   resumes from; [`keeper`]: a running task's checkpoints, fetched and
//!   shipped.
//! - [`runner`]: the worker's loop: lease as many tasks as there are free
//!   slots, run them, hand them back on shutdown.
//! - [`session`]: registration, the long poll and the heartbeat; [`task`]:
//!   one leased task from start to end; [`claim`]: its result key claimed
//!   before it trains, so a task another already trained does not train
//!   again; [`shipper`]: ships its metrics and
//!   artifacts in the background; [`completer`]: sends the completions of
//!   tasks on the next lease call, or on one of their own; [`slots`]: how
//!   many slots hold a task; [`threads`]: where tasks train
//!   (one pool of threads that they share).
//! - [`subnormals`]: a task computes with subnormal floats flushed to
//!   zero (they cost Intel CPUs microcode assists).
//! - [`rng`]: the seeded generator behind weights, data order and shuffles
//!   (`sweep_spec::rng`, re-exported).
//! - [`error`]: dataset errors.
//! - [`TrainingAllocator`]: the allocator binaries that train declare.

pub mod checkpoint;
pub mod claim;
pub mod completer;
pub mod data;
pub mod device;
pub mod error;
pub mod experiments;
pub mod keeper;
pub mod kernels;
pub mod memory;
pub mod mlp64;
pub mod model;
pub use sweep_spec::rng;
pub mod runner;
pub mod session;
pub mod shipper;
pub mod slots;
pub mod subnormals;
pub mod task;
pub mod threads;

pub use runner::{CHECKPOINT_EVERY, Config, Stopped, hostname, run};

/// The `#[global_allocator]` of every binary that trains. glibc's malloc
/// hands the large buffers of a training step back to the kernel when they
/// are freed and faults them in again on the next step: the shallow
/// 1-190-1 fit spent most of its time in page faults and ran 3x slower than
/// with mimalloc, which keeps freed memory for reuse (docs/BENCHMARKS.md).
pub use mimalloc::MiMalloc as TrainingAllocator;
