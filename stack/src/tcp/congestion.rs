//! Congestion control behind a trait: NewReno (RFC 5681/6582) and CUBIC (RFC 9438).
//!
//! All quantities are in bytes. The connection calls these hooks; the algorithm only keeps
//! `cwnd` and `ssthresh` (plus its own state). [`Congestion`] is the enum the connection stores, so
//! there is no allocation or dynamic dispatch per connection.

use crate::time::{Duration, Instant};

/// The hooks a congestion-control algorithm implements.
pub trait CongestionControl {
    /// Congestion window in bytes.
    fn cwnd(&self) -> u32;
    /// Slow-start threshold in bytes.
    fn ssthresh(&self) -> u32;
    /// New data was cumulatively acknowledged outside loss recovery. `rtt` is a fresh sample
    /// when one was taken (Karn's rule already applied by the caller).
    fn on_ack(&mut self, now: Instant, acked_bytes: u32, rtt: Option<Duration>, bytes_in_flight: u32);
    /// Loss detected by duplicate ACKs or SACK: entering fast recovery.
    fn on_congestion_event(&mut self, now: Instant, bytes_in_flight: u32);
    /// Fast recovery ended (the recovery point was acknowledged).
    fn on_recovery_exit(&mut self, now: Instant);
    /// The retransmission timer expired.
    fn on_rto(&mut self, now: Instant, bytes_in_flight: u32);
    /// The connection was idle longer than an RTO (RFC 5681 section 4.1 restart window).
    fn on_idle_restart(&mut self, now: Instant);
}
