//! What the cross-component tests in `tests/tests/` share: a coordinator
//! served in the test's process on a loopback port, the workspace's binaries
//! (built for the test run, as a user would run them) and files of the
//! repository.
//!
//! - `worker.rs`: real `sweep-worker` processes against a coordinator:
//!   training, SIGTERM hand-back, coordinator restarts, tasks too large.
//! - `faults.rs`: what a cluster throws at a sweep (a database restart) and
//!   what must come of it: every task done once.
//! - `cli.rs`: the `sweep` command end to end, on one machine and against a
//!   coordinator, with every kind of bad input.
//! - `results.rs`: report, plot and export through the coordinator, byte
//!   for byte what a direct read gives, on SQLite and PostgreSQL.
//! - `dashboard.rs`: the web dashboard over HTTP; `browser.rs`: the same in
//!   headless Chromium, through [`webdriver`], as a person sees it.

mod http;
pub mod webdriver;

pub use http::{Reply, http};

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sweep_coordinator::Config;
use sweep_proto::client::SweepsClient;
use sweep_proto::{Results, Sweep, SweepId};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A coordinator served by this process until [`Coordinator::stop`].
pub struct Coordinator {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its database URL (a SQLite file).
    pub database: String,
    configure: Box<dyn Fn(&mut Config) + Send + Sync>,
    running: Option<(oneshot::Sender<()>, Served)>,
    dir: tempfile::TempDir,
}

type Served = JoinHandle<sweep_coordinator::error::Result<()>>;

impl Coordinator {
    /// A coordinator on a fresh SQLite file; `configure` may change its
    /// settings (tokens, lease time), now and at every restart.
    pub async fn start(configure: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        Self::start_on(None, configure).await
    }

