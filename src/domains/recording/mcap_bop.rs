//! `hdpf dataset convert`: a BOP scene folder ⇄ an MCAP recording, lossless both ways.
//!
//! The topics written are listed in [`crate::domains::recording`]. Lossless means: the same PNG
//! pixel values (with the default `--color png` / `--depth png` the very file bytes), and the same
//! `scene_camera.json` / `scene_gt.json` numbers — this module reads those files' numbers as they
//! are (row-major rotations, millimetres) rather than through [`crate::domains::pose::bop`]'s
//! metre/quaternion types, which round at the last bit; the scene's structure is still checked by
//! [`BopDataset::scene`].

use super::images::{compressed_payload, decode_color, decode_depth, ImageMsg};
use super::mcap_read::{open_recording, ReadOptions};
use super::ros_msgs::{
    BopFrame, BopObject, CameraInfo, CompressedImage, Header, Image, RosMessage,
    COMPRESSED_DEPTH_HEADER_LEN,
};
use crate::domains::pose::bop::{self, BopDataset};
use crate::{Error, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The optical frame id of every image written.
pub const FRAME_ID: &str = "camera_color_optical_frame";
/// Colour topic, `--color png`.
pub const COLOR_PNG_TOPIC: &str = "/camera/color/image_raw/compressed";
/// Colour topic, `--color raw`.
pub const COLOR_RAW_TOPIC: &str = "/camera/color/image_raw";
/// camera_info topic of the colour camera.
pub const CAMERA_INFO_TOPIC: &str = "/camera/color/camera_info";
/// Depth topic, `--depth raw`.
pub const DEPTH_RAW_TOPIC: &str = "/camera/aligned_depth_to_color/image_raw";
/// Depth topic, `--depth png`.
pub const DEPTH_PNG_TOPIC: &str = "/camera/aligned_depth_to_color/image_raw/compressedDepth";
/// Our topic.
pub const BOP_FRAME_TOPIC: &str = "/hdpf/bop_frame";
/// The `format` of a depth PNG behind the compressedDepth header.
const COMPRESSED_DEPTH_FORMAT: &str = "16UC1; compressedDepth png";
/// PNG file signature.
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// How colour is stored in the recording.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    /// `CompressedImage` `png` carrying the BOP file's bytes unchanged.
    Png,
    /// `Image` `rgb8` (larger; for tools that do not decode PNG).
    Raw,
}

/// How depth is stored in the recording.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthMode {
    /// `Image` `16UC1` with the raw BOP values (what camera drivers publish).
    Raw,
    /// `CompressedImage` `16UC1; compressedDepth png` carrying the BOP file's bytes unchanged.
    Png,
}

/// MCAP chunk compression.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCompression {
    /// zstd (rosbag2's choice).
    Zstd,
    /// lz4 frames.
    Lz4,
    /// Uncompressed chunks.
    None,
}

/// `hdpf dataset convert --from … --to …`: the direction follows from which side is a `.mcap` file.
#[derive(clap::Args, Debug, Clone)]
pub struct ConvertArgs {
    /// A BOP scene folder (`<root>/<split>/<scene:06>`, e.g. ycbv-mini/test/000049) or an MCAP file.
    #[arg(long)]
    pub from: PathBuf,
    /// The MCAP file to write (from a scene) or the BOP scene folder to write (from an MCAP file).
    #[arg(long)]
    pub to: PathBuf,
    /// Colour storage in the MCAP file.
    #[arg(long, value_enum, default_value_t = ColorMode::Png)]
    pub color: ColorMode,
    /// Depth storage in the MCAP file.
    #[arg(long, value_enum, default_value_t = DepthMode::Raw)]
    pub depth: DepthMode,
    /// Frame rate for the stamps `im_id · 10⁹ / fps` ns (BOP ships no timestamps).
    #[arg(long, default_value_t = 30.0)]
    pub fps: f64,
    /// MCAP chunk compression.
    #[arg(long, value_enum, default_value_t = ChunkCompression::Zstd)]
    pub compression: ChunkCompression,
}

