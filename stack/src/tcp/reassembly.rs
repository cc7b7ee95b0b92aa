//! The receive buffer with bounded out-of-order reassembly.
//!
//! One ring holds both the in-order bytes the application has not read yet and, past them,
//! out-of-order bytes written at their final position (so filling a hole needs no copy). A small
//! fixed list of ranges records which out-of-order bytes are present; each range carries a
//! recency stamp so SACK blocks can be reported most recent first (RFC 2018 section 4).
//! The ring is allocated on first data, grows up to the buffer limit, and is freed when empty.

use crate::tcp::seq::SeqNumber;

/// Most out-of-order ranges kept; a segment that would need more is dropped (the peer resends).
pub const MAX_OOO_RANGES: usize = 16;

#[derive(Copy, Clone, Debug, Default)]
struct Range {
    start: SeqNumber,
    end: SeqNumber,
    stamp: u32,
}

#[derive(Clone, Debug, Default)]
struct OooRanges {
    /// Sorted by sequence, non-overlapping, non-adjacent.
    ranges: [Range; MAX_OOO_RANGES],
    len: u8,
    stamp: u32,
}

/// What [`RecvBuffer::insert`] did with a segment.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Bytes by which RCV.NXT advanced (in-order data, plus any out-of-order data it joined).
    pub advanced: usize,
    /// The segment (or part of it) was kept out of order.
    pub queued_ooo: bool,
    /// The segment was dropped (out-of-order budget or range list full).
    pub dropped: bool,
    /// The segment filled (part of) a hole in front of out-of-order data.
    pub filled_hole: bool,
}

/// In-order plus out-of-order receive storage.
#[derive(Debug, Default)]
pub struct RecvBuffer {
    buf: Vec<u8>,
    head: usize,
    readable: usize,
    cap: u32,
    ooo: Option<Box<OooRanges>>,
    ooo_bytes: u32,
}

impl RecvBuffer {
    /// An empty buffer of at most `cap` bytes. Allocates nothing.
    pub fn new(cap: usize) -> Self {
        RecvBuffer {
            cap: cap.min(1 << 30) as u32,
            ..Default::default()
        }
    }

    /// Capacity limit.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// In-order bytes waiting for the application.
    pub fn readable(&self) -> usize {
        self.readable
    }

    /// Space not taken by unread in-order bytes (the receive window before scaling).
    pub fn window(&self) -> usize {
        (self.cap as usize).saturating_sub(self.readable)
    }

    /// Bytes held out of order.
    pub fn ooo_bytes(&self) -> usize {
        self.ooo_bytes as usize
    }

