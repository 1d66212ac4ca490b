//! Frames out of an MCAP recording: colour, depth and camera_info found by schema (or named),
//! colour and depth paired by the nearest header stamp, everything a pose tracker would silently
//! get wrong refused with a message that names the file, topic and value.
//!
//! [`open_recording`] reads and checks the whole file (no image is decoded yet);
//! [`Recording::frame`] decodes one frame into a plain [`RecordedFrame`]. A pipeline source is a
//! thin wrapper over these two.
//!
//! Refused: no image topic (the error lists the topics), no depth topic, no camera_info, a
//! non-zero distortion (hdpf does not undistort), depth not registered to the colour camera
//! (different `frame_id`, size, or a depth camera_info with a different `K`), a camera_info whose
//! size differs from the images, an unknown pixel encoding or codec.

use super::images::{compressed_payload, decode_color, decode_depth, ImageMsg};
use super::ros_msgs::{BopFrame, CameraInfo, CompressedImage, Image, RosMessage};
use crate::core::geometry::Camera;
use crate::domains::pose::bop::{rotation_from_row_major, GtPose};
use crate::domains::pose::frame::{ImageF32, RgbdFrame};
use crate::{Error, Result};
use mcap::records::Record;
use nalgebra::{Isometry3, Translation3, Vector3};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default pairing tolerance between colour and depth stamps: 10 ms (a third of a 30 Hz frame).
pub const DEFAULT_TOLERANCE_NS: u64 = 10_000_000;

/// Which topics to use and how to pair them.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Colour image topic; `None`: the only colour image topic of the file.
    pub color_topic: Option<String>,
    /// Depth image topic; `None`: the only depth image topic.
    pub depth_topic: Option<String>,
    /// Colour camera_info topic; `None`: the only one, or the one beside the colour topic.
    pub camera_info_topic: Option<String>,
    /// Largest |colour stamp − depth stamp| paired, nanoseconds.
    pub tolerance_ns: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            color_topic: None,
            depth_topic: None,
            camera_info_topic: None,
            tolerance_ns: DEFAULT_TOLERANCE_NS,
        }
    }
}

/// One paired frame, still encoded.
#[derive(Debug, Clone)]
pub struct PairedFrame {
    /// Colour message.
    pub color: ImageMsg,
    /// Depth message nearest in stamp.
    pub depth: ImageMsg,
    /// camera_info nearest in stamp.
    pub info: CameraInfo,
    /// Our `/hdpf/bop_frame` record with the colour's stamp (within the tolerance), if any.
    pub bop: Option<BopFrame>,
}

/// A checked recording: which topics were used and the paired frames, not yet decoded.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The MCAP file.
    pub path: PathBuf,
    /// Colour topic used.
    pub color_topic: String,
    /// Depth topic used.
    pub depth_topic: String,
    /// camera_info topic used.
    pub camera_info_topic: String,
    /// Colour messages without a depth message within the tolerance (dropped).
    pub unpaired: usize,
    /// The pairing tolerance used, nanoseconds.
    pub tolerance_ns: u64,
    /// The frames, in colour-stamp order.
    pub frames: Vec<PairedFrame>,
}

/// One decoded frame: the shared [`RgbdFrame`] (stamped with the colour header stamp, image id
/// from our topic or the frame's index + 1) and what only a recording carries.
#[derive(Debug, Clone)]
pub struct RecordedFrame {
    /// Colour, depth (metres, 0 = missing), intrinsics and capture stamp (seconds).
    pub frame: RgbdFrame,
    /// Colour header stamp, ns.
    pub stamp_ns: u64,
    /// Depth header stamp, ns.
    pub depth_stamp_ns: u64,
    /// Optical frame of both images.
    pub frame_id: String,
    /// The raw 16-bit depth values when the recording holds them (`16UC1`), else `None`.
    pub depth_raw: Option<Vec<u16>>,
    /// Millimetres per raw unit of `depth_raw` (our topic's `depth_scale`, else 1 = REP 118 mm).
    pub depth_scale: f64,
    /// camera_info `K`, row-major, as recorded.
    pub k: [f64; 9],
    /// Ids, depth scale, world→camera pose and GT from our topic, if recorded.
    pub bop: Option<BopFrame>,
}

impl RecordedFrame {
    /// The colour image (a paired frame always has one).
    pub fn rgb(&self) -> &image::RgbImage {
        self.frame
            .rgb
            .as_deref()
            .expect("a paired frame carries colour")
    }

