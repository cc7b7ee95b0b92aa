//! The ARP cache: resolved neighbours with expiry, and next hops being resolved.
//!
//! Frames waiting for a next hop are held by the interface (bounded per next hop); this module
//! only decides when to (re)send a request and when an entry is stale.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::time::{Duration, Instant};
use crate::wire::ethernet::EthernetAddress;

/// Tunables of the cache.
#[derive(Copy, Clone, Debug)]
pub struct ArpConfig {
    /// How long a resolved entry stays valid without being refreshed.
    pub ttl: Duration,
    /// Interval between requests for an unresolved next hop.
    pub retry_interval: Duration,
    /// Requests sent before an unresolved next hop is given up (its waiting frames dropped).
    pub max_retries: u8,
    /// Most entries kept; beyond it, new next hops are not cached (their frames are dropped).
    pub capacity: usize,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            ttl: Duration::from_secs(60),
            retry_interval: Duration::from_secs(1),
            max_retries: 3,
            capacity: 65_536,
        }
    }
}

#[derive(Copy, Clone, Debug)]
enum Entry {
    Resolved {
        mac: EthernetAddress,
        expires: Instant,
    },
    Pending {
        last_request: Instant,
        requests: u8,
    },
}

/// What the interface should do for an unresolved next hop.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The MAC is known.
    Known(EthernetAddress),
    /// Unknown: send an ARP request now and hold the frame.
    SendRequest,
    /// Unknown, a request is already out: hold the frame.
    Waiting,
    /// Unknown and the cache is full or the next hop gave up: drop the frame.
    Unreachable,
}

/// Neighbour cache keyed by IPv4 address.
#[derive(Debug)]
pub struct ArpCache {
    cfg: ArpConfig,
    entries: HashMap<Ipv4Addr, Entry>,
    /// Next hops currently pending, so expiry never scans resolved entries.
    pending: Vec<Ipv4Addr>,
    /// Copy of the most recently used resolved entry (address, MAC, expiry): nearly every frame
    /// goes to the same next hop, and this skips the hash lookup for it. Every change to that
    /// address's entry updates or clears it.
    last: Option<(Ipv4Addr, EthernetAddress, Instant)>,
}

impl ArpCache {
    /// An empty cache.
    pub fn new(cfg: ArpConfig) -> Self {
        ArpCache {
            cfg,
            entries: HashMap::new(),
            pending: Vec::new(),
            last: None,
        }
    }

    /// The MAC of `ip` if resolved and not expired.
    #[inline]
    pub fn lookup(&self, ip: Ipv4Addr, now: Instant) -> Option<EthernetAddress> {
        if let Some((last_ip, mac, expires)) = self.last {
            if last_ip == ip {
                return (expires > now).then_some(mac);
            }
        }
        match self.entries.get(&ip) {
            Some(Entry::Resolved { mac, expires }) if *expires > now => Some(*mac),
            _ => None,
        }
    }

    /// Whether `ip` is the entry resolved last and still valid (then [`ArpCache::lookup`] would
    /// find it): the check of the received frame's sender, before anything costlier.
    #[inline]
    pub fn is_last_resolved(&self, ip: Ipv4Addr, now: Instant) -> bool {
        matches!(self.last, Some((last_ip, _, expires)) if last_ip == ip && expires > now)
    }

    /// Decide what to do with a frame for next hop `ip`. The check of the last resolved entry
    /// (nearly every frame) inlines into the caller; the rest is out of line.
    #[inline]
    pub fn resolve(&mut self, ip: Ipv4Addr, now: Instant) -> Resolution {
        if let Some((last_ip, mac, expires)) = self.last {
            if last_ip == ip && expires > now {
                return Resolution::Known(mac);
            }
        }
        self.resolve_slow(ip, now)
    }

