//! The `sweep` binary as a user runs it: a quick sweep end to end on one
//! machine, the cluster verbs against a real coordinator, and one clear line
//! and a non-zero exit for each kind of bad input.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use sweep_coordinator::store::reader;
use sweep_proto::{SweepId, TaskState};
use sweep_tests::{
    Coordinator, EmptyPostgres, assert_fails_with, binary, repo, stderr, stdout, sweep,
};

/// Writes a file into the test's directory.
fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A coordinator whose client service wants `token`, when there is one.
async fn coordinator(with_token: bool) -> Coordinator {
    if with_token {
        Coordinator::start(|config| config.client_token = Some("s3cret".into())).await
    } else {
        Coordinator::start(|_| {}).await
    }
}

#[test]
fn sweep_run_trains_a_quick_spec_and_reports_every_grid_point() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sweeps.db");
    let spec = repo("sweeps/quick/1.2-deep-vs-shallow-mnist.toml");
    let args = [
        "run",
        spec.to_str().unwrap(),
        "--workers",
        "2",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "json",
    ];
    let output = sweep(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows: Value = serde_json::from_str(&stdout(&output)).expect("a JSON report");
    let rows = rows.as_array().unwrap();
    let models: Vec<&str> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["dnn1", "dnn2"], "one row per grid point");
    for row in rows {
        assert_eq!(row["seeds"], 1, "{row}");
        assert_eq!(row["failed"], 0, "{row}");
        let acc = row["test_acc_mean"].as_f64().expect("test accuracy");
        assert!(acc > 0.5 && acc <= 1.0, "{row}");
        assert!(row["train_loss_mean"].as_f64().unwrap() > 0.0, "{row}");
    }

    // The same command again finds the finished sweep instead of starting over.
    let again = sweep(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("resuming sweep 1"),
        "{}",
        stderr(&again)
    );
    let rerun: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(
        &rerun,
        &Value::Array(rows.clone()),
        "nothing was trained again"
    );

    // The report and export read the same file.
    let url = format!("sqlite://{}", db.display());
    let report = sweep(&["report", "1", "--database-url", &url, "--format", "csv"]);
    assert!(report.status.success(), "{}", stderr(&report));
    assert_eq!(stdout(&report).lines().count(), 3, "{}", stdout(&report));
    let by_name = sweep(&[
        "report",
        "1.2-deep-vs-shallow-mnist-quick",
        "--database-url",
        &url,
        "--format",
        "csv",
    ]);
    assert_eq!(
        stdout(&by_name),
        stdout(&report),
        "a sweep is named by its name too"
    );
    // One seed a side: no interval, and the comparison says so.
    let compare = sweep(&["compare", "1", "--by", "model", "--database-url", &url]);
    assert!(compare.status.success(), "{}", stderr(&compare));
    assert!(
        stdout(&compare).contains("not settled: fewer than 2 seeds on a side"),
        "{}",
        stdout(&compare)
    );
    let unvaried = sweep(&["compare", "1", "--by", "lr", "--database-url", &url]);
    assert_fails_with(
        &unvaried,
        "--by: the sweep does not vary \"lr\" (it varies: model",
    );
    let export = sweep(&["export", "1", "--database-url", &url]);
    let text = stdout(&export);
    assert!(text.starts_with("task_id,model,params,"), "{text}");
    assert!(
        text.lines().any(|l| l.contains(",test_acc,")),
        "test accuracy per epoch"
    );
}

#[test]
fn a_run_with_a_failed_task_says_why_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        &dir,
        "diverge.toml",
        r#"
