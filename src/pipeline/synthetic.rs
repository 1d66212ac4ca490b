//! Synthetic recordings for launch files: render a BOP-format sequence when it is missing, and
//! list the scenes of a dataset.

use crate::error::{Error, Result};
use crate::launch::SynthSpec;
use std::path::Path;

/// Render the sequence `spec` into the BOP dataset directory `root`.
pub fn render_dataset(root: &Path, spec: &SynthSpec, seed: u64) -> Result<()> {
    let _ = (spec, seed);
    Err(Error::Other(format!(
        "{} does not exist and the synthetic generator (crate::pose::synth) is not part of this build yet",
        root.display()
    )))
}

/// Every `(split, scene_id)` of the dataset at `root`: directories `root/SPLIT/NNNNNN` holding a
/// `scene_gt.json` or `scene_camera.json`, sorted.
pub fn scenes_of(root: &Path) -> Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for split in read_dirs(root)? {
        let Some(split_name) = split.file_name().and_then(|s| s.to_str()).map(String::from) else {
            continue;
        };
        for scene in read_dirs(&split)? {
            let id = scene
                .file_name()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok());
            if let Some(id) = id.filter(|_| scene.join("scene_camera.json").exists()) {
                out.push((split_name.clone(), id));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::format(
            root,
            "no scenes (split/NNNNNN/scene_camera.json) found",
        ));
    }
    Ok(out)
}

fn read_dirs(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok(rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect())
}
