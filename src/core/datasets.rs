//! Where third-party datasets live, found at run time: the folder given by `--datasets` (see
//! [`set_root`]), else the environment variable `HDPF_DATASETS`, else `../shared/datasets` relative
//! to the working directory (beside the repository when run from its root). Never copied into the
//! repository; never the compile-time source folder — except for tests ([`shared_or_skip`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The datasets folder without `--datasets` or `HDPF_DATASETS`, relative to the working directory.
pub const DEFAULT_ROOT: &str = "../shared/datasets";

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Use `dir` as the datasets folder for the rest of the process (the `--datasets` flag); false
/// when a folder was already set.
pub fn set_root(dir: PathBuf) -> bool {
    ROOT.set(dir).is_ok()
}

/// The folder holding the shared datasets: the [`set_root`] folder, else `$HDPF_DATASETS`, else
/// `../shared/datasets` relative to the working directory.
pub fn shared_root() -> PathBuf {
    if let Some(dir) = ROOT.get() {
        return dir.clone();
    }
    match std::env::var_os("HDPF_DATASETS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(DEFAULT_ROOT),
    }
}

/// The path of dataset `name` (e.g. `"ycbv-mini"`, `"digits/digits.csv.gz"`), whether or not it exists.
pub fn shared(name: &str) -> PathBuf {
    shared_root().join(name)
}

/// Where a dataset path a user gave is found: as given when it exists; otherwise, for a relative
/// path, under the datasets folder ([`shared_root`]) — `ycbv-mini` as well as a launch file's
/// `../shared/datasets/ycbv-mini` (the default folder written out) then follow `--datasets` and
/// `HDPF_DATASETS`. A path found nowhere is returned as given, for the error to name.
pub fn resolve(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let root = shared_root();
    let rest = path.strip_prefix(DEFAULT_ROOT).unwrap_or(path);
    [root.join(path), root.join(rest)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

/// [`resolve`] for a folder the user gave as `what` (e.g. "BOP dataset directory"): the folder
/// found, or an error naming the path as given and, when it is found nowhere, the datasets folder
/// also searched.
pub fn resolve_dir(given: &Path, what: &str) -> crate::core::error::Result<PathBuf> {
    let dir = resolve(given);
    if dir.is_dir() {
        return Ok(dir);
    }
    let why = match dir.is_file() {
        true => format!("is a file, not a {what}"),
        false => format!(
            "{what} not found (nor under the datasets folder {}: set it with --datasets or \
             HDPF_DATASETS)",
            shared_root().display()
        ),
    };
    Err(crate::core::error::Error::format(given, why))
}

/// For tests: the dataset's path if present (at run time as [`shared`] finds it, else beside the
/// source tree the tests were compiled from); otherwise print why the test is skipped and return
/// `None` — except under `CI=true`, where a missing dataset is a failure (CI always has it, so a
/// silent skip there would hide a broken path).
pub fn shared_or_skip(name: &str) -> Option<PathBuf> {
    let compiled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_ROOT);
    let candidates = [shared(name), compiled.join(name)];
    if let Some(path) = candidates.iter().find(|p| p.exists()) {
        return Some(path.clone());
    }
    let path = &candidates[0];
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "dataset {} is missing and CI=true: CI must have ../shared/datasets",
        path.display()
    );
    eprintln!("skipping: dataset {} not found", path.display());
    None
}
