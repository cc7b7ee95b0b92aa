//! saps-stack: the sans-IO TCP/IP stack of the saps appliance.
//!
//! Frames and the current time come in as arguments; frames, events and the next deadline go out.
//! Nothing here reads a clock, makes a syscall or spawns a thread, so every behaviour can be driven
//! deterministically by tests and by the network simulation in [`sim`].
//!
//! Layout:
//! - [`wire`]: zero-copy packet views and `Repr` values (parse / buffer_len / emit) per protocol.
//! - [`tcp`]: the TCP connection state machine and its parts (sequence arithmetic, congestion
//!   control, SACK scoreboard, reassembly, timers, SYN cookies).
//! - [`iface`]: the interface that ties Ethernet, ARP, IPv4, ICMP, UDP and TCP together and owns
//!   the flow table and the egress seam.
//! - [`egress`]: the interface through which data segments leave (TX admission plugs in here).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arp_cache;
pub mod egress;
pub mod iface;
pub mod sim;
pub mod simhost;
pub mod stats;
pub mod tcp;
pub mod time;
pub mod timer;
pub mod udp;
pub mod wire;

pub use egress::EgressScheduler;
pub use simhost::WIRE_OVERHEAD_BYTES;
pub use time::{Duration, Instant};
