//! The digits CSV (label then 64 pixel values per line) that `hdpf learn` reads.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = hdpf::domains::learn::data::parse_digits(data, Path::new("digits.csv"));
});
