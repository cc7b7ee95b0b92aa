//! In-process ports for tests and simulation: [`MemoryPort::pair`] gives two ends of a wire;
//! frames flushed on one end appear on the other's RX ring.
//!
//! Both rings are bounded and pre-allocated: a TX ring of written-but-not-flushed frames per end
//! and an RX ring per end. When the peer's RX ring is full, a flush either leaves the frames in
//! the TX ring (back-pressure, the default) or drops them as a NIC would, counted as the
//! receiver's `rx_drops` ([`MemoryConfig::drop_when_peer_full`]).

use super::{Completions, Port, PortCounters, PortError, SlotRing, TxRingStatus, FRAME_OVERHEAD};
use saps_stack::Instant;
use std::sync::{Arc, Mutex, MutexGuard};

/// Configuration of a memory port pair.
#[derive(Clone, Debug)]
pub struct MemoryConfig {
    /// L3 MTU of both ends.
    pub mtu: usize,
    /// RX ring slots per end.
    pub rx_slots: usize,
    /// TX ring slots per end.
    pub tx_slots: usize,
    /// Drop (and count as the receiver's `rx_drops`) instead of keeping frames queued when the
    /// peer's RX ring is full.
    pub drop_when_peer_full: bool,
    /// MACs of end A and end B.
    pub macs: [[u8; 6]; 2],
    /// Names of end A and end B.
    pub names: [String; 2],
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            mtu: 1500,
            rx_slots: 512,
            tx_slots: 512,
            drop_when_peer_full: false,
            macs: [[0x02, 0, 0, 0, 0, 0x0a], [0x02, 0, 0, 0, 0, 0x0b]],
            names: ["mem-a".to_string(), "mem-b".to_string()],
        }
    }
}

/// One direction of the wire: the receiver's RX ring. Slot buffers are swapped with the
/// receiver's spare buffer on receive, so the lock is not held while user code sees the frame.
struct RxQueue {
    slots: Vec<Vec<u8>>,
    lens: Vec<usize>,
    head: usize,
    len: usize,
    drops: u64,
}

impl RxQueue {
    fn new(slots: usize, slot_size: usize) -> RxQueue {
        let slots = slots.max(1);
        RxQueue {
            slots: (0..slots).map(|_| vec![0; slot_size]).collect(),
            lens: vec![0; slots],
            head: 0,
            len: 0,
            drops: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == self.slots.len()
    }

    fn push(&mut self, frame: &[u8]) {
        let idx = (self.head + self.len) % self.slots.len();
        self.slots[idx][..frame.len()].copy_from_slice(frame);
        self.lens[idx] = frame.len();
        self.len += 1;
    }

    /// Swaps the oldest frame's buffer with `spare`; returns the frame length.
    fn pop_into(&mut self, spare: &mut Vec<u8>) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let n = self.lens[self.head];
        std::mem::swap(&mut self.slots[self.head], spare);
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        Some(n)
    }
}

type Link = Arc<Mutex<RxQueue>>;

fn lock(link: &Link) -> MutexGuard<'_, RxQueue> {
    // A panic elsewhere while holding the lock leaves only plain counters and slots behind.
    link.lock().unwrap_or_else(|e| e.into_inner())
}

/// One end of an in-process wire.
pub struct MemoryPort {
    name: String,
    mac: [u8; 6],
    mtu: usize,
    tx: SlotRing,
    rx: Link,
    peer: Link,
    spare: Vec<u8>,
    drop_when_peer_full: bool,
    done: Completions,
    counters: PortCounters,
}

impl MemoryPort {
    /// Two connected ends: frames flushed on one are received on the other.
    pub fn pair(cfg: MemoryConfig) -> (MemoryPort, MemoryPort) {
        let slot = cfg.mtu + FRAME_OVERHEAD;
        let a_rx: Link = Arc::new(Mutex::new(RxQueue::new(cfg.rx_slots, slot)));
        let b_rx: Link = Arc::new(Mutex::new(RxQueue::new(cfg.rx_slots, slot)));
        let mk = |i: usize, rx: &Link, peer: &Link| MemoryPort {
            name: cfg.names[i].clone(),
            mac: cfg.macs[i],
            mtu: cfg.mtu,
            tx: SlotRing::new(cfg.tx_slots, slot),
            rx: rx.clone(),
            peer: peer.clone(),
            spare: vec![0; slot],
            drop_when_peer_full: cfg.drop_when_peer_full,
            done: Completions::default(),
            counters: PortCounters::default(),
        };
        let a = mk(0, &a_rx, &b_rx);
        let b = mk(1, &b_rx, &a_rx);
        (a, b)
    }

    /// Frames waiting in this end's RX ring.
    pub fn rx_pending(&self) -> usize {
        lock(&self.rx).len
    }
}