impl ConvertArgs {
    /// Arguments for converting `from` to `to` with the defaults.
    pub fn new(from: impl Into<PathBuf>, to: impl Into<PathBuf>) -> ConvertArgs {
        ConvertArgs {
            from: from.into(),
            to: to.into(),
            color: ColorMode::Png,
            depth: DepthMode::Raw,
            fps: 30.0,
            compression: ChunkCompression::Zstd,
        }
    }
}

/// What a conversion did.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertSummary {
    /// Frames written.
    pub frames: usize,
    /// Colour images of an MCAP source left out because no depth image was within the pairing
    /// tolerance (0 for a BOP source).
    pub unpaired: usize,
    /// Source.
    pub from: PathBuf,
    /// Destination.
    pub to: PathBuf,
    /// Bytes written (the MCAP file, or the scene folder's files).
    pub bytes: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl std::fmt::Display for ConvertSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "converted {} frames: {} -> {} ({:.1} MB, {:.2} s)",
            self.frames,
            self.from.display(),
            self.to.display(),
            self.bytes as f64 / 1e6,
            self.seconds
        )?;
        if self.unpaired > 0 {
            write!(
                f,
                "; {} colour images without a depth image were left out",
                self.unpaired
            )?;
        }
        Ok(())
    }
}

/// Whether `p` names an MCAP file (by its extension).
fn is_mcap(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mcap"))
}

/// Runs `hdpf dataset convert`, printing the summary.
pub fn run_convert(args: &ConvertArgs) -> Result<ConvertSummary> {
    let start = Instant::now();
    let (frames, unpaired) = match (is_mcap(&args.from), is_mcap(&args.to)) {
        (false, true) => (bop_to_mcap(args)?, 0),
        (true, false) => mcap_to_bop(&args.from, &args.to)?,
        _ => {
            return Err(Error::param(
                "--from/--to",
                format!("{} / {}", args.from.display(), args.to.display()),
                "exactly one side must be a .mcap file (the other a BOP scene folder)",
            ))
        }
    };
    let summary = ConvertSummary {
        frames,
        unpaired,
        from: args.from.clone(),
        to: args.to.clone(),
        bytes: disk_size(&args.to),
        seconds: start.elapsed().as_secs_f64(),
    };
    crate::outln!("{summary}");
    Ok(summary)
}

/// Bytes of a file, or of the files below a folder.
fn disk_size(p: &Path) -> u64 {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| disk_size(&e.path()))
            .sum(),
        Err(_) => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Writing MCAP

/// An MCAP writer for ROS 2 messages: `ros2` profile, `ros2msg` schemas, CDR channels.
pub struct RosMcapWriter {
    path: PathBuf,
    writer: mcap::Writer<BufWriter<File>>,
    channels: BTreeMap<String, u16>,
    sequence: u32,
}

