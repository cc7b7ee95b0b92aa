//! UDP header (RFC 768).

use super::{checksum, ChecksumMode, Ipv4Addr, WireError};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// IP protocol number of UDP, used in the pseudo-header.
const PROTOCOL_UDP: u8 = 17;

/// Byte offsets of the UDP header fields.
pub mod field {
    use core::ops::Range;
    /// Source port.
    pub const SRC_PORT: Range<usize> = 0..2;
    /// Destination port.
    pub const DST_PORT: Range<usize> = 2..4;
    /// Length of header and payload.
    pub const LENGTH: Range<usize> = 4..6;
    /// Checksum (0: none).
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A zero-copy view of a UDP datagram.
///
/// Accessors may panic on a buffer shorter than 8 bytes; use [`UdpPacket::new_checked`] on
/// untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    /// Wraps a buffer after checking: at least 8 bytes and length field <= buffer (`Truncated`),
    /// length field >= 8 (`Malformed`).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = UdpPacket { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let l = p.len() as usize;
        if l < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if l > len {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }
    fn read_u16(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }
    /// Length field (header plus payload).
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }
    /// Whether the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }
    /// The payload, bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Whether the checksum verifies over the datagram bounded by the length field. A zero
    /// checksum field means "not computed" and verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = &self.buffer.as_ref()[..self.len() as usize];
        let ph = checksum::pseudo_header(src, dst, PROTOCOL_UDP, d.len() as u32);
        checksum::fold(checksum::sum(d, ph)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    fn write_u16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        self.write_u16(field::SRC_PORT, v)
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.write_u16(field::DST_PORT, v)
    }
    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        self.write_u16(field::LENGTH, v)
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.write_u16(field::CHECKSUM, v)
    }
    /// Computes and stores the checksum over the whole buffer (which must be exactly the
    /// datagram); a computed 0 is sent as 0xffff since 0 means "none" (RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, PROTOCOL_UDP, b.len() as u32);
        let c = !checksum::fold(checksum::sum(b, ph));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
    /// Stores only the folded, non-inverted pseudo-header sum (over the buffer length) in the
    /// checksum field, for NICs with partial UDP checksum offload.
    pub fn fill_pseudo_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.buffer.as_ref().len() as u32;
        let ph = checksum::pseudo_header(src, dst, PROTOCOL_UDP, len);
        self.set_checksum(checksum::fold(ph));
    }
}

