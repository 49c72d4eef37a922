//! skiff's eBPF programs: socket-level ClusterIP rewriting (`cgroup/connect4`) and an XDP DNAT.
//!
//! The programs only run as BPF; on the host the crate still builds (so workspace-wide
//! `cargo build`/`clippy` work) into a stub binary.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod connect4;
mod csum;
mod xdp_dnat;

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use skiff_agent_common::{Backend, SERVICES_MAX_ENTRIES, STAT_COUNT, ServiceKey};

/// Service virtual address → its backend. Pinned by name so it outlives the agent process.
#[map(name = "SERVICES")]
pub(crate) static SERVICES: HashMap<ServiceKey, Backend> = HashMap::pinned(SERVICES_MAX_ENTRIES, 0);

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