impl Port for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn rx_burst(&mut self, _now: Instant, max: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max {
            let Some(len) = lock(&self.rx).pop_into(&mut self.spare) else {
                break;
            };
            f(&self.spare[..len]);
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += len as u64;
            n += 1;
        }
        n
    }

    fn tx_free(&mut self, _now: Instant) -> usize {
        self.tx.free()
    }

    fn tx_frame(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, PortError> {
        let r = self.tx.push_with(now, fill);
        if r == Err(PortError::TxFull) {
            self.counters.tx_full += 1;
        }
        r
    }

    fn tx_flush(&mut self, _now: Instant) -> usize {
        let mut peer = lock(&self.peer);
        let mut handed = 0;
        while let Some((frame, _)) = self.tx.front() {
            let len = frame.len();
            if peer.is_full() {
                if !self.drop_when_peer_full {
                    break;
                }
                peer.drops += 1;
                self.tx.pop_front();
                // The wire took it; the receiver lost it.
            } else {
                peer.push(frame);
                self.tx.pop_front();
            }
            handed += 1;
            self.done.packets += 1;
            self.done.bytes += len as u64;
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += len as u64;
        }
        handed
    }

    fn take_completions(&mut self, _now: Instant) -> Completions {
        std::mem::take(&mut self.done)
    }

    fn tx_ring(&self) -> TxRingStatus {
        TxRingStatus {
            capacity: self.tx.capacity(),
            packets: self.tx.len(),
            bytes: self.tx.bytes(),
        }
    }

    fn link_up(&self) -> bool {
        // The peer holds our `peer` link as its RX ring while it exists.
        Arc::strong_count(&self.peer) > 1
    }

    fn counters(&self) -> PortCounters {
        PortCounters {
            rx_drops: lock(&self.rx).drops,
            ..self.counters
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::send_copy;

    const T0: Instant = Instant::ZERO;

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[12] = 0x08;
        f[13] = 0x00;
        f
    }

    fn collect(p: &mut MemoryPort, max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        p.rx_burst(T0, max, &mut |f| out.push(f.to_vec()));
        out
    }

    #[test]
    fn frames_cross_in_order_and_only_after_flush() {
        let (mut a, mut b) = MemoryPort::pair(MemoryConfig::default());
        for i in 0..5u8 {
            assert_eq!(
                send_copy(&mut a, T0, &frame(i, 60 + i as usize)),
                Ok(60 + i as usize)
            );
        }
        assert_eq!(a.tx_ring().packets, 5);
        assert_eq!(a.tx_ring().bytes, (60..65).sum::<usize>() as u64);
        assert!(collect(&mut b, 64).is_empty(), "nothing before flush");
        assert_eq!(a.tx_flush(T0), 5);
        assert_eq!(a.tx_ring().packets, 0);
        assert_eq!(
            a.take_completions(T0),
            Completions {
                packets: 5,
                bytes: 310
            }
        );
        assert_eq!(a.take_completions(T0), Completions::default());
        let got = collect(&mut b, 3);
        assert_eq!(got.len(), 3, "burst limit respected");
        assert_eq!(got[0], frame(0, 60));
        let got = collect(&mut b, 64);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], frame(4, 64));
        assert_eq!(b.counters().rx_packets, 5);
        assert_eq!(a.counters().tx_packets, 5);
    }

    #[test]
    fn full_tx_ring_reports_tx_full_and_counts() {
        let cfg = MemoryConfig {
            tx_slots: 4,
            ..MemoryConfig::default()
        };
        let (mut a, _b) = MemoryPort::pair(cfg);
        for _ in 0..4 {
            send_copy(&mut a, T0, &frame(1, 100)).unwrap();
        }
        assert_eq!(a.tx_free(T0), 0);
        assert_eq!(
            send_copy(&mut a, T0, &frame(1, 100)),
            Err(PortError::TxFull)
        );
        assert_eq!(a.counters().tx_full, 1);
        assert_eq!(
            a.tx_ring(),
            TxRingStatus {
                capacity: 4,
                packets: 4,
                bytes: 400
            }
        );
    }

    #[test]
    fn partial_flush_keeps_frames_when_peer_rx_is_full() {
        let cfg = MemoryConfig {
            rx_slots: 3,
            tx_slots: 8,
            ..MemoryConfig::default()
        };
        let (mut a, mut b) = MemoryPort::pair(cfg);
        for i in 0..5u8 {
            send_copy(&mut a, T0, &frame(i, 80)).unwrap();
        }
        assert_eq!(a.tx_flush(T0), 3);
        assert_eq!(a.tx_ring().packets, 2, "two frames kept, not dropped");
        assert_eq!(collect(&mut b, 64).len(), 3);
        assert_eq!(a.tx_flush(T0), 2);
        let got = collect(&mut b, 64);
        assert_eq!(got, vec![frame(3, 80), frame(4, 80)]);
        assert_eq!(b.counters().rx_drops, 0);
    }

    #[test]
    fn drop_mode_counts_receiver_drops() {
        let cfg = MemoryConfig {
            rx_slots: 2,
            drop_when_peer_full: true,
            ..MemoryConfig::default()
        };
        let (mut a, mut b) = MemoryPort::pair(cfg);
        for i in 0..5u8 {
            send_copy(&mut a, T0, &frame(i, 80)).unwrap();
        }
        assert_eq!(a.tx_flush(T0), 5);
        assert_eq!(b.counters().rx_drops, 3);
        assert_eq!(collect(&mut b, 64).len(), 2);
    }

    #[test]
    fn oversize_frame_rejected_and_link_follows_peer() {
        let (mut a, b) = MemoryPort::pair(MemoryConfig::default());
        assert_eq!(
            send_copy(&mut a, T0, &frame(0, 1519)),
            Err(PortError::BadLength)
        );
        assert_eq!(send_copy(&mut a, T0, &frame(0, 1518)), Ok(1518));
        assert!(a.link_up());
        drop(b);
        assert!(!a.link_up());
    }

    #[test]
    fn bidirectional() {
        let (mut a, mut b) = MemoryPort::pair(MemoryConfig::default());
        send_copy(&mut b, T0, &frame(7, 64)).unwrap();
        b.tx_flush(T0);
        assert_eq!(collect(&mut a, 8), vec![frame(7, 64)]);
        assert_eq!(a.mac(), MemoryConfig::default().macs[0]);
        assert_eq!(b.name(), "mem-b");
    }
}
