//! What one filter update reports about itself.

/// Per-update diagnostics.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Diagnostics {
    /// Update count (1 for the first observation).
    pub step: usize,
    /// Effective sample size `1/Σ w_i²` of the update's weights: just before the resampling when
    /// the update resampled (after it every set has `n`), else after the update (`n` for
    /// unweighted filters).
    pub ess: f64,
    /// Mean of the last losses the update evaluated.
    pub loss_mean: f64,
    /// Standard deviation of those losses (the "loss spread").
    pub loss_std: f64,
    /// Number of sub-moves taken (0 when the filter has no move).
    pub substeps: usize,
    /// Mean over particles of `‖pair term‖ / ‖∇L‖` in the move (0 without a pair term).
    pub pair_to_grad: f64,
    /// Whether the particles were resampled.
    pub resampled: bool,
    /// Wall-clock seconds of the update (for an update in a window: the window's mean).
    pub seconds: f64,
}
