//! The point sets ADD and ADD-S are measured on: a dataset's own evaluation points when it ships
//! them (`models_points/obj_XXXXXX.xyz`, as YCB-Video's `points.xyz`, which PoseCNN, DenseFusion
//! and FoundationPose report on), else the mesh vertices of `models/obj_XXXXXX.ply`.

use super::BopDataset;
use crate::{Error, Result};
use nalgebra::Point3;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Which points an object's ADD / ADD-S were measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PointSource {
    /// `models_points/obj_XXXXXX.xyz` (metres, one `x y z` per line).
    ModelPoints,
    /// The vertices of `models/obj_XXXXXX.ply`.
    MeshVertices,
}

impl std::fmt::Display for PointSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PointSource::ModelPoints => "models_points/*.xyz",
            PointSource::MeshVertices => "mesh vertices (models/*.ply)",
        })
    }
}

impl BopDataset {
    /// The evaluation points file of object `obj_id` (it may not exist).
    pub fn points_path(&self, obj_id: u32) -> PathBuf {
        (self.root.join("models_points")).join(format!("obj_{obj_id:06}.xyz"))
    }

    /// The points ADD / ADD-S of object `obj_id` are measured on (metres, model frame) and where
    /// they came from: the dataset's evaluation points when present, else the mesh vertices.
    pub fn eval_points(&self, obj_id: u32) -> Result<(Vec<Point3<f64>>, PointSource)> {
        match self.shipped_points(obj_id)? {
            Some(points) => Ok((points, PointSource::ModelPoints)),
            None => Ok((self.model(obj_id)?.vertices, PointSource::MeshVertices)),
        }
    }

    /// The dataset's own evaluation points of `obj_id` (`models_points/`), `None` when it does
    /// not ship them; an error names a malformed file.
    pub fn shipped_points(&self, obj_id: u32) -> Result<Option<Vec<Point3<f64>>>> {
        let path = self.points_path(obj_id);
        path.is_file().then(|| read_xyz(&path)).transpose()
    }
}

/// Reads an ASCII point file, one `x y z` (metres) per non-empty line; an error names the file
/// and line of a malformed or non-finite entry, or an empty file.
pub fn read_xyz(path: &Path) -> Result<Vec<Point3<f64>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let points = (text.lines().enumerate())
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            parse_point(line).map_err(|why| Error::format(path, format!("line {}: {why}", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    if points.is_empty() {
        return Err(Error::format(path, "no points"));
    }
    Ok(points)
}

/// One `x y z` line.
fn parse_point(line: &str) -> std::result::Result<Point3<f64>, String> {
    let v: Vec<&str> = line.split_whitespace().collect();
    if v.len() != 3 {
        return Err(format!(
            "expected 3 numbers (x y z), got {}: {line:?}",
            v.len()
        ));
    }
    let mut p = [0.0; 3];
    for (slot, s) in p.iter_mut().zip(&v) {
        *slot = match s.parse::<f64>() {
            Ok(x) if x.is_finite() => x,
            _ => return Err(format!("not a finite number: {s:?}")),
        };
    }
    Ok(Point3::from(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::scratch::ScratchDir;

    #[test]
    fn points_files_are_read_and_bad_ones_named() {
        let dir = ScratchDir::new("xyz");
        let ok = dir.join("ok.xyz");
        std::fs::write(&ok, "0.1 -0.2 0.3\n\n1e-3 0 2\n").unwrap();
        let p = read_xyz(&ok).unwrap();
        assert_eq!(
            p,
            vec![Point3::new(0.1, -0.2, 0.3), Point3::new(1e-3, 0.0, 2.0)]
        );
        for (text, why) in [
            ("0 0 0\n0 nan 0\n", "line 2: not a finite number"),
            ("0 0\n", "line 1: expected 3 numbers"),
            ("0 0 x\n", "not a finite number: \"x\""),
            ("\n \n", "no points"),
        ] {
            let bad = dir.join("bad.xyz");
            std::fs::write(&bad, text).unwrap();
            let e = read_xyz(&bad).unwrap_err().to_string();
            assert!(e.contains("bad.xyz") && e.contains(why), "{e}");
        }
        let missing = read_xyz(&dir.join("none.xyz")).unwrap_err().to_string();
        assert!(missing.contains("none.xyz"), "{missing}");
    }
}
