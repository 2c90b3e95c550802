//! What each workspace's DNS answers named: address → name, so a `connect()` to an address
//! has a name even when no TLS SNI or HTTP `Host` gives one (a plaintext protocol, TLS
//! without SNI, or before the first write). One cache per workspace, because names are
//! what *that* workspace asked for. Bounded: the least recently used address goes first
//! when full, and an entry expires with its answer's TTL, held between a floor (programs
//! connect a little after the answer, and some answers carry TTL 0) and a ceiling (an
//! address is not named by an hour-old answer).
//!
//! The name kept is the one the client asked for (the question), not the end of a CNAME
//! chain: `api.example` → CNAME `lb.cdn.example` → A 192.0.2.1 names 192.0.2.1
//! `api.example`, which is what issuer matching must see. When several names resolve to
//! one address (shared CDN front ends), the latest answer wins.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses kept per workspace.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Shortest life of an entry, whatever the answer's TTL.
pub const TTL_FLOOR: Duration = Duration::from_secs(60);
/// Longest life of an entry, whatever the answer's TTL.
pub const TTL_CEILING: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    expires: Instant,
}

/// Address → name from one workspace's DNS answers.
pub struct NameCache {
    /// Grows as answers arrive: a preallocated 4096-entry table would cost every
    /// workspace ~140 KB before its first DNS answer (most never see one).
    map: lru::LruCache<IpAddr, Entry>,
    capacity: usize,
    floor: Duration,
    ceiling: Duration,
}

impl Default for NameCache {
    fn default() -> Self {
        NameCache::new(DEFAULT_CAPACITY, TTL_FLOOR, TTL_CEILING)
    }
}

impl NameCache {
    /// A cache of at most `capacity` addresses (at least 1) whose entries live their TTL
    /// clamped to `floor..=ceiling`.
    pub fn new(capacity: usize, floor: Duration, ceiling: Duration) -> NameCache {
        NameCache {
            map: lru::LruCache::unbounded(),
            capacity: capacity.max(1),
            floor,
            ceiling: ceiling.max(floor),
        }
    }

    /// Records that `name` resolved to `addr` with `ttl` seconds, at `now`.
    pub fn insert(&mut self, addr: IpAddr, name: &str, ttl: u32, now: Instant) {
        let addr = canonical(addr);
        let life = Duration::from_secs(ttl as u64).clamp(self.floor, self.ceiling);
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return;
        }
        if self.map.len() >= self.capacity && !self.map.contains(&addr) {
            self.map.pop_lru();
        }
        self.map.put(
            addr,
            Entry {
                name,
                expires: now + life,
            },
        );
    }

    /// The name `addr` was last resolved from, if that answer is still live at `now`.
    pub fn lookup(&mut self, addr: IpAddr, now: Instant) -> Option<&str> {
        let addr = canonical(addr);
        let live = self.map.get(&addr).is_some_and(|e| e.expires > now);
        if !live {
            self.map.pop(&addr);
            return None;
        }
        self.map.peek(&addr).map(|e| e.name.as_str())
    }

    /// Addresses held (live or not yet found expired).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is (sockets report either form).
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_live_for_their_ttl_within_floor_and_ceiling() {
        let t0 = Instant::now();
        let mut c = NameCache::new(16, Duration::from_secs(60), Duration::from_secs(3600));
        c.insert(ip("192.0.2.1"), "Upload.Exfil.Test.", 0, t0);
        c.insert(ip("192.0.2.2"), "api.github.com", 300, t0);
        c.insert(ip("192.0.2.3"), "long.example", 86_400, t0);
        // TTL 0 still names the address for the floor.
        assert_eq!(
            c.lookup(ip("192.0.2.1"), t0 + Duration::from_secs(59)),
            Some("upload.exfil.test")
        );
        assert_eq!(
            c.lookup(ip("192.0.2.1"), t0 + Duration::from_secs(61)),
            None
        );
        assert_eq!(
            c.lookup(ip("192.0.2.2"), t0 + Duration::from_secs(299)),
            Some("api.github.com")
        );
        assert_eq!(
            c.lookup(ip("192.0.2.2"), t0 + Duration::from_secs(301)),
            None
        );
        // A day-long TTL is cut to the ceiling.
        assert!(c
            .lookup(ip("192.0.2.3"), t0 + Duration::from_secs(3599))
            .is_some());
        assert_eq!(
            c.lookup(ip("192.0.2.3"), t0 + Duration::from_secs(3601)),
            None
        );
        // Expired entries were dropped on lookup.
        assert!(c.is_empty());
    }

    #[test]
    fn the_latest_answer_wins_and_mapped_addresses_match() {
        let t0 = Instant::now();
        let mut c = NameCache::default();
        c.insert(ip("192.0.2.9"), "first.example", 300, t0);
        c.insert(ip("192.0.2.9"), "second.example", 300, t0);
        assert_eq!(c.lookup(ip("::ffff:192.0.2.9"), t0), Some("second.example"));
        c.insert(ip("2001:db8::1"), "v6.example", 300, t0);
        assert_eq!(c.lookup(ip("2001:db8::1"), t0), Some("v6.example"));
        assert_eq!(c.lookup(ip("2001:db8::2"), t0), None);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn bounded_least_recently_used_goes_first() {
        let t0 = Instant::now();
        let mut c = NameCache::new(3, TTL_FLOOR, TTL_CEILING);
        c.insert(ip("10.0.0.1"), "a.example", 300, t0);
        c.insert(ip("10.0.0.2"), "b.example", 300, t0);
        c.insert(ip("10.0.0.3"), "c.example", 300, t0);
        // Using .1 makes .2 the least recently used.
        assert!(c.lookup(ip("10.0.0.1"), t0).is_some());
        c.insert(ip("10.0.0.4"), "d.example", 300, t0);
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup(ip("10.0.0.2"), t0), None);
        assert_eq!(c.lookup(ip("10.0.0.1"), t0), Some("a.example"));
        assert_eq!(c.lookup(ip("10.0.0.4"), t0), Some("d.example"));
        // Ten thousand answers never grow it past its bound.
        for i in 0..10_000u32 {
            c.insert(IpAddr::from(i.to_be_bytes()), "x.example", 300, t0);
        }
        assert_eq!(c.len(), 3);
    }
}
