//! The verbs that talk to a running coordinator over gRPC: submit, status,
//! watch, cancel, retry, workers and tasks.

use std::path::Path;

use serde_json::{Value, json};
use sweep_proto::params::TaskParams;
use sweep_proto::v1;

use crate::args::{Endpoint, Format};
use crate::client::Coordinator;
use crate::output::{Listing, ago, now_ms};
use crate::progress::{Tally, follow, state_name};

/// Reads a spec file, with the path in the error.
pub fn read_spec(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read the spec {}: {err}", path.display()))
}

pub async fn submit(spec: &Path, endpoint: &Endpoint) -> anyhow::Result<()> {
    let spec_toml = read_spec(spec)?;
    let mut coordinator = Coordinator::connect(endpoint).await?;
    let submitted = coordinator
        .client
        .submit(v1::SubmitRequest { spec_toml })
        .await
        .map_err(|status| coordinator.explain(status))?
        .into_inner();
    eprintln!(
        "submitted sweep {} ({} tasks); follow it with `sweep watch {}`",
        submitted.sweep_id, submitted.task_count, submitted.sweep_id
    );
    println!("{}", submitted.sweep_id);
    Ok(())
}

pub async fn status(sweep: Option<u64>, endpoint: &Endpoint, format: Format) -> anyhow::Result<()> {
    let mut coordinator = Coordinator::connect(endpoint).await?;
    let sweeps = match sweep {
        Some(sweep_id) => vec![
            coordinator
                .client
                .get(v1::GetSweepRequest { sweep_id })
                .await
                .map_err(|status| coordinator.explain(status))?
                .into_inner(),
        ],
        None => {
            coordinator
                .client
                .list(v1::ListSweepsRequest { limit: 0 })
                .await
                .map_err(|status| coordinator.explain(status))?
                .into_inner()
                .sweeps
        }
    };
    sweep_listing(&sweeps).print(format)
}

fn sweep_listing(sweeps: &[v1::SweepInfo]) -> Listing {
    let mut listing = Listing::new(&[
        "id",
        "name",
        "experiment",
        "state",
        "done",
        "tasks",
        "running",
        "failed",
        "created",
    ]);
    let now = now_ms();
    for sweep in sweeps {
        let tally = Tally::of(sweep);
        listing.push(vec![
            json!(sweep.id),
            json!(sweep.name),
            json!(sweep.experiment),
            json!(state_name(sweep.state)),
            json!(tally.done),
            json!(tally.total),
            json!(tally.running),
            json!(tally.failed),
            json!(ago(sweep.created_at_ms, now)),
        ]);
    }
    listing
}

/// Follows the sweep; an error unless every task succeeded.
pub async fn watch(sweep_id: u64, endpoint: &Endpoint) -> anyhow::Result<()> {
    let mut coordinator = Coordinator::connect(endpoint).await?;
    let info = follow(&mut coordinator, sweep_id).await?;
    ended(
        &info,
        Some(format!("`sweep tasks {sweep_id} --state failed` shows why")),
    )
}

/// One line on how a final sweep ended; an error unless it succeeded, with
/// `hint` when tasks failed.
pub fn ended(info: &v1::SweepInfo, hint: Option<String>) -> anyhow::Result<()> {
    let tally = Tally::of(info);
    let line = format!(
        "sweep {} {}: {}/{} tasks done, {} failed",
        info.id,
        state_name(info.state),
        tally.done,
        tally.total,
        tally.failed
    );
    if info.state == v1::SweepState::Succeeded as i32 {
        eprintln!("{line}");
        return Ok(());
    }
    match hint {
        Some(hint) if tally.failed > 0 => anyhow::bail!("{line}; {hint}"),
        _ => anyhow::bail!("{line}"),
    }
}