impl RosMcapWriter {
    /// Creates `path` with chunks compressed by `compression`.
    pub fn create(path: impl AsRef<Path>, compression: ChunkCompression) -> Result<RosMcapWriter> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let compression = match compression {
            ChunkCompression::Zstd => Some(mcap::Compression::Zstd),
            ChunkCompression::Lz4 => Some(mcap::Compression::Lz4),
            ChunkCompression::None => None,
        };
        let writer = mcap::WriteOptions::new()
            .profile("ros2")
            .library(concat!("hdpf ", env!("CARGO_PKG_VERSION")))
            .compression(compression)
            .create(BufWriter::new(file))
            .map_err(|e| Error::format(&path, format!("cannot start MCAP file: {e}")))?;
        Ok(RosMcapWriter {
            path,
            writer,
            channels: BTreeMap::new(),
            sequence: 0,
        })
    }

    /// Appends `msg` on `topic` with log and publish time `stamp_ns`.
    pub fn write<M: RosMessage>(&mut self, topic: &str, stamp_ns: u64, msg: &M) -> Result<()> {
        let err = |e: mcap::McapError| Error::format(&self.path, format!("topic '{topic}': {e}"));
        let channel_id = match self.channels.get(topic) {
            Some(&id) => id,
            None => {
                let schema = self
                    .writer
                    .add_schema(M::NAME, "ros2msg", M::DEFINITION.as_bytes())
                    .map_err(err)?;
                let id = self
                    .writer
                    .add_channel(schema, topic, "cdr", &BTreeMap::new())
                    .map_err(err)?;
                self.channels.insert(topic.to_string(), id);
                id
            }
        };
        self.sequence += 1;
        let header = mcap::records::MessageHeader {
            channel_id,
            sequence: self.sequence,
            log_time: stamp_ns,
            publish_time: stamp_ns,
        };
        self.writer
            .write_to_known_channel(&header, &msg.to_cdr())
            .map_err(err)
    }

    /// Writes the summary section and closes the file.
    pub fn finish(mut self) -> Result<()> {
        self.writer
            .finish()
            .map_err(|e| Error::format(&self.path, format!("cannot finish MCAP file: {e}")))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// BOP scene -> MCAP

/// A BOP JSON file as `{image id: entry}`, the numbers as written.
fn read_id_map(path: &Path) -> Result<BTreeMap<u32, Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let json: Map<String, Value> = serde_json::from_str(&text)
        .map_err(|e| Error::format(path, format!("invalid JSON object: {e}")))?;
    json.into_iter()
        .map(|(k, v)| {
            k.parse()
                .map(|id| (id, v))
                .map_err(|_| Error::format(path, format!("key '{k}' is not an image id")))
        })
        .collect()
}

/// Field `key` of `obj` as `N` numbers, exactly as written.
fn numbers<const N: usize>(
    path: &Path,
    obj: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<[f64; N]> {
    let arr = obj
        .get(key)
        .and_then(Value::as_array)
        .filter(|a| a.len() == N);
    let vals: Option<Vec<f64>> = arr.and_then(|a| a.iter().map(Value::as_f64).collect());
    vals.and_then(|v| v.try_into().ok()).ok_or_else(|| {
        Error::format(
            path,
            format!("{what}: field '{key}' must be an array of {N} numbers"),
        )
    })
}

/// The keys of `obj` other than `known`, as a JSON object string ("" when none).
fn extra_json(obj: &Map<String, Value>, known: &[&str]) -> String {
    let rest: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if rest.is_empty() {
        String::new()
    } else {
        Value::Object(rest).to_string()
    }
}

const CAMERA_KEYS: [&str; 4] = ["cam_K", "depth_scale", "cam_R_w2c", "cam_t_w2c"];
const GT_KEYS: [&str; 3] = ["obj_id", "cam_R_m2c", "cam_t_m2c"];

/// Our record of image `id` from its raw `scene_camera.json` / `scene_gt.json` entries.
fn bop_frame(
    (cam_path, cam): (&Path, &Value),
    gt: Option<(&Path, &Value)>,
    header: Header,
    (split, scene_id, im_id): (&str, u32, u32),
) -> Result<(BopFrame, [f64; 9])> {
    let what = format!("image {im_id}");
    let obj = cam
        .as_object()
        .ok_or_else(|| Error::format(cam_path, format!("{what}: expected a JSON object")))?;
    let k = numbers::<9>(cam_path, obj, "cam_K", &what)?;
    let depth_scale = obj
        .get("depth_scale")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| {
            Error::format(
                cam_path,
                format!("{what}: field 'depth_scale' missing or not positive"),
            )
        })?;
    let has_cam_w2c = obj.contains_key("cam_R_w2c");
    let mut f = BopFrame {
        header,
        split: split.to_string(),
        scene_id,
        im_id,
        depth_scale,
        has_cam_w2c,
        extra_json: extra_json(obj, &CAMERA_KEYS),
        ..BopFrame::default()
    };
    if has_cam_w2c {
        f.cam_r_w2c = numbers(cam_path, obj, "cam_R_w2c", &what)?;
        f.cam_t_w2c = numbers(cam_path, obj, "cam_t_w2c", &what)?;
    }
    if let Some((gt_path, list)) = gt {
        f.has_gt = true;
        let list = list.as_array().ok_or_else(|| {
            Error::format(gt_path, format!("{what}: expected a list of GT poses"))
        })?;
        for (i, e) in list.iter().enumerate() {
            let what = format!("{what}, entry {i}");
            let o = e
                .as_object()
                .ok_or_else(|| Error::format(gt_path, format!("{what}: expected a JSON object")))?;
            let obj_id = o
                .get("obj_id")
                .and_then(Value::as_u64)
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| {
                    Error::format(
                        gt_path,
                        format!("{what}: field 'obj_id' missing or not an id"),
                    )
                })?;
            f.gt.push(BopObject {
                obj_id,
                cam_r_m2c: numbers(gt_path, o, "cam_R_m2c", &what)?,
                cam_t_m2c: numbers(gt_path, o, "cam_t_m2c", &what)?,
                extra_json: extra_json(o, &GT_KEYS),
            });
        }
    }
    Ok((f, k))
}

