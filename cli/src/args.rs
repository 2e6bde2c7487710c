//! The command line: every verb, its flags, and the connection flags that
//! also come from the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sweep_worker::device::DeviceChoice;

use crate::plot::ImageFormat;

/// Run parameter, batch-size and seed sweeps on one machine or a cluster,
/// and turn their metrics into the report's tables and figures.
#[derive(Debug, Parser)]
#[command(name = "sweep", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a sweep on this machine: an embedded coordinator (SQLite file),
    /// local workers over gRPC, live progress, then the report table.
    /// Running it again with the same --db resumes the sweep.
    Run(RunArgs),
    /// Submit a sweep spec to a coordinator and print the new sweep's id.
    Submit {
        spec: PathBuf,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// One sweep's progress, or every sweep's when no id is given.
    Status {
        sweep: Option<u64>,
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        output: Output,
    },
    /// Follow a sweep until it ends; exits non-zero unless every task succeeded.
    Watch {
        sweep: u64,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Cancel a sweep: queued tasks at once, running ones at their next heartbeat.
    Cancel {
        sweep: u64,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Queue a sweep's failed tasks again (only those).
    Retry {
        sweep: u64,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// The workers a coordinator knows: devices, slots, what they run.
    Workers {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        output: Output,
    },
    /// A sweep's tasks, optionally only those in some states.
    Tasks {
        sweep: u64,
        /// Only tasks in these states (blocked, queued, leased, succeeded,
        /// failed, cancelled); repeat or separate with commas.
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        output: Output,
    },
    /// One row per swept setting: mean ± std over seeds of the final losses,
    /// accuracies and the experiment's own figures, read from the database.
    Report {
        sweep: u64,
        #[command(flatten)]
        database: Database,
        #[command(flatten)]
        output: Output,
    },
    /// Draw the report's figures from a sweep's results: curves per model,
    /// figures against parameter count and batch size, loss against minimal
    /// ratio, interpolation paths, PCA of weight snapshots.
    Plot {
        sweep: u64,
        /// The directory the figures are written to (created if missing).
        #[arg(long, default_value = "figures")]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = ImageFormat::Svg)]
        format: ImageFormat,
        #[command(flatten)]
        database: Database,
    },
    /// Every metric point of a sweep (one row per task, metric and step),
    /// for notebooks.
    Export {
        sweep: u64,
        #[command(flatten)]
        database: Database,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The sweep spec (TOML), e.g. sweeps/quick/1.2-deep-vs-shallow-mnist.toml.
    pub spec: PathBuf,
    /// Local workers, each training one task at a time on its share of the
    /// cores (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// The SQLite file that keeps the sweep (created if missing).
    #[arg(long, default_value = "sweeps.db", env = "SWEEP_DB")]
    pub db: PathBuf,
    /// Where the workers train: cpu, or cuda[:N] with a build that has `--features tch`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// A directory of datasets (see the README); the MNIST sample is built in.
    #[arg(long, env = "SWEEP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub output: Output,
}

/// How to reach a coordinator.
#[derive(Debug, Args)]
pub struct Endpoint {
    /// The coordinator's address.
    #[arg(long, env = "SWEEP_ENDPOINT", default_value = "http://127.0.0.1:50051")]
    pub endpoint: String,
    /// The bearer token the coordinator expects from clients.
    #[arg(long, env = "SWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Where the metrics are.
#[derive(Debug, Args)]
pub struct Database {
    /// postgres://USER@HOST/DB, or sqlite://PATH (or a plain path) for a
    /// file written by `sweep run` or a coordinator.
    #[arg(long, env = "SWEEP_DATABASE_URL", default_value = "sqlite://sweeps.db")]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct Output {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}
