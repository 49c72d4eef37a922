//! The scheduling queue: an active heap ordered by priority, then by arrival; a back-off area
//! for pods that failed recently (1 s doubling to 10 s per attempt); and an unschedulable area
//! whose pods move back when the cluster changes (or after a while regardless).

use std::cmp::Ordering;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An unschedulable pod is retried after this long even without a cluster change.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
}

#[derive(Debug, Clone)]
struct Queued {
    pod: Arc<Pod>,
    priority: i32,
    /// Arrival order in the active heap (a new one on every entry).
    seq: u64,
    attempts: u32,
    place: Place,
}

/// A heap entry; stale ones (whose seq no longer matches) are skipped on pop.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    priority: i32,
    seq: u64,
    uid: String,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A pod handed out by [`SchedulingQueue::pop`].
#[derive(Debug, Clone)]
pub struct Popped {
    pub pod: Arc<Pod>,
    pub attempts: u32,
    /// The queue's move counter when popped: a cluster change after it sends a failed pod to
    /// back-off instead of the unschedulable area.
    pub moves_seen: u64,
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn priority_of(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// What changed between two versions of a pending pod that could change where it fits.
fn scheduling_relevant_change(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec || old.metadata.labels != new.metadata.labels
}

/// The queue of pods waiting to be scheduled. Every operation is O(log n) in the number of
/// queued pods except a cluster change, which is linear in the unschedulable ones.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    pods: HashMap<String, Queued>,
    active: BinaryHeap<Entry>,
    /// (until, uid) of back-off pods; stale entries are skipped.
    backoff: BinaryHeap<Reverse<(Instant, String)>>,
    /// (since, uid) of unschedulable pods, for their timeout; stale entries are skipped.
    timeouts: BinaryHeap<Reverse<(Instant, String)>>,
    unschedulable: HashSet<String>,
    next_seq: u64,
    moves: u64,
}

pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    /// Puts a known pod in `place`, indexing it.
    fn place(&mut self, uid: &str, place: Place) {
        let Some(q) = self.pods.get_mut(uid) else {
            return;
        };
        q.place = place;
        self.unschedulable.remove(uid);
        match place {
            Place::Active => {
                let seq = self.next_seq;
                self.next_seq += 1;
                q.seq = seq;
                self.active.push(Entry {
                    priority: q.priority,
                    seq,
                    uid: uid.to_string(),
                });
            }
            Place::Backoff(until) => self.backoff.push(Reverse((until, uid.to_string()))),
            Place::Unschedulable(since) => {
                self.unschedulable.insert(uid.to_string());
                self.timeouts.push(Reverse((since, uid.to_string())));
            }
        }
    }

    fn insert(&mut self, pod: Arc<Pod>, attempts: u32, place: Place) {
        let uid = uid_of(&pod);
        self.pods.insert(
            uid.clone(),
            Queued {
                priority: priority_of(&pod),
                pod,
                seq: 0,
                attempts,
                place,
            },
        );
        self.place(&uid, place);
    }

    /// Adds a new pending pod, or updates a known one (an unschedulable pod whose spec or
    /// labels changed goes back to the active queue).
    pub fn add_or_update(&mut self, pod: Arc<Pod>) {
        let uid = uid_of(&pod);
        match self.pods.get_mut(&uid) {
            Some(q) => {
                let relevant = scheduling_relevant_change(&q.pod, &pod);
                let priority = priority_of(&pod);
                let place = q.place;
                let resort = place == Place::Active && q.priority != priority;
                q.pod = pod;
                q.priority = priority;
                if (matches!(place, Place::Unschedulable(_)) && relevant) || resort {
                    self.place(&uid, Place::Active);
                }
            }
            None => self.insert(pod, 0, Place::Active),
        }
    }

