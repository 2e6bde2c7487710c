//! What the worker's test binaries share: one task run to its summary.

use std::sync::atomic::AtomicBool;

use sweep_spec::{Summary, TaskParams, planner};
use sweep_worker::device::DeviceChoice;
use sweep_worker::experiments::{self, Context, Fresh, Sink};

/// Keeps nothing: only the summary counts.
struct Nowhere;

impl Sink for Nowhere {
    fn metric(&self, _name: &str, _step: i64, _epoch: Option<i64>, _value: f64) {}
    fn artifact(&self, _name: &str, _encoding: &str, _data: Vec<u8>) {}
}

/// The summary of the first task `spec` plans, trained here on the CPU.
pub fn summary(spec: &str) -> Summary {
    let params: TaskParams = planner::submission(spec)
        .expect("a valid spec")
        .plan
        .tasks
        .remove(0)
        .params;
    let stop = AtomicBool::new(false);
    let ctx = Context {
        device: DeviceChoice::Cpu.device().expect("the CPU"),
        data_dir: None,
        sink: &Nowhere,
        dependencies: Vec::new(),
        stop: &stop,
        checkpoints: &Fresh,
    };
    experiments::run(&params, &ctx).expect("the task trains")
}
