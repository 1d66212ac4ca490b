//! Image messages and their decoding: colour to 8-bit RGB, depth to metres (keeping the raw 16-bit
//! values when recorded so), every failure naming the file and topic.

use super::ros_msgs::{CompressedImage, Header, Image, RosMessage, COMPRESSED_DEPTH_HEADER_LEN};
use crate::domains::pose::frame::ImageF32;
use crate::{Error, Result};
use std::path::Path;

/// An image message as recorded: raw or compressed.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageMsg {
    /// `sensor_msgs/msg/Image`.
    Raw(Image),
    /// `sensor_msgs/msg/CompressedImage`.
    Compressed(CompressedImage),
}

impl ImageMsg {
    /// Header stamp, ns.
    pub fn stamp_ns(&self) -> u64 {
        self.header().stamp_ns
    }

    /// The message header.
    pub fn header(&self) -> &Header {
        match self {
            ImageMsg::Raw(m) => &m.header,
            ImageMsg::Compressed(m) => &m.header,
        }
    }

    /// The message's ROS type name.
    pub fn ros_type(&self) -> &'static str {
        match self {
            ImageMsg::Raw(_) => Image::NAME,
            ImageMsg::Compressed(_) => CompressedImage::NAME,
        }
    }

    /// The message's CDR payload.
    pub fn to_cdr(&self) -> Vec<u8> {
        match self {
            ImageMsg::Raw(m) => m.to_cdr(),
            ImageMsg::Compressed(m) => m.to_cdr(),
        }
    }

    /// Whether this carries depth (`16UC1`, `32FC1`, `mono16`, or a `compressedDepth` codec).
    pub fn is_depth(&self) -> bool {
        match self {
            ImageMsg::Raw(m) => matches!(m.encoding.as_str(), "16UC1" | "32FC1" | "mono16"),
            ImageMsg::Compressed(m) => m.format.contains("compressedDepth"),
        }
    }

    /// `encoding` or `format`, for messages.
    pub fn describe(&self) -> String {
        match self {
            ImageMsg::Raw(m) => format!("Image encoding '{}'", m.encoding),
            ImageMsg::Compressed(m) => format!("CompressedImage format '{}'", m.format),
        }
    }
}

/// The encoded image bytes of a CompressedImage (after the `compressedDepth` header, if any).
pub fn compressed_payload<'a>(
    path: &Path,
    topic: &str,
    m: &'a CompressedImage,
) -> Result<&'a [u8]> {
    if !m.format.contains("compressedDepth") {
        return Ok(&m.data);
    }
    if m.format.contains("rvl") {
        return Err(Error::format(
            path,
            format!(
                "topic '{topic}': compressedDepth format '{}' is not supported (png only)",
                m.format
            ),
        ));
    }
    m.data.get(COMPRESSED_DEPTH_HEADER_LEN..).ok_or_else(|| {
        Error::format(
            path,
            format!("topic '{topic}': compressedDepth payload shorter than its 12-byte header"),
        )
    })
}

/// Decodes encoded image bytes (PNG, JPEG), naming the topic on failure.
fn decode_bytes(path: &Path, topic: &str, data: &[u8]) -> Result<image::DynamicImage> {
    image::load_from_memory(data)
        .map_err(|e| Error::format(path, format!("topic '{topic}': cannot decode image: {e}")))
}

/// Checks that a raw image holds `height` rows of `step ≥ width·bpp` bytes.
fn check_raw(path: &Path, topic: &str, m: &Image, bpp: usize) -> Result<()> {
    let row = m.width as usize * bpp;
    let need = (m.step as usize).saturating_mul(m.height.saturating_sub(1) as usize) + row;
    if (m.step as usize) < row || m.data.len() < need {
        return Err(Error::format(
            path,
            format!(
                "topic '{topic}': {} image {}x{} with step {} needs {need} bytes, has {}",
                m.encoding,
                m.width,
                m.height,
                m.step,
                m.data.len()
            ),
        ));
    }
    Ok(())
}

