//! Runs `hdpf bench localization` from a launch file's `[localization]` table (given as flags), so
//! the launch file and the command line run exactly the same code.

use crate::app::bench::localization::{self, LocalizationArgs};
use crate::core::error::{Error, Result};
use clap::Parser;

#[derive(Parser)]
#[command(name = "localization", no_binary_name = true)]
struct Flags {
    #[command(flatten)]
    args: LocalizationArgs,
}

/// Parse `flags` (e.g. `["--dims", "3,10"]`) as `hdpf bench localization` does.
pub fn localization_args(flags: &[String]) -> Result<LocalizationArgs> {
    Flags::try_parse_from(flags)
        .map(|f| f.args)
        .map_err(|e| Error::Other(e.to_string().trim().to_string()))
}

/// Run the localization benchmark with command-line `flags` and print its table.
pub fn localization(flags: &[String]) -> Result<()> {
    let report = localization::run(&localization_args(flags)?)?;
    crate::outln!("{report}");
    Ok(())
}
