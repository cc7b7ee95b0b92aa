//! TCP header and options (RFC 9293, RFC 7323, RFC 2018).

use super::{checksum, ChecksumMode, Ipv4Addr, WireError};
use crate::tcp::seq::SeqNumber;

/// TCP control flags as a bit set (the low 8 bits of the flags byte).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// No flags.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }
    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Union of two flag sets.
    pub const fn union(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }
    /// `self` with `other` added.
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }
    /// `self` with `other` removed.
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
    /// SYN set.
    pub const fn syn(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// ACK set.
    pub const fn ack(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// FIN set.
    pub const fn fin(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// RST set.
    pub const fn rst(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// PSH set.
    pub const fn psh(self) -> bool {
        self.0 & 0x08 != 0
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        self.union(rhs)
    }
}

impl core::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        for (i, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// Up to four SACK blocks `[left, right)` (RFC 2018). With timestamps, at most three fit.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct SackBlocks {
    /// Number of valid entries in `blocks`.
    pub len: u8,
    /// The blocks; entries at index >= `len` are meaningless.
    pub blocks: [(SeqNumber, SeqNumber); 4],
}

impl SackBlocks {
    /// The valid blocks.
    pub fn as_slice(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.blocks[..self.len as usize]
    }
    /// Append a block; returns false (and does nothing) when all four slots are used.
    pub fn push(&mut self, left: SeqNumber, right: SeqNumber) -> bool {
        if self.len as usize >= self.blocks.len() {
            return false;
        }
        self.blocks[self.len as usize] = (left, right);
        self.len += 1;
        true
    }
    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The TCP options this stack understands. Unknown options are skipped on parse.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct TcpOptions {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift count (SYN only), as sent (the receiver clamps it to 14).
    pub window_scale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
    /// Timestamps: (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks.
    pub sack: SackBlocks,
}

/// A parsed (or to-be-emitted) TCP segment header plus its payload.
///
/// `window` is the raw 16-bit field; scaling is the connection's business.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the first octet (or of the SYN).
    pub seq: SeqNumber,
    /// Acknowledgment number; meaningful only when `flags` has ACK.
    pub ack: SeqNumber,
    /// Control flags.
    pub flags: TcpFlags,
    /// Raw window field.
    pub window: u16,
    /// Urgent pointer (parsed, otherwise ignored by this stack).
    pub urgent: u16,
    /// Options.
    pub options: TcpOptions,
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Sequence space this segment occupies: payload plus one each for SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len() + self.flags.syn() as usize + self.flags.fin() as usize
    }
}

/// Byte offsets of the fixed TCP header fields (RFC 9293 section 3.1).
pub mod field {
    use core::ops::Range;
    /// Source port.
    pub const SRC_PORT: Range<usize> = 0..2;
    /// Destination port.
    pub const DST_PORT: Range<usize> = 2..4;
    /// Sequence number.
    pub const SEQ: Range<usize> = 4..8;
    /// Acknowledgment number.
    pub const ACK: Range<usize> = 8..12;
    /// Data offset (high nibble, in 32-bit words) and reserved bits.
    pub const DATA_OFFSET: usize = 12;
    /// Control flags (CWR..FIN).
    pub const FLAGS: usize = 13;
    /// Window.
    pub const WINDOW: Range<usize> = 14..16;
    /// Checksum.
    pub const CHECKSUM: Range<usize> = 16..18;
    /// Urgent pointer.
    pub const URGENT: Range<usize> = 18..20;
    /// First option byte.
    pub const OPTIONS: usize = 20;
}

/// TCP option kinds (IANA "TCP Option Kind Numbers").
pub mod option_kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size (length 4).
    pub const MSS: u8 = 2;
    /// Window scale (length 3).
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted (length 2).
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks (length 2 + 8n).
    pub const SACK: u8 = 5;
    /// Timestamps (length 10).
    pub const TIMESTAMPS: u8 = 8;
}

/// Length of the fixed TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Largest TCP header: data offset 15 words.
pub const MAX_HEADER_LEN: usize = 60;
/// IP protocol number of TCP, used in the pseudo-header.
const PROTOCOL_TCP: u8 = 6;

/// A zero-copy view of a TCP segment (header plus payload).
///
/// Accessors read fields in place. They may panic on a buffer shorter than the fixed header; use
/// [`TcpPacket::new_checked`] on untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after checking that it holds the fixed header and the header length the
    /// data offset field claims (which must be at least 20 bytes).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = TcpPacket { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Validates the buffer length against the data offset field.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if hl > b.len() {
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

    fn read_u32(&self, r: core::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }
    /// Sequence number.
    pub fn seq(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::SEQ))
    }
    /// Acknowledgment number.
    pub fn ack(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::ACK))
    }
    /// Header length in bytes, from the data offset field (not validated).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::DATA_OFFSET] >> 4) as usize) * 4
    }
    /// Control flags (the NS bit, RFC 3540, historic, is not included).
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }
    /// Raw window field.
    pub fn window(&self) -> u16 {
        self.read_u16(field::WINDOW)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        self.read_u16(field::URGENT)
    }
    /// The option bytes (between the fixed header and the data offset).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }
    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Whether the checksum over pseudo-header and segment verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buffer.as_ref();
        checksum::fold_with_pseudo_header(b, src, dst, PROTOCOL_TCP) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn write_u16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    fn write_u32(&mut self, r: core::ops::Range<usize>, v: u32) {
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
    /// Sets the sequence number.
    pub fn set_seq(&mut self, v: SeqNumber) {
        self.write_u32(field::SEQ, v.0)
    }
    /// Sets the acknowledgment number.
    pub fn set_ack(&mut self, v: SeqNumber) {
        self.write_u32(field::ACK, v.0)
    }
    /// Sets the header length in bytes (a multiple of 4, 20..=60); clears the reserved bits.
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFFSET] = ((len / 4) as u8) << 4;
    }
    /// Sets the control flags.
    pub fn set_flags(&mut self, f: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = f.0;
    }
    /// Sets the window field.
    pub fn set_window(&mut self, v: u16) {
        self.write_u16(field::WINDOW, v)
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.write_u16(field::CHECKSUM, v)
    }
    /// Sets the urgent pointer.
    pub fn set_urgent(&mut self, v: u16) {
        self.write_u16(field::URGENT, v)
    }
    /// Computes and stores the checksum over pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, PROTOCOL_TCP, b.len() as u32);
        let c = !checksum::fold(checksum::sum(b, ph));
        self.set_checksum(c);
    }
}

