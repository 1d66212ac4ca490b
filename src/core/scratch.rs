//! Scratch folders for tests, examples and benchmarks: `ScratchDir::new("name")` creates an empty
//! `hdpf-name-PID` folder in the system temp folder and removes it (with everything in it) when
//! dropped, so runs leave nothing behind.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A temporary folder removed on drop; derefs to its [`Path`].
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// An empty `hdpf-<name>-<pid>` folder in the temp folder (an old one of that name is cleared).
    ///
    /// Panics when the folder cannot be created: a scratch folder is a test fixture, not user input.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hdpf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self(dir)
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
