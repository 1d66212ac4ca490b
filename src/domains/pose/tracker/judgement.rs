//! What the tracker judged of one object's published estimate in one frame: its quality, the
//! fraction of it the depth shows, and whether its pose was held or the object is lost. One
//! value, carried unchanged from the tracker's frame output to the driver's rows, the pipeline's
//! estimates (JSON lines, rerun) and the control handle.

/// The tracker's judgement of one object's estimate in one frame. Its equality is that of its
/// fields, so a judgement with a NaN (as [`Judgement::NONE`]) equals no judgement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    /// Tracking quality `q = 1 − min(1, ℓ)` with `ℓ` the detection loss at the published
    /// estimate (about the fraction of visible model points that the depth does not explain,
    /// missing depth included; [`super::RedetectConfig`]): 1 a perfect fit, 0 nothing fits or
    /// nothing of the object is visible; NaN when no configured modality judges detections, or
    /// when not judged ([`Judgement::NONE`]).
    pub quality: f64,
    /// The visible fraction at the published estimate as the depth sees it — of the model points
    /// visible there (self-occlusion removed) with a depth reading that judges them (not across
    /// a depth discontinuity), the fraction that nothing nearer hides (BOP's `visib_fract`,
    /// counted over surface points; NaN without a depth modality or such points).
    pub visible: f64,
    /// Whether the loss trigger of [`super::RedetectConfig`] (its defaults when re-detection is
    /// off) fired this frame and no re-detection replaced the estimate: the detection loss
    /// jumped above its running level (a partial occlusion, a jerk, or a loss), so the estimate
    /// is suspect. The frame teaches the modalities nothing and, with re-detection on, the
    /// object is searched for and the next frame's prediction holds this estimate (no velocity).
    pub held: bool,
    /// Held, and most of the visible model unexplained
    /// ([`super::RedetectConfig::confirm_loss`]: quality at most 0.2 by default): the estimate
    /// is not where the object is seen, or nothing of it is seen where the estimate is. Do not
    /// act on its pose.
    pub lost: bool,
}

impl Judgement {
    /// Nothing judged: quality and visible fraction NaN, neither held nor lost.
    pub const NONE: Self = Self {
        quality: f64::NAN,
        visible: f64::NAN,
        held: false,
        lost: false,
    };
}

impl Default for Judgement {
    /// [`Judgement::NONE`].
    fn default() -> Self {
        Self::NONE
    }
}
