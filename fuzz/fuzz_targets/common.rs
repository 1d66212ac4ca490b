//! Shared by the file-based targets: the input written to a per-process scratch file, so the
//! parser is reached through the same path-taking function a user's file goes through.

use std::path::PathBuf;

/// Writes `data` to `hdpf-fuzz-<pid>/<name>` in the temp folder and returns its path.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hdpf-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp folder");
    let path = dir.join(name);
    std::fs::write(&path, data).expect("scratch file");
    path
}
