//! What two settings' seeds say about which is larger: the difference of
//! their means (Welch's t, or the paired t over shared seeds) and the
//! probability that a seed of one beats a seed of the other (Mann-Whitney's
//! U, or the sign test over shared seeds), which a collapsed run or two
//! cannot swamp the way they swamp a mean.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use sweep_spec::rng::Rng;

use crate::stats::{CONFIDENCE, mean, normal_cdf, t_quantile, t_two_sided, variance};

/// A − B with its confidence interval and the p-value of "no difference".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanDifference {
    pub difference: f64,
    pub low: f64,
    pub high: f64,
    /// Degrees of freedom (Welch-Satterthwaite, or pairs − 1).
    pub df: f64,
    pub p: f64,
}

/// P(A > B), ties counted half, with the p-value of "as likely either way".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Superiority {
    pub probability: f64,
    pub p: f64,
}

/// Welch's t-test of two independent samples; none when a side has fewer
/// than two values (no variance, so no interval).
pub fn welch(a: &[f64], b: &[f64]) -> Option<MeanDifference> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ua, ub) = (variance(a) / a.len() as f64, variance(b) / b.len() as f64);
    let se2 = ua + ub;
    let df = se2 * se2 / (ua * ua / (a.len() - 1) as f64 + ub * ub / (b.len() - 1) as f64);
    Some(t_test(mean(a) - mean(b), se2.sqrt(), df))
}

/// The t-test of pairs' differences (`a[i]` and `b[i]` share a seed).
pub fn paired(a: &[f64], b: &[f64]) -> Option<MeanDifference> {
    let differences: Vec<f64> = a.iter().zip(b).map(|(a, b)| a - b).collect();
    let n = differences.len();
    (n >= 2).then(|| {
        let se = (variance(&differences) / n as f64).sqrt();
        t_test(mean(&differences), se, (n - 1) as f64)
    })
}

fn t_test(difference: f64, se: f64, df: f64) -> MeanDifference {
    if se == 0.0 {
        // Every seed gave one number on each side: the difference is
        // known exactly, and is either nothing or certain.
        let p = if difference == 0.0 { 1.0 } else { 0.0 };
        return MeanDifference {
            difference,
            low: difference,
            high: difference,
            df,
            p,
        };
    }
    let half = t_quantile(0.5 + CONFIDENCE / 2.0, df) * se;
    MeanDifference {
        difference,
        low: difference - half,
        high: difference + half,
        df,
        p: t_two_sided(difference / se, df),
    }
}

/// Mann-Whitney's U test, two-sided, as R's `wilcox.test` computes it:
/// the exact distribution of U below 50 values a side without ties, else
/// the normal approximation with the tie and continuity corrections.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<Superiority> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (na, nb) = (a.len(), b.len());
    let (ranks, ties) = ranks(&[a, b].concat());
    let rank_sum: f64 = ranks[..na].iter().sum();
    let u = rank_sum - (na * (na + 1)) as f64 / 2.0;
    let pairs = (na * nb) as f64;
    let p = if na < 50 && nb < 50 && ties == 0.0 {
        let distribution = exact_u(na, nb);
        let at = u as usize;
        let tail = if u > pairs / 2.0 {
            distribution[at..].iter().sum::<f64>()
        } else {
            distribution[..=at].iter().sum::<f64>()
        };
        (2.0 * tail).min(1.0)
    } else {
        let n = (na + nb) as f64;
        let sigma = (pairs / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))).sqrt();
        let centred = u - pairs / 2.0;
        if sigma == 0.0 {
            1.0
        } else {
            let correction = match centred.total_cmp(&0.0) {
                std::cmp::Ordering::Greater => 0.5,
                std::cmp::Ordering::Less => -0.5,
                std::cmp::Ordering::Equal => 0.0,
            };
            let z = (centred - correction) / sigma;
            (2.0 * normal_cdf(-z.abs())).min(1.0)
        }
    };
    Some(Superiority {
        probability: u / pairs,
        p,
    })
}

/// The sign test of pairs (`a[i]` and `b[i]` share a seed): how often A
/// wins, and the exact binomial p-value of "half the time" over the pairs
/// that are not tied.
pub fn sign_test(a: &[f64], b: &[f64]) -> Option<Superiority> {
    if a.is_empty() || a.len() != b.len() {
        return None;
    }
    let wins = a.iter().zip(b).filter(|(a, b)| a > b).count();
    let losses = a.iter().zip(b).filter(|(a, b)| a < b).count();
    let ties = a.len() - wins - losses;
    let decided = wins + losses;
    let tail: f64 = (0..=wins.min(losses))
        .map(|k| binomial_half(decided, k))
        .sum();
    Some(Superiority {
        probability: (wins as f64 + 0.5 * ties as f64) / a.len() as f64,
        p: (2.0 * tail).min(1.0),
    })
}

