//! Depth readings that other tracked objects explain.
//!
//! Several objects tracked in one frame occlude and touch each other. A reading `D(p)` of pixel
//! `p` that lies on another tracked object's estimated surface is no evidence about this object:
//! as far as this object's depth term knows it is an occluder (an outlier at best) or, worse, a
//! surface it can lean on. On YCB-Video's train_real/2 a wood block lies under a pudding box; from
//! a start 6° off, the block's depth term tilted it 18° so that its top face fitted the box's
//! front instead of paying for the box's occlusion (an ADD-S of 11 mm where the ground-truth start
//! holds 2 mm). ICG removes such readings with renders of the other objects; this module does the
//! same from the objects' surface samples.
//!
//! For each object `j` its samples, posed at its estimate, are splatted into a z-buffer of square
//! cells of `cell_px` pixels, each sample widened to the cells within the expected gap between
//! samples (`g = 2·√(A/N)` pixels for the `N` samples in front of the camera over the box of
//! those on the image, of area `A`), nearest wins. Pixel `p` is *explained by* `j` when
//!
//! ```text
//!   D(p) > 0   and   |D(p) − z_j(cell(p))| < tolerance,
//! ```
//!
//! and object `k`'s depth term then reads every pixel explained by some `j ≠ k` as missing
//! (ignored while tracking, as for any unread point). Judging a detection and re-detection read
//! the frame's whole depth.
//!
//! The owners are one byte per pixel ([`ForeignMask`]): 0 for none, `j + 1` for object `j`
//! alone, [`SEVERAL`] for two or more (explained by another object whichever object asks).
//! Objects from the 255th on are not splatted. Only readings in an object's *window* (its
//! splat's box widened on every side by a quarter of its larger side plus [`WINDOW_MARGIN_PX`],
//! room for the frame's motion) are left out for it; an object whose window holds no reading of
//! another reads the depth without a mask.

use super::lanes::Lane;
use super::visible::sample_gap;
use super::ImageF32;
use crate::core::geometry::camera::Camera;
use nalgebra::Point3;
use rayon::prelude::*;
use std::sync::Arc;

/// Parameters of [`DepthOwnership`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OwnershipParams {
    /// A reading within this distance (m) of another object's estimated surface is explained by
    /// it.
    pub tolerance: f64,
    /// Side of the splat cells, pixels.
    pub cell_px: usize,
}

impl Default for OwnershipParams {
    /// 2 cm, the depth term's outlier threshold (an estimate within it of the truth still owns
    /// its readings); 4-pixel cells.
    fn default() -> Self {
        Self {
            tolerance: 0.02,
            cell_px: 4,
        }
    }
}

/// Pixels added on every side of an object's window besides a quarter of its larger side.
pub const WINDOW_MARGIN_PX: usize = 16;

/// The owner byte of a pixel that two or more objects explain.
pub const SEVERAL: u8 = u8::MAX;

/// Which objects explain the readings near each tracked object.
#[derive(Clone, Debug, Default)]
pub struct DepthOwnership {
    owners: Arc<[u8]>,
    width: usize,
    /// Per object: the box of the readings in its window that another object explains.
    foreign: Vec<Option<PixelBox>>,
}

/// The readings object `own − 1` leaves out: the frame's owner bytes, its own, and the box
/// that holds every reading of its window another object explains.
#[derive(Clone, Debug)]
pub struct ForeignMask {
    owners: Arc<[u8]>,
    width: usize,
    own: u8,
    bounds: PixelBox,
}

impl ForeignMask {
    /// Whether pixel `(x, y)` holds a reading another object explains (within the object's
    /// window; outside it, never).
    #[inline]
    pub fn foreign(&self, x: usize, y: usize) -> bool {
        let m = || self.owners.get(y * self.width + x).copied().unwrap_or(0);
        holds(self.bounds, x, y) && ![0, self.own].contains(&m())
    }