    pub fn delete(&mut self, uid: &str) {
        self.pods.remove(uid);
        self.unschedulable.remove(uid);
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The next pod to schedule: highest priority, then earliest arrival.
    pub fn pop(&mut self) -> Option<Popped> {
        while let Some(e) = self.active.pop() {
            let fresh = self
                .pods
                .get(&e.uid)
                .is_some_and(|q| q.place == Place::Active && q.seq == e.seq);
            if fresh {
                let q = self.pods.remove(&e.uid)?;
                return Some(Popped {
                    pod: q.pod,
                    attempts: q.attempts + 1,
                    moves_seen: self.moves,
                });
            }
        }
        None
    }

    /// Takes back a pod that failed: to back-off if the cluster changed since it was popped,
    /// else to the unschedulable area.
    pub fn requeue_failed(&mut self, popped: Popped, now: Instant) {
        let place = if self.moves > popped.moves_seen {
            Place::Backoff(now + backoff(popped.attempts))
        } else {
            Place::Unschedulable(now)
        };
        self.insert(popped.pod, popped.attempts, place);
    }

    /// Takes back a pod whose binding failed: straight to back-off.
    pub fn requeue_backoff(&mut self, popped: Popped, now: Instant) {
        let place = Place::Backoff(now + backoff(popped.attempts));
        self.insert(popped.pod, popped.attempts, place);
    }

    /// A cluster change: unschedulable pods for which `relevant` holds go to back-off (or
    /// straight to active when their back-off has passed).
    pub fn move_unschedulable(&mut self, now: Instant, relevant: impl Fn(&Pod) -> bool) {
        self.moves += 1;
        if self.unschedulable.is_empty() {
            return;
        }
        let moved: Vec<(String, Instant)> = self
            .unschedulable
            .iter()
            .filter_map(|uid| {
                let q = self.pods.get(uid)?;
                match q.place {
                    Place::Unschedulable(since) if relevant(&q.pod) => {
                        Some((uid.clone(), since + backoff(q.attempts)))
                    }
                    _ => None,
                }
            })
            .collect();
        for (uid, until) in &moved {
            self.place(uid, Place::Backoff(*until));
        }
        if !moved.is_empty() {
            self.flush(now);
        }
    }

    /// Moves pods whose back-off has passed, and pods unschedulable for too long, to active.
    pub fn flush(&mut self, now: Instant) {
        while let Some(Reverse((until, uid))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            if self
                .pods
                .get(&uid)
                .is_some_and(|q| q.place == Place::Backoff(until))
            {
                self.place(&uid, Place::Active);
            }
        }
        while let Some(Reverse((since, uid))) = self.timeouts.peek().cloned() {
            if since + MAX_UNSCHEDULABLE > now {
                break;
            }
            self.timeouts.pop();
            if self
                .pods
                .get(&uid)
                .is_some_and(|q| q.place == Place::Unschedulable(since))
            {
                self.place(&uid, Place::Active);
            }
        }
    }

    /// When the next back-off or unschedulable timeout falls due (possibly early: a stale
    /// entry only causes a spurious wake-up).
    pub fn next_wakeup(&self) -> Option<Instant> {
        let b = self.backoff.peek().map(|Reverse((t, _))| *t);
        let u = self
            .timeouts
            .peek()
            .map(|Reverse((t, _))| *t + MAX_UNSCHEDULABLE);
        b.into_iter().chain(u).min()
    }

    /// Whether a pod is waiting in the active queue (drops stale heap entries on the way).
    pub fn has_active(&mut self) -> bool {
        while let Some(e) = self.active.peek() {
            let fresh = self
                .pods
                .get(&e.uid)
                .is_some_and(|q| q.place == Place::Active && q.seq == e.seq);
            if fresh {
                return true;
            }
            self.active.pop();
        }
        false
    }

    /// Keeps only the pods whose uid `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.pods.retain(|uid, _| keep(uid));
        self.unschedulable.retain(|uid| keep(uid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, priority: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": uid, "uid": uid},
                "spec": {"containers": [], "priority": priority}}))
            .unwrap(),
        )
    }

    fn drain(q: &mut SchedulingQueue) -> Vec<String> {
        std::iter::from_fn(|| q.pop().map(|p| uid_of(&p.pod))).collect()
    }

    #[test]
    fn priority_then_arrival() {
        let mut q = SchedulingQueue::default();
        for (uid, prio) in [("a", 0), ("b", 10), ("c", 0), ("d", 10), ("e", -5)] {
            q.add_or_update(pod(uid, prio));
        }
        assert_eq!(drain(&mut q), ["b", "d", "a", "c", "e"]);
        assert!(q.is_empty());
    }

    #[test]
    fn failed_pods_wait_for_a_change_or_their_backoff() {
        let mut q = SchedulingQueue::default();
        let t0 = Instant::now();
        q.add_or_update(pod("a", 0));
        let popped = q.pop().unwrap();
        assert_eq!(popped.attempts, 1);
        q.requeue_failed(popped, t0);
        q.flush(t0 + Duration::from_secs(30));
        assert!(q.pop().is_none(), "unschedulable pods wait for a change");
        // A change moves it to back-off (1 s after its failure), then to active.
        q.move_unschedulable(t0 + Duration::from_millis(500), |_| true);
        assert!(q.pop().is_none());
        q.flush(t0 + Duration::from_secs(1));
        let popped = q.pop().unwrap();
        assert_eq!(popped.attempts, 2);
        // A change while it was in flight: straight to back-off (2 s now).
        q.move_unschedulable(t0, |_| true);
        let t1 = t0 + Duration::from_secs(5);
        q.requeue_failed(popped, t1);
        assert_eq!(q.next_wakeup(), Some(t1 + Duration::from_secs(2)));
        q.flush(t1 + Duration::from_secs(2));
        assert_eq!(drain(&mut q), ["a"]);
        // Unschedulable pods are retried after a while regardless.
        q.add_or_update(pod("b", 0));
        let popped = q.pop().unwrap();
        q.requeue_failed(popped, t1);
        q.flush(t1 + MAX_UNSCHEDULABLE);
        assert_eq!(drain(&mut q), ["b"]);
    }

    #[test]
    fn updates_and_deletes() {
        let mut q = SchedulingQueue::default();
        q.add_or_update(pod("a", 0));
        q.add_or_update(pod("b", 0));
        q.delete("a");
        // A priority change re-sorts an active pod.
        q.add_or_update(pod("c", 0));
        q.add_or_update(pod("c", 100));
        assert_eq!(drain(&mut q), ["c", "b"]);
        // A spec change revives an unschedulable pod at once.
        q.add_or_update(pod("d", 0));
        let popped = q.pop().unwrap();
        q.requeue_failed(popped, Instant::now());
        assert!(q.pop().is_none());
        let mut changed = (*pod("d", 0)).clone();
        changed.spec.as_mut().unwrap().node_selector = Some([("a".into(), "b".into())].into());
        q.add_or_update(Arc::new(changed));
        assert_eq!(drain(&mut q), ["d"]);
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(10), MAX_BACKOFF);
    }
}
