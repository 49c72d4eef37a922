//! skiff's eBPF programs: the socket-level ClusterIP load balancer (`cgroup/connect4`,
//! `sendmsg4`, `recvmsg4`, `getpeername4`) and an XDP DNAT, over the maps described in
//! `skiff-agent-common`.
//!
//! The programs only run as BPF; on the host the crate still builds (so workspace-wide
//! `cargo build`/`clippy` work) into a stub binary.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod csum;
mod select;
mod sock_lb;
mod xdp_dnat;

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray},
};
use skiff_agent_common::{
    AFFINITY_MAX_ENTRIES, AffinityKey, AffinityValue, BACKENDS_MAX_ENTRIES, Backend, BackendKey,
    RevNatKey, SERVICES_MAX_ENTRIES, SOCK_REVNAT_MAX_ENTRIES, STAT_COUNT, ServiceAddr, ServiceKey,
    ServiceValue,
};

/// Service virtual address → where its backend set lives. Pinned by name so it outlives the
/// agent process.
#[map(name = "SERVICES")]
pub(crate) static SERVICES: HashMap<ServiceKey, ServiceValue> =
    HashMap::pinned(SERVICES_MAX_ENTRIES, 0);

/// (slot, index) → backend. Pinned by name.
#[map(name = "BACKENDS")]
pub(crate) static BACKENDS: HashMap<BackendKey, Backend> = HashMap::pinned(BACKENDS_MAX_ENTRIES, 0);

/// (socket cookie, backend) → the service address the socket used. Pinned by name.
#[map(name = "SOCK_REVNAT")]
pub(crate) static SOCK_REVNAT: LruHashMap<RevNatKey, ServiceAddr> =
    LruHashMap::pinned(SOCK_REVNAT_MAX_ENTRIES, 0);

/// Service → session-affinity timeout in seconds (ClientIP services only). Pinned by name.
#[map(name = "AFFINITY_CFG")]
pub(crate) static AFFINITY_CFG: HashMap<ServiceKey, u32> = HashMap::pinned(SERVICES_MAX_ENTRIES, 0);

/// (client netns, service) → the backend it was last sent to. Pinned by name.
#[map(name = "AFFINITY")]
pub(crate) static AFFINITY: LruHashMap<AffinityKey, AffinityValue> =
    LruHashMap::pinned(AFFINITY_MAX_ENTRIES, 0);

/// Per-CPU packet counters of the XDP program, indexed by `skiff_agent_common::STAT_*`.
#[map(name = "XDP_STATS")]
pub(crate) static XDP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_COUNT, 0);

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible licence, needed for the helpers the programs call.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!(
        "skiff-agent-ebpf holds eBPF programs; agent/build.rs builds it for bpfel-unknown-none"
    );
    std::process::exit(1);
}
