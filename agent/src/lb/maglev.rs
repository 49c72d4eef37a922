//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), built in user space: a lookup table
//! of prime size whose every position names a backend, so a flow hash picks a backend with one
//! array read, every backend gets an equal share (±1 position), and adding or removing one
//! backend moves few flows between the others. The table depends only on the backend set (not
//! on its order or on which agent builds it), so every node and every restarted agent picks the
//! same backend for the same flow.

use std::net::SocketAddrV4;

/// The table size for one service: prime, and ≥ 100 × backends for up to 163 backends
/// (Maglev's rule of thumb for an even spread).
pub const DEFAULT_TABLE_SIZE: usize = 16_381;

/// Errors building a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// The size is not a prime (the permutations would not visit every position).
    #[error("Maglev table size {0} is not prime")]
    NotPrime(usize),
    /// More backends than positions.
    #[error("{backends} backends do not fit a Maglev table of {size}")]
    TooManyBackends { backends: usize, size: usize },
}

/// Whether `n` is prime (trial division; sizes are small).
pub fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// splitmix64's finaliser: a fixed, well-mixing 64-bit hash (stable across builds and hosts,
/// unlike std's `DefaultHasher`).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn backend_key(b: &SocketAddrV4) -> u64 {
    (u64::from(u32::from(*b.ip())) << 16) | u64::from(b.port())
}

/// A built table: `positions[p]` is an index into `backends`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    /// The backends, sorted (the table's indices refer to this order).
    pub backends: Vec<SocketAddrV4>,
    /// One backend index per position; empty when there is no backend.
    pub positions: Vec<u32>,
}

