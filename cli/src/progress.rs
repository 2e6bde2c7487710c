//! Following a sweep: the `Watch` stream drawn as a progress bar (done,
//! running and failed tasks, ETA), or as a line per change when stderr is
//! not a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use sweep_proto::client::SweepsClient;
use sweep_proto::{Sweep, SweepId};

/// Follows the sweep until it is final and returns its last state.
pub async fn follow(client: &SweepsClient, sweep: SweepId) -> anyhow::Result<Sweep> {
    let mut changes = client.watch(sweep).await?;
    let bar = Bar::new();
    let mut last = None;
    while let Some(info) = changes.next().await? {
        bar.show(&info);
        last = Some(info);
    }
    bar.finish();
    last.ok_or_else(|| {
        anyhow::anyhow!("the coordinator ended the watch of sweep {sweep} before it began")
    })
}

enum Bar {
    Terminal(ProgressBar),
    /// The last line printed, to print only changes.
    Lines(std::cell::RefCell<String>),
}

impl Bar {
    fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Lines(Default::default());
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:32}] {pos}/{len} tasks  {msg}  eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self::Terminal(bar)
    }

    fn show(&self, info: &Sweep) {
        let counts = &info.counts;
        let message = format!("{} running, {} failed", counts.leased, counts.failed);
        match self {
            Self::Terminal(bar) => {
                bar.set_length(counts.total());
                bar.set_position(counts.done());
                bar.set_message(message);
            }
            Self::Lines(last) => {
                let line = format!(
                    "sweep {}: {}/{} tasks done, {message} ({})",
                    info.id,
                    counts.done(),
                    counts.total(),
                    info.state
                );
                if *last.borrow() != line {
                    eprintln!("{line}");
                    last.replace(line);
                }
            }
        }
    }

    fn finish(&self) {
        if let Self::Terminal(bar) = self {
            bar.finish();
        }
    }
}
