//! The one error type of hdpf. Every message names the file, field, value, particle or step at fault.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in hdpf, each variant naming what was at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file was read but its content is malformed.
    #[error("{path}: {msg}")]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong, naming the field or line.
        msg: String,
    },
    /// A parameter or input value is out of its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParam {
        /// The parameter, flag or field name.
        name: String,
        /// The offending value, as given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Shapes of inputs disagree.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// Which buffer or matrix.
        what: String,
        /// Expected shape.
        expected: String,
        /// Shape found.
        got: String,
    },
    /// A model produced a NaN or infinite value during filtering.
    #[error("non-finite {what} at step {step}, particle {particle}: {value}")]
    NonFinite {
        /// Which quantity: "loss", "gradient", "transition", "weight", ...
        what: String,
        /// The filter step (update count) at which it happened.
        step: usize,
        /// The particle index.
        particle: usize,
        /// The offending value.
        value: f64,
    },
    /// A pipeline stage failed.
    #[error("stage '{stage}' failed at frame {frame}: {msg}")]
    Stage {
        /// The stage name.
        stage: String,
        /// The frame index (or -1 when unknown).
        frame: i64,
        /// The failure.
        msg: String,
    },
    /// Anything else, with a message that says what.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Convenience constructor for [`Error::InvalidParam`].
    pub fn param(name: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidParam {
            name: name.into(),
            value: short_number(value.to_string()),
            reason: reason.into(),
        }
    }

    /// Convenience constructor for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Convenience constructor for [`Error::Format`].
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// A number whose plain decimal form is long (`1e-300` prints 300 zeros) in scientific notation;
/// any other text as it is.
pub fn short_number(text: String) -> String {
    match text.parse::<f64>() {
        Ok(v) if text.len() > 24 => format!("{v:e}"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_numbers_in_messages_are_written_short() {
        let e = Error::param("--interval-s", 1e-300, "too small").to_string();
        assert!(e.contains("1e-300") && e.len() < 80, "{e}");
        let e = Error::param("--fps", 2.5, "r").to_string();
        assert!(e.contains("2.5"), "{e}");
        assert_eq!(short_number("abc".repeat(10)), "abc".repeat(10));
    }
}