pub async fn cancel(sweep_id: u64, endpoint: &Endpoint) -> anyhow::Result<()> {
    let mut coordinator = Coordinator::connect(endpoint).await?;
    let outcome = coordinator
        .client
        .cancel(v1::CancelSweepRequest { sweep_id })
        .await
        .map_err(|status| coordinator.explain(status))?
        .into_inner();
    println!(
        "sweep {sweep_id}: cancelled {} waiting tasks; {} running tasks stop at their next heartbeat",
        outcome.cancelled, outcome.signalled
    );
    Ok(())
}

pub async fn retry(sweep_id: u64, endpoint: &Endpoint) -> anyhow::Result<()> {
    let mut coordinator = Coordinator::connect(endpoint).await?;
    let outcome = coordinator
        .client
        .retry(v1::RetrySweepRequest { sweep_id })
        .await
        .map_err(|status| coordinator.explain(status))?
        .into_inner();
    println!(
        "sweep {sweep_id}: re-queued {} failed tasks",
        outcome.requeued
    );
    Ok(())
}

pub async fn workers(endpoint: &Endpoint, format: Format) -> anyhow::Result<()> {
    let mut coordinator = Coordinator::connect(endpoint).await?;
    let workers = coordinator
        .client
        .list_workers(v1::ListWorkersRequest {})
        .await
        .map_err(|status| coordinator.explain(status))?
        .into_inner()
        .workers;
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
    for worker in workers {
        let devices: Vec<&str> = worker.devices.iter().map(|d| d.name.as_str()).collect();
        let running: Vec<String> = worker.running_tasks.iter().map(u64::to_string).collect();
        listing.push(vec![
            json!(worker.id),
            json!(worker.name),
            json!(worker.host),
            json!(worker.backend),
            json!(devices.join(" ")),
            json!(worker.slots),
            json!(worker.state),
            json!(running.join(" ")),
            json!(ago(worker.last_heartbeat_ms, now)),
        ]);
    }
    listing.print(format)
}

pub async fn tasks(
    sweep_id: u64,
    states: &[String],
    endpoint: &Endpoint,
    format: Format,
) -> anyhow::Result<()> {
    let states = states
        .iter()
        .map(|name| task_state(name))
        .collect::<anyhow::Result<Vec<i32>>>()?;
    let mut coordinator = Coordinator::connect(endpoint).await?;
    let tasks = coordinator
        .client
        .list_tasks(v1::ListTasksRequest { sweep_id, states })
        .await
        .map_err(|status| coordinator.explain(status))?
        .into_inner()
        .tasks;
    let mut listing = Listing::new(&[
        "id",
        "state",
        "kind",
        "model",
        "params",
        "batch_size",
        "lr",
        "seed",
        "attempt",
        "worker",
        "error",
    ]);
    for task in tasks {
        let params: Option<TaskParams> = serde_json::from_str(&task.params_json).ok();
        let field = |get: fn(&TaskParams) -> Value| params.as_ref().map_or(Value::Null, get);
        listing.push(vec![
            json!(task.id),
            json!(task_state_name(task.state)),
            json!(task.kind),
            field(|p| json!(p.model_name)),
            field(|p| json!(p.param_count)),
            field(|p| json!(p.batch_size)),
            field(|p| json!(p.lr)),
            field(|p| json!(p.seed)),
            json!(format!("{}/{}", task.attempt, task.max_attempts)),
            json!(task.worker_id),
            json!(task.error),
        ]);
    }
    listing.print(format)
}

fn task_state(name: &str) -> anyhow::Result<i32> {
    let wire = format!("TASK_STATE_{}", name.trim().to_uppercase());
    v1::TaskState::from_str_name(&wire)
        .filter(|state| *state != v1::TaskState::Unspecified)
        .map(|state| state as i32)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--state {name:?}: expected blocked, queued, leased, succeeded, failed or cancelled"
            )
        })
}

fn task_state_name(state: i32) -> String {
    v1::TaskState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("TASK_STATE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("unknown ({state})"))
}