/// `(root, split, scene_id)` of a BOP scene folder `<root>/<split>/<scene_id>`.
fn split_scene_dir(dir: &Path) -> Result<(PathBuf, String, u32)> {
    let bad = || {
        Error::param(
            "--from",
            dir.display(),
            "not a BOP scene folder <root>/<split>/<scene id> (e.g. ycbv-mini/test/000049)",
        )
    };
    let abs = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
    let scene_id = abs
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)?;
    let split_dir = abs.parent().ok_or_else(bad)?;
    let split = split_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(bad)?
        .to_string();
    let root = split_dir.parent().ok_or_else(bad)?.to_path_buf();
    Ok((root, split, scene_id))
}

/// Reads a file, naming it on failure.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Converts the BOP scene folder `args.from` into the MCAP file `args.to`; returns the frames written.
pub fn bop_to_mcap(args: &ConvertArgs) -> Result<usize> {
    if !(args.fps.is_finite() && args.fps > 0.0) {
        return Err(Error::param("--fps", args.fps, "must be positive"));
    }
    let (root, split, scene_id) = split_scene_dir(&args.from)?;
    let scene = BopDataset::open(&root)?.scene(&split, scene_id)?;
    let last = scene.image_ids.last().copied().unwrap_or(0);
    if last as f64 * 1e9 / args.fps >= u64::MAX as f64 {
        let why = format!("image {last}'s stamp would overflow 64-bit nanoseconds");
        return Err(Error::param("--fps", args.fps, why));
    }
    let cam_path = scene.dir.join("scene_camera.json");
    let gt_path = scene.dir.join("scene_gt.json");
    let cams = read_id_map(&cam_path)?;
    let gts = if gt_path.exists() {
        Some(read_id_map(&gt_path)?)
    } else {
        None
    };
    // Written beside the target and renamed over it once complete: a conversion that fails
    // half-way (an unreadable image) leaves no valid-looking short recording, and an earlier file
    // at `to` as it was.
    let mut partial = args.to.clone().into_os_string();
    partial.push(".partial");
    let partial = Partial(PathBuf::from(partial));
    let mut out = RosMcapWriter::create(&partial.0, args.compression)?;
    for &im_id in &scene.image_ids {
        let stamp = (im_id as f64 * 1e9 / args.fps).round() as u64;
        let header = Header::new(stamp, FRAME_ID);
        let cam = &cams[&im_id]; // image_ids are the keys of this same file
        let gt = gts
            .as_ref()
            .and_then(|g| g.get(&im_id))
            .map(|v| (gt_path.as_path(), v));
        let (frame, k) = bop_frame(
            (&cam_path, cam),
            gt,
            header.clone(),
            (&split, scene_id, im_id),
        )?;
        let c = scene.cameras[&im_id].camera;
        let rgb_path = scene.image_path("rgb", im_id);
        let rgb_bytes = read_file(&rgb_path)?;
        match args.color {
            ColorMode::Png => {
                if !rgb_bytes.starts_with(PNG_MAGIC) {
                    return Err(Error::format(&rgb_path, "not a PNG file"));
                }
                let msg = CompressedImage {
                    header: header.clone(),
                    format: "png".into(),
                    data: rgb_bytes,
                };
                out.write(COLOR_PNG_TOPIC, stamp, &msg)?;
            }
            ColorMode::Raw => {
                let rgb = image::load_from_memory(&rgb_bytes)
                    .map_err(|e| Error::format(&rgb_path, format!("cannot decode image: {e}")))?
                    .to_rgb8();
                out.write(COLOR_RAW_TOPIC, stamp, &Image::rgb8(header.clone(), rgb))?;
            }
        }
        let depth_path = scene.image_path("depth", im_id);
        let depth_bytes = read_file(&depth_path)?;
        let image::DynamicImage::ImageLuma16(raw) = image::load_from_memory(&depth_bytes)
            .map_err(|e| Error::format(&depth_path, format!("cannot decode image: {e}")))?
        else {
            return Err(Error::format(
                &depth_path,
                "depth image must be a 16-bit single-channel PNG",
            ));
        };
        match args.depth {
            DepthMode::Png => {
                let mut data = vec![0u8; COMPRESSED_DEPTH_HEADER_LEN];
                data.extend_from_slice(&depth_bytes);
                let msg = CompressedImage {
                    header: header.clone(),
                    format: COMPRESSED_DEPTH_FORMAT.into(),
                    data,
                };
                out.write(DEPTH_PNG_TOPIC, stamp, &msg)?;
            }
            DepthMode::Raw => {
                let msg = Image {
                    header: header.clone(),
                    height: raw.height(),
                    width: raw.width(),
                    encoding: "16UC1".into(),
                    is_bigendian: 0,
                    step: raw.width() * 2,
                    data: raw.as_raw().iter().flat_map(|v| v.to_le_bytes()).collect(),
                };
                out.write(DEPTH_RAW_TOPIC, stamp, &msg)?;
            }
        }
        let info = CameraInfo::pinhole(header, c.width, c.height, k);
        out.write(CAMERA_INFO_TOPIC, stamp, &info)?;
        out.write(BOP_FRAME_TOPIC, stamp, &frame)?;
    }
    out.finish()?;
    std::fs::rename(&partial.0, &args.to).map_err(|e| Error::io(&args.to, e))?;
    Ok(scene.image_ids.len())
}