name = "diverge"
experiment = "fit"
train = { lr = 1e30, steps = 50, record_every = 10 }
model = { kind = "mlp", hidden = [8] }
[grid]
seed = [0]
"#,
    );
    let db = dir.path().join("d.db");
    let run = sweep(&[
        "run",
        spec.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert!(err.contains("task 1 failed: diverged at step "), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(last, "error: sweep 1 failed: 1/1 tasks done, 1 failed");
    let report = stdout(&run);
    assert!(
        report
            .lines()
            .nth(1)
            .is_some_and(|row| row.contains(",0,1")),
        "{report}"
    );
}

#[test]
fn a_run_resumes_the_sweep_of_the_same_spec_text_and_an_edit_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tiny.db");
    let text = "name = \"tiny\"\nexperiment = \"fit\"\nmodel = { kind = \"mlp\", hidden = [4] }\n";
    let spec = write(
        &dir,
        "tiny.toml",
        &format!("{text}train = {{ lr = 1e-3, steps = 5 }}\n"),
    );
    let edited = write(
        &dir,
        "edited.toml",
        &format!("{text}train = {{ lr = 1e-3, steps = 6 }}\n"),
    );
    let run = |spec: &PathBuf| {
        let output = sweep(&["run", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]);
        assert!(output.status.success(), "{}", stderr(&output));
        stderr(&output)
    };
    assert!(run(&spec).contains("sweep 1: 1 tasks"));
    assert!(
        run(&edited).contains("sweep 2: 1 tasks"),
        "an edited spec is a new sweep"
    );
    assert!(
        run(&spec).contains("resuming sweep 1"),
        "found by its text, not its name"
    );
    let url = format!("sqlite://{}", db.display());
    let report = |which: &str| {
        let output = sweep(&["report", which, "--database-url", &url, "--format", "json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    assert_eq!(
        report("tiny"),
        report("2"),
        "a name means the newest sweep of that name"
    );
    assert_ne!(report("1"), report("2"));
}

/// The quick 1.1 sweep with adaptive seeds: the embedded coordinator adds
/// two seeds a model after each round until deep against shallow is
/// settled, well before the cap of 15; `sweep run`, `report` and `compare`
/// say where it stopped. A spec whose cap is below its start is refused in
/// one line naming the field, and nothing is submitted.
#[test]
fn an_adaptive_sweep_adds_seeds_until_its_comparison_is_settled() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("adaptive.db");
    let spec = repo("sweeps/quick/1.1-adaptive-seeds.toml");
    let run = sweep(&["run", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let said = stderr(&run);
    let line = (said.lines())
        .find(|line| line.starts_with("seeds: settled at n="))
        .unwrap_or_else(|| panic!("no settled verdict: {said}"));
    let seeds: u64 = line["seeds: settled at n=".len()..]
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((3..15).contains(&seeds), "{line}");
    assert!(line.ends_with("on final_loss"), "{line}");
    let url = format!("sqlite://{}", db.display());
    let json = sweep(&["report", "1", "--database-url", &url, "--format", "json"]);
    let rows: Value = serde_json::from_str(&stdout(&json)).unwrap();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["final_loss_n"], seeds, "each model ran n seeds: {row}");
    }
    let table = sweep(&["compare", "1", "--database-url", &url, "--by", "model"]);
    assert!(stdout(&table).contains(line), "{}", stdout(&table));

    let capped = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("max = 15", "max = 2");
    let bad_spec = dir.path().join("capped.toml");
    std::fs::write(&bad_spec, capped).unwrap();
    let other = dir.path().join("other.db");
    let refused = sweep(&[
        "run",
        bad_spec.to_str().unwrap(),
        "--db",
        other.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let first = stderr(&refused)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        first.contains("seeds.max = 2") && first.contains("seeds.start (3)"),
        "{first}"
    );
    let listed = sweep(&[
        "report",
        "1",
        "--database-url",
        &format!("sqlite://{}", other.display()),
    ]);
    assert!(!listed.status.success(), "nothing was submitted");
}

/// The quick 1.1 sweep (five seeds of a deep and a shallow fit): the
/// table's `±` is the interval asked for and says which; JSON carries each
/// of them, the 95% interval being t(0.975, 4) = 2.776 standard errors
/// either side of the mean (NIST/SEMATECH e-Handbook of Statistical
/// Methods, table 1.3.6.7.2); `sweep compare` weighs deep against shallow.
#[test]
fn a_report_gives_each_mean_its_interval_and_compare_weighs_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fit.db");
    let spec = repo("sweeps/quick/1.1-deep-vs-shallow-fit.toml");
    let run = sweep(&["run", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stdout(&run).contains("± is half the 95% confidence interval of the mean"),
        "ci95 by default: {}",
        stdout(&run)
    );
    let url = format!("sqlite://{}", db.display());
    let verb = |verb: &str, args: &[&str]| {
        let output = sweep(&[&[verb, "1", "--database-url", &url], args].concat());
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let json: Value = serde_json::from_str(&verb("report", &["--format", "json"])).unwrap();
    let row = &json[0];
    let number = |column: &str| {
        row[column]
            .as_f64()
            .unwrap_or_else(|| panic!("{column}: {row}"))
    };
    assert_eq!(row["final_loss_n"], 5, "{row}");
    let (mean, std, se) = (
        number("final_loss_mean"),
        number("final_loss_std"),
        number("final_loss_se"),
    );
    assert!((se - std / 5f64.sqrt()).abs() <= 1e-12 * std, "{row}");
    let (low, high) = (
        number("final_loss_ci95_low"),
        number("final_loss_ci95_high"),
    );
    assert!(
        ((high - low) / 2.0 - 2.776 * se).abs() <= 1e-3 * se,
        "{row}"
    );
    assert!(
        ((high + low) / 2.0 - mean).abs() <= 1e-9 * mean.abs(),
        "{row}"
    );

    let std_table = verb("report", &["--interval", "std"]);
    assert!(
        std_table.contains("± is the standard deviation over seeds"),
        "{std_table}"
    );
    assert!(verb("report", &["--interval", "se"]).contains("± is the standard error"));
    let bad = sweep(&["report", "1", "--database-url", &url, "--interval", "sd"]);
    assert!(!bad.status.success());
    let first = stderr(&bad).lines().next().unwrap_or_default().to_string();
    assert!(
        first.contains("'sd'") && first.contains("--interval") && first.contains("ci95, std, se"),
        "{first}"
    );

    // A deep seed collapses (README: 26.98): the means cannot tell the
    // models apart, the medians can; with five seeds neither test settles
    // the final loss, but every deep fit ends with a larger gradient.
    let compare = |args: &[&str]| -> Value {
        let args = [&["--by", "model", "--format", "json"], args].concat();
        serde_json::from_str(&verb("compare", &args)).unwrap()
    };
    let loss = &compare(&[])[0];
    assert_eq!(
        (&loss["a"], &loss["b"]),
        (&"deep".into(), &"shallow".into())
    );
    assert!(loss["t_p"].as_f64().unwrap() > 0.05, "{loss}");
    assert!(
        loss["median_a"].as_f64() < loss["median_b"].as_f64(),
        "{loss}"
    );
    assert_eq!(loss["verdict"], "not settled at alpha 0.05", "{loss}");
    let gradient = &compare(&["--metric", "min_grad_norm"])[0];
    assert_eq!(gradient["p_a_greater"], 1.0, "{gradient}");
    assert_eq!(gradient["decided_by"], "mann-whitney u", "{gradient}");
    let verdict = gradient["verdict"].as_str().unwrap();
    assert!(verdict.starts_with("deep higher"), "{verdict}");
    let missing = sweep(&[
        "compare",
        "1",
        "--database-url",
        &url,
        "--by",
        "model",
        "--metric",
        "acc",
    ]);
    assert_fails_with(&missing, "--metric: no succeeded task recorded \"acc\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_hands_tasks_back_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("resume.db");
    let spec = write(
        &dir,
        "long.toml",
        r#"
name = "resume"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [32] }
train = { lr = 1e-3, epochs = 15, batch_size = 64 }
classify = { train_subset = 1000, test_subset = 200 }
[grid]
seed = [0, 1]
"#,
    );
    let args = [
        "run",
        spec.to_str().unwrap(),
        "--workers",
        "2",
        "--db",
        db.to_str().unwrap(),
    ];
    let child = Command::new(binary("sweep"))
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("sqlite://{}", db.display());
    let sweep_id = SweepId(1);
    let started = std::time::Instant::now();
    loop {
        if let Ok(store) = reader::open(&url).await
            && let Ok(tasks) = store.tasks(sweep_id, &[TaskState::Leased]).await
            && !tasks.is_empty()
        {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "no task ever started");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let interrupted = child.wait_with_output().unwrap();
    assert_eq!(interrupted.status.code(), Some(130));
    let err = stderr(&interrupted);
    assert!(
        err.contains("run the same command again to resume sweep 1"),
        "{err}"
    );
    let store = reader::open(&url).await.unwrap();
    let tasks = store.tasks(sweep_id, &[]).await.unwrap();
    assert!(
        tasks.iter().all(|t| t.state != TaskState::Leased),
        "every running task was handed back: {tasks:?}"
    );

    let resumed = sweep(&args);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("resuming sweep 1"),
        "{}",
        stderr(&resumed)
    );
    let tasks = store.tasks(sweep_id, &[]).await.unwrap();
    assert_eq!(tasks.len(), 2);
    assert!(
        tasks.iter().all(|t| t.state == TaskState::Succeeded),
        "{tasks:?}"
    );
    assert_eq!(
        store.sweeps(10).await.unwrap().len(),
        1,
        "resumed, not submitted again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_verbs_submit_list_cancel_and_retry() {
    let mut coordinator = coordinator(false).await;
    let endpoint = coordinator.url.clone();
    let endpoint = endpoint.as_str();
    let spec = repo("sweeps/quick/3.4-sensitivity.toml");
    let submitted = sweep(&["submit", spec.to_str().unwrap(), "--endpoint", endpoint]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let id = stdout(&submitted).trim().to_string();
    assert_eq!(id, "1");

    let tasks = sweep(&["tasks", &id, "--endpoint", endpoint, "--format", "json"]);
    let tasks: Value = serde_json::from_str(&stdout(&tasks)).unwrap();
    let count = tasks.as_array().unwrap().len();
    assert!(count > 1);
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "queued")
    );

    let cancelled = sweep(&["cancel", &id, "--endpoint", endpoint]);
    assert!(
        stdout(&cancelled).contains(&format!("cancelled {count} waiting tasks")),
        "{}",
        stdout(&cancelled)
    );
    let name = "3.4-sensitivity-quick";
    let status = sweep(&["status", name, "--endpoint", endpoint, "--format", "json"]);
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status[0]["id"], 1);
    assert_eq!(status[0]["state"], "cancelled");
    assert_eq!(status[0]["tasks"], count);

    let failed = sweep(&[
        "tasks",
        &id,
        "--state",
        "failed",
        "--endpoint",
        endpoint,
        "--format",
        "csv",
    ]);
    assert_eq!(
        stdout(&failed).lines().count(),
        1,
        "only the header: nothing failed"
    );
    // Progress lines, then the outcome; a cancelled sweep is not a success.
    let watch = sweep(&["watch", &id, "--endpoint", endpoint]);
    assert_eq!(watch.status.code(), Some(1));
    let last = stderr(&watch)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        last,
        format!("error: sweep 1 cancelled: {count}/{count} tasks done, 0 failed")
    );
    let retried = sweep(&["retry", &id, "--endpoint", endpoint]);
    assert_fails_with(&retried, "cancelled");
    let workers = sweep(&["workers", "--endpoint", endpoint, "--format", "json"]);
    assert_eq!(stdout(&workers).trim(), "[]");
    let completions = sweep(&["completions", "bash"]);
    assert!(completions.status.success());
    assert!(stdout(&completions).contains("_sweep()") && stdout(&completions).contains("report"));
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_thousand_task_sweep_is_listed_whole_and_filtered() {
    let mut coordinator = coordinator(false).await;
    let endpoint = coordinator.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<String> = (0..30_000).map(|s| s.to_string()).collect();
    let text = format!(
        "name = \"big\"\nexperiment = \"classify\"\ndataset = \"mnist\"\n\
         model = {{ kind = \"mlp\", hidden = [4] }}\n\
         train = {{ lr = 1e-3, epochs = 1, batch_size = 64 }}\n[grid]\nseed = [{}]\n",
        seeds.join(", ")
    );
    let spec = write(&dir, "big.toml", &text);
    let submitted = sweep(&["submit", spec.to_str().unwrap(), "--endpoint", &endpoint]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let args = ["tasks", "big", "--endpoint", &endpoint, "--format", "csv"];
    let listed = sweep(&args);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let lines: Vec<String> = stdout(&listed).lines().map(String::from).collect();
    assert_eq!(lines.len(), 30_001, "a header and every task");
    assert!(
        lines[30_000].starts_with("30000,queued,classify,"),
        "{}",
        lines[30_000]
    );
    let queued = sweep(&[&args[..], &["--state", "queued,failed"]].concat());
    assert_eq!(stdout(&queued), stdout(&listed));
    let failed = sweep(&[&args[..], &["--state", "failed"]].concat());
    assert_eq!(stdout(&failed).lines().count(), 1, "only the header");
    coordinator.stop().await;
}

/// A spec over the protocol's message limit (a long comment, say) is refused
/// by the cli before it is sent, in one line naming its size and the limit,
/// and the coordinator goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_over_the_message_limit_is_refused_before_sending() {
    let mut coordinator = coordinator(false).await;
    let endpoint = coordinator.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let comment = format!("# {}\n", "x".repeat(10 << 20));
    let text = format!(
        "{comment}{}",
        std::fs::read_to_string(repo("sweeps/quick/1.2-deep-vs-shallow-mnist.toml")).unwrap()
    );
    let spec = write(&dir, "huge.toml", &text);
    let submitted = sweep(&["submit", spec.to_str().unwrap(), "--endpoint", &endpoint]);
    assert_fails_with(&submitted, "10.0 MiB");
    assert_fails_with(&submitted, "8 MiB");
    assert!(
        !stderr(&submitted).contains("cannot reach"),
        "{}",
        stderr(&submitted)
    );
    let status = sweep(&["status", "--endpoint", &endpoint, "--format", "json"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert_eq!(stdout(&status).trim(), "[]", "nothing was submitted");
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_clear_line_and_a_non_zero_exit() {
    let mut coordinator = coordinator(true).await;
    let endpoint = coordinator.url.clone();
    let endpoint = endpoint.as_str();

    let unknown = sweep(&["status", "999", "--endpoint", endpoint, "--token", "s3cret"]);
    assert_fails_with(&unknown, "sweep 999 not found");
    let args = [
        "cancel",
        "nobody",
        "--endpoint",
        endpoint,
        "--token",
        "s3cret",
    ];
    assert_fails_with(&sweep(&args), "sweep \"nobody\" not found");
    let bad_token = sweep(&["status", "--endpoint", endpoint, "--token", "wrong"]);
    assert_fails_with(&bad_token, "refused");
    let refused = sweep(&["status", "--endpoint", "http://127.0.0.1:1"]);
    assert_fails_with(
        &refused,
        "cannot reach the coordinator at http://127.0.0.1:1",
    );
    let malformed = sweep(&["workers", "--endpoint", "http://bad host:1"]);
    assert_fails_with(&malformed, "is not a valid address");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let url = format!("sqlite://{}", missing.display());
    let report = sweep(&["report", "1", "--database-url", &url]);
    assert_fails_with(&report, "not found");
    assert!(!missing.exists(), "a report never creates a database");
    let secret = "postgres://sweep:s3cretpw@127.0.0.1:1/sweeps";
    let unreachable = sweep(&["report", "1", "--database-url", secret]);
    assert_fails_with(
        &unreachable,
        "cannot open the database postgres://sweep:***@127.0.0.1:1",
    );
    assert!(
        !stderr(&unreachable).contains("s3cretpw"),
        "no password in errors"
    );

    let spec = write(
        &dir,
        "bad.toml",
        "name = \"bad\"\nexperiment = \"classify\"\ndataset = \"mnist\"\nmodel = { kind = \"mlp\", hidden = [16] }\n\
         train = { lr = 1e-3, epochs = 1, batch_size = 0 }\n",
    );
    let submitted = sweep(&[
        "submit",
        spec.to_str().unwrap(),
        "--endpoint",
        endpoint,
        "--token",
        "s3cret",
    ]);
    assert_fails_with(&submitted, "batch_size");
    let db = dir.path().join("run.db");
    let run = sweep(&["run", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert_fails_with(&run, "batch_size");
    assert!(
        !db.exists(),
        "a spec that cannot be planned creates no database"
    );
    let no_spec = sweep(&["run", "no/such/spec.toml"]);
    assert_fails_with(&no_spec, "cannot read the spec no/such/spec.toml");
    coordinator.stop().await;
}

/// `sweep report` opens a database only to read: on an empty PostgreSQL
/// database it says so in one line and leaves it empty; once an operator
/// migrates it (`sweep-coordinator migrate`) the same report finds the
/// schema and answers about the sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_on_an_empty_database_leaves_it_empty() {
    let empty = EmptyPostgres::create("sweep_cli_empty").await;
    let url = empty.url.clone();

    let report = sweep(&["report", "1", "--database-url", &url]);
    assert_fails_with(&report, "holds no sweep database");
    assert_eq!(empty.tables().await, 0, "a report created tables");

    let migrate = Command::new(binary("sweep-coordinator"))
        .args(["migrate", "--database-url", &url])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", stderr(&migrate));
    assert!(
        stdout(&migrate).contains("is at schema version"),
        "{}",
        stdout(&migrate)
    );
    assert!(empty.tables().await > 0);
    let report = sweep(&["report", "1", "--database-url", &url]);
    assert_fails_with(&report, "sweep 1 not found");

    empty.drop().await;
}

/// A spec whose dataset is not on the machine: `sweep run` says so once,
/// before it stores anything; on a cluster, `watch` shows the first failure
/// as it happens and `status` the failures once per cause, not per task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_dataset_is_said_once_not_once_per_task() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        &dir,
        "missing.toml",
        r#"
name = "missing-data"
experiment = "classify"
dataset = "no-such-digits"
model = { kind = "mlp", hidden = [8] }
train = { lr = 1e-3, epochs = 1, batch_size = 64 }
max_attempts = 1
[grid]
seed = [0, 1, 2]
"#,
    );
    let data_dir = dir.path().join("datasets");
    std::fs::create_dir(&data_dir).unwrap();
    let db = dir.path().join("run.db");
    let run = sweep(&[
        "run",
        spec.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert_fails_with(
        &run,
        "dataset \"no-such-digits\" is not on this machine (looked in no-such-digits, ",
    );
    let said = stderr(&run);
    assert!(
        said.contains(&format!("{}/no-such-digits", data_dir.display())),
        "{said}"
    );
    assert!(
        said.contains("/usr/local/share/datasets/no-such-digits"),
        "{said}"
    );
    assert!(said.contains("sweep data fetch"), "{said}");
    assert!(
        !db.exists(),
        "nothing is stored for a sweep that cannot train"
    );

    let mut coordinator = coordinator(false).await;
    let endpoint = coordinator.url.clone();
    let _worker = sweep_tests::worker(&endpoint, 1, &["--data-dir", data_dir.to_str().unwrap()]);
    let submitted = sweep(&["submit", spec.to_str().unwrap(), "--endpoint", &endpoint]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let watched = sweep(&["watch", "missing-data", "--endpoint", &endpoint]);
    assert!(!watched.status.success());
    let said = stderr(&watched);
    assert_eq!(
        said.matches("dataset \"no-such-digits\" not found").count(),
        1,
        "the first failure once, not once per task: {said}"
    );
    assert!(said.contains("3 failed"), "{said}");
    let status = sweep(&["status", "missing-data", "--endpoint", &endpoint]);
    assert!(status.status.success(), "{}", stderr(&status));
    let said = stderr(&status);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with("3 tasks failed (")
            && said.contains("all with: dataset \"no-such-digits\" not found"),
        "{said}"
    );
    coordinator.stop().await;
}
