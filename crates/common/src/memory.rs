//! How the process's memory is given back to the system.
//!
//! glibc's allocator serves a large request (from 128 KiB) with its own
//! `mmap` and unmaps it on free, but it raises that threshold to the size
//! of each such block freed, up to 32 MiB. An argon2id check allocates
//! 19 MiB and frees it: after the first login every later one is served
//! from the heap arenas of the thread that ran it, and a burst of logins
//! leaves those arenas grown for good. Measured with
//! `bench/idle_memory.py --imap` (1,000 IMAP logins into IDLE on a fresh
//! `postern up`): 98 KiB per session counted from the fresh process with
//! the moving threshold, 5.4 KiB with it fixed at 128 KiB.
//!
//! [`pin_mmap_threshold`] fixes it at glibc's default, so large transient
//! buffers (password hashes, big message bodies) go back to the system
//! as soon as they are freed. Setting `MALLOC_MMAP_THRESHOLD_` in the
//! environment (glibc's own tunable) keeps the operator's value instead.

/// The size from which glibc serves an allocation with its own mapping:
/// its documented default.
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] (see the module
/// documentation), unless the environment sets it. Does nothing on other
/// C libraries. Call once, early in `main`.
pub fn pin_mmap_threshold() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    pin();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn pin() {
    let threshold = libc::c_int::try_from(MMAP_THRESHOLD).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt takes two integers, touches only the allocator's own
    // settings (under its own lock) and may be called at any time; a
    // failure returns 0 and leaves the allocator as it was.
    let done = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) };
    if done == 0 {
        tracing::debug!("mallopt(M_MMAP_THRESHOLD) refused");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn pin() {}

#[cfg(test)]
mod tests {
    #[test]
    fn pinning_twice_is_harmless() {
        super::pin_mmap_threshold();
        super::pin_mmap_threshold();
        // Allocations of both kinds still work afterwards.
        let big = vec![1u8; 4 * super::MMAP_THRESHOLD];
        let small = Box::new([2u8; 64]);
        assert_eq!(
            big.iter().map(|&b| u64::from(b)).sum::<u64>(),
            4 * 128 * 1024
        );
        assert_eq!(small[63], 2);
    }
}
