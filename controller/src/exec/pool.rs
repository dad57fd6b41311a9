//! A pool of permits handed out by priority instead of arrival: the waiting request with
//! the lowest key gets the next free permit. A create uses it to bound one node's concurrent
//! Docker operations while keeping them in boot order (`plan::start_rank`): a container that
//! became ready to start late but boots early in the order goes before queued later ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

pub struct RankedPool {
    state: Mutex<State>,
}

struct State {
    free: usize,
    /// Waiting requests, lowest (key, arrival) first.
    waiting: BinaryHeap<Reverse<Waiter>>,
    arrivals: u64,
}

struct Waiter {
    key: (usize, u64),
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// Held while the operation runs; dropping it passes the permit on.
pub struct Permit {
    pool: Arc<RankedPool>,
}

impl RankedPool {
    pub fn new(permits: usize) -> Arc<Self> {
        Arc::new(RankedPool { state: Mutex::new(State { free: permits.max(1), waiting: BinaryHeap::new(), arrivals: 0 }) })
    }

    /// Waits for a permit; among waiters, the lowest `key` is served first (then arrival).
    pub async fn acquire(self: &Arc<Self>, key: usize) -> Permit {
        let rx = {
            let mut s = self.state.lock().expect("pool lock");
            // A permit is free only when nobody waits: a released one goes straight to the
            // best waiter (`pass_on`).
            if s.free > 0 {
                s.free -= 1;
                return Permit { pool: self.clone() };
            }
            let (tx, rx) = oneshot::channel();
            s.arrivals += 1;
            let arrival = s.arrivals;
            s.waiting.push(Reverse(Waiter { key: (key, arrival), wake: tx }));
            rx
        };
        let mut pending = Pending { rx: Some(rx), pool: self.clone() };
        if let Some(rx) = pending.rx.as_mut() {
            // Senders are only dropped after a send: this resolves once the permit is ours.
            let _ = rx.await;
        }
        pending.rx = None;
        Permit { pool: self.clone() }
    }
}

/// A queued request; dropped before its permit came (the caller gave up), it closes the
/// queue slot, and passes on a permit that arrived meanwhile.
struct Pending {
    rx: Option<oneshot::Receiver<()>>,
    pool: Arc<RankedPool>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.pool.state.lock().expect("pool lock").pass_on();
            }
        }
    }
}

impl State {
    /// Gives a released permit to the best live waiter, or back to `free` (the queue is then
    /// empty).
    fn pass_on(&mut self) {
        while let Some(Reverse(w)) = self.waiting.pop() {
            if w.wake.send(()).is_ok() {
                return;
            }
            // That waiter gave up (its future was dropped): try the next.
        }
        self.free += 1;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.pool.state.lock().expect("pool lock").pass_on();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_are_served_by_key_not_arrival() {
        let pool = RankedPool::new(1);
        let held = pool.acquire(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Arrive in the order 5, 1, 3: served 1, 3, 5.
        for key in [5, 1, 3] {
            let (pool, order) = (pool.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = pool.acquire(key).await;
                order.lock().unwrap().push(key);
            }));
            // Let the task queue up before the next arrives.
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 3, 5]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_strand_the_permit() {
        let pool = RankedPool::new(1);
        let held = pool.acquire(0).await;
        let gave_up = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(std::time::Duration::from_millis(10), pool.acquire(1)).await;
            })
        };
        gave_up.await.unwrap();
        drop(held);
        // Must not hang: the permit went back to the pool.
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), pool.acquire(2)).await;
        assert!(got.is_ok());
    }

    #[tokio::test]
    async fn at_most_the_pool_size_run_at_once() {
        let pool = RankedPool::new(2);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|k| {
                let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    let _p = pool.acquire(k).await;
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
