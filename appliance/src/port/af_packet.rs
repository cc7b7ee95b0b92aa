//! AF_PACKET port: the embedded default, on any Linux interface by name.
//!
//! A PF_PACKET SOCK_RAW socket bound to the interface for every protocol, with TPACKET_V2 RX and
//! TX rings in one shared mapping (RX ring first), `PACKET_QDISC_BYPASS` on, non-blocking:
//! - RX: [`Port::rx_burst`] walks RX frames marked `TP_STATUS_USER`, shows each frame in place and
//!   hands it back (`TP_STATUS_KERNEL`). Frames this host sent (`PACKET_OUTGOING`) are skipped
//!   (and `PACKET_IGNORE_OUTGOING` asks the kernel not to queue them at all). A VLAN tag the
//!   device stripped is put back in place so callers always see the frame as on the wire.
//! - TX: [`Port::tx_frame`] writes into the next TX frame (which must be `TP_STATUS_AVAILABLE`) and
//!   marks it `TP_STATUS_SEND_REQUEST`; [`Port::tx_flush`] calls `send(fd, NULL, 0, MSG_DONTWAIT)`
//!   once; frames the kernel did not take (socket buffer full, interface down) stay requested and
//!   go with the next flush. Frames back in `TP_STATUS_AVAILABLE` are completions; occupancy is
//!   written-but-not-completed frames.
//! - TX with `gso` on: frames are staged in a userspace ring of the same size instead, and a
//!   flush sends them with `sendmmsg(2)` on a second, transmit-only socket with
//!   `PACKET_VNET_HDR`: consecutive in-sequence data segments of one connection go as one large
//!   segment that the kernel cuts back into the same frames ([`super::gso`]); everything else
//!   goes on its own. The stack leaves checksums to this port (as to a NIC with checksum
//!   offload): merged runs get theirs from the segmentation, other frames from
//!   [`gso::complete_checksums`]. That socket uses the device's qdisc (none on a veth): with
//!   `PACKET_QDISC_BYPASS` the kernel drops packets it has to segment in software.
//!   Known limits of this path: frames count as completed when `sendmmsg` returns, so on a NIC
//!   with a qdisc, TX admission does not see what waits there (on a veth there is none); the
//!   socket's default send buffer holds only a few large segments until the NIC completes
//!   them; on a noqueue device an `ENOBUFS` for a merged segment may come after some of its
//!   frames left, and the retry then sends those twice (TCP discards the duplicates). If the
//!   kernel refuses a merged segment, the port stops merging and says so in the log.
//! - `PACKET_LOSS` is set so that a frame the kernel rejects is skipped rather than stalling the
//!   ring forever; frames are length-checked before they are requested, so that does not happen
//!   in practice (and `TP_STATUS_WRONG_FORMAT`, if seen, counts as a TX drop).

use super::gso::{self, Run, RunHeader, Segment, MAX_HEADERS, VNET_HDR_LEN};
use super::{
    check_fill_len, Completions, Port, PortCounters, PortError, TxRingStatus, FRAME_OVERHEAD,
};
use crate::os::{self, RingMap};
use saps_stack::Instant;
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Byte offsets in a `struct tpacket2_hdr`.
const TP_LEN: usize = 4;
const TP_SNAPLEN: usize = 8;
const TP_MAC: usize = 12;
const TP_VLAN_TCI: usize = 24;
const TP_VLAN_TPID: usize = 26;

/// Frame bytes the RX ring spends before the Ethernet header, plus room to re-insert a VLAN tag.
const RX_HEADROOM: usize = 80 + 4;

