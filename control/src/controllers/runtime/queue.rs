//! The work queue: de-duplicates keys, holds delayed keys until they are due, backs off
//! exponentially per key on errors, and never hands out a key that is being reconciled.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Back-off after the first error of a key; doubles per further error.
pub const BASE_BACKOFF: Duration = Duration::from_millis(5);
/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

struct State<K> {
    /// Keys waiting, with when they are due.
    waiting: HashMap<K, Instant>,
    /// Keys handed out and not yet `done`.
    active: HashSet<K>,
    /// Active keys that were added again (with when due); they wait until `done`.
    again: HashMap<K, Instant>,
    /// Consecutive failures per key.
    failures: HashMap<K, u32>,
    shut_down: bool,
}

/// A de-duplicating, delaying, rate-limited queue of keys. Cheap to clone.
pub struct WorkQueue<K> {
    state: Arc<Mutex<State<K>>>,
    notify: Arc<Notify>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            state: self.state.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    pub fn new() -> Self {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                waiting: HashMap::new(),
                active: HashSet::new(),
                again: HashMap::new(),
                failures: HashMap::new(),
                shut_down: false,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` now.
    pub fn add(&self, key: K) {
        self.add_after(key, Duration::ZERO);
    }

    /// Queues `key` after `delay`; a key already queued keeps the earlier of the two times.
    pub fn add_after(&self, key: K, delay: Duration) {
        let due = Instant::now() + delay;
        let mut s = self.lock();
        let slot = if s.active.contains(&key) {
            &mut s.again
        } else {
            &mut s.waiting
        };
        slot.entry(key)
            .and_modify(|t| *t = (*t).min(due))
            .or_insert(due);
        drop(s);
        self.notify.notify_one();
    }

    /// Queues `key` after its back-off (5 ms, doubling per consecutive failure, up to 60 s).
    pub fn add_rate_limited(&self, key: K) {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        self.add_after(key, backoff(n));
    }

    /// Clears the failure count of `key` (after a successful reconcile).
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// How many times in a row `key` has failed.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Keys waiting (not counting active ones).
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.waiting.len() + s.again.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks `key` finished; a re-add that came in meanwhile becomes waiting.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.active.remove(key);
        if let Some(due) = s.again.remove(key) {
            s.waiting
                .entry(key.clone())
                .and_modify(|t| *t = (*t).min(due))
                .or_insert(due);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Makes `next` return None from now on.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Waits for the next due key (earliest first) and marks it active. None after shut-down.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            let wake_at = {
                let mut s = self.lock();
                if s.shut_down {
                    return None;
                }
                let now = Instant::now();
                let earliest = s
                    .waiting
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, t)| (k.clone(), *t));
                match earliest {
                    Some((k, t)) if t <= now => {
                        s.waiting.remove(&k);
                        s.active.insert(k.clone());
                        return Some(k);
                    }
                    Some((_, t)) => Some(t),
                    None => None,
                }
            };
            match wake_at {
                Some(t) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(t) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// The back-off after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    BASE_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next_now(q: &WorkQueue<&'static str>) -> Option<&'static str> {
        tokio::time::timeout(Duration::ZERO, q.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn deduplicates_and_keeps_earliest_time() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(2));
        q.add("b");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(next_now(&q).await, Some("b"));
        assert_eq!(next_now(&q).await, None, "a is not due yet");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(next_now(&q).await, Some("a"));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn active_key_is_not_handed_out_twice() {
        let q = WorkQueue::new();
        q.add("a");
        assert_eq!(next_now(&q).await, Some("a"));
        q.add("a");
        assert_eq!(next_now(&q).await, None, "a is still being reconciled");
        q.done(&"a");
        assert_eq!(next_now(&q).await, Some("a"));
        q.done(&"a");
        assert_eq!(next_now(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_and_forgets() {
        let q = WorkQueue::new();
        for expected_ms in [5u64, 10, 20, 40] {
            q.add_rate_limited("a");
            tokio::time::advance(Duration::from_millis(expected_ms - 1)).await;
            assert_eq!(next_now(&q).await, None, "too early at {expected_ms} ms");
            tokio::time::advance(Duration::from_millis(1)).await;
            assert_eq!(next_now(&q).await, Some("a"));
            q.done(&"a");
        }
        assert_eq!(q.failures(&"a"), 4);
        q.forget(&"a");
        assert_eq!(q.failures(&"a"), 0);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_consumer_wakes_on_add_and_shutdown() {
        let q: WorkQueue<&'static str> = WorkQueue::new();
        let q2 = q.clone();
        let t = tokio::spawn(async move { q2.next().await });
        tokio::task::yield_now().await;
        q.add_after("x", Duration::from_secs(30));
        assert_eq!(t.await.unwrap(), Some("x"));
        let q3 = q.clone();
        let t = tokio::spawn(async move { q3.next().await });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(t.await.unwrap(), None);
    }
}
