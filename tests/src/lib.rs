//! What the cross-component tests in `tests/tests/` share: a coordinator
//! served in the test's process on a loopback port, the workspace's binaries
//! (built for the test run, as a user would run them) and files of the
//! repository.
//!
//! - `worker.rs`: real `sweep-worker` processes against a coordinator:
//!   training, SIGTERM hand-back, coordinator restarts.
//! - `cli.rs`: the `sweep` command end to end, on one machine and against a
//!   coordinator, with every kind of bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use sweep_coordinator::Config;
use sweep_proto::client::SweepsClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A coordinator served by this process until [`Coordinator::stop`].
pub struct Coordinator {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its database URL (a SQLite file).
    pub database: String,
    configure: fn(&mut Config),
    running: Option<(oneshot::Sender<()>, Served)>,
    dir: tempfile::TempDir,
}

type Served = JoinHandle<sweep_coordinator::error::Result<()>>;

impl Coordinator {
    /// A coordinator on a fresh SQLite file; `configure` may change its
    /// settings (tokens, lease time), now and at every restart.
    pub async fn start(configure: fn(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = format!("sqlite://{}", dir.path().join("sweeps.db").display());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let mut coordinator = Self {
            url,
            database,
            configure,
            running: None,
            dir,
        };
        coordinator.serve(listener);
        coordinator
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let mut config = Config::new(self.database.clone());
        (self.configure)(&mut config);
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(sweep_coordinator::run(config, listener, async move {
            let _ = stopped.await;
        }));
        self.running = Some((stop, served));
    }

    /// Stops serving and waits until the coordinator has let go of its
    /// address and database.
    pub async fn stop(&mut self) {
        if let Some((stop, served)) = self.running.take() {
            let _ = stop.send(());
            served
                .await
                .expect("the coordinator task")
                .expect("the coordinator stopped cleanly");
        }
    }

    /// Serves again on the same address, on the same database or, with a
    /// file name, on a new one in the same directory (a coordinator that has
    /// forgotten everything).
    pub async fn restart(&mut self, new_database: Option<&str>) {
        self.stop().await;
        if let Some(file) = new_database {
            self.database = format!("sqlite://{}", self.dir.path().join(file).display());
        }
        let address = self.url.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .expect("bind the same address again");
        self.serve(listener);
    }

    /// A client, once the coordinator answers.
    pub async fn client(&self) -> SweepsClient {
        for _ in 0..100 {
            if let Ok(client) = SweepsClient::connect(&self.url, None).await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no coordinator at {}", self.url);
    }
}

/// A binary of the workspace (`sweep`, `sweep-worker`), built for this test
/// run with the same profile as the tests, so a test never runs a stale one.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = profile_dir();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--workspace", "--bins"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of the workspace's binaries failed"
        );
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// `target/debug` (or `release`): where this test binary's profile puts
/// binaries; test binaries live in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/PROFILE/deps")
        .to_path_buf()
}

/// A file of the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}
