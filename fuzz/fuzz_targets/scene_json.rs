//! BOP scene JSON: the same bytes read as `scene_gt.json` and as `scene_camera.json`.
#![no_main]
mod common;
use hdpf::domains::pose::bop::{read_scene_camera, read_scene_gt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gt = common::scratch_file("scene_gt.json", data);
    let _ = read_scene_gt(&gt);
    let cam = common::scratch_file("scene_camera.json", data);
    let _ = read_scene_camera(&cam, 640, 480);
});
