//! `sweep`: parses the command line, runs the command, and turns any error
//! into one line on stderr and a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;
use sweep_cli::args::Cli;
use sweep_cli::local::Interrupted;

#[global_allocator]
static ALLOCATOR: sweep_worker::TrainingAllocator = sweep_worker::TrainingAllocator;

fn main() -> ExitCode {
    sweep_proto::process::init_logging("warn", Default::default());
    let cli = Cli::parse();
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(sweep_cli::run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            // 130: what shells report for a command stopped by ctrl-c.
            if err.downcast_ref::<Interrupted>().is_some() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