/// Configuration of an [`AfPacketPort`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface name, e.g. `eth0` or a veth end.
    pub ifname: String,
    /// MAC the appliance uses; `None` = the interface's own.
    pub mac: Option<[u8; 6]>,
    /// Promiscuous mode: `None` = on exactly when `mac` differs from the interface's MAC.
    pub promisc: Option<bool>,
    /// Bytes per ring frame: a power of two, at least MTU + 102.
    pub frame_size: usize,
    /// RX ring frames (rounded up to fill whole blocks).
    pub rx_frames: usize,
    /// TX ring frames (rounded up to fill whole blocks).
    pub tx_frames: usize,
    /// Bypass the qdisc layer on transmit (`PACKET_QDISC_BYPASS`; ring TX only).
    pub qdisc_bypass: bool,
    /// Send through `sendmmsg` with segmentation offload instead of the TX ring.
    pub gso: bool,
}

impl AfPacketConfig {
    /// Defaults for `ifname`: interface MAC, 2048-byte frames, 512 RX and 512 TX frames.
    pub fn new(ifname: &str) -> AfPacketConfig {
        AfPacketConfig {
            ifname: ifname.to_string(),
            mac: None,
            promisc: None,
            frame_size: 2048,
            rx_frames: 512,
            tx_frames: 512,
            qdisc_bypass: true,
            gso: false,
        }
    }
}

/// Ring geometry for `frames` frames of `frame_size` bytes.
fn ring_req(frame_size: usize, frames: usize, page: usize) -> os::TpacketReq {
    let block = frame_size.max(page);
    let per_block = block / frame_size;
    let blocks = frames.max(1).div_ceil(per_block);
    os::TpacketReq {
        block_size: block as u32,
        block_nr: blocks as u32,
        frame_size: frame_size as u32,
        frame_nr: (blocks * per_block) as u32,
    }
}

/// A port on a Linux interface through TPACKET_V2 rings.
pub struct AfPacketPort {
    // Field order matters for drop: unmap the rings before closing the socket.
    map: RingMap,
    fd: OwnedFd,
    ctl: OwnedFd,
    ifname: String,
    ifindex: i32,
    mac: [u8; 6],
    mtu: usize,
    promisc: bool,
    frame_size: usize,
    rx_nr: usize,
    rx_next: usize,
    tx_base: usize,
    tx_nr: usize,
    /// Monotonic frame numbers: [tail, sent) handed to the kernel, [sent, head) requested but
    /// not yet taken by a flush.
    tx_tail: u64,
    tx_sent: u64,
    tx_head: u64,
    tx_lens: Vec<u32>,
    tx_bytes: u64,
    done: Completions,
    counters: PortCounters,
    kernel_drops: Cell<u64>,
    /// `Some` with `gso` on: the transmit-only socket and the staging slots that replace the
    /// TX ring.
    gso_tx: Option<GsoTx>,
}

/// The `gso` transmit path: a transmit-only socket with `PACKET_VNET_HDR`, and `tx_nr` staging
/// slots of `slot_len` bytes that play the TX ring's part.
struct GsoTx {
    fd: OwnedFd,
    slots: Vec<u8>,
    slot_len: usize,
    /// Large segments sent, and the frames they carried.
    merged_messages: u64,
    merged_frames: u64,
    /// Off after the kernel refused a merged segment: frames then go one by one.
    merging: bool,
}

/// Most slices one batch gathers (a merged run needs one per frame plus its header).
const GATHER_SLICES: usize = 512;

