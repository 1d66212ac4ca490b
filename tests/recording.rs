//! MCAP recordings: BOP scene → MCAP → BOP is lossless (synthetic scene in every storage mode, and a
//! real ycbv-mini clip); frames read from MCAP equal frames read from BOP; what would give wrong
//! poses is refused; `dataset info` agrees with the mcap crate's own writer in several configurations.

use hdpf::core::datasets;
use hdpf::domains::pose::bop::BopDataset;
use hdpf::domains::recording::mcap_bop::{
    self, ChunkCompression, ColorMode, ConvertArgs, DepthMode, RosMcapWriter,
};
use hdpf::domains::recording::mcap_info;
use hdpf::domains::recording::mcap_read::{open_recording, ReadOptions};
use hdpf::domains::recording::ros_msgs::{
    BopFrame, CameraInfo, CompressedImage, Header, Image, COMPRESSED_DEPTH_HEADER_LEN,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A fresh temporary directory, removed when the test ends.
fn temp_dir(name: &str) -> hdpf::core::scratch::ScratchDir {
    hdpf::core::scratch::ScratchDir::new(&format!("rec-{name}"))
}

/// A 3-image BOP scene `root/test/000007` of 8×6 pixels with awkward numbers: random pixels, depth 0
/// and 65535, non-contiguous image ids, w2c on some images, an extra scene_camera field, one image
/// without GT objects.
fn write_scene(root: &Path) -> PathBuf {
    let dir = root.join("test").join("000007");
    std::fs::create_dir_all(dir.join("rgb")).unwrap();
    std::fs::create_dir_all(dir.join("depth")).unwrap();
    let mut seed = 12345u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    let ids = [0u32, 1, 5];
    for &id in &ids {
        let rgb = image::RgbImage::from_fn(8, 6, |_, _| {
            image::Rgb([next() as u8, next() as u8, next() as u8])
        });
        rgb.save(dir.join(format!("rgb/{id:06}.png"))).unwrap();
        let mut depth = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(8, 6, |_, _| {
            image::Luma([next() as u16])
        });
        depth.put_pixel(0, 0, image::Luma([0]));
        depth.put_pixel(1, 0, image::Luma([65535]));
        depth.save(dir.join(format!("depth/{id:06}.png"))).unwrap();
    }
    let cam = r#"{
  "0": {"cam_K": [500.1, 0, 3.9, 0, 501.25, 2.7, 0, 0, 1], "depth_scale": 0.1, "cam_R_w2c": [1, 0, 0, 0, 1, 0, 0, 0, 1], "cam_t_w2c": [0.30000000000000004, -12.5, 1e-7]},
  "1": {"cam_K": [500.1, 0, 3.9, 0, 501.25, 2.7, 0, 0, 1], "depth_scale": 0.1, "elev": 45, "mode": 0},
  "5": {"cam_K": [500.2, 0, 4.1, 0, 501.3, 2.8, 0, 0, 1], "depth_scale": 0.1}
}"#;
    std::fs::write(dir.join("scene_camera.json"), cam).unwrap();
    let r = "[0.36, 0.48, -0.8, -0.8, 0.6, 0.0, 0.48, 0.64, 0.6]";
    let gt = format!(
        r#"{{"0": [{{"cam_R_m2c": {r}, "cam_t_m2c": [10.123456789012345, -20.5, 700.0000000000001], "obj_id": 3}}, {{"cam_R_m2c": [1,0,0,0,1,0,0,0,1], "cam_t_m2c": [0,0,500], "obj_id": 21}}],
            "1": [], "5": [{{"cam_R_m2c": {r}, "cam_t_m2c": [1, 2, 3], "obj_id": 3}}]}}"#
    );
    std::fs::write(dir.join("scene_gt.json"), gt).unwrap();
    dir
}

