//! RTT estimation and the retransmission timeout (RFC 6298), with exponential backoff.
//!
//! Times are kept in microseconds as `u32` (enough for ~71 minutes), which keeps the estimator
//! at 16 bytes inside every connection.

use crate::time::Duration;

/// Clock granularity G of RFC 6298 section 2: 1 ms.
const GRANULARITY_US: u32 = 1_000;

/// SRTT/RTTVAR estimator plus the current backoff shift.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt_us: u32,
    rttvar_us: u32,
    /// RTO before backoff, already clamped to [min, max].
    rto_us: u32,
    /// Number of consecutive backoffs (RTO doubles each time).
    backoff: u8,
    has_sample: bool,
}

fn clamp_us(d: Duration) -> u32 {
    d.total_micros().min(u32::MAX as u64) as u32
}

impl RttEstimator {
    /// An estimator with no samples yet: RTO = `initial` (RFC 6298 2.1, 1 s).
    pub fn new(initial: Duration) -> Self {
        RttEstimator {
            srtt_us: 0,
            rttvar_us: 0,
            rto_us: clamp_us(initial),
            backoff: 0,
            has_sample: false,
        }
    }

    /// Feed one RTT measurement (Karn's rule is the caller's business). Resets the backoff.
    pub fn sample(&mut self, rtt: Duration, min: Duration, max: Duration) {
        let r = clamp_us(rtt).max(1);
        if !self.has_sample {
            // RFC 6298 2.2
            self.srtt_us = r;
            self.rttvar_us = r / 2;
            self.has_sample = true;
        } else {
            // RFC 6298 2.3: beta = 1/4, alpha = 1/8.
            let err = self.srtt_us.abs_diff(r);
            self.rttvar_us = ((self.rttvar_us as u64 * 3 + err as u64) / 4) as u32;
            self.srtt_us = ((self.srtt_us as u64 * 7 + r as u64) / 8) as u32;
        }
        let k = (self.rttvar_us as u64 * 4).max(GRANULARITY_US as u64);
        let rto = (self.srtt_us as u64 + k)
            .max(min.total_micros())
            .min(max.total_micros())
            .min(u32::MAX as u64);
        self.rto_us = rto as u32;
        self.backoff = 0;
    }

    /// Smoothed RTT, if any sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.has_sample
            .then(|| Duration::from_micros(self.srtt_us as u64))
    }

    /// RTT variance estimate.
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar_us as u64)
    }

    /// The current RTO including backoff, capped at `max`.
    pub fn rto(&self, max: Duration) -> Duration {
        let base = Duration::from_micros(self.rto_us as u64);
        base.saturating_mul(1u64 << self.backoff.min(30)).min(max)
    }

    /// Double the RTO (RFC 6298 5.5).
    pub fn backoff(&mut self) {
        self.backoff = self.backoff.saturating_add(1).min(30);
    }

    /// Forget the backoff (new data acknowledged).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// Number of backoffs applied so far.
    pub fn backoff_count(&self) -> u8 {
        self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn first_sample_then_smoothing() {
        let mut e = RttEstimator::new(Duration::from_secs(1));
        assert_eq!(e.rto(MAX), Duration::from_secs(1));
        assert!(e.srtt().is_none());
        e.sample(Duration::from_millis(100), MIN, MAX);
        // srtt 100, rttvar 50 -> 100 + 200 = 300 ms
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rto(MAX), Duration::from_millis(300));
        e.sample(Duration::from_millis(100), MIN, MAX);
        // rttvar 37.5, srtt 100 -> 250 ms
        assert_eq!(e.rto(MAX), Duration::from_micros(250_000));
        // Small RTTs clamp to min.
        for _ in 0..50 {
            e.sample(Duration::from_micros(500), MIN, MAX);
        }
        assert_eq!(e.rto(MAX), MIN);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut e = RttEstimator::new(Duration::from_secs(1));
        e.backoff();
        assert_eq!(e.rto(MAX), Duration::from_secs(2));
        e.backoff();
        assert_eq!(e.rto(MAX), Duration::from_secs(4));
        for _ in 0..40 {
            e.backoff();
        }
        assert_eq!(e.rto(MAX), MAX);
        e.sample(Duration::from_millis(100), MIN, MAX);
        assert_eq!(e.backoff_count(), 0);
        assert_eq!(e.rto(MAX), Duration::from_millis(300));
    }
}