    /// Heap bytes held.
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
            + if self.ooo.is_some() {
                core::mem::size_of::<OooRanges>()
            } else {
                0
            }
    }

    /// Forget all out-of-order data (memory pressure); the peer will retransmit it.
    pub fn drop_ooo(&mut self) {
        self.ooo = None;
        self.ooo_bytes = 0;
        self.maybe_free();
    }

    /// Highest sequence number held out of order (exclusive end), if any.
    pub fn ooo_end(&self) -> Option<SeqNumber> {
        let o = self.ooo.as_ref()?;
        (o.len > 0).then(|| o.ranges[o.len as usize - 1].end)
    }

    /// Store `data` starting at `seq`; `rcv_nxt` is the next in-order sequence number. The caller
    /// has trimmed the segment to the receive window, so `seq >= rcv_nxt` and it fits.
    /// `budget` bounds the out-of-order bytes.
    #[inline]
    pub fn insert(
        &mut self,
        rcv_nxt: SeqNumber,
        seq: SeqNumber,
        data: &[u8],
        budget: usize,
    ) -> InsertOutcome {
        let mut out = InsertOutcome::default();
        if data.is_empty() {
            return out;
        }
        let off = seq.since(rcv_nxt) as usize;
        let room = self.window();
        if off >= room {
            out.dropped = true;
            return out;
        }
        let data = &data[..data.len().min(room - off)];
        let end = seq + data.len();
        if off > 0 {
            // Out of order: check the budget against bytes not already held.
            let covered = self.covered(seq, end);
            let new_bytes = data.len() - covered;
            if self.ooo_bytes as usize + new_bytes > budget {
                out.dropped = true;
                return out;
            }
            if !self.add_range(seq, end) {
                out.dropped = true;
                return out;
            }
            self.write_at(self.readable + off, data);
            self.ooo_bytes += new_bytes as u32;
            out.queued_ooo = true;
            return out;
        }
        self.write_at(self.readable, data);
        let mut nxt = end;
        // Absorb out-of-order ranges now reachable.
        if let Some(o) = self.ooo.as_mut() {
            let mut removed = 0;
            let mut removed_bytes = 0u32;
            for r in o.ranges[..o.len as usize].iter() {
                if r.start <= nxt {
                    // Bytes of this range overlapped by the new segment were counted as ooo.
                    removed_bytes += r.end.since(r.start);
                    if r.end > nxt {
                        nxt = r.end;
                    }
                    removed += 1;
                    out.filled_hole = true;
                } else {
                    break;
                }
            }
            if removed > 0 {
                o.ranges.copy_within(removed..o.len as usize, 0);
                o.len -= removed as u8;
            }
            self.ooo_bytes = self.ooo_bytes.saturating_sub(removed_bytes);
            if o.len == 0 {
                self.ooo = None;
                self.ooo_bytes = 0;
            }
        }
        let adv = nxt.since(rcv_nxt) as usize;
        self.readable += adv;
        out.advanced = adv;
        out
    }

    /// Bytes of `[start, end)` already held out of order.
    fn covered(&self, start: SeqNumber, end: SeqNumber) -> usize {
        let Some(o) = self.ooo.as_ref() else { return 0 };
        let mut n = 0;
        for r in &o.ranges[..o.len as usize] {
            let s = r.start.max(start);
            let e = r.end.min(end);
            n += e.since(s) as usize;
        }
        n
    }

    /// Merge `[start, end)` into the range list; false if the list is full.
    fn add_range(&mut self, start: SeqNumber, end: SeqNumber) -> bool {
        let o = self.ooo.get_or_insert_with(Default::default);
        o.stamp = o.stamp.wrapping_add(1);
        let stamp = o.stamp;
        let n = o.len as usize;
        // Ranges overlapping or touching [start, end).
        let first = o.ranges[..n]
            .iter()
            .position(|r| r.end >= start)
            .unwrap_or(n);
        let mut last = first;
        while last < n && o.ranges[last].start <= end {
            last += 1;
        }
        if first == last {
            if n == MAX_OOO_RANGES {
                if n == 0 {
                    self.ooo = None;
                }
                return false;
            }
            o.ranges.copy_within(first..n, first + 1);
            o.ranges[first] = Range { start, end, stamp };
            o.len += 1;
        } else {
            let s = o.ranges[first].start.min(start);
            let e = o.ranges[last - 1].end.max(end);
            o.ranges[first] = Range {
                start: s,
                end: e,
                stamp,
            };
            o.ranges.copy_within(last..n, first + 1);
            o.len -= (last - first - 1) as u8;
        }
        true
    }

    /// Up to `max` SACK blocks, most recently updated first.
    pub fn sack_blocks(&self, max: usize, out: &mut [(SeqNumber, SeqNumber); 4]) -> usize {
        let Some(o) = self.ooo.as_ref() else { return 0 };
        let mut idx: [u8; MAX_OOO_RANGES] = [0; MAX_OOO_RANGES];
        let n = o.len as usize;
        for (i, slot) in idx[..n].iter_mut().enumerate() {
            *slot = i as u8;
        }
        idx[..n].sort_unstable_by(|a, b| {
            let sa = o.ranges[*a as usize].stamp;
            let sb = o.ranges[*b as usize].stamp;
            // Newest first; wrapping difference keeps this right across stamp overflow.
            (sb.wrapping_sub(sa) as i32).cmp(&0)
        });
        let k = n.min(max).min(4);
        for (slot, &i) in out.iter_mut().zip(idx[..k].iter()) {
            let r = o.ranges[i as usize];
            *slot = (r.start, r.end);
        }
        k
    }

    fn ensure(&mut self, needed: usize) {
        if self.buf.len() >= needed {
            return;
        }
        let new_len = needed
            .next_power_of_two()
            .max(2048)
            .min(self.cap as usize)
            .max(needed);
        let mut nb = vec![0u8; new_len];
        let old = self.buf.len();
        if old > 0 {
            // Linearise the old ring from head.
            let first = old - self.head;
            nb[..first].copy_from_slice(&self.buf[self.head..]);
            nb[first..old].copy_from_slice(&self.buf[..self.head]);
        }
        self.buf = nb;
        self.head = 0;
    }

    fn write_at(&mut self, off: usize, data: &[u8]) {
        self.ensure(off + data.len());
        let n = self.buf.len();
        let pos = (self.head + off) % n;
        let first = data.len().min(n - pos);
        self.buf[pos..pos + first].copy_from_slice(&data[..first]);
        if first < data.len() {
            // Wrapped around the ring (a zero-length copy would still call memcpy).
            self.buf[..data.len() - first].copy_from_slice(&data[first..]);
        }
    }

    /// Copy in-order bytes to `out`; returns the count. The storage is kept even when this
    /// empties the buffer (a bulk flow would otherwise reallocate per segment); see
    /// [`RecvBuffer::release_if_empty`].
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let k = out.len().min(self.readable);
        if k == 0 {
            return 0;
        }
        let n = self.buf.len();
        let first = k.min(n - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        if first < k {
            out[first..k].copy_from_slice(&self.buf[..k - first]);
        }
        self.head = (self.head + k) % n;
        self.readable -= k;
        k
    }

    /// Free the storage if nothing (in order or out of order) is held.
    pub fn release_if_empty(&mut self) {
        self.maybe_free();
    }

    fn maybe_free(&mut self) {
        if self.readable == 0 && self.ooo.is_none() && !self.buf.is_empty() {
            self.buf = Vec::new();
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn read_all(b: &mut RecvBuffer) -> Vec<u8> {
        let mut v = vec![0u8; b.readable()];
        let n = b.read(&mut v);
        v.truncate(n);
        b.release_if_empty();
        v
    }

    #[test]
    fn in_order_and_free() {
        let mut b = RecvBuffer::new(100);
        let o = b.insert(s(10), s(10), b"abc", 50);
        assert_eq!(o.advanced, 3);
        assert_eq!(b.window(), 97);
        assert_eq!(read_all(&mut b), b"abc");
        assert_eq!(b.allocated(), 0);
    }

    #[test]
    fn hole_filled_merges_ranges_and_sack_order() {
        let mut b = RecvBuffer::new(100);
        let base = s(u32::MAX - 3); // wraps through 2^32
        assert!(b.insert(base, base + 6u32, b"ghi", 50).queued_ooo);
        assert!(b.insert(base, base + 12u32, b"mno", 50).queued_ooo);
        let mut blocks = [(s(0), s(0)); 4];
        assert_eq!(b.sack_blocks(3, &mut blocks), 2);
        assert_eq!(blocks[0], (base + 12u32, base + 15u32));
        assert_eq!(blocks[1], (base + 6u32, base + 9u32));
        assert_eq!(b.ooo_bytes(), 6);
        // Overlapping both edges of the first range.
        assert!(b.insert(base, base + 5u32, b"fghij", 50).queued_ooo);
        assert_eq!(b.ooo_bytes(), 8);
        assert_eq!(b.sack_blocks(3, &mut blocks), 2);
        assert_eq!(blocks[0], (base + 5u32, base + 10u32));
        // Fill the first hole: advances through 10.
        let o = b.insert(base, base, b"abcdef", 50);
        assert!(o.filled_hole);
        assert_eq!(o.advanced, 10);
        assert_eq!(b.ooo_bytes(), 3);
        let base2 = base + 10u32;
        let o = b.insert(base2, base2, b"kl", 50);
        assert_eq!(o.advanced, 5);
        assert_eq!(b.ooo_bytes(), 0);
        assert_eq!(read_all(&mut b), b"abcdefghijklmno");
        assert_eq!(b.allocated(), 0);
    }

    #[test]
    fn budget_and_range_limit() {
        let mut b = RecvBuffer::new(1000);
        assert!(b.insert(s(0), s(10), &[1; 10], 15).queued_ooo);
        assert!(b.insert(s(0), s(30), &[1; 10], 15).dropped);
        // Duplicate of held bytes costs nothing.
        assert!(b.insert(s(0), s(10), &[1; 10], 15).queued_ooo);
        assert_eq!(b.ooo_bytes(), 10);
        let mut b = RecvBuffer::new(1000);
        for i in 0..MAX_OOO_RANGES as u32 {
            assert!(b.insert(s(0), s(10 + i * 10), &[1; 2], 1000).queued_ooo);
        }
        assert!(b.insert(s(0), s(500), &[1; 2], 1000).dropped);
        b.drop_ooo();
        assert_eq!(b.ooo_bytes(), 0);
        assert_eq!(b.allocated(), 0);
    }

    #[test]
    fn beyond_window_is_dropped() {
        let mut b = RecvBuffer::new(10);
        assert!(b.insert(s(0), s(10), b"x", 100).dropped);
        let o = b.insert(s(0), s(0), b"0123456789abc", 100);
        assert_eq!(o.advanced, 10);
        assert_eq!(b.window(), 0);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Random segments (in order, out of order, overlapping, duplicate, beyond the
            /// window) and reads against a byte-array model: the stream read out is exactly the
            /// bytes of the sender's stream, in order, and the OOO accounting matches the model.
            #[test]
            fn matches_model(
                base in any::<u32>(),
                ops in proptest::collection::vec((0u32..3000, 1usize..400, 0usize..300), 1..80),
                cap in 500usize..3000,
            ) {
                let stream: Vec<u8> = (0..4000u32).map(|i| (i * 7 + 3) as u8).collect();
                let mut b = RecvBuffer::new(cap);
                let base = SeqNumber(base);
                let mut nxt = 0usize; // stream offset of RCV.NXT
                let mut read = Vec::new();
                let mut have = vec![false; 4000];
                for (off, len, rd) in ops {
                    let off = off as usize;
                    let end = (off + len).min(stream.len());
                    if end <= nxt {
                        continue;
                    }
                    // Trim to RCV.NXT as the connection does.
                    let start = off.max(nxt);
                    let room = b.window();
                    let o = b.insert(base + nxt, base + start, &stream[start..end], 1000);
                    if !o.dropped {
                        let stop = end.min(nxt + room);
                        for h in have.iter_mut().take(stop).skip(start) {
                            *h = true;
                        }
                    }
                    let mut expect = nxt;
                    while expect < have.len() && have[expect] {
                        expect += 1;
                    }
                    prop_assert_eq!(o.advanced, expect - nxt);
                    nxt = expect;
                    let model_ooo = have[nxt..].iter().filter(|&&h| h).count();
                    prop_assert_eq!(b.ooo_bytes(), model_ooo);
                    prop_assert!(b.ooo_bytes() <= 1000);
                    let mut out = vec![0u8; rd];
                    let n = b.read(&mut out);
                    read.extend_from_slice(&out[..n]);
                    prop_assert_eq!(&read[..], &stream[..read.len()]);
                    prop_assert_eq!(read.len() + b.readable(), nxt);
                }
                let mut out = vec![0u8; 4000];
                let n = b.read(&mut out);
                read.extend_from_slice(&out[..n]);
                prop_assert_eq!(&read[..], &stream[..nxt]);
            }
        }
    }
}
