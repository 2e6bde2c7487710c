//! The stopping rule of `report::compare::sequential` by simulation: how
//! often it calls a difference between two equal settings, and under a
//! real one how often it finds it and how many seeds that takes, against
//! the fixed number of seeds that has the same power.
//!
//! `cargo run --release -p sweep-report --example sequential`

use sweep_report::compare::sequential::{Rule, Schedule};
use sweep_report::compare::two_sample::{mann_whitney, welch};
use sweep_spec::rng::Rng;

const ALPHA: f64 = 0.05;
const SCHEDULE: Schedule = Schedule {
    start: 3,
    step: 2,
    max: 30,
};

fn normal(rng: &mut Rng) -> f64 {
    let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn lognormal(rng: &mut Rng) -> f64 {
    normal(rng).exp()
}

/// One adaptive study: (seeds a setting when it stopped, its verdict: a
/// larger, b larger, or none).
fn adaptive(
    rule: &Rule,
    rng: &mut Rng,
    shift: f64,
    draw: fn(&mut Rng) -> f64,
) -> (usize, Option<bool>) {
    rule.study(|| (draw(rng) + shift, draw(rng)))
}

/// One fixed study of `n` seeds a setting, the same two tests at alpha/2.
fn fixed(rng: &mut Rng, n: usize, shift: f64, draw: fn(&mut Rng) -> f64) -> bool {
    let a: Vec<f64> = (0..n).map(|_| draw(rng) + shift).collect();
    let b: Vec<f64> = (0..n).map(|_| draw(rng)).collect();
    let t = welch(&a, &b).is_some_and(|w| w.p < ALPHA / 2.0 && w.difference > 0.0);
    let u = mann_whitney(&a, &b).is_some_and(|m| m.p < ALPHA / 2.0 && m.probability > 0.5);
    t || u
}

fn main() {
    let rule = Rule::new(SCHEDULE, ALPHA, 0.0);
    println!(
        "| distribution | shift | adaptive: verdicts | right ones | seeds a setting, mean | fixed n of that power (capped at 0.99) | its power |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, draw) in [
        ("normal", normal as fn(&mut Rng) -> f64),
        ("lognormal", lognormal),
    ] {
        for shift in [0.0, 0.5, 1.0, 1.5, 2.0] {
            let mut rng = Rng::new(1);
            let studies = if shift == 0.0 { 10_000 } else { 2_000 };
            let runs: Vec<(usize, Option<bool>)> = (0..studies)
                .map(|_| adaptive(&rule, &mut rng, shift, draw))
                .collect();
            let share = |keep: fn(&Option<bool>) -> bool| {
                runs.iter().filter(|r| keep(&r.1)).count() as f64 / studies as f64
            };
            let (verdicts, right) = (share(|v| v.is_some()), share(|v| *v == Some(true)));
            let seeds = runs.iter().map(|r| r.0).sum::<usize>() as f64 / studies as f64;
            let same = (shift > 0.0).then(|| {
                (2..=60).find_map(|n| {
                    let found = (0..4_000)
                        .filter(|_| fixed(&mut rng, n, shift, draw))
                        .count() as f64
                        / 4_000.0;
                    (found >= right.min(0.99)).then(|| format!("{n} | {found:.3}"))
                })
            });
            let same = match same {
                None => "- | -".to_string(),
                Some(None) => "over 60 | -".to_string(),
                Some(Some(found)) => found,
            };
            println!("| {name} | {shift} | {verdicts:.4} | {right:.4} | {seeds:.1} | {same} |");
        }
    }
}