    /// Set to 0 (missing) the pixels of a chunk of bilinear reads that hold a reading another
    /// object explains: read `j` at `uv[j]` (`inside[j]`) interpolated the four pixels `px[·][j]`
    /// of the cell whose corner is `uv[j] − frac[j]`. A cheap test on the mask's box skips
    /// the reads far from every foreign reading.
    #[inline(always)]
    pub fn drop_foreign(
        &self,
        uv: &[Lane; 2],
        frac: &[Lane; 2],
        inside: &[bool],
        px: &mut [Lane; 4],
    ) {
        // A cell touches the box when its corner lies in the box widened by one up and left.
        let (x0, x1, y0, y1) = self.bounds;
        let reach = (x0.saturating_sub(1), x1, y0.saturating_sub(1), y1);
        for (j, _) in inside.iter().enumerate().filter(|(_, &i)| i) {
            let x = (uv[0][j] - frac[0][j]).round() as usize;
            let y = (uv[1][j] - frac[1][j]).round() as usize;
            if !holds(reach, x, y) {
                continue;
            }
            let corners = [(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)];
            for (c, (x, y)) in corners.into_iter().enumerate() {
                if self.foreign(x, y) {
                    px[c][j] = 0.0;
                }
            }
        }
    }
}

/// Samples nearer than this (m) are not splatted.
const MIN_Z: f64 = 1e-3;

/// A pixel box `[x0, x1) × [y0, y1)`.
type PixelBox = (usize, usize, usize, usize);

impl DepthOwnership {
    /// The ownership of `depth`'s readings among `objects`, each given by its samples in the
    /// camera frame (posed at its estimate; empty for an object without one). Only the readings
    /// in some other object's window are examined.
    pub fn new(
        depth: &ImageF32,
        cam: &Camera,
        objects: &[Vec<Point3<f64>>],
        params: &OwnershipParams,
    ) -> Self {
        if depth.data.len() < depth.width * depth.height {
            // A malformed image (the frame's check refuses it first): nobody owns anything.
            return Self::default();
        }
        let splats: Vec<Option<Splat>> = (objects.par_iter())
            .enumerate()
            .map(|(j, samples)| match j < SEVERAL as usize - 1 {
                true => Splat::new(samples, cam, depth, params.cell_px),
                false => None,
            })
            .collect();
        let windows: Vec<Option<PixelBox>> = (splats.iter())
            .map(|s| s.as_ref().map(|s| window(s.pixel_box(depth), depth)))
            .collect();
        // Per object `j`, side by side: the readings it explains in the other objects' windows,
        // and for each other object the box of those in its window.
        let claims: Vec<Claims> = (splats.par_iter().enumerate())
            .map(|(j, splat)| match splat {
                Some(splat) => claims(splat, depth, params.tolerance, &windows, j),
                None => (Vec::new(), vec![None; windows.len()]),
            })
            .collect();
        let mut owners = vec![0u8; depth.data.len()];
        let mut foreign: Vec<Option<PixelBox>> = vec![None; objects.len()];
        for (j, (claimed, boxes)) in claims.iter().enumerate() {
            let own = own_byte(j);
            for &i in claimed {
                let m = &mut owners[i];
                *m = if *m == 0 || *m == own { own } else { SEVERAL };
            }
            for (f, b) in foreign.iter_mut().zip(boxes) {
                *f = union(*f, *b);
            }
        }
        Self {
            owners: owners.into(),
            width: depth.width,
            foreign,
        }
    }

    /// Object `k`'s mask, or `None` when no reading in its window is another object's (or `k`
    /// is out of range).
    pub fn mask_of(&self, k: usize) -> Option<ForeignMask> {
        Some(ForeignMask {
            owners: self.owners.clone(),
            width: self.width,
            own: own_byte(k),
            bounds: (*self.foreign.get(k)?)?,
        })
    }
}

/// Object `k`'s owner byte (objects from the 255th on, never splatted, share [`SEVERAL`]).
fn own_byte(k: usize) -> u8 {
    (k + 1).min(SEVERAL as usize) as u8
}

/// An object's window: its splat's box `b` widened on every side by a quarter of its larger
/// side plus [`WINDOW_MARGIN_PX`], clamped to the image.
fn window((x0, x1, y0, y1): PixelBox, depth: &ImageF32) -> PixelBox {
    let grow = (x1 - x0).max(y1 - y0) / 4 + WINDOW_MARGIN_PX;
    let (x0, x1) = (x0.saturating_sub(grow), (x1 + grow).min(depth.width));
    let (y0, y1) = (y0.saturating_sub(grow), (y1 + grow).min(depth.height));
    (x0, x1, y0, y1)
}

