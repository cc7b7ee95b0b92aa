//! ARP for Ethernet and IPv4 (RFC 826).

use super::ethernet::{EtherType, EthernetAddress};
use super::{Ipv4Addr, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const BUFFER_LEN: usize = 28;

/// Hardware type Ethernet.
const HTYPE_ETHERNET: u16 = 1;

/// Byte offsets of the ARP fields for Ethernet/IPv4.
pub mod field {
    use core::ops::Range;
    /// Hardware type.
    pub const HTYPE: Range<usize> = 0..2;
    /// Protocol type.
    pub const PTYPE: Range<usize> = 2..4;
    /// Hardware address length.
    pub const HLEN: usize = 4;
    /// Protocol address length.
    pub const PLEN: usize = 5;
    /// Operation.
    pub const OPER: Range<usize> = 6..8;
    /// Sender hardware address.
    pub const SHA: Range<usize> = 8..14;
    /// Sender protocol address.
    pub const SPA: Range<usize> = 14..18;
    /// Target hardware address.
    pub const THA: Range<usize> = 18..24;
    /// Target protocol address.
    pub const TPA: Range<usize> = 24..28;
}

/// ARP operation.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub enum ArpOperation {
    /// Who has `target_ip`? (1)
    Request,
    /// `sender_ip` is at `sender_hw`. (2)
    Reply,
}

impl ArpOperation {
    /// The wire value.
    pub const fn code(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        }
    }
}

/// A zero-copy view of an ARP packet.
///
/// Accessors for the address fields assume Ethernet/IPv4 sizes and may panic on a buffer shorter
/// than 28 bytes; use [`ArpPacket::new_checked`] on untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    /// Wraps a buffer after checking it holds 28 bytes.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < BUFFER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(ArpPacket { buffer })
    }
    fn read_u16(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }
    fn read_ip(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[r];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    fn read_hw(&self, r: core::ops::Range<usize>) -> EthernetAddress {
        let b = &self.buffer.as_ref()[r];
        EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]])
    }
    /// Hardware type.
    pub fn htype(&self) -> u16 {
        self.read_u16(field::HTYPE)
    }
    /// Protocol type.
    pub fn ptype(&self) -> u16 {
        self.read_u16(field::PTYPE)
    }
    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    /// Protocol address length.
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    /// Raw operation code.
    pub fn oper(&self) -> u16 {
        self.read_u16(field::OPER)
    }
    /// Sender hardware address.
    pub fn sender_hw(&self) -> EthernetAddress {
        self.read_hw(field::SHA)
    }
    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        self.read_ip(field::SPA)
    }
    /// Target hardware address.
    pub fn target_hw(&self) -> EthernetAddress {
        self.read_hw(field::THA)
    }
    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        self.read_ip(field::TPA)
    }
}

