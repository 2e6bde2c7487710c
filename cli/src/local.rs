//! `sweep run`: the whole system on one machine. An in-process coordinator
//! on a loopback port keeps the sweep in a SQLite file; local workers lease
//! its tasks over real gRPC, exactly as remote workers would. Interrupted,
//! the workers hand their tasks back; run again with the same file, the
//! sweep resumes where it stopped.

use std::time::Duration;

use sweep_coordinator::store::TaskState;
use sweep_coordinator::{planner, store};
use sweep_proto::{SweepId, v1};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::args::{Endpoint, RunArgs};
use crate::client::Coordinator;
use crate::cluster::{ended, read_spec};
use crate::progress::{follow, state_name};
use crate::report;

/// How a `sweep run` ended short of its sweep's end.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted: running tasks were handed back; run the same command again to resume sweep {0}"
)]
pub struct Interrupted(pub u64);

pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let spec_toml = read_spec(&args.spec)?;
    args.device.open().map_err(anyhow::Error::msg)?;
    let name = planner::submission(&spec_toml)
        .map_err(|err| anyhow::anyhow!("{}: {err}", args.spec.display()))?
        .plan
        .name;
    let url = format!("sqlite://{}", args.db.display());
    // Opening the file here first makes a bad --db one clear error.
    store::connect(&url)
        .await
        .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", args.db.display()))?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = Endpoint {
        endpoint: format!("http://{}", listener.local_addr()?),
        token: None,
    };
    let (stop_coordinator, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(sweep_coordinator::run(
        sweep_coordinator::Config::new(url.clone()),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let mut coordinator = Coordinator::connect(&endpoint).await?;
    let sweep_id = resume_or_submit(&mut coordinator, &spec_toml, &name).await?;

    let (stop_workers, mut workers) = start_workers(args, &endpoint.endpoint);
    let outcome = tokio::select! {
        info = follow(&mut coordinator, sweep_id) => Some(info),
        _ = sweep_proto::process::shutdown_signal() => None,
        _ = async { while workers.join_next().await.is_some() {} } => Some(Err(anyhow::anyhow!(
            "the local workers stopped before sweep {sweep_id} ended (see the log above)"
        ))),
    };
    // Workers first: they hand their tasks back to the coordinator.
    let _ = stop_workers.send(true);
    workers.join_all().await;
    let _ = stop_coordinator.send(());
    served.await??;

    let info = match outcome {
        Some(info) => info?,
        None => return Err(Interrupted(sweep_id).into()),
    };
    let store = store::connect_existing(&url).await?;
    report::report(store.as_ref(), sweep_id, args.output.format).await?;
    for task in store
        .tasks(SweepId(sweep_id as i64), &[TaskState::Failed])
        .await?
    {
        let error = task.error.unwrap_or_default();
        eprintln!("task {} failed: {error}", task.id);
    }
    ended(&info, None)
}

/// The id of the sweep this spec already has in the database, unless it is
/// new, in which case it is submitted.
async fn resume_or_submit(
    coordinator: &mut Coordinator,
    spec_toml: &str,
    name: &str,
) -> anyhow::Result<u64> {
    let sweeps = coordinator
        .client
        .list(v1::ListSweepsRequest { limit: 10_000 })
        .await
        .map_err(|status| coordinator.explain(status))?
        .into_inner()
        .sweeps;
    for candidate in sweeps.iter().filter(|s| s.name == name) {
        let sweep = coordinator
            .client
            .get(v1::GetSweepRequest {
                sweep_id: candidate.id,
            })
            .await
            .map_err(|status| coordinator.explain(status))?
            .into_inner();
        if sweep.spec_toml == spec_toml {
            eprintln!("resuming sweep {} ({})", sweep.id, state_name(sweep.state));
            return Ok(sweep.id);
        }
    }
    let submitted = coordinator
        .client
        .submit(v1::SubmitRequest {
            spec_toml: spec_toml.to_string(),
        })
        .await
        .map_err(|status| coordinator.explain(status))?
        .into_inner();
    eprintln!(
        "sweep {}: {} tasks",
        submitted.sweep_id, submitted.task_count
    );
    Ok(submitted.sweep_id)
}

/// Starts the local workers; they stop (handing tasks back) once the sender
/// says `true`.
fn start_workers(args: &RunArgs, endpoint: &str) -> (watch::Sender<bool>, JoinSet<()>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let count = args.workers.unwrap_or(cores).max(1);
    let (stop, stopped) = watch::channel(false);
    let mut workers = JoinSet::new();
    for index in 0..count {
        let config = sweep_worker::Config {
            coordinator: endpoint.to_string(),
            token: None,
            name: format!("local-{index}"),
            slots: 1,
            device: args.device,
            threads: Some((cores / count).max(1)),
            data_dir: args.data_dir.clone(),
            // Short polls let the workers stop within a second.
            lease_wait: Duration::from_secs(1),
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
