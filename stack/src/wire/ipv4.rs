//! IPv4 header (RFC 791).

use super::{checksum, ChecksumMode, Ipv4Addr, WireError};

/// IP protocol numbers this stack uses (IANA "Assigned Internet Protocol Numbers").
pub mod ip_protocol {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Largest header: IHL 15.
pub const MAX_HEADER_LEN: usize = 60;

/// Byte offsets of the IPv4 header fields.
pub mod field {
    use core::ops::Range;
    /// Version (high nibble) and IHL (low nibble, in 32-bit words).
    pub const VER_IHL: usize = 0;
    /// DSCP (6 bits) and ECN (2 bits).
    pub const DSCP_ECN: usize = 1;
    /// Total length of header and payload.
    pub const TOTAL_LEN: Range<usize> = 2..4;
    /// Identification.
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (reserved, DF, MF) and fragment offset in 8-byte units.
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Range<usize> = 10..12;
    /// Source address.
    pub const SRC: Range<usize> = 12..16;
    /// Destination address.
    pub const DST: Range<usize> = 16..20;
}

/// Don't-fragment bit of the flags/fragment word.
const FLAG_DF: u16 = 0x4000;
/// More-fragments bit of the flags/fragment word.
const FLAG_MF: u16 = 0x2000;
/// Fragment offset mask of the flags/fragment word.
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A zero-copy view of an IPv4 packet.
///
/// Accessors may panic on a buffer shorter than the fixed header; use [`Ipv4Packet::new_checked`]
/// on untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after validating version, IHL and total length against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Ipv4Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Checks: at least 20 bytes (`Truncated`), version 4 and IHL >= 5 (`Malformed`), header
    /// length <= total length (`Malformed`), total length <= buffer (`Truncated`).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::Malformed);
        }
        let hl = self.header_len();
        let total = self.total_len() as usize;
        if hl < HEADER_LEN || total < hl {
            return Err(WireError::Malformed);
        }
        if total > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    fn read_u16(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }
    fn read_ip(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[r];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    /// Version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4, not validated).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    /// Total length field.
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::TOTAL_LEN)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT)
    }
    /// Don't-fragment flag.
    pub fn dont_fragment(&self) -> bool {
        self.read_u16(field::FLAGS_FRAG) & FLAG_DF != 0
    }
    /// More-fragments flag.
    pub fn more_fragments(&self) -> bool {
        self.read_u16(field::FLAGS_FRAG) & FLAG_MF != 0
    }
    /// Fragment offset in 8-byte units.
    pub fn fragment_offset(&self) -> u16 {
        self.read_u16(field::FLAGS_FRAG) & FRAG_OFFSET_MASK
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        self.read_ip(field::SRC)
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        self.read_ip(field::DST)
    }
    /// Option bytes (between the fixed header and IHL * 4).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        let h = &self.buffer.as_ref()[..self.header_len()];
        checksum::fold(checksum::sum(h, 0)) == 0xffff
    }
    /// The payload, bounded by the total length (so link-layer padding is excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn write_u16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }
    /// Sets the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }
    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        self.write_u16(field::TOTAL_LEN, v)
    }
    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        self.write_u16(field::IDENT, v)
    }
    /// Sets flags and fragment offset (in 8-byte units; bits above 13 are dropped).
    pub fn set_flags_and_offset(&mut self, df: bool, mf: bool, offset: u16) {
        let v = (offset & FRAG_OFFSET_MASK)
            | if df { FLAG_DF } else { 0 }
            | if mf { FLAG_MF } else { 0 };
        self.write_u16(field::FLAGS_FRAG, v)
    }
    /// Sets the time to live.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    /// Sets the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.write_u16(field::CHECKSUM, v)
    }
    /// Sets the source address.
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }
    /// Computes and stores the header checksum (over IHL * 4 bytes).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(c);
    }
    /// Decrements the TTL and patches the checksum incrementally (RFC 1624), for forwarding.
    /// Returns the new TTL; a TTL already at 0 stays 0.
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl();
        if ttl == 0 {
            return 0;
        }
        let old_word = u16::from_be_bytes([ttl, self.protocol()]);
        let new_word = u16::from_be_bytes([ttl - 1, self.protocol()]);
        self.set_ttl(ttl - 1);
        // HC' = ~(~HC + ~m + m') (RFC 1624 eqn. 3).
        let s = (!self.checksum()) as u32 + (!old_word) as u32 + new_word as u32;
        self.set_checksum(!checksum::fold(s));
        ttl - 1
    }
}

