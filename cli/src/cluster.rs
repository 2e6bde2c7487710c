//! The verbs that talk to a running coordinator over gRPC: submit, extend, status,
//! watch, cancel, retry, workers and tasks. Each failed call is already one
//! line that says what to do (see `sweep_proto::client`).

use std::path::Path;

use serde_json::json;
use sweep_proto::client::{Credentials, SweepsClient};
use sweep_proto::clock::now_ms;
use sweep_proto::{Results, Sweep, SweepId, SweepRef, SweepState, TaskState};

use crate::args::{Endpoint, Format};
use crate::output::{Listing, Print, ago};
use crate::progress::{failures, follow};
use sweep_report::columns;

/// Reads a spec file, with the path in the error.
pub fn read_spec(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read the spec {}: {err}", path.display()))
}

/// Connects to the coordinator the flags name.
pub async fn connect(endpoint: &Endpoint) -> anyhow::Result<SweepsClient> {
    let ca = endpoint
        .ca
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .map_err(|err| anyhow::anyhow!("cannot read the CA {}: {err}", path.display()))
        })
        .transpose()?;
    let credentials = Credentials {
        token: endpoint.token.clone(),
        ca,
    };
    Ok(SweepsClient::connect(&endpoint.endpoint, &credentials).await?)
}

/// The id of the sweep named; a name costs one call.
pub async fn resolve(client: &SweepsClient, which: &SweepRef) -> anyhow::Result<SweepId> {
    match which {
        SweepRef::Id(id) => Ok(*id),
        SweepRef::Name(_) => Ok(client.sweep(which).await?.id),
    }
}

pub async fn submit(spec: &Path, no_cache: bool, endpoint: &Endpoint) -> anyhow::Result<()> {
    let spec_toml = read_spec(spec)?;
    let client = connect(endpoint).await?;
    let (id, tasks) = client.submit_with(&spec_toml, no_cache).await?;
    eprintln!("submitted sweep {id} ({tasks} tasks); follow it with `sweep watch {id}`");
    println!("{id}");
    Ok(())
}

pub async fn extend(
    which: &SweepRef,
    spec: &Path,
    no_cache: bool,
    endpoint: &Endpoint,
) -> anyhow::Result<()> {
    let spec_toml = read_spec(spec)?;
    let client = connect(endpoint).await?;
    let added = client.extend(which, &spec_toml, no_cache).await?;
    eprintln!("sweep {which}: {added} new tasks; follow it with `sweep watch {which}`");
    Ok(())
}

pub async fn status(
    which: Option<&SweepRef>,
    endpoint: &Endpoint,
    format: Format,
) -> anyhow::Result<()> {
    let client = connect(endpoint).await?;
    let sweeps = match which {
        Some(which) => vec![client.sweep(which).await?],
        None => client.sweeps(0).await?,
    };
    sweep_listing(&sweeps).print(format)?;
    // One sweep's adaptive seeds and failures, once per cause, after its row.
    if let [sweep] = sweeps.as_slice()
        && which.is_some()
    {
        sweep
            .seed_lines()
            .iter()
            .for_each(|line| eprintln!("{line}"));
        if sweep.counts.failed > 0 {
            for line in failures(&client.tasks(sweep.id, &[TaskState::Failed]).await?) {
                eprintln!("{line}");
            }
        }
    }
    Ok(())
}

fn sweep_listing(sweeps: &[Sweep]) -> Listing {
    let mut listing = Listing::new(&[
        "id",
        "name",
        "experiment",
        "state",
        "done",
        "cached",
        "tasks",
        "running",
        "failed",
        "created",
    ]);
    let now = now_ms();
    for sweep in sweeps {
        let counts = &sweep.counts;
        listing.push(vec![
            json!(sweep.id.0),
            json!(sweep.name),
            json!(sweep.experiment.as_str()),
            json!(sweep.state.as_str()),
            json!(counts.done()),
            json!(counts.cached),
            json!(counts.total()),
            json!(counts.leased),
            json!(counts.failed),
            json!(ago(sweep.created_at, now)),
        ]);
    }
    listing
}

