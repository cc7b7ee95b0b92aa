//! The sender's SACK scoreboard (RFC 6675), bounded to a fixed number of ranges.
//!
//! It records which bytes above SND.UNA the peer has SACKed. From that it answers the RFC 6675
//! questions: IsLost (DupThresh = 3 segments or 3 discontiguous SACKed ranges above a byte),
//! NextSeg (the next lost byte range to retransmit, above HighRxt) and pipe (bytes still in the
//! network).
//!
//! It also remembers what SACK recovery retransmitted: HighRxt, which outlives one recovery
//! episode (back-to-back episodes must not resend holes whose retransmissions are still in
//! flight), and a bounded list of the retransmissions themselves, each with SND.MAX at the
//! time it was sent. Once more than DupThresh-1 segments' worth of data sent after a
//! retransmission is SACKed while the retransmission's range is still un-SACKed, that
//! retransmission is lost too (RFC 8985's RACK reasoning, by sequence rather than time) and is
//! sent again instead of waiting for the RTO.

use crate::tcp::seq::SeqNumber;

/// Maximum SACKed ranges remembered; beyond this the lowest are merged conservatively away.
pub const MAX_SACK_RANGES: usize = 16;
/// RFC 6675 DupThresh.
pub const DUP_THRESH: u32 = 3;
/// Maximum retransmissions watched for loss at once; beyond this a retransmission is not
/// watched, and the next recovery episode starts over from SND.UNA (see
/// [`Scoreboard::start_episode`]).
pub const MAX_WATCHED_RETRANSMISSIONS: usize = 16;

/// One SACK-recovery retransmission in flight, watched for loss.
#[derive(Clone, Copy, Debug, Default)]
struct WatchedRetransmission {
    start: SeqNumber,
    end: SeqNumber,
    /// SND.MAX when it was sent: SACKed data at or above this was sent after it.
    sent_below: SeqNumber,
    /// Judged lost, waiting to be sent again.
    lost: bool,
}