/// A file being written that is removed unless it was renamed into place first.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        // Gone already when it was renamed; any other failure leaves a `.partial` file behind.
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// MCAP -> BOP scene

/// Writes `{"id": entry, ...}` one id per line, as BOP files are.
fn write_id_map(path: &Path, entries: &BTreeMap<u32, Value>) -> Result<()> {
    let lines: Vec<String> = entries
        .iter()
        .map(|(id, v)| format!("  \"{id}\": {v}"))
        .collect();
    std::fs::write(path, format!("{{\n{}\n}}\n", lines.join(",\n"))).map_err(|e| Error::io(path, e))
}

/// `known` fields plus the ones kept in `extra` (a JSON object string, or empty).
fn with_extra(path: &Path, mut known: Map<String, Value>, extra: &str) -> Result<Value> {
    if !extra.is_empty() {
        let Ok(Value::Object(more)) = serde_json::from_str::<Value>(extra) else {
            return Err(Error::format(
                path,
                format!("extra_json '{extra}' is not a JSON object"),
            ));
        };
        known.extend(more);
    }
    Ok(Value::Object(known))
}

/// Writes a 16-bit PNG of raw depth values.
fn write_raw_depth(path: &Path, w: u32, h: u32, raw: Vec<u16>) -> Result<()> {
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(w, h, raw)
        .ok_or_else(|| Error::format(path, "depth buffer size mismatch"))?
        .save(path)
        .map_err(|e| Error::format(path, format!("cannot write PNG: {e}")))
}

