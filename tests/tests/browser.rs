//! The dashboard in a real browser (headless Chromium through WebDriver),
//! checked as a person would: a sweep appears and advances while the page
//! stays open, its report matches `sweep report`, its figures draw, cancel
//! works with the token and is refused without it, the workers page lists
//! the worker, and a sweep's name is shown as text, never run.

use serde_json::Value;
use sweep_proto::client::{Credentials, SweepsClient};
use sweep_proto::{Results, SweepState};
use sweep_tests::webdriver::Browser;
use sweep_tests::{Coordinator, finished, stderr, stdout, submit, sweep, terminate, worker};

const TOKEN: &str = "s3cret";

/// Twelve tasks of about a second each: long enough to watch.
const WATCHED: &str = r#"
name = "watched"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [32] }
train = { lr = 1e-3, epochs = 2, batch_size = 64, record_every = 1 }
classify = { train_subset = 2000, test_subset = 500 }
[grid]
seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
"#;

/// A name that runs script wherever a page puts it in the HTML unescaped.
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// A sweep no CPU worker takes, so it waits to be cancelled.
fn waiting() -> String {
    format!(
        "name = {HOSTILE:?}\nrequires = \"cuda\"\nexperiment = \"fit\"\n\
         model = {{ kind = \"mlp\", hidden = [2] }}\ntrain = {{ lr = 1e-3, steps = 1 }}\n\
         fit = {{ points = 8 }}\n[grid]\nseed = [0, 1]\n"
    )
}

fn number(value: &Value) -> i64 {
    value.as_i64().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_follows_a_sweep_in_the_dashboard() {
    let mut coordinator = Coordinator::start(|config| {
        config.client_token = Some(TOKEN.into());
    })
    .await;
    let credentials = Credentials {
        token: Some(TOKEN.into()),
        ca: None,
    };
    let client = SweepsClient::connect(&coordinator.url, &credentials)
        .await
        .unwrap();
    let browser = Browser::start().await;

    // The sweeps page is open before anything is submitted; a mark on the
    // page tells that it is never reloaded.
    browser.open(&format!("{}/", coordinator.url)).await;
    browser.run("window.stayed = true; return null;").await;
    let watched = submit(&client, WATCHED).await;
    let row = format!("tr.sweep[data-sweep=\"{watched}\"]");
    let rows = format!("return document.querySelectorAll('{row}').length;");
    browser.until(&rows, |n| number(n) == 1).await;
    let done =
        format!("return parseInt(document.querySelector('{row} .progress-text').textContent);");
    assert_eq!(number(&browser.run(&done).await), 0);
    let mut trainer = worker(&coordinator.url, 1, &[]);
    browser.until(&done, |n| number(n) >= 1).await;
    browser.until(&done, |n| number(n) >= 3).await;
    let stayed = browser.run("return window.stayed === true;").await;
    assert_eq!(
        stayed,
        Value::Bool(true),
        "the page advanced without a reload"
    );

    // The sweep's page: sweep report's rows and every figure drawn.
    assert_eq!(
        finished(&client, watched).await.state,
        SweepState::Succeeded
    );
    browser
        .open(&format!("{}/sweeps/{watched}", coordinator.url))
        .await;
    let cells = browser
        .run(
            "return [...document.querySelectorAll('table.report tbody tr')]\
             .map(r => [...r.cells].map(c => c.textContent).join(' '));",
        )
        .await;
    let report = sweep(&[
        "report",
        "watched",
        "--endpoint",
        &coordinator.url,
        "--token",
        TOKEN,
    ]);
    assert!(report.status.success(), "{}", stderr(&report));
    let table = stdout(&report);
    let rows: Vec<&str> = cells
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(rows.len(), 1, "one setting: {cells}");
    for row in rows {
        let collapse = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            table
                .lines()
                .any(|l| collapse(l) == format!("│ {} │", collapse(row))),
            "{row:?} is a row of sweep report:\n{table}"
        );
    }
    let drawn = "const images = [...document.querySelectorAll('#figures img')];\
                 return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0)\
                 ? images.length : 0;";
    browser.until(drawn, |n| number(n) >= 2).await;

    // Cancel: refused with a wrong token, done with the right one.
    let hostile = submit(&client, &waiting()).await;
    let page = format!("{}/sweeps/{hostile}", coordinator.url);
    browser.open(&page).await;
    browser.type_into("input[name=token]", "wrong").await;
    browser.click("button[formaction$=cancel]").await;
    // A click does not wait for the answer's page to load.
    let refused = |title: &Value| title.as_str().is_some_and(|t| t.starts_with("Refused"));
    browser.until("return document.title;", refused).await;
    assert_eq!(
        client.sweep(&hostile.into()).await.unwrap().state,
        SweepState::Pending
    );
    browser.open(&page).await;
    browser.type_into("input[name=token]", TOKEN).await;
    browser.click("button[formaction$=cancel]").await;
    let state = "return document.querySelector('#summary .state').textContent;";
    browser
        .until(state, |s| s.as_str() == Some("cancelled"))
        .await;
    assert_eq!(
        client.sweep(&hostile.into()).await.unwrap().state,
        SweepState::Cancelled
    );

    // The hostile name is text on every page that shows it, and no image
    // (nor its script) was ever made of it.
    browser.open(&format!("{}/", coordinator.url)).await;
    let name = format!(
        "return document.querySelector('tr.sweep[data-sweep=\"{hostile}\"] a').textContent;"
    );
    assert_eq!(browser.run(&name).await, Value::String(HOSTILE.into()));
    let injected = "return document.querySelectorAll('img[src=\"x\"]').length;";
    assert_eq!(number(&browser.run(injected).await), 0);
    let heading = "return document.querySelector('h1').textContent;";
    browser.open(&page).await;
    assert!(
        browser
            .run(heading)
            .await
            .as_str()
            .unwrap()
            .starts_with(HOSTILE)
    );
    assert_eq!(number(&browser.run(injected).await), 0);

    // The workers page lists the worker.
    browser.open(&format!("{}/workers", coordinator.url)).await;
    let workers = "return document.querySelectorAll('tr.worker').length;";
    assert_eq!(number(&browser.run(workers).await), 1);

    assert!(terminate(&mut trainer).success());
    drop(browser);
    coordinator.stop().await;
}
