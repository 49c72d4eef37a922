//! The eBPF service load balancer: loads, attaches, pins and removes the agent-ebpf programs.
//!
//! `SERVICES` is pinned by name under the pin dir and the `cgroup/connect4` link is pinned next
//! to it, so both outlive the agent: a restarted agent re-adopts the map (entries survive) and
//! swaps in its freshly loaded program without a moment where connects go unrewritten.

mod dirs;
#[cfg(test)]
mod tests;

use std::{
    fs::File,
    io,
    net::SocketAddrV4,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapError},
    programs::{
        CgroupAttachMode, CgroupSockAddr, ProgramError, Xdp,
        links::{FdLink, LinkError, PinnedLink},
    },
};
use skiff_agent_common::{
    Backend, CONNECT4_PROG, PROTO_TCP, PROTO_UDP, SERVICES_MAP, ServiceKey, XDP_DNAT_PROG,
};
use tracing::{debug, info};

/// The compiled agent-ebpf object (built by agent/build.rs).
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/skiff-agent-ebpf"));

/// File name of the pinned `cgroup/connect4` link inside the pin dir.
pub const CONNECT4_LINK_PIN: &str = "skiff_connect4_link";

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
}

/// A service's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

/// One entry of `SERVICES`: a service address and the backend it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceEntry {
    pub vip: SocketAddrV4,
    pub proto: L4Proto,
    pub backend: SocketAddrV4,
}

/// The loaded programs and maps; connect4 stays attached (through its pin) after this is dropped.
pub struct ServiceLb {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    cgroup2_dir: PathBuf,
}

fn program_err(name: &'static str) -> impl FnOnce(ProgramError) -> LbError {
    move |source| LbError::Program { name, source }
}

impl ServiceLb {
    /// Loads the object, re-adopting maps pinned under `pin_dir`, and attaches `skiff_connect4`
    /// to `cgroup2_dir` (created if missing), replacing any link pinned by an earlier agent.
    /// Mounts bpffs on `pin_dir`'s parent when that is not already bpffs.
    pub fn load(pin_dir: &Path, cgroup2_dir: &Path) -> Result<Self, LbError> {
        dirs::ensure_pin_dir(pin_dir)?;
        dirs::ensure_cgroup2_dir(cgroup2_dir)?;

        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .load(EBPF_OBJECT)?;

        let xdp: &mut Xdp = ebpf
            .program_mut(XDP_DNAT_PROG)
            .ok_or(LbError::Missing(XDP_DNAT_PROG))?
            .try_into()
            .map_err(program_err(XDP_DNAT_PROG))?;
        xdp.load().map_err(program_err(XDP_DNAT_PROG))?;

        let connect4: &mut CgroupSockAddr = ebpf
            .program_mut(CONNECT4_PROG)
            .ok_or(LbError::Missing(CONNECT4_PROG))?
            .try_into()
            .map_err(program_err(CONNECT4_PROG))?;
        connect4.load().map_err(program_err(CONNECT4_PROG))?;

        let cgroup = File::open(cgroup2_dir).map_err(|source| LbError::Io {
            what: "opening cgroup",
            path: cgroup2_dir.to_owned(),
            source,
        })?;
        let link_path = pin_dir.join(CONNECT4_LINK_PIN);
        let previous = if link_path.exists() {
            Some(PinnedLink::from_pin(&link_path)?)
        } else {
            None
        };
        // Attach the new program before dropping the old link: both rewrite identically, so
        // connects are covered throughout the swap.
        let link_id = connect4
            .attach(&cgroup, CgroupAttachMode::Single)
            .map_err(program_err(CONNECT4_PROG))?;
        let link: FdLink = connect4
            .take_link(link_id)
            .map_err(program_err(CONNECT4_PROG))?
            .try_into()?;
        if let Some(previous) = previous {
            debug!(path = %link_path.display(), "replacing the pinned connect4 link");
            drop(previous.unpin().map_err(|source| LbError::Io {
                what: "unpinning",
                path: link_path.clone(),
                source,
            })?);
        }
        drop(link.pin(&link_path)?);
        info!(
            pin_dir = %pin_dir.display(),
            cgroup = %cgroup2_dir.display(),
            "service load balancer attached"
        );
        Ok(Self {
            ebpf,
            pin_dir: pin_dir.to_owned(),
            cgroup2_dir: cgroup2_dir.to_owned(),
        })
    }

    /// The pin dir this instance was loaded with.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The cgroup2 dir connect4 is attached to.
    pub fn cgroup2_dir(&self) -> &Path {
        &self.cgroup2_dir
    }

    fn services_map(
        &mut self,
    ) -> Result<HashMap<&mut aya::maps::MapData, ServiceKey, Backend>, LbError> {
        let map = self
            .ebpf
            .map_mut(SERVICES_MAP)
            .ok_or(LbError::Missing(SERVICES_MAP))?;
        Ok(HashMap::try_from(map)?)
    }

    /// Points `vip` (over `proto`) at `backend`, replacing any previous backend.
    pub fn upsert_service(
        &mut self,
        vip: SocketAddrV4,
        proto: L4Proto,
        backend: SocketAddrV4,
    ) -> Result<(), LbError> {
        let key = ServiceKey::new(*vip.ip(), vip.port(), proto.number());
        let value = Backend::new(*backend.ip(), backend.port());
        self.services_map()?.insert(key, value, 0)?;
        debug!(%vip, ?proto, %backend, "service upserted");
        Ok(())
    }

    /// Removes `vip`; returns whether it was present.
    pub fn remove_service(&mut self, vip: SocketAddrV4, proto: L4Proto) -> Result<bool, LbError> {
        let key = ServiceKey::new(*vip.ip(), vip.port(), proto.number());
        match self.services_map()?.remove(&key) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every entry of `SERVICES` (for syncing desired against actual).
    pub fn services(&mut self) -> Result<Vec<ServiceEntry>, LbError> {
        let map = self.services_map()?;
        let mut out = Vec::new();
        for item in map.iter() {
            let (key, backend) = item?;
            let Some(proto) = L4Proto::from_number(key.proto) else {
                continue;
            };
            out.push(ServiceEntry {
                vip: SocketAddrV4::new(key.ip(), key.host_port()),
                proto,
                backend: SocketAddrV4::new(backend.ip(), backend.host_port()),
            });
        }
        Ok(out)
    }

    /// The loaded (unattached) XDP DNAT program, e.g. for BPF_PROG_TEST_RUN.
    pub fn xdp_dnat(&self) -> Result<&Xdp, LbError> {
        self.ebpf
            .program(XDP_DNAT_PROG)
            .ok_or(LbError::Missing(XDP_DNAT_PROG))?
            .try_into()
            .map_err(program_err(XDP_DNAT_PROG))
    }

    /// Detaches connect4, unpins everything under `pin_dir` and removes `pin_dir` and
    /// `cgroup2_dir` (which must hold no processes by then). Idempotent.
    pub fn unload(pin_dir: &Path, cgroup2_dir: &Path) -> Result<(), LbError> {
        let link_path = pin_dir.join(CONNECT4_LINK_PIN);
        if link_path.exists() {
            match PinnedLink::from_pin(&link_path) {
                // Unpinning and dropping the last fd detaches the program.
                Ok(link) => drop(link.unpin().map_err(|source| LbError::Io {
                    what: "unpinning",
                    path: link_path.clone(),
                    source,
                })?),
                Err(e) => {
                    debug!(error = %e, "stale connect4 pin; removing the file");
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
