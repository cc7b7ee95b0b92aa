//! Ethernet II frames (IEEE 802.3) with an optional 802.1Q VLAN tag.

use super::WireError;
use core::fmt;
use core::str::FromStr;

/// A 48-bit Ethernet MAC address.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    /// The all-zero address (used as "unknown" target in ARP requests).
    pub const UNSPECIFIED: EthernetAddress = EthernetAddress([0; 6]);

    /// Reads an address from the first six bytes of `b`; `None` when `b` is shorter.
    pub fn from_bytes(b: &[u8]) -> Option<EthernetAddress> {
        let a: [u8; 6] = b.get(..6)?.try_into().ok()?;
        Some(EthernetAddress(a))
    }
    /// The six address bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }
    /// Whether this is ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    /// Whether the group bit is set (this includes broadcast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
    /// Whether this is an individual (non-group) address.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
    /// Whether the locally-administered bit is set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            a[0], a[1], a[2], a[3], a[4], a[5]
        )
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error of [`EthernetAddress::from_str`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ParseEthernetAddressError;

impl fmt::Display for ParseEthernetAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address (expected six hex pairs like 02:00:00:00:00:01)")
    }
}

impl std::error::Error for ParseEthernetAddressError {}

impl FromStr for EthernetAddress {
    type Err = ParseEthernetAddressError;

    /// Parses six two-digit hex groups separated by `:` or `-` (one separator kind throughout).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split(sep) {
            if n == 6 || part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseEthernetAddressError);
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| ParseEthernetAddressError)?;
            n += 1;
        }
        if n != 6 {
            return Err(ParseEthernetAddressError);
        }
        Ok(EthernetAddress(out))
    }
}

/// EtherType values this stack knows (IEEE registry).
pub struct EtherType;

impl EtherType {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IPv6 (recognised only to be counted and dropped).
    pub const IPV6: u16 = 0x86dd;
}

/// Byte offsets of the Ethernet header fields.
pub mod field {
    use core::ops::Range;
    /// Destination address.
    pub const DST: Range<usize> = 0..6;
    /// Source address.
    pub const SRC: Range<usize> = 6..12;
    /// EtherType (or TPID 0x8100 when tagged).
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// Tag control information of an 802.1Q tag (PCP, DEI, VID).
    pub const VLAN_TCI: Range<usize> = 14..16;
    /// Inner EtherType of a tagged frame.
    pub const VLAN_ETHERTYPE: Range<usize> = 16..18;
}

/// Untagged header length.
pub const HEADER_LEN: usize = 14;
/// Header length with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

/// A zero-copy view of an Ethernet frame.
///
/// Accessors may panic on a buffer shorter than the header; use [`EthernetFrame::new_checked`]
/// on untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }
    /// Wraps a buffer after checking it holds the full header (including a VLAN tag if present).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let f = EthernetFrame { buffer };
        let len = f.buffer.as_ref().len();
        if len < HEADER_LEN || len < f.header_len() {
            return Err(WireError::Truncated);
        }
        Ok(f)
    }
    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    fn read_u16(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// Destination address.
    pub fn dst(&self) -> EthernetAddress {
        let b = &self.buffer.as_ref()[field::DST];
        EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]])
    }
    /// Source address.
    pub fn src(&self) -> EthernetAddress {
        let b = &self.buffer.as_ref()[field::SRC];
        EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]])
    }
    /// The outer EtherType field (0x8100 for a tagged frame).
    pub fn outer_ethertype(&self) -> u16 {
        self.read_u16(field::ETHERTYPE)
    }
    /// Whether the frame carries an 802.1Q tag.
    pub fn is_tagged(&self) -> bool {
        self.outer_ethertype() == EtherType::VLAN
    }
    /// VLAN id (TCI & 0x0fff) of a tagged frame.
    pub fn vlan_id(&self) -> Option<u16> {
        if self.is_tagged() {
            Some(self.read_u16(field::VLAN_TCI) & 0x0fff)
        } else {
            None
        }
    }
    /// The EtherType of the payload (the inner one for a tagged frame).
    pub fn ethertype(&self) -> u16 {
        if self.is_tagged() {
            self.read_u16(field::VLAN_ETHERTYPE)
        } else {
            self.outer_ethertype()
        }
    }
    /// Header length: 14, or 18 with a VLAN tag.
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
    /// The payload after the header (including any padding to the minimum frame size).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }
    /// Sets the source address.
    pub fn set_src(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }
    /// Sets the outer EtherType field.
    pub fn set_outer_ethertype(&mut self, t: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&t.to_be_bytes());
    }
    /// Sets the TCI of the 802.1Q tag (the outer EtherType must be 0x8100).
    pub fn set_vlan_tci(&mut self, tci: u16) {
        self.buffer.as_mut()[field::VLAN_TCI].copy_from_slice(&tci.to_be_bytes());
    }
    /// Sets the inner EtherType of a tagged frame.
    pub fn set_inner_ethertype(&mut self, t: u16) {
        self.buffer.as_mut()[field::VLAN_ETHERTYPE].copy_from_slice(&t.to_be_bytes());
    }
    /// Mutable payload after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// A parsed (or to-be-emitted) Ethernet header.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct EthernetRepr {
    /// Destination address.
    pub dst: EthernetAddress,
    /// Source address.
    pub src: EthernetAddress,
    /// EtherType of the payload (the inner one when tagged).
    pub ethertype: u16,
    /// VLAN id (0..=4095) when the frame carries an 802.1Q tag. Priority bits are not kept.
    pub vlan: Option<u16>,
}

