//! Test helpers: a real SQLite file or a fresh PostgreSQL database per test,
//! and a coordinator serving on a loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AnyConnection, Connection, Executor, PgConnection};
use sweep_coordinator::Config;
use sweep_coordinator::store::{self, Store};
use sweep_proto::v1;
use sweep_proto::v1::coordinator_client::CoordinatorClient;
use sweep_proto::v1::sweeps_client::SweepsClient;
use sweep_proto::{Backend, Device, DeviceKind, Registration, WorkerId};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Where the tests find PostgreSQL (`SWEEP_TEST_POSTGRES_URL`, default the
/// local server with trust auth). The tests fail, not skip, without one.
pub fn postgres_admin_url() -> String {
    std::env::var("SWEEP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database name that no other test, nor another run of the tests, uses.
/// Not a UUID: the `uuid` crate's `v4` feature here would change the `uuid`
/// that burn builds with, and `cargo test` would build burn twice (once for
/// the tests, once for the binaries they run).
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let next = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("sweep_test_{}_{nanos}_{next}", std::process::id())
}

/// A store of one backend, alive for one test.
pub struct TestDb {
    pub url: String,
    pub store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    File(tempfile::TempDir),
    Database(String),
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("sweeps.db").display());
        let store = store::connect(&url).await.expect("open sqlite store");
        Self {
            url,
            store,
            cleanup: Cleanup::File(dir),
        }
    }

    pub async fn postgres() -> Self {
        let admin = postgres_admin_url();
        let name = unique_name();
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|err| panic!("PostgreSQL at {admin} is needed: {err}"));
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let url = match admin.rfind('/') {
            Some(slash) => format!("{}/{name}", &admin[..slash]),
            None => panic!("cannot name a database in {admin}"),
        };
        let store = store::connect(&url).await.expect("connect postgres store");
        Self {
            url,
            store,
            cleanup: Cleanup::Database(name),
        }
    }

    /// The backend a benchmark names: `postgres`, or SQLite for anything else.
    pub async fn of(backend: &str) -> Self {
        match backend {
            "postgres" => Self::postgres().await,
            _ => Self::sqlite().await,
        }
    }

    /// Drops the store and opens it again, as a restarted coordinator would.
    pub async fn reopen(&mut self) {
        self.store = store::connect(&self.url).await.expect("reopen store");
    }

    /// Runs one statement on the database directly, as an operator would.
    pub async fn execute(&self, sql: &str) {
        self.try_execute(sql).await.expect("run the statement");
    }

    /// [`TestDb::execute`], answering the database's refusal.
    pub async fn try_execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(&self.url).await.expect("connect");
        conn.execute(sqlx::AssertSqlSafe(sql.to_string())).await?;
        Ok(())
    }

    /// The number a query answers, read on the database directly.
    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(&self.url).await.expect("connect");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut conn)
            .await
            .expect("run the query")
    }

    pub async fn cleanup(self) {
        drop(self.store);
        if let Cleanup::Database(name) = self.cleanup {
            let mut conn = PgConnection::connect(&postgres_admin_url())
                .await
                .expect("connect");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .expect("drop test database");
        }
    }
}

/// Runs each named async test function, `async fn name(db: &mut TestDb)`,
/// once against SQLite and once against PostgreSQL.
#[macro_export]
macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let mut db = $crate::common::TestDb::sqlite().await;
                    super::$test(&mut db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let mut db = $crate::common::TestDb::postgres().await;
                    super::$test(&mut db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

/// Registers a worker with one CPU device and two slots, whose leases live
/// a minute.
pub async fn worker(store: &Arc<dyn Store>, name: &str) -> WorkerId {
    worker_with_ttl(store, name, Duration::from_secs(60)).await
}

/// [`worker`], whose leases live `lease_ttl`.
pub async fn worker_with_ttl(store: &Arc<dyn Store>, name: &str, lease_ttl: Duration) -> WorkerId {
    store
        .register_worker(
            &Registration {
                name: name.into(),
                host: "localhost".into(),
                backend: Backend::Flex,
                devices: vec![Device {
                    kind: DeviceKind::Cpu,
                    name: "test cpu".into(),
                    memory_bytes: 1 << 30,
                }],
                slots: 2,
                version: "test".into(),
                result_version: 1,
            },
            lease_ttl,
        )
        .await
        .expect("register worker")
}

/// A coordinator serving on 127.0.0.1:0 until stopped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<sweep_coordinator::error::Result<()>>,
}

impl Server {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(sweep_coordinator::run(config, listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            handle,
        }
    }

    pub async fn channel(&self) -> Channel {
        let url = format!("http://{}", self.addr);
        for _ in 0..100 {
            if let Ok(channel) = Channel::from_shared(url.clone()).unwrap().connect().await {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the coordinator at {url} never answered");
    }

    pub async fn clients(&self) -> (CoordinatorClient<Channel>, SweepsClient<Channel>) {
        let channel = self.channel().await;
        (
            CoordinatorClient::new(channel.clone()),
            SweepsClient::new(channel),
        )
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.await.unwrap().expect("clean shutdown");
    }
}

/// For the benchmarks: a spec of TASKS tasks as a grid of seeds ×
/// learning rates, so that it stays small however many tasks it has.
pub fn bench_spec(tasks: usize) -> String {
    let seeds = tasks.min(1000);
    assert_eq!(
        tasks % seeds,
        0,
        "TASKS is up to 1000 or a multiple of 1000"
    );
    let seeds: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
    let lrs: Vec<String> = (1..=tasks / seeds.len())
        .map(|i| format!("{i}e-5"))
        .collect();
    format!(
        "name = \"bench\"\nexperiment = \"classify\"\ndataset = \"mnist\"\n\
         model = {{ kind = \"mlp\", hidden = [16] }}\n\
         train = {{ epochs = 1, batch_size = 64 }}\n\
         [grid]\nseed = [{}]\nlr = [{}]\n",
        seeds.join(", "),
        lrs.join(", ")
    )
}

/// Registers a simulated worker: before the clock starts, because a worker
/// registers once in its life and the bench measures the queue's steady
/// state.
pub async fn register_simulated(channel: Channel, slots: u32) -> (CoordinatorClient<Channel>, u64) {
    let mut client = CoordinatorClient::new(channel);
    let worker_id = client
        .register(v1::RegisterRequest {
            name: "bench".into(),
            host: "localhost".into(),
            backend: v1::Backend::Flex as i32,
            devices: Vec::new(),
            slots,
            version: "bench".into(),
            result_version: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    (client, worker_id)
}
