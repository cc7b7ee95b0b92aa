//! The send queue: bytes from SND.UNA onward (sent-but-unacknowledged, then unsent).
//!
//! Storage is a `VecDeque<u8>` that allocates on first use and is released as soon as everything
//! has been acknowledged, so an idle connection holds no send memory.

use std::collections::VecDeque;

/// Bounded byte queue whose front is the byte at SND.UNA.
#[derive(Debug, Default)]
pub struct SendBuffer {
    q: VecDeque<u8>,
    cap: u32,
}

impl SendBuffer {
    /// An empty queue that will hold at most `cap` bytes. Allocates nothing.
    pub fn new(cap: usize) -> Self {
        SendBuffer {
            q: VecDeque::new(),
            cap: cap.min(u32::MAX as usize / 2) as u32,
        }
    }

    /// Bytes queued (unacknowledged, sent or not).
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Free space in bytes.
    pub fn free(&self) -> usize {
        (self.cap as usize).saturating_sub(self.q.len())
    }

    /// Capacity limit in bytes.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Copy as much of `data` as fits; returns the number of bytes taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.q.extend(&data[..n]);
        n
    }

    /// The bytes `[off, off+len)` (clipped to what is queued) as up to two slices.
    pub fn slices(&self, off: usize, len: usize) -> (&[u8], &[u8]) {
        let (a, b) = self.q.as_slices();
        let end = off.saturating_add(len).min(self.q.len());
        let off = off.min(end);
        if off >= a.len() {
            (&b[off - a.len()..end - a.len()], &[])
        } else if end <= a.len() {
            (&a[off..end], &[])
        } else {
            (&a[off..], &b[..end - a.len()])
        }
    }

    /// Copy `[off, off+len)` into `out`; returns the bytes copied.
    #[inline]
    pub fn copy_out(&self, off: usize, out: &mut [u8]) -> usize {
        let (a, b) = self.slices(off, out.len());
        out[..a.len()].copy_from_slice(a);
        if !b.is_empty() {
            // Wrapped around the ring (a zero-length copy would still call memcpy).
            out[a.len()..a.len() + b.len()].copy_from_slice(b);
        }
        a.len() + b.len()
    }

    /// Drop `n` acknowledged bytes from the front; frees the storage when the queue empties.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.q.len());
        self.q.drain(..n);
        if self.q.is_empty() && self.q.capacity() > 0 {
            self.q = VecDeque::new();
        }
    }

    /// Heap bytes currently held.
    pub fn allocated(&self) -> usize {
        self.q.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_read_consume_wraps_and_frees() {
        let mut b = SendBuffer::new(10);
        assert_eq!(b.allocated(), 0);
        assert_eq!(b.push(b"hello world!"), 10);
        assert_eq!(b.free(), 0);
        let mut out = [0u8; 4];
        assert_eq!(b.copy_out(6, &mut out), 4);
        assert_eq!(&out, b"worl");
        b.consume(6);
        assert_eq!(b.push(b"abcdef"), 6);
        let mut all = [0u8; 16];
        let n = b.copy_out(0, &mut all);
        assert_eq!(&all[..n], b"worlabcdef");
        let (x, y) = b.slices(2, 100);
        assert_eq!([x, y].concat(), b"rlabcdef");
        assert_eq!(b.copy_out(50, &mut all), 0);
        b.consume(100);
        assert!(b.is_empty());
        assert_eq!(b.allocated(), 0);
    }
}
