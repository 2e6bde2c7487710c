//! A task stopped after a checkpoint and resumed from it, in a fresh model
//! and optimizer, ends exactly as the same task run without a stop: the
//! same summary and, point for point, the same metrics (equal numbers on
//! flex, not close ones).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sweep_spec::{Summary, TaskParams, planner};
use sweep_worker::checkpoint::Checkpoint;
use sweep_worker::device::DeviceChoice;
use sweep_worker::experiments::{self, Checkpoints, Context, Sink, TaskError};

/// Two epochs of 8 steps, with Adam (whose moments must survive the stop).
const MLP: &str = r#"
name = "resume"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [32, 16] }
train = { lr = 1e-3, epochs = 2, batch_size = 64, record_every = 1 }
classify = { train_subset = 512, test_subset = 128 }
"#;

const CNN: &str = r#"
name = "resume-cnn"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "cnn", convs = [4, 8], fc = [16] }
train = { lr = 1e-3, epochs = 2, batch_size = 128, record_every = 1 }
classify = { train_subset = 512, test_subset = 128 }
"#;

/// 40 MSE steps, then 20 steps down the gradient norm (2.2) with Adam on
/// f64 weights; the Hessian at the flattest step (2.3).
const HESSIAN: &str = r#"
name = "resume-hessian"
experiment = "hessian"
model = { kind = "mlp", hidden = [6, 6] }
train = { optimizer = "adam", lr = 1e-2, steps = 40, record_every = 1 }

[fit]
points = 50
record_grad_norm = true
grad_norm_phase = { steps = 20, objective = "norm_squared", scale = 1.0, lr = 1e-3 }
"#;

/// The same with SGD in the gradient-norm phase, as a plain fit.
const FIT_SGD: &str = r#"
name = "resume-fit"
experiment = "fit"
model = { kind = "mlp", hidden = [6, 6] }
train = { optimizer = "adam", lr = 1e-2, steps = 40, record_every = 1 }

[fit]
points = 50
record_grad_norm = true
grad_norm_phase = { steps = 20, objective = "norm", scale = 1.0, lr = 1e-3, optimizer = "sgd" }
"#;

/// Metric points by name and step.
type Points = BTreeMap<(String, i64), f64>;

/// One attempt at a task: what it measures, in order, and its checkpoints.
/// It saves one checkpoint once `at` steps are done and then stops, as a
/// worker killed right after its checkpoint would; it may resume from an
/// earlier attempt's.
#[derive(Default)]
struct Attempt {
    at: Option<u64>,
    resume_from: Option<Vec<u8>>,
    points: Mutex<Vec<((String, i64), f64)>>,
    boundaries: AtomicU64,
    /// The checkpoint, and how many points were sent before it.
    saved: Mutex<Option<(Checkpoint, usize)>>,
    refused: Mutex<Vec<String>>,
    resumed: Mutex<Option<u64>>,
    stop: AtomicBool,
    artifacts: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Sink for Attempt {
    fn metric(&self, name: &str, step: i64, _epoch: Option<i64>, value: f64) {
        let mut points = self.points.lock().unwrap();
        points.push(((name.to_string(), step), value));
    }

    fn artifact(&self, name: &str, _encoding: &str, data: Vec<u8>) {
        self.artifacts
            .lock()
            .unwrap()
            .insert(name.to_string(), data);
    }
}

impl Checkpoints for Attempt {
    fn latest(&self) -> Option<Vec<u8>> {
        self.resume_from.clone()
    }

    /// The boundary after step `at` (the first asked is after step 1:
    /// there is nothing to keep before any training).
    fn due(&self) -> bool {
        let boundary = self.boundaries.fetch_add(1, Ordering::Relaxed);
        Some(boundary + 1) == self.at
    }

    fn save(&self, checkpoint: Checkpoint) {
        let sent = self.points.lock().unwrap().len();
        *self.saved.lock().unwrap() = Some((checkpoint, sent));
        self.stop.store(true, Ordering::Relaxed);
    }

    fn resumed(&self, step: u64) {
        *self.resumed.lock().unwrap() = Some(step);
    }

    fn refused(&self, why: &str) {
        self.refused.lock().unwrap().push(why.to_string());
    }
}

impl Attempt {
    fn stopping_at(at: u64) -> Self {
        Self {
            at: Some(at),
            ..Self::default()
        }
    }

    fn resuming(bytes: Vec<u8>) -> Self {
        Self {
            resume_from: Some(bytes),
            ..Self::default()
        }
    }

    /// Trains the task; its summary or why not.
    fn train(&self, params: &TaskParams) -> Result<Summary, TaskError> {
        let ctx = Context {
            device: DeviceChoice::Cpu.device().unwrap(),
            data_dir: None,
            sink: self,
            dependencies: Vec::new(),
            stop: &self.stop,
            checkpoints: self,
        };
        experiments::run(params, &ctx)
    }

    /// The points sent, the first `n` of them.
    fn points(&self, n: usize) -> Vec<((String, i64), f64)> {
        self.points.lock().unwrap()[..n].to_vec()
    }

    fn sent(&self) -> usize {
        self.points.lock().unwrap().len()
    }

    fn checkpoint(&self) -> (Checkpoint, usize) {
        self.saved.lock().unwrap().take().expect("a checkpoint")
    }