/// A parsed (or to-be-emitted) IPv4 header. Options are skipped on parse and never emitted.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol (see [`ip_protocol`]).
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_fragment: bool,
    /// More-fragments flag.
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units.
    pub fragment_offset: u16,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
    /// Payload length in bytes (total length minus header length).
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Parses a packet; returns the header and the payload bounded by the total length (any
    /// Ethernet padding after it is excluded). Options are skipped.
    ///
    /// Errors: see [`Ipv4Packet::check_len`]; a bad header checksum (only when `mode.verify_rx`)
    /// → `Checksum`.
    pub fn parse(packet: &[u8], mode: ChecksumMode) -> Result<(Ipv4Repr, &[u8]), WireError> {
        let p = Ipv4Packet::new_checked(packet)?;
        if mode.verify_rx && !p.verify_checksum() {
            return Err(WireError::Checksum);
        }
        let hl = p.header_len();
        let total = p.total_len() as usize;
        let repr = Ipv4Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            ident: p.ident(),
            dont_fragment: p.dont_fragment(),
            more_fragments: p.more_fragments(),
            fragment_offset: p.fragment_offset(),
            dscp_ecn: p.dscp_ecn(),
            payload_len: total - hl,
        };
        Ok((repr, &packet[hl..total]))
    }

    /// Whether this is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.fragment_offset != 0
    }

    /// Header length as emitted (always [`HEADER_LEN`]).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (no options) with total length `20 + payload_len`, and the header
    /// checksum when `mode.fill_tx` (else zero). A `payload_len` above 65515 is a caller bug; the
    /// total length field then wraps.
    ///
    /// # Panics
    /// If `buf` is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit(&self, buf: &mut [u8], mode: ChecksumMode) {
        debug_assert!(self.payload_len <= 0xffff - HEADER_LEN);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_version_and_header_len(HEADER_LEN);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len((HEADER_LEN + self.payload_len) as u16);
        p.set_ident(self.ident);
        p.set_flags_and_offset(
            self.dont_fragment,
            self.more_fragments,
            self.fragment_offset,
        );
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src(self.src);
        p.set_dst(self.dst);
        if mode.fill_tx {
            p.fill_checksum();
        } else {
            p.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A UDP packet header (the classic example with checksum b861), total length 0x73 = 115.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet_with_payload(hdr: &[u8], payload_len: usize, extra: usize) -> Vec<u8> {
        let mut v = hdr.to_vec();
        v.extend((0..payload_len).map(|i| i as u8));
        v.resize(v.len() + extra, 0xee);
        v
    }

    #[test]
    fn parses_header_field_by_field() {
        let pkt = packet_with_payload(&HDR, 95, 0);
        let (r, payload) = Ipv4Repr::parse(&pkt, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(r.src, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(r.dst, Ipv4Addr::new(192, 168, 0, 199));
        assert_eq!(r.protocol, ip_protocol::UDP);
        assert_eq!(r.ttl, 64);
        assert_eq!(r.ident, 0);
        assert!(r.dont_fragment);
        assert!(!r.more_fragments);
        assert_eq!(r.fragment_offset, 0);
        assert!(!r.is_fragment());
        assert_eq!(r.dscp_ecn, 0);
        assert_eq!(r.payload_len, 95);
        assert_eq!(payload.len(), 95);
        assert_eq!(payload[0], 0);
        // Emitting reproduces the header byte for byte, checksum included.
        let mut out = [0u8; 20];
        r.emit(&mut out, ChecksumMode::SOFTWARE);
        assert_eq!(out, HDR);
        r.emit(&mut out, ChecksumMode::OFFLOAD);
        assert_eq!(&out[10..12], &[0, 0]);
    }

    #[test]
    fn ethernet_padding_excluded() {
        // A 20-byte packet carrying 6 bytes, padded to 46 bytes by Ethernet.
        let r = Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: ip_protocol::TCP,
            ttl: 64,
            ident: 7,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            dscp_ecn: 0,
            payload_len: 6,
        };
        let mut frame = [0u8; 46];
        r.emit(&mut frame, ChecksumMode::SOFTWARE);
        frame[20..26].copy_from_slice(b"abcdef");
        let (back, payload) = Ipv4Repr::parse(&frame, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(back, r);
        assert_eq!(payload, b"abcdef");
        let p = Ipv4Packet::new_checked(&frame[..]).unwrap();
        assert_eq!(p.payload(), b"abcdef");
    }

    #[test]
    fn options_skipped() {
        // IHL 6: one option word (NOP, NOP, NOP, EOL), total length 24 + 4.
        let mut h = vec![
            0x46, 0x10, 0x00, 28, 0x12, 0x34, 0x20, 0x05, 0x01, 0x06, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
            1, 1, 1, 0,
        ];
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(b"wxyz");
        let (r, payload) = Ipv4Repr::parse(&h, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(payload, b"wxyz");
        assert_eq!(r.payload_len, 4);
        assert_eq!(r.dscp_ecn, 0x10);
        assert_eq!(r.ident, 0x1234);
        assert!(r.more_fragments && !r.dont_fragment);
        assert_eq!(r.fragment_offset, 5);
        assert!(r.is_fragment());
        assert_eq!(r.ttl, 1);
        assert_eq!(r.protocol, ip_protocol::TCP);
        let p = Ipv4Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        // Header checksum covers the options.
        h[21] = 0x44;
        assert_eq!(
            Ipv4Repr::parse(&h, ChecksumMode::SOFTWARE),
            Err(WireError::Checksum)
        );
        assert!(Ipv4Repr::parse(&h, ChecksumMode::OFFLOAD).is_ok());
    }

    #[test]
    fn malformed_and_truncated() {
        let pkt = packet_with_payload(&HDR, 95, 0);
        let off = ChecksumMode::OFFLOAD;
        assert_eq!(Ipv4Repr::parse(&pkt[..19], off), Err(WireError::Truncated));
        // Total length claims more than the buffer.
        assert_eq!(Ipv4Repr::parse(&pkt[..114], off), Err(WireError::Truncated));
        // Version 6.
        let mut p = pkt.clone();
        p[0] = 0x65;
        assert_eq!(Ipv4Repr::parse(&p, off), Err(WireError::Malformed));
        // IHL 4.
        let mut p = pkt.clone();
        p[0] = 0x44;
        assert_eq!(Ipv4Repr::parse(&p, off), Err(WireError::Malformed));
        // Total length below the header length.
        let mut p = pkt.clone();
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Repr::parse(&p, off), Err(WireError::Malformed));
        // IHL 15 (60 bytes) with total length 40: malformed.
        let mut p = pkt.clone();
        p[0] = 0x4f;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(Ipv4Repr::parse(&p, off), Err(WireError::Malformed));
        // Bad checksum.
        let mut p = pkt.clone();
        p[8] = 63;
        assert_eq!(
            Ipv4Repr::parse(&p, ChecksumMode::SOFTWARE),
            Err(WireError::Checksum)
        );
        // Header-only packet is fine, with an empty payload.
        let mut p = HDR;
        p[2..4].copy_from_slice(&20u16.to_be_bytes());
        let (r, payload) = Ipv4Repr::parse(&p, off).unwrap();
        assert_eq!(r.payload_len, 0);
        assert!(payload.is_empty());
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut h = HDR;
        let mut p = Ipv4Packet::new_unchecked(&mut h[..]);
        assert_eq!(p.decrement_ttl(), 63);
        assert!(p.verify_checksum());
        let mut copy = h;
        let mut q = Ipv4Packet::new_unchecked(&mut copy[..]);
        q.fill_checksum();
        assert_eq!(copy, h);
    }

    prop_compose! {
        fn arb_repr()(src in any::<u32>(), dst in any::<u32>(), protocol in any::<u8>(), ttl in any::<u8>(),
                      ident in any::<u16>(), dont_fragment in any::<bool>(), more_fragments in any::<bool>(),
                      fragment_offset in 0u16..0x2000, dscp_ecn in any::<u8>(), payload_len in 0usize..200) -> Ipv4Repr {
            Ipv4Repr { src: Ipv4Addr::from(src), dst: Ipv4Addr::from(dst), protocol, ttl, ident,
                       dont_fragment, more_fragments, fragment_offset, dscp_ecn, payload_len }
        }
    }

    proptest! {
        #[test]
        fn roundtrip(r in arb_repr(), pad in 0usize..30) {
            let mut buf = vec![0x5au8; r.buffer_len() + pad];
            r.emit(&mut buf, ChecksumMode::SOFTWARE);
            let (back, payload) = Ipv4Repr::parse(&buf, ChecksumMode::SOFTWARE).unwrap();
            prop_assert_eq!(back, r);
            prop_assert_eq!(payload.len(), r.payload_len);
            prop_assert_eq!(checksum::checksum(&buf[..20]), 0);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Ipv4Repr::parse(&data, ChecksumMode::SOFTWARE);
            if let Ok((r, p)) = Ipv4Repr::parse(&data, ChecksumMode::OFFLOAD) {
                prop_assert_eq!(p.len(), r.payload_len);
            }
        }

        #[test]
        fn parse_never_panics_plausible(mut data in proptest::collection::vec(any::<u8>(), 20..100),
                                        ihl in 0u8..16, total in 0u16..120) {
            data[0] = 0x40 | ihl;
            data[2..4].copy_from_slice(&total.to_be_bytes());
            if let Ok((r, p)) = Ipv4Repr::parse(&data, ChecksumMode::OFFLOAD) {
                prop_assert_eq!(p.len(), r.payload_len);
                prop_assert_eq!(r.payload_len + ihl as usize * 4, total as usize);
            }
        }
    }
}
