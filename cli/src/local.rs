//! `sweep run`: the whole system on one machine. The spec is planned here,
//! once, and stored in a SQLite file, or found there again by its spec key;
//! an in-process coordinator on a loopback port serves it and local workers
//! lease its tasks over real gRPC, exactly as remote workers would.
//! Interrupted, the workers hand their tasks back; the same command again
//! resumes the sweep where it stopped.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sweep_coordinator::store::{self, SweepStore};
use sweep_proto::client::{Credentials, SweepsClient};
use sweep_proto::{SweepId, TaskState};
use sweep_spec::Submission;
use sweep_spec::planner;
use sweep_worker::data;
use sweep_worker::error::DataError;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::args::RunArgs;
use crate::cluster::{ended, read_spec};
use crate::progress::{failures, follow};
use crate::report;

/// How a `sweep run` ended short of its sweep's end.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted: running tasks were handed back; run the same command again to resume sweep {0}"
)]
pub struct Interrupted(pub SweepId);

pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let spec_toml = read_spec(&args.spec)?;
    args.device.open()?;
    // Planned here, once: a bad spec fails before any file is created.
    let mut submission = planner::submission(&spec_toml)
        .map_err(|err| anyhow::anyhow!("{}: {err}", args.spec.display()))?;
    check_datasets(&submission, args.data_dir.as_deref())?;
    submission.cache = !args.no_cache;
    let url = format!("sqlite://{}", args.db.display());
    let store = store::connect(&url)
        .await
        .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", args.db.display()))?;
    let sweep_id = resume_or_create(store.as_ref(), &submission).await?;
    drop(store);

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", args.listen))?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    if !args.no_dashboard {
        eprintln!("dashboard: {endpoint}/");
    }
    let mut config = sweep_coordinator::Config::new(url.clone());
    config.dashboard = !args.no_dashboard;
    let (stop_coordinator, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(sweep_coordinator::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let client = SweepsClient::connect(&endpoint, &Credentials::default()).await?;

    let (stop_workers, mut workers) = start_workers(args, &endpoint);
    let outcome = tokio::select! {
        sweep = follow(&client, sweep_id) => Some(sweep),
        _ = sweep_process::shutdown_signal() => None,
        _ = async { while workers.join_next().await.is_some() {} } => Some(Err(anyhow::anyhow!(
            "the local workers stopped before sweep {sweep_id} ended (see the log above)"
        ))),
    };
    // Workers first: they hand their tasks back to the coordinator.
    let _ = stop_workers.send(true);
    workers.join_all().await;
    let _ = stop_coordinator.send(());
    served.await??;

    let sweep = match outcome {
        Some(sweep) => sweep?,
        None => return Err(Interrupted(sweep_id).into()),
    };
    let source = crate::source::database(&url).await?;
    let (interval, format) = (args.style.interval, args.output.format);
    report::report(source.as_ref(), &sweep_id.into(), interval, format).await?;
    for line in failures(&source.tasks(sweep_id, &[TaskState::Failed]).await?) {
        eprintln!("{line}");
    }
    ended(&sweep, None)
}

/// Refuses a spec whose dataset the local workers would not find, once and
/// before anything is stored, rather than failing each of its tasks.
fn check_datasets(submission: &Submission, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let names: BTreeSet<&str> = submission
        .plan
        .tasks
        .iter()
        .filter_map(|task| task.params.experiment.dataset())
        .collect();
    for name in names {
        if let Err(DataError::Missing { looked_in, .. }) = data::locate(name, data_dir) {
            let looked_in: Vec<String> =
                looked_in.iter().map(|p| p.display().to_string()).collect();
            let get = match crate::fetch::dataset(name) {
                Ok(_) => format!(
                    "`sweep data fetch {name} --dir DIR` downloads it \
                     (`--from COPY` imports a local copy), then run with --data-dir DIR"
                ),
                Err(_) => "put its four IDX files in DIR/NAME and run with --data-dir DIR \
                           (`sweep data fetch` gets mnist and fashion-mnist)"
                    .to_string(),
            };
            anyhow::bail!(
                "dataset {name:?} is not on this machine (looked in {}): {get}",
                looked_in.join(", ")
            );
        }
    }
    Ok(())
}

/// The sweep started earlier from the same spec text, found by its key, or
/// a new one.
async fn resume_or_create(
    store: &dyn SweepStore,
    submission: &Submission,
) -> anyhow::Result<SweepId> {
    if let Some(sweep) = store.sweep_with_key(&submission.spec_key).await? {
        eprintln!("resuming sweep {} ({})", sweep.id, sweep.state);
        return Ok(sweep.id);
    }
    let id = store.create_sweep(submission).await?;
    eprintln!("sweep {id}: {} tasks", submission.plan.tasks.len());
    Ok(id)
}

/// Starts the local workers; they stop (handing tasks back) once the sender
/// says `true`.
fn start_workers(args: &RunArgs, endpoint: &str) -> (watch::Sender<bool>, JoinSet<()>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let count = args.workers.unwrap_or(cores).max(1);
    let memory = Some(args.device.describe().memory_bytes).filter(|m| *m > 0);
    let (stop, stopped) = watch::channel(false);
    let mut workers = JoinSet::new();
    for index in 0..count {
        let config = sweep_worker::Config {
            coordinators: vec![endpoint.to_string()],
            token: None,
            ca: None,
            name: format!("local-{index}"),
            slots: 1,
            device: args.device,
            // One pool for them all: a task that trains alone gets every core.
            threads: Some(cores),
            data_dir: args.data_dir.clone(),
            // Short polls let the workers stop within a second.
            lease_wait: Duration::from_secs(1),
            // Each local worker's share of this machine's memory.
            max_memory: memory.map(|m| m / count as u64),
            checkpoint_every: args.checkpoint_every,
        };
        let mut stopped = stopped.clone();
        workers.spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(err) = sweep_worker::run(config, shutdown).await {
                tracing::error!(error = %err, "local worker failed");
            }
        });
    }
    (stop, workers)
}
