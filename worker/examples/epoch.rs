//! Times training on one device with no coordinator: plans a sweep spec the
//! way the coordinator would, trains each of its tasks here, one after the
//! other, and prints the wall time and final metrics of each. It is the
//! training benchmark (time per epoch against PyTorch) and the body of
//! `scripts/gpu-smoke.sh`; with `--tasks` it only prints the plan, which
//! `scripts/torch_sweep.py` replays with PyTorch.
//!
//! ```sh
//! cargo run --release -p sweep-worker --example epoch -- sweeps/quick/1.2-deep-vs-shallow-mnist.toml
//! cargo run --release -p sweep-worker --features tch --example epoch -- SPEC --device cuda:0
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use sweep_spec::planner;
use sweep_worker::device::DeviceChoice;
use sweep_worker::experiments::{self, Context, Fresh, Sink};
use sweep_worker::kernels::{self, Kernels};

#[global_allocator]
static ALLOCATOR: sweep_worker::TrainingAllocator = sweep_worker::TrainingAllocator;

#[derive(Debug, Parser)]
struct Args {
    /// A sweep spec (TOML); dependent tasks (interpolation) are skipped.
    spec: PathBuf,
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Train each task this many times and report every run.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Print each task's parameters as one JSON line instead of training
    /// (what `scripts/torch_sweep.py` trains with PyTorch); a dependent
    /// task's line adds `depends_on`, the lines (from 0) it needs.
    #[arg(long)]
    tasks: bool,
    /// The ops CNN layers run on flex (see the worker's --kernels).
    #[arg(long, value_enum, default_value_t = Kernels::Own)]
    kernels: Kernels,
}

/// Keeps the last value of each metric.
#[derive(Default)]
struct Last(Mutex<BTreeMap<String, f64>>);

impl Sink for Last {
    fn metric(&self, name: &str, _step: i64, _epoch: Option<i64>, value: f64) {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        last.insert(name.to_string(), value);
    }

    fn artifact(&self, _name: &str, _encoding: &str, _data: Vec<u8>) {}
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    kernels::choose(args.kernels);
    let spec = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("cannot read {}", args.spec.display()))?;
    let plan = planner::submission(&spec)?.plan;
    if args.tasks {
        for task in &plan.tasks {
            let mut line = serde_json::to_value(&task.params)?;
            if let (false, Some(fields)) = (task.depends_on.is_empty(), line.as_object_mut()) {
                fields.insert("depends_on".into(), serde_json::json!(task.depends_on));
            }
            println!("{line}");
        }
        return Ok(());
    }
    let independent = plan.tasks.iter().filter(|t| t.depends_on.is_empty());
    let device = args.device.open()?;
    println!(
        "device {} (backend {}), {} threads",
        args.device,
        args.device.backend(),
        rayon::current_num_threads()
    );
    let stop = AtomicBool::new(false);
    for task in independent {
        let params = &task.params;
        for _ in 0..args.repeat {
            let sink = Last::default();
            let ctx = Context {
                device: device.clone(),
                data_dir: args.data_dir.clone(),
                sink: &sink,
                dependencies: Vec::new(),
                stop: &stop,
                checkpoints: &Fresh,
            };
            let started = Instant::now();
            experiments::run(params, &ctx)?;
            let seconds = started.elapsed().as_secs_f64();
            let last = sink.0.into_inner().unwrap_or_else(|p| p.into_inner());
            let shown: Vec<String> = ["train_loss", "test_loss", "test_acc", "loss"]
                .iter()
                .filter_map(|name| last.get(*name).map(|v| format!("{name} {v:.4}")))
                .collect();
            // The model as JSON lets scripts/torch_epoch.py build the same net.
            println!(
                "{:<10} params {:>9} batch {:>5} seed {:>3}  {:>8.2} s  {}  model {}",
                params.model_name,
                params.param_count,
                params.batch_size.map_or("-".into(), |b| b.to_string()),
                params.seed,
                seconds,
                shown.join("  "),
                serde_json::to_string(&params.model)?
            );
        }
    }
    Ok(())
}
