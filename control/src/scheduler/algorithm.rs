//! One scheduling cycle over the cache: PreFilter, Filter over the nodes in parallel (stopping
//! once enough feasible nodes are found, as percentageOfNodesToScore does), Score, normalize,
//! weight, and pick the best node with ties broken at random.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use super::cache::{Cache, NodeInfo};
use super::framework::{
    CycleState, FilterPlugin, FitError, PreFilterResult, Rejection, ScorePlugin,
};
use super::plugins;
use super::pod_info::PodInfo;

/// Nodes a worker takes at a time.
const CHUNK: usize = 64;
/// Below this many nodes filtering stays on the calling thread.
const PARALLEL_THRESHOLD: usize = 512;
/// Clusters smaller than this are always searched completely.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;

/// The plugins of one scheduler profile.
pub struct Profile {
    pub filters: Vec<Box<dyn FilterPlugin>>,
    pub scores: Vec<Box<dyn ScorePlugin>>,
    /// Threads for filtering (the machine's parallelism by default).
    pub parallelism: usize,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            filters: plugins::default_filters(),
            scores: plugins::default_scores(),
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// How many feasible nodes are enough (upstream's adaptive percentageOfNodesToScore: 50%
/// minus 1% per 125 nodes, at least 5%, at least 100 nodes).
pub fn feasible_nodes_to_find(total: usize) -> usize {
    if total < MIN_FEASIBLE_NODES_TO_FIND {
        return total;
    }
    let pct = 50usize.saturating_sub(total / 125).max(5);
    (total * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

impl Profile {
    /// Runs every filter (the first rejection wins).
    pub fn run_filters(
        &self,
        pod: &PodInfo,
        state: &CycleState,
        node: &NodeInfo,
    ) -> Result<(), Rejection> {
        for f in &self.filters {
            f.filter(pod, state, node)?;
        }
        Ok(())
    }

    /// Runs the PreFilters; returns the node names the cycle is narrowed to, if any.
    pub fn pre_filter(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
    ) -> Option<(std::collections::HashSet<String>, Rejection)> {
        let mut only: Option<(std::collections::HashSet<String>, Rejection)> = None;
        for f in &self.filters {
            if let PreFilterResult::Only(set, why) = f.pre_filter(pod, cache, state) {
                only = Some(match only {
                    Some((prev, prev_why)) => {
                        (prev.intersection(&set).cloned().collect(), prev_why)
                    }
                    None => (set, why),
                });
            }
        }
        only
    }

    /// Filters `nodes` (starting at `start`, wrapping) until `want` feasible ones are found;
    /// returns the feasible nodes' indexes, the rejections, and how many nodes were looked at.
    fn find_feasible(
        &self,
        pod: &PodInfo,
        state: &CycleState,
        nodes: &[&NodeInfo],
        start: usize,
        want: usize,
    ) -> (Vec<usize>, HashMap<String, Rejection>, usize) {
        let n = nodes.len();
        let next = AtomicUsize::new(0);
        let found = AtomicUsize::new(0);
        let out = Mutex::new((Vec::new(), HashMap::new(), 0usize));
        let work = || {
            let mut feasible = Vec::new();
            let mut rejected = HashMap::new();
            let mut seen = 0;
            loop {
                if found.load(Ordering::Relaxed) >= want {
                    break;
                }
                let chunk = next.fetch_add(1, Ordering::Relaxed);
                if chunk * CHUNK >= n {
                    break;
                }
                for k in chunk * CHUNK..((chunk + 1) * CHUNK).min(n) {
                    let i = (start + k) % n;
                    seen += 1;
                    match self.run_filters(pod, state, nodes[i]) {
                        Ok(()) => {
                            feasible.push(k);
                            found.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(r) => {
                            rejected.insert(nodes[i].name.clone(), r);
                        }
                    }
                }
            }
            let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
            o.0.extend(feasible);
            o.1.extend(rejected);
            o.2 += seen;
        };
        let workers = self.parallelism.min(n.div_ceil(CHUNK)).max(1);
        if workers == 1 || n < PARALLEL_THRESHOLD {
            work();
        } else {
            std::thread::scope(|s| {
                for _ in 1..workers {
                    s.spawn(work);
                }
                work();
            });
        }
        let (mut feasible, rejected, seen) = out.into_inner().unwrap_or_else(|e| e.into_inner());
        // Keep the search order (offsets from `start`), and no more than asked for.
        feasible.sort_unstable();
        feasible.truncate(want);
        let feasible = feasible.into_iter().map(|k| (start + k) % n).collect();
        (feasible, rejected, seen)
    }

    /// Scores the feasible nodes: each plugin normalized to 0–100, times its weight, summed.
    pub fn score(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
        nodes: &[&NodeInfo],
    ) -> Vec<i64> {
        let mut total = vec![0i64; nodes.len()];
        for p in &self.scores {
            p.pre_score(pod, cache, nodes, state);
            let mut s: Vec<i64> = nodes.iter().map(|n| p.score(pod, state, n)).collect();
            p.normalize(&mut s);
            for (t, v) in total.iter_mut().zip(s) {
                *t += v * p.weight();
            }
        }
        total
    }
}

/// The outcome of one cycle: the chosen node, or why none fits.
pub type CycleResult = Result<String, Box<FitError>>;

/// Schedules one pod over the cache. `next_start` rotates where the node search begins so
/// that consecutive pods look at different nodes first.
pub fn schedule(
    profile: &Profile,
    cache: &Cache,
    pod: &PodInfo,
    next_start: &mut usize,
) -> CycleResult {
    let mut state = CycleState::default();
    let all: Vec<&NodeInfo> = cache.nodes().collect();
    let total = all.len();
    let fail = |rejections, state| {
        Box::new(FitError {
            num_nodes: total,
            rejections,
            post_filter: None,
            state,
        })
    };
    if total == 0 {
        return Err(fail(HashMap::new(), state));
    }
    let mut rejections = HashMap::new();
    let candidates: Vec<&NodeInfo> = match profile.pre_filter(pod, cache, &mut state) {
        Some((only, why)) => all
            .into_iter()
            .filter(|n| {
                let keep = only.contains(&n.name);
                if !keep {
                    rejections.insert(n.name.clone(), why.clone());
                }
                keep
            })
            .collect(),
        None => all,
    };
    if candidates.is_empty() {
        return Err(fail(rejections, state));
    }
    let want = feasible_nodes_to_find(candidates.len());
    let start = *next_start % candidates.len();
    let (feasible, rejected, seen) = profile.find_feasible(pod, &state, &candidates, start, want);
    *next_start = (start + seen) % candidates.len().max(1);
    rejections.extend(rejected);
    if feasible.is_empty() {
        return Err(fail(rejections, state));
    }
    let nodes: Vec<&NodeInfo> = feasible.iter().map(|&i| candidates[i]).collect();
    if nodes.len() == 1 {
        return Ok(nodes[0].name.clone());
    }
    let scores = profile.score(pod, cache, &mut state, &nodes);
    Ok(nodes[select(&scores)].name.clone())
}

/// The index of the highest score; among equals, one chosen uniformly at random.
pub fn select(scores: &[i64]) -> usize {
    let mut rng = rand::rng();
    let mut best = 0;
    let mut ties = 1;
    for (i, s) in scores.iter().enumerate().skip(1) {
        if *s > scores[best] {
            best = i;
            ties = 1;
        } else if *s == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}
