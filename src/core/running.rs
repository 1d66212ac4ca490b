//! Statistics of an unbounded stream in bounded memory: a compensated running mean and a
//! log-bucketed histogram for percentiles. A tracker that runs for days must not keep every sample
//! (30 Hz × 8 objects × 4 errors × 8 bytes is 663 MB a day), so run summaries accumulate into these.

use std::collections::BTreeMap;

/// Mean of a stream, `Σx / n`, with a Neumaier-compensated sum (the error stays near one rounding of
/// the total, not `n` of them). A non-finite sample makes the mean `NaN` from then on: a summary
/// must not hide a broken estimate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunningMean {
    n: u64,
    sum: f64,
    carry: f64,
    non_finite: u64,
}

impl RunningMean {
    /// Adds one sample.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            self.non_finite += 1;
            return;
        }
        let t = self.sum + x;
        self.carry += match self.sum.abs() >= x.abs() {
            true => (self.sum - t) + x,
            false => (x - t) + self.sum,
        };
        self.sum = t;
        self.n += 1;
    }

    /// Finite samples taken.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The mean (`NaN` without samples or after a non-finite one).
    pub fn mean(&self) -> f64 {
        match (self.n, self.non_finite) {
            (0, _) | (_, 1..) => f64::NAN,
            (n, 0) => (self.sum + self.carry) / n as f64,
        }
    }
}

/// Ratio between consecutive bucket bounds of [`LogHistogram`]: a percentile is reported to within
/// half a bucket, a relative error of at most `(RATIO − 1)/2 = 0.05 %`.
pub const RATIO: f64 = 1.001;

/// Counts of a stream of values in buckets `[RATIO^k, RATIO^(k+1))` (by magnitude, per sign, and
/// zeros apart): memory grows with the number of distinct buckets hit (about 2 300 per decade of
/// values), not with the number of samples. Exact minimum and maximum are kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogHistogram {
    positive: BTreeMap<i32, u64>,
    negative: BTreeMap<i32, u64>,
    zeros: u64,
    n: u64,
    min: f64,
    max: f64,
}

/// Bucket of a magnitude `a > 0`: `⌊ln a / ln RATIO⌋`.
fn bucket(a: f64) -> i32 {
    (a.ln() / RATIO.ln()).floor() as i32
}

/// The value a bucket stands for: its geometric centre `RATIO^(k + ½)`.
fn centre(k: i32) -> f64 {
    RATIO.powf(f64::from(k) + 0.5)
}

impl LogHistogram {
    /// Adds one sample; `NaN` is ignored.
    pub fn push(&mut self, x: f64) {
        if x.is_nan() {
            return;
        }
        match x {
            0.0 => self.zeros += 1,
            x if x > 0.0 => *self.positive.entry(bucket(x)).or_default() += 1,
            x => *self.negative.entry(bucket(-x)).or_default() += 1,
        }
        (self.min, self.max) = match self.n {
            0 => (x, x),
            _ => (self.min.min(x), self.max.max(x)),
        };
        self.n += 1;
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &LogHistogram) {
        if other.n == 0 {
            return;
        }
        for (k, c) in &other.positive {
            *self.positive.entry(*k).or_default() += c;
        }
        for (k, c) in &other.negative {
            *self.negative.entry(*k).or_default() += c;
        }
        self.zeros += other.zeros;
        (self.min, self.max) = match self.n {
            0 => (other.min, other.max),
            _ => (self.min.min(other.min), self.max.max(other.max)),
        };
        self.n += other.n;
    }

