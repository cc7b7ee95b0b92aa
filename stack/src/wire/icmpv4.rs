//! ICMP for IPv4 (RFC 792, RFC 1191 for "fragmentation needed").

use super::ipv4::Ipv4Packet;
use super::{checksum, ChecksumMode, Ipv4Addr, WireError};

/// ICMP message types this stack handles.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Codes of "destination unreachable" (RFC 792, RFC 1191).
pub mod unreachable {
    /// Network unreachable.
    pub const NET_UNREACHABLE: u8 = 0;
    /// Host unreachable.
    pub const HOST_UNREACHABLE: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL_UNREACHABLE: u8 = 2;
    /// Port unreachable.
    pub const PORT_UNREACHABLE: u8 = 3;
    /// Fragmentation needed and DF set; carries the next-hop MTU (RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    /// Source route failed.
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    /// Communication administratively prohibited (RFC 1812).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of "time exceeded".
pub mod time_exceeded {
    /// TTL exceeded in transit.
    pub const TTL_EXCEEDED: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const REASSEMBLY_EXCEEDED: u8 = 1;
}

/// Length of the ICMP header (type, code, checksum, and the 4-byte rest of header).
pub const HEADER_LEN: usize = 8;

/// Byte offsets of the ICMP header fields.
pub mod field {
    use core::ops::Range;
    /// Message type.
    pub const TYPE: usize = 0;
    /// Code.
    pub const CODE: usize = 1;
    /// Checksum over the whole message.
    pub const CHECKSUM: Range<usize> = 2..4;
    /// Echo identifier.
    pub const ECHO_IDENT: Range<usize> = 4..6;
    /// Echo sequence number.
    pub const ECHO_SEQ: Range<usize> = 6..8;
    /// Next-hop MTU of "fragmentation needed" (RFC 1191).
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
    /// Start of the data (echo data, or the quoted original datagram).
    pub const DATA: usize = 8;
}

/// A zero-copy view of an ICMP message.
///
/// Accessors may panic on a buffer shorter than 8 bytes; use [`Icmpv4Packet::new_checked`] on
/// untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }
    /// Wraps a buffer after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Icmpv4Packet { buffer })
    }
    fn read_u16(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }
    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        self.read_u16(field::ECHO_IDENT)
    }
    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        self.read_u16(field::ECHO_SEQ)
    }
    /// Next-hop MTU (meaningful for "fragmentation needed"; 0 from pre-RFC 1191 routers).
    pub fn next_hop_mtu(&self) -> u16 {
        self.read_u16(field::NEXT_HOP_MTU)
    }
    /// Data after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
    /// Whether the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref(), 0)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    fn write_u16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Sets the code.
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.write_u16(field::CHECKSUM, v)
    }
    /// Sets the 4-byte rest of header as two 16-bit words.
    pub fn set_rest(&mut self, a: u16, b: u16) {
        self.write_u16(4..6, a);
        self.write_u16(6..8, b);
    }
    /// Mutable data after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// A parsed (or to-be-emitted) ICMP message.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Icmpv4Repr<'a> {
    /// Echo request (ping).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Destination unreachable.
    DstUnreachable {
        /// Code (see [`mod@unreachable`]).
        code: u8,
        /// Next-hop MTU for [`unreachable::FRAG_NEEDED`] (0 otherwise or from old routers).
        next_hop_mtu: u16,
        /// The quoted original datagram: its IP header and at least 8 bytes of its payload.
        original: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Code (see [`time_exceeded`]).
        code: u8,
        /// The quoted original datagram.
        original: &'a [u8],
    },
    /// Any other message (parsed only so it can be counted; emitted as a bare 8-byte header).
    Other {
        /// Message type.
        msg_type: u8,
        /// Code.
        code: u8,
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses an ICMP message (the whole IPv4 payload).
    ///
    /// Errors: fewer than 8 bytes → `Truncated`; checksum over the whole message fails (only when
    /// `mode.verify_rx`) → `Checksum`.
    pub fn parse(buf: &'a [u8], mode: ChecksumMode) -> Result<Icmpv4Repr<'a>, WireError> {
        let p = Icmpv4Packet::new_checked(buf)?;
        if mode.verify_rx && !p.verify_checksum() {
            return Err(WireError::Checksum);
        }
        let data = &buf[field::DATA..];
        Ok(match p.msg_type() {
            msg_type::ECHO_REQUEST => Icmpv4Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            },
            msg_type::ECHO_REPLY => Icmpv4Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            },
            msg_type::DST_UNREACHABLE => Icmpv4Repr::DstUnreachable {
                code: p.code(),
                next_hop_mtu: if p.code() == unreachable::FRAG_NEEDED {
                    p.next_hop_mtu()
                } else {
                    0
                },
                original: data,
            },
            msg_type::TIME_EXCEEDED => Icmpv4Repr::TimeExceeded {
                code: p.code(),
                original: data,
            },
            t => Icmpv4Repr::Other {
                msg_type: t,
                code: p.code(),
            },
        })
    }

    /// Length of the emitted message: 8 plus the data or quoted datagram.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                    data.len()
                }
                Icmpv4Repr::DstUnreachable { original, .. }
                | Icmpv4Repr::TimeExceeded { original, .. } => original.len(),
                Icmpv4Repr::Other { .. } => 0,
            }
    }

    /// Writes the message (header, then data copied in), with the checksum when `mode.fill_tx`
    /// (else zero). `next_hop_mtu` is written for every unreachable code; it should be 0 unless
    /// the code is [`unreachable::FRAG_NEEDED`].
    ///
    /// # Panics
    /// If `buf` is shorter than [`Icmpv4Repr::buffer_len`].
    pub fn emit(&self, buf: &mut [u8], mode: ChecksumMode) {
        let len = self.buffer_len();
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..len]);
        let (t, code, rest, data): (u8, u8, (u16, u16), &[u8]) = match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (msg_type::ECHO_REQUEST, 0, (ident, seq_no), data),
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (msg_type::ECHO_REPLY, 0, (ident, seq_no), data),
            Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu,
                original,
            } => (msg_type::DST_UNREACHABLE, code, (0, next_hop_mtu), original),
            Icmpv4Repr::TimeExceeded { code, original } => {
                (msg_type::TIME_EXCEEDED, code, (0, 0), original)
            }
            Icmpv4Repr::Other { msg_type, code } => (msg_type, code, (0, 0), &[]),
        };
        p.set_msg_type(t);
        p.set_code(code);
        p.set_rest(rest.0, rest.1);
        p.data_mut().copy_from_slice(data);
        if mode.fill_tx {
            p.fill_checksum();
        } else {
            p.set_checksum(0);
        }
    }
}