    /// The depth in metres (a paired frame always has one).
    pub fn depth(&self) -> &ImageF32 {
        self.frame
            .depth
            .as_deref()
            .expect("a paired frame carries depth")
    }
}

impl BopFrame {
    /// Ground truth from our topic (object id and model→camera pose, metres), read exactly as
    /// the BOP reader reads `scene_gt.json`; `path` names the file in
    /// the error for a matrix that is not a rotation.
    pub fn ground_truth(&self, path: &Path) -> Result<Vec<GtPose>> {
        let b = self;
        (b.gt.iter())
            .map(|o| {
                let rotation = rotation_from_row_major(&o.cam_r_m2c).ok_or_else(|| {
                    let why = format!(
                        "image {}: cam_R_m2c of object {} is not a rotation",
                        b.im_id, o.obj_id
                    );
                    Error::format(path, why)
                })?;
                let t = Vector3::from(o.cam_t_m2c) * 1e-3;
                let pose = Isometry3::from_parts(Translation3::from(t), rotation);
                Ok(GtPose {
                    obj_id: o.obj_id,
                    pose,
                })
            })
            .collect()
    }
}

/// One channel as [`open_recording`] saw it.
#[derive(Debug, Clone, Default)]
struct Topic {
    schema: String,
    messages: usize,
    images: Vec<ImageMsg>,
    infos: Vec<CameraInfo>,
    bops: Vec<BopFrame>,
}

/// `what` for an error about message `i` of `topic`.
fn at(topic: &str, i: usize) -> String {
    format!("topic '{topic}', message {i}")
}

/// Reads a whole MCAP file into its topics, decoding every image / camera_info / BopFrame message.
fn read_topics(path: &Path) -> Result<BTreeMap<String, Topic>> {
    let bytes = crate::core::memory::read_file(path, 2)?;
    let mut topics: BTreeMap<String, Topic> = BTreeMap::new();
    let mut schemas: BTreeMap<u16, String> = BTreeMap::new();
    let mut channels: BTreeMap<u16, mcap::records::Channel> = BTreeMap::new();
    for record in super::mcap_records::records(path, &bytes)? {
        let (header, data) = match record? {
            Record::Schema { header, .. } => {
                schemas.entry(header.id).or_insert(header.name);
                continue;
            }
            Record::Channel(c) => {
                channels.entry(c.id).or_insert(c);
                continue;
            }
            Record::Message { header, data } => (header, data),
            _ => continue,
        };
        let Some(channel) = channels.get(&header.channel_id) else {
            let why = format!(
                "not a valid MCAP file: a message on channel {} that no Channel record defines",
                header.channel_id
            );
            return Err(Error::format(path, why));
        };
        let name = channel.topic.clone();
        let t = topics.entry(name.clone()).or_default();
        t.schema = schemas.get(&channel.schema_id).cloned().unwrap_or_default();
        let i = t.messages;
        t.messages += 1;
        if channel.message_encoding != "cdr" {
            continue;
        }
        let bad = |e: super::cdr::CdrError| Error::format(path, format!("{}: {e}", at(&name, i)));
        match t
            .schema
            .trim_start_matches('/')
            .replace("/msg/", "/")
            .as_str()
        {
            "sensor_msgs/Image" => t
                .images
                .push(ImageMsg::Raw(Image::from_cdr(&data).map_err(bad)?)),
            "sensor_msgs/CompressedImage" => t.images.push(ImageMsg::Compressed(
                CompressedImage::from_cdr(&data).map_err(bad)?,
            )),
            "sensor_msgs/CameraInfo" => t.infos.push(CameraInfo::from_cdr(&data).map_err(bad)?),
            "hdpf_msgs/BopFrame" => t.bops.push(BopFrame::from_cdr(&data).map_err(bad)?),
            _ => {}
        }
    }
    Ok(topics)
}

/// `topic (schema, N messages), ...` for error messages.
fn list_topics(topics: &BTreeMap<String, Topic>) -> String {
    if topics.is_empty() {
        return "none (the file has no messages)".into();
    }
    let items: Vec<String> = topics
        .iter()
        .map(|(n, t)| format!("{n} ({}, {} messages)", t.schema, t.messages))
        .collect();
    items.join(", ")
}