    /// Samples taken.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The `q`-percentile by nearest rank (as [`crate::core::stats::Rank::Nearest`]: the `⌈qn⌉`-th smallest sample), to
    /// within [`RATIO`]`^½` relative (the first and last ranks exactly: the minimum and maximum are
    /// kept); `NaN` when empty.
    pub fn percentile(&self, q: f64) -> f64 {
        if self.n == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        match rank {
            1 => return self.min,
            r if r == self.n => return self.max,
            _ => {}
        }
        let ascending = self
            .negative
            .iter()
            .rev()
            .map(|(k, c)| (-centre(*k), *c))
            .chain(std::iter::once((0.0, self.zeros)))
            .chain(self.positive.iter().map(|(k, c)| (centre(*k), *c)));
        let mut seen = 0;
        for (value, c) in ascending {
            seen += c;
            if seen >= rank {
                return value.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stats::{percentile, Rank};
    use rand::{Rng, SeedableRng};

    #[test]
    fn running_mean_is_the_mean_and_shows_non_finite_samples() {
        let mut m = RunningMean::default();
        assert!(m.mean().is_nan());
        for x in [1.0, 2.0, 6.0] {
            m.push(x);
        }
        assert_eq!((m.mean(), m.count()), (3.0, 3));
        m.push(f64::INFINITY);
        assert!(m.mean().is_nan());
        // Compensation: 1e16 + 1 + 1 − 1e16 is 2 (a plain sum gives 0 or 4).
        let mut c = RunningMean::default();
        [1e16, 1.0, 1.0, -1e16].into_iter().for_each(|x| c.push(x));
        assert_eq!(c.mean(), 0.5);
    }

    /// Against exact nearest-rank percentiles of 20 000 log-normal samples (latency-like, with some
    /// zeros and negatives): every reported percentile lies within the bucket half-width
    /// `RATIO^½ − 1 ≈ 5e-4` relative of the exact one (plus rounding of `powf`, hence 6e-4).
    #[test]
    fn percentiles_are_within_half_a_bucket_of_the_exact_ones() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut h = LogHistogram::default();
        let mut v = Vec::new();
        for i in 0..20_000 {
            let x = match i % 97 {
                0 => 0.0,
                1 => -rng.random_range(0.1..3.0),
                _ => (rng.random_range(-2.0..4.0f64)).exp(),
            };
            h.push(x);
            v.push(x);
        }
        for q in [0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let exact = percentile(&v, q, Rank::Nearest);
            let got = h.percentile(q);
            assert!(
                (got - exact).abs() <= 6e-4 * exact.abs(),
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(
            h.percentile(1.0),
            v.iter().cloned().fold(f64::MIN, f64::max)
        );
        assert!(LogHistogram::default().percentile(0.5).is_nan());
    }

    /// Nearest rank exactly as `stats::percentile`: on 1..=100 and on two or three values every
    /// percentile lands on the right sample (neighbours differ by far more than half a bucket).
    #[test]
    fn ranks_match_the_exact_nearest_rank_rule() {
        for n in [2usize, 3, 100] {
            let v: Vec<f64> = (1..=n).map(|k| k as f64).collect();
            let mut h = LogHistogram::default();
            v.iter().for_each(|&x| h.push(x));
            for q in [0.0, 0.01, 0.34, 0.5, 0.51, 0.67, 0.99, 1.0] {
                let exact = percentile(&v, q, Rank::Nearest);
                assert!(
                    (h.percentile(q) - exact).abs() <= 6e-4 * exact,
                    "n {n} q {q}"
                );
            }
        }
    }

    #[test]
    fn merged_histograms_equal_one_fed_with_both_streams() {
        let (mut a, mut b, mut both) = Default::default();
        for x in [3.0, 0.5, 7.0] {
            LogHistogram::push(&mut a, x);
            LogHistogram::push(&mut both, x);
        }
        for x in [0.0, 2.0] {
            LogHistogram::push(&mut b, x);
            LogHistogram::push(&mut both, x);
        }
        a.merge(&b);
        assert_eq!(a, both);
    }

    /// A million samples occupy only the buckets they hit.
    #[test]
    fn memory_is_bounded_by_buckets_not_samples() {
        let mut h = LogHistogram::default();
        for i in 0..1_000_000u32 {
            h.push(10.0 + f64::from(i % 1000) * 0.01);
        }
        assert_eq!(h.count(), 1_000_000);
        assert!(h.positive.len() < 1000, "{} buckets", h.positive.len());
    }
}
