//! How the `hdpf` process asks the C allocator to hand memory back.
//!
//! glibc serves an allocation of at least `M_MMAP_THRESHOLD` bytes (128 KiB at start) with its own
//! `mmap`, returned to the system when freed — but after the first such block is freed it raises the
//! threshold to that block's size (up to 32 MiB), so from then on every image buffer (0.3–1.2 MB
//! at 640×480) comes from the heap arenas of whichever thread allocated it. Frames are made in the
//! source thread and freed in tracker threads, so the arenas fragment and the resident memory creeps
//! for minutes. Measured with `hdpf bench soak --minutes 4` (8 objects, 640×480, rfpf + sir, on a
//! loaded machine): RSS 92–99 MiB and still rising with the default, 41–51 MiB with the threshold
//! fixed (point readings, which swing with the frames in flight).
//!
//! [`release_large_buffers`] fixes the threshold at 128 KiB (which also stops the dynamic raise),
//! unless the user set `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` (glibc's own knobs), which then
//! win. The cost is one `mmap`/`munmap` pair and fresh zeroed pages per buffer of 128 KiB or more
//! (images, and particle arrays from about 1 600 particles of dimension 10).
//!
//! Smaller blocks stay in the arenas, one per thread that allocates, and an arena keeps the pages
//! of its high-water mark: with the threshold fixed, RSS still rose from 61.5 to 65.7 MiB between
//! minutes 2 and 5 of that soak and then stayed flat — not a leak, but indistinguishable from one in
//! a memory plot (interval means of that soak; 10 minutes in the README). [`start_trimming`] runs
//! `malloc_trim(0)` on a background thread at a fixed period, which hands the free pages inside
//! the arenas back (`madvise`), so RSS follows the memory in use. `hdpf` starts it only for the
//! commands that stream for as long as their input lasts (`track`, `launch`, `replay`, the main
//! job, `bench soak`): a trim locks each arena briefly, which the timing benchmarks should not see.

/// Allocations of at least this many bytes get their own mapping (glibc's initial default).
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] for this process (see the module docs);
/// returns whether it was set. Does nothing (returns `false`) on other C libraries or when
/// `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` is set.
pub fn release_large_buffers() -> bool {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
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
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_threshold() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_threshold() {
        // The test runner does not set glibc's environment knob; if a user does, we step aside.
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none()
            && std::env::var_os("GLIBC_TUNABLES").is_none()
        {
            assert!(release_large_buffers());
        }
    }
}
