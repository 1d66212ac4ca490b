//! The one RGB-D frame type: colour, depth registered to it (metres), intrinsics and the capture
//! stamp — what the BOP reader, an MCAP recording and the pipeline produce, and what every
//! modality reads. The grey image an RGB modality needs is derived from the colour once, on first
//! use, and shared by every modality and object of the frame.

use crate::core::error::{Error, Result};
use crate::core::geometry::Camera;
use crate::domains::pose::modality::ownership::DepthOwnership;
use std::sync::{Arc, OnceLock};

/// A single-channel `f32` image (row-major, `data[y·width + x]`), shared between modalities of a frame.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageF32 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major pixel values.
    pub data: Vec<f32>,
}

/// A value and its image-plane gradient `(f, ∂f/∂u, ∂f/∂v)` from bilinear interpolation.
pub type Sample = (f64, f64, f64);

impl ImageF32 {
    /// Error unless the image is non-empty and holds exactly `width × height` pixels (the
    /// invariant every accessor relies on); `what` names the image in the message.
    pub fn check(&self, what: &str) -> Result<()> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 || w.checked_mul(h) != Some(self.data.len()) {
            return Err(Error::Shape {
                what: format!("{what} image pixels"),
                expected: format!("{w}x{h} = {} (non-empty)", w.saturating_mul(h)),
                got: self.data.len().to_string(),
            });
        }
        Ok(())
    }

    /// Pixel `(x, y)`, no bounds check beyond the slice's own.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// The four pixels around `(u, v)` (pixel centres at integer coordinates) and the fractions,
    /// or `None` outside the image.
    #[inline]
    pub fn cell(&self, u: f64, v: f64) -> Option<([f64; 4], f64, f64)> {
        // `u < width − 1` ⇔ `⌊u⌋ + 1 < width`; for `u ≥ 0` truncation is the floor, without a
        // call to `floor` (not inlined on baseline x86-64: 6 % of a tracking run), and a huge or
        // NaN coordinate is refused before any conversion.
        let (w1, h1) = ((self.width as f64) - 1.0, (self.height as f64) - 1.0);
        if !(u >= 0.0 && v >= 0.0 && u < w1 && v < h1) {
            return None;
        }
        let (x0, y0) = (u as usize, v as usize);
        let (i, w) = (y0 * self.width + x0, self.width);
        // One bounds check for the four pixels: the slice is known to hold `w + 2` values.
        let px = &self.data[i..i + w + 2];
        let p = [px[0], px[1], px[w], px[w + 1]];
        Some((p.map(f64::from), u - x0 as f64, v - y0 as f64))
    }

    /// Bilinear interpolation `f(u,v) = (1−b)[(1−a)p₀₀ + a p₁₀] + b[(1−a)p₀₁ + a p₁₁]` with its
    /// derivatives, or `None` outside the image or when `valid` rejects the four pixels.
    #[inline]
    pub fn bilinear(&self, u: f64, v: f64, valid: impl Fn(&[f64; 4]) -> bool) -> Option<Sample> {
        let (p, a, b) = self.cell(u, v)?;
        if !valid(&p) {
            return None;
        }
        Some(Self::interpolate(&p, a, b))
    }

    /// Bilinear interpolation of the four pixels of [`ImageF32::cell`] at fractions `(a, b)`,
    /// with its derivatives.
    #[inline]
    pub fn interpolate(p: &[f64; 4], a: f64, b: f64) -> Sample {
        let top = p[0] + a * (p[1] - p[0]);
        let bottom = p[2] + a * (p[3] - p[2]);
        let du = (1.0 - b) * (p[1] - p[0]) + b * (p[3] - p[2]);
        (top + b * (bottom - top), du, bottom - top)
    }
}

/// A shared reference-counted image, as handed to modalities.
pub type SharedImage = Arc<ImageF32>;

impl ImageF32 {
    /// A `width × height` image of zeros (for depth: every pixel missing).
    pub fn zeros(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0.0; width * height],
        }
    }

    /// The depth at pixel `(x, y)` in metres; `None` outside the image or where it is missing (0).
    pub fn depth_at(&self, x: usize, y: usize) -> Option<f32> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let d = self.data[y * self.width + x];
        (d > 0.0).then_some(d)
    }

    /// The luma `Y = (0.299 R + 0.587 G + 0.114 B) / 255 ∈ [0, 1]` of an 8-bit colour image.
    pub fn grey_from_rgb(rgb: &image::RgbImage) -> Self {
        let (w, h) = rgb.dimensions();
        let data = rgb
            .pixels()
            .map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0)
            .collect();
        Self {
            width: w as usize,
            height: h as usize,
            data,
        }
    }
}