impl TcpOptions {
    /// Parses the option bytes of a TCP header (after the fixed 20 bytes).
    ///
    /// EOL ends the list; NOP is skipped; unknown kinds are skipped by their length. A known
    /// kind with a wrong length is ignored like an unknown one (as Linux does). A length below 2 or
    /// one that runs past the end of the options is `Malformed`. A repeated option overrides the
    /// earlier one.
    #[inline]
    pub fn parse(opts: &[u8]) -> Result<TcpOptions, WireError> {
        // Every segment of an established connection with timestamps (Linux, and this stack)
        // carries exactly NOP, NOP, TS: answered here without the general loop.
        match Self::nop_nop_timestamps(opts) {
            Some(ts) => Ok(TcpOptions {
                timestamps: Some(ts),
                ..TcpOptions::default()
            }),
            None => Self::parse_general(opts),
        }
    }

    /// The (TSval, TSecr) of an option list that is exactly NOP, NOP, TS (12 bytes, the layout of
    /// every established-state segment from Linux and from [`TcpOptions::emit`]); `None` for any
    /// other list. Where it answers, [`Self::parse_general`] gives the same timestamps and
    /// nothing else.
    #[inline(always)]
    fn nop_nop_timestamps(opts: &[u8]) -> Option<(u32, u32)> {
        use option_kind::{NOP, TIMESTAMPS};
        let o: &[u8; 12] = opts.try_into().ok()?;
        let [a, b, c, d, e, f, g, h, i, j, k, l] = *o;
        if [a, b, c, d] != [NOP, NOP, TIMESTAMPS, 10] {
            return None;
        }
        Some((
            u32::from_be_bytes([e, f, g, h]),
            u32::from_be_bytes([i, j, k, l]),
        ))
    }

    /// The general option parser behind [`Self::parse`] (any layout), out of line.
    #[inline(never)]
    fn parse_general(mut opts: &[u8]) -> Result<TcpOptions, WireError> {
        let mut out = TcpOptions::default();
        while let Some(&kind) = opts.first() {
            match kind {
                option_kind::EOL => break,
                option_kind::NOP => {
                    opts = &opts[1..];
                    continue;
                }
                _ => {}
            }
            let len = match opts.get(1) {
                Some(&l) => l as usize,
                None => return Err(WireError::Malformed),
            };
            if len < 2 || len > opts.len() {
                return Err(WireError::Malformed);
            }
            let body = &opts[2..len];
            match (kind, len) {
                (option_kind::MSS, 4) => out.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                (option_kind::WINDOW_SCALE, 3) => out.window_scale = Some(body[0]),
                (option_kind::SACK_PERMITTED, 2) => out.sack_permitted = true,
                (option_kind::TIMESTAMPS, 10) => {
                    let tsval = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let tsecr = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    out.timestamps = Some((tsval, tsecr));
                }
                (option_kind::SACK, _) if (len - 2) % 8 == 0 && (10..=34).contains(&len) => {
                    let mut sack = SackBlocks::default();
                    for b in body.chunks_exact(8) {
                        let left = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        let right = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                        sack.push(SeqNumber(left), SeqNumber(right));
                    }
                    out.sack = sack;
                }
                _ => {}
            }
            opts = &opts[len..];
        }
        Ok(out)
    }

