//! The eBPF service load balancer: loads, attaches, pins and removes the agent-ebpf programs,
//! and writes service backend sets into the pinned maps ([`maps`]).
//!
//! The maps (`SERVICES`, `BACKENDS`, `SOCK_REVNAT`) are pinned by name under the pin dir and
//! the four socket programs' cgroup links are pinned next to them, so all of it outlives the
//! agent: a restarted agent re-adopts the maps (entries survive) and swaps in its freshly
//! loaded programs without a moment where connects go unrewritten.

mod dirs;
pub mod maglev;
mod maps;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    fs::File,
    io,
    net::SocketAddrV4,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapError, MapInfo},
    programs::{
        CgroupAttachMode, CgroupSockAddr, ProgramError, Xdp,
        links::{FdLink, LinkError, PinnedLink},
    },
};
use skiff_agent_common::{
    CONNECT4_PROG, GETPEERNAME4_PROG, PROTO_TCP, PROTO_UDP, RECVMSG4_PROG, SENDMSG4_PROG,
    XDP_DNAT_PROG,
};
use tracing::{debug, info, warn};

pub use maps::SlotState;

/// The compiled agent-ebpf object (built by agent/build.rs).
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/skiff-agent-ebpf"));

/// The socket programs attached to the cgroup2 dir, with the file name of each one's pinned link.
pub const SOCK_PROGRAMS: [(&str, &str); 4] = [
    (CONNECT4_PROG, "skiff_connect4_link"),
    (SENDMSG4_PROG, "skiff_sendmsg4_link"),
    (RECVMSG4_PROG, "skiff_recvmsg4_link"),
    (GETPEERNAME4_PROG, "skiff_getpeername4_link"),
];

/// File name of the pinned `cgroup/connect4` link inside the pin dir.
pub const CONNECT4_LINK_PIN: &str = SOCK_PROGRAMS[0].1;

/// Errors of the eBPF load balancer.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// Filesystem work on the pin dir or the cgroup dir failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The cgroup dir is not on a cgroup2 mount.
    #[error("{} is not a cgroup2 directory", .0.display())]
    NotCgroup2(PathBuf),
    /// Loading the object (maps, relocations) failed.
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    /// The object lacks a program or map the agent expects.
    #[error("the eBPF object has no {0}")]
    Missing(&'static str),
    /// Loading (verifier) or attaching a program failed.
    #[error("eBPF program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    /// Working with a link failed.
    #[error("eBPF link: {0}")]
    Link(#[from] LinkError),
    /// Pinning failed.
    #[error("pinning: {0}")]
    Pin(#[from] aya::pin::PinError),
    /// Reading or writing a map failed.
    #[error("eBPF map: {0}")]
    Map(#[from] MapError),
    /// A service has more backends than one slot holds, or every slot is taken.
    #[error("service map full: {0}")]
    Full(&'static str),
}

/// A service's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4Proto {
    Tcp,
    Udp,
}

impl L4Proto {
    fn number(self) -> u8 {
        match self {
            Self::Tcp => PROTO_TCP,
            Self::Udp => PROTO_UDP,
        }
    }

    fn from_number(n: u8) -> Option<Self> {
        match n {
            PROTO_TCP => Some(Self::Tcp),
            PROTO_UDP => Some(Self::Udp),
            _ => None,
        }
    }

    /// From a Kubernetes `protocol` ("TCP" when unset); `None` for SCTP and unknown ones.
    pub fn from_k8s(protocol: Option<&str>) -> Option<Self> {
        match protocol.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            _ => None,
        }
    }
}

/// A service's virtual address: one entry of `SERVICES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vip {
    pub addr: SocketAddrV4,
    pub proto: L4Proto,
}

impl Vip {
    pub fn new(addr: SocketAddrV4, proto: L4Proto) -> Self {
        Self { addr, proto }
    }
}

impl std::fmt::Display for Vip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{:?}", self.addr, self.proto)
    }
}

/// The loaded programs and maps; the socket programs stay attached (through their pins) after
/// this is dropped.
pub struct ServiceLb {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    cgroup2_dir: PathBuf,
    slots: SlotState,
}

fn program_err(name: &'static str) -> impl FnOnce(ProgramError) -> LbError {
    move |source| LbError::Program { name, source }
}

fn unpin_err(path: &Path) -> impl FnOnce(io::Error) -> LbError {
    let path = path.to_owned();
    move |source| LbError::Io {
        what: "unpinning",
        path,
        source,
    }
}

/// Removes pinned maps whose shape no longer matches the object (an agent upgrade changed a
/// layout): re-adopting them would hand the programs entries of the wrong size.
fn drop_incompatible_pins(pin_dir: &Path) -> Result<(), LbError> {
    let obj = aya_obj::Object::parse(EBPF_OBJECT).map_err(|_| LbError::Missing("object"))?;
    for (name, map) in &obj.maps {
        let path = pin_dir.join(name);
        if !path.exists() {
            continue;
        }
        let same = MapInfo::from_pin(&path).is_ok_and(|info| {
            info.key_size() == map.key_size()
                && info.value_size() == map.value_size()
                && info.max_entries() == map.max_entries()
        });
        if !same {
            warn!(map = %name, "pinned map has another layout; replacing it");
            dirs::remove_file(&path)?;
        }
    }
    Ok(())
}