/// The fields of an IPv4 datagram quoted inside an ICMP error.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct QuotedIpv4<'a> {
    /// Source of the original datagram (our address, when it was ours).
    pub src: Ipv4Addr,
    /// Destination of the original datagram.
    pub dst: Ipv4Addr,
    /// Protocol of the original datagram.
    pub protocol: u8,
    /// The first 8 bytes of the original payload (for TCP/UDP: ports, and TCP's sequence number).
    pub payload: &'a [u8],
}

/// Extracts the quoted header of an ICMP error (`original` as in
/// [`Icmpv4Repr::DstUnreachable`]). Returns `None` unless it is a version-4 header with IHL >= 5
/// followed by at least 8 payload bytes. The quoted total length and checksum are not checked:
/// routers may quote a datagram they have already altered or cut.
pub fn quoted_ipv4(original: &[u8]) -> Option<QuotedIpv4<'_>> {
    if original.len() < super::ipv4::HEADER_LEN {
        return None;
    }
    let p = Ipv4Packet::new_unchecked(original);
    let hl = p.header_len();
    if p.version() != 4 || hl < super::ipv4::HEADER_LEN {
        return None;
    }
    let payload = original.get(hl..hl + 8)?;
    Some(QuotedIpv4 {
        src: p.src(),
        dst: p.dst(),
        protocol: p.protocol(),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::super::ipv4::{ip_protocol, Ipv4Repr};
    use super::*;
    use proptest::prelude::*;

    /// Naive reference checksum.
    fn ref_checksum(b: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for w in b.chunks(2) {
            s += u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// An IPv4 + ICMP echo request built from the RFC 791 / RFC 792 layouts.
    fn echo_packet() -> Vec<u8> {
        let mut ip = vec![
            0x45, 0x00, 0x00, 0x00, // ver/ihl, tos, total length (below)
            0xab, 0xcd, 0x40, 0x00, // ident, DF
            0x40, 0x01, 0x00, 0x00, // ttl 64, ICMP, checksum (below)
            10, 0, 0, 1, // src
            10, 0, 0, 2, // dst
        ];
        let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0x00, 0x07];
        icmp.extend_from_slice(b"ping data!");
        let c = ref_checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let total = (ip.len() + icmp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let c = ref_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&icmp);
        ip
    }

    #[test]
    fn parses_ipv4_icmp_echo() {
        let pkt = echo_packet();
        let (ip, payload) = Ipv4Repr::parse(&pkt, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(ip.protocol, ip_protocol::ICMP);
        assert_eq!(ip.ident, 0xabcd);
        assert_eq!(ip.payload_len, 18);
        let r = Icmpv4Repr::parse(payload, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(
            r,
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 7,
                data: b"ping data!"
            }
        );
        // The reply differs only in type and checksum.
        let reply = Icmpv4Repr::EchoReply {
            ident: 0x1234,
            seq_no: 7,
            data: b"ping data!",
        };
        let mut out = vec![0u8; reply.buffer_len()];
        reply.emit(&mut out, ChecksumMode::SOFTWARE);
        assert_eq!(out[0], 0);
        assert_eq!(&out[4..], &payload[4..]);
        assert_eq!(ref_checksum(&out), 0);
        // Emitting the request reproduces the original bytes.
        r.emit(&mut out, ChecksumMode::SOFTWARE);
        assert_eq!(&out[..], payload);
    }

    #[test]
    fn checksum_and_truncation() {
        let pkt = echo_packet();
        let icmp = &pkt[20..];
        assert_eq!(
            Icmpv4Repr::parse(&icmp[..7], ChecksumMode::OFFLOAD),
            Err(WireError::Truncated)
        );
        let mut bad = icmp.to_vec();
        bad[9] ^= 0x80;
        assert_eq!(
            Icmpv4Repr::parse(&bad, ChecksumMode::SOFTWARE),
            Err(WireError::Checksum)
        );
        assert!(Icmpv4Repr::parse(&bad, ChecksumMode::OFFLOAD).is_ok());
        let r = Icmpv4Repr::EchoRequest {
            ident: 1,
            seq_no: 2,
            data: b"x",
        };
        let mut out = [0xffu8; 9];
        r.emit(&mut out, ChecksumMode::OFFLOAD);
        assert_eq!(&out[2..4], &[0, 0]);
    }

    /// A quoted TCP SYN: IPv4 header from 10.0.0.1 to 10.0.0.2 and the first 8 TCP bytes.
    fn quoted_tcp() -> Vec<u8> {
        let ip = Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: ip_protocol::TCP,
            ttl: 64,
            ident: 1,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            dscp_ecn: 0,
            payload_len: 1480,
        };
        let mut v = vec![0u8; 28];
        ip.emit(&mut v, ChecksumMode::SOFTWARE);
        v[20..28].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78]);
        v
    }

    #[test]
    fn frag_needed_and_quoted_header() {
        let orig = quoted_tcp();
        let r = Icmpv4Repr::DstUnreachable {
            code: unreachable::FRAG_NEEDED,
            next_hop_mtu: 1400,
            original: &orig,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf, ChecksumMode::SOFTWARE);
        // Type 3, code 4, unused 0, MTU at bytes 6..8 (RFC 1191).
        assert_eq!(&buf[0..2], &[3, 4]);
        assert_eq!(&buf[4..8], &[0, 0, 0x05, 0x78]);
        let back = Icmpv4Repr::parse(&buf, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(back, r);
        let Icmpv4Repr::DstUnreachable { original, .. } = back else {
            panic!("wrong kind")
        };
        let q = quoted_ipv4(original).unwrap();
        assert_eq!(q.src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(q.dst, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(q.protocol, ip_protocol::TCP);
        assert_eq!(q.payload, &orig[20..28]);
        // Cut quotes, a wrong version or a bad IHL give None.
        assert_eq!(quoted_ipv4(&orig[..27]), None);
        assert_eq!(quoted_ipv4(&orig[..10]), None);
        let mut v6 = orig.clone();
        v6[0] = 0x65;
        assert_eq!(quoted_ipv4(&v6), None);
        let mut ihl = orig.clone();
        ihl[0] = 0x43;
        assert_eq!(quoted_ipv4(&ihl), None);
        // Quoted options are skipped (IHL 6 needs 32 bytes in all).
        let mut opt = orig.clone();
        opt[0] = 0x46;
        assert_eq!(quoted_ipv4(&opt), None);
        opt.extend_from_slice(&[0xaa; 4]);
        assert_eq!(quoted_ipv4(&opt).unwrap().payload, &opt[24..32]);
        // A port-unreachable parses with MTU 0 even if the field is non-zero.
        let mut pu = buf.clone();
        pu[1] = unreachable::PORT_UNREACHABLE;
        let r = Icmpv4Repr::parse(&pu, ChecksumMode::OFFLOAD).unwrap();
        assert!(matches!(
            r,
            Icmpv4Repr::DstUnreachable {
                code: 3,
                next_hop_mtu: 0,
                ..
            }
        ));
    }

    #[test]
    fn time_exceeded_and_other() {
        let orig = quoted_tcp();
        let r = Icmpv4Repr::TimeExceeded {
            code: time_exceeded::TTL_EXCEEDED,
            original: &orig,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf, ChecksumMode::SOFTWARE);
        assert_eq!(buf[0], 11);
        assert_eq!(Icmpv4Repr::parse(&buf, ChecksumMode::SOFTWARE), Ok(r));
        let o = Icmpv4Repr::Other {
            msg_type: 13,
            code: 0,
        };
        let mut buf = [0u8; 8];
        o.emit(&mut buf, ChecksumMode::SOFTWARE);
        assert_eq!(Icmpv4Repr::parse(&buf, ChecksumMode::SOFTWARE), Ok(o));
    }

    proptest! {
        #[test]
        fn roundtrip(kind in 0u8..5, a in any::<u16>(), b in any::<u16>(), code in any::<u8>(),
                     t in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = match kind {
                0 => Icmpv4Repr::EchoRequest { ident: a, seq_no: b, data: &data },
                1 => Icmpv4Repr::EchoReply { ident: a, seq_no: b, data: &data },
                2 => Icmpv4Repr::DstUnreachable {
                    code,
                    next_hop_mtu: if code == unreachable::FRAG_NEEDED { a } else { 0 },
                    original: &data,
                },
                3 => Icmpv4Repr::TimeExceeded { code, original: &data },
                _ => {
                    prop_assume!(![0, 3, 8, 11].contains(&t));
                    Icmpv4Repr::Other { msg_type: t, code }
                }
            };
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut buf, ChecksumMode::SOFTWARE);
            prop_assert_eq!(ref_checksum(&buf), 0);
            prop_assert_eq!(Icmpv4Repr::parse(&buf, ChecksumMode::SOFTWARE), Ok(r));
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Icmpv4Repr::parse(&data, ChecksumMode::SOFTWARE);
            let _ = Icmpv4Repr::parse(&data, ChecksumMode::OFFLOAD);
            if let Some(q) = quoted_ipv4(&data) {
                prop_assert_eq!(q.payload.len(), 8);
            }
            let mut d = data.clone();
            if let Some(b) = d.first_mut() {
                *b = 0x40 | (*b & 0x0f);
            }
            let _ = quoted_ipv4(&d);
        }
    }
}
