//! Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation): what each ACK says
//! about how fast the path delivers, the input of model-based congestion control (BBR).

use crate::time::Duration;

/// What one ACK says about the path: the delivery rate of the most recently sent segment it
/// delivered (cumulatively or by SACK), measured over that segment's flight, plus the ACK's own
/// totals. All sizes in bytes.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RateSample {
    /// Bytes delivered over [`RateSample::interval`]; together they give the delivery rate.
    /// 0 when the ACK gave no valid sample (then `interval` is zero too).
    pub delivered: u64,
    /// The sample's interval: the longer of the send and the ACK intervals of the segment, so
    /// ACK compression cannot inflate the rate. Zero when there is no valid sample.
    pub interval: Duration,
    /// The connection's total delivered bytes when that segment was sent (BBR's round
    /// counting: a round ends when a segment sent after the previous round's end is delivered).
    pub prior_delivered: u64,
    /// The connection's total delivered bytes after this ACK.
    pub delivered_total: u64,
    /// The segment was sent while the sender was application-limited: the rate is a lower
    /// bound of what the path can do, not a measurement of it.
    pub is_app_limited: bool,
    /// Round-trip time of that segment (from its last transmission to this ACK), if the ACK
    /// delivered one that was sent only once or whose last transmission is unambiguous.
    pub rtt: Option<Duration>,
    /// Bytes newly delivered (cumulatively acknowledged or SACKed) by this ACK.
    pub newly_acked: u32,
    /// Bytes newly considered lost by this ACK (SACK loss detection); 0 without SACK.
    pub newly_lost: u32,
    /// Bytes in flight after this ACK was processed.
    pub bytes_in_flight: u32,
}

impl RateSample {
    /// The delivery rate in bytes per second, if the sample is valid.
    pub fn rate_bytes_per_sec(&self) -> Option<u64> {
        let us = self.interval.total_micros();
        if self.delivered == 0 || us == 0 {
            return None;
        }
        Some((self.delivered as u128 * 1_000_000 / us as u128).min(u64::MAX as u128) as u64)
    }
}

use crate::tcp::sack::Scoreboard;
use crate::tcp::seq::SeqNumber;
use crate::time::Instant;
use std::collections::VecDeque;

/// Most send records kept; a flight larger than this (in segments) is sampled from its first
/// part only. 64 Ki segments of 1460 bytes is 95 MB in flight, beyond any window this stack
/// offers.
const MAX_RECORDS: usize = 1 << 16;
/// Record storage kept while the connection is idle; more is released when the flight empties.
const IDLE_RECORDS: usize = 64;

/// What the sender knew when it (last) sent one segment.
#[derive(Copy, Clone, Debug)]
struct TxRecord {
    start: SeqNumber,
    end: SeqNumber,
    sent_at: Instant,
    /// The connection's delivered total at that send.
    delivered: u64,
    /// When the connection's delivered total last grew, at that send.
    delivered_at: Instant,
    /// Send time of the segment that started the current send interval, at that send.
    first_sent_at: Instant,
    app_limited: bool,
    retransmitted: bool,
    /// Delivered by SACK (so the cumulative ACK must not count it again).
    sacked: bool,
}

/// The sender side of delivery-rate estimation: one record per segment in flight, in sequence
/// order, and the connection's delivered total. Kept only for connections whose congestion
/// control asks for rate samples (it costs a record per segment).
///
/// Each ACK's newly delivered segments (cumulatively ACKed or newly SACKed) are marked once, so
/// the work per ACK is proportional to the segments it delivers plus a binary search per new
/// SACK range.
#[derive(Clone, Debug, Default)]
pub struct RateSampler {
    records: VecDeque<TxRecord>,
    delivered: u64,
    delivered_at: Instant,
    first_sent_at: Instant,
    /// Delivered total up to which sends count as application-limited; 0 = not limited.
    app_limited_until: u64,
    /// Lowest RTT seen (samples shorter than it are ACK-compressed and invalid).
    min_rtt: Option<Duration>,
    /// The ACK being processed: bytes newly delivered, and the most recently sent segment
    /// among those delivered.
    newly: u32,
    newest: Option<TxRecord>,
    /// The pacer's schedule (kept here, with the other per-segment state of a paced
    /// connection): the earliest departure of the next data segment, in nanoseconds of the
    /// `Instant` clock.
    pub(crate) pace_next_ns: u64,
}

impl RateSampler {
    /// An empty sampler.
    pub fn new() -> RateSampler {
        RateSampler::default()
    }

