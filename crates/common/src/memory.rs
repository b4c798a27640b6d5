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
//!
//! Smaller blocks come from arenas, and glibc gives an arena's memory
//! back only from its top: what a burst of work (a SORT that builds its
//! index, a search over 50,000 messages, a FETCH of many bodies) leaves
//! free below a block still in use stays in the process. glibc also makes
//! a new arena for each thread that allocates while the others' are busy,
//! up to eight per core, and each one keeps its own free memory.
//! [`limit_arenas`] caps their number (`[memory] arena_max`), and
//! [`Trimmer`] hands free pages of every arena back (`malloc_trim`) when a
//! session ends, at most once per `[memory] trim_interval_ms`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    let threshold = libc_int(MMAP_THRESHOLD);
    if !glibc::mallopt(glibc::Setting::MmapThreshold, threshold) {
        tracing::debug!("mallopt(M_MMAP_THRESHOLD) refused");
    }
}

/// Lets glibc make at most `max` heap arenas (0: its own default of
/// eight per core), unless the environment sets `MALLOC_ARENA_MAX`.
/// Threads that allocate at once then share arenas (each arena has its
/// own lock) instead of each keeping free memory of its own. Call before
/// the threads that allocate start; arenas made before are kept.
pub fn limit_arenas(max: usize) {
    if max == 0 || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    if !glibc::mallopt(glibc::Setting::ArenaMax, libc_int(max)) {
        tracing::debug!("mallopt(M_ARENA_MAX) refused");
    }
}

fn libc_int(n: usize) -> libc::c_int {
    libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX)
}

/// The process's trimmer, once [`Trimmer::start`] ran.
static TRIMMER: OnceLock<Trimmer> = OnceLock::new();

/// Gives the free pages of the allocator's arenas back to the system
/// after work that freed memory ended (a session closed), at most once
/// per interval: a burst of sessions ending costs one trim.
#[derive(Clone)]
pub struct Trimmer {
    shared: Arc<TrimShared>,
}

struct TrimShared {
    wake: Notify,
    /// A trim is asked for and not yet begun.
    asked: AtomicBool,
}

impl Trimmer {
    /// Starts the process's trimmer on `tracker` (it stops with
    /// `shutdown`); `interval` is the least time between two trims
    /// (zero: the trimmer does not start, nothing is trimmed). Only the
    /// first call in a process starts one.
    pub fn start(interval: Duration, shutdown: &CancellationToken, tracker: &TaskTracker) {
        if interval.is_zero() || !glibc::AVAILABLE {
            return;
        }
        let trimmer = Trimmer {
            shared: Arc::new(TrimShared {
                wake: Notify::new(),
                asked: AtomicBool::new(false),
            }),
        };
        if TRIMMER.set(trimmer.clone()).is_err() {
            return;
        }
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = trimmer.shared.wake.notified() => {}
                }
                trimmer.shared.asked.store(false, Ordering::Relaxed);
                // The trim walks every arena's free lists under its lock:
                // off the tokio workers.
                let trimmed = tokio::task::spawn_blocking(trim_now).await;
                if let Ok((before, after, took)) = trimmed {
                    tracing::debug!(
                        rss_before_kib = before,
                        rss_after_kib = after,
                        micros = took.as_micros() as u64,
                        "memory: free pages given back"
                    );
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
    }

    /// Work that freed memory ended: asks the process's trimmer (if one
    /// runs) for a trim, which comes at once or when the interval since
    /// the last one is over.
    pub fn work_ended() {
        if let Some(trimmer) = TRIMMER.get() {
            if !trimmer.shared.asked.swap(true, Ordering::Relaxed) {
                trimmer.shared.wake.notify_one();
            }
        }
    }
}

/// Trims now; the resident size before and after, in KiB, and the time
/// the trim took.
fn trim_now() -> (u64, u64, Duration) {
    let before = resident_kib();
    let start = Instant::now();
    glibc::trim();
    let took = start.elapsed();
    (before, resident_kib(), took)
}

/// The process's resident set size in KiB (0 where /proc cannot say).
pub fn resident_kib() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    pub(super) const AVAILABLE: bool = true;

    pub(super) enum Setting {
        MmapThreshold,
        ArenaMax,
    }

    /// Sets one of the allocator's settings; false if glibc refused.
    pub(super) fn mallopt(setting: Setting, value: libc::c_int) -> bool {
        let param = match setting {
            Setting::MmapThreshold => libc::M_MMAP_THRESHOLD,
            Setting::ArenaMax => libc::M_ARENA_MAX,
        };
        // SAFETY: mallopt takes two integers, touches only the
        // allocator's own settings (under its own lock) and may be called
        // at any time; a failure returns 0 and leaves the allocator as it
        // was.
        unsafe { libc::mallopt(param, value) != 0 }
    }

    /// Gives the free pages of every arena back to the system.
    pub(super) fn trim() {
        // SAFETY: malloc_trim takes a byte count to leave at each heap's
        // top and works under each arena's lock, like malloc and free; it
        // frees nothing in use.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    pub(super) const AVAILABLE: bool = false;

    pub(super) enum Setting {
        MmapThreshold,
        ArenaMax,
    }

    pub(super) fn mallopt(_: Setting, _: libc::c_int) -> bool {
        true
    }

    pub(super) fn trim() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_twice_is_harmless() {
        pin_mmap_threshold();
        pin_mmap_threshold();
        // Allocations of both kinds still work afterwards.
        let big = vec![1u8; 4 * MMAP_THRESHOLD];
        let small = Box::new([2u8; 64]);
        assert_eq!(
            big.iter().map(|&b| u64::from(b)).sum::<u64>(),
            4 * 128 * 1024
        );
        assert_eq!(small[63], 2);
    }

    #[test]
    fn trimming_gives_freed_pages_back_and_keeps_what_is_used() {
        // Many small blocks (from an arena, not mmap), then most freed.
        let mut blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 1000]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter().step_by(100).cloned().collect();
        blocks.clear();
        blocks.shrink_to_fit();
        let (before, after, _) = trim_now();
        if glibc::AVAILABLE {
            assert!(after <= before, "{before} KiB before, {after} after");
        }
        for (i, block) in kept.iter().enumerate() {
            assert!(block.iter().all(|&b| b == (i * 100) as u8));
        }
        assert!(resident_kib() > 0);
    }

    #[tokio::test]
    async fn one_trimmer_a_process_and_asking_without_one_is_harmless() {
        Trimmer::work_ended();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        Trimmer::start(Duration::from_millis(10), &shutdown, &tracker);
        Trimmer::start(Duration::from_millis(10), &shutdown, &tracker);
        assert!(tracker.len() <= 1);
        for _ in 0..100 {
            Trimmer::work_ended();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
