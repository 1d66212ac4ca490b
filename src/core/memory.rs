//! Memory budgets: a size a user supplies (particles, dimensions) is checked against what it would
//! allocate before anything is allocated, so a too-large value is an error naming the value and the
//! memory it would need, not an abort in the allocator.
//!
//! The budget is `HDPF_MAX_MEMORY` (bytes, or with a `K`/`M`/`G`/`T` suffix, powers of 1024) when set,
//! else the memory the machine has available now (`MemAvailable` of `/proc/meminfo`); where neither
//! is known only arithmetic overflow is refused.

use crate::core::error::{Error, Result};

/// The environment variable that caps the memory hdpf may plan to use.
pub const MAX_MEMORY_ENV: &str = "HDPF_MAX_MEMORY";

/// `"512M"` → 536870912; bare numbers are bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_uppercase()),
        _ => (s, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return None,
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * (1u64 << shift) as f64) as u64)
}

static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Set the budget for the rest of the process (the `--max-memory` flag): `"4G"`, `"512M"`, bytes.
/// Refuses a value that is not a size; false when a limit was already set.
pub fn set_limit(value: &str) -> Result<bool> {
    let bytes = parse_limit("--max-memory", value)?;
    Ok(LIMIT.set(bytes).is_ok())
}

/// `value` as a budget in bytes, or an error naming `name` (the flag or the variable it came
/// from) and the value.
fn parse_limit(name: &str, value: &str) -> Result<u64> {
    parse_bytes(value)
        .ok_or_else(|| Error::param(name, value, "expected bytes or a size like 512M, 4G"))
}

/// Refuses an `HDPF_MAX_MEMORY` that is set but is not a size (`4GB`, say), so that a mistyped
/// budget is an error at start rather than no budget at all. The command line checks it unless
/// `--max-memory` overrides it; [`budget`] skips such a value.
pub fn check_env() -> Result<()> {
    match std::env::var(MAX_MEMORY_ENV) {
        Ok(v) => parse_limit(MAX_MEMORY_ENV, &v).map(|_| ()),
        Err(_) => Ok(()),
    }
}

/// Whether the user set a budget (`--max-memory` or a `HDPF_MAX_MEMORY` that is a size), as
/// opposed to the machine's available memory.
pub fn explicit_budget() -> bool {
    LIMIT.get().is_some() || env_budget().is_some()
}

/// `HDPF_MAX_MEMORY` in bytes, when it is set and is a size ([`check_env`] refuses the rest).
fn env_budget() -> Option<u64> {
    parse_bytes(&std::env::var(MAX_MEMORY_ENV).ok()?)
}

/// The budget in bytes: the `--max-memory` limit, else `HDPF_MAX_MEMORY` (when it is a size:
/// [`check_env`]), else `MemAvailable`, else unknown.
pub fn budget() -> Option<u64> {
    if let Some(&b) = LIMIT.get() {
        return Some(b);
    }
    if let Some(b) = env_budget() {
        return Some(b);
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// `bytes` in a readable unit.
pub fn human(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes;
    let mut k = 0;
    while v >= 1024.0 && k + 1 < units.len() {
        v /= 1024.0;
        k += 1;
    }
    format!("{v:.1} {}", units[k])
}

/// Refuses `name = value` when `count` items of `item_bytes` bytes (`count` = the product of
/// `factors`) overflow or exceed the budget.
pub fn check(name: &str, value: impl ToString, factors: &[usize], item_bytes: usize) -> Result<()> {
    check_against(budget(), name, value, factors, item_bytes)
}

/// [`check`] against a budget read once by the caller (for loops over many sizes: [`budget`]
/// reads `/proc/meminfo`).
pub fn check_against(
    budget: Option<u64>,
    name: &str,
    value: impl ToString,
    factors: &[usize],
    item_bytes: usize,
) -> Result<()> {
    let need = factors.iter().map(|&f| f as f64).product::<f64>() * item_bytes as f64;
    let overflow = factors
        .iter()
        .try_fold(item_bytes, |acc, &f| acc.checked_mul(f))
        .is_none();
    if !overflow && budget.is_none_or(|b| need <= b as f64) {
        return Ok(());
    }
    let have = budget.map_or("more than this machine can address".into(), |b| {
        format!("{} available", human(b as f64))
    });
    let why = format!(
        "would need {} of memory ({have}; --max-memory or {MAX_MEMORY_ENV} sets the budget)",
        human(need)
    );
    Err(Error::param(name, value, why))
}

/// Reads a whole file after checking that `factor` × its size fits the budget (`factor` counts what
/// is built from the bytes besides them, e.g. 2 when every message is kept once more decoded).
pub fn read_file(path: &std::path::Path, factor: usize) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    check(
        &path.display().to_string(),
        format!("{len} bytes"),
        &[len, factor.max(1)],
        1,
    )?;
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_budgets() {
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes("2g"), Some(2 << 30));
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("4GB"), None);
        let e = parse_limit(MAX_MEMORY_ENV, "4GB").unwrap_err().to_string();
        assert!(e.contains(MAX_MEMORY_ENV) && e.contains("4GB"), "{e}");
        assert_eq!(human(1536.0), "1.5 KiB");
        // 1e11 particles × 6 dimensions × 8 bytes is 4.4 TiB: more than any budget here.
        let e = check("particles", 100_000_000_000u64, &[100_000_000_000, 6], 8).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("particles") && e.contains("100000000000") && e.contains("TiB"),
            "{e}"
        );
        assert!(check("particles", "huge", &[usize::MAX, 2], 8).is_err());
        assert!(check("particles", 100, &[100, 6], 8).is_ok());
    }
}
