//! A static occluder that hides a chosen part of a chosen object for chosen frames: a grey plate,
//! fixed in the camera frame, 5 cm in front of the object, covering the left `fraction` of the
//! object's image width as it was in the first hidden frame (the object may move on under it).

use crate::core::error::{Error, Result};
use crate::core::geometry::Camera;
use crate::domains::pose::mesh::Mesh;
use nalgebra::{Isometry3, Point3};
use std::str::FromStr;

/// Which object to hide, how much of it and when (`--hide OBJ,FRACTION,FIRST-LAST`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hide {
    /// The object's position in the sequence's object list (1-based, as given on the command line).
    pub object: usize,
    /// The fraction of its image width covered from the left, in (0, 1].
    pub fraction: f64,
    /// First and last hidden image ids (inclusive, 1-based).
    pub frames: (usize, usize),
}

impl FromStr for Hide {
    type Err = Error;

    /// `OBJ,FRACTION,FIRST-LAST`, e.g. `1,0.5,10-25`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::param("hide", s, why);
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [obj, frac, range] = parts[..] else {
            return Err(bad("expected OBJ,FRACTION,FIRST-LAST, e.g. 1,0.5,10-25"));
        };
        let (first, last) = range
            .split_once('-')
            .ok_or_else(|| bad("frames must be FIRST-LAST image ids, e.g. 10-25"))?;
        let num = |x: &str, what: &str| x.parse::<usize>().map_err(|_| bad(what));
        Ok(Hide {
            object: num(
                obj,
                "OBJ must be the object's position in --objects, from 1",
            )?,
            fraction: frac
                .parse()
                .map_err(|_| bad("FRACTION must be a number in (0, 1]"))?,
            frames: (
                num(first, "FIRST must be an image id")?,
                num(last, "LAST must be an image id")?,
            ),
        })
    }
}

impl Hide {
    /// An error naming `hide` unless the object is one of `objects`, the fraction lies in (0, 1]
    /// and `1 ≤ FIRST ≤ LAST ≤ frames`.
    pub fn validate(&self, objects: usize, frames: usize) -> Result<()> {
        let (object, fraction, (first, last)) = (self.object, self.fraction, self.frames);
        let text = format!("{object},{fraction},{first}-{last}");
        let bad = |why: String| Error::param("hide", &text, why);
        if !(1..=objects).contains(&self.object) {
            return Err(bad(format!("the object must be 1..={objects}")));
        }
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(bad("the fraction must lie in (0, 1]".into()));
        }
        let (a, b) = self.frames;
        if !(1 <= a && a <= b && b <= frames) {
            return Err(bad(format!(
                "frames must satisfy 1 ≤ FIRST ≤ LAST ≤ {frames}"
            )));
        }
        Ok(())
    }

    /// Whether frame `k` (0-based) is hidden.
    pub fn covers(&self, k: usize) -> bool {
        (self.frames.0..=self.frames.1).contains(&(k + 1))
    }

    /// The plate and its pose (camera frame) that hide the left `fraction` of `mesh` at `pose`:
    /// 5 cm in front of the object's nearest vertex (at least 10 cm from the camera), covering
    /// its image rows with a 10 % margin and its columns from 10 % left of its left edge to
    /// `fraction` of its width. `None` when the object is not in front of the camera.
    pub fn plate(
        &self,
        camera: &Camera,
        mesh: &Mesh,
        pose: &Isometry3<f64>,
    ) -> Result<Option<(Mesh, Isometry3<f64>)>> {
        let posed: Vec<Point3<f64>> = mesh.vertices.iter().map(|p| pose * p).collect();
        let pixels: Vec<_> = posed.iter().filter_map(|p| camera.project(p)).collect();
        let near = posed.iter().map(|p| p.z).fold(f64::INFINITY, f64::min);
        if pixels.is_empty() || !near.is_finite() {
            return Ok(None);
        }
        let span = |f: fn(&nalgebra::Point2<f64>) -> f64| {
            let v = pixels.iter().map(f);
            (
                v.clone().fold(f64::INFINITY, f64::min),
                v.fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let ((u0, u1), (v0, v1)) = (span(|p| p.x), span(|p| p.y));
        let (du, dv) = ((u1 - u0).max(1.0), (v1 - v0).max(1.0));
        let (left, right) = (u0 - 0.1 * du, u0 + self.fraction * du);
        let (top, bottom) = (v0 - 0.1 * dv, v1 + 0.1 * dv);
        let z = (near - 0.05).max(0.1);
        let metres = |px: f64, f: f64| px * z / f;
        let plate = Mesh::cuboid(
            metres(right - left, camera.fx),
            metres(bottom - top, camera.fy),
            0.01,
        )?;
        let centre = camera.backproject(0.5 * (left + right), 0.5 * (top + bottom), z);
        Ok(Some((
            plate,
            Isometry3::translation(centre.x, centre.y, centre.z),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_parses_and_bad_values_are_named() {
        let h: Hide = "2, 0.5, 10-25".parse().unwrap();
        assert_eq!(
            h,
            Hide {
                object: 2,
                fraction: 0.5,
                frames: (10, 25)
            }
        );
        assert!(h.validate(2, 40).is_ok());
        assert!(h.covers(9) && h.covers(24) && !h.covers(8) && !h.covers(25));
        for (text, why) in [
            ("1,0.5", "OBJ,FRACTION,FIRST-LAST"),
            ("1,0.5,10", "FIRST-LAST"),
            ("x,0.5,1-2", "OBJ"),
            ("1,half,1-2", "FRACTION"),
        ] {
            let e = text.parse::<Hide>().unwrap_err().to_string();
            assert!(e.contains("hide") && e.contains(why), "{text}: {e}");
        }
        for (h, objects, frames, why) in [
            ("3,0.5,1-2", 2, 40, "object"),
            ("1,1.5,1-2", 2, 40, "fraction"),
            ("1,0,1-2", 2, 40, "fraction"),
            ("1,0.5,5-2", 2, 40, "FIRST"),
            ("1,0.5,1-41", 2, 40, "LAST ≤ 40"),
        ] {
            let e = (h.parse::<Hide>().unwrap().validate(objects, frames))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{h}: {e}");
        }
    }
}
