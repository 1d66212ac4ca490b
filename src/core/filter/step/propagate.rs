//! Propagation: the model's transition `x ← f(x) + w` applied to one particle with its own random
//! stream (a no-op for static models).

use super::Row;
use crate::core::error::Result;
use crate::core::filter::model::Model;

/// Propagate one particle; an error names it when the transition leaves a non-finite value.
pub(super) fn row<M: Model + ?Sized>(model: &M, row: &mut Row) -> Result<()> {
    if !model.has_transition() {
        return Ok(());
    }
    let mut rng = row.rng();
    model.transition(row.x, &mut rng);
    row.check("state after transition")
}
