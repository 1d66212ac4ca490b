//! Where third-party datasets live: `../shared/datasets/<name>` beside the repository (never copied
//! into it), or the folder named by the environment variable `HDPF_DATASETS`.

use std::path::PathBuf;

/// The folder holding the shared datasets: `$HDPF_DATASETS` if set, else
/// `<repository>/../shared/datasets`.
pub fn shared_root() -> PathBuf {
    match std::env::var_os("HDPF_DATASETS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"),
    }
}

/// The path of dataset `name` (e.g. `"ycbv-mini"`, `"digits/digits.csv.gz"`), whether or not it exists.
pub fn shared(name: &str) -> PathBuf {
    shared_root().join(name)
}

/// For tests: the dataset's path if present; otherwise print why the test is skipped and return
/// `None` — except under `CI=true`, where a missing dataset is a failure (CI always has it, so a
/// silent skip there would hide a broken path).
pub fn shared_or_skip(name: &str) -> Option<PathBuf> {
    let path = shared(name);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "dataset {} is missing and CI=true: CI must have ../shared/datasets",
        path.display()
    );
    eprintln!("skipping: dataset {} not found", path.display());
    None
}
