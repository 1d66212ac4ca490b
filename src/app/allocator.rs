//! How the `hdpf` process asks the C allocator to hand memory back without paying for it on
//! every frame.
//!
//! glibc serves an allocation of at least `M_MMAP_THRESHOLD` bytes (128 KiB at start) with its own
//! `mmap`, returned to the system when freed — but after the first such block is freed it raises the
//! threshold to that block's size (up to 32 MiB), so from then on every image buffer (0.3–1.2 MB
//! at 640×480) comes from the heap arenas of whichever thread allocated it. Frames are made in the
//! source thread and freed in tracker threads, so the arenas fragment and the resident memory creeps
//! for minutes. Measured with `hdpf bench soak --minutes 4` (8 objects, 640×480, rfpf + sir, on a
//! loaded machine): RSS 92–99 MiB and still rising with the default.
//!
//! Two settings, both glibc's own knobs:
//! - [`start_trimming`] runs `malloc_trim(0)` on a background thread at a fixed period, which hands
//!   the free pages inside the arenas back (`madvise`), so RSS follows the memory in use. `hdpf`
//!   starts it for the commands that stream for as long as their input lasts (`track`, `launch`,
//!   `replay`, the main job, `bench soak`, and `bench zenoh`, whose hop is a streaming
//!   receiver's): a trim locks each arena briefly, which the compute benchmarks should not see.
//! - [`release_large_buffers`] fixes the mmap threshold at [`MMAP_THRESHOLD`] (glibc's largest,
//!   32 MiB; fixing it stops the dynamic raise), so that image buffers are reused from the arenas
//!   instead of being mapped and faulted in afresh, and the trim threshold at [`TRIM_THRESHOLD`]
//!   (2 MiB, above one 640×480 image's buffer), so that a heap shrinks on `free` only when more
//!   than that is free at its top: at glibc's 128 KiB an image buffer freed at the top of a heap was
//!   handed back and faulted in again by the next frame. `hdpf bench zenoh --rate 30 --frames 500`,
//!   three interleaved rounds, hop p99: 2.59, 2.01, 2.33 ms at 128 KiB, 1.85, 1.59, 1.80 at 2 MiB
//!   (before the zenoh subscription stopped copying samples; after it: 2.24, 2.10, 2.03 against
//!   1.98, 1.73, 2.31). 8 MiB was no faster and held more: a 4-minute soak grew 69.5 → 93.9 MiB,
//!   while two 2-minute soaks in a row held 62.0 → 72.5 MiB at 128 KiB and 61.5 → 70.9 at 2 MiB.
//!
//! An earlier setting fixed the mmap threshold at 128 KiB instead: every image buffer then got a
//! fresh mapping, so every frame paid an `mmap`/`munmap` pair and a page fault per 4 KiB touched —
//! half of the zenoh hop (`hdpf bench zenoh --rate 30 --frames 1000`, two interleaved rounds on an
//! idle but noisy machine: p50 4.1–4.6 ms and p99 18–23 ms with it, p50 2.2–2.3 ms and p99 9–12 ms
//! with this one). 4-minute soaks (interval means, the machine shared with a build): 128 KiB and
//! the trim 43.6 → 45.6 MiB; 32 MiB and the trim 59.7 → 60.3 MiB — more memory held, and flat. A
//! trim threshold of 64 MiB as well (so that `free` never shrinks a heap) held 76.5 → 83.4 MiB:
//! `malloc_trim` does not give back the top of a thread's arena, only `free` does.
//!
//! `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or `GLIBC_TUNABLES` in the environment turn
//! [`release_large_buffers`] off (the user's setting wins); the trim still runs.

/// Allocations of at least this many bytes get their own mapping (glibc's largest threshold).
pub const MMAP_THRESHOLD: usize = 32 * 1024 * 1024;

/// glibc's environment knobs: when the user sets one, [`release_large_buffers`] changes nothing.
pub const USER_KNOBS: [&str; 3] = [
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "GLIBC_TUNABLES",
];

/// A heap whose free top exceeds this many bytes shrinks on `free` (glibc's default: 128 KiB).
pub const TRIM_THRESHOLD: usize = 2 * 1024 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] for this process (see the module docs)
/// and the trim threshold at [`TRIM_THRESHOLD`]; returns whether both were set. Does nothing
/// (returns `false`) on other C libraries or when one of [`USER_KNOBS`] is set.
pub fn release_large_buffers() -> bool {
    if USER_KNOBS.iter().any(|k| std::env::var_os(k).is_some()) {
        return false;
    }
    set_threshold()
}

/// Starts a background thread that returns the allocator's free pages to the system every
/// `period` (see the module docs); returns whether it started (glibc only). The thread lives as
/// long as the process.
pub fn start_trimming(period: std::time::Duration) -> bool {
    if !trim() {
        return false;
    }
    std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(move || loop {
            std::thread::sleep(period);
            trim();
        })
        .is_ok()
}

/// Bytes the C allocator has handed out and not yet had back (glibc's `mallinfo2`: arena chunks
/// in use plus mapped blocks); `None` on other C libraries. Beside the resident memory it tells a
/// leak (this grows) from fragmentation or pooling (only the resident memory grows). Walks every
/// arena under its lock: for sampling, not for hot paths.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_in_use() -> Option<u64> {
    // SAFETY: mallinfo2 takes no pointers and returns a plain struct.
    let m = unsafe { libc::mallinfo2() };
    Some((m.uordblks + m.hblkhd) as u64)
}

/// See the glibc version: unknown elsewhere.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_in_use() -> Option<u64> {
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointers and locks each arena while it trims it.
    unsafe { libc::malloc_trim(0) };
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_threshold() -> bool {
    // SAFETY: mallopt only changes a malloc tuning parameter; it is thread-safe in glibc and takes
    // no pointers. It returns 1 on success.
    let set = |param, value: usize| unsafe { libc::mallopt(param, value as libc::c_int) == 1 };
    let mmap = set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    let trim = set(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    mmap && trim
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_threshold() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    #[test]
    fn glibc_takes_the_threshold() {
        // The test runner does not set glibc's environment knob; if a user does, we step aside.
        if USER_KNOBS.iter().all(|k| std::env::var_os(k).is_none()) {
            assert!(release_large_buffers());
        }
    }
}
