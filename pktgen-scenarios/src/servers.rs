//! The Linux servers of the baseline: the same services as saps's built-in ones, on kernel
//! sockets, so the two targets differ only in the stack (and the NAT router in front of Linux).
//!
//! | port | proto | service |
//! | ---- | ----- | ------- |
//! | 7    | tcp   | echo: every byte back, `TCP_NODELAY` (the 4-byte ping-pong) |
//! | 9    | tcp   | discard: reads and drops |
//! | 19   | tcp   | source: the byte pattern of `saps::services::PATTERN` until the peer closes |
//! | 80   | tcp   | HTTP/1.1 keep-alive, `GET /bytes/N` returns N pattern bytes |
//! | 7    | udp   | echo: every datagram back to its sender |
//!
//! They are the appliance's own Linux servers ([`saps::linux_servers`], shared with
//! `saps bench`), re-exported here so the testbed names them in one place.

pub use saps::linux_servers::{
    LinuxServers, TcpService, ALL_TCP, DISCARD_PORT, ECHO_PORT, HTTP_PORT, SOURCE_PORT,
    UDP_ECHO_PORT,
};
