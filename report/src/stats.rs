//! What a setting's numbers over its seeds say about the mean: the
//! standard error and a confidence interval from Student's t with n-1
//! degrees of freedom (the seed is the unit of replication; with 3 to 5
//! seeds a normal z would be far too narrow), and the t distribution they
//! need, computed here rather than taken from a table.

use sweep_proto::Stats;

/// The confidence of the intervals reports show.
pub const CONFIDENCE: f64 = 0.95;

sweep_spec::text_enum!(
    /// What the `±` of a report's cells is.
    Interval {
        /// Half the width of the 95% confidence interval of the mean.
        Ci95 = "ci95",
        /// The sample standard deviation over seeds.
        Std = "std",
        /// The standard error of the mean.
        Se = "se",
    }
);

impl Interval {
    /// What the `±` means, in words, for the line under a table.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Ci95 => {
                "± is half the 95% confidence interval of the mean over seeds (Student's t, n-1 degrees of freedom)"
            }
            Self::Std => "± is the standard deviation over seeds",
            Self::Se => "± is the standard error of the mean over seeds (std / √n)",
        }
    }
}

/// A setting's mean over its seeds, with what says how well it is known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub n: u64,
    pub mean: f64,
    /// The sample standard deviation; none for one seed.
    pub std: Option<f64>,
    /// The standard error of the mean, std / √n.
    pub se: Option<f64>,
    /// Half the width of the [`CONFIDENCE`] interval of the mean, t · se.
    pub half_width: Option<f64>,
}

impl Spread {
    pub fn of(stats: &Stats) -> Self {
        let se = stats.std.map(|std| std / (stats.n as f64).sqrt());
        let half_width = se
            .filter(|_| stats.n > 1)
            .map(|se| t_quantile(0.5 + CONFIDENCE / 2.0, (stats.n - 1) as f64) * se);
        Self {
            n: stats.n,
            mean: stats.mean,
            std: stats.std,
            se,
            half_width,
        }
    }

    /// The spread of `values`, a setting's seeds, computed here rather than
    /// by the store.
    pub fn of_values(values: &[f64]) -> Self {
        let std = (values.len() > 1).then(|| variance(values).sqrt());
        Self::of(&Stats {
            n: values.len() as u64,
            mean: mean(values),
            std,
        })
    }

    /// What follows the `±`: none for one seed.
    pub fn width(&self, interval: Interval) -> Option<f64> {
        match interval {
            Interval::Ci95 => self.half_width,
            Interval::Std => self.std,
            Interval::Se => self.se,
        }
    }

    /// The interval's ends, when there is one.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width.map(|h| (self.mean - h, self.mean + h))
    }
}

pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}

/// The `q` quantile of sorted `values`, between the two nearest ranks
/// (R's and NumPy's default, "type 7").
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (below, above) = (at.floor() as usize, at.ceil() as usize);
    sorted[below] + (at - below as f64) * (sorted[above] - sorted[below])
}

/// The sample variance (n − 1 in the denominator).
pub fn variance(values: &[f64]) -> f64 {
    let mean = mean(values);
    let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    squares / (values.len() - 1) as f64
}

/// The `p` quantile of Student's t distribution with `df` degrees of
/// freedom (`df` > 0, `p` in (0, 1)), to about 1e-12.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(
        p > 0.0 && p < 1.0 && df > 0.0,
        "t quantile of p {p}, df {df}"
    );
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    // The CDF rises with t: bracket the quantile, then halve the bracket
    // until it is as narrow as an f64 allows.
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    while t_cdf(high, df) < p {
        low = high;
        high *= 2.0;
    }
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if middle <= low || middle >= high {
            break;
        }
        if t_cdf(middle, df) < p {
            low = middle;
        } else {
            high = middle;
        }
    }
    0.5 * (low + high)
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * t_two_sided(t, df);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// P(|T| ≥ |t|): the two-sided p-value of a t statistic, computed as the
/// tail itself so that small p-values keep their digits.
pub fn t_two_sided(t: f64, df: f64) -> f64 {
    incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// P(Z ≤ z) for the standard normal, from the complementary error
/// function's Chebyshev fit (Numerical Recipes, 2nd ed., §6.2, `erfcc`:
/// relative error below 1.2e-7, enough for a p-value).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ]
    .iter()
    .rev()
    .fold(0.0, |acc, c| c + t * acc);
    let erfc = t * (-x * x + poly).exp();
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

/// The regularized incomplete beta function I_x(a, b), by its continued
/// fraction (Numerical Recipes, 3rd ed., §6.4), on the side of x where it
/// converges fast.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of the incomplete beta function, by Lentz's
/// method.
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
    let mut fraction = d;
    for m in 1..10_000 {
        let m = f64::from(m);
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        fraction *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let step = d * c;
        fraction *= step;
        if (step - 1.0).abs() < 1e-16 {
            break;
        }
    }
    fraction
}

