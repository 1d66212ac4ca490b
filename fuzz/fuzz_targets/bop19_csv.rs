//! BOP19 results CSV (`scene_id,im_id,obj_id,score,R,t,time`).
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch_file("results.csv", data);
    let _ = hdpf::domains::pose::bop::read_results(&path);
});
