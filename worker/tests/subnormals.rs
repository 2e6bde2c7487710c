//! A task computes with subnormal floats flushed to zero, on its own thread
//! and on every thread of the pool its ops run on (see
//! `sweep_worker::subnormals`). In a test binary of its own: it changes the
//! process's pool threads for good.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use sweep_spec::planner;
use sweep_worker::device::DeviceChoice;
use sweep_worker::experiments::{self, Context, Fresh, Sink};

const FIT: &str = r#"
name = "subnormals"
experiment = "fit"
model = { kind = "mlp", hidden = [4] }
train = { optimizer = "adam", lr = 1e-2, steps = 3 }
fit = { points = 10 }
"#;

struct Nowhere;

impl Sink for Nowhere {
    fn metric(&self, _name: &str, _step: i64, _epoch: Option<i64>, _value: f64) {}
    fn artifact(&self, _name: &str, _encoding: &str, _data: Vec<u8>) {}
}

/// Half the smallest normal f32: subnormal by IEEE, zero when flushed.
fn half_the_smallest_normal() -> f32 {
    black_box(black_box(f32::MIN_POSITIVE) * black_box(0.5))
}

fn run_a_task() {
    let params = planner::submission(FIT)
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
    experiments::run(&params, &ctx).expect("the task trains");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_task_flushes_subnormals_on_its_thread_and_on_every_pool_thread() {
    assert!(
        half_the_smallest_normal() > 0.0,
        "before any task, IEEE's gradual underflow"
    );
    run_a_task();
    assert_eq!(half_the_smallest_normal(), 0.0, "on the task's thread");
    let pool = rayon::broadcast(|_| half_the_smallest_normal());
    assert!(
        pool.iter().all(|v| *v == 0.0),
        "on the pool's threads: {pool:?}"
    );
}
