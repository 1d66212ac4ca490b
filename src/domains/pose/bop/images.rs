//! Frame images: decoding RGB and 16-bit depth PNGs (depth scaled to metres) and writing them.

use super::*;

/// Opens and decodes an image file, naming it on failure.
pub(super) fn decode_image(path: &Path) -> Result<image::DynamicImage> {
    image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| Error::format(path, format!("cannot decode image: {e}")))
}

/// Reads a 16-bit depth PNG as metres: `d = raw · depth_scale / 1000` (0 stays 0 = missing).
pub fn read_depth_png(path: impl AsRef<Path>, depth_scale: f64) -> Result<ImageF32> {
    let path = path.as_ref();
    let image::DynamicImage::ImageLuma16(raw) = decode_image(path)? else {
        return Err(Error::format(
            path,
            "depth image must be a 16-bit single-channel PNG",
        ));
    };
    let k = depth_scale * MM;
    Ok(ImageF32 {
        width: raw.width() as usize,
        height: raw.height() as usize,
        data: raw
            .as_raw()
            .iter()
            .map(|&r| (r as f64 * k) as f32)
            .collect(),
    })
}

/// Writes a depth map as a 16-bit PNG with `raw = round(d · 1000 / depth_scale)`; rejects negative,
/// non-finite or too-large depths (naming the pixel).
pub fn write_depth_png(path: impl AsRef<Path>, depth: &ImageF32, depth_scale: f64) -> Result<()> {
    let path = path.as_ref();
    if !(depth_scale.is_finite() && depth_scale > 0.0) {
        return Err(Error::param("depth_scale", depth_scale, "must be positive"));
    }
    depth.check("depth")?;
    let too_large = |_| Error::param("depth image width", depth.width, "too large for a PNG");
    let (w, h) = (
        u32::try_from(depth.width).map_err(too_large)?,
        u32::try_from(depth.height).map_err(too_large)?,
    );
    let mut raw = Vec::with_capacity(depth.data.len());
    for (i, &d) in depth.data.iter().enumerate() {
        let r = (d as f64 / (depth_scale * MM)).round();
        if !(0.0..=u16::MAX as f64).contains(&r) {
            let (x, y) = (i % depth.width, i / depth.width);
            return Err(Error::param(
                format!("depth at pixel ({x}, {y})"),
                d,
                "not representable at this depth_scale",
            ));
        }
        raw.push(r as u16);
    }
    let img = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(w, h, raw)
        .ok_or_else(|| Error::format(path, "depth buffer size mismatch"))?;
    img.save(path)
        .map_err(|e| Error::format(path, format!("cannot write PNG: {e}")))
}

/// Writes an RGB PNG.
pub fn write_rgb_png(path: impl AsRef<Path>, rgb: &image::RgbImage) -> Result<()> {
    let path = path.as_ref();
    rgb.save(path)
        .map_err(|e| Error::format(path, format!("cannot write PNG: {e}")))
}
