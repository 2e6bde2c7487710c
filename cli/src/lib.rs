//! The `sweep` command.
//!
//! - [`args`]: the command line (clap), connection flags also from `SWEEP_*` env.
//! - [`local`] (feature `local`, on by default): `sweep run`, an embedded
//!   coordinator and local workers on one machine.
//! - [`cluster`]: the verbs against a running coordinator (submit, status,
//!   watch, cancel, retry, workers, tasks) through `sweep_proto`'s typed
//!   client; [`progress`] draws a sweep's progress.
//! - [`report`]: per-setting tables (mean ± interval) and `sweep compare`'s
//!   verdicts between settings; [`plot`]: the report's
//!   figures as files (both computed by `sweep_report`); [`export`]: raw
//!   metrics for notebooks; `sweep dashboard`. All read from a
//!   [`sweep_proto::Results`] that [`source`] opens: the coordinator's read
//!   RPCs, or the database opened read-only.
//! - [`cache`]: `sweep cache stats|forget`, the result cache.
//! - [`fetch`]: `sweep data fetch`, the full datasets from their mirrors or
//!   a local copy.
//! - [`output`]: table, CSV and JSON listings.

pub mod args;
pub mod cache;
pub mod cluster;
pub mod export;
pub mod fetch;
#[cfg(feature = "local")]
pub mod local;
pub mod output;
pub mod plot;
pub mod progress;
pub mod report;
pub mod source;

use clap::CommandFactory;

use args::{Cli, Command, DataCommand, ReadFrom};

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        #[cfg(feature = "local")]
        Command::Run(args) => local::run(&args).await,
        Command::Submit {
            spec,
            no_cache,
            endpoint,
        } => cluster::submit(&spec, no_cache, &endpoint).await,
        Command::Extend {
            sweep,
            spec,
            no_cache,
            endpoint,
        } => cluster::extend(&sweep, &spec, no_cache, &endpoint).await,
        Command::Status {
            sweep,
            endpoint,
            output,
        } => cluster::status(sweep.as_ref(), &endpoint, output.format).await,
        Command::Watch { sweep, endpoint } => cluster::watch(&sweep, &endpoint).await,
        Command::Cancel { sweep, endpoint } => cluster::cancel(&sweep, &endpoint).await,
        Command::Retry { sweep, endpoint } => cluster::retry(&sweep, &endpoint).await,
        Command::Cache { command } => cache::run(command).await,
        Command::Workers { endpoint, output } => cluster::workers(&endpoint, output.format).await,
        Command::Tasks {
            sweep,
            state,
            endpoint,
            output,
        } => cluster::tasks(&sweep, &state, &endpoint, output.format).await,
        Command::Report {
            sweep,
            style,
            source,
            output,
        } => {
            let source = source::open(&source).await?;
            report::report(source.as_ref(), &sweep, style.interval, output.format).await
        }
        Command::Compare {
            sweep,
            by,
            metric,
            baseline,
            alpha,
            paired,
            source,
            output,
        } => {
            let question = sweep_report::compare::Question {
                axis: by,
                metric,
                baseline,
                alpha,
                paired,
            };
            let source = source::open(&source).await?;
            report::compare(source.as_ref(), &sweep, &question, output.format).await
        }
        Command::Plot {
            sweep,
            out,
            format,
            source,
        } => {
            let source = source::open(&source).await?;
            for path in plot::plot(source.as_ref(), &sweep, &out, format).await? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Export {
            sweep,
            source,
            format,
        } => {
            let source = source::open(&source).await?;
            let out = std::io::stdout().lock();
            export::export(source.as_ref(), &sweep, format, out).await
        }
        Command::Dashboard { source, listen } => dashboard(&source, listen).await,
        Command::Data {
            command:
                DataCommand::Fetch {
                    name,
                    dir,
                    mirrors,
                    from,
                },
        } => {
            let set = fetch::dataset(&name)?;
            let dir = tokio::task::spawn_blocking(move || match from {
                Some(from) => fetch::import(set, &from, &dir),
                None => fetch::fetch(set, &dir, &mirrors),
            })
            .await??;
            println!("{}", dir.display());
            eprintln!(
                "{name} is ready: start workers with --data-dir {} (or SWEEP_DATA_DIR)",
                dir.parent().unwrap_or(&dir).display()
            );
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "sweep", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// `sweep dashboard`: the coordinator's dashboard over a database opened
/// read-only, or over a coordinator's read RPCs, until Ctrl-C.
async fn dashboard(from: &ReadFrom, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use sweep_coordinator::dashboard::{self, Dashboard};
    let results = source::open(from).await?;
    // A wrong token or an unreadable database fails here, once, rather
    // than on every page.
    results
        .task_counts()
        .await
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", source::describe(from)))?;
    let changes = dashboard::poll(results.clone());
    let router = dashboard::router(Dashboard::new(results, None, changes));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {listen}: {err}"))?;
    eprintln!(
        "dashboard: http://{}/ (reading {}; Ctrl-C stops it)",
        listener.local_addr()?,
        source::describe(from)
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(sweep_process::shutdown_signal())
        .await?;
    Ok(())
}