/// The pixel indices (row order) of the readings one object explains in the other objects'
/// windows, and per object the box of those in its window (`None` for the object itself).
type Claims = (Vec<usize>, Vec<Option<PixelBox>>);

/// The [`Claims`] of `splat`, object `j`'s.
fn claims(
    splat: &Splat,
    depth: &ImageF32,
    tolerance: f64,
    windows: &[Option<PixelBox>],
    j: usize,
) -> Claims {
    let mut boxes = vec![None; windows.len()];
    let others: Vec<(usize, PixelBox)> = (windows.iter().enumerate())
        .filter_map(|(k, w)| (k != j).then_some((k, (*w)?)))
        .collect();
    let Some(hull) = others.iter().map(|&(_, w)| Some(w)).reduce(union).flatten() else {
        return (Vec::new(), boxes);
    };
    let mut out = Vec::new();
    splat.explained(depth, tolerance, hull, |i| {
        let (x, y) = (i % depth.width, i / depth.width);
        let mut any = false;
        for &(k, _) in others.iter().filter(|(_, w)| holds(*w, x, y)) {
            boxes[k] = Some(grow(boxes[k], x, y));
            any = true;
        }
        if any {
            out.push(i);
        }
    });
    (out, boxes)
}

/// The smallest box holding both (`None` when neither is given).
fn union(a: Option<PixelBox>, b: Option<PixelBox>) -> Option<PixelBox> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1), a.2.min(b.2), a.3.max(b.3))),
        (a, b) => a.or(b),
    }
}

/// Whether box `b` holds pixel `(x, y)`.
fn holds((x0, x1, y0, y1): PixelBox, x: usize, y: usize) -> bool {
    (x0..x1).contains(&x) && (y0..y1).contains(&y)
}

/// The box `b` grown to hold pixel `(x, y)` (just that pixel when `b` is `None`).
fn grow(b: Option<PixelBox>, x: usize, y: usize) -> PixelBox {
    match b {
        None => (x, x + 1, y, y + 1),
        Some((x0, x1, y0, y1)) => (x0.min(x), x1.max(x + 1), y0.min(y), y1.max(y + 1)),
    }
}

/// One object's samples splatted into a z-buffer of cells over its projected bounding box.
struct Splat {
    /// Column and row of the first cell.
    origin: (usize, usize),
    cols: usize,
    rows: usize,
    cell: usize,
    /// Nearest depth per cell, `∞` where no sample reaches.
    z: Vec<f64>,
}

impl Splat {
    /// The splat of `samples` (camera frame) on `depth`'s pixel grid; `None` when none projects
    /// onto the image.
    fn new(samples: &[Point3<f64>], cam: &Camera, depth: &ImageF32, cell: usize) -> Option<Self> {
        let cell = cell.max(1);
        let (w, h) = (depth.width as f64, depth.height as f64);
        let projected: Vec<(f64, f64, f64)> = (samples.iter())
            .filter(|q| q.z > MIN_Z)
            .map(|q| {
                let (u, v) = cam.project_xyz(&q.coords);
                (u, v, q.z)
            })
            .filter(|&(u, v, _)| u.is_finite() && v.is_finite())
            .collect();
        let inside =
            (projected.iter()).filter(|&&(u, v, _)| u >= 0.0 && v >= 0.0 && u < w && v < h);
        let (lo, hi) = inside.fold(
            (
                (f64::INFINITY, f64::INFINITY),
                (f64::NEG_INFINITY, f64::NEG_INFINITY),
            ),
            |(lo, hi), &(u, v, _)| ((lo.0.min(u), lo.1.min(v)), (hi.0.max(u), hi.1.max(v))),
        );
        if lo.0 > hi.0 {
            return None;
        }
        let n = projected.len() as f64;
        let gap = sample_gap(hi.0 - lo.0 + 1.0, hi.1 - lo.1 + 1.0, n);
        let reach = (gap / cell as f64).ceil() as usize;
        let c = cell as f64;
        let first = |x: f64| ((x / c) as usize).saturating_sub(reach);
        let origin = (first(lo.0), first(lo.1));
        let last = |x: f64, n: f64| ((x / c) as usize + reach).min((n / c).ceil() as usize - 1);
        let (cols, rows) = (last(hi.0, w) + 1 - origin.0, last(hi.1, h) + 1 - origin.1);
        let mut splat = Self {
            origin,
            cols,
            rows,
            cell,
            z: vec![f64::INFINITY; cols * rows],
        };
        for &(u, v, z) in &projected {
            splat.put(u / c, v / c, z, reach);
        }
        Some(splat)
    }

