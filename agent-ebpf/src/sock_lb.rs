//! Socket-level ClusterIP load balancing on a cgroup2 subtree: `connect4` (TCP and connected
//! UDP) and `sendmsg4` (unconnected UDP) replace a service address with a backend before the
//! kernel routes anything, so no packet ever carries the service address; `recvmsg4` and
//! `getpeername4` show the application the service address again.
use aya_ebpf::{
    cty::c_void,
    helpers::{
        bpf_get_netns_cookie, bpf_get_prandom_u32, bpf_get_socket_cookie, bpf_ktime_get_ns,
        bpf_set_retval,
    },
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use skiff_agent_common::{AffinityKey, AffinityValue, RevNatKey, ServiceAddr, ServiceKey};

use crate::select::{Pick, pick, still_there};
use crate::{AFFINITY, AFFINITY_CFG, SOCK_REVNAT};

/// Verdict that lets the syscall proceed (with the possibly rewritten address).
const ALLOW: i32 = 1;
/// Verdict that fails the syscall (with the errno set by `bpf_set_retval`, EPERM otherwise).
const REJECT: i32 = 0;
/// What a connect/send to a service without backends fails with, as kube-proxy's REJECT rule
/// (ICMP port unreachable) and Cilium's socket LB (which also uses `bpf_set_retval`) answer.
const ECONNREFUSED: i32 = 111;

/// Rewrites the destination of a connect or send if it is a service address.
#[inline(always)]
fn translate(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the kernel hands the program a valid `bpf_sock_addr` for its whole run.
    let sa = unsafe { &mut *ctx.sock_addr };
    let key = ServiceKey {
        addr: sa.user_ip4,
        // `user_port` holds the network-order port in its first two bytes.
        port: sa.user_port as u16,
        proto: sa.protocol as u8,
        _pad: 0,
    };
    match pick_for_client(ctx, &key) {
        Pick::NotService => ALLOW,
        Pick::NoBackend => {
            // SAFETY: allowed for connect4/sendmsg4; only sets the syscall's return value.
            unsafe { bpf_set_retval(-ECONNREFUSED) };
            REJECT
        }
        Pick::Backend(backend, _) => {
            // SAFETY: the context is the socket address context the helper accepts.
            let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr as *mut c_void) };
            let rev = RevNatKey {
                cookie,
                addr: backend.addr,
                port: backend.port,
                _pad: 0,
            };
            let service = ServiceAddr {
                addr: key.addr,
                port: key.port,
                _pad: 0,
            };
            // A full LRU evicts its oldest entry; a failed insert only costs the reverse view.
            let _ = SOCK_REVNAT.insert(rev, service, 0);
            sa.user_ip4 = backend.addr;
            sa.user_port = u32::from(backend.port);
            ALLOW
        }
    }
}

/// A random pick, or for a ClientIP-affinity service the client's backend of its last
/// connect within the timeout (if the service still has it), remembered for the next one.
#[inline(always)]
fn pick_for_client(ctx: &SockAddrContext, key: &ServiceKey) -> Pick {
    // SAFETY: a helper without memory arguments.
    let hash = unsafe { bpf_get_prandom_u32() };
    // SAFETY: copied out at once.
    let Some(timeout_s) = (unsafe { AFFINITY_CFG.get(key) }).copied() else {
        return pick(key, hash);
    };
    // SAFETY: the context is the socket address context the helper accepts.
    let netns_cookie = unsafe { bpf_get_netns_cookie(ctx.sock_addr as *mut c_void) };
    let akey = AffinityKey {
        netns_cookie,
        service: *key,
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: copied out at once.
    if let Some(prev) = unsafe { AFFINITY.get(akey) }.copied()
        && now.wrapping_sub(prev.last_used_ns) < u64::from(timeout_s) * 1_000_000_000
        && still_there(key, prev.index, &prev.backend)
    {
        let value = AffinityValue {
            last_used_ns: now,
            ..prev
        };
        let _ = AFFINITY.insert(akey, value, 0);
        return Pick::Backend(prev.backend, prev.index);
    }
    let picked = pick(key, hash);
    if let Pick::Backend(backend, index) = &picked {
        let value = AffinityValue {
            backend: *backend,
            index: *index,
            _pad: 0,
            last_used_ns: now,
        };
        let _ = AFFINITY.insert(akey, value, 0);
    }
    picked
}

/// Shows the service address in place of a backend this socket was sent to.
#[inline(always)]
fn restore(ctx: &SockAddrContext) -> i32 {
    // SAFETY: as in `translate`.
    let sa = unsafe { &mut *ctx.sock_addr };
    // SAFETY: as in `translate`.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr as *mut c_void) };
    let rev = RevNatKey {
        cookie,
        addr: sa.user_ip4,
        port: sa.user_port as u16,
        _pad: 0,
    };
    // SAFETY: copied out at once.
    if let Some(service) = unsafe { SOCK_REVNAT.get(rev) }.copied() {
        sa.user_ip4 = service.addr;
        sa.user_port = u32::from(service.port);
    }
    ALLOW
}

/// TCP connects and UDP connects to a service go to one of its backends.
#[cgroup_sock_addr(connect4)]
pub fn skiff_connect4(ctx: SockAddrContext) -> i32 {
    translate(&ctx)
}

/// Unconnected UDP datagrams to a service go to one of its backends (chosen per datagram).
#[cgroup_sock_addr(sendmsg4)]
pub fn skiff_sendmsg4(ctx: SockAddrContext) -> i32 {
    translate(&ctx)
}

/// Replies from a backend to an unconnected UDP socket appear to come from the service.
#[cgroup_sock_addr(recvmsg4)]
pub fn skiff_recvmsg4(ctx: SockAddrContext) -> i32 {
    restore(&ctx)
}

/// getpeername() on a socket connected through a service reports the service address.
#[cgroup_sock_addr(getpeername4)]
pub fn skiff_getpeername4(ctx: SockAddrContext) -> i32 {
    restore(&ctx)
}
