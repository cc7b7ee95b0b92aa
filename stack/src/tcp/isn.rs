//! Initial sequence numbers (RFC 6528) and keyed hashing for flow tables.
//!
//! [`IsnGenerator`] computes `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`
//! where `M` is a 4-microsecond timer taken from the caller's `now` and `F` is SipHash-2-4 keyed
//! with a 128-bit secret. Different connections get unrelated sequence spaces, while successive
//! incarnations of one 4-tuple still move forward with the clock, as RFC 6528 intends.
//!
//! [`KeyedState`] is a [`BuildHasher`] for `HashMap`s keyed by packet fields: SipHash-1-3 with a
//! secret key, so a remote sender cannot choose 4-tuples that all land in one bucket.

use core::hash::{BuildHasher, Hasher};
use core::net::SocketAddrV4;

use siphasher::sip::{SipHasher13, SipHasher24};

use crate::tcp::seq::SeqNumber;
use crate::time::Instant;

/// The 12 bytes `local ip, local port, remote ip, remote port`, in network order.
pub(crate) fn tuple_bytes(local: SocketAddrV4, remote: SocketAddrV4) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&local.ip().octets());
    b[4..6].copy_from_slice(&local.port().to_be_bytes());
    b[6..10].copy_from_slice(&remote.ip().octets());
    b[10..12].copy_from_slice(&remote.port().to_be_bytes());
    b
}

/// RFC 6528 initial sequence number generator.
#[derive(Clone)]
pub struct IsnGenerator {
    hasher: SipHasher24,
}

impl IsnGenerator {
    /// A generator keyed by `secret`, which must come from a good random source and stay
    /// private (the appliance draws it once at start-up).
    pub fn new(secret: [u8; 16]) -> IsnGenerator {
        IsnGenerator {
            hasher: SipHasher24::new_with_key(&secret),
        }
    }

    /// The ISN for a connection `local` <-> `remote` opened at `now`.
    pub fn isn(&self, local: SocketAddrV4, remote: SocketAddrV4, now: Instant) -> SeqNumber {
        // M: a timer ticking every 4 microseconds, wrapping at 2^32 (RFC 6528 section 3).
        let m = (now.total_micros() / 4) as u32;
        let h = self.hasher.hash(&tuple_bytes(local, remote));
        // Fold both halves so every key bit influences the 32 bits that are used.
        let f = (h as u32) ^ ((h >> 32) as u32);
        SeqNumber(m.wrapping_add(f))
    }
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.write_str("IsnGenerator { .. }")
    }
}

/// A hash-flooding-resistant [`BuildHasher`]: SipHash-1-3 keyed with a 128-bit secret.
///
/// Use as `HashMap<K, V, KeyedState>` built with `HashMap::with_hasher(KeyedState::new(..))`.
/// There is deliberately no `Default`: a fixed key would give the protection away.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    /// A state with the two 64-bit halves of the key.
    pub const fn new(k0: u64, k1: u64) -> KeyedState {
        KeyedState { k0, k1 }
    }

    /// A state keyed by 16 secret bytes (little-endian halves).
    pub fn from_secret(secret: [u8; 16]) -> KeyedState {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&secret[..8]);
        b.copy_from_slice(&secret[8..]);
        KeyedState::new(u64::from_le_bytes(a), u64::from_le_bytes(b))
    }
}

impl core::fmt::Debug for KeyedState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeyedState { .. }")
    }
}

impl BuildHasher for KeyedState {
    type Hasher = FlowHasher;

    fn build_hasher(&self) -> FlowHasher {
        FlowHasher(SipHasher13::new_with_keys(self.k0, self.k1))
    }
}

/// The [`Hasher`] made by [`KeyedState`] (keyed SipHash-1-3).
#[derive(Clone, Debug)]
pub struct FlowHasher(SipHasher13);

impl Hasher for FlowHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes)
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i)
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.0.write_u16(i)
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0.write_u32(i)
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i)
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use std::collections::HashMap;

    fn a(ip: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(ip), port)
    }

    const SECRET: [u8; 16] = *b"0123456789abcdef";

    #[test]
    fn isn_is_deterministic_and_tuple_dependent() {
        let g = IsnGenerator::new(SECRET);
        let l = a([203, 0, 113, 1], 80);
        let r = a([198, 51, 100, 7], 40_000);
        let t = Instant::from_millis(1234);
        assert_eq!(g.isn(l, r, t), g.isn(l, r, t));
        let base = g.isn(l, r, t);
        let others = [
            g.isn(l, a([198, 51, 100, 7], 40_001), t),
            g.isn(l, a([198, 51, 100, 8], 40_000), t),
            g.isn(a([203, 0, 113, 1], 81), r, t),
            g.isn(r, l, t),
            IsnGenerator::new(*b"0123456789abcdeg").isn(l, r, t),
        ];
        for o in others {
            assert_ne!(o, base);
        }
    }

    #[test]
    fn isn_advances_with_a_4_microsecond_clock() {
        let g = IsnGenerator::new(SECRET);
        let l = a([10, 0, 0, 1], 443);
        let r = a([10, 0, 0, 2], 5555);
        let t = Instant::from_millis(10);
        let base = g.isn(l, r, t);
        assert_eq!(g.isn(l, r, t + crate::time::Duration::from_micros(3)), base);
        assert_eq!(
            g.isn(l, r, t + crate::time::Duration::from_micros(4)),
            base + 1u32
        );
        assert_eq!(
            g.isn(l, r, t + crate::time::Duration::from_millis(1)),
            base + 250u32
        );
        // M wraps at 2^32 ticks (~4.77 hours) without panicking.
        let wrap = Instant::from_micros(4 * (1u64 << 32));
        assert_eq!(g.isn(l, r, wrap), g.isn(l, r, Instant::ZERO));
    }

    #[test]
    fn isn_spreads_across_the_sequence_space() {
        // Adjacent ports at the same instant: the top bits of the ISN take all 16 values.
        let g = IsnGenerator::new(SECRET);
        let l = a([10, 0, 0, 1], 80);
        let mut seen = [0u32; 16];
        for port in 1000..2600u16 {
            let isn = g.isn(l, a([10, 0, 0, 2], port), Instant::ZERO);
            seen[(isn.0 >> 28) as usize] += 1;
        }
        // 1600 draws into 16 buckets: 100 expected each; far outside would mean a weak mix.
        assert!(seen.iter().all(|&n| (50..150).contains(&n)), "{seen:?}");
    }

    #[test]
    fn keyed_state_depends_on_key_and_works_in_hashmap() {
        let s1 = KeyedState::from_secret(SECRET);
        let s2 = KeyedState::new(1, 2);
        let tuple = (a([1, 2, 3, 4], 5), a([6, 7, 8, 9], 10));
        assert_eq!(s1.hash_one(tuple), s1.hash_one(tuple));
        assert_ne!(s1.hash_one(tuple), s2.hash_one(tuple));
        let mut m: HashMap<(SocketAddrV4, SocketAddrV4), u32, KeyedState> =
            HashMap::with_hasher(s1);
        for port in 0..1000u16 {
            m.insert(
                (a([1, 2, 3, 4], port), a([6, 7, 8, 9], 80)),
                u32::from(port),
            );
        }
        assert_eq!(
            m.get(&(a([1, 2, 3, 4], 999), a([6, 7, 8, 9], 80))),
            Some(&999)
        );
        assert_eq!(format!("{s1:?}"), "KeyedState { .. }");
    }
}