    /// Bytes delivered (cumulatively ACKed or SACKed) over the connection's life.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Segments in flight with a record.
    pub fn records(&self) -> usize {
        self.records.len()
    }

    /// A segment `[start, end)` left at `now`. `retransmission` when it resends bytes below
    /// SND.MAX (their records take the new send's state); `flight_before` is the bytes in
    /// flight before it.
    pub fn on_send(
        &mut self,
        start: SeqNumber,
        end: SeqNumber,
        now: Instant,
        retransmission: bool,
        flight_before: u32,
    ) {
        if flight_before == 0 {
            // Nothing in flight: the send and ACK intervals start now.
            self.first_sent_at = now;
            self.delivered_at = now;
        }
        let app_limited = self.app_limited_until != 0;
        let fresh = |start, end| TxRecord {
            start,
            end,
            sent_at: now,
            delivered: self.delivered,
            delivered_at: self.delivered_at,
            first_sent_at: self.first_sent_at,
            app_limited,
            retransmitted: retransmission,
            sacked: false,
        };
        if retransmission {
            let first = self.records.partition_point(|r| r.end.diff(start) <= 0);
            for r in self.records.range_mut(first..) {
                if r.start.diff(end) >= 0 {
                    break;
                }
                let sacked = r.sacked;
                *r = TxRecord {
                    sacked,
                    ..fresh(r.start, r.end)
                };
            }
            return;
        }
        // New data continues the last record's range; anything else (a gap after a reset of
        // SND.NXT) starts the records over rather than break their order.
        if self
            .records
            .back()
            .is_some_and(|r| r.end != start || end.diff(start) <= 0)
        {
            self.records.clear();
        }
        if self.records.len() < MAX_RECORDS && end.diff(start) > 0 {
            self.records.push_back(fresh(start, end));
        }
    }

    /// The sender has nothing more to send and the window is not the limit: samples taken
    /// until what is in flight now is delivered show the application's rate, not the path's.
    pub fn set_app_limited(&mut self, bytes_in_flight: u32) {
        self.app_limited_until = (self.delivered + bytes_in_flight as u64).max(1);
    }

    /// Mark what `block` (one SACK block of an ACK) newly SACKed. Call it for each block of an
    /// ACK, before `scoreboard` records the block (its ranges tell what was SACKed before).
    /// `sacked_after` is the scoreboard once the whole ACK is recorded; it decides whether a
    /// record is fully SACKed.
    pub fn on_sack_block(
        &mut self,
        before: &[(SeqNumber, SeqNumber)],
        block: (SeqNumber, SeqNumber),
        sacked_after: &Scoreboard,
        now: Instant,
    ) {
        let (mut left, right) = block;
        // Walk the parts of the block no earlier range covers.
        for &(s, e) in before {
            if left.diff(right) >= 0 {
                return;
            }
            if e.diff(left) <= 0 {
                continue;
            }
            if s.diff(left) > 0 {
                self.mark_sacked(left, s.min(right), sacked_after, now);
            }
            left = left.max(e);
        }
        if left.diff(right) < 0 {
            self.mark_sacked(left, right, sacked_after, now);
        }
    }

    fn mark_sacked(&mut self, left: SeqNumber, right: SeqNumber, sb: &Scoreboard, now: Instant) {
        let first = self.records.partition_point(|r| r.end.diff(left) <= 0);
        let mut i = first;
        while let Some(r) = self.records.get_mut(i) {
            if r.start.diff(right) >= 0 {
                break;
            }
            i += 1;
            if r.sacked || sb.skip_sacked(r.start).diff(r.end) < 0 {
                continue;
            }
            r.sacked = true;
            let rec = *r;
            self.deliver(rec, rec.end.since(rec.start), now);
        }
    }

    /// The cumulative ACK moved to `una`: the records below it are delivered (unless SACKed
    /// before) and forgotten.
    pub fn on_cumulative_ack(&mut self, una: SeqNumber, now: Instant) {
        while let Some(r) = self.records.front_mut() {
            if r.start.diff(una) >= 0 {
                break;
            }
            if r.end.diff(una) > 0 {
                // Partly acknowledged (a retransmission cut differently): count the part.
                if !r.sacked {
                    let part = una.since(r.start);
                    r.start = una;
                    let rec = *r;
                    self.deliver(rec, part, now);
                }
                break;
            }
            let rec = *r;
            self.records.pop_front();
            if !rec.sacked {
                self.deliver(rec, rec.end.since(rec.start), now);
            }
        }
        if self.records.is_empty() && self.records.capacity() > IDLE_RECORDS {
            self.records = VecDeque::new();
        }
    }

