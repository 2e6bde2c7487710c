//! Following a sweep: the `Watch` stream drawn as a progress bar (done,
//! running and failed tasks, ETA), or as a line per change when stderr is
//! not a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use sweep_proto::v1::{self, SweepInfo, WatchSweepRequest};

use crate::client::Coordinator;

/// Follows the sweep until it is final and returns its last state.
pub async fn follow(coordinator: &mut Coordinator, sweep_id: u64) -> anyhow::Result<SweepInfo> {
    let mut stream = coordinator
        .client
        .watch(WatchSweepRequest { sweep_id })
        .await
        .map_err(|status| coordinator.explain(status))?
        .into_inner();
    let bar = Bar::new();
    let mut last = None;
    while let Some(info) = stream
        .message()
        .await
        .map_err(|status| coordinator.explain(status))?
    {
        bar.show(&info);
        last = Some(info);
    }
    bar.finish();
    last.ok_or_else(|| {
        anyhow::anyhow!("the coordinator ended the watch of sweep {sweep_id} before it began")
    })
}

/// How many of a sweep's tasks are where.
pub struct Tally {
    pub total: u64,
    pub done: u64,
    pub running: u64,
    pub failed: u64,
}

impl Tally {
    pub fn of(info: &SweepInfo) -> Self {
        let c = info.counts.unwrap_or_default();
        Self {
            total: (c.blocked + c.queued + c.leased + c.succeeded + c.failed + c.cancelled) as u64,
            done: (c.succeeded + c.failed + c.cancelled) as u64,
            running: c.leased as u64,
            failed: c.failed as u64,
        }
    }
}

/// The name a sweep state is shown by.
pub fn state_name(state: i32) -> String {
    v1::SweepState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("SWEEP_STATE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("unknown ({state})"))
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

    fn show(&self, info: &SweepInfo) {
        let tally = Tally::of(info);
        let message = format!("{} running, {} failed", tally.running, tally.failed);
        match self {
            Self::Terminal(bar) => {
                bar.set_length(tally.total);
                bar.set_position(tally.done);
                bar.set_message(message);
            }
            Self::Lines(last) => {
                let line = format!(
                    "sweep {}: {}/{} tasks done, {message} ({})",
                    info.id,
                    tally.done,
                    tally.total,
                    state_name(info.state)
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