/// SACKed ranges above SND.UNA (sorted, disjoint), and what SACK recovery retransmitted.
#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    ranges: [(SeqNumber, SeqNumber); MAX_SACK_RANGES],
    len: u8,
    /// Un-SACKed bytes below this are lost regardless of DupThresh (set when a tail loss probe
    /// is answered and holes remain: the time-based evidence RACK would use).
    lost_floor: Option<SeqNumber>,
    /// RFC 6675 HighRxt, when above SND.UNA: every un-SACKed byte below it was retransmitted.
    /// `None` means HighRxt = SND.UNA (nothing retransmitted is outstanding).
    high_rxt: Option<SeqNumber>,
    watched: [WatchedRetransmission; MAX_WATCHED_RETRANSMISSIONS],
    n_watched: u8,
    /// A retransmission below HighRxt went unwatched (the list was full): a loss of it would
    /// go unnoticed, so the next episode must not trust HighRxt.
    unwatched: bool,
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

    /// Whether the scoreboard holds nothing worth keeping: nothing SACKed and no retransmission
    /// outstanding.
    pub fn is_idle(&self) -> bool {
        self.len == 0 && self.high_rxt.is_none()
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
        match self.high_rxt {
            None => {}
            Some(h) if h <= una => self.forget_retransmissions(),
            Some(_) => self.drop_watched_below(una),
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.len = 0;
        self.lost_floor = None;
        self.forget_retransmissions();
    }

    /// RFC 6675 HighRxt: the end of what SACK recovery retransmitted, at least `una`.
    #[inline]
    pub fn high_rxt(&self, una: SeqNumber) -> SeqNumber {
        match self.high_rxt {
            Some(h) if h > una => h,
            _ => una,
        }
    }

    /// Forget what was retransmitted (HighRxt back to SND.UNA, nothing watched): after an RTO
    /// or an answered tail loss probe, holes are resent whether or not they were before.
    pub fn forget_retransmissions(&mut self) {
        self.high_rxt = None;
        self.n_watched = 0;
        self.unwatched = false;
    }

    /// A SACK recovery episode starts. HighRxt and the watched retransmissions of an earlier
    /// episode carry over, so holes whose retransmissions are still in flight are not resent;
    /// a lost one is found by [`Self::detect_lost_retransmissions`]. If one went unwatched
    /// its loss could not be found, so then everything starts over instead.
    pub fn start_episode(&mut self) {
        if self.unwatched {
            self.forget_retransmissions();
        }
    }

    /// SACK recovery sent `[start, end)` again while SND.MAX was `snd_max`: advance HighRxt and
    /// watch the retransmission (a resent lost retransmission is watched anew).
    pub fn on_retransmit(&mut self, start: SeqNumber, end: SeqNumber, snd_max: SeqNumber) {
        if self.high_rxt.is_none_or(|h| h < end) {
            self.high_rxt = Some(end);
        }
        let n = self.n_watched as usize;
        let record = WatchedRetransmission {
            start,
            end,
            sent_below: snd_max,
            lost: false,
        };
        if let Some(i) = self.watched[..n]
            .iter()
            .position(|w| w.lost && start.in_range(w.start, w.end))
        {
            let lost = self.watched[i];
            self.watched[i] = record;
            if end < lost.end {
                // Resent in part (one MSS, or up to a SACKed range): the rest stays lost and
                // watched, or HighRxt would hide it until the RTO.
                let rest = WatchedRetransmission { start: end, ..lost };
                if n < MAX_WATCHED_RETRANSMISSIONS {
                    self.watched[n] = rest;
                    self.n_watched += 1;
                } else {
                    self.unwatched = true;
                }
            }
        } else if n < MAX_WATCHED_RETRANSMISSIONS {
            self.watched[n] = record;
            self.n_watched += 1;
        } else {
            self.unwatched = true;
        }
    }

    /// Whether any retransmission is watched.
    #[inline]
    pub fn watching(&self) -> bool {
        self.n_watched != 0
    }

    /// Mark lost every watched retransmission still un-SACKed with more than DupThresh-1
    /// segments' worth of data sent after it SACKed (RFC 6675 IsLost's byte rule applied to
    /// the retransmission); forget those the peer SACKed. Returns how many were newly marked.
    pub fn detect_lost_retransmissions(&mut self, una: SeqNumber, mss: u32) -> u32 {
        // SACKed bytes at or above `sent_below` exceed the threshold iff it is at most this.
        let Some(boundary) = self.boundary_by_bytes(mss) else {
            return 0;
        };
        let mut newly_lost = 0;
        let mut i = 0;
        while i < self.n_watched as usize {
            let w = self.watched[i];
            if self.skip_sacked(w.start.max(una)) >= w.end {
                // Delivered after all (the original or the retransmission was SACKed).
                self.remove_watched(i);
                continue;
            }
            if !w.lost && w.sent_below <= boundary {
                self.watched[i].lost = true;
                newly_lost += 1;
            }
            i += 1;
        }
        newly_lost
    }

    /// The first un-SACKed piece (at most `mss` long) of a retransmission judged lost, to send
    /// again before anything else.
    pub fn lost_retransmission(&self, una: SeqNumber, mss: u32) -> Option<(SeqNumber, u32)> {
        self.watched[..self.n_watched as usize]
            .iter()
            .filter(|w| w.lost)
            .filter_map(|w| self.unsacked_piece(w.start.max(una), w.end, mss))
            .min_by(|a, b| a.0.cmp(&b.0))
    }

    /// Bytes of retransmissions judged lost and not yet resent: not in the network, though
    /// below HighRxt (subtracted from pipe).
    pub fn lost_retransmission_bytes(&self, una: SeqNumber) -> u32 {
        self.watched[..self.n_watched as usize]
            .iter()
            .filter(|w| w.lost)
            .map(|w| self.unsacked_between(w.start.max(una), w.end))
            .sum()
    }

    /// The first un-SACKed piece of `[from, end)`, at most `mss` long.
    fn unsacked_piece(
        &self,
        from: SeqNumber,
        end: SeqNumber,
        mss: u32,
    ) -> Option<(SeqNumber, u32)> {
        let s = self.skip_sacked(from);
        if s >= end {
            return None;
        }
        let e = self.next_sacked_after(s).map_or(end, |n| n.min(end));
        Some((s, e.since(s).min(mss)))
    }

    fn drop_watched_below(&mut self, una: SeqNumber) {
        let mut i = 0;
        while i < self.n_watched as usize {
            if self.watched[i].end <= una {
                self.remove_watched(i);
            } else {
                i += 1;
            }
        }
    }

    fn remove_watched(&mut self, i: usize) {
        let n = self.n_watched as usize;
        self.watched.copy_within(i + 1..n, i);
        self.n_watched -= 1;
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

    #[test]
    fn a_lost_retransmission_resent_in_part_keeps_the_rest_lost() {
        let mss = 100;
        let una = s(1000);
        let seg = |k: u32| una + k * mss;
        let mut b = Scoreboard::new();
        // Segments 0 and 1 lost and resent as one 200-byte retransmission while SND.MAX was 4.
        b.add(una, seg(4), seg(2), seg(4));
        b.on_retransmit(seg(0), seg(2), seg(4));
        // Three segments sent after it are SACKed: it is lost.
        b.add(una, seg(7), seg(4), seg(7));
        assert_eq!(b.detect_lost_retransmissions(una, mss), 1);
        assert_eq!(b.lost_retransmission(una, mss), Some((seg(0), mss)));
        // Only its first MSS is resent: the second stays lost and comes next.
        b.on_retransmit(seg(0), seg(1), seg(7));
        assert_eq!(b.lost_retransmission(una, mss), Some((seg(1), mss)));
        assert_eq!(b.lost_retransmission_bytes(una), mss);
        b.on_retransmit(seg(1), seg(2), seg(7));
        assert_eq!(b.lost_retransmission(una, mss), None);
    }

    #[test]
    fn lost_retransmissions_are_found_by_data_sent_after_them() {
        let mss = 100;
        let una = s(u32::MAX - 250); // wrap through 2^32
        let seg = |k: u32| una + k * mss;
        let mut b = Scoreboard::new();
        assert_eq!(b.high_rxt(una), una);
        // Segments 0 and 2 lost, 1 and 3..=5 SACKed; both retransmitted while SND.MAX was 6.
        b.add(una, seg(6), seg(1), seg(2));
        b.add(una, seg(6), seg(3), seg(6));
        b.on_retransmit(seg(0), seg(1), seg(6));
        b.on_retransmit(seg(2), seg(3), seg(6));
        assert_eq!(b.high_rxt(una), seg(3));
        assert!(b.watching() && !b.is_idle());
        // Only data sent after them counts: 6 and 7 SACKed (200 bytes) is not enough.
        b.add(una, seg(9), seg(6), seg(8));
        assert_eq!(b.detect_lost_retransmissions(una, mss), 0);
        assert_eq!(b.lost_retransmission(una, mss), None);
        // The retransmission of 2 arrives; then 8 is SACKed: 0's is lost, and only it.
        b.add(una, seg(9), seg(2), seg(3));
        b.add(una, seg(9), seg(8), seg(9));
        assert_eq!(b.detect_lost_retransmissions(una, mss), 1);
        assert_eq!(b.detect_lost_retransmissions(una, mss), 0, "marked once");
        assert_eq!(b.lost_retransmission(una, mss), Some((seg(0), mss)));
        assert_eq!(b.lost_retransmission_bytes(una), mss);
        // Resent while SND.MAX is 9: watched anew, not lost until data sent after it is SACKed.
        b.on_retransmit(seg(0), seg(1), seg(9));
        assert_eq!(b.lost_retransmission(una, mss), None);
        assert_eq!(b.detect_lost_retransmissions(una, mss), 0);
        assert_eq!(b.high_rxt(una), seg(3));
        // The cumulative ACK passes HighRxt: nothing retransmitted is outstanding.
        b.advance(seg(9));
        assert!(b.is_idle() && !b.watching());
        assert_eq!(b.high_rxt(seg(9)), seg(9));
    }

    #[test]
    fn watching_is_bounded_and_an_unwatched_retransmission_resets_the_next_episode() {
        let mss = 100;
        let una = s(1000);
        let seg = |k: u32| una + k * mss;
        let mut b = Scoreboard::new();
        let n = MAX_WATCHED_RETRANSMISSIONS as u32;
        for k in 0..n {
            b.on_retransmit(seg(k), seg(k + 1), seg(2 * n));
        }
        // A new episode keeps HighRxt while every retransmission below it is watched.
        b.start_episode();
        assert_eq!(b.high_rxt(una), seg(n));
        // One more does not fit: its loss could not be seen, so the next episode starts over.
        b.on_retransmit(seg(n), seg(n + 1), seg(2 * n));
        assert_eq!(b.high_rxt(una), seg(n + 1));
        b.start_episode();
        assert_eq!(b.high_rxt(una), una);
        assert!(!b.watching());
        // The cumulative ACK drops retransmissions below it.
        b.on_retransmit(seg(0), seg(1), seg(2 * n));
        b.on_retransmit(seg(1), seg(2), seg(2 * n));
        b.advance(seg(1));
        assert_eq!(b.n_watched, 1);
        b.forget_retransmissions();
        assert!(b.is_idle());
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
