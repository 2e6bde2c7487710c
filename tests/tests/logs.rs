//! What the binaries write to stderr when it is a file or a pipe, as under
//! Slurm or a log shipper: plain text without colour codes by default, one
//! JSON object per line with `--log-format json`.

use std::process::{Command, Stdio};
use std::time::Duration;

use sweep_tests::{Process, binary};

/// The coordinator's log from start to a clean stop, in `format`.
fn coordinator_log(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("s.db").display());
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let child = Command::new(binary("sweep-coordinator"))
        .args(["--listen", &address, "--database-url", &database])
        .args(["--log-format", format])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut process = Process(child);
    std::thread::sleep(Duration::from_secs(2));
    process.signal("TERM");
    let status = process.0.wait().unwrap();
    assert!(status.success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut process.0.stderr.take().unwrap(), &mut log).unwrap();
    log
}

#[test]
fn logs_to_a_pipe_are_plain_text_or_json_lines() {
    let text = coordinator_log("text");
    assert!(text.contains("coordinator serving"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in a file: {text:?}"
    );

    let json = coordinator_log("json");
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let serving = lines
        .iter()
        .find(|line| line["fields"]["message"] == "coordinator serving")
        .expect("the serving line");
    assert_eq!(serving["level"], "INFO");
    assert!(
        serving["fields"]["database"]
            .as_str()
            .unwrap()
            .starts_with("sqlite://")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "shutting down")
    );
}
