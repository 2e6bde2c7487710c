//! `deploy/slurm/` on a real Slurm cluster: workers join a coordinator as
//! batch jobs, `scancel` hands a running task back at once, a job array adds
//! workers while the sweep runs, a task longer than a job's time limit
//! finishes across requeued jobs, and the coordinator runs as a job that
//! workers find by the address it leaves.
//!
//! Needs a running cluster whose node is this machine (so the jobs can reach
//! the coordinator on 127.0.0.1 and run the binaries under `target/`):
//! `scripts/test-deploy.sh` starts one with `deploy/slurm/local-cluster.sh`
//! and runs these with `--ignored`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sweep_proto::{Results, SweepState, TaskState};
use sweep_tests::{Coordinator, binary, finished, repo, submit, wait_for};

/// Six tasks of a few seconds each on one thread.
const SPEC: &str = r#"
name = "slurm"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [128] }
train = { lr = 1e-3, epochs = 60, batch_size = 64 }
classify = { train_subset = 2000, test_subset = 200 }

[grid]
seed = [0, 1, 2, 3, 4, 5]
"#;

/// A batch job of the worker script, cancelled when dropped so a failed test
/// leaves no job behind.
struct Job {
    id: String,
    /// The `Restarts` count of the requeue last released early.
    released: std::cell::Cell<Option<String>>,
}

impl Job {
    /// `sbatch` of the worker script against `coordinator`, output in `dir`.
    fn worker(dir: &Path, coordinator: &str, flags: &[&str]) -> Self {
        let env = [
            ("SWEEP_COORDINATOR", coordinator.to_string()),
            (
                "SWEEP_WORKER_BIN",
                binary("sweep-worker").display().to_string(),
            ),
        ];
        Self::submit("worker.sbatch", dir, &env, flags)
    }

    /// `sbatch` of `deploy/slurm/SCRIPT` with `env` added to the test's.
    fn submit(script: &str, dir: &Path, env: &[(&str, String)], flags: &[&str]) -> Self {
        let output = Command::new("sbatch")
            .arg("--parsable")
            .arg(format!("--output={}/%x-%A_%a.out", dir.display()))
            .args(flags)
            .arg(repo(&format!("deploy/slurm/{script}")))
            .env_remove("SWEEP_COORDINATOR")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .env("RUST_LOG", "info")
            .env("TMPDIR", "/dev/null")
            .output()
            .expect("run sbatch (is Slurm installed? scripts/test-deploy.sh sets it up)");
        assert!(
            output.status.success(),
            "sbatch failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let id = String::from_utf8_lossy(&output.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(!id.is_empty(), "sbatch gave no job id");
        Self {
            id,
            released: Default::default(),
        }
    }

    fn cancel(&self) {
        let status = Command::new("scancel").arg(&self.id).status();
        assert!(status.is_ok_and(|s| s.success()), "scancel {}", self.id);
    }

    /// Waits until Slurm no longer lists the job (array elements included).
    async fn wait_gone(&self, dir: &Path) {
        let started = Instant::now();
        loop {
            let output = Command::new("squeue")
                .args(["-h", "-j", &self.id, "-o", "%i %T"])
                .output()
                .expect("run squeue");
            let listed = String::from_utf8_lossy(&output.stdout);
            if listed.trim().is_empty() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "job {} still listed after 60 s: {listed}\n{}",
                self.id,
                self.output(dir)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    /// `scontrol show job`'s field `name` (`Restarts`, `JobState`).
    fn field(&self, name: &str) -> String {
        let output = Command::new("scontrol")
            .args(["show", "job", &self.id])
            .output()
            .expect("run scontrol");
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_string))
            .unwrap_or_default()
    }

    /// Slurm holds a requeued job for 2 minutes before it may start again;
    /// lets it start 5 s after its requeue instead, as an administrator
    /// may, to keep the test short. Not at once: the node refuses a batch
    /// job whose credential dates from the second its last run ended ("Job
    /// credential revoked"), and the job then ends for good (seen in CI).
    fn release_requeued(&self) {
        if self.field("JobState") != "PENDING" || self.field("Reason") != "BeginTime" {
            return;
        }
        let restarts = Some(self.field("Restarts"));
        if self.released.replace(restarts.clone()) == restarts {
            return;
        }
        let status = Command::new("scontrol")
            .args(["update", &format!("JobId={}", self.id), "StartTime=now+5"])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "release job {}", self.id);
    }

    /// The text of every output file of the job (of each array element).
    fn output(&self, dir: &Path) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(dir).expect("the output dir") {
            let path = entry.expect("an entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.contains(&format!("-{}_", self.id)) {
                text += &std::fs::read_to_string(&path).unwrap_or_default();
            }
        }
        text
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = Command::new("scancel").arg(&self.id).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Slurm cluster: scripts/test-deploy.sh starts one and runs this"]
async fn slurm_jobs_join_hand_back_and_scale_out() {
    // A lease far longer than the test waits: a task only comes back
    // quickly if the cancelled worker hands it back.
    let mut coordinator =
        Coordinator::start(|config| config.lease_ttl = Duration::from_secs(120)).await;
    let client = coordinator.client().await;
    let sweep_id = submit(&client, SPEC).await;
    let dir = tempfile::tempdir().expect("temp dir");

    let first = Job::worker(dir.path(), &coordinator.url, &[]);
    wait_for(&client, sweep_id, |s| s.counts.leased == 1).await;
    let tasks = client.tasks(sweep_id, &[]).await.unwrap();
    let running = tasks
        .iter()
        .find(|t| t.state == TaskState::Leased)
        .expect("a leased task")
        .id;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancelled = Instant::now();
    first.cancel();
    first.wait_gone(dir.path()).await;
    let task = client
        .tasks(sweep_id, &[])
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == running)
        .unwrap();
    assert_eq!(
        task.state,
        TaskState::Queued,
        "scancel hands the running task back: {task:?}"
    );
    assert!(
        cancelled.elapsed() < Duration::from_secs(30),
        "the job took {:?} to end: the workers missed SIGTERM and waited for SIGKILL",
        cancelled.elapsed()
    );
    let output = first.output(dir.path());
    assert!(output.contains("1 worker(s)"), "job output: {output}");

