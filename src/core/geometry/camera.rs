//! The pinhole camera in the OpenCV convention: x right, y down, z forward (optical axis); pixel
//! `(u, v)` has its centre at integer coordinates, `(0, 0)` the centre of the top-left pixel.

use crate::{Error, Result};
use nalgebra::{Matrix2x3, Matrix3, Point2, Point3, Vector3};
use serde::{Deserialize, Serialize};

/// Points closer than this to the camera plane (`z`, metres) are treated as not projectable.
const MIN_DEPTH: f64 = 1e-9;

/// Pinhole intrinsics `K = [fx 0 cx; 0 fy cy; 0 0 1]` and the image size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    /// Focal length along x, pixels.
    pub fx: f64,
    /// Focal length along y, pixels.
    pub fy: f64,
    /// Principal point x, pixels.
    pub cx: f64,
    /// Principal point y, pixels.
    pub cy: f64,
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
}

impl Camera {
    /// Camera from a row-major `K = [fx, 0, cx, 0, fy, cy, 0, 0, 1]` (BOP's `cam_K`).
    ///
    /// Rejects non-positive or non-finite focal lengths, non-zero skew, a last row other than
    /// `[0, 0, 1]` and an empty image.
    pub fn from_k(k: &[f64; 9], width: u32, height: u32) -> Result<Camera> {
        let bad = |reason: &str| Error::param("cam_K", format!("{k:?}"), reason);
        if k.iter().any(|x| !x.is_finite()) {
            return Err(bad("non-finite entry"));
        }
        if k[0] <= 0.0 || k[4] <= 0.0 {
            return Err(bad("focal lengths fx = K[0], fy = K[4] must be positive"));
        }
        if k[1].abs() > 1e-9 * k[0] || k[3] != 0.0 {
            return Err(bad("skew K[1] and K[3] must be zero"));
        }
        if k[6] != 0.0 || k[7] != 0.0 || (k[8] - 1.0).abs() > 1e-12 {
            return Err(bad("last row must be [0, 0, 1]"));
        }
        if width == 0 || height == 0 {
            return Err(Error::param(
                "image size",
                format!("{width}x{height}"),
                "must be non-empty",
            ));
        }
        Ok(Camera {
            fx: k[0],
            fy: k[4],
            cx: k[2],
            cy: k[5],
            width,
            height,
        })
    }

    /// The row-major `K` (inverse of [`Camera::from_k`]).
    pub fn k_row_major(&self) -> [f64; 9] {
        [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]
    }

    /// The intrinsic matrix `K`.
    pub fn k_matrix(&self) -> Matrix3<f64> {
        Matrix3::from_row_slice(&self.k_row_major())
    }

    /// Projection `(u, v) = (fx·x/z + cx, fy·y/z + cy)`; `None` for points at or behind the camera
    /// plane (`z ≤ 10⁻⁹`). The result may lie outside the image: check [`Camera::contains`].
    pub fn project(&self, p: &Point3<f64>) -> Option<Point2<f64>> {
        (p.z > MIN_DEPTH).then(|| {
            let (u, v) = self.project_xyz(&p.coords);
            Point2::new(u, v)
        })
    }

    /// Unchecked projection for hot loops, `(u, v) = (fx·x/z + cx, fy·y/z + cy)`: the caller
    /// guarantees `z > 0` (otherwise the result is infinite, NaN or mirrored).
    #[inline]
    pub fn project_xyz(&self, q: &Vector3<f64>) -> (f64, f64) {
        (self.fx * q.x / q.z + self.cx, self.fy * q.y / q.z + self.cy)
    }

    /// [`Camera::project_xyz`] with the reciprocal depth `iz = 1/z` given, for loops that reuse
    /// it (one division per point instead of several): `(fx·x·iz + cx, fy·y·iz + cy)`. It may
    /// differ from [`Camera::project_xyz`] in the last bit.
    #[inline]
    pub fn project_inv(&self, q: &Vector3<f64>, iz: f64) -> (f64, f64) {
        (self.fx * q.x * iz + self.cx, self.fy * q.y * iz + self.cy)
    }

