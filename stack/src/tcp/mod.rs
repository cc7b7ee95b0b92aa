//! TCP: the connection state machine (RFC 9293) and its parts.
//!
//! - [`seq`]: modulo-2^32 sequence numbers.
//! - [`config`]: per-listener / per-connection knobs.
//! - [`conn`]: one connection's state machine (TCB). Sans-IO: segments and `now` in, segments,
//!   events and a deadline out. It knows nothing of IP or Ethernet beyond its 4-tuple, which it
//!   needs for the checksum pseudo-header.
//! - [`congestion`]: the congestion-control trait with NewReno and CUBIC.
//! - [`rtt`]: RTT estimation and RTO (RFC 6298).
//! - [`sack`]: the sender's SACK scoreboard (RFC 6675) and the receiver's SACK block list.
//! - [`reassembly`]: bounded out-of-order reassembly.
//! - [`sendbuf`]: the send queue, allocated only while data is queued.
//! - [`isn`]: initial sequence numbers (RFC 6528, keyed hash).
//! - [`syncookie`]: SYN cookies (RFC 4987) carrying MSS, window scale and SACK-permitted.

pub mod config;
pub mod congestion;
pub mod conn;
pub mod isn;
pub mod reassembly;
pub mod rtt;
pub mod sack;
pub mod sendbuf;
pub mod seq;
pub mod syncookie;

pub use config::TcpConfig;
pub use conn::{CloseReason, ConnEvent, ConnInfo, Connection, State, TcpError};

pub use seq::SeqNumber;