impl EthernetRepr {
    /// Parses a frame; returns the header and the payload (which may include padding).
    /// Only one 802.1Q tag is interpreted; a stacked (QinQ) inner tag shows up as ethertype
    /// 0x8100 for the caller to drop.
    pub fn parse(frame: &[u8]) -> Result<(EthernetRepr, &[u8]), WireError> {
        let f = EthernetFrame::new_checked(frame)?;
        let repr = EthernetRepr {
            dst: f.dst(),
            src: f.src(),
            ethertype: f.ethertype(),
            vlan: f.vlan_id(),
        };
        Ok((repr, &frame[f.header_len()..]))
    }

    /// Header length: 14, or 18 when `vlan` is set.
    pub fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header (with the tag when `vlan` is set, priority 0) and returns its length.
    ///
    /// # Panics
    /// If `buf` is shorter than [`EthernetRepr::header_len`]; the stack always sizes it.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let hl = self.header_len();
        let mut f = EthernetFrame::new_unchecked(&mut buf[..hl]);
        f.set_dst(self.dst);
        f.set_src(self.src);
        match self.vlan {
            Some(vid) => {
                f.set_outer_ethertype(EtherType::VLAN);
                f.set_vlan_tci(vid & 0x0fff);
                f.set_inner_ethertype(self.ethertype);
            }
            None => f.set_outer_ethertype(self.ethertype),
        }
        hl
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
    const B: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

    #[test]
    fn address_classes_and_text() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress::BROADCAST.is_unicast());
        let mcast = EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast());
        assert!(A.is_unicast() && A.is_local());
        assert!(!B.is_multicast());
        assert_eq!(B.to_string(), "52:54:00:ab:cd:ef");
        assert_eq!(format!("{:?}", A), "02:00:00:00:00:01");
        assert_eq!("52:54:00:AB:cd:ef".parse::<EthernetAddress>(), Ok(B));
        assert_eq!("52-54-00-ab-cd-ef".parse::<EthernetAddress>(), Ok(B));
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52:54:00:ab:cd:e",
            "52:54:00:ab:cd:eg",
            "52:54-00:ab:cd:ef",
            "+5:54:00:ab:cd:ef",
            "052:54:00:ab:cd:ef",
        ] {
            assert_eq!(
                bad.parse::<EthernetAddress>(),
                Err(ParseEthernetAddressError),
                "{bad}"
            );
        }
        assert_eq!(EthernetAddress::from_bytes(&[1, 2, 3, 4, 5]), None);
        assert_eq!(
            EthernetAddress::from_bytes(&[1, 2, 3, 4, 5, 6, 7]),
            Some(EthernetAddress([1, 2, 3, 4, 5, 6]))
        );
    }

    #[test]
    fn parses_untagged_frame() {
        let mut frame = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        frame.extend_from_slice(&B.0);
        frame.extend_from_slice(&[0x08, 0x06]);
        frame.extend_from_slice(&[0xaa; 28]);
        let (r, payload) = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(r.dst, EthernetAddress::BROADCAST);
        assert_eq!(r.src, B);
        assert_eq!(r.ethertype, EtherType::ARP);
        assert_eq!(r.vlan, None);
        assert_eq!(payload, &[0xaa; 28][..]);
        let mut out = [0u8; 14];
        assert_eq!(r.emit(&mut out), 14);
        assert_eq!(&out[..], &frame[..14]);
    }

    #[test]
    fn parses_8021q_tag() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&A.0);
        frame.extend_from_slice(&B.0);
        // TPID 8100, TCI: PCP 5, DEI 1, VID 0x123; inner type IPv4.
        frame.extend_from_slice(&[0x81, 0x00, 0xb1, 0x23, 0x08, 0x00]);
        frame.extend_from_slice(b"payload");
        let (r, payload) = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(r.vlan, Some(0x123));
        assert_eq!(r.ethertype, EtherType::IPV4);
        assert_eq!(r.header_len(), 18);
        assert_eq!(payload, b"payload");
        let mut out = [0u8; 18];
        assert_eq!(r.emit(&mut out), 18);
        // Priority and DEI are not kept; the VID and inner type are.
        assert_eq!(&out[12..18], &[0x81, 0x00, 0x01, 0x23, 0x08, 0x00]);
        // A tagged frame cut inside the tag is truncated.
        assert_eq!(EthernetRepr::parse(&frame[..17]), Err(WireError::Truncated));
        assert_eq!(EthernetRepr::parse(&frame[..13]), Err(WireError::Truncated));
        assert!(EthernetRepr::parse(&frame[..18]).unwrap().1.is_empty());
    }

    proptest! {
        #[test]
        fn roundtrip(dst in any::<[u8; 6]>(), src in any::<[u8; 6]>(), ethertype in any::<u16>(),
                     vlan in proptest::option::of(0u16..4096), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            // An untagged frame whose type is 0x8100 would read back as tagged; skip that case.
            prop_assume!(vlan.is_some() || ethertype != EtherType::VLAN);
            let r = EthernetRepr { dst: EthernetAddress(dst), src: EthernetAddress(src), ethertype, vlan };
            let mut buf = vec![0u8; r.header_len() + payload.len()];
            let hl = r.emit(&mut buf);
            buf[hl..].copy_from_slice(&payload);
            let (back, p) = EthernetRepr::parse(&buf).unwrap();
            prop_assert_eq!(back, r);
            prop_assert_eq!(p, &payload[..]);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok((r, p)) = EthernetRepr::parse(&data) {
                prop_assert_eq!(r.header_len() + p.len(), data.len());
            }
        }

        #[test]
        fn display_parses_back(a in any::<[u8; 6]>()) {
            let a = EthernetAddress(a);
            prop_assert_eq!(a.to_string().parse::<EthernetAddress>(), Ok(a));
        }
    }
}
