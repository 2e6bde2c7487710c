//! `sweep`: parses the command line, runs the command, and turns any error
//! into one line on stderr and a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;
use sweep_cli::args::Cli;

#[cfg(feature = "local")]
#[global_allocator]
static ALLOCATOR: sweep_worker::TrainingAllocator = sweep_worker::TrainingAllocator;

fn main() -> ExitCode {
    sweep_process::init_logging("warn", Default::default());
    let cli = Cli::parse();
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(sweep_cli::run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if interrupted(&err) {
                // What shells report for a command stopped by ctrl-c.
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(feature = "local")]
fn interrupted(err: &anyhow::Error) -> bool {
    err.downcast_ref::<sweep_cli::local::Interrupted>()
        .is_some()
}

/// Only `sweep run` is interrupted; without local mode nothing is.
#[cfg(not(feature = "local"))]
fn interrupted(_: &anyhow::Error) -> bool {
    false
}
