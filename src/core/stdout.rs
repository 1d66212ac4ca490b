//! Printing to standard output that a closed pipe cannot stop: `hdpf track … | head` used to
//! panic in `println!` once `head` had read its lines ("failed printing to stdout"), killing the
//! run before its results file was complete. [`outln!`](crate::outln) and
//! [`out!`](crate::out) drop what the reader no longer wants and let the job finish; another
//! write error (a full disk behind a redirection) is reported once on standard error.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static REPORTED: AtomicBool = AtomicBool::new(false);

/// Writes `args` to standard output; a closed pipe is ignored, any other error is reported once
/// on standard error (output is a report for the user, never a result the job depends on).
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        report(&e);
    }
}

fn report(e: &std::io::Error) {
    if e.kind() != ErrorKind::BrokenPipe && !REPORTED.swap(true, Ordering::Relaxed) {
        eprintln!("standard output: {e} (further output is dropped)");
    }
}

/// `print!` that survives a closed standard output ([`write()`](crate::core::stdout::write)).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::core::stdout::write(format_args!($($arg)*))
    };
}

/// `println!` that survives a closed standard output ([`write()`](crate::core::stdout::write)).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::core::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::core::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