impl AfPacketPort {
    /// Opens the port. Errors name the interface and the failing call, and say when the cause is
    /// a missing interface or missing privileges.
    pub fn open(cfg: &AfPacketConfig) -> io::Result<AfPacketPort> {
        let name = cfg.ifname.as_str();
        let ctl = os::control_socket()?;
        let ifindex = os::if_index(&ctl, name)?;
        let hw = os::if_hwaddr(&ctl, name)?;
        let mtu = os::if_mtu(&ctl, name)?;
        let fs = cfg.frame_size;
        if !fs.is_power_of_two() || fs < mtu + FRAME_OVERHEAD + RX_HEADROOM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "af_packet {name:?}: frame_size {fs} must be a power of two of at least \
                     MTU {mtu} + {} bytes; use {}",
                    FRAME_OVERHEAD + RX_HEADROOM,
                    (mtu + FRAME_OVERHEAD + RX_HEADROOM).next_power_of_two()
                ),
            ));
        }
        let page = os::page_size();
        let rx = ring_req(fs, cfg.rx_frames, page);
        let tx = ring_req(fs, cfg.tx_frames, page);

        let fd = os::packet_socket(name)?;
        os::set_packet_opt(
            &fd,
            os::PACKET_VERSION,
            os::TPACKET_V2,
            "PACKET_VERSION(V2)",
            name,
        )?;
        os::set_packet_opt(&fd, os::PACKET_LOSS, 1, "PACKET_LOSS", name)?;
        if cfg.qdisc_bypass {
            os::set_packet_opt(&fd, os::PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS", name)?;
        }
        // Older kernels lack it; the pkttype check in rx_burst covers them.
        let _ = os::set_packet_opt(
            &fd,
            os::PACKET_IGNORE_OUTGOING,
            1,
            "PACKET_IGNORE_OUTGOING",
            name,
        );
        os::set_packet_ring(&fd, os::PACKET_RX_RING, &rx, name)?;
        // With gso the staging slots replace the TX ring: only the RX ring is mapped.
        let tx_ring_bytes = if cfg.gso {
            0
        } else {
            os::set_packet_ring(&fd, os::PACKET_TX_RING, &tx, name)?;
            tx.bytes()
        };
        let map = RingMap::map(&fd, rx.bytes() + tx_ring_bytes, name)?;
        os::bind_packet(&fd, ifindex, name)?;
        let mac = cfg.mac.unwrap_or(hw);
        let promisc = cfg.promisc.unwrap_or(mac != hw);
        if promisc {
            os::add_promisc(&fd, ifindex, name)?;
        }
        // Start the drop counter from zero for this port.
        let _ = os::packet_stats(&fd);
        let tx_nr = tx.frame_nr as usize;
        let gso_tx = if cfg.gso {
            let tx_fd = os::packet_socket(name)?;
            os::set_packet_opt(&tx_fd, os::PACKET_VNET_HDR, 1, "PACKET_VNET_HDR", name)?;
            os::bind_packet_tx_only(&tx_fd, ifindex, name)?;
            let slot_len = (fs - os::TPACKET2_TX_DATA_OFFSET).min(mtu + FRAME_OVERHEAD);
            Some(GsoTx {
                fd: tx_fd,
                slots: vec![0; slot_len * tx_nr],
                slot_len,
                merged_messages: 0,
                merged_frames: 0,
                merging: true,
            })
        } else {
            None
        };
        Ok(AfPacketPort {
            map,
            fd,
            ctl,
            ifname: name.to_string(),
            ifindex,
            mac,
            mtu,
            promisc,
            frame_size: fs,
            rx_nr: rx.frame_nr as usize,
            rx_next: 0,
            tx_base: rx.bytes(),
            tx_nr,
            tx_tail: 0,
            tx_sent: 0,
            tx_head: 0,
            tx_lens: vec![0; tx_nr],
            tx_bytes: 0,
            done: Completions::default(),
            counters: PortCounters::default(),
            kernel_drops: Cell::new(0),
            gso_tx,
        })
    }

    /// With `gso` on: (large segments sent, frames they carried).
    pub fn gso_merged(&self) -> Option<(u64, u64)> {
        self.gso_tx
            .as_ref()
            .map(|g| (g.merged_messages, g.merged_frames))
    }

    /// The staged frame at monotonic number `seq` (gso path).
    fn staged<'a>(g: &'a GsoTx, tx_nr: usize, lens: &[u32], seq: u64) -> &'a [u8] {
        &g.slots[Self::staged_range(g, tx_nr, lens, seq)]
    }

    /// Where the staged frame at monotonic number `seq` lies in the staging slots.
    fn staged_range(g: &GsoTx, tx_nr: usize, lens: &[u32], seq: u64) -> std::ops::Range<usize> {
        let i = (seq % tx_nr as u64) as usize;
        let start = i * g.slot_len;
        start..start + lens[i] as usize
    }

    /// The gso path's flush: plans messages over the staged frames in batches and sends each
    /// batch with one `sendmmsg`. Sent frames complete at once (the kernel has copied them).
    fn flush_gathered(&mut self) -> usize {
        let Some(g) = self.gso_tx.as_mut() else {
            return 0;
        };
        let before = self.tx_sent;
        // Bounded: each round sends at least one message or stops.
        while self.tx_sent < self.tx_head {
            // Plan: (frames, header bytes) per message; headers of merged runs go in `heads`.
            let mut plan = [(0usize, 0usize); os::SEND_BATCH];
            let mut heads: [RunHeader; os::SEND_BATCH] =
                [[0; VNET_HDR_LEN + MAX_HEADERS]; os::SEND_BATCH];
            let mut msgs = 0;
            let mut slices = 0;
            let mut seq = self.tx_sent;
            while msgs < os::SEND_BATCH && seq < self.tx_head {
                let first = Self::staged(g, self.tx_nr, &self.tx_lens, seq);
                let mut frames = 1;
                let mut head_len = 0;
                if let Some(seg) = Segment::parse(first).filter(|_| g.merging) {
                    let mut run = Run::start(seg);
                    while seq + (run.frames as u64) < self.tx_head
                        && slices + 1 + run.frames < GATHER_SLICES
                    {
                        let next =
                            Self::staged(g, self.tx_nr, &self.tx_lens, seq + run.frames as u64);
                        match Segment::parse(next) {
                            Some(s) if run.try_append(first, next, s) => {}
                            _ => break,
                        }
                    }
                    if run.frames > 1 {
                        frames = run.frames;
                        head_len = run.write_header(first, &mut heads[msgs]);
                    }
                }
                if head_len == 0 {
                    // A frame on its own: its checksums are completed here and by the kernel.
                    let range = Self::staged_range(g, self.tx_nr, &self.tx_lens, seq);
                    let frame = &mut g.slots[range];
                    heads[msgs][..VNET_HDR_LEN].copy_from_slice(&gso::complete_checksums(frame));
                }
                let need = if head_len > 0 { 1 + frames } else { 2 };
                if slices + need > GATHER_SLICES {
                    break;
                }
                plan[msgs] = (frames, head_len);
                slices += need;
                msgs += 1;
                seq += frames as u64;
            }
            // Gather: a merged run is its header then each frame's payload in place; a frame on
            // its own is its virtio header (checksum completion) then the frame.
            let mut iovs = [io::IoSlice::new(&[]); GATHER_SLICES];
            let mut counts = [0usize; os::SEND_BATCH];
            let mut k = 0;
            let mut seq = self.tx_sent;
            for (m, &(frames, head_len)) in plan[..msgs].iter().enumerate() {
                if head_len > 0 {
                    let headers = head_len - VNET_HDR_LEN;
                    iovs[k] = io::IoSlice::new(&heads[m][..head_len]);
                    k += 1;
                    for f in 0..frames as u64 {
                        let frame = Self::staged(g, self.tx_nr, &self.tx_lens, seq + f);
                        iovs[k] = io::IoSlice::new(frame.get(headers..).unwrap_or(&[]));
                        k += 1;
                    }
                    counts[m] = 1 + frames;
                } else {
                    iovs[k] = io::IoSlice::new(&heads[m][..VNET_HDR_LEN]);
                    iovs[k + 1] = io::IoSlice::new(Self::staged(g, self.tx_nr, &self.tx_lens, seq));
                    k += 2;
                    counts[m] = 2;
                }
                seq += frames as u64;
            }
            let (taken, failed) = match os::send_gathered(&g.fd, &iovs[..k], &counts[..msgs]) {
                Ok(n) => (n, None),
                Err(e) => (0, Some(e)),
            };
            for &(frames, head_len) in &plan[..taken] {
                if head_len > 0 {
                    g.merged_messages += 1;
                    g.merged_frames += frames as u64;
                }
                for _ in 0..frames {
                    let len = u64::from(self.tx_lens[(self.tx_sent % self.tx_nr as u64) as usize]);
                    self.done.packets += 1;
                    self.done.bytes += len;
                    self.counters.tx_packets += 1;
                    self.counters.tx_bytes += len;
                    self.tx_bytes -= len;
                    self.tx_sent += 1;
                }
            }
            if let Some(e) = failed {
                let busy = e.kind() == io::ErrorKind::WouldBlock
                    || matches!(
                        e.raw_os_error(),
                        Some(libc::ENOBUFS | libc::ENETDOWN | libc::ENXIO)
                    );
                if busy {
                    // Socket buffer full or link down: the frames stay staged for a later flush.
                    break;
                }
                let (frames, head_len) = plan[0];
                if head_len > 0 {
                    // The kernel refused a merged segment (a kernel without software
                    // segmentation for this device, say): stop merging on this port and send
                    // the same frames one by one from the next round on.
                    g.merging = false;
                    tracing::warn!(
                        port = %self.ifname,
                        error = %e,
                        "the kernel refused a merged TCP segment; sending frames one by one from now on"
                    );
                    continue;
                }
                // The kernel refused this frame (malformed): drop it, never stall.
                for _ in 0..frames {
                    let len = u64::from(self.tx_lens[(self.tx_sent % self.tx_nr as u64) as usize]);
                    self.counters.tx_drops += 1;
                    self.tx_bytes -= len;
                    self.tx_sent += 1;
                }
            } else if taken < msgs {
                // A short count: the next round meets the failing message's error, if any.
                continue;
            }
        }
        self.tx_tail = self.tx_sent;
        (self.tx_sent - before) as usize
    }

    /// Interface index.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// True if promiscuous mode was requested.
    pub fn promiscuous(&self) -> bool {
        self.promisc
    }

    /// RX and TX ring frame counts (after rounding to whole blocks).
    pub fn ring_frames(&self) -> (usize, usize) {
        (self.rx_nr, self.tx_nr)
    }

    fn tx_off(&self, seq: u64) -> usize {
        self.tx_base + (seq % self.tx_nr as u64) as usize * self.frame_size
    }

    fn tx_slot_len(&self) -> usize {
        (self.frame_size - os::TPACKET2_TX_DATA_OFFSET).min(self.mtu + FRAME_OVERHEAD)
    }

    /// Collects frames the kernel has finished with, oldest first.
    fn reap(&mut self) {
        if self.gso_tx.is_some() {
            // Sent frames were completed by the flush that sent them.
            return;
        }
        while self.tx_tail < self.tx_sent {
            let off = self.tx_off(self.tx_tail);
            let st = self.map.load_status(off);
            let len = self.tx_lens[(self.tx_tail % self.tx_nr as u64) as usize] as u64;
            if st == os::TP_STATUS_AVAILABLE {
                self.done.packets += 1;
                self.done.bytes += len;
                self.counters.tx_packets += 1;
                self.counters.tx_bytes += len;
            } else if st & os::TP_STATUS_WRONG_FORMAT != 0 {
                self.counters.tx_drops += 1;
                self.map.store_status(off, os::TP_STATUS_AVAILABLE);
            } else {
                break; // still SENDING
            }
            self.tx_bytes -= len;
            self.tx_tail += 1;
        }
    }

    fn read_u16(&self, off: usize) -> u16 {
        self.map
            .bytes(off, 2)
            .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]))
    }

    fn read_u32(&self, off: usize) -> u32 {
        self.map
            .bytes(off, 4)
            .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.ifname
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn rx_burst(&mut self, _now: Instant, max: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        let fs = self.frame_size;
        // Bounded: at most one pass over the ring per call.
        for _ in 0..self.rx_nr {
            if n >= max {
                break;
            }
            let off = self.rx_next * fs;
            let st = self.map.load_status(off);
            if st & os::TP_STATUS_USER == 0 {
                break;
            }
            let len = self.read_u32(off + TP_LEN) as usize;
            let snap = self.read_u32(off + TP_SNAPLEN) as usize;
            let mut mac_off = self.read_u16(off + TP_MAC) as usize;
            let mut frame_len = snap;
            let pkttype = self
                .map
                .bytes(off + os::TPACKET2_PKTTYPE_OFFSET, 1)
                .map_or(0, |b| b[0]);
            let mut deliver = pkttype != os::PACKET_OUTGOING;
            if snap < len || mac_off + snap > fs || snap < 14 {
                // Truncated (larger than a ring frame) or malformed: a drop, never a panic.
                self.counters.rx_drops += 1;
                deliver = false;
            }
            if deliver && st & os::TP_STATUS_VLAN_VALID != 0 && mac_off >= os::TPACKET2_HDRLEN + 4 {
                // Put the stripped tag back: move the MACs 4 bytes down, tag after them.
                let tci = self.read_u16(off + TP_VLAN_TCI);
                let tpid = if st & os::TP_STATUS_VLAN_TPID_VALID != 0 {
                    self.read_u16(off + TP_VLAN_TPID)
                } else {
                    0x8100
                };
                if let Some(b) = self.map.bytes_mut(off + mac_off - 4, snap + 4) {
                    b.copy_within(4..16, 0);
                    b[12..14].copy_from_slice(&tpid.to_be_bytes());
                    b[14..16].copy_from_slice(&tci.to_be_bytes());
                    mac_off -= 4;
                    frame_len += 4;
                }
            }
            if deliver {
                if let Some(frame) = self.map.bytes(off + mac_off, frame_len) {
                    f(frame);
                    self.counters.rx_packets += 1;
                    self.counters.rx_bytes += frame_len as u64;
                    n += 1;
                }
            }
            self.map.store_status(off, os::TP_STATUS_KERNEL);
            self.rx_next = (self.rx_next + 1) % self.rx_nr;
        }
        n
    }

    fn tx_free(&mut self, _now: Instant) -> usize {
        self.reap();
        self.tx_nr - (self.tx_head - self.tx_tail) as usize
    }

    fn tx_frame(
        &mut self,
        _now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, PortError> {
        if self.tx_head - self.tx_tail == self.tx_nr as u64 {
            self.reap();
        }
        if let Some(g) = self.gso_tx.as_mut() {
            if self.tx_head - self.tx_tail == self.tx_nr as u64 {
                self.counters.tx_full += 1;
                return Err(PortError::TxFull);
            }
            let i = (self.tx_head % self.tx_nr as u64) as usize;
            let slot = &mut g.slots[i * g.slot_len..(i + 1) * g.slot_len];
            let Some(len) = check_fill_len(fill(slot), g.slot_len)? else {
                return Ok(0);
            };
            self.tx_lens[i] = len as u32;
            self.tx_bytes += len as u64;
            self.tx_head += 1;
            return Ok(len);
        }
        let off = self.tx_off(self.tx_head);
        if self.tx_head - self.tx_tail == self.tx_nr as u64
            || self.map.load_status(off) != os::TP_STATUS_AVAILABLE
        {
            self.counters.tx_full += 1;
            return Err(PortError::TxFull);
        }
        let cap = self.tx_slot_len();
        let Some(buf) = self.map.bytes_mut(off + os::TPACKET2_TX_DATA_OFFSET, cap) else {
            return Err(PortError::TxFull);
        };
        let Some(len) = check_fill_len(fill(buf), cap)? else {
            return Ok(0);
        };
        if let Some(h) = self.map.bytes_mut(off + TP_LEN, 8) {
            h[..4].copy_from_slice(&(len as u32).to_ne_bytes());
            h[4..].copy_from_slice(&(len as u32).to_ne_bytes());
        }
        self.tx_lens[(self.tx_head % self.tx_nr as u64) as usize] = len as u32;
        self.tx_bytes += len as u64;
        self.map.store_status(off, os::TP_STATUS_SEND_REQUEST);
        self.tx_head += 1;
        Ok(len)
    }

    fn tx_flush(&mut self, _now: Instant) -> usize {
        if self.tx_sent == self.tx_head {
            return 0;
        }
        if self.gso_tx.is_some() {
            return self.flush_gathered();
        }
        // EAGAIN/ENOBUFS (socket buffer full) and ENETDOWN/ENXIO (interface down) leave the
        // remaining frames requested: they go with a later flush.
        if let Err(e) = os::packet_tx_kick(&self.fd) {
            let busy =
                e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS);
            // A link-down event leaves ENETDOWN pending on the socket, and the kernel reports
            // (and clears) it instead of sending on the next send() after the link is back:
            // clear it here and retry once so that flush is not lost.
            if !busy && os::take_socket_error(&self.fd).is_some() {
                let _ = os::packet_tx_kick(&self.fd);
            }
        }
        let before = self.tx_sent;
        while self.tx_sent < self.tx_head
            && self.map.load_status(self.tx_off(self.tx_sent)) != os::TP_STATUS_SEND_REQUEST
        {
            self.tx_sent += 1;
        }
        (self.tx_sent - before) as usize
    }

    fn take_completions(&mut self, _now: Instant) -> Completions {
        self.reap();
        std::mem::take(&mut self.done)
    }

    fn tx_ring(&self) -> TxRingStatus {
        TxRingStatus {
            capacity: self.tx_nr,
            packets: (self.tx_head - self.tx_tail) as usize,
            bytes: self.tx_bytes,
        }
    }

    fn link_up(&self) -> bool {
        os::if_flags(&self.ctl, &self.ifname)
            .map(|f| f & os::IFF_UP != 0 && f & os::IFF_RUNNING != 0)
            .unwrap_or(false)
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn counters(&self) -> PortCounters {
        if let Ok((_, drops)) = os::packet_stats(&self.fd) {
            self.kernel_drops
                .set(self.kernel_drops.get() + drops as u64);
        }
        PortCounters {
            rx_drops: self.counters.rx_drops + self.kernel_drops.get(),
            tx_offload_frames: self.gso_tx.as_ref().map_or(0, |g| g.merged_frames),
            ..self.counters
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_geometry_fills_whole_blocks() {
        let r = ring_req(2048, 512, 4096);
        assert_eq!((r.block_size, r.block_nr, r.frame_nr), (4096, 256, 512));
        let r = ring_req(2048, 3, 4096);
        assert_eq!((r.block_nr, r.frame_nr), (2, 4));
        let r = ring_req(8192, 10, 4096);
        assert_eq!((r.block_size, r.block_nr, r.frame_nr), (8192, 10, 10));
    }

    #[test]
    fn missing_interface_is_a_clear_error() {
        let err = AfPacketPort::open(&AfPacketConfig::new("saps-none0"))
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("saps-none0") && msg.contains("no such interface"),
            "{msg}"
        );
    }

    #[test]
    fn loopback_opens_as_root_and_says_why_when_not() {
        let mut cfg = AfPacketConfig::new("lo");
        cfg.frame_size = 131072; // lo's MTU is 65536
        cfg.rx_frames = 2;
        cfg.tx_frames = 2;
        match AfPacketPort::open(&cfg) {
            Ok(p) => {
                assert_eq!(os::geteuid(), 0, "only root may open a packet socket");
                assert_eq!(p.name(), "lo");
                assert_eq!(p.mtu(), 65536);
                assert_eq!(p.ring_frames(), (2, 2));
                assert_eq!(p.tx_ring().capacity, 2);
                assert!(!p.promiscuous());
            }
            Err(e) => {
                let msg = e.to_string();
                assert_ne!(os::geteuid(), 0, "root failed: {msg}");
                assert!(
                    msg.contains("\"lo\"") && msg.contains("needs root"),
                    "{msg}"
                );
            }
        }
    }

    #[test]
    fn small_frame_size_rejected_with_fix() {
        let mut cfg = AfPacketConfig::new("lo");
        cfg.frame_size = 2048; // lo has a 65536 MTU
        let msg = AfPacketPort::open(&cfg).err().unwrap().to_string();
        assert!(
            msg.contains("frame_size") && msg.contains("power of two"),
            "{msg}"
        );
    }
}