    // Two more nodes join while the sweep runs.
    let array = Job::worker(dir.path(), &coordinator.url, &["--array=0-1"]);
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    let workers = client.workers().await.unwrap();
    let from_array: Vec<_> = workers
        .iter()
        .filter(|w| w.registration.name.contains(&format!("-{}_", array.id)))
        .collect();
    assert_eq!(
        from_array.len(),
        2,
        "one worker per array element: {workers:?}"
    );
    let tasks = client.tasks(sweep_id, &[]).await.unwrap();
    assert!(tasks.iter().all(|t| t.state == TaskState::Succeeded));
    // Nothing re-ran but the handed-back task.
    for task in &tasks {
        let expected = if task.id == running { 2 } else { 1 };
        assert_eq!(task.attempt, expected, "{task:?}");
    }
    array.cancel();
    array.wait_gone(dir.path()).await;
    coordinator.stop().await;
}

/// One task of 15,000 steps on one thread, about 100 a second on this
/// machine kind's CPUs (2.5 minutes): longer than two of the jobs below
/// on a machine twice as fast.
const LONG: &str = r#"
name = "slurm-time-limit"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [512, 512] }
train = { lr = 1e-3, epochs = 60, batch_size = 32, checkpoint_every = "20s" }
classify = { train_subset = 8000, test_subset = 200 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Slurm cluster: scripts/test-deploy.sh starts one and runs this"]
async fn a_task_longer_than_a_jobs_time_limit_finishes_across_requeued_jobs() {
    let mut coordinator =
        Coordinator::start(|config| config.lease_ttl = Duration::from_secs(120)).await;
    let client = coordinator.client().await;
    let sweep_id = submit(&client, LONG).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Slurm checks time limits every 30 s and signals at the first check
    // within 30 s of the warning time, so the warning comes 0-30 s early:
    // with a two-minute limit and the warning 60 s before it, each job
    // trains 30-60 s. A one-minute limit warned 30 s before it could warn
    // a requeued job in its first seconds, before its worker leased the
    // task, and the job would end for good with the task still queued.
    let job = Job::worker(
        dir.path(),
        &coordinator.url,
        &["--time=2", "--signal=B:USR1@60", "--cpus-per-task=1"],
    );
    let started = Instant::now();
    let sweep = loop {
        let sweep = client.sweep(&sweep_id.into()).await.expect("the sweep");
        if sweep.state.is_final() {
            break sweep;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not done in 10 minutes: {sweep:?}\njob {} {} ({}), {} restarts\n{}",
            job.id,
            job.field("JobState"),
            job.field("Reason"),
            job.field("Restarts"),
            job.output(dir.path())
        );
        job.release_requeued();
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let output = job.output(dir.path());
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}\n{output}");
    let task = client.tasks(sweep_id, &[]).await.unwrap().remove(0);
    assert!(
        task.attempt >= 2 && task.resumed_from > 0,
        "the task went on from a checkpoint in a later job: {task:?}\n{output}"
    );
    assert!(output.contains("requeued"), "{output}");
    let restarts: u32 = job.field("Restarts").parse().unwrap_or(0);
    assert!(
        restarts >= 1,
        "Slurm requeued the job: {restarts}\n{output}"
    );
    job.cancel();
    job.wait_gone(dir.path()).await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Slurm cluster: scripts/test-deploy.sh starts one and runs this"]
async fn the_coordinator_runs_as_a_job_and_workers_find_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let state_env = ("SWEEP_STATE_DIR", state.display().to_string());
    let coordinator = Job::submit(
        "coordinator.sbatch",
        dir.path(),
        &[
            state_env.clone(),
            ("SWEEP_PORT", port.to_string()),
            (
                "SWEEP_COORDINATOR_BIN",
                binary("sweep-coordinator").display().to_string(),
            ),
        ],
        &[],
    );
    let address_file = state.join("coordinator-address");
    let started = Instant::now();
    while !address_file.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no address file: {}",
            coordinator.output(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let address = std::fs::read_to_string(&address_file).unwrap();
    assert!(address.trim().ends_with(&format!(":{port}")), "{address}");
    let client = sweep_tests::client(address.trim()).await;
    let spec = SPEC
        .replace("epochs = 60", "epochs = 2")
        .replace("[0, 1, 2, 3, 4, 5]", "[0, 1]");
    let sweep_id = submit(&client, &spec).await;

    // No SWEEP_COORDINATOR: the worker job reads the address file.
    let worker = Job::submit(
        "worker.sbatch",
        dir.path(),
        &[
            state_env,
            (
                "SWEEP_WORKER_BIN",
                binary("sweep-worker").display().to_string(),
            ),
        ],
        &[],
    );
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    worker.cancel();
    worker.wait_gone(dir.path()).await;
    coordinator.cancel();
    coordinator.wait_gone(dir.path()).await;
    assert!(
        state.join("sweeps.db").exists(),
        "the sweep lives in the state dir's SQLite file"
    );
    assert!(
        !address_file.exists(),
        "a stopped coordinator leaves no stale address"
    );
}