    fn refusals(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

fn params(spec: &str) -> TaskParams {
    planner::submission(spec)
        .unwrap()
        .plan
        .tasks
        .remove(0)
        .params
}

/// Runs the task whole, then stopped after a checkpoint at step `at` and
/// resumed from it; checks that both end the same: the summary, and the
/// stopped attempt's points up to its checkpoint with the resumed one's,
/// point for point the whole run's, equal to the bit.
fn resumes_exactly(spec: &str, at: u64) {
    let params = params(spec);
    let whole = Attempt::default();
    let summary = whole.train(&params).expect("the whole run succeeds");

    let first = Attempt::stopping_at(at);
    assert!(matches!(first.train(&params), Err(TaskError::Stopped)));
    let (checkpoint, sent) = first.checkpoint();
    assert_eq!(checkpoint.position.step, at);

    let second = Attempt::resuming(checkpoint.to_bytes());
    assert_eq!(second.train(&params).expect("it resumes"), summary);
    assert!(second.refusals().is_empty());
    assert_eq!(*second.resumed.lock().unwrap(), Some(at));

    let mut joined = Points::new();
    for (key, value) in first
        .points(sent)
        .into_iter()
        .chain(second.points(second.sent()))
    {
        assert!(joined.insert(key.clone(), value).is_none(), "{key:?} twice");
    }
    let whole: Points = whole.points(whole.sent()).into_iter().collect();
    assert_eq!(joined.len(), whole.len(), "none lost");
    for (key, value) in &whole {
        assert_eq!(
            joined.get(key).map(|v| v.to_bits()),
            Some(value.to_bits()),
            "{key:?}: {value} in the whole run"
        );
    }
}

#[test]
fn an_mlp_stopped_mid_epoch_resumes_to_the_same_numbers() {
    resumes_exactly(MLP, 5);
}

#[test]
fn an_mlp_stopped_at_an_epochs_end_resumes_to_the_same_numbers() {
    resumes_exactly(MLP, 8);
}

#[test]
fn a_cnn_stopped_in_its_second_epoch_resumes_to_the_same_numbers() {
    resumes_exactly(CNN, 6);
}

#[test]
fn a_hessian_task_stopped_in_its_mse_phase_resumes_to_the_same_numbers() {
    resumes_exactly(HESSIAN, 17);
}

#[test]
fn a_hessian_task_stopped_in_its_gradient_norm_phase_resumes_to_the_same_numbers() {
    // 40 MSE steps, then 7 of the gradient-norm phase: Adam's f64 moments,
    // the flattest step's weights and the lowest loss must all survive.
    resumes_exactly(HESSIAN, 47);
}

#[test]
fn a_fit_with_an_sgd_gradient_norm_phase_resumes_to_the_same_numbers() {
    resumes_exactly(FIT_SGD, 40);
    resumes_exactly(FIT_SGD, 55);
}

/// The task run with `keep_checkpoint`: its summary and the bytes of its
/// `checkpoint` artifact.
fn kept(spec: &str) -> (Summary, Checkpoint, Vec<u8>) {
    let mut params = params(spec);
    params.keep_checkpoint = true;
    let run = Attempt::default();
    let summary = run.train(&params).unwrap();
    let bytes = run
        .artifacts
        .lock()
        .unwrap()
        .remove(sweep_proto::CHECKPOINT)
        .expect("the final state is kept as the checkpoint artifact");
    let task = sweep_worker::checkpoint::fingerprint(&params);
    let checkpoint = Checkpoint::from_bytes(&bytes, &task).expect("it is this task's");
    (summary, checkpoint, bytes)
}

#[test]
fn a_kept_checkpoint_is_the_final_state_and_resuming_from_it_trains_nothing_more() {
    for (spec, steps) in [(MLP, 16), (HESSIAN, 60)] {
        let (summary, checkpoint, bytes) = kept(spec);
        assert_eq!(checkpoint.position.step, steps, "{spec}");
        let mut params = params(spec);
        params.keep_checkpoint = true;
        let again = Attempt::resuming(bytes);
        assert_eq!(again.train(&params).unwrap(), summary, "{spec}");
        assert_eq!(*again.resumed.lock().unwrap(), Some(steps));
        let trained = again.points(again.sent());
        assert!(
            trained
                .iter()
                .all(|((name, _), _)| !name.starts_with("batch_")),
            "no training step ran again: {trained:?}"
        );
    }
    let plain = Attempt::default();
    plain.train(&params(MLP)).unwrap();
    assert!(
        plain.artifacts.lock().unwrap().is_empty(),
        "kept only when asked"
    );
}

#[test]
fn a_checkpoint_of_another_task_or_unreadable_is_refused_and_the_task_starts_fresh() {
    let params = params(MLP);
    let first = Attempt::stopping_at(3);
    assert!(first.train(&params).is_err());
    let bytes = first.checkpoint().0.to_bytes();
    let mut other = params.clone();
    other.seed += 1;
    let whole = Attempt::default().train(&other).unwrap();

    let second = Attempt::resuming(bytes.clone());
    assert_eq!(
        second.train(&other).unwrap(),
        whole,
        "it trained from the start"
    );
    let refused = second.refusals();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].contains("another task"), "{refused:?}");

    let third = Attempt::resuming(bytes[..bytes.len() / 2].to_vec());
    third.train(&params).unwrap();
    assert!(
        third.refusals()[0].contains("unreadable"),
        "{:?}",
        third.refusals()
    );
}