    /// Write `z` into the cells within `reach` of cell `(cu, cv)` (image cell coordinates),
    /// keeping the nearest.
    fn put(&mut self, cu: f64, cv: f64, z: f64, reach: usize) {
        let (r, o) = (reach as f64, self.origin);
        // The cells within reach, clamped to the grid in floats first (a sample far off the
        // grid, or not finite, gives no span, never a wrapped index).
        let span = |x: f64, o: usize, n: usize| {
            let (lo, hi) = (o as f64, (o + n) as f64 - 1.0);
            let (a, b) = ((x - r).floor(), (x + r).floor());
            (a <= hi && b >= lo).then(|| (a.max(lo) as usize - o, b.min(hi) as usize - o))
        };
        let (Some((u0, u1)), Some((v0, v1))) = (span(cu, o.0, self.cols), span(cv, o.1, self.rows))
        else {
            return;
        };
        for row in v0..=v1 {
            for cell in &mut self.z[row * self.cols + u0..=row * self.cols + u1] {
                *cell = cell.min(z);
            }
        }
    }

    /// The pixels its cells cover, clamped to `depth`.
    fn pixel_box(&self, depth: &ImageF32) -> PixelBox {
        let (c, (o0, o1)) = (self.cell, self.origin);
        let x1 = ((o0 + self.cols) * c).min(depth.width);
        let y1 = ((o1 + self.rows) * c).min(depth.height);
        (o0 * c, x1, o1 * c, y1)
    }

