//! The initial hypothesis search, a component of the tracker: from an uncertain start, score many
//! poses drawn from the init-noise prior with the tracker's modalities and restart from the best.

use super::{add_noise6, FrameMaps, Tracker};
use crate::core::error::Result;
use crate::domains::pose::modality::{PoseChart, RgbdFrame};
use nalgebra::{Isometry3, Vector6};

/// The start search's spread as a fraction of the init-noise prior. On ycbv-mini from
/// `--init-noise 20mm,10deg` (ADD-S over frames 6–20, filter seeds 0–5) a search over the whole
/// prior for every object read a mean 3.52 mm (2 seeds of 6 within 3 mm): far hypotheses scored
/// with widened kernels win wrongly; a quarter reads 2.45 mm (4 of 6), level with the former
/// search, whose first object searched the whole prior and every later one a quarter (README,
/// "Object groups side by side").
pub(super) const SEARCH_FRACTION: f64 = 0.25;

/// The first frame's prior after the start search, as a fraction of the init-noise prior: the
/// search placed the start to about a quarter of the noise.
const SEARCHED_PRIOR_FRACTION: f64 = 0.25;

impl Tracker {
    /// From an uncertain start, score `hypotheses` poses drawn from [`SEARCH_FRACTION`] of the
    /// init-noise prior (twice, the second round around the first winner at a quarter of that
    /// spread) and restart from the lowest loss: a search the local filter moves cannot do. Every
    /// object searches alike, whatever was searched before it; the first frame's prior and spread
    /// then shrink ([`Tracker::first_prior_fraction`]).
    pub(super) fn select_hypothesis(
        &mut self,
        k: usize,
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Result<()> {
        let d = self.config.scale(self.objects[k].radius);
        let sigma = self.config.initial_prior(&d) * SEARCH_FRACTION;
        let (n, seed) = (self.config.hypotheses, self.config.seed);
        let centre = self.states[k].estimate;
        self.states[k].estimate =
            self.hypothesis_search(k, centre, sigma, n, &[1.0, 0.25], (seed, 0xB0), frame, maps)?;
        Ok(())
    }

    /// The first frame's prior as a fraction of `TrackerConfig::initial_prior`:
    /// [`SEARCHED_PRIOR_FRACTION`] from an uncertain start (its objects' starts are searched
    /// before the first frame's rounds), else 1.
    pub(super) fn first_prior_fraction(&self) -> f64 {
        match self.config.init_noise {
            Some(_) => SEARCHED_PRIOR_FRACTION,
            None => 1.0,
        }
    }

    /// Score `n` poses of object `k` drawn about `centre` with per-axis σ `sigma` (state units),
    /// in rounds, each about the last winner at the spread scaled by `shrinks[round]`, with the
    /// observation terms widened to the spread; the lowest loss wins (the centre is always a
    /// candidate). Random streams from `(seed, tag)`.
    #[allow(clippy::too_many_arguments)]
    fn hypothesis_search(
        &self,
        k: usize,
        centre: Isometry3<f64>,
        sigma: Vector6<f64>,
        n: usize,
        shrinks: &[f64],
        (seed, tag): (u64, u64),
        frame: &RgbdFrame,
        maps: &FrameMaps,
    ) -> Result<Isometry3<f64>> {
        use rayon::prelude::*;
        let d = self.config.scale(self.objects[k].radius);
        let sd = sigma.component_mul(&d);
        let spread0 =
            sd.fixed_rows::<3>(0).norm() + self.objects[k].radius * sd.fixed_rows::<3>(3).norm();
        let mut pose = centre;
        for (round, &shrink) in shrinks.iter().enumerate() {
            let chart = PoseChart::new(pose, &self.objects[k].centre);
            let spread = spread0 * shrink;
            let mut terms = self.object_terms(k, &chart, frame, maps, spread, true)?;
            terms.prior_sigma = sigma * shrink;
            let best = (0..n)
                .into_par_iter()
                .map(|i| {
                    let mut rng = crate::core::filter::rng::stream(
                        seed,
                        tag + round as u64,
                        (k as u64) << 32 | i as u64,
                    );
                    let mut x = [0.0; 6];
                    if i > 0 {
                        add_noise6(&mut x, &terms.prior_sigma, &mut rng);
                    }
                    (terms.loss(&x), x)
                })
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, x)| x)
                .unwrap_or([0.0; 6]);
            let xi = Vector6::from_fn(|i, _| best[i] * terms.scale[i]);
            pose = chart.pose(&xi);
        }
        Ok(pose)
    }
}
