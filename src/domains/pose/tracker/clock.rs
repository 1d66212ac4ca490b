//! The frame clock: how much time a frame's motion spans, read off the frames' capture stamps.
//!
//! The motion parameters — the motion prior's and the process noise's σ, and the
//! constant-velocity increment — are per frame at the stream's period `T`. A frame that follows a
//! gap (frames dropped by a `latest` queue, an irregular recording) spans `r = Δt / T` periods:
//! the random walk's σ grow as `√r` (its variance is linear in time), and the constant-velocity
//! prediction repeats the last increment `Δt / Δt_prev` times (the increment spanned the interval
//! before). `T` is the median of the last [`WINDOW`] intervals: dropped frames are the exception,
//! so the median is the camera's period whatever the nominal rate. A frame without a stamp (BOP
//! folders), with a non-finite one, or not later than the frame before spans one period, and the
//! next interval starts from it. Spans lie in `[1/MAX_SPAN, MAX_SPAN]`, and one within 10⁻³ of 1
//! is 1: Unix stamps in `f64` seconds resolve only about 240 ns (7·10⁻⁶ of a 30 Hz period), so
//! a regular stream's intervals do not subtract exactly, and a thousandth of a period (33 µs at
//! 30 Hz) is below any motion the tracker can see.

use std::collections::VecDeque;

/// Intervals the period is the median of.
pub const WINDOW: usize = 31;

/// Largest span (and smallest, as its inverse) a frame is given, in periods or in increments.
pub const MAX_SPAN: f64 = 10.0;

/// How much time a frame spans.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    /// `r = Δt / T`: periods since the frame before (scales the random walk's variances).
    pub periods: f64,
    /// `Δt / Δt_prev`: the constant-velocity increments the prediction repeats.
    pub increments: f64,
}

impl Default for Span {
    /// One period, one increment: a frame without a stamp.
    fn default() -> Self {
        Self {
            periods: 1.0,
            increments: 1.0,
        }
    }
}

/// The stamps seen so far: the last one, the interval before it, and the recent intervals.
#[derive(Clone, Debug, Default)]
pub struct FrameClock {
    last: Option<f64>,
    previous_interval: Option<f64>,
    intervals: VecDeque<f64>,
}

impl FrameClock {
    /// Advance to a frame stamped `stamp` (seconds) and return the span it covers (module docs).
    pub fn advance(&mut self, stamp: Option<f64>) -> Span {
        let t = stamp.filter(|t| t.is_finite());
        let dt = (t.zip(self.last))
            .map(|(t, last)| t - last)
            .filter(|d| *d > 0.0);
        self.last = t;
        let Some(dt) = dt else {
            self.previous_interval = None;
            return Span::default();
        };
        if self.intervals.len() == WINDOW {
            self.intervals.pop_front();
        }
        self.intervals.push_back(dt);
        let span = Span {
            periods: bounded(dt / self.period()),
            increments: self.previous_interval.map_or(1.0, |p| bounded(dt / p)),
        };
        self.previous_interval = Some(dt);
        span
    }

    /// The median of the recent intervals (seconds); an even count takes the mean of the middle two.
    fn period(&self) -> f64 {
        let mut v: Vec<f64> = self.intervals.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n % 2 {
            1 => v[n / 2],
            _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
        }
    }
}

/// `r` within `[1/MAX_SPAN, MAX_SPAN]`, and exactly 1 within 10⁻³ of it.
fn bounded(r: f64) -> f64 {
    match (r - 1.0).abs() < 1e-3 {
        true => 1.0,
        false => r.clamp(1.0 / MAX_SPAN, MAX_SPAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(stamps: &[Option<f64>]) -> Vec<Span> {
        let mut clock = FrameClock::default();
        stamps.iter().map(|&s| clock.advance(s)).collect()
    }

    #[test]
    fn a_dropped_frame_spans_two_periods_and_two_increments() {
        let p = 1.0 / 30.0;
        let s = spans(&[0.0, p, 2.0 * p, 3.0 * p, 5.0 * p, 6.0 * p].map(Some));
        assert_eq!(s[..4], [Span::default(); 4]);
        assert!((s[4].periods - 2.0).abs() < 1e-9 && (s[4].increments - 2.0).abs() < 1e-9);
        // After the gap: one period, but the last increment spanned two.
        assert!((s[5].periods - 1.0).abs() < 1e-9 && (s[5].increments - 0.5).abs() < 1e-9);
    }

    #[test]
    fn nanosecond_stamps_and_missing_or_backward_stamps_span_one_period() {
        let start = 1_764_979_200_000_000_000u64; // 2025-12-06, Unix ns
        let ns = [0u64, 33_333_333, 66_666_667, 100_000_000, 133_333_333]
            .map(|n| Some((start + n) as f64 * 1e-9));
        assert!(spans(&ns).iter().all(|s| *s == Span::default()));
        let odd = [
            Some(1.0),
            None,
            Some(2.0),
            Some(1.5),
            Some(f64::NAN),
            Some(3.0),
        ];
        assert!(spans(&odd).iter().all(|s| *s == Span::default()));
    }

    #[test]
    fn long_gaps_are_bounded() {
        let s = spans(&[0.0, 0.1, 0.2, 100.0].map(Some));
        assert_eq!((s[3].periods, s[3].increments), (MAX_SPAN, MAX_SPAN));
    }
}