/// Writes one BOP scene folder at `out` (rgb/, depth/, scene_camera.json, scene_gt.json when the
/// recording has GT) from the MCAP file `mcap`; returns the frames written and the colour images
/// left out for want of a depth image within the default pairing tolerance (also said on stderr).
/// Image ids and depth scale come from our topic when recorded, else the frame index and 1 mm.
pub fn mcap_to_bop(mcap: &Path, out: &Path) -> Result<(usize, usize)> {
    let rec = open_recording(mcap, &ReadOptions::default())?;
    if let Some(note) = rec.unpaired_note() {
        eprintln!("{note}");
    }
    for sub in ["rgb", "depth"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let (mut cams, mut gts) = (BTreeMap::new(), BTreeMap::new());
    for (i, p) in rec.frames.iter().enumerate() {
        let im_id = p.bop.as_ref().map_or(i as u32, |b| b.im_id);
        let depth_scale = p.bop.as_ref().map_or(1.0, |b| b.depth_scale);
        let name = format!("{im_id:06}.png");
        let rgb_path = out.join("rgb").join(&name);
        match &p.color {
            ImageMsg::Compressed(c) if c.data.starts_with(PNG_MAGIC) => {
                std::fs::write(&rgb_path, &c.data).map_err(|e| Error::io(&rgb_path, e))?
            }
            _ => bop::write_rgb_png(&rgb_path, &decode_color(mcap, &rec.color_topic, &p.color)?)?,
        }
        let depth_path = out.join("depth").join(&name);
        match &p.depth {
            ImageMsg::Compressed(c) if c.format.starts_with("16UC1") => {
                let png = compressed_payload(mcap, &rec.depth_topic, c)?;
                std::fs::write(&depth_path, png).map_err(|e| Error::io(&depth_path, e))?
            }
            msg => match decode_depth(mcap, &rec.depth_topic, msg, depth_scale)? {
                // The sizes came from the message's u32 width and height.
                (d, Some(raw)) => {
                    write_raw_depth(&depth_path, d.width as u32, d.height as u32, raw)?
                }
                (d, None) => bop::write_depth_png(&depth_path, &d, depth_scale)?,
            },
        }
        let mut cam = Map::new();
        cam.insert("cam_K".into(), p.info.k.into());
        cam.insert("depth_scale".into(), depth_scale.into());
        if let Some(b) = &p.bop {
            if b.has_cam_w2c {
                cam.insert("cam_R_w2c".into(), b.cam_r_w2c.into());
                cam.insert("cam_t_w2c".into(), b.cam_t_w2c.into());
            }
            if b.has_gt {
                let list: Result<Vec<Value>> =
                    b.gt.iter()
                        .map(|g| {
                            let mut o = Map::new();
                            o.insert("cam_R_m2c".into(), g.cam_r_m2c.into());
                            o.insert("cam_t_m2c".into(), g.cam_t_m2c.into());
                            o.insert("obj_id".into(), g.obj_id.into());
                            with_extra(mcap, o, &g.extra_json)
                        })
                        .collect();
                gts.insert(im_id, Value::Array(list?));
            }
        }
        let extra = p.bop.as_ref().map_or("", |b| b.extra_json.as_str());
        if cams.insert(im_id, with_extra(mcap, cam, extra)?).is_some() {
            return Err(Error::format(
                mcap,
                format!("image id {im_id} occurs twice in '{BOP_FRAME_TOPIC}'"),
            ));
        }
    }
    write_id_map(&out.join("scene_camera.json"), &cams)?;
    if !gts.is_empty() {
        write_id_map(&out.join("scene_gt.json"), &gts)?;
    }
    Ok((rec.frames.len(), rec.unpaired))
}
