//! The questions of a sweep with adaptive seeds (a spec's `seeds`), and
//! what each one's last finished round decides: the settings that differ
//! only on the compared axis, each pair of their levels judged by the
//! [`sequential`](super::sequential) rule. A coordinator adds seeds from
//! these decisions; nothing here touches a database.

use std::collections::BTreeMap;

use sweep_proto::{RoundOutcome, SeedRound, Task, TaskState};
use sweep_spec::TaskParams;
use sweep_spec::planner::Adaptive;

use super::listing::winner;
use super::sequential::{Decision, Rule, Schedule};
use super::{pairings, split};

/// The question a task belongs to: what the compared settings share, as
/// JSON with sorted keys.
pub fn question(params: &TaskParams, axis: &str) -> String {
    serde_json::to_string(&split(params, axis).1).unwrap_or_default()
}

/// The decision on each question of `tasks` (every task of one sweep, in
/// any state) whose seeds so far have all ended and that `decided` has no
/// round for at that many seeds yet.
pub fn next_rounds(tasks: &[Task], adaptive: &Adaptive, decided: &[SeedRound]) -> Vec<SeedRound> {
    let mut questions: BTreeMap<String, Vec<&Task>> = BTreeMap::new();
    for task in tasks {
        questions
            .entry(question(&task.params, &adaptive.compare))
            .or_default()
            .push(task);
    }
    let mut rounds = Vec::new();
    for (question, tasks) in questions {
        let seeds = seeds(&tasks, &adaptive.compare);
        let known = |r: &&SeedRound| r.question == question;
        let settled = decided.iter().filter(known).any(|r| r.outcome.is_final());
        let done = decided
            .iter()
            .filter(known)
            .any(|r| r.seeds == seeds as u64);
        if settled || done || !tasks.iter().all(|t| t.state.is_final()) {
            continue;
        }
        rounds.push(decide(question, &tasks, seeds, adaptive));
    }
    rounds
}

/// Seeds a setting of the question has: the most any of its levels has.
fn seeds(tasks: &[&Task], axis: &str) -> usize {
    let mut by_level: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for task in tasks {
        *by_level.entry(split(&task.params, axis).0).or_default() += 1;
    }
    by_level.into_values().max().unwrap_or(0)
}

/// One question's decision once each of its settings has `seeds` seeds.
fn decide(question: String, tasks: &[&Task], seeds: usize, adaptive: &Adaptive) -> SeedRound {
    let axis = adaptive.compare.as_str();
    let mut levels: Vec<(String, Vec<f64>)> = Vec::new();
    for task in tasks {
        let level = split(&task.params, axis).0.unwrap_or_default();
        let value = (task.state == TaskState::Succeeded)
            .then(|| task.summary.as_ref()?.get(&adaptive.metric))
            .flatten();
        let at = match levels.iter().position(|(name, _)| *name == level) {
            Some(at) => at,
            None => {
                levels.push((level, Vec::new()));
                levels.len() - 1
            }
        };
        levels[at].1.extend(value);
    }
    let names: Vec<super::Level> = (levels.iter())
        .map(|(name, _)| super::Level {
            name: name.clone(),
            seeds: Vec::new(),
        })
        .collect();
    let pairs = pairings(&names, None);
    // Each pair of a question is one test of the family: Bonferroni.
    let rule = Rule::new(
        Schedule {
            start: adaptive.start,
            step: adaptive.step,
            max: adaptive.max,
        },
        adaptive.alpha / pairs.len().max(1) as f64,
        adaptive.resolution,
    );
    let mut outcome = RoundOutcome::Resolved;
    let mut details = Vec::new();
    for (a, b) in pairs {
        let ((name_a, values_a), (name_b, values_b)) = (&levels[a], &levels[b]);
        let decision = rule.decide(values_a, values_b);
        let (pair, said) = match decision {
            Decision::Settled { a_larger } => {
                let (larger, smaller) = if a_larger {
                    (name_a, name_b)
                } else {
                    (name_b, name_a)
                };
                (
                    RoundOutcome::Settled,
                    winner(larger, smaller, &adaptive.metric),
                )
            }
            Decision::Resolved => (
                RoundOutcome::Resolved,
                format!("{name_a} = {name_b} within ±{}", adaptive.resolution),
            ),
            Decision::MaxReached => (
                RoundOutcome::MaxReached,
                format!("{name_a} vs {name_b}: not settled"),
            ),
            Decision::More => (
                RoundOutcome::More,
                format!("{name_a} vs {name_b}: not settled"),
            ),
        };
        outcome = combine(outcome, pair);
        details.push(said);
    }
    if outcome == RoundOutcome::More && seeds >= adaptive.max {
        // Failed seeds leave a pair short, but no more are planned.
        outcome = RoundOutcome::MaxReached;
    }
    SeedRound {
        question,
        seeds: seeds as u64,
        outcome,
        detail: format!("{} on {}", details.join("; "), adaptive.metric),
    }
}

/// A question's outcome from its pairs': more while any pair wants more,
/// else max reached when any pair ran out, else settled when any pair is.
fn combine(so_far: RoundOutcome, pair: RoundOutcome) -> RoundOutcome {
    use RoundOutcome::*;
    match (so_far, pair) {
        (More, _) | (_, More) => More,
        (MaxReached, _) | (_, MaxReached) => MaxReached,
        (Settled, _) | (_, Settled) => Settled,
        (Resolved, Resolved) => Resolved,
    }
}

#[cfg(test)]
mod tests {
    use sweep_spec::summary::FINAL_LOSS;

    use super::*;
    use crate::compare::tests::sweep;

    fn rule(max: usize) -> Adaptive {
        Adaptive {
            start: 3,
            step: 2,
            max,
            compare: "model".into(),
            metric: FINAL_LOSS.into(),
            resolution: 0.0,
            alpha: 0.05,
        }
    }

    #[test]
    fn each_batch_size_is_a_question_decided_once_its_seeds_have_ended() {
        let mut tasks = sweep(&["deep", "shallow"], 5, FINAL_LOSS, |m, b, seed| {
            let shift = if m == "deep" { 0.0 } else { 1.0 };
            shift + b as f64 * 1e-3 + seed as f64 * 1e-4
        });
        tasks[0].state = TaskState::Leased;
        let rounds = next_rounds(&tasks, &rule(15), &[]);
        assert_eq!(rounds.len(), 1, "batch 32's round is not over: {rounds:?}");
        assert!(rounds[0].question.contains("\"batch_size\":64"));
        assert_eq!(rounds[0].seeds, 5);
        assert_eq!(rounds[0].outcome, RoundOutcome::Settled, "{rounds:?}");
        // Deep's final losses are the lower ones.
        assert!(rounds[0].detail.starts_with("deep better"), "{rounds:?}");
        assert!(next_rounds(&tasks, &rule(15), &rounds).is_empty(), "once");
    }

    #[test]
    fn a_setting_against_itself_under_another_name_is_never_settled() {
        // The same numbers under two names, at every look of the study.
        for seeds in [3, 5, 7, 9] {
            let tasks = sweep(&["a", "b"], seeds, FINAL_LOSS, |_, _, seed| {
                (seed as f64 * 0.7).sin()
            });
            for round in next_rounds(&tasks, &rule(9), &[]) {
                let expected = match seeds {
                    9 => RoundOutcome::MaxReached,
                    _ => RoundOutcome::More,
                };
                assert_eq!(round.outcome, expected, "{seeds} seeds: {round:?}");
            }
        }
    }
}
