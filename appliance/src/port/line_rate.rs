//! [`LineRate`]: makes any port drain its TX ring at a configured bit rate.
//!
//! On veth and TAP the "wire" is infinitely fast, so the interface queue the SAPS paper is about
//! never builds up. This wrapper puts a bounded software ring of `tx_ring` slots in front of the
//! inner port and releases frames to it only as a NIC at `rate_bps` would have serialized them:
//! a frame starts on the emulated wire when both the wire is free and the frame has been written
//! (so no credit accumulates while idle), takes `(len + 24) * 8 / rate` seconds (24 bytes =
//! preamble, SFD, FCS and inter-frame gap), and leaves the ring when its serialization ends.
//! Time comes only from the `now` arguments, so the emulation is deterministic under test.

use super::{Completions, Port, PortCounters, PortError, SlotRing, TxRingStatus, FRAME_OVERHEAD};
use saps_stack::{Duration, Instant};
use std::fmt;

/// Per-frame bytes on the wire that ports do not see: preamble+SFD (8), FCS (4), IFG (12).
/// One definition for the stack's simulator, this port and saps-pktgen's delay router.
pub use saps_stack::WIRE_OVERHEAD_BYTES;

const PS_PER_SEC: u128 = 1_000_000_000_000;
const PS_PER_US: u128 = 1_000_000;

/// Configuration of a [`LineRate`] wrapper.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LineRateConfig {
    /// Emulated wire rate in bits per second (> 0).
    pub rate_bps: u64,
    /// Slots of the emulated NIC TX ring (e.g. 1024).
    pub tx_ring: usize,
}

impl Default for LineRateConfig {
    fn default() -> Self {
        LineRateConfig {
            rate_bps: 1_000_000_000,
            tx_ring: 1024,
        }
    }
}

/// A port whose TX side drains at a fixed bit rate. RX passes straight through.
pub struct LineRate<P: Port> {
    inner: P,
    rate_bps: u64,
    ring: SlotRing,
    /// Emulated time (ps since the `Instant` origin) when the wire finishes the last frame.
    wire_free_ps: u128,
    done: Completions,
    tx_full: u64,
    tx_drops: u64,
}

impl<P: Port> LineRate<P> {
    /// Wraps `inner`. A zero rate is treated as 1 bit/s rather than dividing by zero.
    pub fn new(inner: P, cfg: LineRateConfig) -> LineRate<P> {
        let slot = inner.mtu() + FRAME_OVERHEAD;
        LineRate {
            inner,
            rate_bps: cfg.rate_bps.max(1),
            ring: SlotRing::new(cfg.tx_ring, slot),
            wire_free_ps: 0,
            done: Completions::default(),
            tx_full: 0,
            tx_drops: 0,
        }
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped port, mutably (e.g. to inspect it in tests).
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// The emulated rate in bits per second.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// Serialization time of a frame of `len` bytes, in picoseconds.
    fn ser_ps(&self, len: usize) -> u128 {
        let bits = (len as u128 + WIRE_OVERHEAD_BYTES as u128) * 8;
        (bits * PS_PER_SEC).div_ceil(self.rate_bps as u128)
    }

    fn end_of_front(&self) -> Option<u128> {
        let (frame, written) = self.ring.front()?;
        let start = self
            .wire_free_ps
            .max(written.total_micros() as u128 * PS_PER_US);
        Some(start + self.ser_ps(frame.len()))
    }

    /// When the oldest queued frame finishes serialization (the next time [`Port::tx_flush`]
    /// can release something), or `None` if the ring is empty. Rounded up to a microsecond.
    pub fn next_release(&self) -> Option<Instant> {
        let end = self.end_of_front()?;
        Some(Instant::from_micros(
            end.div_ceil(PS_PER_US).min(u64::MAX as u128) as u64,
        ))
    }

    /// Serialization time of a frame of `len` bytes at this rate (rounded up to a microsecond).
    pub fn frame_time(&self, len: usize) -> Duration {
        Duration::from_micros(self.ser_ps(len).div_ceil(PS_PER_US).min(u64::MAX as u128) as u64)
    }
}

impl<P: Port> Port for LineRate<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn rx_burst(&mut self, now: Instant, max: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        self.inner.rx_burst(now, max, f)
    }

    fn tx_free(&mut self, _now: Instant) -> usize {
        self.ring.free()
    }