/// The topic named by `choice`, or the only candidate, or (several) the one in `near`'s namespace.
fn pick(
    path: &Path,
    kind: &str,
    choice: &Option<String>,
    candidates: &[&String],
    near: Option<&str>,
) -> Result<String> {
    if let Some(c) = choice {
        return if candidates.contains(&c) {
            Ok(c.clone())
        } else {
            Err(Error::format(
                path,
                format!("{kind} topic '{c}' not found; {kind} topics: {candidates:?}"),
            ))
        };
    }
    match candidates {
        [one] => Ok((*one).clone()),
        [] => Err(Error::format(path, format!("no {kind} topic"))),
        _ => {
            let ns = |t: &str| {
                t.rsplit_once('/')
                    .map(|(a, _)| a.to_string())
                    .unwrap_or_default()
            };
            let near_ns = near.map(|n| {
                // image_transport's sub-topics live below the image topic.
                let base = n
                    .trim_end_matches("/compressedDepth")
                    .trim_end_matches("/compressed");
                ns(base)
            });
            let same: Vec<&&String> = candidates
                .iter()
                .filter(|c| near_ns.as_deref() == Some(ns(c).as_str()))
                .collect();
            match same.as_slice() {
                [one] => Ok((**one).clone()),
                _ => Err(Error::format(
                    path,
                    format!("several {kind} topics {candidates:?}: name the one to use"),
                )),
            }
        }
    }
}

/// Index of the element of sorted `stamps` nearest to `s`.
fn nearest(stamps: &[u64], s: u64) -> Option<usize> {
    let i = stamps.partition_point(|&x| x < s);
    let cands = [i.checked_sub(1), (i < stamps.len()).then_some(i)];
    cands
        .into_iter()
        .flatten()
        .min_by_key(|&j| stamps[j].abs_diff(s))
}

/// Refuses a camera_info hdpf cannot use as is (`size`: the images' width and height): distortion, a size other than the images'.
pub fn check_info(path: &Path, topic: &str, info: &CameraInfo, size: (u32, u32)) -> Result<()> {
    if let Some((i, d)) = info.d.iter().enumerate().find(|(_, d)| **d != 0.0) {
        return Err(Error::format(
            path,
            format!(
                "topic '{topic}': distortion d[{i}] = {d:?} ({} model {:?}); hdpf does not undo lens \
                 distortion: record rectified images (image_rect) with their camera_info",
                info.distortion_model, info.d
            ),
        ));
    }
    if (info.width, info.height) != size {
        return Err(Error::format(
            path,
            format!(
                "topic '{topic}': camera_info size {}x{} differs from the images' {}x{}",
                info.width, info.height, size.0, size.1
            ),
        ));
    }
    Ok(())
}

