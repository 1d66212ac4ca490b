//! PLY meshes, ASCII and binary (little/big endian): any bytes give a mesh or an error, never a
//! panic or an allocation the header's counts ask for without the bytes to back them.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch_file("mesh.ply", data);
    let _ = hdpf::domains::pose::Mesh::load_ply(&path);
});
