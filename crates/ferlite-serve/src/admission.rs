//! Back-pressure: at most `concurrency` requests run inference at once and at most `queue` wait
//! for a turn. A request arriving when the queue is full is turned away at once (503 with
//! `Retry-After`) instead of piling up memory and latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// The request was not admitted: too many are already waiting.
#[derive(Debug)]
pub struct Busy;

impl Admission {
    pub fn new(concurrency: usize, queue: usize) -> Self {
        Admission { slots: Arc::new(Semaphore::new(concurrency.max(1))), waiting: AtomicUsize::new(0), queue }
    }

    /// A slot to run in, waiting for one if the queue has room. The permit is owned so it can move
    /// into the blocking inference task and stay held until inference really ends, even if the
    /// request times out first.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Busy> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        // Decrements even if this future is dropped (request timed out or client left).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&self.waiting);
        self.slots.clone().acquire_owned().await.map_err(|_| Busy)
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_away_requests_beyond_running_plus_queue() {
        let admission = Arc::new(Admission::new(1, 1));
        let running = admission.admit().await.unwrap();
        let queued = {
            let a = admission.clone();
            tokio::spawn(async move { a.admit().await.map(|_| ()) })
        };
        while admission.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(admission.admit().await.is_err(), "third request must be refused");
        drop(running);
        assert!(queued.await.unwrap().is_ok(), "queued request runs once the slot frees");
        assert_eq!(admission.waiting(), 0);
    }
}
