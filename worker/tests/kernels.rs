//! The worker's own CNN kernels against burn's ops (the A/B switch,
//! `--kernels`): the same task trains to the same metrics either way, to
//! float tolerance (the two may sum in different orders; on a CPU where
//! both reach the same GEMM kernels they agree to the bit). A test binary of its
//! own, because the switch is the whole process's.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use sweep_spec::planner;
use sweep_worker::device::DeviceChoice;
use sweep_worker::experiments::{self, Context, Fresh, Sink};
use sweep_worker::kernels::{self, Kernels};

const CNN: &str = r#"
name = "kernels"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "cnn", convs = [16, 36], fc = [128] }
train = { lr = 1e-3, epochs = 1, batch_size = 64, record_every = 1 }
classify = { train_subset = 512, test_subset = 128 }
"#;

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, i64, f64)>>);

impl Sink for Recorder {
    fn metric(&self, name: &str, step: i64, _epoch: Option<i64>, value: f64) {
        let mut metrics = self.0.lock().unwrap();
        metrics.push((name.to_string(), step, value));
    }

    fn artifact(&self, _name: &str, _encoding: &str, _data: Vec<u8>) {}
}

/// Every metric point of the spec's task, trained with `kernels`.
fn train(kernels: Kernels) -> Vec<(String, i64, f64)> {
    kernels::choose(kernels);
    let params = planner::submission(CNN)
        .unwrap()
        .plan
        .tasks
        .remove(0)
        .params;
    let sink = Recorder::default();
    let stop = AtomicBool::new(false);
    let ctx = Context {
        device: DeviceChoice::Cpu.device().unwrap(),
        data_dir: None,
        sink: &sink,
        dependencies: Vec::new(),
        stop: &stop,
        checkpoints: &Fresh,
    };
    experiments::run(&params, &ctx).unwrap();
    sink.0.into_inner().unwrap()
}

#[test]
fn a_cnn_trains_to_the_same_metrics_on_the_workers_kernels_and_on_burns() {
    let before = kernels::own_layers();
    let own = train(Kernels::Own);
    let after_own = kernels::own_layers();
    let burn = train(Kernels::Burn);
    kernels::choose(Kernels::Own);
    // 8 steps and 2 evaluations, each through two convolutions and two
    // poolings; with the switch on burn, none of them.
    assert!(after_own - before >= 40, "{} layers", after_own - before);
    assert_eq!(kernels::own_layers(), after_own, "burn ran every layer");
    assert_eq!(own.len(), burn.len(), "the same points");
    assert!(own.len() > 10, "{own:?}");
    for ((name, step, a), (other, other_step, b)) in own.iter().zip(&burn) {
        assert_eq!((name, step), (other, other_step));
        let tolerance = 1e-3 * a.abs().max(b.abs()).max(1.0);
        assert!(
            (a - b).abs() <= tolerance,
            "{name} at step {step}: {a} with the worker's kernels, {b} with burn's"
        );
    }
}
