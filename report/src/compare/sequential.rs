//! Adding seeds until a comparison is settled, without the false verdicts
//! that looking after every round would bring.
//!
//! A study looks at its two settings after `start` seeds each, then after
//! every `step` more, up to `max`. Testing at the full alpha at every look
//! would find a difference between two equal settings far more often than
//! alpha (fourteen looks at 0.05 find one about a fifth of the time: see
//! the tests). This is a group-sequential test instead: alpha is spent
//! along the study by Lan and DeMets' O'Brien-Fleming-type function (Lan
//! and DeMets 1983, "Discrete sequential boundaries for clinical trials",
//! Biometrika 70(3), 659-663), α(t) = 2 − 2Φ(z₁₋α/₂ / √t) at the share
//! t = n / max of the study, little early, where a handful of seeds can
//! mislead, and most at the end; each look's boundary is the one at which
//! a standardized difference, watched at every look so far, first crosses
//! with just the alpha spent since the look before. The boundaries come
//! from the joint normal law of the looks, computed by numerical
//! integration (Armitage, McPherson and Rowe 1969; Jennison and Turnbull
//! 2000, "Group Sequential Methods with Applications to Clinical Trials",
//! ch. 19), and each look tests at its boundary's nominal p-value. A look
//! runs two tests (Welch's t and Mann-Whitney's U), each spending half of
//! alpha, so by the union bound the chance of any false verdict over the
//! whole study stays at alpha or below; the tests hold it by simulation.
//!
//! A comparison also ends, without a verdict of better, once the
//! difference of means is known to within `resolution` (its 95% interval
//! is narrower than ± resolution): more seeds would only measure a
//! difference nobody cares about more precisely. Stopping so never adds a
//! false verdict.

use super::two_sample::{mann_whitney, welch};
use crate::stats::normal_cdf;

/// When a study looks: after `start` seeds a setting, then every `step`
/// more, up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub start: usize,
    pub step: usize,
    pub max: usize,
}

/// What a look decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// One setting is larger; `a_larger` says which.
    Settled { a_larger: bool },
    /// The difference is known to within the resolution.
    Resolved,
    /// Not yet: add `step` seeds to each setting.
    More,
    /// `max` reached without either.
    MaxReached,
}

impl Schedule {
    /// The seeds a setting has at each look.
    pub fn looks(&self) -> Vec<usize> {
        let step = self.step.max(1);
        let mut looks: Vec<usize> = (self.start..self.max).step_by(step).collect();
        looks.push(self.max);
        looks
    }
}

/// A schedule with its alpha and resolution, and each look's nominal
/// level, computed once.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub schedule: Schedule,
    pub alpha: f64,
    pub resolution: f64,
    /// (seeds, the two-sided p-value below which a test settles then).
    levels: Vec<(usize, f64)>,
}

impl Rule {
    pub fn new(schedule: Schedule, alpha: f64, resolution: f64) -> Self {
        let looks = schedule.looks();
        let shares: Vec<f64> = (looks.iter())
            .map(|&n| n as f64 / schedule.max as f64)
            .collect();
        // Each of a look's two tests spends half.
        let levels = boundaries(alpha / 2.0, &shares)
            .into_iter()
            .map(|c| 2.0 * (1.0 - normal_cdf(c)))
            .collect::<Vec<f64>>();
        Self {
            schedule,
            alpha,
            resolution,
            levels: looks.into_iter().zip(levels).collect(),
        }
    }

    /// The nominal two-sided level of each test at the look with `seeds`
    /// seeds a setting (the last look before it, between looks).
    pub fn level(&self, seeds: usize) -> f64 {
        (self.levels.iter())
            .take_while(|(n, _)| *n <= seeds)
            .last()
            .map_or(0.0, |(_, level)| *level)
    }

    /// The decision at a look, from each setting's numbers so far (as many
    /// seeds as the look has, each side).
    pub fn decide(&self, a: &[f64], b: &[f64]) -> Decision {
        let seeds = a.len().min(b.len());
        let level = self.level(seeds);
        let (Some(means), Some(ranks)) = (welch(a, b), mann_whitney(a, b)) else {
            return Decision::More;
        };
        if means.p < level {
            return Decision::Settled {
                a_larger: means.difference > 0.0,
            };
        }
        if ranks.p < level {
            return Decision::Settled {
                a_larger: ranks.probability > 0.5,
            };
        }
        if means.high - means.low < 2.0 * self.resolution {
            Decision::Resolved
        } else if seeds >= self.schedule.max {
            Decision::MaxReached
        } else {
            Decision::More
        }
    }

