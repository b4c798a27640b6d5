//! Who holds the queue's claims, so that claims left by a process that
//! died are taken back at once instead of after their lease.
//!
//! A store that claims queue work first becomes a claim owner: it creates
//! `claims/<id>.lock` in the data dir and holds an exclusive lock on it
//! (`flock`) for as long as the store is open. Every claim it makes names
//! that id. The kernel drops the lock when the process ends, however it
//! ends (`kill -9` included), so a lock file that another process can lock
//! belongs to an owner that is gone, and its claims can be released: no
//! delivery of it is still running. A lock file that cannot be locked
//! belongs to a live process, whose claims are left to run out as before.
//!
//! Where the lock cannot be made (a read-only data dir), claims carry no
//! owner and only their lease frees them, as before owners existed.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// The directory of the owners' lock files, inside the data dir.
const DIR: &str = "claims";

/// This store's identity as a claimer, with its lock held.
pub(crate) struct ClaimOwner {
    pub(crate) id: String,
    path: PathBuf,
    /// Holds the lock; closing it (at drop, or when the process ends)
    /// lets go.
    _file: File,
}

impl Drop for ClaimOwner {
    fn drop(&mut self) {
        // A clean end: nobody needs to look at this owner again (its
        // claims were finished or released by the queue manager).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Becomes a claim owner under a new random id.
pub(crate) fn become_owner(data_dir: &Path) -> io::Result<ClaimOwner> {
    let dir = data_dir.join(DIR);
    std::fs::create_dir_all(&dir)?;
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    let id = hex::encode(bytes);
    let path = dir.join(format!("{id}.lock"));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.try_lock().map_err(|e| match e {
        TryLockError::Error(e) => e,
        TryLockError::WouldBlock => io::Error::other("a new claim lock is already held"),
    })?;
    Ok(ClaimOwner {
        id,
        path,
        _file: file,
    })
}

/// An owner found gone: its lock is held here until [`DeadOwner::forget`].
pub(crate) struct DeadOwner {
    pub(crate) id: String,
    path: PathBuf,
    _file: File,
}

impl DeadOwner {
    /// Removes its lock file, once its claims are released.
    pub(crate) fn forget(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The owners' lock files in the data dir: each id and path.
fn owner_files(data_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(DIR)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".lock"))
                .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_owned)?;
            Some((id, path))
        })
        .collect()
}

/// The owners in the data dir whose process is gone (their lock could be
/// taken), other than `own`.
pub(crate) fn dead_owners(data_dir: &Path, own: Option<&str>) -> Vec<DeadOwner> {
    let mut dead = Vec::new();
    for (id, path) in owner_files(data_dir) {
        if Some(id.as_str()) == own {
            continue;
        }
        let Ok(file) = OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        match file.try_lock() {
            Ok(()) => dead.push(DeadOwner {
                id,
                path,
                _file: file,
            }),
            // Alive (or not ours to judge): its claims run out by lease.
            Err(TryLockError::WouldBlock | TryLockError::Error(_)) => {}
        }
    }
    dead
}

/// How many processes have the data dir's store open as claim owners
/// (their lock is held): a running `postern up` or queue manager.
pub(crate) fn live_owners(data_dir: &Path) -> usize {
    owner_files(data_dir)
        .into_iter()
        .filter(|(_, path)| {
            OpenOptions::new()
                .write(true)
                .open(path)
                .is_ok_and(|file| matches!(file.try_lock(), Err(TryLockError::WouldBlock)))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_alive_and_a_dropped_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let a = become_owner(dir.path()).unwrap();
        let b = become_owner(dir.path()).unwrap();
        assert_ne!(a.id, b.id);
        // Both alive: neither sees the other as gone.
        assert!(dead_owners(dir.path(), Some(&a.id)).is_empty());
        // A lock file left by an owner whose lock is no longer held (the
        // process died: the kernel dropped its lock, the file stayed).
        let left = dir.path().join(DIR).join("00ff.lock");
        File::create(&left).unwrap();
        let dead = dead_owners(dir.path(), Some(&a.id));
        assert_eq!(
            dead.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["00ff"]
        );
        // Found gone by one, it is not found by another meanwhile.
        assert!(dead_owners(dir.path(), Some(&b.id)).is_empty());
        for d in dead {
            d.forget();
        }
        assert!(!left.exists());
        // A clean end removes the owner's file.
        let path = b.path.clone();
        drop(b);
        assert!(!path.exists());
        // Names that are not owners' are left alone.
        File::create(dir.path().join(DIR).join("notes.txt")).unwrap();
        assert!(dead_owners(dir.path(), Some(&a.id)).is_empty());
    }
}