/// How many resamples the bootstrap draws.
pub const RESAMPLES: usize = 2000;

/// The percentile bootstrap's [`CONFIDENCE`] interval of P(A > B):
/// `RESAMPLES` resamples of each side (of the pairs, when `paired`), drawn
/// from `seed`, so that the same numbers always give the same interval.
pub fn bootstrap(a: &[f64], b: &[f64], paired: bool, seed: u64) -> Option<(f64, f64)> {
    if a.is_empty() || b.is_empty() || (paired && a.len() != b.len()) {
        return None;
    }
    let mut rng = Rng::new(seed);
    let draw = |values: &[f64], picks: &[usize]| -> Vec<f64> {
        picks.iter().map(|&i| values[i]).collect()
    };
    let mut estimates: Vec<f64> = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let picks_a: Vec<usize> = (0..a.len()).map(|_| rng.below(a.len())).collect();
        let estimate = if paired {
            let (ra, rb) = (draw(a, &picks_a), draw(b, &picks_a));
            sign_test(&ra, &rb).map(|s| s.probability)
        } else {
            let picks_b: Vec<usize> = (0..b.len()).map(|_| rng.below(b.len())).collect();
            Some(probability_greater(&draw(a, &picks_a), &draw(b, &picks_b)))
        };
        estimates.extend(estimate);
    }
    estimates.sort_by(f64::total_cmp);
    let at = |q: f64| estimates[((estimates.len() - 1) as f64 * q).round() as usize];
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Some((at(tail), at(1.0 - tail)))
}

/// Holm's step-down adjustment of p-values (Holm 1979, "A simple
/// sequentially rejective multiple test procedure"): rejecting where the
/// adjusted value is below alpha keeps the chance of any false rejection
/// in the family at or below alpha.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; p.len()];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((p.len() - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// P(A > B) over all pairs of a value of each, ties counted half.
fn probability_greater(a: &[f64], b: &[f64]) -> f64 {
    let wins: f64 = (a.iter())
        .flat_map(|x| b.iter().map(move |y| (x, y)))
        .map(|(x, y)| match x.total_cmp(y) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => 0.5,
            std::cmp::Ordering::Less => 0.0,
        })
        .sum();
    wins / (a.len() * b.len()) as f64
}

/// Each value's rank among all (1-based, ties given their mean rank), and
/// the ties' Σ(t³ − t), which the normal approximation's variance needs.
fn ranks(values: &[f64]) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut ties = 0.0;
    let mut start = 0;
    while start < order.len() {
        let end = (start..order.len())
            .find(|&k| values[order[k]] != values[order[start]])
            .unwrap_or(order.len());
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        let t = (end - start) as f64;
        ties += t * t * t - t;
        start = end;
    }
    (ranks, ties)
}

/// [`u_distribution`], computed once per pair of sizes: a study that adds
/// seeds asks for the same sizes at every look.
fn exact_u(m: usize, n: usize) -> Arc<Vec<f64>> {
    /// By the two sizes.
    type Known = HashMap<(usize, usize), Arc<Vec<f64>>>;
    static KNOWN: OnceLock<Mutex<Known>> = OnceLock::new();
    let known = KNOWN.get_or_init(Default::default);
    let mut known = known
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Arc::clone(
        known
            .entry((m, n))
            .or_insert_with(|| Arc::new(u_distribution(m, n))),
    )
}

/// P(U = u) for u = 0..=m·n when the m + n values come in random order:
/// the largest is one of the m with probability m/(m+n), and then it beats
/// all n others.
fn u_distribution(m: usize, n: usize) -> Vec<f64> {
    let mut previous: Vec<Vec<f64>> = vec![vec![1.0]; n + 1];
    for i in 1..=m {
        let mut current: Vec<Vec<f64>> = vec![vec![1.0]];
        for j in 1..=n {
            let mut p = vec![0.0; i * j + 1];
            let from_a = i as f64 / (i + j) as f64;
            for (u, q) in previous[j].iter().enumerate() {
                p[u + j] += from_a * q;
            }
            for (u, q) in current[j - 1].iter().enumerate() {
                p[u] += (1.0 - from_a) * q;
            }
            current.push(p);
        }
        previous = current;
    }
    previous.swap_remove(n)
}

