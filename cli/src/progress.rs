//! Following a sweep: the `Watch` stream drawn as a progress bar (done,
//! running and failed tasks, ETA), or as a line per change when stderr is
//! not a terminal; the sweep's first failure shown once, as it happens.
//! [`failures`]: failed tasks grouped by their error.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use sweep_proto::client::SweepsClient;
use sweep_proto::{Results, Sweep, SweepId, Task, TaskId, TaskState};

/// Follows the sweep until it is final and returns its last state.
pub async fn follow(client: &SweepsClient, sweep: SweepId) -> anyhow::Result<Sweep> {
    let mut changes = client.watch(sweep).await?;
    let bar = Bar::new();
    let mut last = None;
    let mut failure_shown = false;
    while let Some(info) = changes.next().await? {
        bar.show(&info);
        if info.counts.failed > 0 && !failure_shown {
            // Once: a cause that fails every task (a dataset missing on
            // the workers) would otherwise scroll by once per task.
            failure_shown = true;
            let failed = client.tasks(sweep, &[TaskState::Failed]).await?;
            if let Some(first) = failed.iter().min_by_key(|t| t.id) {
                bar.say(&format!(
                    "task {} failed: {}",
                    first.id,
                    first.error.as_deref().unwrap_or("")
                ));
            }
        }
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

    fn say(&self, line: &str) {
        match self {
            Self::Terminal(bar) => bar.suspend(|| eprintln!("{line}")),
            Self::Lines(_) => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Self::Terminal(bar) = self {
            bar.finish();
        }
    }
}

/// Failed tasks grouped by their error, the first failure's group first:
/// one line per cause however many tasks it failed.
pub fn failures(tasks: &[Task]) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<TaskId>> = BTreeMap::new();
    for task in tasks {
        groups
            .entry(task.error.as_deref().unwrap_or(""))
            .or_default()
            .push(task.id);
    }
    let mut groups: Vec<(&str, Vec<TaskId>)> = groups.into_iter().collect();
    for (_, ids) in &mut groups {
        ids.sort();
    }
    groups.sort_by_key(|(_, ids)| ids[0]);
    groups
        .into_iter()
        .map(|(error, ids)| match ids.as_slice() {
            [one] => format!("task {one} failed: {error}"),
            [first, .., last] => format!(
                "{} tasks failed ({first} to {last}), all with: {error}",
                ids.len()
            ),
            [] => unreachable!("a group has a task"),
        })
        .collect()
}
