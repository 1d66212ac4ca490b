//! Seconds a user supplies (timeouts, rates, run lengths, recorded stamps) as a [`Duration`]
//! that cannot panic: `Duration::from_secs_f64` panics on a negative, NaN or overflowing value,
//! and an `Instant` plus a huge `Duration` overflows too.

use std::time::Duration;

/// The longest duration [`seconds`] gives: a century (3.156·10⁹ s), "never" for any run, and
/// far from overflowing an `Instant` it is added to.
pub const LONGEST_S: f64 = 100.0 * 365.25 * 86_400.0;

/// `secs` as a [`Duration`], clamped to `[0, LONGEST_S]` (NaN as 0): a timeout of `1e20` s
/// means "never", not a panic.
pub fn seconds(secs: f64) -> Duration {
    match secs.is_nan() {
        true => Duration::ZERO,
        false => Duration::from_secs_f64(secs.clamp(0.0, LONGEST_S)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn any_value_is_a_duration_that_an_instant_can_take() {
        assert_eq!(seconds(1.5), Duration::from_millis(1500));
        assert_eq!(seconds(-3.0), Duration::ZERO);
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        let longest = Duration::from_secs_f64(LONGEST_S);
        for huge in [1e20, f64::INFINITY, f64::MAX] {
            assert_eq!(seconds(huge), longest, "{huge}");
        }
        assert!(Instant::now().checked_add(seconds(f64::INFINITY)).is_some());
    }
}
