//! Password hashing on a few long-lived threads of its own.
//!
//! Argon2id (the crate's defaults) fills 19 MiB per hash. Run on tokio's
//! blocking pool, a burst of logins spreads those allocations over many
//! threads, and the allocator keeps each thread's arena at its high-water
//! mark: a thousand logins at once left over a gigabyte resident. Here one
//! thread per core does every hash, one at a time each, so at most that
//! many 19 MiB blocks ever exist and the same arenas are reused.
//!
//! The work waits in a bounded queue ([`crate::work_queue`]); a job whose
//! caller has stopped waiting by its turn (a client that hung up during a
//! login burst) is skipped rather than costing a hash nobody reads.

use tokio::sync::oneshot;

use crate::work_queue::WorkQueue;
use crate::{Result, StoreError};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads for password hashing and verification.
pub(crate) struct PasswordWorkers {
    jobs: WorkQueue<Job>,
}

impl PasswordWorkers {
    /// Starts `threads` workers (at least one), with room for `queue`
    /// waiting jobs. They end when the `PasswordWorkers` is dropped.
    pub fn start(threads: usize, queue: usize) -> Result<PasswordWorkers> {
        let (jobs, taken) = WorkQueue::<Job>::shared(queue);
        for n in 0..threads.max(1) {
            let taken = taken.clone();
            std::thread::Builder::new()
                .name(format!("postern-password-{n}"))
                .spawn(move || {
                    while let Some(job) = taken.next() {
                        job();
                    }
                })?;
        }
        Ok(PasswordWorkers { jobs })
    }

    /// Runs `f` on a worker and waits for its answer. If this future is
    /// dropped before a worker takes the job, `f` never runs.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(f());
        });
        self.jobs.send(job).await?;
        answer.await.map_err(|_| StoreError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_check_whose_caller_has_gone_is_skipped() {
        let workers = Arc::new(PasswordWorkers::start(1, 4).unwrap());

        // Keep the only worker busy until told.
        let (release, busy_until) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel::<()>();
        let busy = tokio::spawn({
            let workers = Arc::clone(&workers);
            async move {
                workers
                    .run(move || {
                        let _ = started_tx.send(());
                        let _ = busy_until.recv();
                    })
                    .await
            }
        });
        started.await.unwrap();

        // A check queued behind it whose caller gives up before its turn.
        let ran = Arc::new(AtomicUsize::new(0));
        let abandoned = tokio::time::timeout(Duration::from_millis(50), {
            let ran = Arc::clone(&ran);
            workers.run(move || ran.fetch_add(1, Ordering::SeqCst))
        })
        .await;
        assert!(
            abandoned.is_err(),
            "the check ran while the worker was busy"
        );

        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // The one worker takes jobs in order: once this one has answered,
        // the abandoned one has had its turn.
        let after = workers.run(|| 42).await.unwrap();
        assert_eq!(after, 42);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "an abandoned check ran");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_checks_through_a_small_queue_all_answer() {
        let workers = Arc::new(PasswordWorkers::start(2, 1).unwrap());
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let workers = Arc::clone(&workers);
                tokio::spawn(async move { workers.run(move || i * 2).await })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), i * 2);
        }
    }
}
