//! The experiments learn what the report says they learn, on real data (the
//! built-in MNIST sample) and the report's function.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use sweep_coordinator::planner;
use sweep_proto::params::TaskParams;
use sweep_worker::device::DeviceChoice;
use sweep_worker::experiments::{self, Context, Sink, TaskError};

#[derive(Default)]
struct Recorder {
    metrics: Mutex<Vec<(String, i64, f64)>>,
    artifacts: Mutex<Vec<(String, usize)>>,
}

impl Sink for Recorder {
    fn metric(&self, name: &str, step: i64, _epoch: Option<i64>, value: f64) {
        self.metrics
            .lock()
            .unwrap()
            .push((name.to_string(), step, value));
    }

    fn artifact(&self, name: &str, _encoding: &str, data: Vec<u8>) {
        self.artifacts
            .lock()
            .unwrap()
            .push((name.to_string(), data.len()));
    }
}

impl Recorder {
    fn values(&self, name: &str) -> Vec<f64> {
        let metrics = self.metrics.lock().unwrap();
        metrics
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| *v)
            .collect()
    }
}

/// The tasks a spec expands to, as a worker would receive them.
fn tasks(spec: &str) -> Vec<TaskParams> {
    planner::submission(spec)
        .expect("valid spec")
        .plan
        .tasks
        .into_iter()
        .map(|t| t.params)
        .collect()
}

fn run(params: &TaskParams, sink: &Recorder) -> Result<serde_json::Value, TaskError> {
    let stop = AtomicBool::new(false);
    let ctx = Context {
        device: DeviceChoice::Cpu.device().unwrap(),
        data_dir: None,
        sink,
        stop: &stop,
    };
    experiments::run(params, &ctx)
}

const MNIST: &str = r#"
name = "learning"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [353] }
train = { lr = 1e-3, epochs = 2, batch_size = 64, record_every = 25 }
classify = { save_weights = true, sensitivity = true }
"#;

#[test]
fn an_mlp_learns_mnist() {
    let params = &tasks(MNIST)[0];
    let sink = Recorder::default();
    let summary = run(params, &sink).unwrap();
    let test_acc = summary["test_acc"].as_f64().unwrap();
    assert!(test_acc >= 0.85, "test accuracy {test_acc}");
    assert_eq!(sink.values("test_acc").len(), 2, "one evaluation per epoch");
    let batch_loss = sink.values("batch_loss");
    assert_eq!(batch_loss.len(), 2 * 125 / 25);
    assert!(batch_loss.last().unwrap() < &batch_loss[0]);
    assert_eq!(summary["steps"], 250);
    assert!(summary["sensitivity"].as_f64().unwrap() > 0.0);
    let artifacts = sink.artifacts.lock().unwrap();
    assert_eq!(artifacts[0], ("weights/final".to_string(), 4 * 280_645));
}

#[test]
fn shuffled_labels_leave_test_accuracy_near_chance() {
    let spec = MNIST
        .replace(
            "save_weights = true, sensitivity = true",
            "shuffle_labels = true, train_subset = 2000",
        )
        .replace("epochs = 2", "epochs = 4");
    let sink = Recorder::default();
    let summary = run(&tasks(&spec)[0], &sink).unwrap();
    let (train_acc, test_acc) = (
        summary["train_acc"].as_f64().unwrap(),
        summary["test_acc"].as_f64().unwrap(),
    );
    assert!(
        test_acc < 0.2,
        "test accuracy {test_acc} should stay near 0.1"
    );
    assert!(
        train_acc > test_acc + 0.05,
        "memorising: train {train_acc}, test {test_acc}"
    );
}

#[test]
fn the_same_task_gives_the_same_metrics() {
    let spec = MNIST
        .replace(
            "save_weights = true, sensitivity = true",
            "train_subset = 500, test_subset = 200",
        )
        .replace("epochs = 2", "epochs = 1");
    let params = &tasks(&spec)[0];
    let (a, b) = (Recorder::default(), Recorder::default());
    run(params, &a).unwrap();
    run(params, &b).unwrap();
    assert_eq!(*a.metrics.lock().unwrap(), *b.metrics.lock().unwrap());
}

const FIT: &str = r#"
name = "deep-vs-shallow"
experiment = "fit"
train = { lr = 0.005, steps = 2000, record_every = 100 }
models = [
  { name = "deep", kind = "mlp", shape = [0.5, 1, 1, 1, 1, 1, 0.5] },
  { name = "shallow", kind = "mlp", shape = [1] },
]
fit = { record_grad_norm = true }
[grid]
params = [571]
seed = [0, 1, 2, 3]
"#;

#[test]
fn the_deep_net_fits_the_function_better_than_the_shallow_one() {
    let mut best = std::collections::BTreeMap::new();
    for params in tasks(FIT) {
        let sink = Recorder::default();
        let summary = run(&params, &sink).unwrap();
        let loss = summary["final_loss"].as_f64().unwrap();
        assert_eq!(sink.values("loss").len(), 20);
        assert_eq!(sink.values("grad_norm").len(), 20);
        let entry = best
            .entry(params.model_name.clone())
            .or_insert(f64::INFINITY);
        *entry = entry.min(loss);
    }
    // One seed proves nothing (the deep net sometimes collapses to a
    // constant); the best of a few runs shows the report's finding.
    assert!(best["deep"] < best["shallow"], "{best:?}");
}

#[test]
fn a_diverging_run_fails_with_the_step() {
    let spec = FIT
        .replace("lr = 0.005", "lr = 1e30")
        .replace("seed = [0, 1, 2, 3]", "seed = [0]");
    let err = run(&tasks(&spec)[0], &Recorder::default()).unwrap_err();
    assert!(matches!(err, TaskError::Diverged { .. }), "{err}");
    assert!(err.to_string().starts_with("diverged at step "), "{err}");
    assert!(!err.retryable());
}
