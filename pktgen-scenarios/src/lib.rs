//! saps-pktgen: the load-test instrument of saps.
//!
//! It reproduces the SAPS paper's experiments on one machine, with the Linux kernel as the peer,
//! against saps (every TX-admission policy) and against what users would run instead: a Linux box
//! doing NAT in front of Linux servers. Both targets sit behind the same emulated bottleneck
//! (saps: the port's line-rate emulation with a 1,024-slot TX ring; Linux: `tbf` on the NAT
//! router's egress with a 1,000-packet queue) and the same userspace delay router.
//!
//! ```text
//!  client ns            router ns                       target
//! ┌──────────┐ veth ┌──────────────┐ veth ┌───────────────────────────────────────────┐
//! │generators├──────┤ delay router ├──────┤ saps (af_packet, line rate, admission)    │
//! │(kernel   │      │ delay/loss/  │      │   or                                      │
//! │ sockets) │      │ rate, segment│      │ Linux NAT (nftables DNAT, tbf) ── servers │
//! └──────────┘      │ log, pcap    │      └───────────────────────────────────────────┘
//!                   └──────────────┘
//! ```
//!
//! - [`delay_router`]: a userspace bridge between two interfaces on AF_PACKET rings that adds
//!   delay, jitter, loss, reordering, duplication and a rate limit, and logs every TCP segment.
//! - [`servers`]: the Linux servers of the baseline, speaking the same protocols as saps's
//!   built-in services (echo, discard, source, http, UDP echo).
//! - [`testbed`]: builds and tears down the namespaces, veths, router, target and baseline.
//! - [`generators`]: traffic from kernel sockets in the client namespace.
//! - [`analysis`]: completion times, goodput series, Jain's index, latency percentiles.
//! - [`report`]: Markdown reports and SVG plots drawn like the paper's figures.
//! - [`scenario`]: the TOML scenario format and the runner.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod analysis;
pub mod delay_router;
pub mod generators;
pub mod report;
pub mod scenario;
pub mod servers;
pub mod testbed;