impl ServiceLb {
    /// Loads the object, re-adopting maps pinned under `pin_dir`, and attaches the socket
    /// programs to `cgroup2_dir` (created if missing), replacing links pinned by an earlier
    /// agent. Mounts bpffs on `pin_dir`'s parent when that is not already bpffs.
    pub fn load(pin_dir: &Path, cgroup2_dir: &Path) -> Result<Self, LbError> {
        dirs::ensure_pin_dir(pin_dir)?;
        dirs::ensure_cgroup2_dir(cgroup2_dir)?;
        drop_incompatible_pins(pin_dir)?;

        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .load(EBPF_OBJECT)?;

        let xdp: &mut Xdp = ebpf
            .program_mut(XDP_DNAT_PROG)
            .ok_or(LbError::Missing(XDP_DNAT_PROG))?
            .try_into()
            .map_err(program_err(XDP_DNAT_PROG))?;
        xdp.load().map_err(program_err(XDP_DNAT_PROG))?;

        let cgroup = File::open(cgroup2_dir).map_err(|source| LbError::Io {
            what: "opening cgroup",
            path: cgroup2_dir.to_owned(),
            source,
        })?;
        for (name, pin) in SOCK_PROGRAMS {
            attach_pinned(&mut ebpf, name, &cgroup, &pin_dir.join(pin))?;
        }
        let mut lb = Self {
            ebpf,
            pin_dir: pin_dir.to_owned(),
            cgroup2_dir: cgroup2_dir.to_owned(),
            slots: SlotState::default(),
        };
        lb.adopt()?;
        info!(
            pin_dir = %pin_dir.display(),
            cgroup = %cgroup2_dir.display(),
            services = lb.slots.len(),
            "service load balancer attached"
        );
        Ok(lb)
    }

    /// The pin dir this instance was loaded with.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The cgroup2 dir the socket programs are attached to.
    pub fn cgroup2_dir(&self) -> &Path {
        &self.cgroup2_dir
    }

    /// The loaded (unattached) XDP DNAT program, e.g. for BPF_PROG_TEST_RUN.
    pub fn xdp_dnat(&self) -> Result<&Xdp, LbError> {
        self.ebpf
            .program(XDP_DNAT_PROG)
            .ok_or(LbError::Missing(XDP_DNAT_PROG))?
            .try_into()
            .map_err(program_err(XDP_DNAT_PROG))
    }

    /// Detaches the socket programs, unpins everything under `pin_dir` and removes `pin_dir`
    /// and `cgroup2_dir` (which must hold no processes by then). Idempotent.
    pub fn unload(pin_dir: &Path, cgroup2_dir: &Path) -> Result<(), LbError> {
        for (_, pin) in SOCK_PROGRAMS {
            let link_path = pin_dir.join(pin);
            if !link_path.exists() {
                continue;
            }
            match PinnedLink::from_pin(&link_path) {
                // Unpinning and dropping the last fd detaches the program.
                Ok(link) => drop(link.unpin().map_err(unpin_err(&link_path))?),
                Err(e) => {
                    debug!(error = %e, path = %link_path.display(), "stale link pin; removing");
                    dirs::remove_file(&link_path)?;
                }
            }
        }
        dirs::remove_pin_dir(pin_dir)?;
        dirs::remove_cgroup_tree(cgroup2_dir)?;
        info!(pin_dir = %pin_dir.display(), "service load balancer unloaded");
        Ok(())
    }
}

/// Loads program `name`, attaches it to `cgroup` and pins the link at `link_path`, replacing
/// (after the new one is attached) a link an earlier agent pinned there.
fn attach_pinned(
    ebpf: &mut Ebpf,
    name: &'static str,
    cgroup: &File,
    link_path: &Path,
) -> Result<(), LbError> {
    let prog: &mut CgroupSockAddr = ebpf
        .program_mut(name)
        .ok_or(LbError::Missing(name))?
        .try_into()
        .map_err(program_err(name))?;
    prog.load().map_err(program_err(name))?;
    let previous = if link_path.exists() {
        Some(PinnedLink::from_pin(link_path)?)
    } else {
        None
    };
    // Attach the new program before dropping the old link: both rewrite identically, so
    // connects are covered throughout the swap.
    let link_id = prog
        .attach(cgroup, CgroupAttachMode::Single)
        .map_err(program_err(name))?;
    let link: FdLink = prog
        .take_link(link_id)
        .map_err(program_err(name))?
        .try_into()?;
    if let Some(previous) = previous {
        debug!(path = %link_path.display(), "replacing a pinned link");
        drop(previous.unpin().map_err(unpin_err(link_path))?);
    }
    drop(link.pin(link_path)?);
    Ok(())
}

/// Backend sets as they are in the maps, by service address.
pub type Programmed = HashMap<Vip, Vec<SocketAddrV4>>;
