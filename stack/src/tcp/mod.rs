//! TCP: the connection state machine (RFC 9293) and its parts.
//!
//! - [`seq`]: modulo-2^32 sequence numbers.
//! - [`config`]: per-listener / per-connection knobs.
//! - [`conn`]: one connection's state machine (TCB). Sans-IO: segments and `now` in, segments,
//!   events and a deadline out. It knows nothing of IP or Ethernet beyond its 4-tuple, which it
//!   needs for the checksum pseudo-header.
//! - [`congestion`]: the congestion-control trait with NewReno and CUBIC.
//! - [`bbr`]: BBR, the model-based congestion control, behind the same trait.
//! - [`rate`]: delivery-rate samples, BBR's input.
//! - [`rtt`]: RTT estimation and RTO (RFC 6298).
//! - [`sack`]: the sender's SACK scoreboard (RFC 6675) and the receiver's SACK block list.
//! - [`reassembly`]: bounded out-of-order reassembly.
//! - [`sendbuf`]: the send queue, allocated only while data is queued.
//! - [`isn`]: initial sequence numbers (RFC 6528, keyed hash).
//! - [`syncookie`]: SYN cookies (RFC 4987) carrying MSS, window scale and SACK-permitted.

pub mod bbr;
pub mod config;
pub mod congestion;
pub mod conn;
pub mod isn;
pub mod rate;
pub mod reassembly;
pub mod rtt;
pub mod sack;
pub mod sendbuf;
pub mod seq;
pub mod syncookie;

pub use config::TcpConfig;
pub use conn::{CloseReason, ConnEvent, ConnInfo, Connection, State, TcpError};

pub use seq::SeqNumber;

impl conn::State {
    /// Number of states.
    pub const COUNT: usize = 10;
    /// Every state, in declaration order (`state as usize` indexes this).
    pub const ALL: [conn::State; Self::COUNT] = [
        conn::State::Closed,
        conn::State::SynSent,
        conn::State::SynReceived,
        conn::State::Established,
        conn::State::FinWait1,
        conn::State::FinWait2,
        conn::State::CloseWait,
        conn::State::Closing,
        conn::State::LastAck,
        conn::State::TimeWait,
    ];

    /// Lower-case name used in telemetry labels.
    pub const fn name(self) -> &'static str {
        match self {
            conn::State::Closed => "closed",
            conn::State::SynSent => "syn_sent",
            conn::State::SynReceived => "syn_received",
            conn::State::Established => "established",
            conn::State::FinWait1 => "fin_wait1",
            conn::State::FinWait2 => "fin_wait2",
            conn::State::CloseWait => "close_wait",
            conn::State::Closing => "closing",
            conn::State::LastAck => "last_ack",
            conn::State::TimeWait => "time_wait",
        }
    }
}
