//! A bounded FIFO of pre-allocated frame slots: the software TX ring of the memory, TAP and
//! line-rate ports. No allocation after construction.

use super::{check_fill_len, PortError};
use saps_stack::Instant;

/// Bounded FIFO of fixed-size frame slots, all allocated up front in one buffer.
pub struct SlotRing {
    buf: Vec<u8>,
    slot_size: usize,
    lens: Vec<u32>,
    stamps: Vec<Instant>,
    head: usize,
    len: usize,
    bytes: u64,
}

impl SlotRing {
    /// A ring of `slots` slots of `slot_size` bytes each (both at least 1).
    pub fn new(slots: usize, slot_size: usize) -> SlotRing {
        let slots = slots.max(1);
        let slot_size = slot_size.max(1);
        SlotRing {
            buf: vec![0; slots * slot_size],
            slot_size,
            lens: vec![0; slots],
            stamps: vec![Instant::ZERO; slots],
            head: 0,
            len: 0,
            bytes: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    /// Bytes of the queued frames.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Builds a frame in the next free slot (see [`super::Port::tx_frame`]); `now` is stored with
    /// it. Returns the length, 0 if `fill` wrote nothing.
    pub fn push_with(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, PortError> {
        if self.len == self.capacity() {
            return Err(PortError::TxFull);
        }
        let idx = (self.head + self.len) % self.capacity();
        let start = idx * self.slot_size;
        let slot = &mut self.buf[start..start + self.slot_size];
        let Some(n) = check_fill_len(fill(slot), self.slot_size)? else {
            return Ok(0);
        };
        self.lens[idx] = n as u32;
        self.stamps[idx] = now;
        self.len += 1;
        self.bytes += n as u64;
        Ok(n)
    }

    /// The oldest frame and the time it was written.
    pub fn front(&self) -> Option<(&[u8], Instant)> {
        if self.len == 0 {
            return None;
        }
        let start = self.head * self.slot_size;
        let n = self.lens[self.head] as usize;
        Some((&self.buf[start..start + n], self.stamps[self.head]))
    }

    /// Removes the oldest frame; returns its length (0 if the ring was empty).
    pub fn pop_front(&mut self) -> usize {
        if self.len == 0 {
            return 0;
        }
        let n = self.lens[self.head] as usize;
        self.head = (self.head + 1) % self.capacity();
        self.len -= 1;
        self.bytes -= n as u64;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_bounded_and_wraps() {
        let mut r = SlotRing::new(3, 64);
        for round in 0..5u8 {
            for i in 0..3u8 {
                let n = r
                    .push_with(Instant::ZERO, &mut |b| {
                        b[..20].fill(round * 10 + i);
                        20
                    })
                    .unwrap();
                assert_eq!(n, 20);
            }
            assert_eq!(
                r.push_with(Instant::ZERO, &mut |_| 20),
                Err(PortError::TxFull)
            );
            assert_eq!(r.bytes(), 60);
            for i in 0..3u8 {
                assert_eq!(r.front().unwrap().0, &[round * 10 + i; 20][..]);
                assert_eq!(r.pop_front(), 20);
            }
            assert!(r.is_empty());
            assert_eq!(r.pop_front(), 0);
        }
    }

    #[test]
    fn bad_and_empty_fills_do_not_use_a_slot() {
        let mut r = SlotRing::new(2, 64);
        assert_eq!(r.push_with(Instant::ZERO, &mut |_| 0), Ok(0));
        assert_eq!(
            r.push_with(Instant::ZERO, &mut |_| 65),
            Err(PortError::BadLength)
        );
        assert_eq!(
            r.push_with(Instant::ZERO, &mut |_| 13),
            Err(PortError::BadLength)
        );
        assert_eq!(r.len(), 0);
        assert_eq!(r.push_with(Instant::ZERO, &mut |_| 64), Ok(64));
        assert_eq!(r.len(), 1);
    }
}
