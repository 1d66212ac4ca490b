//! Scratch folders for tests, examples and benchmarks: `ScratchDir::new("name")` creates an empty
//! `hdpf-name-PID` folder in the system temp folder and removes it (with everything in it) when
//! dropped, so runs leave nothing behind.

use crate::core::error::{Error, Result};
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A temporary folder removed on drop; derefs to its [`Path`].
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// An empty `hdpf-<name>-<pid>` folder in the temp folder (an old one of that name is
    /// cleared), or an error naming the folder when it cannot be created (the user's `TMPDIR`
    /// missing or read-only, say).
    pub fn create(name: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("hdpf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Self(dir))
    }

    /// [`Self::create`] for tests, examples and benchmarks, where a scratch folder is a fixture:
    /// panics when the folder cannot be created.
    pub fn new(name: &str) -> Self {
        Self::create(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_created_empty_and_removed_on_drop() {
        let path = {
            let d = ScratchDir::new("scratch-test");
            std::fs::write(d.join("f.txt"), "x").unwrap();
            assert!(d.join("f.txt").exists());
            d.path().to_path_buf()
        };
        assert!(!path.exists());
    }
}