    /// Number of SACK blocks that [`TcpOptions::emit`] will write: the requested ones, cut to what
    /// fits in the 40 option bytes after the other options.
    pub fn sack_blocks_emitted(&self) -> usize {
        let wanted = (self.sack.len as usize).min(self.sack.blocks.len());
        if wanted == 0 {
            return 0;
        }
        let room = 40 - self.len_without_sack();
        if room < 12 {
            return 0;
        }
        wanted.min((room - 4) / 8)
    }

    /// Bytes of the non-SACK options as laid out by [`TcpOptions::emit`] (always a multiple of 4).
    fn len_without_sack(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.timestamps.is_some() {
            // SACKOK,TS or NOP,NOP,TS.
            n += 12;
        } else if self.sack_permitted {
            // NOP,NOP,SACKOK.
            n += 4;
        }
        if self.window_scale.is_some() {
            // NOP,WS.
            n += 4;
        }
        n
    }

    /// Length in bytes of the options as emitted: a multiple of 4, at most 40.
    pub fn buffer_len(&self) -> usize {
        let sack = self.sack_blocks_emitted();
        self.len_without_sack() + if sack > 0 { 4 + 8 * sack } else { 0 }
    }

    /// Writes the options in Linux's order and padding: MSS; SACKOK+TS (or NOP,NOP,TS, or
    /// NOP,NOP,SACKOK); NOP,WS; NOP,NOP,SACK. Returns the bytes written ([`TcpOptions::buffer_len`]).
    ///
    /// # Panics
    /// If `buf` is shorter than [`TcpOptions::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let mut i = 0;
        let mut put = |bytes: &[u8], i: &mut usize| {
            buf[*i..*i + bytes.len()].copy_from_slice(bytes);
            *i += bytes.len();
        };
        use option_kind::*;
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            put(&[MSS, 4, m[0], m[1]], &mut i);
        }
        if let Some((tsval, tsecr)) = self.timestamps {
            if self.sack_permitted {
                put(&[SACK_PERMITTED, 2], &mut i);
            } else {
                put(&[NOP, NOP], &mut i);
            }
            put(&[TIMESTAMPS, 10], &mut i);
            put(&tsval.to_be_bytes(), &mut i);
            put(&tsecr.to_be_bytes(), &mut i);
        } else if self.sack_permitted {
            put(&[NOP, NOP, SACK_PERMITTED, 2], &mut i);
        }
        if let Some(ws) = self.window_scale {
            put(&[NOP, WINDOW_SCALE, 3, ws], &mut i);
        }
        let n = self.sack_blocks_emitted();
        if n > 0 {
            put(&[NOP, NOP, SACK, (2 + 8 * n) as u8], &mut i);
            for &(l, r) in &self.sack.blocks[..n] {
                put(&l.0.to_be_bytes(), &mut i);
                put(&r.0.to_be_bytes(), &mut i);
            }
        }
        i
    }
}

impl<'a> TcpRepr<'a> {
    /// Parses a TCP segment (header, options, payload) whose IPv4 addresses are `src` and `dst`.
    ///
    /// Errors: shorter than 20 bytes or than the data offset claims → `Truncated`; data offset
    /// below 5 or a bad option length → `Malformed`; checksum failure (only when
    /// `mode.verify_rx`) → `Checksum`.
    pub fn parse(
        segment: &'a [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) -> Result<TcpRepr<'a>, WireError> {
        let p = TcpPacket::new_checked(segment)?;
        if mode.verify_rx && !p.verify_checksum(src, dst) {
            return Err(WireError::Checksum);
        }
        let mut repr = TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            urgent: p.urgent(),
            options: TcpOptions::default(),
            payload: &segment[p.header_len()..],
        };
        // No options (bulk data without timestamps): no parser at all. NOP, NOP, TS (every
        // segment of an established connection with timestamps): the timestamps written in
        // place. Anything else: the general parser, out of line.
        if p.header_len() != HEADER_LEN {
            let opts = p.options();
            match TcpOptions::nop_nop_timestamps(opts) {
                Some(ts) => repr.options.timestamps = Some(ts),
                None => repr.options = TcpOptions::parse_general(opts)?,
            }
        }
        Ok(repr)
    }

