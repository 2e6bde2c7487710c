//! What a checkpoint costs: trains a few steps of each model the report's
//! longest tasks use, takes a checkpoint at every step boundary after the
//! second (Adam's state exists by then) and resumes from the last one, and
//! prints the median time to take one (weights, optimizer state, encoding),
//! the time to load one into a fresh model and optimizer, and its size.
//! Shipping it to the coordinator is on top (its size over the network and
//! one database write).
//!
//! ```sh
//! cargo run --release -p sweep-worker --example checkpoint
//! ```

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sweep_spec::planner;
use sweep_worker::checkpoint::Checkpoint;
use sweep_worker::device::DeviceChoice;
use sweep_worker::experiments::{self, Checkpoints, Context, Sink};

#[global_allocator]
static ALLOCATOR: sweep_worker::TrainingAllocator = sweep_worker::TrainingAllocator;

/// The models, as a spec's `model` line.
const MODELS: [(&str, &str); 4] = [
    (
        "3.2's widest (w = 100)",
        r#"{ kind = "mlp", hidden = [100, 100, 100, 100, 100] }"#,
    ),
    (
        "DNN1",
        r#"{ kind = "mlp", hidden = [100, 200, 200, 200, 200, 200, 100] }"#,
    ),
    ("CNN1", r#"{ kind = "cnn", convs = [16, 36], fc = [128] }"#),
    (
        "CNN2",
        r#"{ kind = "cnn", convs = [16, 36, 144], fc = [128] }"#,
    ),
];

/// Steps trained per model; a checkpoint at each boundary after the second.
const STEPS: u64 = 12;

struct Nothing;

impl Sink for Nothing {
    fn metric(&self, _name: &str, _step: i64, _epoch: Option<i64>, _value: f64) {}
    fn artifact(&self, _name: &str, _encoding: &str, _data: Vec<u8>) {}
}

/// Times each checkpoint from the boundary that asked for it to its bytes,
/// and a resume from `latest()` to `resumed()`.
#[derive(Default)]
struct Timer {
    latest: Mutex<Option<Vec<u8>>>,
    boundaries: Mutex<u64>,
    asked: Mutex<Option<Instant>>,
    taken: Mutex<Vec<Duration>>,
    bytes: Mutex<Vec<u8>>,
    loaded: Mutex<Option<Duration>>,
}

impl Checkpoints for Timer {
    fn latest(&self) -> Option<Vec<u8>> {
        let latest = self.latest.lock().unwrap().take();
        *self.asked.lock().unwrap() = Some(Instant::now());
        latest
    }

    fn due(&self) -> bool {
        let mut boundaries = self.boundaries.lock().unwrap();
        *boundaries += 1;
        let due = *boundaries > 2;
        if due {
            *self.asked.lock().unwrap() = Some(Instant::now());
        }
        due
    }

    fn save(&self, checkpoint: Checkpoint) {
        let bytes = checkpoint.to_bytes();
        let asked = self.asked.lock().unwrap().take().expect("due first");
        self.taken.lock().unwrap().push(asked.elapsed());
        *self.bytes.lock().unwrap() = bytes;
    }

    fn resumed(&self, _step: u64) {
        let asked = self.asked.lock().unwrap().take().expect("latest first");
        *self.loaded.lock().unwrap() = Some(asked.elapsed());
    }
}

fn main() -> anyhow::Result<()> {
    println!("| model | parameters | bytes | take (median ms) | load (ms) |");
    println!("|---|---:|---:|---:|---:|");
    for (name, model) in MODELS {
        let spec = format!(
            "name = \"checkpoint\"\nexperiment = \"classify\"\ndataset = \"mnist-sample\"\n\
             model = {model}\ntrain = {{ lr = 1e-4, epochs = 1, batch_size = 64 }}\n\
             classify = {{ train_subset = {}, test_subset = 64 }}\n",
            64 * STEPS
        );
        let params = planner::submission(&spec)?.plan.tasks.remove(0).params;
        let train = |checkpoints: &Timer| {
            let stop = AtomicBool::new(false);
            let ctx = Context {
                device: DeviceChoice::Cpu.device().expect("the cpu"),
                data_dir: None,
                sink: &Nothing,
                dependencies: Vec::new(),
                stop: &stop,
                checkpoints,
            };
            experiments::run(&params, &ctx)
        };
        let taking = Timer::default();
        train(&taking)?;
        let bytes = taking.bytes.lock().unwrap().clone();
        let mut taken = taking.taken.lock().unwrap().clone();
        taken.sort();
        let resuming = Timer {
            latest: Mutex::new(Some(bytes.clone())),
            ..Timer::default()
        };
        train(&resuming)?;
        let loaded = resuming.loaded.lock().unwrap().expect("it resumed");
        println!(
            "| {name} | {} | {} | {:.1} | {:.1} |",
            params.param_count,
            bytes.len(),
            taken[taken.len() / 2].as_secs_f64() * 1e3,
            loaded.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