    /// Jacobian of [`Camera::project`] with respect to the point:
    /// `∂(u,v)/∂(x,y,z) = [fx/z, 0, −fx·x/z²; 0, fy/z, −fy·y/z²]`; `None` where `project` is.
    pub fn project_jacobian(&self, p: &Point3<f64>) -> Option<Matrix2x3<f64>> {
        (p.z > MIN_DEPTH).then(|| self.jacobian_xyz(&p.coords))
    }

    /// Unchecked Jacobian of [`Camera::project_xyz`] for hot loops:
    /// `∂(u,v)/∂(x,y,z) = [fx/z, 0, −fx·x/z²; 0, fy/z, −fy·y/z²]`; the caller guarantees `z > 0`.
    #[inline]
    pub fn jacobian_xyz(&self, q: &Vector3<f64>) -> Matrix2x3<f64> {
        self.jacobian_inv(q, 1.0 / q.z)
    }

    /// [`Camera::jacobian_xyz`] with the reciprocal depth `iz = 1/z` given.
    #[inline]
    pub fn jacobian_inv(&self, q: &Vector3<f64>, iz: f64) -> Matrix2x3<f64> {
        Matrix2x3::new(
            self.fx * iz,
            0.0,
            -self.fx * q.x * iz * iz,
            0.0,
            self.fy * iz,
            -self.fy * q.y * iz * iz,
        )
    }

    /// Whether `(u, v)` lies in `[0, width) × [0, height)`: the image rectangle measured from the
    /// top-left pixel's centre (stricter on the left/top than [`Camera::contains`]), the bound the
    /// visible-point selection uses.
    #[inline]
    pub fn covers(&self, u: f64, v: f64) -> bool {
        u >= 0.0 && v >= 0.0 && u < self.width as f64 && v < self.height as f64
    }

    /// Back-projection of pixel `(u, v)` at depth `z` (metres, along the optical axis):
    /// `p = ((u − cx)·z/fx, (v − cy)·z/fy, z)`.
    pub fn backproject(&self, u: f64, v: f64, depth_m: f64) -> Point3<f64> {
        Point3::new(
            (u - self.cx) * depth_m / self.fx,
            (v - self.cy) * depth_m / self.fy,
            depth_m,
        )
    }

    /// Whether `(u, v)` falls on a pixel of the image: `−½ ≤ u < width − ½` and likewise for `v`
    /// (pixel centres are at integers, so `(u.round(), v.round())` is then a valid pixel index).
    pub fn contains(&self, u: f64, v: f64) -> bool {
        u >= -0.5 && v >= -0.5 && u < self.width as f64 - 0.5 && v < self.height as f64 - 0.5
    }