/// Follows the sweep; an error unless every task succeeded.
pub async fn watch(which: &SweepRef, endpoint: &Endpoint) -> anyhow::Result<()> {
    let client = connect(endpoint).await?;
    let id = resolve(&client, which).await?;
    let sweep = follow(&client, id).await?;
    ended(
        &sweep,
        Some(format!("`sweep tasks {id} --state failed` shows why")),
    )
}

/// One line on how a final sweep ended; an error unless it succeeded, with
/// `hint` when tasks failed.
pub fn ended(sweep: &Sweep, hint: Option<String>) -> anyhow::Result<()> {
    let counts = &sweep.counts;
    let cached = match counts.cached {
        0 => String::new(),
        n => format!(" ({n} from the result cache)"),
    };
    let line = format!(
        "sweep {} {}: {}/{} tasks done{cached}, {} failed",
        sweep.id,
        sweep.state,
        counts.done(),
        counts.total(),
        counts.failed
    );
    sweep
        .seed_lines()
        .iter()
        .for_each(|line| eprintln!("{line}"));
    if sweep.state == SweepState::Succeeded {
        eprintln!("{line}");
        return Ok(());
    }
    match hint {
        Some(hint) if counts.failed > 0 => anyhow::bail!("{line}; {hint}"),
        _ => anyhow::bail!("{line}"),
    }
}

pub async fn cancel(which: &SweepRef, endpoint: &Endpoint) -> anyhow::Result<()> {
    let client = connect(endpoint).await?;
    let id = resolve(&client, which).await?;
    let outcome = client.cancel(id).await?;
    println!(
        "sweep {id}: cancelled {} waiting tasks; {} running tasks stop at their next heartbeat",
        outcome.cancelled, outcome.signalled
    );
    Ok(())
}

pub async fn retry(which: &SweepRef, endpoint: &Endpoint) -> anyhow::Result<()> {
    let client = connect(endpoint).await?;
    let id = resolve(&client, which).await?;
    let requeued = client.retry(id).await?;
    println!("sweep {id}: re-queued {requeued} failed tasks");
    Ok(())
}

pub async fn workers(endpoint: &Endpoint, format: Format) -> anyhow::Result<()> {
    let client = connect(endpoint).await?;
    let mut listing = Listing::new(&[
        "id",
        "name",
        "host",
        "backend",
        "devices",
        "slots",
        "state",
        "running",
        "heartbeat",
    ]);
    let now = now_ms();
    for worker in client.workers().await? {
        let info = &worker.registration;
        let devices: Vec<&str> = info.devices.iter().map(|d| d.name.as_str()).collect();
        let running: Vec<String> = worker.running.iter().map(ToString::to_string).collect();
        listing.push(vec![
            json!(worker.id.0),
            json!(info.name),
            json!(info.host),
            json!(info.backend.as_str()),
            json!(devices.join(" ")),
            json!(info.slots),
            json!(worker.status.as_str()),
            json!(running.join(" ")),
            json!(ago(worker.last_heartbeat_at, now)),
        ]);
    }
    listing.print(format)
}

pub async fn tasks(
    which: &SweepRef,
    states: &[String],
    endpoint: &Endpoint,
    format: Format,
) -> anyhow::Result<()> {
    let states = states
        .iter()
        .map(|name| task_state(name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client = connect(endpoint).await?;
    let id = resolve(&client, which).await?;
    let mut header = vec!["id", "state", "kind"];
    header.extend(columns::IDENTITY);
    header.extend(["attempt", "resumed_from", "cached_from", "worker", "error"]);
    let mut listing = Listing::new(&header);
    for task in client.tasks(id, &states).await? {
        let mut row = vec![
            json!(task.id.0),
            json!(task.state.as_str()),
            json!(task.params.kind().as_str()),
        ];
        row.extend(columns::identity(&task.params));
        row.extend([
            json!(format!("{}/{}", task.attempt, task.max_attempts)),
            json!(task.resumed_from),
            json!(task.cached_from.map(|t| t.0)),
            json!(task.worker.map(|w| w.0)),
            json!(task.error.unwrap_or_default()),
        ]);
        listing.push(row);
    }
    listing.print(format)
}

fn task_state(name: &str) -> anyhow::Result<TaskState> {
    TaskState::parse(&name.trim().to_lowercase()).ok_or_else(|| {
        anyhow::anyhow!(
            "--state {name:?}: expected blocked, queued, leased, succeeded, failed or cancelled"
        )
    })
}
