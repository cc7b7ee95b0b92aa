//! SYN cookies (RFC 4987): a listener under SYN flood answers with a SYN-ACK whose ISN encodes
//! what it must remember, and keeps no state until the final ACK returns the cookie.
//!
//! Design: everything lives in the 32-bit ISN, so decoding needs only the ACK's `seq` and `ack`
//! (no TSecr), whether or not the SYN carried timestamps. Layout, most significant bit first:
//!
//! ```text
//!  31 30 | 29 28 27 | 26 25 24 23 | 22   | 21 | 20 ........................ 0
//!  slot  | MSS idx  | wscale      | SACK | TS | MAC (21 bits)
//! ```
//!
//! - `slot`: the low 2 bits of the time-slot counter `now / slot_len` (64 s by default).
//! - `MSS idx`: index into [`MSS_TABLE`]; the peer's MSS is rounded down to a table entry.
//! - `wscale`: the peer's window-scale shift 0..=14, or 15 for "no window scale option".
//! - `SACK`, `TS`: SACK-permitted and timestamps were offered.
//! - `MAC`: 21 bits of SipHash-2-4, keyed by the secret, over the 4-tuple, the peer's ISN, the
//!   full time-slot counter and the 11 bits above.
//!
//! A cookie is accepted while the current slot counter is its own or the next one, so it lives
//! between one and two slots (64-128 s by default). The 2 slot bits name the one candidate
//! counter, so decoding costs one hash. A random guess passes with probability
//! `2/4 * 2^-21 = 2^-22` (about 1 in 4 million): every combination of the option bits is
//! meaningful, so the MAC is the only redundancy a 32-bit ISN has room for once the options are
//! kept. The options themselves are sent in clear: they are the peer's own.

use core::net::SocketAddrV4;

use siphasher::sip::SipHasher24;

use crate::tcp::isn::tuple_bytes;
use crate::tcp::seq::SeqNumber;
use crate::time::{Duration, Instant};

/// The MSS values a cookie can carry (common path MTUs minus 40 bytes of headers, and 536).
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1300, 1380, 1420, 1440, 1452, 1460];

/// Default length of a cookie time slot.
pub const DEFAULT_SLOT: Duration = Duration::from_secs(64);

/// Window-scale field value meaning "the SYN had no window scale option".
const WS_NONE: u32 = 15;
/// Largest shift allowed by RFC 7323.
const WS_MAX: u8 = 14;
const MAC_BITS: u32 = 21;
const MAC_MASK: u32 = (1 << MAC_BITS) - 1;

/// What the SYN negotiated, as remembered by a cookie.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CookieOptions {
    /// The peer's MSS (on decode: rounded down to an entry of [`MSS_TABLE`]).
    pub mss: u16,
    /// The peer's window-scale shift, `None` when it sent no window scale option.
    pub window_scale: Option<u8>,
    /// The peer sent SACK-permitted.
    pub sack_permitted: bool,
    /// The peer sent a timestamps option.
    pub timestamps: bool,
}

/// SYN cookie encoder/decoder keyed by a 128-bit secret.
#[derive(Clone)]
pub struct SynCookies {
    hasher: SipHasher24,
    slot_us: u64,
}

impl core::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SynCookies")
            .field("slot_us", &self.slot_us)
            .finish_non_exhaustive()
    }
}

/// The table index for `mss`: the largest entry not above it (entry 0 for anything smaller,
/// since 536 is the IPv4 default MSS every host must accept).
pub fn mss_index(mss: u16) -> usize {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0)
}

impl SynCookies {
    /// Cookies keyed by `secret` with the default 64-second slot.
    pub fn new(secret: [u8; 16]) -> SynCookies {
        SynCookies::with_slot(secret, DEFAULT_SLOT)
    }

    /// Cookies keyed by `secret` whose time slot is `slot` long (at least 1 µs); a cookie lives
    /// between one and two slots.
    pub fn with_slot(secret: [u8; 16], slot: Duration) -> SynCookies {
        SynCookies {
            hasher: SipHasher24::new_with_key(&secret),
            slot_us: slot.total_micros().max(1),
        }
    }

    fn counter(&self, now: Instant) -> u64 {
        now.total_micros() / self.slot_us
    }

    fn mac(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: SeqNumber,
        counter: u64,
        fields: u32,
    ) -> u32 {
        let mut buf = [0u8; 12 + 4 + 8 + 2];
        buf[..12].copy_from_slice(&tuple_bytes(local, remote));
        buf[12..16].copy_from_slice(&peer_isn.0.to_be_bytes());
        buf[16..24].copy_from_slice(&counter.to_be_bytes());
        buf[24..26].copy_from_slice(&(fields as u16).to_be_bytes());
        let h = self.hasher.hash(&buf);
        ((h ^ (h >> 32)) as u32) & MAC_MASK
    }

