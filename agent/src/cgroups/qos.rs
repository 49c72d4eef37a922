//! A pod's QoS class and the pod-level cgroup limits derived from its containers, as the kubelet
//! computes them (`GetPodQOS`, `ResourceConfigForPod`, `MilliCPUToShares`, `MilliCPUToQuota`).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Container, Pod},
    apimachinery::pkg::api::resource::Quantity,
};

use skiff_proto::quantity::{parse_bytes, parse_cpu_millis};

/// The kubelet's minimum `cpu.shares`.
pub const MIN_SHARES: u64 = 2;
/// The kubelet's maximum `cpu.shares`.
pub const MAX_SHARES: u64 = 262_144;
/// CFS period the kubelet uses, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota the kernel accepts, in microseconds.
pub const MIN_QUOTA_US: i64 = 1_000;

/// Kubernetes pod QoS classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The cgroup directory of the class below `kubepods` (`None` for Guaranteed, which the
    /// kubelet puts directly under `kubepods`).
    pub fn dir(self) -> Option<&'static str> {
        match self {
            Self::Guaranteed => None,
            Self::Burstable => Some("burstable"),
            Self::BestEffort => Some("besteffort"),
        }
    }
}

/// Pod-level cgroup settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodResources {
    /// `cpu.shares` (v1 units; 2..=262144).
    pub cpu_shares: u64,
    /// CFS quota in µs per `cpu_period`; `None` = unlimited.
    pub cpu_quota: Option<i64>,
    /// CFS period in µs.
    pub cpu_period: u64,
    /// Memory limit in bytes; `None` = unlimited.
    pub memory_limit: Option<i64>,
}

/// `cpu.shares` for a CPU request in millicores (the kubelet's `MilliCPUToShares`).
pub fn milli_cpu_to_shares(milli_cpu: u64) -> u64 {
    if milli_cpu == 0 {
        return MIN_SHARES;
    }
    (milli_cpu.saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota for a CPU limit in millicores over `period` µs (`MilliCPUToQuota`); `None` for 0.
pub fn milli_cpu_to_quota(milli_cpu: u64, period: u64) -> Option<i64> {
    if milli_cpu == 0 {
        return None;
    }
    let quota = i64::try_from(milli_cpu.saturating_mul(period) / 1000).unwrap_or(i64::MAX);
    Some(quota.max(MIN_QUOTA_US))
}

type Amounts = BTreeMap<&'static str, u64>;

/// One container's non-zero cpu (millicores) and memory (bytes) requests and limits; a missing
/// request defaults to the limit, as API defaulting does.
fn amounts(c: &Container) -> (Amounts, Amounts) {
    let res = c.resources.as_ref();
    let read = |m: Option<&BTreeMap<String, Quantity>>| {
        let mut out = Amounts::new();
        if let Some(m) = m {
            // Negative quantities are refused by validation; treat them as absent here.
            let positive = |v: i64| u64::try_from(v).ok();
            if let Some(v) = m
                .get("cpu")
                .and_then(|q| parse_cpu_millis(q).ok())
                .and_then(positive)
            {
                out.insert("cpu", v);
            }
            if let Some(v) = m
                .get("memory")
                .and_then(|q| parse_bytes(q).ok())
                .and_then(positive)
            {
                out.insert("memory", v);
            }
        }
        out.retain(|_, v| *v != 0);
        out
    };
    let limits = read(res.and_then(|r| r.limits.as_ref()));
    let mut requests = read(res.and_then(|r| r.requests.as_ref()));
    for (k, v) in &limits {
        requests.entry(k).or_insert(*v);
    }
    (requests, limits)
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let apps = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    init.iter().chain(apps)
}

/// The pod's QoS class by Kubernetes' rules: BestEffort without any cpu/memory request or
/// limit; Guaranteed when every container limits cpu and memory and requests equal limits;
/// Burstable otherwise.
pub fn qos_class(pod: &Pod) -> QosClass {
    let mut any = false;
    let mut guaranteed = true;
    for c in all_containers(pod) {
        let (requests, limits) = amounts(c);
        any |= !requests.is_empty() || !limits.is_empty();
        if !(limits.contains_key("cpu") && limits.contains_key("memory")) || requests != limits {
            guaranteed = false;
        }
    }
    match (any, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}

/// Effective pod amount of `key`: max(sum over app containers, max over init containers);
/// `None` when some container does not declare it (then the pod is unlimited for it).
fn pod_total(pod: &Pod, pick: impl Fn(&Container) -> Option<u64>) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let mut sum = 0u64;
    for c in &spec.containers {
        sum = sum.saturating_add(pick(c)?);
    }
    let mut max_init = 0u64;
    for c in spec.init_containers.as_deref().unwrap_or_default() {
        max_init = max_init.max(pick(c)?);
    }
    Some(sum.max(max_init))
}

/// Pod-level cgroup settings (the kubelet's `ResourceConfigForPod`): shares from the summed
/// CPU requests, quota and memory limit only when every container declares the limit.
pub fn pod_resources(pod: &Pod) -> PodResources {
    let qos = qos_class(pod);
    let request =
        |key: &'static str| pod_total(pod, |c| Some(amounts(c).0.get(key).copied().unwrap_or(0)));
    let limit = |key: &'static str| pod_total(pod, |c| amounts(c).1.get(key).copied());
    if qos == QosClass::BestEffort {
        return PodResources {
            cpu_shares: MIN_SHARES,
            cpu_quota: None,
            cpu_period: CPU_PERIOD_US,
            memory_limit: None,
        };
    }
    PodResources {
        cpu_shares: milli_cpu_to_shares(request("cpu").unwrap_or(0)),
        cpu_quota: limit("cpu").and_then(|m| milli_cpu_to_quota(m, CPU_PERIOD_US)),
        cpu_period: CPU_PERIOD_US,
        memory_limit: limit("memory").map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
    }
}