    /// Call `f` with the index of every pixel of `window` (within the splat's box) whose
    /// reading lies within `tolerance` of its cell's depth.
    fn explained(
        &self,
        depth: &ImageF32,
        tolerance: f64,
        window: PixelBox,
        mut f: impl FnMut(usize),
    ) {
        let (x0, x1, y0, y1) = self.pixel_box(depth);
        let (x0, x1) = (x0.max(window.0), x1.min(window.1));
        let (y0, y1) = (y0.max(window.2), y1.min(window.3));
        let c = self.cell;
        for y in y0..y1 {
            let row = &self.z[(y / c - self.origin.1) * self.cols..];
            let line = &depth.data[y * depth.width..(y + 1) * depth.width];
            let mut x = x0;
            while x < x1 {
                let (z, end) = (row[x / c - self.origin.0], ((x / c + 1) * c).min(x1));
                if z.is_finite() {
                    for (i, &d) in line[x..end].iter().enumerate() {
                        let d = d as f64;
                        if d > 0.0 && (d - z).abs() < tolerance {
                            f(y * depth.width + x + i);
                        }
                    }
                }
                x = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> Camera {
        Camera {
            fx: 500.0,
            fy: 500.0,
            cx: 80.0,
            cy: 60.0,
            width: 160,
            height: 120,
        }
    }

    /// Samples every 2 mm over the rectangle `[x0, x1] × [y0, y1]` of the plane at depth `z`.
    fn plane(x: (f64, f64), y: (f64, f64), z: f64) -> Vec<Point3<f64>> {
        let steps = |(a, b): (f64, f64)| {
            (0..=((b - a) / 0.002).round() as usize).map(move |i| a + 0.002 * i as f64)
        };
        steps(y)
            .flat_map(|yy| steps(x).map(move |xx| Point3::new(xx, yy, z)))
            .collect()
    }

    /// A rectangle `[x0, x1] × [y0, y1]` of the plane at depth `z`, as `((x0, x1), (y0, y1), z)`.
    type Rect = ((f64, f64), (f64, f64), f64);

    /// The depth the camera sees of `planes` (nearest wins), 0 where none is.
    fn seen(planes: &[Rect]) -> ImageF32 {
        let c = cam();
        let (w, h) = (c.width as usize, c.height as usize);
        let mut data = vec![0.0f32; w * h];
        for (i, d) in data.iter_mut().enumerate() {
            let (u, v) = ((i % w) as f64, (i / w) as f64);
            for &(x, y, z) in planes {
                let (px, py) = ((u - c.cx) * z / c.fx, (v - c.cy) * z / c.fy);
                let on = px >= x.0 && px <= x.1 && py >= y.0 && py <= y.1;
                if on && (*d == 0.0 || (z as f32) < *d) {
                    *d = z as f32;
                }
            }
        }
        ImageF32 {
            width: w,
            height: h,
            data,
        }
    }

    /// Object 0, a board at 1 m over most of the image (pixel columns 40–130); object 1, a card at 0.8 m in front of
    /// its right half (pixels u 80–117, v 41–79); an untracked occluder at 0.5 m (u 55–65,
    /// v 55–65); object 2, a chip at 2 m in the top-left corner (pixels 2–10).
    fn scene() -> (ImageF32, Vec<Vec<Point3<f64>>>) {
        let board = ((-0.08, 0.1), (-0.08, 0.08), 1.0);
        let card = ((0.0, 0.06), (-0.03, 0.03), 0.8);
        let occluder = ((-0.025, -0.015), (-0.005, 0.005), 0.5);
        let chip = ((-0.312, -0.28), (-0.232, -0.2), 2.0);
        let objects = [board, card, chip].map(|(x, y, z)| plane(x, y, z)).to_vec();
        (seen(&[board, card, occluder, chip]), objects)
    }

    #[test]
    fn a_reading_on_another_objects_surface_is_foreign_and_its_own_is_not() {
        let (mut depth, objects) = scene();
        // A hole in the depth on the card's face, inside the board's foreign box.
        depth.data[60 * 160 + 110] = 0.0;
        let own = DepthOwnership::new(&depth, &cam(), &objects, &OwnershipParams::default());
        let (board, card) = (own.mask_of(0).unwrap(), own.mask_of(1).unwrap());
        // The card's face, in front of the board: the card's, foreign to the board.
        assert!(board.foreign(100, 60) && !card.foreign(100, 60));
        // The board beside the card (within the card's window): the board's.
        assert!(card.foreign(70, 60) && !board.foreign(70, 60));
        // The untracked occluder explains itself to nobody: both objects read it.
        assert!(!board.foreign(60, 60) && !card.foreign(60, 60));
        // Missing depth is nobody's, also where the card's surface is.
        assert!(board.foreign(109, 60) && board.foreign(111, 60));
        assert!(!board.foreign(110, 60) && !card.foreign(110, 60));
    }

    #[test]
    fn an_object_with_no_other_objects_reading_near_it_gets_no_mask() {
        let (depth, objects) = scene();
        let own = DepthOwnership::new(&depth, &cam(), &objects, &OwnershipParams::default());
        // The chip's window (its splat's 16-pixel box widened by 20) ends before the board's first
        // column (u = 40).
        assert!(own.mask_of(2).is_none());
        assert!(own.mask_of(3).is_none(), "out of range");
        // Alone, nothing is foreign.
        let alone = DepthOwnership::new(&depth, &cam(), &objects[..1], &OwnershipParams::default());
        assert!(alone.mask_of(0).is_none());
    }

    #[test]
    fn a_reading_two_objects_explain_is_foreign_to_both() {
        // Two boards over the same pixels at the same depth (objects in contact, say).
        let (depth, mut objects) = scene();
        objects[1] = objects[0].clone();
        let own = DepthOwnership::new(&depth, &cam(), &objects, &OwnershipParams::default());
        let (a, b) = (own.mask_of(0).unwrap(), own.mask_of(1).unwrap());
        assert!(a.foreign(70, 60) && b.foreign(70, 60));
    }
}