/// Colour as 8-bit RGB from `rgb8`, `bgr8`, `rgba8`, `bgra8`, `mono8`, or a PNG / JPEG.
pub fn decode_color(path: &Path, topic: &str, msg: &ImageMsg) -> Result<image::RgbImage> {
    let m = match msg {
        ImageMsg::Compressed(c) => {
            return Ok(decode_bytes(path, topic, compressed_payload(path, topic, c)?)?.to_rgb8())
        }
        ImageMsg::Raw(m) => m,
    };
    // (bytes per pixel, byte offsets of R, G, B)
    let (bpp, [r, g, b]) = match m.encoding.as_str() {
        "rgb8" => (3, [0, 1, 2]),
        "bgr8" => (3, [2, 1, 0]),
        "rgba8" => (4, [0, 1, 2]),
        "bgra8" => (4, [2, 1, 0]),
        "mono8" | "8UC1" => (1, [0, 0, 0]),
        other => {
            return Err(Error::format(
                path,
                format!("topic '{topic}': colour encoding '{other}' is not supported (rgb8, bgr8, rgba8, bgra8, mono8)"),
            ))
        }
    };
    check_raw(path, topic, m, bpp)?;
    let (w, h) = (m.width as usize, m.height as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in m.data.chunks((m.step as usize).max(1)).take(h) {
        let row = &row[..w * bpp];
        match (bpp, [r, g, b]) {
            (3, [0, 1, 2]) => rgb.extend_from_slice(row),
            _ => rgb.extend(row.chunks_exact(bpp).flat_map(|p| [p[r], p[g], p[b]])),
        }
    }
    image::RgbImage::from_raw(m.width, m.height, rgb)
        .ok_or_else(|| Error::format(path, format!("topic '{topic}': colour buffer size")))
}

/// Depth as metres (and the raw 16-bit values when recorded so) from `16UC1` / `mono16`
/// (`raw · depth_scale` mm), `32FC1` (metres; NaN, ∞ and ≤ 0 become 0 = missing), or a
/// `compressedDepth` PNG (16UC1 raw, or 32FC1 inverse-depth quantised).
pub fn decode_depth(
    path: &Path,
    topic: &str,
    msg: &ImageMsg,
    depth_scale: f64,
) -> Result<(ImageF32, Option<Vec<u16>>)> {
    let k = depth_scale * 1e-3; // as bop::read_depth_png, so both readers give the same f32
    let from_raw = |w: u32, h: u32, raw: Vec<u16>| {
        let data = raw.iter().map(|&r| (r as f64 * k) as f32).collect();
        (
            ImageF32 {
                width: w as usize,
                height: h as usize,
                data,
            },
            Some(raw),
        )
    };
    match msg {
        ImageMsg::Raw(m) if matches!(m.encoding.as_str(), "16UC1" | "mono16") => {
            check_raw(path, topic, m, 2)?;
            let mut raw = Vec::with_capacity(m.width as usize * m.height as usize);
            for y in 0..m.height as usize {
                let row = &m.data[y * m.step as usize..][..m.width as usize * 2];
                raw.extend(row.chunks_exact(2).map(|b| {
                    let b = [b[0], b[1]];
                    if m.is_bigendian != 0 {
                        u16::from_be_bytes(b)
                    } else {
                        u16::from_le_bytes(b)
                    }
                }));
            }
            Ok(from_raw(m.width, m.height, raw))
        }
        ImageMsg::Raw(m) if m.encoding == "32FC1" => {
            check_raw(path, topic, m, 4)?;
            let mut data = Vec::with_capacity(m.width as usize * m.height as usize);
            for y in 0..m.height as usize {
                let row = &m.data[y * m.step as usize..][..m.width as usize * 4];
                data.extend(row.chunks_exact(4).map(|b| {
                    let b = [b[0], b[1], b[2], b[3]];
                    let d = if m.is_bigendian != 0 {
                        f32::from_be_bytes(b)
                    } else {
                        f32::from_le_bytes(b)
                    };
                    if d.is_finite() && d > 0.0 {
                        d
                    } else {
                        0.0
                    }
                }));
            }
            Ok((
                ImageF32 {
                    width: m.width as usize,
                    height: m.height as usize,
                    data,
                },
                None,
            ))
        }
        ImageMsg::Raw(m) => Err(Error::format(
            path,
            format!(
                "topic '{topic}': depth encoding '{}' is not supported (16UC1, mono16, 32FC1)",
                m.encoding
            ),
        )),
        ImageMsg::Compressed(c) => {
            let img = decode_bytes(path, topic, compressed_payload(path, topic, c)?)?;
            let image::DynamicImage::ImageLuma16(q) = img else {
                return Err(Error::format(
                    path,
                    format!(
                        "topic '{topic}': compressed depth '{}' is not a 16-bit single-channel PNG",
                        c.format
                    ),
                ));
            };
            let (w, h) = q.dimensions();
            if !c.format.starts_with("32FC1") {
                return Ok(from_raw(w, h, q.into_raw()));
            }
            // Inverse-depth quantisation: d = A / (q − B).
            let f = |i: usize| {
                f32::from_le_bytes([c.data[i], c.data[i + 1], c.data[i + 2], c.data[i + 3]])
            };
            let (a, b) = (f(4), f(8));
            let data = q
                .as_raw()
                .iter()
                .map(|&v| if v == 0 { 0.0 } else { a / (v as f32 - b) })
                .map(|d| if d.is_finite() && d > 0.0 { d } else { 0.0 })
                .collect();
            Ok((
                ImageF32 {
                    width: w as usize,
                    height: h as usize,
                    data,
                },
                None,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::recording::ros_msgs::Header;

    /// A 2×2 raw image with rows padded to `step` bytes by 0xEE (the last row unpadded, as
    /// [`check_raw`] allows).
    fn raw(encoding: &str, bpp: usize, step: usize, pixels: [[u8; 4]; 4]) -> ImageMsg {
        let mut data = Vec::new();
        for row in pixels.chunks(2) {
            data.resize(data.len().next_multiple_of(step), 0xEE);
            row.iter().for_each(|p| data.extend_from_slice(&p[..bpp]));
        }
        ImageMsg::Raw(Image {
            header: Header::new(0, "cam"),
            height: 2,
            width: 2,
            encoding: encoding.into(),
            is_bigendian: 0,
            step: step as u32,
            data,
        })
    }

    #[test]
    fn every_colour_layout_gives_the_same_rgb_with_or_without_row_padding() {
        let rgb = [[1, 2, 3, 0], [4, 5, 6, 0], [7, 8, 9, 0], [10, 11, 12, 0]];
        let bgr = rgb.map(|[r, g, b, a]| [b, g, r, a]);
        let want: Vec<u8> = rgb.iter().flat_map(|p| p[..3].to_vec()).collect();
        let path = Path::new("t.mcap");
        for (enc, bpp, px) in [
            ("rgb8", 3, rgb),
            ("bgr8", 3, bgr),
            ("rgba8", 4, rgb),
            ("bgra8", 4, bgr),
        ] {
            for step in [2 * bpp, 2 * bpp + 3] {
                let got = decode_color(path, "/c", &raw(enc, bpp, step, px)).unwrap();
                assert_eq!(got.as_raw(), &want, "{enc} step {step}");
            }
        }
        for step in [2, 5] {
            let mono = decode_color(path, "/c", &raw("mono8", 1, step, rgb)).unwrap();
            assert_eq!(mono.as_raw(), &[1, 1, 1, 4, 4, 4, 7, 7, 7, 10, 10, 10]);
        }
    }

    #[test]
    fn a_colour_buffer_shorter_than_its_rows_is_refused_by_name() {
        let ImageMsg::Raw(mut m) = raw("rgb8", 3, 8, [[0; 4]; 4]) else {
            unreachable!()
        };
        m.data.pop();
        let err = decode_color(Path::new("t.mcap"), "/c", &ImageMsg::Raw(m)).unwrap_err();
        assert!(
            err.to_string().contains("'/c'") && err.to_string().contains("needs 14 bytes, has 13")
        );
    }
}
