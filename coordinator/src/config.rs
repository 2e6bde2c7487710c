//! The coordinator's settings (the binary fills them from flags and `SWEEP_*`
//! environment variables).

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// `postgres://...` for a cluster, `sqlite://PATH` for one machine.
    pub database_url: String,
    /// How long a lease lasts without a heartbeat; workers heartbeat every
    /// third of it.
    pub lease_ttl: Duration,
    /// The longest a `Lease` call waits for work before answering empty.
    pub max_lease_wait: Duration,
    /// How often expired leases are looked for.
    pub reap_interval: Duration,
    /// How often sweeps with adaptive seeds are looked at for a round to
    /// decide.
    pub seed_interval: Duration,
    /// Artifacts larger than this are refused.
    pub max_artifact_bytes: u64,
    /// The most parameters a model of a submitted sweep may have.
    pub max_params: u64,
    /// The bearer token workers must present (none: no check).
    pub worker_token: Option<String>,
    /// Serve TLS with this certificate chain and key, both PEM (none: plain
    /// HTTP/2, for a trusted network).
    pub tls: Option<TlsIdentity>,
    /// The bearer token clients must present (none: no check).
    pub client_token: Option<String>,
    /// Serve the web dashboard on the same port.
    pub dashboard: bool,
}

impl Config {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            lease_ttl: Duration::from_secs(30),
            max_lease_wait: Duration::from_secs(20),
            reap_interval: Duration::from_secs(5),
            seed_interval: Duration::from_secs(1),
            max_artifact_bytes: 64 << 20,
            max_params: sweep_spec::planner::Limits::default().max_params,
            worker_token: None,
            tls: None,
            client_token: None,
            dashboard: true,
        }
    }
}

/// The coordinator's certificate chain and private key, PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// Never the key in logs.
impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity { .. }")
    }
}
