//! Runs `hdpf bench localization` from a launch file's `[localization]` table (given as flags).

use crate::error::{Error, Result};

/// Run the localization benchmark with command-line `flags` (e.g. `["--dims", "3,10"]`).
pub fn localization(flags: &[String]) -> Result<()> {
    Err(Error::Other(format!(
        "the localization benchmark (crate::bench::localization) is not part of this build yet; flags were {flags:?}"
    )))
}