    fn tx_frame(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, PortError> {
        let r = self.ring.push_with(now, fill);
        if r == Err(PortError::TxFull) {
            self.tx_full += 1;
        }
        r
    }

    fn tx_flush(&mut self, now: Instant) -> usize {
        let now_ps = now.total_micros() as u128 * PS_PER_US;
        let mut released = 0;
        while let Some(end) = self.end_of_front() {
            if end > now_ps {
                break;
            }
            let Some((frame, _)) = self.ring.front() else {
                break;
            };
            let len = frame.len();
            let r = self.inner.tx_frame(now, &mut |buf: &mut [u8]| {
                if len > buf.len() {
                    return usize::MAX; // rejected as BadLength below
                }
                buf[..len].copy_from_slice(frame);
                len
            });
            match r {
                // The inner ring is full: push it on and retry if that freed slots, else keep
                // the frame (the wire stays where it was).
                Err(PortError::TxFull) => {
                    if self.inner.tx_flush(now) == 0 {
                        break;
                    }
                }
                Err(PortError::BadLength) | Ok(0) => {
                    self.tx_drops += 1;
                    self.ring.pop_front();
                }
                Ok(_) => {
                    self.ring.pop_front();
                    self.wire_free_ps = end;
                    self.done.packets += 1;
                    self.done.bytes += len as u64;
                    released += 1;
                }
            }
        }
        self.inner.tx_flush(now);
        // The inner port's completions are not ours to report: ours are the releases above.
        let _ = self.inner.take_completions(now);
        released
    }

    fn take_completions(&mut self, _now: Instant) -> Completions {
        std::mem::take(&mut self.done)
    }

    fn tx_ring(&self) -> TxRingStatus {
        TxRingStatus {
            capacity: self.ring.capacity(),
            packets: self.ring.len(),
            bytes: self.ring.bytes(),
        }
    }

    fn link_up(&self) -> bool {
        self.inner.link_up()
    }

    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.poll_fd()
    }

    fn counters(&self) -> PortCounters {
        let c = self.inner.counters();
        PortCounters {
            tx_full: c.tx_full + self.tx_full,
            tx_drops: c.tx_drops + self.tx_drops,
            ..c
        }
    }
}

/// Error of [`parse_rate`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RateError {
    /// The string was empty.
    Empty,
    /// The number part is not a decimal number.
    BadNumber,
    /// The unit is not one of the accepted ones.
    BadUnit,
    /// The rate is zero (or rounds to zero bits/s).
    Zero,
    /// The rate does not fit in 64 bits.
    TooLarge,
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self {
            RateError::Empty => "empty rate",
            RateError::BadNumber => "bad number in rate",
            RateError::BadUnit => "unknown rate unit",
            RateError::Zero => "rate must be above zero",
            RateError::TooLarge => "rate too large",
        };
        write!(
            f,
            "{why}; accepted forms: a number of bits/s (\"1000000\", \"1000000bit\") or a number \
             with kbit, mbit or gbit (\"500kbit\", \"200mbit\", \"1gbit\", \"2.5gbit\")"
        )
    }
}

impl std::error::Error for RateError {}

