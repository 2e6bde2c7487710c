//! The web dashboard as a person's browser reaches it: served by the
//! coordinator on its own port and by `sweep dashboard` over a database or
//! over a coordinator's read RPCs, every value escaped, and cancel only
//! with the client token.

use sweep_proto::{Results, SweepState};
use sweep_tests::{
    Coordinator, Reply, binary, finished, free_address, http, stderr, stdout, submit, sweep,
    terminate, worker,
};

/// Four quick tasks: two settings (batch sizes) of two seeds each.
const QUICK: &str = r#"
name = "dash"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [16] }
train = { lr = 1e-3, epochs = 1 }
classify = { train_subset = 1000, test_subset = 200 }
[grid]
batch_size = [32, 64]
seed = [0, 1]
"#;

/// A sweep that waits: no worker ever takes it.
fn waiting(name: &str) -> String {
    format!(
        "name = {name:?}\nexperiment = \"fit\"\nmodel = {{ kind = \"mlp\", hidden = [2] }}\n\
         train = {{ lr = 1e-3, steps = 1 }}\nfit = {{ points = 8 }}\n[grid]\nseed = [0, 1]\n"
    )
}

async fn get(url: &str, path: &str) -> Reply {
    http(url, "GET", path, &[("Accept", "text/html")], "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_is_escaped() {
    let mut coordinator = Coordinator::start(|_| {}).await;
    let client = coordinator.client().await;
    let name = "<img src=x onerror=alert(1)>";
    let id = submit(&client, &waiting(name)).await;
    for path in ["/".to_string(), format!("/sweeps/{id}")] {
        let page = get(&coordinator.url, &path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            page.body.contains("&#60;img src=x onerror=alert(1)&#62;")
                || page.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{path} shows the name as text: {}",
            page.body
        );
        assert!(!page.body.contains("<img src=x"), "{path}: {}", page.body);
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_needs_the_client_token_and_the_dashboards_own_page() {
    let mut coordinator = Coordinator::start(|config| {
        config.client_token = Some("s3cret".into());
    })
    .await;
    let client = sweep_proto::client::SweepsClient::connect(
        &coordinator.url,
        &sweep_proto::client::Credentials {
            token: Some("s3cret".into()),
            ca: None,
        },
    )
    .await
    .unwrap();
    let id = submit(&client, &waiting("cancel-me")).await;
    let page = get(&coordinator.url, &format!("/sweeps/{id}")).await;
    assert!(page.body.contains("name=\"token\""), "a token field");
    assert!(!page.body.contains("s3cret"), "the token is in no page");
    let cancel = |token: &str, origin: &str| {
        let url = coordinator.url.clone();
        let host = url.trim_start_matches("http://").to_string();
        let origin = origin.replace("HOST", &host);
        let body = format!("token={token}");
        async move {
            let form = ("Content-Type", "application/x-www-form-urlencoded");
            let headers = [form, ("Origin", origin.as_str())];
            http(
                &url,
                "POST",
                &format!("/sweeps/{id}/cancel"),
                &headers,
                &body,
            )
            .await
        }
    };
    let state = || async { client.sweep(&id.into()).await.unwrap().state };
    assert_eq!(cancel("", "http://HOST").await.status, 403);
    assert_eq!(cancel("wrong", "http://HOST").await.status, 403);
    let elsewhere = cancel("s3cret", "http://evil.example").await;
    assert_eq!(elsewhere.status, 403, "another site's form is refused");
    assert_eq!(state().await, SweepState::Pending, "nothing was cancelled");
    let done = cancel("s3cret", "http://HOST").await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.header("location"),
        Some(format!("/sweeps/{id}").as_str())
    );
    assert_eq!(state().await, SweepState::Cancelled);
    coordinator.stop().await;
}

/// The client token of the coordinators whose dashboards are read over
/// their endpoint.
const TOKEN: &str = "s3cret";

/// A coordinator (asking clients for [`TOKEN`]) whose QUICK sweep one
/// worker trained and then left; the sweep's id.
async fn finished_quick_sweep() -> (Coordinator, sweep_proto::SweepId) {
    let coordinator = Coordinator::start(|config| config.client_token = Some(TOKEN.into())).await;
    let client = sweep_proto::client::SweepsClient::connect(
        &coordinator.url,
        &sweep_proto::client::Credentials {
            token: Some(TOKEN.into()),
            ca: None,
        },
    )
    .await
    .unwrap();
    let id = submit(&client, QUICK).await;
    let mut trainer = worker(&coordinator.url, 2, &[]);
    assert_eq!(finished(&client, id).await.state, SweepState::Succeeded);
    assert!(terminate(&mut trainer).success());
    (coordinator, id)
}

/// `sweep dashboard` with `source` (the flags that say what it reads),
/// serving; its URL once it listens.
async fn serve_dashboard(source: &[&str]) -> (sweep_tests::Process, String) {
    let address = free_address();
    let served = sweep_tests::Process(
        std::process::Command::new(binary("sweep"))
            .arg("dashboard")
            .args(source)
            .args(["--listen", &address])
            .spawn()
            .unwrap(),
    );
    while std::net::TcpStream::connect(&address).is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (served, format!("http://{address}"))
}

/// A finished sweep read by `sweep dashboard` from its database file: the
/// sweep page's report has `sweep report`'s numbers, the figures draw, the
/// workers page lists the worker, and nothing can be changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_dashboard_shows_the_report_of_a_database_read_only() {
    let (mut coordinator, id) = finished_quick_sweep().await;
    let database = coordinator.database.clone();
    coordinator.stop().await;
    let report = sweep(&["report", "dash", "--database-url", &database]);
    assert!(report.status.success(), "{}", stderr(&report));
    let (mut served, url) = serve_dashboard(&["--database-url", &database]).await;
    shows_the_finished_sweep_read_only(&url, id, &stdout(&report)).await;
    assert!(terminate(&mut served).success());
}

/// The same dashboard over a coordinator's read RPCs (its address and
/// client token, no database): the same pages, the same figures to the
/// byte, as over the coordinator's database; a wrong token is refused when
/// it starts, in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_dashboard_over_an_endpoint_shows_what_the_database_holds() {
    let (mut coordinator, id) = finished_quick_sweep().await;
    let endpoint = ["--endpoint", &coordinator.url, "--token", TOKEN];
    let report = sweep(&[
        "report",
        "dash",
        "--endpoint",
        &coordinator.url,
        "--token",
        TOKEN,
    ]);
    assert!(report.status.success(), "{}", stderr(&report));
    let (mut remote, url) = serve_dashboard(&endpoint).await;
    shows_the_finished_sweep_read_only(&url, id, &stdout(&report)).await;

    let (mut local, database) = serve_dashboard(&["--database-url", &coordinator.database]).await;
    // Every figure, and every curve of a task, byte for byte.
    let figures = format!("/sweeps/{id}/figures");
    let task = format!(
        "/tasks/{}",
        first_task(&get(&url, &format!("/sweeps/{id}")).await.body)
    );
    let mut images = Vec::new();
    for page in [&figures, &task] {
        let (over_rpc, over_db) = (get(&url, page).await, get(&database, page).await);
        assert_eq!(over_rpc.status, 200, "{page}: {}", over_rpc.body);
        images.extend(
            over_db
                .body
                .split("src=\"")
                .skip(1)
                .map(|src| src.split('"').next().unwrap().replace("&#38;", "&")),
        );
        if page == &figures {
            assert_eq!(over_rpc.body, over_db.body, "{page}");
        }
    }
    assert!(images.len() > 2, "figures and curves: {images:?}");
    for image in &images {
        let (over_rpc, over_db) = (get(&url, image).await, get(&database, image).await);
        assert_eq!(over_rpc.status, 200, "{image}: {}", over_rpc.body);
        assert_eq!(over_rpc.body, over_db.body, "{image}");
    }
    let rows = |body: &str| report_rows(body);
    assert_eq!(
        rows(&get(&url, &format!("/sweeps/{id}")).await.body),
        rows(&get(&database, &format!("/sweeps/{id}")).await.body)
    );
    assert!(terminate(&mut local).success());
    assert!(terminate(&mut remote).success());

    // `sweep compare` reads through the same interface: the same bytes
    // either way.
    let compare = |from: &[&str]| {
        let args = [
            &["compare", "dash", "--by", "batch_size", "--format", "json"],
            from,
        ]
        .concat();
        let output = sweep(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let over_rpc = compare(&endpoint);
    assert_eq!(
        over_rpc,
        compare(&["--database-url", &coordinator.database])
    );
    let pairs: serde_json::Value = serde_json::from_str(&over_rpc).unwrap();
    assert_eq!(pairs.as_array().map(Vec::len), Some(1), "{pairs}");
    assert_eq!(
        (&pairs[0]["a"], &pairs[0]["b"]),
        (&"32".into(), &"64".into())
    );
    assert_eq!((&pairs[0]["n_a"], &pairs[0]["n_b"]), (&2.into(), &2.into()));

    let wrong = sweep(&[
        "dashboard",
        "--endpoint",
        &coordinator.url,
        "--token",
        "wrong",
        "--listen",
        &free_address(),
    ]);
    assert!(!wrong.status.success());
    let err = stderr(&wrong);
    assert!(err.contains("token"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    coordinator.stop().await;
}

/// What a read-only dashboard at `url` shows of QUICK's finished sweep
/// `id`: `table` (what `sweep report` printed)'s rows, figures, the worker
/// stopped, a page of tasks sorted and filtered, a task's attempts; cancel
/// refused.
async fn shows_the_finished_sweep_read_only(url: &str, id: sweep_proto::SweepId, table: &str) {
    let page = get(url, &format!("/sweeps/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for row in report_rows(&page.body) {
        let line = row.join(" ");
        assert!(
            table.lines().any(|l| collapse(l) == format!("│ {line} │")),
            "row {line:?} is in sweep report's table:\n{table}"
        );
    }
    assert_eq!(report_rows(&page.body).len(), 2);
    assert!(
        page.body.contains("Compared by batch_size") && page.body.contains("welch&#39;s t"),
        "sweep compare's table: {}",
        page.body
    );
    let figures = get(url, &format!("/sweeps/{id}/figures")).await;
    let first = figures.body.split("src=\"").nth(1).expect("a figure");
    let svg = get(url, first.split('"').next().unwrap()).await;
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(svg.body.contains("<svg"), "{}", svg.body);
    let workers = get(url, "/workers").await;
    assert_eq!(workers.body.matches("<tr class=\"worker\">").count(), 1);
    assert!(
        workers
            .body
            .contains("<span class=\"state stopped\">stopped</span>"),
        "a worker stopped cleanly is not lost: {}",
        workers.body
    );
    let sorted = get(url, &format!("/sweeps/{id}?sort=duration&state=succeeded")).await;
    assert_eq!(sorted.status, 200, "{}", sorted.body);
    assert!(
        sorted
            .body
            .contains("class=\"sort current\" href=\"?sort=duration&#38;state=succeeded\""),
        "{}",
        sorted.body
    );
    assert_eq!(
        sorted.body.matches("<tr class=\"task succeeded\">").count(),
        4
    );
    let bad = get(url, &format!("/sweeps/{id}?sort=fastest")).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("sort: no such order &#34;fastest&#34;"),
        "{}",
        bad.body
    );
    let task = get(url, &format!("/tasks/{}", first_task(&sorted.body))).await;
    let attempts: Vec<&str> = task.body.split("<tr class=\"attempt\">").skip(1).collect();
    assert_eq!(attempts.len(), 1, "{}", task.body);
    assert!(
        attempts[0].contains("<td>succeeded</td>"),
        "{}",
        attempts[0]
    );
    let missing = get(url, "/tasks/424242").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let cancel = http(
        url,
        "POST",
        &format!("/sweeps/{id}/cancel"),
        &form,
        "token=",
    )
    .await;
    assert_eq!(cancel.status, 403, "read-only: {}", cancel.body);
}

/// The id of the first task a sweep page links to.
fn first_task(page: &str) -> &str {
    let link = page.split("<a href=\"/tasks/").nth(1).expect("a task link");
    link.split('"').next().unwrap()
}

/// The cells of the sweep page's report table, row by row.
fn report_rows(page: &str) -> Vec<Vec<String>> {
    let table = page
        .split("<table class=\"list report\">")
        .nth(1)
        .expect("a report table");
    let body = table
        .split("<tbody>")
        .nth(1)
        .unwrap()
        .split("</tbody>")
        .next()
        .unwrap();
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td>")
                .skip(1)
                .map(|cell| cell.split("</td>").next().unwrap().replace("&#177;", "±"))
                .collect()
        })
        .collect()
}

/// Runs of spaces as one.
fn collapse(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}