impl MaglevTable {
    /// Builds the table of `size` (prime) positions for `backends` (any order; duplicates are
    /// ignored).
    pub fn build(backends: &[SocketAddrV4], size: usize) -> Result<Self, MaglevError> {
        if !is_prime(size) {
            return Err(MaglevError::NotPrime(size));
        }
        let mut backends = backends.to_vec();
        backends.sort();
        backends.dedup();
        let n = backends.len();
        if n > size {
            return Err(MaglevError::TooManyBackends { backends: n, size });
        }
        if n == 0 {
            return Ok(Self {
                backends,
                positions: Vec::new(),
            });
        }
        let m = size as u64;
        // Each backend's permutation of the positions: offset + j * skip (mod size).
        let perms: Vec<(u64, u64)> = backends
            .iter()
            .map(|b| {
                let key = backend_key(b);
                let offset = mix(key ^ 0x5eed_0001) % m;
                let skip = mix(key ^ 0x5eed_0002) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; n];
        let mut positions = vec![u32::MAX; size];
        let mut filled = 0;
        // Backends take turns claiming their next free preferred position.
        'fill: loop {
            for (i, &(offset, skip)) in perms.iter().enumerate() {
                let mut p = ((offset + next[i] * skip) % m) as usize;
                while positions[p] != u32::MAX {
                    next[i] += 1;
                    p = ((offset + next[i] * skip) % m) as usize;
                }
                positions[p] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
        Ok(Self {
            backends,
            positions,
        })
    }

    /// The backend a flow with `hash` goes to.
    pub fn lookup(&self, hash: u32) -> Option<SocketAddrV4> {
        if self.positions.is_empty() {
            return None;
        }
        let p = self.positions[hash as usize % self.positions.len()];
        self.backends.get(p as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u32) -> Vec<SocketAddrV4> {
        (0..n)
            .map(|i| {
                SocketAddrV4::new(
                    u32::from_be_bytes([10, 42, (i / 250) as u8, (i % 250 + 2) as u8]).into(),
                    8080,
                )
            })
            .collect()
    }

    /// Positions per backend address.
    fn shares(t: &MaglevTable) -> std::collections::HashMap<SocketAddrV4, usize> {
        let mut out = std::collections::HashMap::new();
        for p in &t.positions {
            *out.entry(t.backends[*p as usize]).or_default() += 1;
        }
        out
    }

    #[test]
    fn sizes_must_be_prime_and_the_default_is() {
        assert!(is_prime(DEFAULT_TABLE_SIZE));
        assert!(is_prime(251) && !is_prime(250) && !is_prime(1));
        assert_eq!(
            MaglevTable::build(&backends(3), 1000),
            Err(MaglevError::NotPrime(1000))
        );
        assert!(matches!(
            MaglevTable::build(&backends(10), 7),
            Err(MaglevError::TooManyBackends { .. })
        ));
    }

    #[test]
    fn every_backend_gets_an_equal_share() {
        for n in [1, 2, 3, 7, 10, 100, 163] {
            let t = MaglevTable::build(&backends(n), DEFAULT_TABLE_SIZE).unwrap();
            assert_eq!(t.positions.len(), DEFAULT_TABLE_SIZE);
            let shares = shares(&t);
            assert_eq!(shares.len(), n as usize, "every backend is in the table");
            let (lo, hi) = (
                *shares.values().min().unwrap(),
                *shares.values().max().unwrap(),
            );
            assert!(hi - lo <= 1, "{n} backends: shares {lo}..{hi}");
        }
    }

    #[test]
    fn the_table_depends_only_on_the_set() {
        let mut b = backends(20);
        let t1 = MaglevTable::build(&b, 251).unwrap();
        b.reverse();
        b.push(b[0]);
        let t2 = MaglevTable::build(&b, 251).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(MaglevTable::build(&[], 251).unwrap().lookup(7), None);
    }

    /// Positions whose backend changed between two tables, not counting those of backends
    /// that are only in `a` (those must move).
    fn moved(a: &MaglevTable, b: &MaglevTable) -> usize {
        (0..a.positions.len())
            .filter(|&p| {
                let before = a.backends[a.positions[p] as usize];
                let after = b.backends[b.positions[p] as usize];
                before != after && b.backends.contains(&before)
            })
            .count()
    }

    #[test]
    fn removing_or_adding_one_backend_moves_few_other_flows() {
        let size = DEFAULT_TABLE_SIZE;
        for n in [3u32, 10, 50] {
            let all = backends(n + 1);
            let before = MaglevTable::build(&all[..n as usize], size).unwrap();
            // One backend goes away: its share moves, and only a little of the others'.
            let without = MaglevTable::build(&all[1..n as usize], size).unwrap();
            let churn = moved(&before, &without) as f64 / size as f64;
            // Modulo hashing would move about (n-1)/n of everything.
            assert!(
                churn < 0.10,
                "{n} backends, one removed: {churn:.3} of other flows moved"
            );
            // One backend is added: it takes about 1/(n+1) of the table, plus a little churn
            // between the others (the paper's trade for even shares); modulo hashing would
            // move n/(n+1).
            let with = MaglevTable::build(&all, size).unwrap();
            let taken = (0..size)
                .filter(|&p| {
                    before.positions[p] != u32::MAX && {
                        let b = before.backends[before.positions[p] as usize];
                        with.backends[with.positions[p] as usize] != b
                    }
                })
                .count() as f64
                / size as f64;
            let fair = 1.0 / f64::from(n + 1);
            assert!(
                taken < fair * 2.0,
                "{n} backends, one added: {taken:.3} moved (its fair share {fair:.3})"
            );
        }
    }

    #[test]
    fn lookups_spread_flows_like_the_table() {
        let t = MaglevTable::build(&backends(3), DEFAULT_TABLE_SIZE).unwrap();
        let mut counts = std::collections::HashMap::new();
        for flow in 0..30_000u64 {
            *counts
                .entry(t.lookup(mix(flow) as u32).unwrap())
                .or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(
            counts.values().all(|c| (9_000..11_000).contains(c)),
            "{counts:?}"
        );
    }
}
