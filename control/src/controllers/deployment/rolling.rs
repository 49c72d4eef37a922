//! The arithmetic of a rollout (upstream's deployment util): maxSurge/maxUnavailable from
//! ints or percentages, how far the new ReplicaSet may grow, how far old ones may shrink, and
//! proportional scaling of a rollout in flight.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool, default_pct: i32) -> i32 {
    match v {
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: i64 = s
                .trim_end_matches('%')
                .parse()
                .unwrap_or(i64::from(default_pct));
            let x = pct * i64::from(total);
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
        None => {
            let x = i64::from(default_pct) * i64::from(total);
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
    }
}

/// (maxSurge, maxUnavailable) resolved against `spec.replicas`; both zero becomes (0, 1).
/// Recreate has (0, 0).
pub fn surge_and_unavailable(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let n = desired(d);
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), n, true, 25).max(0);
    let unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), n, false, 25).max(0);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable.min(n))
}

/// How many replicas the new ReplicaSet should have now (rolling update).
pub fn new_rs_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let want = desired(d);
    let (surge, _) = surge_and_unavailable(d);
    let current: i32 = all.iter().map(|rs| spec_replicas(rs)).sum();
    let max_total = want + surge;
    let have = spec_replicas(new_rs);
    if current >= max_total {
        return have;
    }
    have + (max_total - current).min(want - have).max(0)
}

/// How far the old ReplicaSets may shrink now: first their unavailable pods, then down to
/// minAvailable. Returns the new replica counts for `old` (same order, oldest first).
pub fn scale_down_old(d: &Deployment, old: &[&ReplicaSet], new_rs: &ReplicaSet) -> Vec<i32> {
    let mut counts: Vec<i32> = old.iter().map(|rs| spec_replicas(rs)).collect();
    let old_total: i32 = counts.iter().sum();
    if old_total == 0 {
        return counts;
    }
    let (_, max_unavailable) = surge_and_unavailable(d);
    let min_available = desired(d) - max_unavailable;
    let all_total = old_total + spec_replicas(new_rs);
    let new_unavailable = (spec_replicas(new_rs) - available(new_rs)).max(0);
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return counts;
    }
    // Unhealthy replicas of old sets go first; they cost no availability.
    let mut cleaned = 0;
    for (i, rs) in old.iter().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = counts[i] - available(rs);
        if unhealthy <= 0 {
            continue;
        }
        let n = unhealthy.min(max_scaled_down - cleaned);
        counts[i] -= n;
        cleaned += n;
    }
    // Then healthy ones, as far as availability allows.
    let available_total: i32 = old.iter().map(|rs| available(rs)).sum::<i32>() + available(new_rs);
    let total_scale_down = (available_total - min_available).min(max_scaled_down - cleaned);
    let mut done = 0;
    for c in counts.iter_mut() {
        if done >= total_scale_down {
            break;
        }
        let n = (*c).min(total_scale_down - done);
        *c -= n;
        done += n;
    }
    counts
}

/// Spreads a change of `spec.replicas` over the active ReplicaSets in proportion to their size
/// (biggest first gets the rounding leftover). `active` are (current replicas) per set; returns
/// the new counts.
pub fn proportional(active: &[i32], allowed_total: i32) -> Vec<i32> {
    let total: i32 = active.iter().sum();
    let to_add = allowed_total - total;
    if to_add == 0 || total == 0 {
        return active.to_vec();
    }
    let mut out: Vec<i32> = active
        .iter()
        .map(|&c| c + (i64::from(c) * i64::from(to_add) / i64::from(total)) as i32)
        .collect();
    let leftover = allowed_total - out.iter().sum::<i32>();
    if let Some(biggest) = (0..active.len()).max_by_key(|&i| (active[i], std::cmp::Reverse(i))) {
        out[biggest] += leftover;
    }
    out.into_iter().map(|c| c.max(0)).collect()
}
