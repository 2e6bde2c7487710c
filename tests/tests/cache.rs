//! The result cache as a researcher meets it: a finished spec run again
//! under a new name trains nothing and reports, plots and exports the same;
//! a grown spec trains only its new tasks; duplicates in flight train once;
//! a changed dataset file trains again. Real worker processes, real
//! training, on a SQLite file (`sweep run`) and on PostgreSQL.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sweep_coordinator::store::reader;
use sweep_proto::{SweepId, Task};
use sweep_tests::{
    Coordinator, EmptyPostgres, files, finished, http, read, repo, stderr, stdout, submit, sweep,
    worker,
};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `sweep run SPEC` on `db`: the JSON report and what it said on stderr.
fn run(spec: &Path, db: &Path, extra: &[&str]) -> (Value, String) {
    let mut args = vec![
        "run",
        spec.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--workers",
        "2",
        "--no-dashboard",
        "--format",
        "json",
    ];
    args.extend(extra);
    let output = sweep(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = serde_json::from_str(&stdout(&output)).expect("a JSON report");
    (report, stderr(&output))
}

async fn tasks(url: &str, sweep: SweepId) -> Vec<Task> {
    let reader = reader::open(url).await.unwrap();
    reader.tasks(sweep, &[]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_quick_spec_under_a_new_name_trains_nothing_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sweeps.db");
    let url = format!("sqlite://{}", db.display());
    let spec = repo("sweeps/quick/1.2-deep-vs-shallow-mnist.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    let renamed = text.replace(
        "name = \"1.2-deep-vs-shallow-mnist-quick\"",
        "name = \"the same, renamed\"",
    );
    assert_ne!(renamed, text);
    let renamed = write(dir.path(), "renamed.toml", &renamed);

    let (first, _) = run(&spec, &db, &[]);
    let (second, said) = run(&renamed, &db, &[]);
    assert!(said.contains("sweep 2: 2 tasks"), "{said}");
    assert!(
        said.contains("2/2 tasks done (2 from the result cache)"),
        "{said}"
    );
    assert_eq!(second, first, "the same report");
    let (trained, cached) = (tasks(&url, SweepId(1)).await, tasks(&url, SweepId(2)).await);
    for (source, task) in trained.iter().zip(&cached) {
        assert_eq!(task.cached_from, Some(source.id), "nothing trained");
        assert_eq!(task.summary, source.summary);
    }

    // Export: the same rows but for the task's id.
    let rows = |sweep: &str| -> Vec<String> {
        (read(&["export", sweep], &["--database-url", &url]).lines())
            .map(|line| {
                line.split_once(',')
                    .map_or(line, |(_, rest)| rest)
                    .to_string()
            })
            .collect()
    };
    assert_eq!(rows("2"), rows("1"));
    assert!(rows("2").len() > 10);
    // Plot: the same figures, byte for byte.
    let plots = |sweep: &str| {
        let out = dir.path().join(format!("figures-{sweep}"));
        read(
            &["plot", sweep, "--out", out.to_str().unwrap()],
            &["--database-url", &url],
        );
        files(&out)
    };
    let (a, b) = (plots("1"), plots("2"));
    assert!(!a.is_empty());
    let names = |files: &[(String, Vec<u8>)]| -> Vec<String> {
        files.iter().map(|f| f.0.clone()).collect()
    };
    assert_eq!(names(&a), names(&b));
    assert!(a == b, "the same figures");

    // Opting out trains again, and feeds nothing back.
    let opted = write(
        dir.path(),
        "opted.toml",
        &text.replace("1.2-deep-vs-shallow-mnist-quick", "opted out"),
    );
    let (_, said) = run(&opted, &db, &["--no-cache"]);
    assert!(said.contains("2/2 tasks done, 0 failed"), "{said}");
}

/// A fit spec with two widths and `seeds` seeds, short enough to train
/// dozens of times in a test.
fn fit_spec(name: &str, seeds: std::ops::Range<u32>) -> String {
    let seeds: Vec<String> = seeds.map(|s| s.to_string()).collect();
    format!(
        r#"
name = "{name}"
experiment = "fit"
train = {{ optimizer = "adam", lr = 0.01, steps = 40, record_every = 10 }}
fit = {{ target = "x_cos_x", points = 64, x_min = -1.0, x_max = 10.0 }}
model = {{ kind = "mlp", hidden = 1 }}
[grid]
width = [4, 8]
seed = [{}]
"#,
        seeds.join(", ")
    )
}

/// How many of the sweep's tasks trained, and how many came from the cache.
fn trained_and_cached(tasks: &[Task]) -> (usize, usize) {
    let cached = tasks.iter().filter(|t| t.cached_from.is_some()).count();
    (tasks.len() - cached, cached)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_grown_specs_train_only_new_tasks_and_duplicates_in_flight_train_once() {
    let database = EmptyPostgres::create("sweep_cache").await;
    let coordinator = Coordinator::start_on(Some(&database.url), |_| {}).await;
    let client = coordinator.client().await;

    // Two sweeps of the same ten tasks, submitted before any worker runs.
    let a = submit(&client, &fit_spec("five seeds", 0..5)).await;
    let b = submit(&client, &fit_spec("five seeds again", 0..5)).await;
    let mut workers = worker(&coordinator.url, 4, &[]);
    finished(&client, a).await;
    finished(&client, b).await;
    let (a_tasks, b_tasks) = (tasks(&database.url, a).await, tasks(&database.url, b).await);
    let trained: Vec<&Task> = (a_tasks.iter().chain(&b_tasks))
        .filter(|t| t.cached_from.is_none())
        .collect();
    assert_eq!(trained.len(), 10, "each of the ten keys trained once");
    let keys: HashSet<String> = trained
        .iter()
        .map(|t| t.params.setting_key() + &t.params.seed.to_string())
        .collect();
    assert_eq!(keys.len(), 10);

    // Seeds 5-9 added: exactly five new tasks per width train.
    let grown = submit(&client, &fit_spec("ten seeds", 0..10)).await;
    let ended = finished(&client, grown).await;
    assert_eq!(ended.counts.cached, 10);
    let grown_tasks = tasks(&database.url, grown).await;
    assert_eq!(trained_and_cached(&grown_tasks), (10, 10));
    for task in &grown_tasks {
        assert_eq!(
            task.cached_from.is_none(),
            task.params.seed >= 5,
            "{task:?}"
        );
    }
    let per_width = |width: u64| {
        (grown_tasks.iter())
            .filter(|t| t.cached_from.is_none() && t.params.width == Some(width))
            .count()
    };
    assert_eq!((per_width(4), per_width(8)), (5, 5));
    // `sweep status` says how many came from the cache.
    let status = sweep(&[
        "status",
        &grown.to_string(),
        "--endpoint",
        &coordinator.url,
        "--format",
        "json",
    ]);
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status[0]["cached"], 10, "{status}");
    let listed = sweep(&[
        "tasks",
        &grown.to_string(),
        "--endpoint",
        &coordinator.url,
        "--format",
        "json",
    ]);
    let listed: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    let cached_from: Vec<&Value> = (listed.as_array().unwrap().iter())
        .map(|t| &t["cached_from"])
        .collect();
    assert_eq!(cached_from.iter().filter(|v| v.is_u64()).count(), 10);
    assert_eq!(cached_from.iter().filter(|v| v.is_null()).count(), 10);
    // So does the dashboard, on the sweep's page and a cached task's.
    let page = http(
        &coordinator.url,
        "GET",
        &format!("/sweeps/{grown}"),
        &[],
        "",
    )
    .await;
    assert!(page.body.contains("10 from cache"), "{}", page.body);
    let copy = grown_tasks
        .iter()
        .find(|t| t.cached_from.is_some())
        .unwrap();
    let page = http(
        &coordinator.url,
        "GET",
        &format!("/tasks/{}", copy.id),
        &[],
        "",
    )
    .await;
    let source = copy.cached_from.unwrap();
    let says =
        format!("from the result cache: those of <a href=\"/tasks/{source}\">task {source}</a>");
    assert!(page.body.contains(&says), "{}", page.body);

    // The cache's own verbs: its numbers, then forgetting one sweep's
    // results (seeds 5-9), which then train again.
    let cache = |args: &[&str]| {
        let mut all = vec!["cache"];
        all.extend(args);
        all.extend(["--endpoint", coordinator.url.as_str()]);
        let output = sweep(&all);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let stats: Value = serde_json::from_str(&cache(&["stats", "--format", "json"])).unwrap();
    assert_eq!(
        (
            stats[0]["results"].as_u64(),
            stats[0]["cached_tasks"].as_u64()
        ),
        (Some(20), Some(20)),
        "{stats}"
    );
    let forgot = cache(&["forget", "--sweep", "ten seeds"]);
    assert!(forgot.starts_with("forgot 10 results"), "{forgot}");
    let again = submit(&client, &fit_spec("ten seeds, again", 0..10)).await;
    finished(&client, again).await;
    let again_tasks = tasks(&database.url, again).await;
    for task in &again_tasks {
        assert_eq!(
            task.cached_from.is_none(),
            task.params.seed >= 5,
            "{task:?}"
        );
    }

    // `sweep extend`: the sweep of seeds 0-4 grows to 0-11 in place; seeds
    // 5-9 come from the cache, only 10 and 11 train.
    let dir = tempfile::tempdir().unwrap();
    let twelve = write(dir.path(), "twelve.toml", &fit_spec("twelve seeds", 0..12));
    let extended = sweep(&[
        "extend",
        &b.to_string(),
        twelve.to_str().unwrap(),
        "--endpoint",
        &coordinator.url,
    ]);
    assert!(extended.status.success(), "{}", stderr(&extended));
    assert!(
        stderr(&extended).contains("14 new tasks"),
        "{}",
        stderr(&extended)
    );
    let ended = finished(&client, b).await;
    assert_eq!(ended.counts.total(), 24);
    let b_tasks = tasks(&database.url, b).await;
    let new: Vec<&Task> = b_tasks.iter().filter(|t| t.params.seed >= 5).collect();
    for task in &new {
        assert_eq!(
            task.cached_from.is_none(),
            task.params.seed >= 10,
            "{task:?}"
        );
    }

    sweep_tests::terminate(&mut workers);
    drop(coordinator);
    database.drop().await;
}

/// The built-in sample's four files in a directory of their own.
fn sample_copy(dir: &Path) -> PathBuf {
    let data = dir.join("digits");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(repo("data/mnist-sample")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "gz") {
            std::fs::copy(&path, data.join(path.file_name().unwrap())).unwrap();
        }
    }
    data
}

/// Flips the label of the first test image, keeping the file valid.
fn relabel_first_test_image(data: &Path) {
    use std::io::{Read, Write};
    let path = data.join("t10k-labels-idx1-ubyte.gz");
    let mut labels = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut labels)
        .unwrap();
    // 8 bytes of header, then one byte per label.
    labels[8] = (labels[8] + 1) % 10;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&labels).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_dataset_file_trains_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample_copy(dir.path());
    let db = dir.path().join("sweeps.db");
    let url = format!("sqlite://{}", db.display());
    let spec = |name: &str| {
        let text = format!(
            r#"
name = "{name}"
experiment = "classify"
dataset = "{}"
model = {{ kind = "mlp", hidden = [16] }}
train = {{ lr = 1e-3, epochs = 1, batch_size = 100 }}
classify = {{ train_subset = 500, test_subset = 200 }}
[grid]
seed = [0, 1]
"#,
            data.display()
        );
        write(dir.path(), &format!("{name}.toml"), &text)
    };
    run(&spec("first"), &db, &[]);
    run(&spec("same data"), &db, &[]);
    relabel_first_test_image(&data);
    run(&spec("changed data"), &db, &[]);
    let counts = |sweep: i64| {
        let url = url.clone();
        async move { trained_and_cached(&tasks(&url, SweepId(sweep)).await) }
    };
    assert_eq!(counts(2).await, (0, 2), "the same files: from the cache");
    assert_eq!(counts(3).await, (2, 0), "one changed label: trained again");
}