/// Reads and checks an MCAP recording: topics found (or named), colour and depth registered and
/// paired, camera_info undistorted. Images stay encoded until [`Recording::frame`].
pub fn open_recording(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Recording> {
    let path = path.as_ref();
    let mut topics = read_topics(path)?;
    let image_topics: Vec<&String> = topics
        .iter()
        .filter(|(_, t)| !t.images.is_empty())
        .map(|(n, _)| n)
        .collect();
    if image_topics.is_empty() {
        return Err(Error::format(
            path,
            format!(
                "no image topic (sensor_msgs/msg/Image or CompressedImage, CDR); its topics: {}",
                list_topics(&topics)
            ),
        ));
    }
    let (depth_c, color_c): (Vec<&String>, Vec<&String>) = image_topics
        .iter()
        .partition(|n| topics[n.as_str()].images[0].is_depth());
    let color = pick(path, "colour image", &opts.color_topic, &color_c, None)?;
    let depth = pick(
        path,
        "depth image",
        &opts.depth_topic,
        &depth_c,
        Some(&color),
    )?;
    let info_c: Vec<&String> = topics
        .iter()
        .filter(|(_, t)| !t.infos.is_empty())
        .map(|(n, _)| n)
        .collect();
    if info_c.is_empty() && opts.camera_info_topic.is_none() {
        return Err(Error::format(
            path,
            format!(
                "missing camera_info: no sensor_msgs/msg/CameraInfo topic, so the intrinsics are \
                 unknown; its topics: {}",
                list_topics(&topics)
            ),
        ));
    }
    let info_topic = pick(
        path,
        "camera_info",
        &opts.camera_info_topic,
        &info_c,
        Some(&color),
    )?;
    // A camera_info beside the depth topic (other than the colour's) must describe the same camera.
    let depth_info = pick(path, "camera_info", &None, &info_c, Some(&depth))
        .ok()
        .filter(|t| *t != info_topic);
    let bops: Vec<BopFrame> = topics
        .values_mut()
        .flat_map(|t| std::mem::take(&mut t.bops))
        .collect();
    let mut take = |name: &str| -> (Vec<ImageMsg>, Vec<CameraInfo>) {
        topics
            .get_mut(name)
            .map(|t| (std::mem::take(&mut t.images), std::mem::take(&mut t.infos)))
            .unwrap_or_default()
    };
    let (mut colors, _) = take(&color);
    let (mut depths, _) = take(&depth);
    let (_, infos) = take(&info_topic);
    let depth_infos = depth_info.as_deref().map(|t| take(t).1).unwrap_or_default();
    colors.sort_by_key(ImageMsg::stamp_ns);
    depths.sort_by_key(ImageMsg::stamp_ns);
    let size = image_size(path, &color, &colors[0])?;
    check_registration(path, (&color, &colors[0], size), (&depth, &depths[0]))?;
    for info in &infos {
        check_info(path, &info_topic, info, size)?;
    }
    if let (Some(t), Some(d), Some(c)) = (&depth_info, depth_infos.first(), infos.first()) {
        if d.k != c.k || (d.width, d.height) != (c.width, c.height) {
            return Err(Error::format(
                path,
                format!(
                    "depth not registered to the colour camera: '{t}' has K {:?} ({}x{}), '{info_topic}' \
                     has K {:?} ({}x{}); record the depth aligned to colour (aligned_depth_to_color)",
                    d.k, d.width, d.height, c.k, c.width, c.height
                ),
            ));
        }
    }
    let mut rec = Recording {
        path: path.to_path_buf(),
        color_topic: color,
        depth_topic: depth,
        camera_info_topic: info_topic,
        unpaired: 0,
        tolerance_ns: opts.tolerance_ns,
        frames: Vec::new(),
    };
    pair(&mut rec, opts.tolerance_ns, colors, depths, infos, bops);
    if rec.frames.is_empty() {
        return Err(Error::format(
            path,
            format!(
                "no colour message of '{}' has a depth message of '{}' within {} ms",
                rec.color_topic,
                rec.depth_topic,
                opts.tolerance_ns as f64 / 1e6
            ),
        ));
    }
    Ok(rec)
}

/// Refuses depth that is not registered to the colour image: another optical frame or size.
pub fn check_registration(
    path: &Path,
    (ct, c, csize): (&str, &ImageMsg, (u32, u32)),
    (dt, d): (&str, &ImageMsg),
) -> Result<()> {
    let (cf, df) = (&c.header().frame_id, &d.header().frame_id);
    if cf != df {
        return Err(Error::format(
            path,
            format!(
                "depth not registered to the colour camera: '{dt}' is in frame '{df}', '{ct}' in \
                 '{cf}'; record the depth aligned to colour (e.g. /camera/aligned_depth_to_color/image_raw)"
            ),
        ));
    }
    let dsize = image_size(path, dt, d)?;
    if dsize != csize {
        return Err(Error::format(
            path,
            format!(
                "depth not registered to the colour camera: '{dt}' is {}x{}, '{ct}' is {}x{}",
                dsize.0, dsize.1, csize.0, csize.1
            ),
        ));
    }
    Ok(())
}

/// Pairs each colour message with the nearest depth (within `tol`), camera_info and BopFrame.
fn pair(
    rec: &mut Recording,
    tol: u64,
    colors: Vec<ImageMsg>,
    depths: Vec<ImageMsg>,
    mut infos: Vec<CameraInfo>,
    mut bops: Vec<BopFrame>,
) {
    infos.sort_by_key(|i| i.header.stamp_ns);
    bops.sort_by_key(|b| b.header.stamp_ns);
    let d_st: Vec<u64> = depths.iter().map(ImageMsg::stamp_ns).collect();
    let i_st: Vec<u64> = infos.iter().map(|i| i.header.stamp_ns).collect();
    let b_st: Vec<u64> = bops.iter().map(|b| b.header.stamp_ns).collect();
    for color in colors {
        let s = color.stamp_ns();
        let within = |st: &[u64]| nearest(st, s).filter(|&j| st[j].abs_diff(s) <= tol);
        let (Some(d), Some(i)) = (within(&d_st), nearest(&i_st, s)) else {
            rec.unpaired += 1;
            continue;
        };
        rec.frames.push(PairedFrame {
            color,
            depth: depths[d].clone(),
            info: infos[i].clone(),
            bop: within(&b_st).map(|b| bops[b].clone()),
        });
    }
}

/// Width and height of an image message (a compressed one's from its header bytes).
pub fn image_size(path: &Path, topic: &str, msg: &ImageMsg) -> Result<(u32, u32)> {
    match msg {
        ImageMsg::Raw(m) => Ok((m.width, m.height)),
        ImageMsg::Compressed(m) => {
            let data = compressed_payload(path, topic, m)?;
            image::ImageReader::new(std::io::Cursor::new(data))
                .with_guessed_format()
                .map_err(|e| Error::io(path, e))?
                .into_dimensions()
                .map_err(|e| {
                    Error::format(
                        path,
                        format!(
                            "topic '{topic}': {}: {e}",
                            ImageMsg::Compressed(m.clone()).describe()
                        ),
                    )
                })
        }
    }
}

impl Recording {
    /// What was skipped in pairing, for the user: `None` when every colour image found its depth.
    pub fn unpaired_note(&self) -> Option<String> {
        (self.unpaired > 0).then(|| {
            format!(
                "{}: {} of {} colour images of '{}' have no depth image of '{}' within {} ms and \
                 are skipped",
                self.path.display(),
                self.unpaired,
                self.unpaired + self.frames.len(),
                self.color_topic,
                self.depth_topic,
                self.tolerance_ns as f64 / 1e6
            )
        })
    }

    /// Number of paired frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame was paired (never true for a recording [`open_recording`] returned).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The image id of frame `i`: from our topic when recorded, else `i + 1`.
    pub fn im_id(&self, i: usize) -> u32 {
        let p = self.frames.get(i);
        (p.and_then(|p| p.bop.as_ref())).map_or(i as u32 + 1, |b| b.im_id)
    }

    /// The scene id from our topic, when recorded.
    pub fn scene_id(&self) -> Option<u32> {
        (self.frames.iter()).find_map(|p| p.bop.as_ref().map(|b| b.scene_id))
    }

    /// Ground truth per image id from our topic (images without a record have none).
    pub fn ground_truth(&self) -> Result<BTreeMap<u32, Vec<GtPose>>> {
        (self.frames.iter().enumerate())
            .filter_map(|(i, p)| p.bop.as_ref().map(|b| (i, b)))
            .map(|(i, b)| Ok((self.im_id(i), b.ground_truth(&self.path)?)))
            .collect()
    }

    /// Decodes frame `i` (0-based, in stamp order).
    pub fn frame(&self, i: usize) -> Result<RecordedFrame> {
        let p = self.frames.get(i).ok_or_else(|| {
            Error::param(
                "frame",
                i,
                format!("recording has {} frames", self.frames.len()),
            )
        })?;
        let topics = [
            &self.color_topic,
            &self.depth_topic,
            &self.camera_info_topic,
        ];
        decode_paired(&self.path, topics.map(String::as_str), p, self.im_id(i))
    }

    /// Every frame, decoded in order.
    pub fn decoded(&self) -> impl Iterator<Item = Result<RecordedFrame>> + '_ {
        (0..self.frames.len()).map(|i| self.frame(i))
    }
}

