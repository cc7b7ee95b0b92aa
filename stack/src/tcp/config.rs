//! Per-listener / per-connection TCP knobs.

use crate::tcp::congestion::CongestionAlgorithm;
use crate::time::Duration;
use crate::wire::ChecksumMode;

/// TCP configuration. A connection copies what it needs at creation (it keeps no reference).
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Local MSS to advertise (1460 for a 1500-byte MTU).
    pub mss: u16,
    /// Receive buffer in bytes; also sets our window-scale shift.
    pub recv_buffer: usize,
    /// Send buffer in bytes.
    pub send_buffer: usize,
    /// Offer window scaling (RFC 7323).
    pub window_scale: bool,
    /// Offer timestamps (RFC 7323).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// RTO before any RTT sample (RFC 6298: 1 s).
    pub rto_initial: Duration,
    /// Lower bound of the RTO (Linux: 200 ms).
    pub rto_min: Duration,
    /// Upper bound of the RTO (RFC 6298: at least 60 s).
    pub rto_max: Duration,
    /// TIME_WAIT duration (2*MSL).
    pub time_wait: Duration,
    /// How long an orphaned (closed) connection may sit in FIN_WAIT_2.
    pub fin_wait2_timeout: Duration,
    /// Delayed-ACK timeout (RFC 9293: < 0.5 s; Linux ~40 ms).
    pub delayed_ack: Duration,
    /// Keepalive: (idle time, probe interval, probes before giving up). `None` = off.
    pub keepalive: Option<(Duration, Duration, u32)>,
    /// Congestion-control algorithm.
    pub congestion: CongestionAlgorithm,
    /// Initial window in segments (RFC 6928: 10).
    pub initial_window_segments: u32,
    /// Disable Nagle's algorithm.
    pub nodelay: bool,
    /// Tail loss probes (RFC 8985 section 7): after 2*SRTT without an ACK, resend the last
    /// segment so a lost tail is repaired by SACK/fast recovery instead of an RTO.
    pub tail_loss_probe: bool,
    /// Undo congestion-window cuts whose retransmissions prove spurious (reordering, delay
    /// spikes): Eifel detection with timestamps (RFC 3522) and D-SACK counting (RFC 3708), the
    /// RFC 4015 response, and no go-back-N after a spurious timeout. Linux does this by default.
    /// Only the loss-based algorithms; BBR is unaffected.
    pub undo: bool,
    /// Out-of-order bytes one connection may hold.
    pub ooo_budget: usize,
    /// SYN retransmissions before an active open fails.
    pub syn_retries: u8,
    /// SYN-ACK retransmissions before a passive open is abandoned.
    pub synack_retries: u8,
    /// Data/FIN retransmissions (RTO expiries in a row) before the connection is dropped.
    pub max_retransmits: u8,
    /// Checksum computation / verification.
    pub checksum: ChecksumMode,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            recv_buffer: 256 * 1024,
            send_buffer: 256 * 1024,
            window_scale: true,
            timestamps: true,
            sack: true,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(60),
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            delayed_ack: Duration::from_millis(40),
            keepalive: None,
            congestion: CongestionAlgorithm::Cubic,
            initial_window_segments: 10,
            nodelay: false,
            tail_loss_probe: true,
            undo: true,
            ooo_budget: 256 * 1024,
            syn_retries: 6,
            synack_retries: 5,
            max_retransmits: 15,
            checksum: ChecksumMode::SOFTWARE,
        }
    }
}

impl TcpConfig {
    /// The window-scale shift we offer: the smallest that lets `recv_buffer` be advertised,
    /// at most 14 (RFC 7323 section 2.3).
    pub fn window_shift(&self) -> u8 {
        let mut shift = 0u8;
        while shift < 14 && (self.recv_buffer >> shift) > 65535 {
            shift += 1;
        }
        shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_shift() {
        let c = TcpConfig::default();
        assert_eq!(c.mss, 1460);
        assert_eq!(c.window_shift(), 3); // 256 KiB >> 3 = 32 KiB
        let big = TcpConfig {
            recv_buffer: 1 << 40,
            ..TcpConfig::default()
        };
        assert_eq!(big.window_shift(), 14);
        let small = TcpConfig {
            recv_buffer: 65535,
            ..TcpConfig::default()
        };
        assert_eq!(small.window_shift(), 0);
    }
}