/// A JSON value with every number as f64, so `0` and `0.0` compare equal (BOP writers differ).
fn numbers_as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_f64).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn read_json(p: &Path) -> Value {
    numbers_as_f64(&serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
}

/// Asserts that two BOP scene folders hold the same pixels and the same JSON numbers; returns
/// whether every PNG was also byte-identical.
fn assert_same_scene(a: &Path, b: &Path) -> bool {
    assert_eq!(
        read_json(&a.join("scene_camera.json")),
        read_json(&b.join("scene_camera.json"))
    );
    assert_eq!(
        read_json(&a.join("scene_gt.json")),
        read_json(&b.join("scene_gt.json"))
    );
    let mut identical = true;
    for sub in ["rgb", "depth"] {
        let mut names: Vec<_> = std::fs::read_dir(a.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        let count = std::fs::read_dir(b.join(sub)).unwrap().count();
        assert_eq!(names.len(), count, "{sub}/ file count");
        for n in names {
            let (pa, pb) = (a.join(sub).join(&n), b.join(sub).join(&n));
            let (ia, ib) = (image::open(&pa).unwrap(), image::open(&pb).unwrap());
            assert_eq!(ia.color(), ib.color(), "{}", pb.display());
            assert_eq!(ia.as_bytes(), ib.as_bytes(), "pixels of {}", pb.display());
            identical &= std::fs::read(&pa).unwrap() == std::fs::read(&pb).unwrap();
        }
    }
    identical
}

#[test]
fn synthetic_scene_round_trips_losslessly_in_every_mode() {
    let root = temp_dir("synth");
    let scene = write_scene(&root);
    for color in [ColorMode::Png, ColorMode::Raw] {
        for depth in [DepthMode::Raw, DepthMode::Png] {
            for compression in [
                ChunkCompression::Zstd,
                ChunkCompression::Lz4,
                ChunkCompression::None,
            ] {
                let tag = format!("{color:?}-{depth:?}-{compression:?}");
                let mcap = root.join(format!("{tag}.mcap"));
                let back = root.join(format!("back-{tag}"));
                let args = ConvertArgs {
                    color,
                    depth,
                    compression,
                    ..ConvertArgs::new(&scene, &mcap)
                };
                assert_eq!(mcap_bop::run_convert(&args).unwrap().frames, 3);
                assert_eq!(
                    mcap_bop::run_convert(&ConvertArgs::new(&mcap, &back))
                        .unwrap()
                        .frames,
                    3
                );
                let identical = assert_same_scene(&scene, &back);
                if color == ColorMode::Png && depth == DepthMode::Png {
                    assert!(identical, "{tag}: PNG bytes should be carried unchanged");
                }
                let info = mcap_info::mcap_info(&mcap).unwrap();
                assert_eq!(info.topics.len(), 4, "{tag}: {info:?}");
                assert!(info
                    .topics
                    .iter()
                    .all(|t| t.messages == 3 && t.encoding == "cdr"));
                assert_eq!(info.start_ns, Some(0));
                assert_eq!(info.end_ns, Some(166_666_667)); // image 5 at 30 fps
            }
        }
    }
}

#[test]
fn ycbv_mini_clip_round_trips_losslessly_and_reads_as_the_bop_frames() {
    let Some(root) = datasets::shared_or_skip("ycbv-mini") else {
        return;
    };
    let scene_dir = root.join("test/000049");
    let out = temp_dir("ycbv");
    let mcap = out.join("000049.mcap");
    let t = std::time::Instant::now();
    let s = mcap_bop::run_convert(&ConvertArgs::new(&scene_dir, &mcap)).unwrap();
    let to_mcap = t.elapsed();
    assert_eq!(s.frames, 20);
    let t = std::time::Instant::now();
    mcap_bop::run_convert(&ConvertArgs::new(&mcap, out.join("back"))).unwrap();
    let to_bop = t.elapsed();
    // The source folder has more (label/, masks, scene_gt_info): compare what a recording carries.
    assert_same_scene(&scene_dir, &out.join("back"));
    eprintln!(
        "ycbv-mini test/000049: 20 frames, MCAP {:.1} MB, BOP->MCAP {:.2} s, MCAP->BOP {:.2} s",
        s.bytes as f64 / 1e6,
        to_mcap.as_secs_f64(),
        to_bop.as_secs_f64()
    );
    // The frames a tracker would get are the same numbers as from the BOP folder.
    let bop = BopDataset::open(&root).unwrap().scene("test", 49).unwrap();
    let rec = open_recording(&mcap, &ReadOptions::default()).unwrap();
    assert_eq!(rec.len(), 20);
    for (i, &im_id) in bop.image_ids.iter().enumerate() {
        let a = bop.load_frame(im_id).unwrap();
        let b = rec.frame(i).unwrap();
        assert_eq!(b.bop.as_ref().unwrap().im_id, im_id);
        assert_eq!(b.frame.im_id, im_id);
        assert_eq!(a.rgb.as_deref(), Some(b.rgb()));
        assert_eq!(a.depth.as_deref(), Some(b.depth()));
        assert_eq!(a.camera, b.frame.camera);
        let gt = &bop.gt[&im_id];
        assert_eq!(gt.len(), b.bop.as_ref().unwrap().gt.len());
    }
}

/// Writes a recording from a list of (topic, message) at stamps.
enum Msg {
    Img(Image),
    Comp(CompressedImage),
    Info(Box<CameraInfo>),
}

fn write(path: &Path, msgs: &[(&str, Msg)]) {
    let mut w = RosMcapWriter::create(path, ChunkCompression::None).unwrap();
    for (topic, m) in msgs {
        match m {
            Msg::Img(x) => w.write(topic, x.header.stamp_ns, x).unwrap(),
            Msg::Comp(x) => w.write(topic, x.header.stamp_ns, x).unwrap(),
            Msg::Info(x) => w.write(topic, x.header.stamp_ns, &**x).unwrap(),
        }
    }
    w.finish().unwrap();
}

fn image(
    stamp: u64,
    frame: &str,
    encoding: &str,
    w: u32,
    h: u32,
    bpp: u32,
    data: Vec<u8>,
) -> Image {
    Image {
        header: Header::new(stamp, frame),
        height: h,
        width: w,
        encoding: encoding.into(),
        is_bigendian: 0,
        step: w * bpp,
        data,
    }
}

const K: [f64; 9] = [50.0, 0.0, 2.0, 0.0, 50.0, 1.5, 0.0, 0.0, 1.0];

fn info(stamp: u64, frame: &str) -> CameraInfo {
    CameraInfo::pinhole(Header::new(stamp, frame), 4, 3, K)
}

fn err(path: &Path) -> String {
    open_recording(path, &ReadOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn encodings_decode_and_colour_pairs_with_the_nearest_depth() {
    let dir = temp_dir("enc");
    let bgr: Vec<u8> = (0..12).flat_map(|i| [i as u8, 100, 200]).collect();
    let depth_m: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    let p = dir.join("bgr_32f.mcap");
    write(
        &p,
        &[
            (
                "/c/image",
                Msg::Img(image(1_000_000_000, "cam", "bgr8", 4, 3, 3, bgr)),
            ),
            (
                "/d/image",
                Msg::Img(image(
                    1_004_000_000,
                    "cam",
                    "32FC1",
                    4,
                    3,
                    4,
                    depth_m.clone(),
                )),
            ),
            (
                "/c/image",
                Msg::Img(image(
                    2_000_000_000,
                    "cam",
                    "mono8",
                    4,
                    3,
                    1,
                    (0..12).collect(),
                )),
            ),
            (
                "/d/image",
                Msg::Img(image(2_020_000_000, "cam", "32FC1", 4, 3, 4, depth_m)),
            ),
            (
                "/c/camera_info",
                Msg::Info(Box::new(info(1_000_000_000, "cam"))),
            ),
        ],
    );
    let rec = open_recording(&p, &ReadOptions::default()).unwrap();
    // The second colour image's depth is 20 ms away: beyond the 10 ms tolerance.
    assert_eq!((rec.len(), rec.unpaired), (1, 1));
    let note = rec.unpaired_note().unwrap_or_default();
    assert!(
        note.contains("1 of 2 colour images of '/c/image'"),
        "{note}"
    );
    assert!(note.contains("'/d/image' within 10 ms"), "{note}");
    // Converting it to a BOP folder says what it left out.
    let back = p.with_extension("bop");
    let s = mcap_bop::run_convert(&ConvertArgs::new(&p, &back)).unwrap();
    assert_eq!((s.frames, s.unpaired), (1, 1));
    assert!(s
        .to_string()
        .contains("1 colour images without a depth image were left out"));
    let f = rec.frame(0).unwrap();
    assert_eq!(f.rgb().get_pixel(1, 0).0, [200, 100, 1]); // bgr8 → rgb
    assert_eq!(f.depth().data[3], 1.5);
    assert_eq!(f.frame.stamp, Some(1.0));
    assert!(f.depth_raw.is_none());
    assert_eq!(f.stamp_ns, 1_000_000_000);
    let wide = ReadOptions {
        tolerance_ns: 30_000_000,
        ..ReadOptions::default()
    };
    let rec = open_recording(&p, &wide).unwrap();
    assert_eq!(rec.len(), 2);
    assert_eq!(rec.frame(1).unwrap().rgb().get_pixel(2, 0).0, [2, 2, 2]); // mono8

    // compressedDepth (16UC1 png): 12-byte header, then a PNG; read as mm (no BopFrame).
    let raw = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(4, 3, |x, y| {
        image::Luma([(x + 4 * y) as u16 * 100])
    });
    let mut png = Vec::new();
    raw.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let mut data = vec![0u8; COMPRESSED_DEPTH_HEADER_LEN];
    data.extend(png);
    let p = dir.join("compressed_depth.mcap");
    write(
        &p,
        &[
            (
                "/c/image",
                Msg::Img(image(5, "cam", "rgb8", 4, 3, 3, vec![9; 36])),
            ),
            (
                "/d/compressedDepth",
                Msg::Comp(CompressedImage {
                    header: Header::new(5, "cam"),
                    format: "16UC1; compressedDepth png".into(),
                    data,
                }),
            ),
            ("/c/camera_info", Msg::Info(Box::new(info(5, "cam")))),
        ],
    );
    let f = open_recording(&p, &ReadOptions::default())
        .unwrap()
        .frame(0)
        .unwrap();
    assert_eq!(f.depth_raw.as_ref().unwrap()[5], 500);
    assert!((f.depth().data[5] - 0.5).abs() < 1e-7); // 500 mm
}

#[test]
fn what_would_give_wrong_poses_is_refused_with_a_clear_error() {
    let dir = temp_dir("refuse");
    let rgb = || Msg::Img(image(5, "cam", "rgb8", 4, 3, 3, vec![1; 36]));
    let depth = |frame: &str, w: u32| {
        Msg::Img(image(5, frame, "16UC1", w, 3, 2, vec![1; (w * 6) as usize]))
    };

    // No image topic: the error lists the topics.
    let p = dir.join("no_images.mcap");
    write(
        &p,
        &[("/c/camera_info", Msg::Info(Box::new(info(5, "cam"))))],
    );
    let e = err(&p);
    assert!(
        e.contains("no image topic")
            && e.contains("/c/camera_info (sensor_msgs/msg/CameraInfo, 1 messages)"),
        "{e}"
    );

    // Missing camera_info.
    let p = dir.join("no_info.mcap");
    write(&p, &[("/c/image", rgb()), ("/d/image", depth("cam", 4))]);
    let e = err(&p);
    assert!(e.contains("missing camera_info"), "{e}");

    // Distortion hdpf does not undo.
    let p = dir.join("distorted.mcap");
    let mut i = info(5, "cam");
    i.d = vec![0.1, 0.0, 0.0, 0.0, 0.0];
    write(
        &p,
        &[
            ("/c/image", rgb()),
            ("/d/image", depth("cam", 4)),
            ("/c/camera_info", Msg::Info(Box::new(i))),
        ],
    );
    let e = err(&p);
    assert!(
        e.contains("distortion d[0] = 0.1") && e.contains("/c/camera_info"),
        "{e}"
    );

    // Depth in another optical frame, or of another size: not registered to the colour camera.
    let p = dir.join("unregistered.mcap");
    write(
        &p,
        &[
            ("/c/image", rgb()),
            ("/d/image", depth("depth_optical", 4)),
            ("/c/camera_info", Msg::Info(Box::new(info(5, "cam")))),
        ],
    );
    let e = err(&p);
    assert!(
        e.contains("not registered") && e.contains("depth_optical"),
        "{e}"
    );
    let p = dir.join("other_size.mcap");
    write(
        &p,
        &[
            ("/c/image", rgb()),
            ("/d/image", depth("cam", 2)),
            ("/c/camera_info", Msg::Info(Box::new(info(5, "cam")))),
        ],
    );
    assert!(err(&p).contains("2x3"), "{}", err(&p));

    // A depth camera_info with another K, the depth raw or behind image_transport's
    // compressedDepth sub-topic.
    let raw = image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(4, 3, image::Luma([7u16]));
    let mut data = vec![0u8; COMPRESSED_DEPTH_HEADER_LEN];
    let mut png = Vec::new();
    raw.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    data.extend(png);
    let comp = CompressedImage {
        header: Header::new(5, "cam"),
        format: "16UC1; compressedDepth png".into(),
        data,
    };
    let cases = [
        ("other_k", "/d/image", depth("cam", 4), 0),
        (
            "other_k_compressed",
            "/d/image/compressedDepth",
            Msg::Comp(comp),
            2,
        ),
    ];
    for (name, depth_topic, depth_msg, k_index) in cases {
        let p = dir.join(format!("{name}.mcap"));
        let mut dk = info(5, "cam");
        dk.k[k_index] += 0.5;
        write(
            &p,
            &[
                ("/c/image", rgb()),
                (depth_topic, depth_msg),
                ("/c/camera_info", Msg::Info(Box::new(info(5, "cam")))),
                ("/d/camera_info", Msg::Info(Box::new(dk))),
            ],
        );
        let e = err(&p);
        assert!(
            e.contains("not registered") && e.contains("/d/camera_info"),
            "{name}: {e}"
        );
    }

    // Not an MCAP file; a truncated one.
    let p = dir.join("garbage.mcap");
    std::fs::write(&p, b"not an mcap file").unwrap();
    assert!(err(&p).contains("not a valid MCAP"), "{}", err(&p));
    assert!(mcap_info::mcap_info(&p)
        .unwrap_err()
        .to_string()
        .contains("not a valid MCAP"));
    let good = std::fs::read(dir.join("other_k.mcap")).unwrap();
    let p = dir.join("truncated.mcap");
    std::fs::write(&p, &good[..good.len() / 2]).unwrap();
    let e = mcap_info::mcap_info(&p).unwrap_err().to_string();
    assert!(e.contains("truncated.mcap"), "{e}");
    // A BopFrame on its own is not an image topic either.
    let p = dir.join("bop_only.mcap");
    let mut w = RosMcapWriter::create(&p, ChunkCompression::Zstd).unwrap();
    w.write("/hdpf/bop_frame", 1, &BopFrame::default()).unwrap();
    w.finish().unwrap();
    assert!(err(&p).contains("/hdpf/bop_frame (hdpf_msgs/msg/BopFrame, 1 messages)"));
}

/// Writes a recording with the mcap crate's own writer: 3 channels (one never used, one JSON
/// without schema), `n` messages spread over them.
fn write_with_options(path: &Path, opts: mcap::WriteOptions, n: u64) -> BTreeMap<String, u64> {
    let mut w = opts
        .create(std::io::BufWriter::new(
            std::fs::File::create(path).unwrap(),
        ))
        .unwrap();
    let schema = w
        .add_schema("sensor_msgs/msg/Image", "ros2msg", b"uint32 height")
        .unwrap();
    let a = w
        .add_channel(schema, "/a", "cdr", &BTreeMap::new())
        .unwrap();
    let b = w.add_channel(0, "/b", "json", &BTreeMap::new()).unwrap();
    w.add_channel(schema, "/unused", "cdr", &BTreeMap::new())
        .unwrap();
    for i in 0..n {
        let channel_id = if i % 3 == 0 { b } else { a };
        let header = mcap::records::MessageHeader {
            channel_id,
            sequence: i as u32,
            log_time: 1000 + 7 * i,
            publish_time: 0,
        };
        w.write_to_known_channel(&header, &[0, 1, 0, 0, i as u8])
            .unwrap();
    }
    w.finish().unwrap();
    drop(w);
    // What the mcap crate's reader counts.
    let bytes = std::fs::read(path).unwrap();
    let mut counts = BTreeMap::new();
    for m in mcap::MessageStream::new(&bytes).unwrap() {
        *counts.entry(m.unwrap().channel.topic.clone()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn info_reads_every_writer_configuration_and_counts_as_the_mcap_reader() {
    let dir = temp_dir("info");
    let configs: Vec<(&str, mcap::WriteOptions)> = vec![
        ("chunked-zstd", mcap::WriteOptions::new()),
        (
            "chunked-lz4",
            mcap::WriteOptions::new().compression(Some(mcap::Compression::Lz4)),
        ),
        (
            "chunked-uncompressed",
            mcap::WriteOptions::new().compression(None),
        ),
        ("unchunked", mcap::WriteOptions::new().use_chunks(false)),
        (
            "small-chunks",
            mcap::WriteOptions::new().chunk_size(Some(64)),
        ),
        (
            "no-summary",
            mcap::WriteOptions::new()
                .emit_summary_records(false)
                .emit_summary_offsets(false)
                .emit_statistics(false)
                .emit_chunk_indexes(false)
                .emit_message_indexes(false),
        ),
        (
            "unchunked-no-summary",
            mcap::WriteOptions::new()
                .use_chunks(false)
                .emit_summary_records(false)
                .emit_statistics(false),
        ),
    ];
    for (name, opts) in configs {
        let p = dir.join(format!("{name}.mcap"));
        let counts = write_with_options(&p, opts, 50);
        let info = mcap_info::mcap_info(&p).unwrap();
        let topics: Vec<&str> = info.topics.iter().map(|t| t.topic.as_str()).collect();
        assert_eq!(topics, ["/a", "/b", "/unused"], "{name}");
        for t in &info.topics {
            assert_eq!(
                t.messages,
                counts.get(&t.topic).copied().unwrap_or(0),
                "{name} {}",
                t.topic
            );
        }
        assert_eq!(
            (
                info.topics[0].schema.as_str(),
                info.topics[1].schema.as_str()
            ),
            ("sensor_msgs/msg/Image", "")
        );
        assert_eq!(info.topics[1].encoding, "json");
        assert_eq!(
            (info.start_ns, info.end_ns),
            (Some(1000), Some(1000 + 7 * 49)),
            "{name}"
        );
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["topics"][0]["messages"], 33);
    }
    // No messages: start and end are null.
    let p = dir.join("empty.mcap");
    write_with_options(&p, mcap::WriteOptions::new(), 0);
    let json = serde_json::to_value(mcap_info::mcap_info(&p).unwrap()).unwrap();
    assert!(
        json["start_ns"].is_null() && json["end_ns"].is_null(),
        "{json}"
    );
    assert_eq!(json["topics"].as_array().unwrap().len(), 3);
}

/// The JSON parser must give the nearest f64 (serde_json's `float_roundtrip`): its default fast path
/// reads this ycbv-mini `cam_R_m2c` entry one ulp off, and both sides of a round-trip comparison
/// made with the same parser would not notice.
#[test]
fn json_numbers_parse_to_the_nearest_f64() {
    for text in [
        "0.9402408046827869",
        "-95.15361987178409",
        "783.8257102003831",
        "0.10024549681716616",
    ] {
        let v: f64 = serde_json::from_str(text).unwrap();
        assert_eq!(v, text.parse::<f64>().unwrap(), "{text}");
    }
}
