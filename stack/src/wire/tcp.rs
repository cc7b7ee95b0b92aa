//! TCP header and options (RFC 9293, RFC 7323, RFC 2018).

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
