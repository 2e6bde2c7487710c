//! [`open`]: where `sweep report`, `plot`, `export` and `dashboard` read
//! results: a coordinator's read RPCs (its address and client token), or a
//! database opened read-only. Both are a [`Results`] and answer with the
//! same values, so a verb renders the same bytes from either.

use std::sync::Arc;

use sweep_coordinator::store::{self, reader};
use sweep_proto::Results;

use crate::args::{Endpoint, ReadFrom};

/// The coordinator when the flags (or `SWEEP_ENDPOINT`) name one, the
/// database otherwise.
pub async fn open(args: &ReadFrom) -> anyhow::Result<Arc<dyn Results>> {
    match &args.endpoint {
        Some(endpoint) => {
            let endpoint = Endpoint {
                endpoint: endpoint.clone(),
                token: args.token.clone(),
                ca: args.ca.clone(),
            };
            Ok(Arc::new(crate::cluster::connect(&endpoint).await?))
        }
        None => database(&args.database_url).await,
    }
}

/// The database results are read from, opened read-only: a missing SQLite
/// file is an error, not a new empty database, and nothing is migrated.
pub async fn database(url: &str) -> anyhow::Result<Arc<dyn Results>> {
    reader::open(url).await.map_err(|err| match err {
        sweep_coordinator::error::Error::NotFound { .. } => {
            anyhow::anyhow!("{err}: run a sweep first (`sweep run SPEC`) or pass --database-url")
        }
        other => anyhow::anyhow!("cannot open the database {}: {other}", store::redacted(url)),
    })
}

/// Where results are read from, for messages: the coordinator's address or
/// the database's URL without its password.
pub fn describe(args: &ReadFrom) -> String {
    match &args.endpoint {
        Some(endpoint) => endpoint.clone(),
        None => store::redacted(&args.database_url),
    }
}