    #[inline(never)]
    fn resolve_slow(&mut self, ip: Ipv4Addr, now: Instant) -> Resolution {
        let cfg = self.cfg;
        let full = self.entries.len() >= cfg.capacity;
        if self.last.is_some_and(|(last_ip, ..)| last_ip == ip) {
            // Expired: the entry changes below.
            self.last = None;
        }
        match self.entries.get_mut(&ip) {
            Some(Entry::Resolved { mac, expires }) if *expires > now => {
                self.last = Some((ip, *mac, *expires));
                Resolution::Known(*mac)
            }
            Some(entry @ Entry::Resolved { .. }) => {
                *entry = Entry::Pending {
                    last_request: now,
                    requests: 1,
                };
                self.pending.push(ip);
                Resolution::SendRequest
            }
            Some(Entry::Pending {
                last_request,
                requests,
            }) => {
                if now.saturating_since(*last_request) >= cfg.retry_interval {
                    if *requests >= cfg.max_retries {
                        // Give up this round; the next frame for this hop starts afresh.
                        self.entries.remove(&ip);
                        self.pending.retain(|p| *p != ip);
                        return Resolution::Unreachable;
                    }
                    *last_request = now;
                    *requests += 1;
                    Resolution::SendRequest
                } else {
                    Resolution::Waiting
                }
            }
            None if full => Resolution::Unreachable,
            None => {
                self.entries.insert(
                    ip,
                    Entry::Pending {
                        last_request: now,
                        requests: 1,
                    },
                );
                self.pending.push(ip);
                Resolution::SendRequest
            }
        }
    }

    /// Record that `ip` is at `mac` (from an ARP packet or a gleaned frame). Returns true when the
    /// next hop was pending, so held frames can be sent now.
    pub fn fill(&mut self, ip: Ipv4Addr, mac: EthernetAddress, now: Instant) -> bool {
        if !mac.is_unicast() || ip.is_unspecified() || ip.is_broadcast() {
            return false;
        }
        let expires = now + self.cfg.ttl;
        match self.entries.get_mut(&ip) {
            Some(entry) => {
                let was_pending = matches!(entry, Entry::Pending { .. });
                *entry = Entry::Resolved { mac, expires };
                if was_pending {
                    self.pending.retain(|p| *p != ip);
                }
                self.last = Some((ip, mac, expires));
                was_pending
            }
            None => {
                if self.entries.len() < self.cfg.capacity {
                    self.entries.insert(ip, Entry::Resolved { mac, expires });
                    self.last = Some((ip, mac, expires));
                }
                false
            }
        }
    }