/// Parses a rate like `"1gbit"`, `"200mbit"`, `"10gbit"`, `"500kbit"`, `"2.5gbit"`, `"1000bit"` or
/// a plain number of bits/s, case-insensitive, into bits per second. Units are decimal
/// (1 kbit = 1000 bit), as for link speeds and `tc`.
pub fn parse_rate(s: &str) -> Result<u64, RateError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(RateError::Empty);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(RateError::BadNumber);
    }
    let mult: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        _ => return Err(RateError::BadUnit),
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (num.contains('.') && frac.is_empty())
        || frac.len() > 9
    {
        return Err(RateError::BadNumber);
    }
    let int_v: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| RateError::TooLarge)?
    };
    let mut bps = int_v.checked_mul(mult).ok_or(RateError::TooLarge)?;
    if !frac.is_empty() {
        let frac_v: u128 = frac.parse().map_err(|_| RateError::BadNumber)?;
        let scale = 10u128.pow(frac.len() as u32);
        bps += frac_v * mult / scale;
    }
    if bps == 0 {
        return Err(RateError::Zero);
    }
    u64::try_from(bps).map_err(|_| RateError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::memory::{MemoryConfig, MemoryPort};
    use crate::port::send_copy;

    fn pair(tx_ring: usize, rate: u64) -> (LineRate<MemoryPort>, MemoryPort) {
        let cfg = MemoryConfig {
            rx_slots: 4096,
            tx_slots: 64,
            ..MemoryConfig::default()
        };
        let (a, b) = MemoryPort::pair(cfg);
        (
            LineRate::new(
                a,
                LineRateConfig {
                    rate_bps: rate,
                    tx_ring,
                },
            ),
            b,
        )
    }

    fn drain(b: &mut MemoryPort) -> usize {
        b.rx_burst(Instant::ZERO, usize::MAX, &mut |_| {})
    }

    #[test]
    fn thousand_full_frames_at_1g_take_12_19_ms() {
        let (mut a, mut b) = pair(1024, 1_000_000_000);
        let t0 = Instant::from_millis(5);
        for _ in 0..1000 {
            send_copy(&mut a, t0, &[0u8; 1500]).unwrap();
        }
        assert_eq!(a.tx_ring().packets, 1000);
        let mut now = t0;
        let mut received = 0;
        let mut completed = 0;
        while completed < 1000 {
            now += Duration::from_micros(1);
            a.tx_flush(now);
            completed += a.take_completions(now).packets;
            received += drain(&mut b);
            assert!(now < t0 + Duration::from_millis(20), "never finished");
        }
        assert_eq!(received, 1000);
        let took = (now - t0).total_micros() as i64;
        // 1000 * (1500 + 24) * 8 bits / 1e9 = 12192 us; allow one frame (12.2 us) plus the 1 us step.
        assert!((took - 12_192).abs() <= 14, "took {took} us");
        assert_eq!(a.tx_ring().packets, 0);
    }

    #[test]
    fn release_is_paced_and_does_not_burst_after_idle() {
        let (mut a, mut b) = pair(64, 1_000_000_000);
        let t = Instant::from_millis(100); // long idle before: no credit may have accumulated
        for _ in 0..10 {
            send_copy(&mut a, t, &[0u8; 1500]).unwrap();
        }
        assert_eq!(
            a.tx_flush(t),
            0,
            "nothing is done serializing at the write instant"
        );
        assert_eq!(a.tx_flush(t + Duration::from_micros(12)), 0);
        assert_eq!(a.tx_flush(t + Duration::from_micros(13)), 1);
        assert_eq!(a.tx_flush(t + Duration::from_micros(13)), 0);
        // After 5 frame times (60.96 us) exactly 5 in total have left.
        assert_eq!(a.tx_flush(t + Duration::from_micros(61)), 4);
        assert_eq!(a.tx_ring().packets, 5);
        assert_eq!(drain(&mut b), 5);
        assert_eq!(a.next_release(), Some(t + Duration::from_micros(74)));
    }

    #[test]
    fn ring_bound_respected_and_tx_full_counted() {
        let (mut a, _b) = pair(16, 1_000_000);
        for _ in 0..16 {
            send_copy(&mut a, Instant::ZERO, &[0u8; 100]).unwrap();
        }
        assert_eq!(a.tx_free(Instant::ZERO), 0);
        assert_eq!(
            send_copy(&mut a, Instant::ZERO, &[0u8; 100]),
            Err(PortError::TxFull)
        );
        assert_eq!(a.counters().tx_full, 1);
        assert_eq!(
            a.tx_ring(),
            TxRingStatus {
                capacity: 16,
                packets: 16,
                bytes: 1600
            }
        );
    }

    #[test]
    fn partial_flush_keeps_frames_when_inner_ring_is_full() {
        // Inner TX ring of 64, peer RX of 2 with back-pressure: the inner ring fills and the
        // wrapper must keep the rest rather than drop them.
        let cfg = MemoryConfig {
            rx_slots: 2,
            tx_slots: 3,
            ..MemoryConfig::default()
        };
        let (inner, mut b) = MemoryPort::pair(cfg);
        let mut a = LineRate::new(
            inner,
            LineRateConfig {
                rate_bps: 10_000_000_000,
                tx_ring: 32,
            },
        );
        for i in 0..20u8 {
            send_copy(&mut a, Instant::ZERO, &[i; 64]).unwrap();
        }
        let later = Instant::from_millis(1);
        let first = a.tx_flush(later);
        assert_eq!(first, 5, "2 on the peer's RX ring + 3 in the inner TX ring");
        assert_eq!(a.tx_ring().packets, 15);
        let mut seen = Vec::new();
        let mut now = later;
        while seen.len() < 20 {
            b.rx_burst(now, 1, &mut |f| seen.push(f[0]));
            now += Duration::from_micros(1);
            a.tx_flush(now);
            assert!(now < Instant::from_millis(2));
        }
        assert_eq!(
            seen,
            (0..20u8).collect::<Vec<_>>(),
            "nothing lost or reordered"
        );
        assert_eq!(a.counters().tx_drops, 0);
    }

    #[test]
    fn ten_gbit_keeps_sub_microsecond_precision() {
        let (mut a, mut b) = pair(2048, 10_000_000_000);
        for _ in 0..1000 {
            send_copy(&mut a, Instant::ZERO, &[0u8; 1500]).unwrap();
        }
        // 1000 frames * 1219.2 ns = 1219.2 us.
        a.tx_flush(Instant::from_micros(1219));
        assert_eq!(drain(&mut b), 999);
        a.tx_flush(Instant::from_micros(1220));
        assert_eq!(drain(&mut b), 1);
    }

    #[test]
    fn parse_rate_accepts_documented_forms() {
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("10gbit"), Ok(10_000_000_000));
        assert_eq!(parse_rate("200mbit"), Ok(200_000_000));
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("2.5gbit"), Ok(2_500_000_000));
        assert_eq!(parse_rate(" 1GBit "), Ok(1_000_000_000));
        assert_eq!(parse_rate("1000000"), Ok(1_000_000));
        assert_eq!(parse_rate("64000bit"), Ok(64_000));
        assert_eq!(parse_rate("1 gbit"), Ok(1_000_000_000));
    }

    #[test]
    fn parse_rate_round_trips_and_never_panics() {
        for n in [1u64, 7, 10, 999, 1000, 123_456, 18_000_000] {
            for (unit, mult) in [
                ("", 1),
                ("bit", 1),
                ("kbit", 1_000),
                ("mbit", 1_000_000),
                ("gbit", 1_000_000_000),
            ] {
                let want = n.checked_mul(mult);
                let got = parse_rate(&format!("{n}{unit}"));
                match want {
                    Some(w) => assert_eq!(got, Ok(w), "{n}{unit}"),
                    None => assert_eq!(got, Err(RateError::TooLarge), "{n}{unit}"),
                }
            }
        }
        // Every string of up to 4 characters over an alphabet of digits, dots, units and junk.
        let alphabet = [
            '0', '1', '9', '.', 'k', 'm', 'g', 'b', 'i', 't', ' ', '-', 'é',
        ];
        let mut s = String::new();
        fn walk(s: &mut String, depth: usize, alphabet: &[char]) {
            let _ = parse_rate(s);
            if depth == 0 {
                return;
            }
            for &c in alphabet {
                s.push(c);
                walk(s, depth - 1, alphabet);
                s.pop();
            }
        }
        walk(&mut s, 4, &alphabet);
    }

    #[test]
    fn parse_rate_rejects_bad_input_with_helpful_errors() {
        assert_eq!(parse_rate(""), Err(RateError::Empty));
        assert_eq!(parse_rate("fast"), Err(RateError::BadNumber));
        assert_eq!(parse_rate("1gbps"), Err(RateError::BadUnit));
        assert_eq!(parse_rate("1tbit"), Err(RateError::BadUnit));
        assert_eq!(parse_rate("0mbit"), Err(RateError::Zero));
        assert_eq!(parse_rate("1."), Err(RateError::BadNumber));
        assert_eq!(parse_rate("1.2.3gbit"), Err(RateError::BadNumber));
        assert_eq!(parse_rate("-1gbit"), Err(RateError::BadNumber));
        assert_eq!(parse_rate("99999999999gbit"), Err(RateError::TooLarge));
        assert_eq!(
            parse_rate("999999999999999999999999999999999999999999"),
            Err(RateError::TooLarge)
        );
        let msg = parse_rate("1gbps").unwrap_err().to_string();
        assert!(
            msg.contains("gbit") && msg.contains("mbit") && msg.contains("kbit"),
            "{msg}"
        );
    }
}
