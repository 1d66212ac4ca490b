//! MCAP recordings: `hdpf dataset info` (any record) and the recording reader that `hdpf track`
//! and the `mcap` source use (CDR messages inside, image pairing, our BopFrame topic), then the
//! first frame decoded.
#![no_main]
mod common;
use hdpf::domains::recording::mcap_info::mcap_info;
use hdpf::domains::recording::mcap_read::{open_recording, ReadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch_file("rec.mcap", data);
    let _ = mcap_info(&path);
    if let Ok(rec) = open_recording(&path, &ReadOptions::default()) {
        if !rec.is_empty() {
            let _ = rec.frame(0);
        }
    }
});