    /// Whether `ip` has an entry at all (resolved or pending). Used to decide whether an ARP packet
    /// from a host we never asked about should update the cache (RFC 826 "merge" rule).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.entries.contains_key(&ip)
    }

    /// Pending next hops whose retry interval has passed: each needs another request, or has
    /// run out of requests ([`resolve`](Self::resolve) says which). At most `budget` of them.
    pub fn due_pending(&self, now: Instant, out: &mut Vec<Ipv4Addr>, budget: usize) {
        for ip in self.pending.iter() {
            if out.len() >= budget {
                break;
            }
            if let Some(Entry::Pending { last_request, .. }) = self.entries.get(ip) {
                if now.saturating_since(*last_request) >= self.cfg.retry_interval {
                    out.push(*ip);
                }
            }
        }
    }

    /// When the oldest pending next hop may give up (so the caller's timer covers ARP too).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|ip| match self.entries.get(ip) {
                Some(Entry::Pending { last_request, .. }) => {
                    Some(*last_request + self.cfg.retry_interval)
                }
                _ => None,
            })
            .min()
    }

    /// Whether `ip` has a resolved entry (expired or not); false when pending or unknown.
    pub fn is_resolved(&self, ip: Ipv4Addr) -> bool {
        matches!(self.entries.get(&ip), Some(Entry::Resolved { .. }))
    }

    /// Forget `ip`.
    pub fn remove(&mut self, ip: Ipv4Addr) {
        if self.last.is_some_and(|(last_ip, ..)| last_ip == ip) {
            self.last = None;
        }
        self.entries.remove(&ip);
        self.pending.retain(|p| *p != ip);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    #[test]
    fn unresolved_next_hop_is_requested_then_waits_then_retries_then_gives_up() {
        let mut cache = ArpCache::new(ArpConfig::default());
        let t0 = Instant::from_millis(0);
        assert_eq!(cache.resolve(IP, t0), Resolution::SendRequest);
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(500)),
            Resolution::Waiting
        );
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(1000)),
            Resolution::SendRequest
        );
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(2000)),
            Resolution::SendRequest
        );
        let mut due = Vec::new();
        cache.due_pending(Instant::from_millis(3000), &mut due, 100);
        assert_eq!(due, vec![IP]);
        assert_eq!(cache.next_deadline(), Some(Instant::from_millis(3000)));
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(3000)),
            Resolution::Unreachable
        );
        assert_eq!(cache.next_deadline(), None);
        // A later frame for the same hop starts a fresh resolution.
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(9000)),
            Resolution::SendRequest
        );
    }

    #[test]
    fn fill_resolves_and_entries_expire() {
        let mut cache = ArpCache::new(ArpConfig::default());
        let t0 = Instant::from_millis(0);
        assert_eq!(cache.resolve(IP, t0), Resolution::SendRequest);
        assert!(cache.fill(IP, MAC, t0));
        assert_eq!(cache.resolve(IP, t0), Resolution::Known(MAC));
        assert_eq!(cache.lookup(IP, Instant::from_millis(59_999)), Some(MAC));
        assert_eq!(cache.lookup(IP, Instant::from_millis(60_000)), None);
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(60_000)),
            Resolution::SendRequest
        );
    }

    #[test]
    fn last_hit_copy_follows_every_change() {
        let mut cache = ArpCache::new(ArpConfig::default());
        let other = Ipv4Addr::new(10, 0, 0, 9);
        let mac2 = EthernetAddress([2, 0, 0, 0, 0, 2]);
        let t0 = Instant::from_millis(0);
        assert!(!cache.fill(IP, MAC, t0));
        assert!(!cache.fill(other, mac2, t0));
        assert_eq!(cache.resolve(IP, t0), Resolution::Known(MAC));
        // A new MAC for the cached address replaces the copy.
        cache.fill(IP, mac2, Instant::from_millis(10));
        assert_eq!(cache.lookup(IP, Instant::from_millis(10)), Some(mac2));
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(10)),
            Resolution::Known(mac2)
        );
        assert_eq!(cache.resolve(other, t0), Resolution::Known(mac2));
        // Removal forgets it; expiry turns it into a request.
        cache.remove(other);
        assert_eq!(cache.lookup(other, t0), None);
        assert!(!cache.contains(other));
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(10)),
            Resolution::Known(mac2)
        );
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(60_010)),
            Resolution::SendRequest
        );
        assert_eq!(cache.lookup(IP, Instant::from_millis(60_010)), None);
        assert_eq!(
            cache.resolve(IP, Instant::from_millis(60_020)),
            Resolution::Waiting
        );
    }

    #[test]
    fn broadcast_or_multicast_macs_are_never_cached() {
        let mut cache = ArpCache::new(ArpConfig::default());
        assert!(!cache.fill(IP, EthernetAddress::BROADCAST, Instant::ZERO));
        assert!(cache.is_empty());
    }

    #[test]
    fn full_cache_refuses_new_next_hops() {
        let mut cache = ArpCache::new(ArpConfig {
            capacity: 1,
            ..ArpConfig::default()
        });
        assert_eq!(cache.resolve(IP, Instant::ZERO), Resolution::SendRequest);
        assert_eq!(
            cache.resolve(Ipv4Addr::new(10, 0, 0, 2), Instant::ZERO),
            Resolution::Unreachable
        );
    }
}
