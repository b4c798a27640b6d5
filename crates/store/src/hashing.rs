//! Password hashing on a few long-lived threads of its own.
//!
//! Argon2id (the crate's defaults) fills 19 MiB per hash. Run on tokio's
//! blocking pool, a burst of logins spreads those allocations over many
//! threads, and the allocator keeps each thread's arena at its high-water
//! mark: a thousand logins at once left over a gigabyte resident. Here one
//! thread per core does every hash, one at a time each, so at most that
//! many 19 MiB blocks ever exist and the same arenas are reused.

use std::sync::mpsc;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::{Result, StoreError};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads for password hashing and verification.
pub(crate) struct PasswordWorkers {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl PasswordWorkers {
    /// Starts `threads` workers (at least one). They end when the
    /// `PasswordWorkers` is dropped.
    pub fn start(threads: usize) -> Result<PasswordWorkers> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("postern-password-{n}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })?;
        }
        Ok(PasswordWorkers {
            jobs: Mutex::new(tx),
        })
    }

    /// Runs `f` on a worker and waits for its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(f());
        });
        self.jobs
            .lock()
            .map_err(|_| StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)
    }
}