    /// The camera of an image resampled by `factor` (0.5 for one pyramid level down):
    /// `f' = s·f`, `c' = s·(c + ½) − ½` (pixel centres at integers), size `⌊s·w⌋ × ⌊s·h⌋`.
    pub fn scaled(&self, factor: f64) -> Result<Camera> {
        let width = (self.width as f64 * factor).floor();
        let height = (self.height as f64 * factor).floor();
        if !factor.is_finite()
            || factor <= 0.0
            || width < 1.0
            || height < 1.0
            || width > u32::MAX as f64
        {
            return Err(Error::param(
                "scale factor",
                factor,
                "must be positive, finite and leave at least one pixel",
            ));
        }
        Ok(Camera {
            fx: self.fx * factor,
            fy: self.fy * factor,
            cx: factor * (self.cx + 0.5) - 0.5,
            cy: factor * (self.cy + 0.5) - 0.5,
            width: width as u32,
            height: height as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ycbv() -> Camera {
        Camera::from_k(
            &[
                1066.778, 0.0, 312.9869, 0.0, 1067.487, 241.3109, 0.0, 0.0, 1.0,
            ],
            640,
            480,
        )
        .unwrap()
    }

    #[test]
    fn from_k_round_trips_and_validates() {
        let c = ycbv();
        assert_eq!(c.fx, 1066.778);
        assert_eq!(c.cy, 241.3109);
        assert_eq!(Camera::from_k(&c.k_row_major(), 640, 480).unwrap(), c);
        assert_eq!(c.k_matrix()[(1, 2)], 241.3109);
        assert!(Camera::from_k(&[0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0], 4, 4).is_err());
        assert!(Camera::from_k(&[1.0, 0.5, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0], 4, 4).is_err());
        assert!(Camera::from_k(&[1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0], 4, 4).is_err());
        assert!(Camera::from_k(&[1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0], 0, 4).is_err());
    }

    #[test]
    fn project_backproject_round_trip() {
        let c = ycbv();
        let p = Point3::new(0.1, -0.05, 0.8);
        let uv = c.project(&p).unwrap();
        assert!((uv.x - (1066.778 * 0.125 + 312.9869)).abs() < 1e-9);
        let q = c.backproject(uv.x, uv.y, 0.8);
        assert!((q - p).norm() < 1e-12);
        assert!(c.project(&Point3::new(0.0, 0.0, -1.0)).is_none());
        assert!(c.project(&Point3::new(0.0, 0.0, 0.0)).is_none());
        assert!(c.project_jacobian(&Point3::new(0.0, 0.0, -1.0)).is_none());
    }

    #[test]
    fn project_jacobian_matches_finite_differences() {
        let c = ycbv();
        let p = Point3::new(0.1, -0.05, 0.8);
        let j = c.project_jacobian(&p).unwrap();
        let h = 1e-7;
        for k in 0..3 {
            let mut d = nalgebra::Vector3::zeros();
            d[k] = h;
            let col = (c.project(&(p + d)).unwrap() - c.project(&(p - d)).unwrap()) / (2.0 * h);
            assert!(
                (col - j.column(k)).norm() < 1e-4,
                "column {k}: {col} vs {}",
                j.column(k)
            );
        }
    }

    #[test]
    fn unchecked_projection_and_jacobian_match_finite_differences() {
        let c = ycbv();
        let q = nalgebra::Vector3::new(0.1, -0.05, 0.9);
        let (u, v) = c.project_xyz(&q);
        assert_eq!(c.project(&Point3::from(q)).unwrap(), Point2::new(u, v));
        let j = c.jacobian_xyz(&q);
        for k in 0..3 {
            let mut d = nalgebra::Vector3::zeros();
            d[k] = 1e-7;
            let (up, vp) = c.project_xyz(&(q + d));
            let (um, vm) = c.project_xyz(&(q - d));
            assert!(((up - um) / 2e-7 - j[(0, k)]).abs() < 1e-4);
            assert!(((vp - vm) / 2e-7 - j[(1, k)]).abs() < 1e-4);
        }
    }

    #[test]
    fn covers_is_the_half_open_image_rectangle() {
        let c = ycbv();
        assert!(c.covers(0.0, 0.0) && c.covers(639.99, 479.99));
        assert!(!c.covers(-0.01, 0.0) && !c.covers(640.0, 0.0) && !c.covers(0.0, 480.0));
    }

    #[test]
    fn contains_uses_pixel_centres() {
        let c = ycbv();
        assert!(c.contains(-0.5, 0.0));
        assert!(!c.contains(-0.51, 0.0));
        assert!(c.contains(639.49, 479.49));
        assert!(!c.contains(639.5, 0.0));
        assert!(!c.contains(0.0, 479.5));
    }

    #[test]
    fn scaled_keeps_rays() {
        let c = ycbv();
        let h = c.scaled(0.5).unwrap();
        assert_eq!((h.width, h.height), (320, 240));
        // The ray through the corner of the image (pixel edge) is the same at both levels.
        let p = Point3::new(0.1, -0.05, 0.8);
        let a = c.project(&p).unwrap();
        let b = h.project(&p).unwrap();
        assert!(((a.x + 0.5) * 0.5 - (b.x + 0.5)).abs() < 1e-9);
        assert!(((a.y + 0.5) * 0.5 - (b.y + 0.5)).abs() < 1e-9);
        assert!(c.scaled(0.0).is_err());
        assert!(c.scaled(f64::NAN).is_err());
        assert!(c.scaled(1e-6).is_err());
    }
}
