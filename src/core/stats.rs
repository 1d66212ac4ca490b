//! Order statistics shared by every report (tracking latency, pipeline latency, evaluation).

/// How a percentile picks between order statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rank {
    /// The smallest value with at least a fraction `q` of the values at or below it.
    Nearest,
    /// Linear interpolation `x₍ₗ₎ + (h − l)(x₍ₗ₊₁₎ − x₍ₗ₎)`, `h = (n − 1)q`, `l = ⌊h⌋`.
    Linear,
}

/// The `q`-percentile (`q ∈ [0, 1]`) of `values` by `rank`; `NaN` for no values.
pub fn percentile(values: &[f64], q: f64, rank: Rank) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match rank {
        Rank::Nearest => v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1],
        Rank::Linear => {
            let h = (v.len() - 1) as f64 * q.clamp(0.0, 1.0);
            let l = h.floor() as usize;
            let u = (l + 1).min(v.len() - 1);
            v[l] + (h - l as f64) * (v[u] - v[l])
        }
    }
}

/// The median by nearest rank (`NaN` for no values).
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5, Rank::Nearest)
}

/// The upper median `x₍⌊n/2⌋₎` (0-based order statistic) of `values`, found in place by
/// selection (O(n), the order of `values` changes); `None` for no values.
pub fn upper_median(values: &mut [f64]) -> Option<f64> {
    let mid = values.len() / 2;
    (!values.is_empty()).then(|| *values.select_nth_unstable_by(mid, f64::total_cmp).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_median_takes_the_upper_of_two_middles() {
        assert_eq!(upper_median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(upper_median(&mut [4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(upper_median(&mut []), None);
    }

    #[test]
    fn nearest_rank_and_linear_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5, Rank::Nearest), 50.0);
        assert_eq!(percentile(&v, 0.99, Rank::Nearest), 99.0);
        assert_eq!(percentile(&v, 1.0, Rank::Nearest), 100.0);
        assert_eq!(percentile(&[1.0, 2.0, 4.0], 0.75, Rank::Linear), 3.0);
        assert!(percentile(&[], 0.5, Rank::Linear).is_nan());
        assert!(median(&[]).is_nan());
    }
}
