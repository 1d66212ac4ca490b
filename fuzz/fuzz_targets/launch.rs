//! Launch files with `--set` overrides: the input's first line (up to a newline) is split on `;`
//! into overrides, the rest is the TOML text. Validation runs in full (nothing is started).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, toml) = text.split_once('\n').unwrap_or(("", text));
    let overrides: Vec<String> = first
        .split(';')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let _ = hdpf::app::launch::load_str(Path::new("fuzz.toml"), toml, &overrides);
});