/// Decodes one paired frame of image id `im_id`: colour, depth (scaled by our topic's
/// `depth_scale`, else millimetres), intrinsics from the camera_info, stamped with the colour
/// header stamp. `path` and `topics` (colour, depth, camera_info) name the origin in errors.
pub fn decode_paired(
    path: &Path,
    [color_topic, depth_topic, info_topic]: [&str; 3],
    p: &PairedFrame,
    im_id: u32,
) -> Result<RecordedFrame> {
    let rgb = decode_color(path, color_topic, &p.color)?;
    let depth_scale = p.bop.as_ref().map_or(1.0, |b| b.depth_scale);
    let (depth, depth_raw) = decode_depth(path, depth_topic, &p.depth, depth_scale)?;
    let (w, h) = rgb.dimensions();
    if (depth.width, depth.height) != (w as usize, h as usize) {
        return Err(Error::format(
            path,
            format!(
                "image {im_id}: depth '{depth_topic}' is {}x{}, colour '{color_topic}' is {w}x{h}",
                depth.width, depth.height
            ),
        ));
    }
    let camera = Camera::from_k(&p.info.k, w, h)
        .map_err(|e| Error::format(path, format!("topic '{info_topic}', K: {e}")))?;
    let stamp_ns = p.color.stamp_ns();
    let frame = RgbdFrame::new(im_id, camera, Some(rgb), Some(depth));
    Ok(RecordedFrame {
        frame: frame.with_stamp(stamp_ns as f64 * 1e-9),
        stamp_ns,
        depth_stamp_ns: p.depth.stamp_ns(),
        frame_id: p.color.header().frame_id.clone(),
        depth_raw,
        depth_scale,
        k: p.info.k,
        bop: p.bop.clone(),
    })
}