/// A parsed (or to-be-emitted) Ethernet/IPv4 ARP packet.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub sender_hw: EthernetAddress,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_hw: EthernetAddress,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an ARP packet. Trailing bytes (Ethernet padding) are ignored.
    ///
    /// Errors: fewer than 28 bytes → `Truncated` (checked after the type fields, so a short
    /// packet of another hardware type is `Unsupported`); not Ethernet/IPv4 or an operation other
    /// than request/reply → `Unsupported`.
    pub fn parse(buf: &[u8]) -> Result<ArpRepr, WireError> {
        if buf.len() < 8 {
            return Err(WireError::Truncated);
        }
        let p = ArpPacket::new_unchecked(buf);
        if p.htype() != HTYPE_ETHERNET
            || p.ptype() != EtherType::IPV4
            || p.hlen() != 6
            || p.plen() != 4
        {
            return Err(WireError::Unsupported);
        }
        let operation = match p.oper() {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            _ => return Err(WireError::Unsupported),
        };
        let p = ArpPacket::new_checked(buf)?;
        Ok(ArpRepr {
            operation,
            sender_hw: p.sender_hw(),
            sender_ip: p.sender_ip(),
            target_hw: p.target_hw(),
            target_ip: p.target_ip(),
        })
    }

    /// Length of the emitted packet (always [`BUFFER_LEN`]).
    pub const fn buffer_len(&self) -> usize {
        BUFFER_LEN
    }

    /// Writes the 28-byte packet.
    ///
    /// # Panics
    /// If `buf` is shorter than [`BUFFER_LEN`].
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..BUFFER_LEN];
        b[field::HTYPE].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        b[field::PTYPE].copy_from_slice(&EtherType::IPV4.to_be_bytes());
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        b[field::OPER].copy_from_slice(&self.operation.code().to_be_bytes());
        b[field::SHA].copy_from_slice(&self.sender_hw.0);
        b[field::SPA].copy_from_slice(&self.sender_ip.octets());
        b[field::THA].copy_from_slice(&self.target_hw.0);
        b[field::TPA].copy_from_slice(&self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A request from 52:54:00:12:34:56 / 192.168.1.10 asking for 192.168.1.1 (RFC 826 layout).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, // htype Ethernet
        0x08, 0x00, // ptype IPv4
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // request
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // sha
        192, 168, 1, 10, // spa
        0, 0, 0, 0, 0, 0, // tha
        192, 168, 1, 1, // tpa
    ];

    #[test]
    fn parses_request_field_by_field() {
        let r = ArpRepr::parse(&REQUEST).unwrap();
        assert_eq!(r.operation, ArpOperation::Request);
        assert_eq!(
            r.sender_hw,
            EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        assert_eq!(r.sender_ip, Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(r.target_hw, EthernetAddress::UNSPECIFIED);
        assert_eq!(r.target_ip, Ipv4Addr::new(192, 168, 1, 1));
        let mut out = [0u8; BUFFER_LEN];
        r.emit(&mut out);
        assert_eq!(out, REQUEST);
        // Ethernet padding after the packet is ignored.
        let mut padded = REQUEST.to_vec();
        padded.extend_from_slice(&[0; 18]);
        assert_eq!(ArpRepr::parse(&padded), Ok(r));
    }

    #[test]
    fn rejects_other_types_and_truncation() {
        assert_eq!(ArpRepr::parse(&REQUEST[..27]), Err(WireError::Truncated));
        assert_eq!(ArpRepr::parse(&REQUEST[..3]), Err(WireError::Truncated));
        for (i, v) in [(1, 6u8), (3, 0xdd), (4, 8), (5, 16), (7, 3)] {
            let mut p = REQUEST;
            p[i] = v;
            assert_eq!(ArpRepr::parse(&p), Err(WireError::Unsupported), "byte {i}");
        }
        let mut reply = REQUEST;
        reply[7] = 2;
        assert_eq!(
            ArpRepr::parse(&reply).unwrap().operation,
            ArpOperation::Reply
        );
    }

    proptest! {
        #[test]
        fn roundtrip(reply in any::<bool>(), sha in any::<[u8; 6]>(), spa in any::<u32>(),
                     tha in any::<[u8; 6]>(), tpa in any::<u32>()) {
            let r = ArpRepr {
                operation: if reply { ArpOperation::Reply } else { ArpOperation::Request },
                sender_hw: EthernetAddress(sha),
                sender_ip: Ipv4Addr::from(spa),
                target_hw: EthernetAddress(tha),
                target_ip: Ipv4Addr::from(tpa),
            };
            let mut buf = [0u8; BUFFER_LEN];
            r.emit(&mut buf);
            prop_assert_eq!(ArpRepr::parse(&buf), Ok(r));
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = ArpRepr::parse(&data);
            let mut d = data.clone();
            // Also with a valid preamble so the address reads are reached.
            let n = d.len().min(8);
            d[..n].copy_from_slice(&REQUEST[..n]);
            let _ = ArpRepr::parse(&d);
        }
    }
}
