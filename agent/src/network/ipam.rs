//! Host-local IPAM: one file per allocated address (content: the pod uid) under the state dir,
//! so allocations survive agent restarts and an address is never handed out twice.
//!
//! A file appears atomically with its content (written aside, then hard-linked into place;
//! linking fails if the address is taken). Allocation goes round-robin from the last address
//! handed out, so a released address is not reused at once.

use std::{
    fs, io,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    str::FromStr,
};

use super::NetworkError;

const LAST_RESERVED: &str = "last_reserved_ip";

/// An IPv4 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The network address (host bits cleared).
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len)
        }
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// The `n`th address of the network (0 is the network address).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(n))
    }

    /// Number of addresses in the network.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix_len))
    }
}

impl FromStr for Ipv4Cidr {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NetworkError::InvalidCidr(s.to_owned());
        let (addr, len) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        if prefix_len > 32 {
            return Err(bad());
        }
        let mut cidr = Self {
            network: addr,
            prefix_len,
        };
        cidr.network = Ipv4Addr::from(u32::from(addr) & cidr.mask());
        Ok(cidr)
    }
}

/// Allocations of one pod network, stored in `dir`.
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    range: Ipv4Cidr,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> NetworkError {
    let path = path.to_owned();
    move |source| NetworkError::Io { what, path, source }
}

impl Ipam {
    /// IPAM over `range` (the node's pod CIDR), persisted in `dir`. The network address, the
    /// first address (the gateway) and the broadcast address are never allocated.
    pub fn open(dir: &Path, range: Ipv4Cidr) -> Result<Self, NetworkError> {
        if range.prefix_len > 30 {
            return Err(NetworkError::InvalidCidr(format!(
                "{}/{} is too small for pods",
                range.network, range.prefix_len
            )));
        }
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        Ok(Self {
            dir: dir.to_owned(),
            range,
        })
    }

    /// Every allocation: (address, pod uid).
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, NetworkError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Ok(ip) = entry.file_name().to_string_lossy().parse::<Ipv4Addr>() else {
                continue;
            };
            if let Ok(uid) = fs::read_to_string(entry.path()) {
                out.push((ip, uid.trim().to_owned()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The address of `uid`, allocating one if it has none.
    pub fn allocate(&self, uid: &str) -> Result<Ipv4Addr, NetworkError> {
        if let Some((ip, _)) = self.allocations()?.into_iter().find(|(_, u)| u == uid) {
            return Ok(ip);
        }
        let first = 2u32; // .0 network, .1 gateway
        let last = u32::try_from(self.range.size() - 2).expect("prefix >= 1"); // broadcast - 1
        let count = last - first + 1;
        let start = fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .filter(|ip| self.range.contains(*ip))
            .map(|ip| u32::from(ip) - u32::from(self.range.network))
            .map_or(first, |n| n + 1);
        let tmp = self.dir.join(format!(".alloc-{uid}"));
        fs::write(&tmp, uid).map_err(io_err("writing", &tmp))?;
        let result = (0..count)
            .map(|i| first + (start.saturating_sub(first) + i) % count)
            .find_map(|n| {
                let ip = self.range.nth(n);
                match fs::hard_link(&tmp, self.dir.join(ip.to_string())) {
                    Ok(()) => Some(Ok(ip)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(io_err("reserving", &self.dir)(e))),
                }
            })
            .unwrap_or(Err(NetworkError::Exhausted(format!(
                "{}/{}",
                self.range.network, self.range.prefix_len
            ))));
        let _ = fs::remove_file(&tmp);
        let ip = result?;
        let last_path = self.dir.join(LAST_RESERVED);
        fs::write(&last_path, ip.to_string()).map_err(io_err("writing", &last_path))?;
        Ok(ip)
    }

    /// Frees the address of `uid` (if any).
    pub fn release(&self, uid: &str) -> Result<(), NetworkError> {
        for (ip, owner) in self.allocations()? {
            if owner == uid {
                let path = self.dir.join(ip.to_string());
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io_err("releasing", &path)(e));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Forgets every allocation (node teardown).
    pub fn remove_all(&self) -> Result<(), NetworkError> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", &self.dir)(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(dir: &Path, cidr: &str) -> Ipam {
        Ipam::open(dir, cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn parses_cidrs() {
        let c: Ipv4Cidr = "10.42.3.7/24".parse().unwrap();
        assert_eq!(c.network, Ipv4Addr::new(10, 42, 3, 0));
        assert!(c.contains(Ipv4Addr::new(10, 42, 3, 255)));
        assert!(!c.contains(Ipv4Addr::new(10, 42, 4, 1)));
        assert_eq!(c.nth(1), Ipv4Addr::new(10, 42, 3, 1));
        for bad in ["10.42.0.0", "10.42.0.0/33", "x/24", "10.42.0/24"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allocations_are_unique_sticky_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = ipam(dir.path(), "10.42.0.0/24");
        let ip1 = a.allocate("pod-1").unwrap();
        assert_eq!(ip1, Ipv4Addr::new(10, 42, 0, 2));
        assert_eq!(a.allocate("pod-1").unwrap(), ip1, "same uid, same address");
        let ip2 = a.allocate("pod-2").unwrap();
        assert_eq!(ip2, Ipv4Addr::new(10, 42, 0, 3));

        // A restarted agent sees the same allocations and continues after the last one.
        let b = ipam(dir.path(), "10.42.0.0/24");
        assert_eq!(b.allocate("pod-1").unwrap(), ip1);
        b.release("pod-1").unwrap();
        assert_eq!(b.allocate("pod-3").unwrap(), Ipv4Addr::new(10, 42, 0, 4));
        assert_eq!(
            b.allocations().unwrap(),
            vec![
                (ip2, "pod-2".to_owned()),
                (Ipv4Addr::new(10, 42, 0, 4), "pod-3".to_owned())
            ]
        );
    }

    #[test]
    fn exhaustion_and_wraparound() {
        let dir = tempfile::tempdir().unwrap();
        let a = ipam(dir.path(), "10.42.0.0/29"); // .2 ..= .6 usable
        let ips: Vec<_> = (0..5)
            .map(|i| a.allocate(&format!("p{i}")).unwrap())
            .collect();
        assert_eq!(ips.first(), Some(&Ipv4Addr::new(10, 42, 0, 2)));
        assert_eq!(ips.last(), Some(&Ipv4Addr::new(10, 42, 0, 6)));
        assert!(matches!(a.allocate("p5"), Err(NetworkError::Exhausted(_))));
        a.release("p1").unwrap();
        assert_eq!(a.allocate("p5").unwrap(), Ipv4Addr::new(10, 42, 0, 3));
        a.remove_all().unwrap();
        assert!(a.allocations().unwrap().is_empty());
    }
}
