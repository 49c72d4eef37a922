//! `cgroup/connect4`: rewrites a connect() to a service address into a connect() to its backend.
use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use skiff_agent_common::ServiceKey;

use crate::SERVICES;

/// Verdict that lets the connect() proceed (with the possibly rewritten address).
const ALLOW: i32 = 1;

/// Looks the destination up in `SERVICES`; on a hit the socket connects to the backend instead.
/// Misses pass unchanged, so with an empty map this program changes nothing.
#[cgroup_sock_addr(connect4)]
pub fn skiff_connect4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a connect4 program a valid `bpf_sock_addr` for its whole run.
    let sa = unsafe { &mut *ctx.sock_addr };
    let key = ServiceKey {
        addr: sa.user_ip4,
        // `user_port` holds the network-order port in its first two bytes.
        port: sa.user_port as u16,
        proto: sa.protocol as u8,
        _pad: 0,
    };
    // SAFETY: the value is copied out at once; a concurrent update can only change which
    // backend this connect goes to, never make the read invalid.
    if let Some(backend) = unsafe { SERVICES.get(key) } {
        sa.user_ip4 = backend.addr;
        sa.user_port = u32::from(backend.port);
    }
    ALLOW
}
