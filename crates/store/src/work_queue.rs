//! Bounded work queues from async callers to the store's own threads (the
//! writer, the readers, the password workers).
//!
//! Each queue is a bounded `crossbeam_channel` of a fixed size, so a
//! burst of requests cannot pile up without limit in memory while the
//! threads are busy. Several threads may take from one queue, and a job
//! wakes one of them only. A caller first takes a slot from a
//! `tokio::sync::Semaphore` with as many permits as the channel has room:
//! when the queue is full it waits for a slot as any future waits, never
//! blocking a tokio worker thread. The slot travels with the job and is
//! given back as soon as a thread takes the job off the queue, so a free
//! slot always means room in the channel.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Result, StoreError};

/// The taking side of a queue served by several threads (the readers, the
/// password workers): each takes the next job when it is free.
pub(crate) struct SharedJobs<T>(Receiver<Queued<T>>);

impl<T> Clone for SharedJobs<T> {
    fn clone(&self) -> Self {
        SharedJobs(self.0.clone())
    }
}

impl<T> SharedJobs<T> {
    /// Waits for the next job (its slot given back); `None` once the
    /// queue is dropped and empty, when the thread is to end.
    pub(crate) fn next(&self) -> Option<T> {
        self.0.recv().ok().map(Queued::take)
    }
}

/// The sending side of a bounded queue of `T`s; its threads hold the
/// [`Receiver`] of [`Queued`] jobs.
pub(crate) struct WorkQueue<T> {
    jobs: Sender<Queued<T>>,
    room: Arc<Semaphore>,
}

/// A job in the queue, holding its slot until a thread takes it out.
pub(crate) struct Queued<T> {
    job: T,
    _slot: OwnedSemaphorePermit,
}

impl<T> Queued<T> {
    /// The job, its slot given back for the next caller.
    pub(crate) fn take(self) -> T {
        self.job
    }
}

impl<T> WorkQueue<T> {
    /// A queue with room for `size` waiting jobs (at least one).
    pub(crate) fn new(size: usize) -> (WorkQueue<T>, Receiver<Queued<T>>) {
        let size = size.clamp(1, Semaphore::MAX_PERMITS);
        let (jobs, rx) = crossbeam_channel::bounded(size);
        let room = Arc::new(Semaphore::new(size));
        (WorkQueue { jobs, room }, rx)
    }

    /// A queue with room for `size` waiting jobs, taken by several threads.
    pub(crate) fn shared(size: usize) -> (WorkQueue<T>, SharedJobs<T>) {
        let (queue, rx) = WorkQueue::new(size);
        (queue, SharedJobs(rx))
    }

    /// Puts `job` on the queue, first waiting (asynchronously) for room.
    /// `Closed` if the threads are gone.
    pub(crate) async fn send(&self, job: T) -> Result<()> {
        let slot = Arc::clone(&self.room)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        match self.jobs.try_send(Queued { job, _slot: slot }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed),
            // A slot is only given back once its job has left the channel.
            Err(TrySendError::Full(_)) => Err(StoreError::Database(
                "internal error: a work queue had a free slot but no room".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// On a single-threaded runtime: were `send` to block its thread while
    /// the queue is full, the test would never get to take a job out.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_makes_senders_wait_without_blocking_the_runtime() {
        let (queue, rx) = WorkQueue::<u32>::new(2);
        let queue = Arc::new(queue);
        queue.send(1).await.unwrap();
        queue.send(2).await.unwrap();

        let waiting = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move { queue.send(3).await }
        });
        // The runtime runs the sender until it waits for a slot.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !waiting.is_finished(),
            "a third job fitted in a queue of two"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), queue.send(4))
                .await
                .is_err(),
            "a sender did not wait for room"
        );

        // Taking a job out gives its slot to the waiting sender.
        assert_eq!(rx.recv().unwrap().take(), 1);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting sender never got the freed slot")
            .unwrap()
            .unwrap();
        let rest: Vec<u32> = rx.try_iter().map(Queued::take).collect();
        assert_eq!(rest, vec![2, 3], "the abandoned fourth job was queued");
    }

    #[tokio::test]
    async fn a_queue_whose_threads_are_gone_is_closed() {
        let (queue, rx) = WorkQueue::<u32>::new(4);
        drop(rx);
        assert!(matches!(queue.send(1).await, Err(StoreError::Closed)));
    }

    #[tokio::test]
    async fn a_queue_of_size_zero_still_holds_one_job() {
        let (queue, rx) = WorkQueue::<u32>::new(0);
        queue.send(7).await.unwrap();
        assert_eq!(rx.recv().unwrap().take(), 7);
    }
}
