//! `sweep-worker`: parses flags (each also from `SWEEP_*` env) and serves the
//! coordinator until SIGTERM or ctrl-c, then hands unfinished tasks back.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sweep_process::LogFormat;
use sweep_worker::device::DeviceChoice;
use sweep_worker::kernels::{self, Kernels};

#[global_allocator]
static ALLOCATOR: sweep_worker::TrainingAllocator = sweep_worker::TrainingAllocator;

/// A sweep worker: leases tasks from a coordinator and trains them with burn.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The coordinator's address; several, comma-separated, for replicas: a
    /// worker whose coordinator is away moves to the next.
    #[arg(
        long = "coordinator",
        env = "SWEEP_COORDINATOR",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50051"
    )]
    coordinators: Vec<String>,
    /// Tasks to run at once; they share the CPU threads.
    #[arg(long, env = "SWEEP_SLOTS", default_value_t = 1)]
    slots: usize,
    /// Where to train: cpu, cuda or cuda:N (cuda needs a build with --features tch).
    #[arg(long, env = "SWEEP_DEVICE", default_value = "cpu")]
    device: DeviceChoice,
    /// CPU threads for training, shared by the slots' tasks (default: every core).
    #[arg(long, env = "SWEEP_THREADS")]
    threads: Option<usize>,
    /// A directory of datasets (NAME/ with IDX files, or the IDX files themselves).
    #[arg(long, env = "SWEEP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The certificate authority of an https:// coordinator (PEM; default:
    /// the system's roots).
    #[arg(long, env = "SWEEP_CA")]
    ca: Option<PathBuf>,
    /// The bearer token the coordinator expects from workers.
    #[arg(long, env = "SWEEP_WORKER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Memory its tasks may use together, in GiB (default: the device's).
    /// Each task reserves its estimate first: one that does not fit yet
    /// waits for running ones to end; one larger than all of it fails.
    #[arg(long, env = "SWEEP_MAX_MEMORY_GIB")]
    max_memory_gib: Option<f64>,
    /// Training between two checkpoints of a task ("10m", "30s"; "0s":
    /// only when the worker is told to stop). A task whose worker is lost
    /// goes on from its last checkpoint on another worker.
    #[arg(long, env = "SWEEP_CHECKPOINT_EVERY", value_parser = sweep_spec::duration::parse, default_value = sweep_worker::CHECKPOINT_EVERY)]
    checkpoint_every: Duration,
    /// Log lines as text (coloured only on a terminal) or JSON.
    #[arg(long, env = "SWEEP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// A name for this worker in listings (default: HOST-PID, or HOST-RANDOM
    /// as a container's pid 1).
    #[arg(long, env = "SWEEP_WORKER_NAME")]
    name: Option<String>,
    /// The ops CNN layers run on flex: the worker's own kernels, or burn's
    /// (to compare the two).
    #[arg(long, env = "SWEEP_KERNELS", value_enum, default_value_t = Kernels::Own)]
    kernels: Kernels,
    /// Exit with this status instead of 0 when told to stop while tasks
    /// were running (they are handed back, each with a checkpoint): lets a
    /// batch job requeue itself only while it had work
    /// (deploy/slurm/worker.sbatch).
    #[arg(long, env = "SWEEP_HANDED_BACK_EXIT_CODE")]
    handed_back_exit_code: Option<u8>,
}

/// HOST-PID; in a container, where every worker is pid 1 and, with host
/// networking, has the host's name, HOST-RANDOM.
fn default_name() -> String {
    let host = sweep_worker::hostname();
    match std::process::id() {
        1 => {
            let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap_or_default();
            format!("{host}-{}", uuid.get(..8).unwrap_or("1"))
        }
        pid => format!("{host}-{pid}"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sweep_process::init_logging("info", args.log_format);
    kernels::choose(args.kernels);
    anyhow::ensure!(args.slots >= 1, "--slots must be at least 1");
    if let Some(gib) = args.max_memory_gib {
        anyhow::ensure!(
            gib.is_finite() && gib > 0.0,
            "--max-memory-gib {gib}: give a positive number of GiB"
        );
    }
    let config = sweep_worker::Config {
        name: args.name.unwrap_or_else(default_name),
        coordinators: args.coordinators,
        token: args.token,
        ca: args
            .ca
            .map(|path| {
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
            })
            .transpose()?,
        slots: args.slots,
        device: args.device,
        threads: args.threads,
        data_dir: args.data_dir,
        lease_wait: Duration::from_secs(10),
        max_memory: args
            .max_memory_gib
            .map(|gib| (gib * (1u64 << 30) as f64) as u64),
        checkpoint_every: args.checkpoint_every,
    };
    let stopped = sweep_worker::run(config, sweep_process::shutdown_signal()).await?;
    if let Some(code) = args
        .handed_back_exit_code
        .filter(|_| stopped.handed_back > 0)
    {
        std::process::exit(code.into());
    }
    Ok(())
}