    /// The ISN for a SYN-ACK answering a SYN from `remote` to `local` with sequence number
    /// `peer_isn` and options `opts`, at `now`. A window scale above 14 is recorded as 14.
    pub fn encode(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: SeqNumber,
        opts: CookieOptions,
        now: Instant,
    ) -> SeqNumber {
        let counter = self.counter(now);
        let ws = match opts.window_scale {
            Some(s) => u32::from(s.min(WS_MAX)),
            None => WS_NONE,
        };
        // 11 bits: slot(2) | mss(3) | wscale(4) | sack(1) | ts(1).
        let fields = ((counter as u32 & 3) << 9)
            | ((mss_index(opts.mss) as u32) << 6)
            | (ws << 2)
            | (u32::from(opts.sack_permitted) << 1)
            | u32::from(opts.timestamps);
        let mac = self.mac(local, remote, peer_isn, counter, fields);
        SeqNumber((fields << MAC_BITS) | mac)
    }

    /// Checks the cookie returned in an ACK (`cookie = ack.ack - 1`, `peer_isn = ack.seq - 1`)
    /// and recovers the options, or `None` if it is forged, for another connection, or expired.
    pub fn decode(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: SeqNumber,
        cookie: SeqNumber,
        now: Instant,
    ) -> Option<CookieOptions> {
        let fields = cookie.0 >> MAC_BITS;
        let slot_bits = u64::from(fields >> 9);
        let current = self.counter(now);
        // The one counter among {current, current - 1} whose low bits match.
        let counter = if current & 3 == slot_bits {
            current
        } else if current >= 1 && (current - 1) & 3 == slot_bits {
            current - 1
        } else {
            return None;
        };
        if self.mac(local, remote, peer_isn, counter, fields) != cookie.0 & MAC_MASK {
            return None;
        }
        let ws = (fields >> 2) & 0xf;
        Some(CookieOptions {
            mss: MSS_TABLE[((fields >> 6) & 7) as usize],
            window_scale: (ws != WS_NONE).then_some(ws as u8),
            sack_permitted: fields & 2 != 0,
            timestamps: fields & 1 != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const SECRET: [u8; 16] = *b"cookie-secret-16";

    fn a(ip: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(ip), port)
    }

    fn local() -> SocketAddrV4 {
        a([203, 0, 113, 1], 80)
    }

    fn remote() -> SocketAddrV4 {
        a([198, 51, 100, 9], 51_000)
    }

    /// SplitMix64, for reproducible random guesses.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    const OPTS: CookieOptions = CookieOptions {
        mss: 1460,
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: true,
    };

    #[test]
    fn round_trips_every_option_combination() {
        let c = SynCookies::new(SECRET);
        let now = Instant::from_millis(1_000_000);
        let peer = SeqNumber(0xdead_beef);
        let mut distinct = std::collections::HashSet::new();
        for &mss in &MSS_TABLE {
            for ws in (0..=14).map(Some).chain([None]) {
                for sack in [false, true] {
                    for ts in [false, true] {
                        let opts = CookieOptions {
                            mss,
                            window_scale: ws,
                            sack_permitted: sack,
                            timestamps: ts,
                        };
                        let cookie = c.encode(local(), remote(), peer, opts, now);
                        distinct.insert(cookie.0);
                        assert_eq!(c.decode(local(), remote(), peer, cookie, now), Some(opts));
                    }
                }
            }
        }
        assert_eq!(distinct.len(), 8 * 16 * 4);
    }

    #[test]
    fn mss_rounds_down_to_the_table_and_wscale_is_capped() {
        let c = SynCookies::new(SECRET);
        let now = Instant::ZERO;
        let peer = SeqNumber(1);
        for (sent, kept) in [
            (1459, 1452),
            (1460, 1460),
            (9000, 1460),
            (1200, 1200),
            (1299, 1200),
            (100, 536),
            (536, 536),
        ] {
            let opts = CookieOptions { mss: sent, ..OPTS };
            let cookie = c.encode(local(), remote(), peer, opts, now);
            let got = c.decode(local(), remote(), peer, cookie, now).unwrap();
            assert_eq!(got.mss, kept, "sent {sent}");
        }
        let opts = CookieOptions {
            window_scale: Some(200),
            ..OPTS
        };
        let cookie = c.encode(local(), remote(), peer, opts, now);
        assert_eq!(
            c.decode(local(), remote(), peer, cookie, now)
                .unwrap()
                .window_scale,
            Some(14)
        );
    }

    #[test]
    fn cookies_expire_after_two_slots() {
        let c = SynCookies::new(SECRET);
        let peer = SeqNumber(77);
        // Made late in slot 10 (64 s slots): valid through the end of slot 11.
        let made = Instant::from_millis(10 * 64_000 + 63_000);
        let cookie = c.encode(local(), remote(), peer, OPTS, made);
        for (ms, ok) in [
            (10 * 64_000 + 63_000, true),
            (11 * 64_000, true),
            (12 * 64_000 - 1, true),
            (12 * 64_000, false),
            (13 * 64_000, false),
            (14 * 64_000, false), // same low slot bits as slot 10, but a different counter
            (9 * 64_000, false),  // from the future
        ] {
            let got = c.decode(local(), remote(), peer, cookie, Instant::from_millis(ms));
            assert_eq!(got.is_some(), ok, "at {ms} ms");
        }
        // Slot 0 works too (no underflow).
        let early = c.encode(local(), remote(), peer, OPTS, Instant::ZERO);
        assert_eq!(
            c.decode(local(), remote(), peer, early, Instant::ZERO),
            Some(OPTS)
        );
        // A configurable slot.
        let short = SynCookies::with_slot(SECRET, Duration::from_secs(1));
        let ck = short.encode(local(), remote(), peer, OPTS, Instant::ZERO);
        assert!(short
            .decode(local(), remote(), peer, ck, Instant::from_millis(1_999))
            .is_some());
        assert!(short
            .decode(local(), remote(), peer, ck, Instant::from_millis(2_000))
            .is_none());
    }

    #[test]
    fn changed_tuple_peer_isn_or_secret_is_rejected() {
        let c = SynCookies::new(SECRET);
        let now = Instant::from_millis(5_000);
        let peer = SeqNumber(123_456);
        let cookie = c.encode(local(), remote(), peer, OPTS, now);
        assert!(c.decode(local(), remote(), peer, cookie, now).is_some());
        assert!(c
            .decode(local(), a([198, 51, 100, 9], 51_001), peer, cookie, now)
            .is_none());
        assert!(c
            .decode(local(), a([198, 51, 100, 10], 51_000), peer, cookie, now)
            .is_none());
        assert!(c
            .decode(a([203, 0, 113, 1], 81), remote(), peer, cookie, now)
            .is_none());
        assert!(c.decode(remote(), local(), peer, cookie, now).is_none());
        assert!(c
            .decode(local(), remote(), peer + 1u32, cookie, now)
            .is_none());
        let other = SynCookies::new(*b"another-secret!!");
        assert!(other.decode(local(), remote(), peer, cookie, now).is_none());
        // Every single-bit change of the cookie is caught.
        for bit in 0..32 {
            let bad = SeqNumber(cookie.0 ^ (1 << bit));
            assert!(
                c.decode(local(), remote(), peer, bad, now).is_none(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn random_guesses_are_rejected_at_the_expected_rate() {
        // Expected acceptance per guess: 2/4 (slot bits) * 2^-21 (MAC) = 2^-22. Over 2^20
        // guesses that is 0.25 on average; P(more than 3) is about 1e-4 for a Poisson(0.25).
        let c = SynCookies::new(SECRET);
        let now = Instant::from_millis(7 * 64_000);
        let mut rng = 42u64;
        let mut accepted = 0;
        for _ in 0..(1u32 << 20) {
            let r = splitmix(&mut rng);
            if c.decode(
                local(),
                remote(),
                SeqNumber(r as u32),
                SeqNumber((r >> 32) as u32),
                now,
            )
            .is_some()
            {
                accepted += 1;
            }
        }
        assert!(accepted <= 3, "{accepted} forged cookies accepted");
    }

    #[test]
    fn macs_of_a_narrower_check_accept_at_the_predicted_rate() {
        // The same statistics with enough events to measure: how often do the MAC bits of two
        // different inputs agree in their low 8 bits? The MAC should behave like a random
        // function, so 1/256 of the time.
        let c = SynCookies::new(SECRET);
        let mut rng = 7u64;
        let n = 200_000;
        let mut hits = 0;
        for _ in 0..n {
            let r = splitmix(&mut rng);
            let x = c.mac(local(), remote(), SeqNumber(r as u32), 5, 0);
            let y = c.mac(local(), remote(), SeqNumber((r >> 32) as u32 | 1), 5, 0);
            if (x ^ y) & 0xff == 0 {
                hits += 1;
            }
        }
        let expected = f64::from(n) / 256.0; // 781
        assert!(
            (f64::from(hits) - expected).abs() < 5.0 * expected.sqrt(),
            "{hits}"
        );
    }
}
