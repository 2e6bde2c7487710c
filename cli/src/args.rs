//! The command line: every verb, its flags, and the connection flags that
//! also come from the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sweep_proto::SweepRef;
use sweep_report::stats::Interval;

/// Run parameter, batch-size and seed sweeps on one machine or a cluster,
/// and turn their metrics into the report's tables and figures.
#[derive(Debug, Parser)]
#[command(name = "sweep", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a sweep on this machine, then print its report.
    #[cfg(feature = "local")]
    ///
    /// An embedded coordinator keeps the sweep in a SQLite file, local
    /// workers train its tasks over gRPC, a progress bar follows it. Ctrl-c
    /// hands the running tasks back; the same command again resumes the
    /// sweep.
    Run(RunArgs),
    /// Submit a sweep spec to a coordinator and print the new sweep's id.
    Submit {
        /// The sweep spec (TOML).
        spec: PathBuf,
        /// Train every task, even one whose result another task already
        /// has, and offer none of its results to later sweeps.
        #[arg(long)]
        no_cache: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Grow a sweep: add the tasks of an edited spec that it does not have.
    ///
    /// More seeds, another width, one more batch size: the tasks the
    /// sweep already has (same parameters) stay as they are, the new ones
    /// are queued after them, and the spec becomes the sweep's.
    Extend {
        /// The sweep's id or name (`sweep status` lists them).
        sweep: SweepRef,
        /// The edited spec (TOML).
        spec: PathBuf,
        /// Train the new tasks even where the result cache has their results.
        #[arg(long)]
        no_cache: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// One sweep's progress, or every sweep's when none is named.
    Status {
        /// The sweep's id or name; without it, every sweep.
        sweep: Option<SweepRef>,
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        output: Output,
    },
    /// Follow a sweep until it ends.
    ///
    /// Exits non-zero unless every task succeeded.
    Watch {
        /// The sweep's id or name (`sweep status` lists them).
        sweep: SweepRef,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Cancel a sweep.
    ///
    /// Queued tasks stop at once, running ones at their worker's next heartbeat.
    Cancel {
        /// The sweep's id or name (`sweep status` lists them).
        sweep: SweepRef,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Queue a sweep's failed tasks again (only those).
    Retry {
        /// The sweep's id or name (`sweep status` lists them).
        sweep: SweepRef,
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
        /// The sweep's id or name (`sweep status` lists them).
        sweep: SweepRef,
        /// Only tasks in these states (blocked, queued, leased, succeeded,
        /// failed, cancelled); repeat or separate with commas.
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        output: Output,
    },
    /// One row per swept setting: every summary number's mean over seeds
    /// and how well it is known.
    ///
    /// Final losses, accuracies and the experiment's own numbers (minimal
    /// ratio, sensitivity, ...), aggregated in the database. The table hides
    /// bookkeeping numbers and shows `mean ± --interval`; CSV and JSON have
    /// every number with its n, mean, std, se and 95% interval.
    Report {
        /// The sweep's id or name (`sweep status` lists them).
        sweep: SweepRef,
        #[command(flatten)]
        style: ReportStyle,
        #[command(flatten)]
        source: ReadFrom,
        #[command(flatten)]
        output: Output,
    },
    /// Which of two settings is better, and how sure that is.
    ///
    /// Every two settings of the sweep that differ only in --by, compared
    /// over their seeds: Welch's t on the means (the difference with its
    /// 95% interval), and Mann-Whitney's U on P(a > b), the chance that a
    /// seed of one beats a seed of the other, which a collapsed seed cannot
    /// swamp the way it swamps a mean. All the tests are Holm-corrected
    /// together; each pair gets a verdict naming the test that decided it.
    Compare {
        /// The sweep's id or name (`sweep status` lists them).
        sweep: SweepRef,
        /// The parameter the settings differ in: model, params, batch_size,
        /// width, lr, or any column `sweep report` shows.
        #[arg(long)]
        by: String,
        /// The summary number compared [default: test_acc, else final_loss].
        #[arg(long)]
        metric: Option<String>,
        /// Compare every other level of --by with this one only.
        #[arg(long)]
        baseline: Option<String>,
        /// The chance of any false verdict among all the pairs.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Pair the seeds both settings ran (paired t and sign test).
        #[arg(long)]
        paired: bool,
        #[command(flatten)]
        source: ReadFrom,
        #[command(flatten)]
        output: Output,
    },
    /// Draw the report's figures from a sweep's results.
    ///
    /// Curves per model, figures against parameter count and batch size,
    /// loss against minimal ratio, interpolation paths, PCA of weight
    /// snapshots: each one the sweep has data for.
    Plot {
        /// The sweep's id or name (`sweep status` lists them).
        sweep: SweepRef,
        /// The directory the figures are written to (created if missing).
        #[arg(long, default_value = "figures")]
        out: PathBuf,
        /// SVG (sharp at any size) or PNG.
        #[arg(long, value_enum, default_value_t = ImageFormat::Svg)]
        format: ImageFormat,
        #[command(flatten)]
        source: ReadFrom,
    },
    /// Every metric point of a sweep, for notebooks.
    ///
    /// One row per task, metric and step; CSV, or JSON Lines with `--format json`.
    Export {
        /// The sweep's id or name (`sweep status` lists them).
        sweep: SweepRef,
        #[command(flatten)]
        source: ReadFrom,
        /// CSV, or JSON Lines (one object per line).
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
    /// Serve the web dashboard over a sweep database or a coordinator,
    /// read-only.
    ///
    /// Sweeps, their reports, figures and tasks, and the workers, updated
    /// live while others write. A coordinator serves the same dashboard
    /// itself, at / on its own address; this one needs only its read RPCs
    /// (--endpoint and --token), or the database.
    Dashboard {
        #[command(flatten)]
        source: ReadFrom,
        /// The address to serve on; another host than this one's loopback
        /// lets anyone who reaches it read the results.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// The result cache: what it holds; forgetting results.
    ///
    /// A task whose result key (its parameters, the data's digest, the
    /// backend and the training code's result version) matches a finished
    /// task's succeeds pointing at that task's results instead of training.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Datasets the full-scale specs need.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// How many results the cache holds and how many tasks came from it.
    Stats {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(flatten)]
        output: Output,
    },
    /// Forget results, so that tasks with their keys train again.
    ///
    /// Deletes no metric and no artifact: tasks that already point at a
    /// result keep it, and their sweeps report as before.
    Forget {
        /// Results of tasks that ended before this day (YYYY-MM-DD, UTC).
        #[arg(long, conflicts_with = "sweep", required_unless_present = "sweep")]
        before: Option<String>,
        /// Results of one sweep's tasks (its id or name).
        #[arg(long)]
        sweep: Option<SweepRef>,
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download the whole MNIST or Fashion-MNIST (four IDX files), or
    /// import a local copy of it.
    ///
    /// Downloads are checked against their published SHA-256; a partial
    /// download continues where it stopped. With --from, a copy on this
    /// machine (for nodes without internet) is checked by its decompressed
    /// content, so a copy gzipped by another tool, or not at all, is
    /// accepted. They land in DIR/NAME, where workers with `--data-dir DIR`
    /// find dataset NAME.
    Fetch {
        /// mnist or fashion-mnist.
        name: String,
        /// The datasets directory (give workers the same as --data-dir).
        #[arg(long, env = "SWEEP_DATA_DIR", default_value = "data")]
        dir: PathBuf,
        /// A mirror to use instead of the dataset's own list (a base URL
        /// serving the files by name); repeat to try several in turn.
        #[arg(long = "mirror", conflicts_with = "from")]
        mirrors: Vec<String>,
        /// A directory holding the four files (FILE.gz or FILE, in it or in
        /// its NAME subdirectory) to import instead of downloading.
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

#[cfg(feature = "local")]
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The sweep spec (TOML), e.g. sweeps/quick/1.2-deep-vs-shallow-mnist.toml.
    pub spec: PathBuf,
    /// Local workers, each training one task at a time (default: one per
    /// core); their tasks share the cores, so the last task gets them all.
    #[arg(long)]
    pub workers: Option<usize>,
    /// The SQLite file that keeps the sweep (created if missing).
    #[arg(long, default_value = "sweeps.db", env = "SWEEP_DB")]
    pub db: PathBuf,
    /// Where the workers train: cpu, or cuda[:N] with a build that has `--features tch`.
    #[arg(long, default_value = "cpu")]
    pub device: sweep_worker::device::DeviceChoice,
    /// A directory of datasets (see the README); the MNIST sample is built in.
    #[arg(long, env = "SWEEP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The address the embedded coordinator, and its web dashboard, serve on
    /// (port 0: any free port; the dashboard's URL is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Serve no dashboard.
    #[arg(long)]
    pub no_dashboard: bool,
    /// Train every task, even one whose result an earlier sweep in the file
    /// already has, and offer none of its results to later sweeps.
    #[arg(long)]
    pub no_cache: bool,
    /// Training between two checkpoints of a task ("10m", "30s"; "0s": only
    /// at Ctrl-C). The next run of the same spec goes on from them.
    #[arg(long, env = "SWEEP_CHECKPOINT_EVERY", value_parser = sweep_spec::duration::parse, default_value = sweep_worker::CHECKPOINT_EVERY)]
    pub checkpoint_every: std::time::Duration,
    #[command(flatten)]
    pub style: ReportStyle,
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
    /// The certificate authority of an https:// coordinator (PEM; default:
    /// the system's roots).
    #[arg(long, env = "SWEEP_CA")]
    pub ca: Option<PathBuf>,
}

/// Where results are read from: the coordinator when an endpoint is given
/// (`--endpoint` or `SWEEP_ENDPOINT`), the database at `--database-url`
/// otherwise.
#[derive(Debug, Args)]
pub struct ReadFrom {
    /// Read through the coordinator at this address, with --token; when
    /// given (here or in SWEEP_ENDPOINT) it is used, not --database-url.
    #[arg(long, env = "SWEEP_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The bearer token the coordinator expects from clients.
    #[arg(long, env = "SWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The certificate authority of an https:// coordinator (PEM; default:
    /// the system's roots).
    #[arg(long, env = "SWEEP_CA")]
    pub ca: Option<PathBuf>,
    /// Without an endpoint, read this database: postgres://USER@HOST/DB, or
    /// sqlite://PATH (or a plain path) for a file written by `sweep run` or
    /// a coordinator. It is only read: nothing is created or migrated.
    #[arg(long, env = "SWEEP_DATABASE_URL", default_value = "sqlite://sweeps.db")]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct Output {
    /// How listings are printed: aligned for people, CSV or JSON for scripts.
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

/// The image formats figures are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageFormat {
    Svg,
    Png,
}

/// How `sweep report` and the end of `sweep run` write each summary number.
#[derive(Debug, Args)]
pub struct ReportStyle {
    /// What the table's `±` is: ci95, half the 95% confidence interval of
    /// the mean (Student's t with n-1 degrees of freedom, what a comparison
    /// of settings needs); std, the spread of the seeds; or se, the
    /// standard error of the mean. CSV and JSON have all of them.
    #[arg(long, value_parser = interval, default_value = "ci95")]
    pub interval: Interval,
}

fn interval(text: &str) -> Result<Interval, String> {
    Interval::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Interval::ALL.iter().map(|i| i.as_str()).collect();
        format!("one of {}", names.join(", "))
    })
}