/// ln Γ(x) for x > 0, by Lanczos's approximation (g = 7, nine terms;
/// relative error about 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const TERMS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1-x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let sum = TERMS[1..]
        .iter()
        .enumerate()
        .fold(TERMS[0], |sum, (i, term)| sum + term / (x + i as f64 + 1.0));
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upper critical values of Student's t, from the NIST/SEMATECH
    /// e-Handbook of Statistical Methods, table 1.3.6.7.2 ("Critical
    /// Values of the Student's t Distribution"), three decimals:
    /// (degrees of freedom, 1 - α, t).
    const NIST: &[(f64, f64, f64)] = &[
        (1.0, 0.975, 12.706),
        (2.0, 0.975, 4.303),
        (3.0, 0.975, 3.182),
        (4.0, 0.975, 2.776),
        (5.0, 0.975, 2.571),
        (9.0, 0.975, 2.262),
        (10.0, 0.975, 2.228),
        (19.0, 0.975, 2.093),
        (20.0, 0.975, 2.086),
        (30.0, 0.975, 2.042),
        (100.0, 0.975, 1.984),
        (1.0, 0.95, 6.314),
        (5.0, 0.95, 2.015),
        (10.0, 0.95, 1.812),
        (30.0, 0.95, 1.697),
        (1.0, 0.995, 63.657),
        (10.0, 0.995, 3.169),
    ];

    #[test]
    fn t_quantiles_match_the_published_table() {
        for &(df, p, expected) in NIST {
            let t = t_quantile(p, df);
            assert!(
                (t - expected).abs() < 5e-4,
                "t({p}, {df}) = {t}, table {expected}"
            );
            assert!(
                (t_quantile(1.0 - p, df) + t).abs() < 1e-9,
                "symmetric at {df}"
            );
        }
        // Many degrees of freedom: the normal's 1.959964 (the same table's
        // last row).
        assert!((t_quantile(0.975, 1e7) - 1.959_964).abs() < 1e-5);
    }

    /// With one degree of freedom t is Cauchy: F(t) = 1/2 + atan(t)/π,
    /// exactly, so the quantile is tan(π(p - 1/2)).
    #[test]
    fn one_degree_of_freedom_is_cauchy_to_the_last_digits() {
        for p in [0.6, 0.75, 0.9, 0.975, 0.999] {
            let exact = (std::f64::consts::PI * (p - 0.5)).tan();
            let t = t_quantile(p, 1.0);
            assert!(
                (t - exact).abs() < 1e-9 * exact.max(1.0),
                "{p}: {t} vs {exact}"
            );
        }
    }

    /// The standard normal's CDF at table points (NIST/SEMATECH
    /// e-Handbook, table 1.3.6.7.1: area from 0 to z of 0.34134 at z = 1,
    /// 0.47500 at 1.96, 0.49865 at 3).
    #[test]
    fn the_normal_cdf_matches_the_published_table() {
        for (z, area) in [(1.0, 0.34134), (1.96, 0.47500), (3.0, 0.49865)] {
            assert!((normal_cdf(z) - 0.5 - area).abs() < 1e-5, "{z}");
            assert!((normal_cdf(-z) - 0.5 + area).abs() < 1e-5, "{z}");
        }
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn the_interval_of_three_seeds_is_t_times_the_standard_error() {
        let spread = Spread::of(&Stats {
            n: 3,
            mean: 0.9645,
            std: Some(0.0027),
        });
        let se = 0.0027 / 3f64.sqrt();
        assert!((spread.se.unwrap() - se).abs() < 1e-15);
        // t(0.975, 2) = 4.303 (NIST, above): about 2.5 times the z interval.
        let (low, high) = spread.interval().unwrap();
        assert!(
            (high - low - 2.0 * 4.302_652_7 * se).abs() < 1e-9,
            "{low} {high}"
        );
        let one = Spread::of(&Stats {
            n: 1,
            mean: 0.5,
            std: None,
        });
        assert_eq!((one.se, one.interval()), (None, None));
    }
}