    /// Runs one study as the coordinator would, each new seed's numbers
    /// (a, b) from `seed`: the seeds a setting had when it stopped, and the
    /// verdict (`Some(true)`: a larger) if it reached one. What simulations
    /// of the rule (its tests, `examples/sequential.rs`) run.
    pub fn study(&self, mut seed: impl FnMut() -> (f64, f64)) -> (usize, Option<bool>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for look in self.schedule.looks() {
            while a.len() < look {
                let (x, y) = seed();
                a.push(x);
                b.push(y);
            }
            match self.decide(&a, &b) {
                Decision::Settled { a_larger } => return (look, Some(a_larger)),
                Decision::More => {}
                _ => return (look, None),
            }
        }
        (self.schedule.max, None)
    }
}

/// α(t) = 2 − 2Φ(z₁₋α/₂ / √t): the alpha spent by the share `t` of a study.
fn spending(alpha: f64, t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let z = normal_quantile(1.0 - alpha / 2.0);
    (2.0 - 2.0 * normal_cdf(z / t.min(1.0).sqrt())).min(alpha)
}

/// Points of the grid each look's density is kept on.
const GRID: usize = 401;

/// The two-sided boundaries c_k (on the z scale) of looks at the shares
/// `t` (rising to 1) that spend `alpha` along [`spending`]: with Z_k the
/// standardized statistic at look k, P(|Z_j| < c_j for j < k, |Z_k| ≥ c_k)
/// = α(t_k) − α(t_{k−1}) under no difference. The statistic's sum
/// S_k = Z_k √t_k moves as Brownian motion, so its density among the
/// studies still going is carried from look to look by a normal kernel.
fn boundaries(alpha: f64, t: &[f64]) -> Vec<f64> {
    let phi = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let mut out = Vec::with_capacity(t.len());
    // The density of S among continuing studies, on a grid (point, weight
    // times density); before the first look, all mass at 0.
    let mut mass: Vec<(f64, f64)> = vec![(0.0, 1.0)];
    let mut previous_t = 0.0;
    let mut spent = 0.0;
    for &share in t {
        let target = spending(alpha, share) - spent;
        let spread = (share - previous_t).sqrt();
        let crossing = |c: f64| -> f64 {
            let edge = c * share.sqrt();
            (mass.iter())
                .map(|(u, m)| {
                    m * (normal_cdf((-edge - u) / spread) + 1.0 - normal_cdf((edge - u) / spread))
                })
                .sum()
        };
        let c = if target <= 0.0 {
            f64::INFINITY
        } else {
            let (mut low, mut high) = (0.0_f64, 40.0_f64);
            for _ in 0..100 {
                let middle = 0.5 * (low + high);
                if crossing(middle) > target {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            0.5 * (low + high)
        };
        spent += if c.is_finite() { crossing(c) } else { 0.0 };
        out.push(c);
        // The continuing studies' density at this look, on the grid
        // between the boundaries (eight standard deviations when none).
        let edge = if c.is_finite() {
            c * share.sqrt()
        } else {
            8.0 * share.sqrt()
        };
        let width = 2.0 * edge / (GRID - 1) as f64;
        mass = (0..GRID)
            .map(|i| {
                let s = -edge + i as f64 * width;
                // Trapezoid weights: half at the ends.
                let weight = if i == 0 || i == GRID - 1 {
                    0.5 * width
                } else {
                    width
                };
                let density: f64 = (mass.iter())
                    .map(|(u, m)| m * phi((s - u) / spread) / spread)
                    .sum();
                (s, weight * density)
            })
            .collect();
        previous_t = share;
    }
    out
}

/// The standard normal's `p` quantile, by bisection on its CDF.
fn normal_quantile(p: f64) -> f64 {
    let (mut low, mut high) = (-40.0_f64, 40.0_f64);
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if normal_cdf(middle) < p {
            low = middle;
        } else {
            high = middle;
        }
    }
    0.5 * (low + high)
}

#[cfg(test)]
mod tests {
    use sweep_spec::rng::Rng;

    use super::*;

    const SCHEDULE: Schedule = Schedule {
        start: 3,
        step: 2,
        max: 30,
    };

    fn rule() -> Rule {
        Rule::new(SCHEDULE, 0.05, 0.0)
    }

    #[test]
    fn the_looks_run_from_start_by_step_to_max() {
        assert_eq!(SCHEDULE.looks().first(), Some(&3));
        assert_eq!(SCHEDULE.looks()[1], 5);
        assert_eq!(SCHEDULE.looks().last(), Some(&30));
        let odd = Schedule {
            start: 3,
            step: 4,
            max: 12,
        };
        assert_eq!(odd.looks(), [3, 7, 11, 12]);
    }

    /// At t = 0.5 the function has spent 2 − 2Φ(1.96 / √0.5) = 0.0056
    /// (Lan and DeMets 1983). With one look the boundary is the fixed
    /// test's; with two equally spaced, close to O'Brien and Fleming's own
    /// (√2 · 1.977 and 1.977 at α = 0.05: C_B(2, 0.05) = 1.977, Jennison and
    /// Turnbull 2000, ch. 2), as Lan and DeMets' function was made to be.
    #[test]
    fn the_boundaries_spend_alpha_along_the_function() {
        assert!((spending(0.05, 0.5) - 0.0056).abs() < 5e-5);
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        let one = boundaries(0.05, &[1.0]);
        assert!((one[0] - 1.959_964).abs() < 1e-4, "{one:?}");
        let two = boundaries(0.05, &[0.5, 1.0]);
        // The first look spends 0.0056 alone: c₁ = Φ⁻¹(1 − 0.0028) = 2.77.
        assert!((two[0] - 2.77).abs() < 0.01, "{two:?}");
        assert!((two[1] - 1.977).abs() < 0.01, "{two:?}");
        assert!(rule().level(3) < 1e-6, "three seeds of thirty");
        let levels: Vec<f64> = SCHEDULE
            .looks()
            .into_iter()
            .map(|n| rule().level(n))
            .collect();
        assert!(levels.windows(2).all(|w| w[0] < w[1]), "{levels:?}");
        assert!(
            levels[levels.len() - 2] > 0.01,
            "most at the end: {levels:?}"
        );
    }

    /// One simulated study: both settings' seeds from `draw`, plus `shift`
    /// for the first.
    fn study(
        rule: &Rule,
        rng: &mut Rng,
        shift: f64,
        draw: fn(&mut Rng) -> f64,
    ) -> (usize, Option<bool>) {
        rule.study(|| (draw(rng) + shift, draw(rng)))
    }

    fn normal(rng: &mut Rng) -> f64 {
        // Box-Muller.
        let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn lognormal(rng: &mut Rng) -> f64 {
        normal(rng).exp()
    }

    /// 10,000 null studies (one distribution on both sides, a normal and a
    /// skewed one), each looking up to 14 times: the rate of false verdicts
    /// stays at alpha or below, within three Monte Carlo standard errors
    /// (√(0.05 · 0.95 / 10,000) = 0.0022).
    #[test]
    fn peeking_after_every_round_keeps_the_false_verdicts_at_alpha() {
        for draw in [normal as fn(&mut Rng) -> f64, lognormal] {
            let mut rng = Rng::new(2024);
            let (rule, studies) = (rule(), 10_000);
            let false_verdicts = (0..studies)
                .filter(|_| study(&rule, &mut rng, 0.0, draw).1.is_some())
                .count();
            let rate = false_verdicts as f64 / studies as f64;
            assert!(rate <= 0.05 + 3.0 * 0.0022, "false-verdict rate {rate}");
        }
    }

    /// Peeking at the full alpha, as a person watching the table would,
    /// finds differences that are not there far more often.
    #[test]
    fn peeking_at_the_full_alpha_would_not() {
        let mut rng = Rng::new(7);
        let studies = 2_000;
        let naive = (0..studies)
            .filter(|_| {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                SCHEDULE.looks().into_iter().any(|look| {
                    while a.len() < look {
                        a.push(normal(&mut rng));
                        b.push(normal(&mut rng));
                    }
                    welch(&a, &b).is_some_and(|w| w.p < 0.05)
                })
            })
            .count();
        assert!(naive as f64 / studies as f64 > 0.15, "{naive} of {studies}");
    }

    #[test]
    fn a_real_difference_settles_before_max_in_the_right_direction() {
        let (mut rng, rule) = (Rng::new(11), rule());
        let runs: Vec<(usize, Option<bool>)> = (0..200)
            .map(|_| study(&rule, &mut rng, 1.5, normal))
            .collect();
        let right = runs.iter().filter(|r| r.1 == Some(true)).count();
        assert!(right >= 190, "{right} of 200 settled for the larger");
        assert!(runs.iter().all(|r| r.1 != Some(false)), "never the smaller");
        let mean_seeds = runs.iter().map(|r| r.0).sum::<usize>() as f64 / 200.0;
        assert!(mean_seeds < 30.0, "{mean_seeds} seeds on average");
    }

    #[test]
    fn a_difference_known_to_within_the_resolution_ends_the_study() {
        let a = [1.0, 1.001, 0.999, 1.0, 1.0005];
        let b = [1.0002, 1.0, 0.9995, 1.001, 1.0];
        let resolution = |r: f64| Rule::new(SCHEDULE, 0.05, r).decide(&a, &b);
        assert_eq!(resolution(0.01), Decision::Resolved);
        assert_eq!(resolution(1e-6), Decision::More);
    }
}