/// One RGB-D observation. Either image may be absent (a depth-only sensor, a colour-only
/// recording); a modality that needs the missing one refuses the frame with an error naming it.
#[derive(Clone, Debug)]
pub struct RgbdFrame {
    /// Image id (the BOP image id, or the frame's index in a recording).
    pub im_id: u32,
    /// Capture stamp in seconds on the sensor's clock (a recording's header stamp), when known.
    /// BOP folders carry none; the pipeline then stamps frames when its source emits them.
    pub stamp: Option<f64>,
    /// Intrinsics and size of both images.
    pub camera: Camera,
    /// Colour, 8-bit RGB. The grey image is derived from it on first use and kept: set the
    /// colour before a modality reads the frame (or build a new frame), not after.
    pub rgb: Option<Arc<image::RgbImage>>,
    /// Depth registered to the colour camera, metres (0 = missing; the tracker reads values
    /// that are not finite or are negative as missing too: [`RgbdFrame::with_valid_depth`]).
    pub depth: Option<SharedImage>,
    /// Set by a tracker of several objects for its depth term alone: which tracked object's
    /// estimate explains each reading near each object ([`DepthOwnership`]: the frame's owner
    /// bytes and a box per object), which that object's depth term then reads as missing.
    /// `None` from the readers, and then every object reads `depth` whole.
    pub(crate) ownership: Option<Arc<DepthOwnership>>,
    grey: OnceLock<SharedImage>,
}

/// Why a colour modality cannot run on a frame without colour, and what to use instead.
const NO_RGB: &str = "frame has no RGB image (for depth-only data use `--modalities depth`, or \
                      `modalities = [\"depth\"]` in a launch file)";

impl RgbdFrame {
    /// A frame of `camera` holding `rgb` and `depth` (sizes checked by the readers that decode them).
    pub fn new(
        im_id: u32,
        camera: Camera,
        rgb: Option<image::RgbImage>,
        depth: Option<ImageF32>,
    ) -> Self {
        Self {
            im_id,
            stamp: None,
            camera,
            rgb: rgb.map(Arc::new),
            depth: depth.map(Arc::new),
            ownership: None,
            grey: OnceLock::new(),
        }
    }

    /// The same frame with capture stamp `seconds`.
    pub fn with_stamp(mut self, seconds: f64) -> Self {
        self.stamp = Some(seconds);
        self
    }

    /// The same frame with the ownership of its depth readings among tracked objects.
    pub(crate) fn with_ownership(mut self, ownership: DepthOwnership) -> Self {
        self.ownership = Some(Arc::new(ownership));
        self
    }

    /// Error unless the camera is a valid pinhole ([`Camera::from_k`]), the stamp (when given) is
    /// finite, and each image present is well formed and as large as the camera says.
    pub fn check(&self) -> Result<()> {
        let c = &self.camera;
        Camera::from_k(&c.k_row_major(), c.width, c.height)?;
        if let Some(t) = self.stamp.filter(|t| !t.is_finite()) {
            return Err(Error::param("frame stamp", t, "must be finite (seconds)"));
        }
        let (w, h) = (self.camera.width as usize, self.camera.height as usize);
        let size = |what: &str, (iw, ih): (usize, usize)| {
            if (iw, ih) == (w, h) {
                return Ok(());
            }
            let why = format!("is {iw}x{ih}, the camera says {w}x{h}");
            Err(Error::param("frame", what, why))
        };
        if let Some(d) = &self.depth {
            d.check("depth")?;
            size("depth", (d.width, d.height))?;
        }
        if let Some(rgb) = &self.rgb {
            size("rgb", (rgb.width() as usize, rgb.height() as usize))?;
        }
        Ok(())
    }

    /// The same frame with every depth value that is not finite, or is negative, set to 0
    /// (missing): ROS REP 118 marks invalid pixels of a `32FC1` image NaN or ±∞. `None` when the
    /// depth has no such value (or there is no depth).
    pub fn with_valid_depth(&self) -> Option<RgbdFrame> {
        let valid = |v: &f32| v.is_finite() && *v >= 0.0;
        let depth = self.depth.as_ref().filter(|d| !d.data.iter().all(valid))?;
        let mut clean = ImageF32::clone(depth);
        clean
            .data
            .iter_mut()
            .filter(|v| !valid(v))
            .for_each(|v| *v = 0.0);
        Some(RgbdFrame {
            depth: Some(Arc::new(clean)),
            ..self.clone()
        })
    }

    /// The depth image, or an error naming the modality `who` that needs it.
    pub fn need_depth(&self, who: &str) -> Result<SharedImage> {
        (self.depth.clone())
            .ok_or_else(|| Error::param("modalities", who, "frame has no depth image"))
    }

    /// The colour image, or an error naming the modality `who` that needs it.
    pub fn need_rgb(&self, who: &str) -> Result<Arc<image::RgbImage>> {
        (self.rgb.clone()).ok_or_else(|| Error::param("modalities", who, NO_RGB))
    }

    /// The grey image (computed from the colour on first use), or an error naming the modality
    /// `who` that needs it.
    pub fn need_grey(&self, who: &str) -> Result<SharedImage> {
        let rgb = (self.rgb.as_ref()).ok_or_else(|| Error::param("modalities", who, NO_RGB))?;
        Ok(self
            .grey
            .get_or_init(|| Arc::new(ImageF32::grey_from_rgb(rgb)))
            .clone())
    }
}
