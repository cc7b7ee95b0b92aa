//! The sender's SACK scoreboard (RFC 6675), bounded to a fixed number of ranges.
//!
//! It records which bytes above SND.UNA the peer has SACKed. From that it answers the RFC 6675
//! questions: IsLost (DupThresh = 3 segments or 3 discontiguous SACKed ranges above a byte),
//! NextSeg (the next lost byte range to retransmit, above HighRxt) and pipe (bytes still in the
//! network).

use crate::tcp::seq::SeqNumber;

/// Maximum SACKed ranges remembered; beyond this the lowest are merged conservatively away.
pub const MAX_SACK_RANGES: usize = 16;
/// RFC 6675 DupThresh.
pub const DUP_THRESH: u32 = 3;

/// SACKed ranges above SND.UNA, sorted, disjoint.
#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    ranges: [(SeqNumber, SeqNumber); MAX_SACK_RANGES],
    len: u8,
    /// Un-SACKed bytes below this are lost regardless of DupThresh (set when a tail loss probe
    /// is answered and holes remain: the time-based evidence RACK would use).
    lost_floor: Option<SeqNumber>,
}

impl Scoreboard {
    /// Empty scoreboard.
    pub fn new() -> Self {
        Self::default()
    }

    /// The SACKed ranges, lowest first.
    pub fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges[..self.len as usize]
    }

    /// Whether nothing is SACKed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Record one SACK block. Blocks not inside `(una, nxt]` are ignored (RFC 2018 / D-SACK
    /// blocks below SND.UNA carry no scoreboard information). Returns whether it was valid.
    pub fn add(
        &mut self,
        una: SeqNumber,
        nxt: SeqNumber,
        left: SeqNumber,
        right: SeqNumber,
    ) -> bool {
        if right <= left || left < una || right > nxt || right.diff(left) > (1 << 30) {
            return false;
        }
        let n = self.len as usize;
        let first = self.ranges[..n]
            .iter()
            .position(|r| r.1 >= left)
            .unwrap_or(n);
        let mut last = first;
        while last < n && self.ranges[last].0 <= right {
            last += 1;
        }
        if first == last {
            if n == MAX_SACK_RANGES {
                // Out of room: forget the highest range (the least useful for NextSeg).
                if first == n {
                    return true;
                }
                self.len -= 1;
            }
            let n = self.len as usize;
            self.ranges.copy_within(first..n, first + 1);
            self.ranges[first] = (left, right);
            self.len += 1;
        } else {
            let s = self.ranges[first].0.min(left);
            let e = self.ranges[last - 1].1.max(right);
            self.ranges[first] = (s, e);
            self.ranges.copy_within(last..n, first + 1);
            self.len -= (last - first - 1) as u8;
        }
        true
    }

    /// Forget everything below `una` (cumulative ACK advanced).
    pub fn advance(&mut self, una: SeqNumber) {
        let n = self.len as usize;
        let mut drop = 0;
        for r in self.ranges[..n].iter_mut() {
            if r.1 <= una {
                drop += 1;
            } else {
                if r.0 < una {
                    r.0 = una;
                }
                break;
            }
        }
        self.ranges.copy_within(drop..n, 0);
        self.len -= drop as u8;
        if self.lost_floor.is_some_and(|f| f <= una) {
            self.lost_floor = None;
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.len = 0;
        self.lost_floor = None;
    }

    /// Total SACKed bytes.
    pub fn sacked_bytes(&self) -> u32 {
        self.ranges().iter().map(|r| r.1.since(r.0)).sum()
    }

    /// Highest SACKed sequence number (exclusive), if any.
    pub fn high_sacked(&self) -> Option<SeqNumber> {
        self.ranges().last().map(|r| r.1)
    }

    /// `seq`, or the end of the SACKed range containing it.
    pub fn skip_sacked(&self, seq: SeqNumber) -> SeqNumber {
        for r in self.ranges() {
            if seq.in_range(r.0, r.1) {
                return r.1;
            }
        }
        seq
    }

    /// Start of the first SACKed range beginning after `seq`.
    pub fn next_sacked_after(&self, seq: SeqNumber) -> Option<SeqNumber> {
        self.ranges().iter().map(|r| r.0).find(|&s| s > seq)
    }

    /// SACKed bytes below `seq`.
    pub fn sacked_below(&self, seq: SeqNumber) -> u32 {
        self.ranges().iter().map(|r| r.1.min(seq).since(r.0)).sum()
    }

    /// Whether `seq` is SACKed.
    pub fn is_sacked(&self, seq: SeqNumber) -> bool {
        self.ranges().iter().any(|r| seq.in_range(r.0, r.1))
    }

    /// The loss boundary: every un-SACKed byte below it is lost by RFC 6675 IsLost (more than
    /// DupThresh-1 segments' worth of SACKed bytes, or DupThresh discontiguous ranges, above it).
    /// Returns `una` when nothing is lost.
    pub fn loss_boundary(&self, una: SeqNumber, mss: u32) -> SeqNumber {
        let b = self.dupthresh_boundary(una, mss);
        match self.lost_floor {
            Some(f) if f > b => f,
            _ => b,
        }
    }

    /// Declare every un-SACKed byte below `seq` lost.
    pub fn mark_lost_below(&mut self, seq: SeqNumber) {
        match self.lost_floor {
            Some(f) if f >= seq => {}
            _ => self.lost_floor = Some(seq),
        }
    }

    fn dupthresh_boundary(&self, una: SeqNumber, mss: u32) -> SeqNumber {
        let n = self.len as usize;
        if n == 0 {
            return una;
        }
        if n >= DUP_THRESH as usize {
            // The start of the DupThresh-th range from the top: three discontiguous ranges above.
            let by_count = self.ranges[n - DUP_THRESH as usize].0;
            let by_bytes = self.boundary_by_bytes(mss);
            return by_count.max(by_bytes.unwrap_or(una));
        }
        self.boundary_by_bytes(mss).unwrap_or(una)
    }

    /// Highest s such that bytes SACKed above s >= (DupThresh-1)*mss + 1.
    fn boundary_by_bytes(&self, mss: u32) -> Option<SeqNumber> {
        let need = (DUP_THRESH - 1) * mss + 1;
        let mut acc = 0u32;
        for r in self.ranges().iter().rev() {
            let len = r.1.since(r.0);
            if acc + len >= need {
                return Some(r.1 - (need - acc));
            }
            acc += len;
        }
        None
    }

    /// RFC 6675 NextSeg rule 1: the first lost, un-SACKed, not yet retransmitted range at or
    /// above `max(una, high_rxt)`, at most `mss` long.
    pub fn next_lost(
        &self,
        una: SeqNumber,
        high_rxt: SeqNumber,
        mss: u32,
    ) -> Option<(SeqNumber, u32)> {
        let boundary = self.loss_boundary(una, mss);
        let mut s = una.max(high_rxt);
        for r in self.ranges() {
            if s >= boundary {
                return None;
            }
            if s < r.0 {
                let end = r.0.min(boundary);
                if end > s {
                    return Some((s, end.since(s).min(mss)));
                }
            }
            if s < r.1 {
                s = r.1;
            }
        }
        None
    }

    /// RFC 6675 NextSeg rule 3 (for when rule 1 finds no lost range and rule 2 no new data):
    /// the first un-SACKed range at or above `max(una, high_rxt)` and below `high_data`, at
    /// most `mss` long, lost or not.
    pub fn next_unsacked(
        &self,
        una: SeqNumber,
        high_rxt: SeqNumber,
        high_data: SeqNumber,
        mss: u32,
    ) -> Option<(SeqNumber, u32)> {
        let mut s = una.max(high_rxt);
        for r in self.ranges() {
            if s >= high_data {
                return None;
            }
            if s < r.0 {
                return Some((s, r.0.min(high_data).since(s).min(mss)));
            }
            if s < r.1 {
                s = r.1;
            }
        }
        (s < high_data).then(|| (s, high_data.since(s).min(mss)))
    }

    /// RFC 6675 pipe: outstanding bytes not SACKed and not considered lost, plus lost bytes that
    /// were retransmitted (below `high_rxt`).
    pub fn pipe(&self, una: SeqNumber, nxt: SeqNumber, high_rxt: SeqNumber, mss: u32) -> u32 {
        let outstanding = nxt.since(una);
        let unsacked = outstanding.saturating_sub(self.sacked_bytes());
        let boundary = self.loss_boundary(una, mss);
        let lost = self.unsacked_between(una, boundary);
        let retx = self.unsacked_between(una, boundary.min(high_rxt.max(una)));
        unsacked.saturating_sub(lost).saturating_add(retx)
    }

    /// Un-SACKed bytes in `[a, b)`.
    fn unsacked_between(&self, a: SeqNumber, b: SeqNumber) -> u32 {
        if b <= a {
            return 0;
        }
        let mut n = b.since(a);
        for r in self.ranges() {
            let s = r.0.max(a);
            let e = r.1.min(b);
            n = n.saturating_sub(e.since(s));
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn merge_validate_advance() {
        let mut b = Scoreboard::new();
        assert!(!b.add(s(100), s(1000), s(50), s(150))); // below una
        assert!(!b.add(s(100), s(1000), s(900), s(1100))); // beyond nxt
        assert!(b.add(s(100), s(1000), s(300), s(400)));
        assert!(b.add(s(100), s(1000), s(500), s(600)));
        assert!(b.add(s(100), s(1000), s(400), s(500)));
        assert_eq!(b.ranges(), &[(s(300), s(600))]);
        assert_eq!(b.sacked_bytes(), 300);
        b.advance(s(350));
        assert_eq!(b.ranges(), &[(s(350), s(600))]);
        b.advance(s(700));
        assert!(b.is_empty());
    }

    #[test]
    fn is_lost_next_seg_and_pipe() {
        let mss = 100;
        let una = s(u32::MAX - 50); // wrap through 2^32
        let nxt = una + 1000u32;
        let mut b = Scoreboard::new();
        // Segment 0 lost, segments 1..=3 SACKed, segment 4 lost, 5..=9 SACKed except 7.
        b.add(una, nxt, una + 100u32, una + 400u32);
        assert_eq!(b.loss_boundary(una, mss), una + 199u32);
        assert_eq!(b.next_lost(una, una, mss), Some((una, 100)));
        b.add(una, nxt, una + 500u32, una + 700u32);
        b.add(una, nxt, una + 800u32, una + 1000u32);
        // 201 bytes are SACKed above una+699, so the holes [0,100) and [400,500) are lost and
        // the hole [700,800) is not (only 200 SACKed bytes above it).
        let lb = b.loss_boundary(una, mss);
        assert_eq!(lb, una + 699u32);
        assert_eq!(b.next_lost(una, una, mss), Some((una, 100)));
        assert_eq!(
            b.next_lost(una, una + 100u32, mss),
            Some((una + 400u32, 100))
        );
        assert_eq!(b.next_lost(una, una + 500u32, mss), None);
        // Rule 3 finds the hole that is not lost yet, then nothing up to HighData.
        assert_eq!(
            b.next_unsacked(una, una + 500u32, nxt, mss),
            Some((una + 700u32, 100))
        );
        assert_eq!(b.next_unsacked(una, una + 800u32, nxt, mss), None);
        assert_eq!(
            b.next_unsacked(una, una + 800u32, nxt + 150u32, mss),
            Some((nxt, 100))
        );
        // outstanding 1000, sacked 700, lost 200 -> pipe 100
        assert_eq!(b.pipe(una, nxt, una, mss), 100);
        // After retransmitting segment 0 it counts again.
        assert_eq!(b.pipe(una, nxt, una + 100u32, mss), 200);
        // A forced floor makes the hole [700,800) lost too.
        assert_eq!(b.skip_sacked(una + 150u32), una + 400u32);
        assert_eq!(b.skip_sacked(una + 450u32), una + 450u32);
        assert_eq!(b.next_sacked_after(una + 450u32), Some(una + 500u32));
        assert_eq!(b.sacked_below(una + 600u32), 400);
        b.mark_lost_below(una + 800u32);
        assert_eq!(
            b.next_lost(una, una + 500u32, mss),
            Some((una + 700u32, 100))
        );
        b.advance(una + 900u32);
        assert_eq!(b.loss_boundary(una + 900u32, mss), una + 900u32);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The scoreboard against a per-byte model: SACKed bytes, IsLost (RFC 6675 section
            /// 4 definition evaluated per byte), NextSeg and pipe.
            #[test]
            fn matches_model(
                base in any::<u32>(),
                blocks in proptest::collection::vec((0u32..2000, 1u32..300), 0..8),
                adv in 0u32..500,
                high_rxt in 0u32..2000,
            ) {
                let mss = 100u32;
                let una0 = SeqNumber(base);
                let nxt = una0 + 2000u32;
                let mut sb = Scoreboard::new();
                let mut bits = vec![false; 2000];
                for (l, n) in blocks {
                    let r = (l + n).min(2000);
                    if sb.add(una0, nxt, una0 + l, una0 + r) {
                        for b in bits.iter_mut().take(r as usize).skip(l as usize) {
                            *b = true;
                        }
                    }
                }
                sb.advance(una0 + adv);
                let una = una0 + adv;
                let bits = &bits[adv as usize..];
                let sacked = bits.iter().filter(|&&b| b).count() as u32;
                prop_assert_eq!(sb.sacked_bytes(), sacked);
                // Per-byte IsLost: SACKed bytes above >= 2*mss+1, or 3 discontiguous SACKed
                // ranges above.
                let n = bits.len();
                // Suffix scan: SACKed bytes and SACKed-range starts strictly above each byte.
                let mut lost = vec![false; n];
                let (mut above, mut ranges) = (0u32, 0u32);
                for i in (0..n).rev() {
                    if !bits[i] {
                        lost[i] = above > 2 * mss || ranges >= 3;
                    }
                    if bits[i] {
                        above += 1;
                        if i == 0 || !bits[i - 1] {
                            ranges += 1;
                        }
                    }
                }
                let boundary = sb.loss_boundary(una, mss).since(una) as usize;
                for i in 0..n {
                    if !bits[i] {
                        prop_assert_eq!(lost[i], i < boundary, "byte {}", i);
                    }
                }
                let hr = (high_rxt.max(adv) - adv) as usize;
                let expect_pipe = (0..n)
                    .filter(|&i| !bits[i] && (!lost[i] || i < hr))
                    .count() as u32;
                prop_assert_eq!(sb.pipe(una, nxt, una + hr as u32, mss), expect_pipe);
                let first_lost = (hr..n).find(|&i| !bits[i] && lost[i]);
                match sb.next_lost(una, una + hr as u32, mss) {
                    Some((s, l)) => {
                        let s = s.since(una) as usize;
                        prop_assert_eq!(Some(s), first_lost);
                        prop_assert!(l >= 1 && l <= mss);
                        for i in s..s + l as usize {
                            prop_assert!(!bits[i] && lost[i]);
                        }
                    }
                    None => prop_assert_eq!(first_lost, None),
                }
                let first_unsacked = (hr..n).find(|&i| !bits[i]);
                match sb.next_unsacked(una, una + hr as u32, una + n as u32, mss) {
                    Some((s, l)) => {
                        let s = s.since(una) as usize;
                        prop_assert_eq!(Some(s), first_unsacked);
                        prop_assert!(l >= 1 && l <= mss);
                        prop_assert!(bits[s..s + l as usize].iter().all(|&b| !b));
                    }
                    None => prop_assert_eq!(first_unsacked, None),
                }
            }
        }
    }
}