    /// A coordinator on `database` (a URL), or a fresh SQLite file.
    pub async fn start_on(
        database: Option<&str>,
        configure: impl Fn(&mut Config) + Send + Sync + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = database.map_or_else(
            || format!("sqlite://{}", dir.path().join("sweeps.db").display()),
            str::to_string,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let mut coordinator = Self {
            url,
            database,
            configure: Box::new(configure),
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
        client(&self.url).await
    }

    /// Its Prometheus metrics, as a scrape of `/metrics` reads them.
    pub async fn metrics(&self) -> String {
        let reply = http(&self.url, "GET", "/metrics", &[], "").await;
        assert_eq!(reply.status, 200, "the coordinator serves its metrics");
        reply.body
    }
}

/// A loopback address no one listens on yet.
pub fn free_address() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string()
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

/// Runs the `sweep` command, with none of the connection settings of the
/// environment it runs in.
pub fn sweep(args: &[&str]) -> Output {
    Command::new(binary("sweep"))
        .args(args)
        .env_remove("SWEEP_ENDPOINT")
        .env_remove("SWEEP_TOKEN")
        .env_remove("SWEEP_CA")
        .env_remove("SWEEP_DATABASE_URL")
        .env("RUST_LOG", "error")
        // Two local workers share the built-in sample without a file.
        .env("TMPDIR", "/dev/null")
        .output()
        .expect("run the sweep binary")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failure reported as exactly one `error:` line containing `expected`.
pub fn assert_fails_with(output: &Output, expected: &str) {
    let err = stderr(output);
    assert!(
        !output.status.success(),
        "expected failure, got success: {err}"
    );
    assert_eq!(output.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        lines[0].contains(expected),
        "{:?} lacks {expected:?}",
        lines[0]
    );
}

/// A client once the coordinator at `url` answers (at most ten seconds).
pub async fn client(url: &str) -> SweepsClient {
    for _ in 0..200 {
        if let Ok(client) = SweepsClient::connect(url, &Default::default()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no coordinator at {url}");
}

/// A process of the test's (a worker, a coordinator), killed when dropped
/// so that a failed test leaves none behind.
pub struct Process(pub Child);

impl Process {
    /// Sends a signal by name (`TERM`, `KILL`, `STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{name} {pid}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a worker with `slots` slots and more `flags` against `url`.
pub fn worker(url: &str, slots: usize, flags: &[&str]) -> Process {
    let child = Command::new(binary("sweep-worker"))
        .args(["--coordinator", url, "--slots", &slots.to_string()])
        .args(flags)
        .env("RUST_LOG", "warn")
        // No temporary files: the built-in sample is decoded from memory.
        .env("TMPDIR", "/dev/null")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the worker binary");
    Process(child)
}

/// Sends SIGTERM, as Kubernetes and Slurm do, and waits for the exit.
pub fn terminate(process: &mut Process) -> std::process::ExitStatus {
    process.signal("TERM");
    process.0.wait().unwrap()
}

pub async fn submit(client: &SweepsClient, spec: &str) -> SweepId {
    client.submit(spec).await.expect("submit").0
}

/// Submits with `--no-cache`: for tests that train the same tasks twice
/// to compare the two runs.
pub async fn submit_uncached(client: &SweepsClient, spec: &str) -> SweepId {
    client.submit_with(spec, true).await.expect("submit").0
}

/// Polls the sweep until `done` says so (at most five minutes).
pub async fn wait_for(
    client: &SweepsClient,
    sweep: SweepId,
    done: impl Fn(&Sweep) -> bool,
) -> Sweep {
    let started = Instant::now();
    loop {
        if let Ok(info) = client.sweep(&sweep.into()).await {
            if done(&info) {
                return info;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "sweep stuck: {info:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a read verb with `source` (the flags that say where to read) and
/// answers its stdout.
pub fn read(args: &[&str], source: &[&str]) -> String {
    let all: Vec<&str> = args.iter().chain(source).copied().collect();
    let output = sweep(&all);
    assert!(output.status.success(), "{all:?}: {}", stderr(&output));
    stdout(&output)
}

/// The files `sweep plot` wrote, by name.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Waits until the sweep is final.
pub async fn finished(client: &SweepsClient, sweep: SweepId) -> Sweep {
    wait_for(client, sweep, |s| s.state.is_final()).await
}

/// A PostgreSQL server of the test's own: `initdb` in a temporary directory,
/// on a free port, so that a test may restart it without touching the
/// shared server. PostgreSQL refuses to run as root; then it runs as the
/// `postgres` user.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // The server's user must reach its data and socket directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("open the directory to the postgres user");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = Self { dir, port };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.pg_ctl("start");
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A fast restart that keeps the server away for `down`: every
    /// connection is cut ("terminating connection due to administrator
    /// command"), and new ones are refused until it is back.
    pub fn restart(&self, down: Duration) {
        self.pg_ctl("stop");
        std::thread::sleep(down);
        self.pg_ctl("start");
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data();
        let args = [
            "-D", &data, "-l", &log, "-o", &options, "-m", "fast", "-w", action,
        ];
        self.run("pg_ctl", &args);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = postgres_command(program)
            .args(args)
            .output()
            .expect("run a PostgreSQL program");
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let stop = ["-D", &data, "-m", "immediate", "stop"];
        let _ = postgres_command("pg_ctl").args(stop).output();
    }
}

/// A PostgreSQL program, run as the `postgres` user when this is root.
fn postgres_command(program: &str) -> Command {
    let program = postgres_bin().join(program);
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Where the newest installed PostgreSQL keeps its programs (Debian puts
/// them under `/usr/lib/postgresql/VERSION/bin`).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|path| {
        path.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .expect("PostgreSQL's programs under /usr/lib/postgresql")
}

/// A fresh, empty database on the shared PostgreSQL server
/// (`SWEEP_TEST_POSTGRES_URL`, default the local one with trust auth), for
/// one test; [`EmptyPostgres::drop`] removes it.
pub struct EmptyPostgres {
    /// `postgres://.../NAME`.
    pub url: String,
    name: String,
    admin: String,
}

impl EmptyPostgres {
    /// Creates `NAME_PID` anew (dropping one a killed run left behind).
    pub async fn create(name: &str) -> Self {
        let admin = std::env::var("SWEEP_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("{name}_{}", std::process::id());
        let url = match admin.rfind('/') {
            Some(slash) => format!("{}/{name}", &admin[..slash]),
            None => panic!("cannot name a database in {admin}"),
        };
        let database = Self { url, name, admin };
        database
            .admin(&format!("DROP DATABASE IF EXISTS {}", database.name))
            .await;
        database
            .admin(&format!("CREATE DATABASE {}", database.name))
            .await;
        database
    }

    /// How many tables its `public` schema has.
    pub async fn tables(&self) -> i64 {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect");
        sqlx::query_scalar("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'")
            .fetch_one(&mut conn)
            .await
            .expect("count the tables")
    }

    pub async fn drop(self) {
        self.admin(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await;
    }

    /// Runs one statement in the database, as its owner.
    pub async fn execute(&self, sql: &str) {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect");
        conn.execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// Drops a role (roles belong to the server, not to the database).
    pub async fn drop_role(&self, role: &str) {
        self.admin(&format!("DROP ROLE IF EXISTS {role}")).await;
    }

    async fn admin(&self, sql: &str) {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .unwrap_or_else(|err| panic!("PostgreSQL at {} is needed: {err}", self.admin));
        conn.execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
}