    /// Header length as emitted: 20 plus the padded options (never more than 60).
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.buffer_len()
    }

    /// Header plus payload length.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes the header and options with a zero checksum field; returns the header length.
    /// The payload is not written (`self.payload` is ignored).
    ///
    /// # Panics
    /// If `buf` is shorter than [`TcpRepr::header_len`]; the stack always sizes it.
    #[inline]
    pub fn emit_header(&self, buf: &mut [u8]) -> usize {
        let hl = self.header_len();
        // The fixed header is assembled in registers and stored at once (this runs for every
        // segment sent); the options follow only when there are any.
        let mut h = [0u8; HEADER_LEN];
        h[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        h[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        h[4..8].copy_from_slice(&self.seq.0.to_be_bytes());
        h[8..12].copy_from_slice(&self.ack.0.to_be_bytes());
        h[12] = ((hl / 4) as u8) << 4;
        h[13] = self.flags.0;
        h[14..16].copy_from_slice(&self.window.to_be_bytes());
        h[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        buf[..HEADER_LEN].copy_from_slice(&h);
        if hl > HEADER_LEN {
            self.options.emit(&mut buf[field::OPTIONS..hl]);
        }
        hl
    }

    /// Computes and stores the checksum of a complete segment (header and payload in place).
    ///
    /// # Panics
    /// If `segment` is shorter than 20 bytes.
    pub fn fill_checksum(segment: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        TcpPacket::new_unchecked(segment).fill_checksum(src, dst);
    }

    /// Stores only the folded, non-inverted pseudo-header sum in the checksum field: what NICs
    /// with partial TCP checksum offload (e.g. DPDK's TCP checksum TX offload) expect before they
    /// add the segment's own sum.
    ///
    /// # Panics
    /// If `segment` is shorter than 20 bytes.
    pub fn fill_pseudo_checksum(segment: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        let ph = checksum::pseudo_header(src, dst, PROTOCOL_TCP, segment.len() as u32);
        TcpPacket::new_unchecked(segment).set_checksum(checksum::fold(ph));
    }

    /// Writes header, options and payload, then the checksum when `mode.fill_tx` (else the
    /// checksum field stays zero). Returns the segment length ([`TcpRepr::buffer_len`]).
    ///
    /// # Panics
    /// If `buf` is shorter than [`TcpRepr::buffer_len`].
    pub fn emit(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) -> usize {
        let hl = self.emit_header(buf);
        let total = hl + self.payload.len();
        buf[hl..total].copy_from_slice(self.payload);
        if mode.fill_tx {
            Self::fill_checksum(&mut buf[..total], src, dst);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// Independent checksum: 16-bit words of pseudo-header and segment summed naively.
    fn ref_checksum(src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, 6]);
        bytes.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        bytes.extend_from_slice(seg);
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut s: u32 = 0;
        for w in bytes.chunks(2) {
            s += u16::from_be_bytes([w[0], w[1]]) as u32;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn with_checksum(mut seg: Vec<u8>) -> Vec<u8> {
        seg[16] = 0;
        seg[17] = 0;
        let c = ref_checksum(SRC, DST, &seg);
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        seg
    }

    /// A SYN as Linux sends it: MSS 1460, SACKOK, TS, NOP, WS 7 (40-byte header).
    fn linux_syn() -> Vec<u8> {
        with_checksum(vec![
            0x9c, 0x40, 0x00, 0x50, // ports 40000 -> 80
            0x12, 0x34, 0x56, 0x78, // seq
            0x00, 0x00, 0x00, 0x00, // ack
            0xa0, 0x02, 0xfa, 0xf0, // doff 10, SYN, window 64240
            0x00, 0x00, 0x00, 0x00, // checksum, urgent
            0x02, 0x04, 0x05, 0xb4, // MSS 1460
            0x04, 0x02, 0x08, 0x0a, // SACKOK, TS kind/len
            0x00, 0x01, 0xe2, 0x40, // TSval 123456
            0x00, 0x00, 0x00, 0x00, // TSecr 0
            0x01, 0x03, 0x03, 0x07, // NOP, WS 7
        ])
    }

    #[test]
    fn parses_linux_syn_field_by_field() {
        let seg = linux_syn();
        let r = TcpRepr::parse(&seg, SRC, DST, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(r.src_port, 40000);
        assert_eq!(r.dst_port, 80);
        assert_eq!(r.seq, SeqNumber(0x1234_5678));
        assert_eq!(r.ack, SeqNumber(0));
        assert_eq!(r.flags, TcpFlags::SYN);
        assert_eq!(r.window, 64240);
        assert_eq!(r.urgent, 0);
        assert_eq!(r.options.mss, Some(1460));
        assert!(r.options.sack_permitted);
        assert_eq!(r.options.timestamps, Some((123456, 0)));
        assert_eq!(r.options.window_scale, Some(7));
        assert!(r.options.sack.is_empty());
        assert!(r.payload.is_empty());
        assert_eq!(r.segment_len(), 1);
        // Emitting the parsed repr reproduces Linux's exact bytes, checksum included.
        assert_eq!(r.header_len(), 40);
        let mut out = [0u8; 64];
        let n = r.emit(&mut out, SRC, DST, ChecksumMode::SOFTWARE);
        assert_eq!(&out[..n], &seg[..]);
    }

    #[test]
    fn view_reads_fields_in_place() {
        let seg = linux_syn();
        let p = TcpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.options().len(), 20);
        assert_eq!(
            p.checksum(),
            ref_checksum(SRC, DST, &{
                let mut z = seg.clone();
                z[16] = 0;
                z[17] = 0;
                z
            })
        );
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(10, 0, 0, 3)));
    }

    #[test]
    fn emits_synack_without_timestamps_like_linux() {
        let mut options = TcpOptions {
            mss: Some(1400),
            window_scale: Some(9),
            sack_permitted: true,
            ..TcpOptions::default()
        };
        let r = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq: SeqNumber(1),
            ack: SeqNumber(0x1234_5679),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 65535,
            urgent: 0,
            options,
            payload: &[],
        };
        let mut buf = [0xeeu8; 60];
        let hl = r.emit_header(&mut buf);
        assert_eq!(hl, 32);
        assert_eq!(buf[12], 0x80);
        assert_eq!(buf[13], 0x12);
        assert_eq!(&buf[16..18], &[0, 0]);
        assert_eq!(&buf[20..32], &[2, 4, 0x05, 0x78, 1, 1, 4, 2, 1, 3, 3, 9]);
        // Without SACK-permitted, MSS and WS only.
        options.sack_permitted = false;
        let r2 = TcpRepr { options, ..r };
        let hl = r2.emit_header(&mut buf);
        assert_eq!(hl, 28);
        assert_eq!(&buf[20..28], &[2, 4, 0x05, 0x78, 1, 3, 3, 9]);
        // Timestamps without SACK-permitted are padded NOP,NOP,TS.
        let r3 = TcpRepr {
            options: TcpOptions {
                timestamps: Some((7, 8)),
                ..TcpOptions::default()
            },
            ..r
        };
        assert_eq!(r3.emit_header(&mut buf), 32);
        assert_eq!(&buf[20..32], &[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 8]);
    }

    fn sack_of(n: usize) -> SackBlocks {
        let mut s = SackBlocks::default();
        for i in 0..n as u32 {
            s.push(SeqNumber(1000 * i + 100), SeqNumber(1000 * i + 500));
        }
        s
    }

    #[test]
    fn sack_blocks_limited_by_header_space() {
        let base = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: SeqNumber(10),
            ack: SeqNumber(20),
            flags: TcpFlags::ACK,
            window: 100,
            urgent: 0,
            options: TcpOptions::default(),
            payload: b"hello",
        };
        // Four blocks without timestamps: NOP,NOP,5,34 + 32 bytes = 36, header 56.
        let r = TcpRepr {
            options: TcpOptions {
                sack: sack_of(4),
                ..TcpOptions::default()
            },
            ..base
        };
        assert_eq!(r.header_len(), 56);
        let mut buf = [0u8; 80];
        let n = r.emit(&mut buf, SRC, DST, ChecksumMode::SOFTWARE);
        assert_eq!(n, 61);
        assert_eq!(&buf[20..24], &[1, 1, 5, 34]);
        assert_eq!(&buf[24..32], &[0, 0, 0, 100, 0, 0, 1, 0xf4]);
        let back = TcpRepr::parse(&buf[..n], SRC, DST, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(back, r);

        // Four blocks with timestamps: only three fit (12 + 28 = 40 bytes, header 60).
        let r = TcpRepr {
            options: TcpOptions {
                timestamps: Some((1, 2)),
                sack: sack_of(4),
                ..TcpOptions::default()
            },
            ..base
        };
        assert_eq!(r.header_len(), 60);
        let n = r.emit(&mut buf, SRC, DST, ChecksumMode::SOFTWARE);
        assert_eq!(&buf[20..24], &[1, 1, 8, 10]);
        assert_eq!(&buf[32..36], &[1, 1, 5, 26]);
        let back = TcpRepr::parse(&buf[..n], SRC, DST, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(back.options.sack, sack_of(3));
        assert_eq!(back.options.timestamps, Some((1, 2)));
        assert_eq!(back.payload, b"hello");

        // Everything on a SYN: 20 bytes used, room for two blocks.
        let r = TcpRepr {
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((1, 2)),
                sack: sack_of(4),
            },
            ..base
        };
        assert_eq!(r.options.sack_blocks_emitted(), 2);
        assert_eq!(r.header_len(), 60);
        // One block on top of MSS, timestamps and window scale.
        let o = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            timestamps: Some((1, 2)),
            sack: sack_of(1),
            ..TcpOptions::default()
        };
        assert_eq!(o.buffer_len(), 32);
        assert_eq!(o.sack_blocks_emitted(), 1);
        // An out-of-range len is clamped rather than panicking.
        let mut bad = sack_of(2);
        bad.len = 200;
        let o = TcpOptions {
            sack: bad,
            ..TcpOptions::default()
        };
        assert_eq!(o.sack_blocks_emitted(), 4);
    }

    #[test]
    fn malformed_and_truncated() {
        let seg = linux_syn();
        let off = ChecksumMode::OFFLOAD;
        assert_eq!(
            TcpRepr::parse(&seg[..19], SRC, DST, off),
            Err(WireError::Truncated)
        );
        assert_eq!(
            TcpRepr::parse(&[], SRC, DST, off),
            Err(WireError::Truncated)
        );
        // Data offset beyond the buffer.
        assert_eq!(
            TcpRepr::parse(&seg[..39], SRC, DST, off),
            Err(WireError::Truncated)
        );
        // Data offset below 5.
        let mut s = seg.clone();
        s[12] = 0x40;
        assert_eq!(TcpRepr::parse(&s, SRC, DST, off), Err(WireError::Malformed));
        // Option length 0 and 1.
        for l in [0u8, 1] {
            let mut s = seg.clone();
            s[21] = l;
            assert_eq!(TcpRepr::parse(&s, SRC, DST, off), Err(WireError::Malformed));
        }
        // Option running past the header (WS claims 5 bytes where 3 remain).
        let mut s = seg.clone();
        s[38] = 5;
        assert_eq!(TcpRepr::parse(&s, SRC, DST, off), Err(WireError::Malformed));
        // A kind byte without a length byte at the end of the options.
        let mut s = seg.clone();
        s[36..40].copy_from_slice(&[1, 1, 1, 3]);
        assert_eq!(TcpRepr::parse(&s, SRC, DST, off), Err(WireError::Malformed));
        // Unknown option skipped by its length; EOL ends parsing even if garbage follows.
        let mut s = seg.clone();
        s[36..40].copy_from_slice(&[0xfe, 4, 0xff, 0xff]);
        let r = TcpRepr::parse(&s, SRC, DST, off).unwrap();
        assert_eq!(r.options.window_scale, None);
        assert_eq!(r.options.mss, Some(1460));
        let mut s = seg.clone();
        s[24..28].copy_from_slice(&[0, 0, 0, 0]);
        s[28] = 0xff;
        let r = TcpRepr::parse(&s, SRC, DST, off).unwrap();
        assert_eq!(r.options.mss, Some(1460));
        assert!(!r.options.sack_permitted);
        assert_eq!(r.options.timestamps, None);
        // A known option with a wrong length is ignored.
        let mut s = seg.clone();
        s[36..40].copy_from_slice(&[3, 2, 1, 1]);
        let r = TcpRepr::parse(&s, SRC, DST, off).unwrap();
        assert_eq!(r.options.window_scale, None);
        // SACK with a length that is not 2 + 8n is ignored.
        let opts = [5u8, 6, 0, 0, 0, 1];
        assert_eq!(TcpOptions::parse(&opts).unwrap().sack.len, 0);
    }

    #[test]
    fn checksum_failures_detected() {
        let mut seg = linux_syn();
        seg.extend_from_slice(b"data!");
        let seg = with_checksum(seg);
        assert!(TcpRepr::parse(&seg, SRC, DST, ChecksumMode::SOFTWARE).is_ok());
        let mut bad = seg.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert_eq!(
            TcpRepr::parse(&bad, SRC, DST, ChecksumMode::SOFTWARE),
            Err(WireError::Checksum)
        );
        assert!(TcpRepr::parse(&bad, SRC, DST, ChecksumMode::OFFLOAD).is_ok());
        // Wrong pseudo-header (another source address).
        assert_eq!(
            TcpRepr::parse(
                &seg,
                Ipv4Addr::new(10, 0, 0, 9),
                DST,
                ChecksumMode::SOFTWARE
            ),
            Err(WireError::Checksum)
        );
    }

    #[test]
    fn emit_without_fill_then_fill_checksum() {
        let r = TcpRepr {
            src_port: 5,
            dst_port: 6,
            seq: SeqNumber(7),
            ack: SeqNumber(8),
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 9,
            urgent: 0,
            options: TcpOptions::default(),
            payload: b"odd",
        };
        let mut buf = [0xaau8; 23];
        assert_eq!(r.emit(&mut buf, SRC, DST, ChecksumMode::OFFLOAD), 23);
        assert_eq!(&buf[16..18], &[0, 0]);
        TcpRepr::fill_checksum(&mut buf, SRC, DST);
        assert_eq!(
            u16::from_be_bytes([buf[16], buf[17]]),
            ref_checksum(SRC, DST, &{
                let mut z = buf;
                z[16] = 0;
                z[17] = 0;
                z
            })
        );
        let back = TcpRepr::parse(&buf, SRC, DST, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(back, r);
        // Partial offload: the pseudo-header sum plus the segment's own sum (as a NIC would add
        // it, inverted) gives the full checksum.
        let full = u16::from_be_bytes([buf[16], buf[17]]);
        TcpRepr::fill_pseudo_checksum(&mut buf, SRC, DST);
        let ph = u16::from_be_bytes([buf[16], buf[17]]);
        assert_eq!(ph, checksum::fold(checksum::pseudo_header(SRC, DST, 6, 23)));
        assert_eq!(!checksum::fold(checksum::sum(&buf, 0)), full);
    }

    #[test]
    fn padded_minimum_frame_through_all_layers() {
        use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetRepr};
        use crate::wire::ipv4::{ip_protocol, Ipv4Repr};
        // A pure ACK is 14 + 20 + 20 = 54 bytes; Ethernet pads it to 60. The 6 padding bytes must
        // not reach TCP as payload.
        let tcp = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            seq: SeqNumber(100),
            ack: SeqNumber(200),
            flags: TcpFlags::ACK,
            window: 512,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        let ip = Ipv4Repr {
            src: SRC,
            dst: DST,
            protocol: ip_protocol::TCP,
            ttl: 64,
            ident: 0,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            dscp_ecn: 0,
            payload_len: tcp.buffer_len(),
        };
        let eth = EthernetRepr {
            dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
            src: EthernetAddress([2, 0, 0, 0, 0, 1]),
            ethertype: EtherType::IPV4,
            vlan: None,
        };
        let mut frame = [0xa5u8; 60];
        let l3 = eth.emit(&mut frame);
        ip.emit(&mut frame[l3..], ChecksumMode::SOFTWARE);
        let l4 = l3 + ip.header_len();
        let n = tcp.emit(&mut frame[l4..], SRC, DST, ChecksumMode::SOFTWARE);
        assert_eq!(l4 + n, 54);

        let (e, p) = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(e, eth);
        assert_eq!(p.len(), 46);
        let (i, p) = Ipv4Repr::parse(p, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(i, ip);
        assert_eq!(p.len(), 20);
        let t = TcpRepr::parse(p, i.src, i.dst, ChecksumMode::SOFTWARE).unwrap();
        assert_eq!(t, tcp);
        assert!(t.payload.is_empty());
    }

    /// Every single-byte change of the NOP, NOP, TS layout's first four bytes, at lengths 11, 12
    /// and 13: wherever the fast path answers, the general parser gives the same options.
    #[test]
    fn timestamp_fast_path_agrees_with_the_general_parser_on_every_near_layout() {
        let exact = [1u8, 1, 8, 10, 0x81, 2, 3, 4, 5, 6, 7, 0x88, 1];
        let mut taken = 0;
        for len in 11..=13 {
            for i in 0..4 {
                for b in 0..=255u8 {
                    let mut o = exact;
                    o[i] = b;
                    let opts = &o[..len];
                    let general = TcpOptions::parse_general(opts);
                    if let Some(ts) = TcpOptions::nop_nop_timestamps(opts) {
                        taken += 1;
                        assert_eq!(ts, (0x8102_0304, 0x0506_0788));
                        let expected = TcpOptions {
                            timestamps: Some(ts),
                            ..TcpOptions::default()
                        };
                        assert_eq!(general, Ok(expected), "{opts:?}");
                    }
                    assert_eq!(TcpOptions::parse(opts), general, "{opts:?}");
                }
            }
        }
        // Only the unchanged layout at length 12 (once per changed position, b == the byte).
        assert_eq!(taken, 4);
    }

    prop_compose! {
        fn arb_options()(
            mss in proptest::option::of(any::<u16>()),
            window_scale in proptest::option::of(any::<u8>()),
            sack_permitted in any::<bool>(),
            timestamps in proptest::option::of(any::<(u32, u32)>()),
            blocks in proptest::collection::vec(any::<(u32, u32)>(), 0..=4),
        ) -> TcpOptions {
            let mut sack = SackBlocks::default();
            for (l, r) in blocks {
                sack.push(SeqNumber(l), SeqNumber(r));
            }
            TcpOptions { mss, window_scale, sack_permitted, timestamps, sack }
        }
    }

    proptest! {
        #[test]
        fn roundtrip(
            src_port in any::<u16>(), dst_port in any::<u16>(), seq in any::<u32>(),
            ack in any::<u32>(), flags in any::<u8>(), window in any::<u16>(),
            urgent in any::<u16>(), options in arb_options(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let r = TcpRepr {
                src_port, dst_port, seq: SeqNumber(seq), ack: SeqNumber(ack),
                flags: TcpFlags(flags), window, urgent, options, payload: &payload,
            };
            let mut buf = vec![0u8; r.buffer_len()];
            let n = r.emit(&mut buf, SRC, DST, ChecksumMode::SOFTWARE);
            prop_assert_eq!(n, buf.len());
            prop_assert!(r.header_len() <= MAX_HEADER_LEN);
            prop_assert_eq!(r.header_len() % 4, 0);
            prop_assert_eq!(ref_checksum(SRC, DST, &buf), 0);
            let back = TcpRepr::parse(&buf, SRC, DST, ChecksumMode::SOFTWARE).unwrap();
            // SACK blocks that did not fit are dropped; everything else survives.
            let mut expected = r;
            let kept = r.options.sack_blocks_emitted();
            let mut sack = SackBlocks::default();
            for &(l, rr) in &r.options.sack.as_slice()[..kept] {
                sack.push(l, rr);
            }
            expected.options.sack = sack;
            prop_assert_eq!(back, expected);
        }

        #[test]
        fn timestamp_fast_path_agrees_with_the_general_parser(
            options in arb_options(),
            ts in any::<(u32, u32)>(),
            flip in proptest::option::of((0usize..13, prop_oneof![0u8..=12, any::<u8>()])),
            cut in 0usize..3,
        ) {
            // Layouts near the fast path's (NOP, NOP, TS: emitted, then one byte changed and/or
            // its length cut or extended) and arbitrary emitted option lists.
            let mut near = vec![option_kind::NOP, option_kind::NOP, option_kind::TIMESTAMPS, 10];
            near.extend_from_slice(&ts.0.to_be_bytes());
            near.extend_from_slice(&ts.1.to_be_bytes());
            near.push(option_kind::NOP);
            near.truncate(11 + cut);
            if let Some((i, b)) = flip {
                if i < near.len() {
                    near[i] = b;
                }
            }
            let mut emitted = [0u8; 40];
            let n = options.emit(&mut emitted);
            for opts in [&near[..], &emitted[..n]] {
                let general = TcpOptions::parse_general(opts);
                if let Some(fast) = TcpOptions::nop_nop_timestamps(opts) {
                    let expected = TcpOptions { timestamps: Some(fast), ..TcpOptions::default() };
                    prop_assert_eq!(general, Ok(expected));
                }
                prop_assert_eq!(TcpOptions::parse(opts), general);
                // And through the whole segment parser (fixed header + these options).
                let mut seg = vec![0u8; HEADER_LEN];
                seg[field::DATA_OFFSET] = (((HEADER_LEN + opts.len()) / 4) as u8) << 4;
                seg.extend_from_slice(opts);
                if opts.len() % 4 == 0 {
                    let r = TcpRepr::parse(&seg, SRC, DST, ChecksumMode::OFFLOAD);
                    prop_assert_eq!(r.map(|r| r.options), general);
                }
            }
            // The exact layout is always taken by the fast path, and only the exact length.
            if flip.is_none() {
                let expected = (cut == 1).then_some(ts);
                prop_assert_eq!(TcpOptions::nop_nop_timestamps(&near), expected);
            }
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = TcpRepr::parse(&data, SRC, DST, ChecksumMode::SOFTWARE);
            let _ = TcpRepr::parse(&data, SRC, DST, ChecksumMode::OFFLOAD);
            let _ = TcpOptions::parse(&data);
        }

        #[test]
        fn parse_never_panics_with_plausible_header(
            mut data in proptest::collection::vec(any::<u8>(), 20..100),
            doff in 0u8..16,
        ) {
            // Bias towards valid data offsets so the option parser sees many inputs.
            data[12] = doff << 4;
            if let Ok(r) = TcpRepr::parse(&data, SRC, DST, ChecksumMode::OFFLOAD) {
                prop_assert!(r.options.sack.len <= 4);
                prop_assert_eq!(r.payload.len(), data.len() - doff as usize * 4);
            }
        }
    }
}
