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
