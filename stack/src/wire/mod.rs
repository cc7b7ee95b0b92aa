//! Wire formats: zero-copy packet views plus parse/emit `Repr` values.
//!
//! Each protocol module offers a `Packet<T: AsRef<[u8]>>`-style view whose accessors read fields
//! in place, and a `Repr` value with `parse`, `buffer_len` and `emit`. Accessor panic rule: the
//! views' field accessors may panic on a buffer shorter than the fixed header, so callers must go
//! through `new_checked` (which validates lengths) before using them on untrusted input; `parse`
//! never panics on any input.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use core::net::{Ipv4Addr, SocketAddrV4};

/// Why a packet could not be parsed. Cheap to create: no allocation on the hot path.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer is shorter than the header or the length fields claim.
    Truncated,
    /// A length, offset or version field has an impossible value.
    Malformed,
    /// The checksum does not verify.
    Checksum,
    /// A valid packet of a kind this stack does not handle (e.g. an unknown ARP hardware type).
    Unsupported,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated packet",
            WireError::Malformed => "malformed packet",
            WireError::Checksum => "bad checksum",
            WireError::Unsupported => "unsupported packet",
        })
    }
}

impl std::error::Error for WireError {}

/// How checksums are handled: computed in software, or left to a NIC that offloads them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct ChecksumMode {
    /// Verify checksums of received packets in software. Off when the NIC has already verified.
    pub verify_rx: bool,
    /// Compute checksums of transmitted packets in software. Off when the NIC fills them in.
    pub fill_tx: bool,
}

impl ChecksumMode {
    /// Software checksums both ways (the safe default for AF_PACKET, TAP and memory ports).
    pub const SOFTWARE: ChecksumMode = ChecksumMode {
        verify_rx: true,
        fill_tx: true,
    };
    /// Everything offloaded to the NIC.
    pub const OFFLOAD: ChecksumMode = ChecksumMode {
        verify_rx: false,
        fill_tx: false,
    };
}