/// A parsed (or to-be-emitted) UDP header.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a datagram (the IPv4 payload) sent from `src` to `dst`; returns the header and the
    /// payload bounded by the length field.
    ///
    /// Errors: see [`UdpPacket::new_checked`]; a non-zero checksum that fails (only when
    /// `mode.verify_rx`) → `Checksum`.
    pub fn parse(
        datagram: &[u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) -> Result<(UdpRepr, &[u8]), WireError> {
        let p = UdpPacket::new_checked(datagram)?;
        if mode.verify_rx && !p.verify_checksum(src, dst) {
            return Err(WireError::Checksum);
        }
        let repr = UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        };
        Ok((repr, &datagram[HEADER_LEN..p.len() as usize]))
    }

    /// Header plus payload length.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header in front of a payload already at `buf[8..8 + payload_len]`, and the
    /// checksum when `mode.fill_tx` (else 0, "none"). A `payload_len` above 65527 is a caller bug.
    ///
    /// # Panics
    /// If `buf` is shorter than `8 + payload_len`.
    pub fn emit(
        &self,
        buf: &mut [u8],
        payload_len: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) {
        debug_assert!(payload_len <= 0xffff - HEADER_LEN);
        let total = HEADER_LEN + payload_len;
        let mut p = UdpPacket::new_unchecked(&mut buf[..total]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(total as u16);
        if mode.fill_tx {
            p.fill_checksum(src, dst);
        } else {
            p.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    fn ref_checksum(src: Ipv4Addr, dst: Ipv4Addr, d: &[u8]) -> u16 {
        let mut b = Vec::new();
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&dst.octets());
        b.extend_from_slice(&[0, 17]);
        b.extend_from_slice(&(d.len() as u16).to_be_bytes());
        b.extend_from_slice(d);
        let mut s: u32 = 0;
        for w in b.chunks(2) {
            s += u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn dns_query() -> Vec<u8> {
        // 53000 -> 53, length 8 + 5, payload "query".
        let mut v = vec![0xcf, 0x08, 0x00, 0x35, 0x00, 13, 0, 0];
        v.extend_from_slice(b"query");
        let c = ref_checksum(SRC, DST, &v);
        v[6..8].copy_from_slice(&c.to_be_bytes());
        v
    }

    #[test]
    fn parses_field_by_field() {
        let mut d = dns_query();
        // Trailing bytes beyond the length field (e.g. IP padding) are excluded.
        d.extend_from_slice(&[0xee; 3]);
        let (r, payload) = UdpRepr::parse(&d, SRC, DST, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(r.src_port, 53000);
        assert_eq!(r.dst_port, 53);
        assert_eq!(payload, b"query");
        let mut out = vec![0u8; 13];
        out[8..].copy_from_slice(b"query");
        r.emit(&mut out, 5, SRC, DST, ChecksumMode::SOFTWARE);
        assert_eq!(&out[..], &d[..13]);
        r.emit(&mut out, 5, SRC, DST, ChecksumMode::OFFLOAD);
        assert_eq!(&out[6..8], &[0, 0]);
    }

    #[test]
    fn zero_checksum_means_none_and_failures_detected() {
        let mut d = dns_query();
        d[6] = 0;
        d[7] = 0;
        assert!(UdpRepr::parse(&d, SRC, DST, ChecksumMode::SOFTWARE).is_ok());
        let mut d = dns_query();
        d[9] ^= 1;
        assert_eq!(
            UdpRepr::parse(&d, SRC, DST, ChecksumMode::SOFTWARE),
            Err(WireError::Checksum)
        );
        assert!(UdpRepr::parse(&d, SRC, DST, ChecksumMode::OFFLOAD).is_ok());
        assert_eq!(
            UdpRepr::parse(&dns_query(), DST, SRC, ChecksumMode::SOFTWARE).map(|r| r.0),
            Ok(UdpRepr {
                src_port: 53000,
                dst_port: 53
            }),
            "swapping addresses keeps the pseudo-header sum"
        );
        assert_eq!(
            UdpRepr::parse(&dns_query(), SRC, SRC, ChecksumMode::SOFTWARE),
            Err(WireError::Checksum)
        );
    }

    #[test]
    fn computed_zero_sent_as_ffff() {
        // Find a payload word that makes the computed checksum zero: choose it so that the sum of
        // everything else plus it is 0xffff.
        let r = UdpRepr {
            src_port: 1,
            dst_port: 2,
        };
        let mut buf = [0u8; 10];
        r.emit(&mut buf, 2, SRC, DST, ChecksumMode::OFFLOAD);
        let partial = checksum::fold(checksum::sum(
            &buf,
            checksum::pseudo_header(SRC, DST, 17, 10),
        ));
        buf[8..10].copy_from_slice(&(0xffff - partial).to_be_bytes());
        r.emit(&mut buf, 2, SRC, DST, ChecksumMode::SOFTWARE);
        assert_eq!(&buf[6..8], &[0xff, 0xff]);
        assert!(UdpRepr::parse(&buf, SRC, DST, ChecksumMode::SOFTWARE).is_ok());
    }

    #[test]
    fn malformed_and_truncated() {
        let d = dns_query();
        let off = ChecksumMode::OFFLOAD;
        assert_eq!(
            UdpRepr::parse(&d[..7], SRC, DST, off),
            Err(WireError::Truncated)
        );
        assert_eq!(
            UdpRepr::parse(&d[..12], SRC, DST, off),
            Err(WireError::Truncated)
        );
        let mut m = d.clone();
        m[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpRepr::parse(&m, SRC, DST, off), Err(WireError::Malformed));
        m[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(UdpRepr::parse(&m, SRC, DST, off).unwrap().1, b"");
    }

    proptest! {
        #[test]
        fn roundtrip(sp in any::<u16>(), dp in any::<u16>(), src in any::<u32>(), dst in any::<u32>(),
                     payload in proptest::collection::vec(any::<u8>(), 0..100)) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let r = UdpRepr { src_port: sp, dst_port: dp };
            let mut buf = vec![0u8; r.buffer_len(payload.len())];
            buf[8..].copy_from_slice(&payload);
            r.emit(&mut buf, payload.len(), src, dst, ChecksumMode::SOFTWARE);
            prop_assert_ne!(&buf[6..8], &[0, 0]);
            let rc = ref_checksum(src, dst, &buf);
            prop_assert!(rc == 0 || rc == 0xffff);
            let (back, p) = UdpRepr::parse(&buf, src, dst, ChecksumMode::SOFTWARE).unwrap();
            prop_assert_eq!(back, r);
            prop_assert_eq!(p, &payload[..]);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = UdpRepr::parse(&data, SRC, DST, ChecksumMode::SOFTWARE);
            if let Ok((_, p)) = UdpRepr::parse(&data, SRC, DST, ChecksumMode::OFFLOAD) {
                prop_assert!(p.len() + 8 <= data.len());
            }
        }
    }
}
