//! A task computes with subnormal floats flushed to zero, on its own thread
//! and on every thread of the pool its ops run on (see
//! `sweep_worker::subnormals`). In a test binary of its own: it changes the
//! process's pool threads for good.

mod common;

use std::hint::black_box;

const FIT: &str = r#"
name = "subnormals"
experiment = "fit"
model = { kind = "mlp", hidden = [4] }
train = { optimizer = "adam", lr = 1e-2, steps = 3 }
fit = { points = 10 }
"#;

/// Half the smallest normal f32: subnormal by IEEE, zero when flushed.
fn half_the_smallest_normal() -> f32 {
    black_box(black_box(f32::MIN_POSITIVE) * black_box(0.5))
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_task_flushes_subnormals_on_its_thread_and_on_every_pool_thread() {
    assert!(
        half_the_smallest_normal() > 0.0,
        "before any task, IEEE's gradual underflow"
    );
    common::summary(FIT);
    assert_eq!(half_the_smallest_normal(), 0.0, "on the task's thread");
    let pool = rayon::broadcast(|_| half_the_smallest_normal());
    assert!(
        pool.iter().all(|v| *v == 0.0),
        "on the pool's threads: {pool:?}"
    );
}