/// C(n, k) / 2ⁿ.
fn binomial_half(n: usize, k: usize) -> f64 {
    (0..k)
        .map(|i| ((n - i) as f64 / (i + 1) as f64).ln())
        .sum::<f64>()
        .exp()
        * 0.5f64.powi(n as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Student's sleep data (Cushny and Peebles): extra hours of sleep with
    /// two drugs, the same ten patients. R's documentation of `t.test` and
    /// `wilcox.test` runs its examples on them.
    const DRUG_1: [f64; 10] = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
    const DRUG_2: [f64; 10] = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} vs {expected}"
        );
    }

    /// R, `t.test(extra ~ group, data = sleep)`: "t = -1.8608, df = 17.776,
    /// p-value = 0.07939; 95 percent confidence interval: -3.3654832
    /// 0.2054832".
    #[test]
    fn welch_matches_r_on_the_sleep_data() {
        let welch = welch(&DRUG_1, &DRUG_2).unwrap();
        close(welch.difference, -1.58, 1e-12);
        close(welch.df, 17.776, 5e-4);
        close(welch.p, 0.07939, 5e-6);
        close(welch.low, -3.365_483_2, 1e-6);
        close(welch.high, 0.205_483_2, 1e-6);
    }

    /// R, `t.test(DRUG_1, DRUG_2, paired = TRUE)`: "t = -4.0621, df = 9,
    /// p-value = 0.002833; 95 percent confidence interval: -2.4598858
    /// -0.7001142".
    #[test]
    fn the_paired_t_matches_r_on_the_sleep_data() {
        let paired = paired(&DRUG_1, &DRUG_2).unwrap();
        close(paired.df, 9.0, 0.0);
        close(paired.p, 0.002833, 5e-7);
        close(paired.low, -2.459_885_8, 1e-6);
        close(paired.high, -0.700_114_2, 1e-6);
    }

    /// R, `wilcox.test(extra ~ group, data = sleep)` (ties: the normal
    /// approximation): "W = 25.5, p-value = 0.06933".
    #[test]
    fn mann_whitney_with_ties_matches_r_on_the_sleep_data() {
        let test = mann_whitney(&DRUG_1, &DRUG_2).unwrap();
        close(test.probability, 25.5 / 100.0, 1e-12);
        close(test.p, 0.06933, 5e-6);
    }

    /// R's `wilcox.test` example (Hollander and Wolfe, permeability
    /// constants), exact without ties: "W = 35, p-value = 0.1272" one-sided
    /// (alternative = "greater"), so 0.2544 two-sided.
    #[test]
    fn mann_whitney_without_ties_is_exact_as_in_r() {
        let x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
        let y = [1.15, 0.88, 0.90, 0.74, 1.21];
        let test = mann_whitney(&x, &y).unwrap();
        close(test.probability, 35.0 / 50.0, 1e-12);
        close(test.p, 2.0 * 0.1272, 1e-4);
        let distribution = u_distribution(10, 5);
        close(distribution.iter().sum(), 1.0, 1e-12);
        // U of 10 and 5 ranges over 0..=50, one arrangement in C(15, 5)
        // for each end.
        close(distribution[0], 1.0 / 3003.0, 1e-15);
    }

    /// Nine wins of ten pairs: P = 11/1024 one-sided, so 0.021484375.
    #[test]
    fn the_sign_test_is_the_exact_binomial() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 0.0];
        let b = [0.5; 10];
        let test = sign_test(&a, &b).unwrap();
        close(test.probability, 0.9, 1e-12);
        close(test.p, 0.021_484_375, 1e-12);
    }

    #[test]
    fn a_setting_against_itself_is_never_different() {
        let same = [0.97, 0.96, 0.98];
        assert_eq!(welch(&same, &same).unwrap().p, 1.0);
        assert_eq!(mann_whitney(&same, &same).unwrap().p, 1.0);
        assert_eq!(mann_whitney(&same, &same).unwrap().probability, 0.5);
        let constant = [0.5, 0.5, 0.5];
        let exact = welch(&constant, &constant).unwrap();
        assert_eq!((exact.p, exact.low, exact.high), (1.0, 0.0, 0.0));
        assert_eq!(welch(&[1.0], &same), None, "one seed: no interval");
    }

    /// Worked by hand: p = 0.01, 0.04, 0.03, 0.005 become 0.03, 0.06,
    /// 0.06, 0.02 (sorted 0.005·4, 0.01·3, 0.03·2, 0.04·1, each at least the
    /// one before).
    #[test]
    fn holm_adjusts_step_down() {
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        for (a, e) in adjusted.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            close(*a, e, 1e-15);
        }
    }

    #[test]
    fn the_bootstrap_is_seeded_and_brackets_the_estimate() {
        let interval = bootstrap(&DRUG_2, &DRUG_1, false, 7).unwrap();
        assert_eq!(Some(interval), bootstrap(&DRUG_2, &DRUG_1, false, 7));
        assert_ne!(Some(interval), bootstrap(&DRUG_2, &DRUG_1, false, 8));
        let estimate = mann_whitney(&DRUG_2, &DRUG_1).unwrap().probability;
        assert!(
            interval.0 < estimate && estimate < interval.1,
            "{interval:?}"
        );
        let apart = bootstrap(&[2.0, 3.0], &[0.0, 1.0], false, 1).unwrap();
        assert_eq!(apart, (1.0, 1.0), "every resample of separated sides");
        assert!(bootstrap(&[1.0], &[1.0, 2.0], true, 1).is_none());
    }
}