    fn deliver(&mut self, rec: TxRecord, bytes: u32, now: Instant) {
        self.delivered += bytes as u64;
        self.delivered_at = now;
        self.newly = self.newly.saturating_add(bytes);
        // The most recently sent of the delivered segments gives the sample; among equal send
        // times (one burst), the highest in sequence.
        let newer = match &self.newest {
            None => true,
            Some(p) => {
                rec.sent_at > p.sent_at || (rec.sent_at == p.sent_at && rec.end.diff(p.end) > 0)
            }
        };
        if newer {
            self.newest = Some(rec);
        }
    }

    /// End of one ACK: the rate sample of what it delivered, or `None` when it delivered
    /// nothing. `bytes_in_flight` is the flight after the ACK.
    pub fn take_sample(&mut self, now: Instant, bytes_in_flight: u32) -> Option<RateSample> {
        let p = self.newest.take()?;
        let newly_acked = core::mem::take(&mut self.newly);
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        // The next send interval starts at this segment's send.
        self.first_sent_at = p.sent_at;
        let rtt = (!p.retransmitted).then(|| now.saturating_since(p.sent_at));
        if let Some(r) = rtt {
            if self.min_rtt.is_none_or(|m| r < m) {
                self.min_rtt = Some(r);
            }
        }
        let send_elapsed = p.sent_at.saturating_since(p.first_sent_at);
        let ack_elapsed = now.saturating_since(p.delivered_at);
        let interval = send_elapsed.max(ack_elapsed);
        let mut rs = RateSample {
            delivered: self.delivered - p.delivered,
            interval,
            prior_delivered: p.delivered,
            delivered_total: self.delivered,
            is_app_limited: p.app_limited,
            rtt,
            newly_acked,
            newly_lost: 0,
            bytes_in_flight,
        };
        // An interval shorter than the path's minimum RTT is an artefact of ACK compression or
        // stretch ACKs, not a rate the path delivered (the draft's and Linux's rule).
        if interval.total_micros() == 0 || self.min_rtt.is_some_and(|m| interval < m) {
            rs.delivered = 0;
            rs.interval = Duration::from_micros(0);
        }
        Some(rs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn seq(n: u32) -> SeqNumber {
        SeqNumber(0xffff_f000u32.wrapping_add(n))
    }

    fn at(us: u64) -> Instant {
        Instant::from_micros(1_000_000 + us)
    }

    /// Segments sent every `gap` µs and each ACKed one `rtt` later: every sample measures the
    /// send rate, and the delivered total counts each byte once.
    #[test]
    fn a_paced_flow_samples_its_own_rate() {
        let mut r = RateSampler::new();
        let (gap, rtt) = (100u64, 20_000u64);
        let n = 1000u32;
        let mut samples = 0;
        // Sends and ACKs interleaved in time order.
        let mut next_ack = 0u32;
        for i in 0..n {
            let t = i as u64 * gap;
            while next_ack < i && next_ack as u64 * gap + rtt <= t {
                let ta = next_ack as u64 * gap + rtt;
                r.on_cumulative_ack(seq((next_ack + 1) * MSS), at(ta));
                let rs = r.take_sample(at(ta), (i - next_ack - 1) * MSS).unwrap();
                assert_eq!(rs.newly_acked, MSS);
                assert_eq!(rs.rtt, Some(Duration::from_micros(rtt)));
                // Segments sent in the first round trip, before any ACK, measure from the
                // connection's first send: their rates ramp up. Later ones measure the flow.
                let rate = rs.rate_bytes_per_sec().filter(|_| rs.prior_delivered > 0);
                if let Some(rate) = rate {
                    // 1000 bytes per 100 µs = 10 MB/s.
                    let want = MSS as u64 * 1_000_000 / gap;
                    assert!(rate.abs_diff(want) * 100 <= want, "rate {rate} want {want}");
                    samples += 1;
                }
                next_ack += 1;
            }
            let flight = (i - next_ack) * MSS;
            r.on_send(seq(i * MSS), seq((i + 1) * MSS), at(t), false, flight);
        }
        assert!(samples > 500, "{samples} valid samples");
        assert_eq!(r.delivered(), next_ack as u64 * MSS as u64);
    }

    /// Segment 0 is lost, 1..=5 are SACKed one by one, then the retransmission of 0 is
    /// cumulatively ACKed with everything: each byte is delivered once, and the last sample
    /// comes from the retransmission (the most recently sent), with no RTT (ambiguous).
    #[test]
    fn sacked_bytes_count_once_and_the_newest_send_gives_the_sample() {
        let mut r = RateSampler::new();
        let mut sb = Scoreboard::new();
        for i in 0..6u32 {
            r.on_send(
                seq(i * MSS),
                seq((i + 1) * MSS),
                at(i as u64 * 10),
                false,
                i * MSS,
            );
        }
        let (una, nxt) = (seq(0), seq(6 * MSS));
        for i in 1..6u32 {
            let block = (seq(MSS), seq((i + 1) * MSS));
            let before: Vec<_> = sb.ranges().to_vec();
            assert!(sb.add(una, nxt, block.0, block.1));
            // The same block reported again delivers nothing new.
            for _ in 0..2 {
                r.on_sack_block(&before, block, &sb, at(20_000 + i as u64));
            }
            let rs = r.take_sample(at(20_000 + i as u64), 0).unwrap();
            assert_eq!(rs.newly_acked, MSS, "block {i}");
            assert_eq!(
                rs.rtt,
                Some(Duration::from_micros(20_000 + i as u64 - i as u64 * 10))
            );
        }
        assert_eq!(r.delivered(), 5 * MSS as u64);
        r.on_send(seq(0), seq(MSS), at(30_000), true, MSS);
        r.on_cumulative_ack(seq(6 * MSS), at(50_000));
        let rs = r.take_sample(at(50_000), 0).unwrap();
        assert_eq!(rs.newly_acked, MSS);
        assert_eq!(rs.rtt, None);
        assert_eq!(rs.delivered_total, 6 * MSS as u64);
        assert_eq!(r.delivered(), 6 * MSS as u64);
        assert_eq!(r.records(), 0);
        assert_eq!(r.take_sample(at(50_001), 0), None, "nothing new delivered");
    }

    /// A block that straddles earlier ranges marks only the records it newly covers.
    #[test]
    fn a_block_merging_earlier_ranges_delivers_only_the_gaps() {
        let mut r = RateSampler::new();
        let mut sb = Scoreboard::new();
        for i in 0..10u32 {
            r.on_send(seq(i * MSS), seq((i + 1) * MSS), at(0), false, i * MSS);
        }
        let (una, nxt) = (seq(0), seq(10 * MSS));
        for (l, rr) in [(2, 3), (5, 6)] {
            let before: Vec<_> = sb.ranges().to_vec();
            sb.add(una, nxt, seq(l * MSS), seq(rr * MSS));
            r.on_sack_block(&before, (seq(l * MSS), seq(rr * MSS)), &sb, at(1000));
        }
        assert_eq!(r.take_sample(at(1000), 0).unwrap().newly_acked, 2 * MSS);
        let before: Vec<_> = sb.ranges().to_vec();
        sb.add(una, nxt, seq(MSS), seq(8 * MSS));
        r.on_sack_block(&before, (seq(MSS), seq(8 * MSS)), &sb, at(2000));
        // 1, 3, 4, 6, 7 are new.
        assert_eq!(r.take_sample(at(2000), 0).unwrap().newly_acked, 5 * MSS);
        assert_eq!(r.delivered(), 7 * MSS as u64);
    }

    /// Sends made while application-limited give app-limited samples until what was in flight
    /// then has been delivered.
    #[test]
    fn app_limited_marks_sends_until_the_flight_is_delivered() {
        let mut r = RateSampler::new();
        r.on_send(seq(0), seq(MSS), at(0), false, 0);
        r.set_app_limited(MSS);
        r.on_send(seq(MSS), seq(2 * MSS), at(10), false, MSS);
        r.on_cumulative_ack(seq(MSS), at(20_000));
        assert!(!r.take_sample(at(20_000), MSS).unwrap().is_app_limited);
        r.on_send(seq(2 * MSS), seq(3 * MSS), at(20_001), false, MSS);
        r.on_cumulative_ack(seq(2 * MSS), at(20_010));
        assert!(r.take_sample(at(20_010), MSS).unwrap().is_app_limited);
        // Delivered (2000) passed the mark (1000 + 1000 in flight)? Not yet: equal.
        r.on_send(seq(3 * MSS), seq(4 * MSS), at(20_020), false, MSS);
        r.on_cumulative_ack(seq(3 * MSS), at(40_000));
        assert!(r.take_sample(at(40_000), MSS).unwrap().is_app_limited);
        r.on_cumulative_ack(seq(4 * MSS), at(40_020));
        assert!(!r.take_sample(at(40_020), 0).unwrap().is_app_limited);
    }
}
