//! Port backends: where Ethernet frames enter and leave the appliance.
//!
//! A [`Port`] is shaped like a poll-mode NIC driver (and so like DPDK's ethdev): frames are
//! received in bursts and seen in place, frames are built directly in TX ring slots, a flush hands
//! written slots to the device and may take only some of them (the rest stay queued, never
//! dropped), and the number of frames sitting in the TX ring is observable and bounded, so the
//! TX admission logic of the SAPS paper can hold segments back when the ring is full and retry on
//! completions.
//!
//! Call order per poll-loop iteration: [`Port::rx_burst`], then [`Port::take_completions`], then
//! [`Port::tx_free`] / [`Port::tx_frame`] as often as there is data, then [`Port::tx_flush`].
//!
//! A DPDK backend maps onto this as: `rx_burst` = `rte_eth_rx_burst` into a local mbuf array,
//! callback per mbuf, free; `tx_frame` = allocate an mbuf, fill its data room, stage it;
//! `tx_flush` = `rte_eth_tx_burst` of the staged mbufs, keeping the ones it did not take for the
//! next flush; completions/occupancy = staged plus handed-over mbufs minus those the PMD freed
//! (tracked with a per-port mbuf counter or `rte_eth_tx_descriptor_status`).
//!
//! Backends: [`memory`] (in-process pairs for tests and simulation), [`af_packet`] (TPACKET_V2
//! rings on any Linux interface), `dpdk` (DPDK ethdev, with the `dpdk` feature), [`tap`] (a TAP device), and the [`line_rate`] wrapper that makes
//! any of them drain its TX ring at a configured bit rate.

use saps_stack::Instant;
use std::fmt;
use std::os::fd::RawFd;

pub mod af_packet;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod faults;
pub mod gso;
pub mod line_rate;
pub mod memory;
mod ring;
pub mod tap;

pub use ring::SlotRing;

/// Bytes a frame may have beyond the L3 MTU: Ethernet header (14) plus one VLAN tag (4).
/// The FCS is not part of frames seen by ports.
pub const FRAME_OVERHEAD: usize = 18;

/// Shortest frame a port accepts for transmission: an Ethernet header.
pub const MIN_FRAME_LEN: usize = 14;

/// Errors of the per-frame TX path. Small and `Copy`: they happen on the hot path.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PortError {
    /// No TX slot is free; retry after completions.
    TxFull,
    /// The fill callback returned a length longer than the slot or shorter than an Ethernet
    /// header; the slot was not used.
    BadLength,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::TxFull => f.write_str("TX ring full"),
            PortError::BadLength => f.write_str("frame length outside 14..=slot size"),
        }
    }
}

impl std::error::Error for PortError {}

/// Frames that left the TX ring since the last [`Port::take_completions`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Completions {
    /// Frames completed.
    pub packets: usize,
    /// Bytes of those frames.
    pub bytes: u64,
}

/// Capacity and occupancy of a port's TX ring.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TxRingStatus {
    /// Slots in the ring.
    pub capacity: usize,
    /// Frames written and not yet completed (queued or in flight).
    pub packets: usize,
    /// Bytes of those frames.
    pub bytes: u64,
}

/// Cumulative port counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames the device or kernel dropped before we could receive them (ring full).
    pub rx_drops: u64,
    /// Frames completed on the TX side.
    pub tx_packets: u64,
    /// Bytes completed on the TX side.
    pub tx_bytes: u64,
    /// Frames written to the TX ring that the device rejected or that were lost.
    pub tx_drops: u64,
    /// Times [`Port::tx_frame`] found the ring full.
    pub tx_full: u64,
    /// Frames that left inside a merged large segment (segmentation offload; also counted in
    /// `tx_packets`).
    pub tx_offload_frames: u64,
}

/// A network port driven in poll mode. See the module docs for the call order.
pub trait Port: Send {
    /// Interface name (for logs and metrics).
    fn name(&self) -> &str;
    /// MAC address the appliance uses on this port.
    fn mac(&self) -> [u8; 6];
    /// L3 MTU, e.g. 1500. TX slots hold at least `mtu() + FRAME_OVERHEAD` bytes.
    fn mtu(&self) -> usize;
    /// Receives up to `max` frames; `f` sees each frame in place (valid only during the call).
    /// Returns the number of frames passed to `f` (the fault-injecting wrapper returns at least
    /// the number it took from the device, so a result below `max` means the device ran dry).
    fn rx_burst(&mut self, now: Instant, max: usize, f: &mut dyn FnMut(&[u8])) -> usize;
    /// Free TX slots now.
    fn tx_free(&mut self, now: Instant) -> usize;
    /// Builds one frame directly in the next TX slot: `fill` writes into the slot buffer
    /// (`len >= mtu + FRAME_OVERHEAD`) and returns the frame length (0 = nothing written, slot
    /// not used). Returns the length written, `Err(TxFull)` if no slot is free, `Err(BadLength)`
    /// if `fill` returned a length outside `MIN_FRAME_LEN..=buffer length`.
    fn tx_frame(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, PortError>;
    /// Hands written frames to the device / wire. Frames it cannot take yet stay queued in the
    /// ring (never dropped silently). Returns how many were handed over.
    fn tx_flush(&mut self, now: Instant) -> usize;
    /// Frames/bytes that left the TX ring (were put on the wire) since the last call.
    fn take_completions(&mut self, now: Instant) -> Completions;
    /// TX ring capacity and occupancy (frames written but not yet completed).
    fn tx_ring(&self) -> TxRingStatus;
    /// True if the link is up (carrier present).
    fn link_up(&self) -> bool;
    /// Cumulative counters.
    fn counters(&self) -> PortCounters;
    /// A descriptor that becomes readable when frames arrive, for an idle poll loop to sleep
    /// on with poll(2); `None` if the port has none (then keep polling).
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
}

impl<P: Port + ?Sized> Port for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn mac(&self) -> [u8; 6] {
        (**self).mac()
    }
    fn mtu(&self) -> usize {
        (**self).mtu()
    }
    fn rx_burst(&mut self, now: Instant, max: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        (**self).rx_burst(now, max, f)
    }
    fn tx_free(&mut self, now: Instant) -> usize {
        (**self).tx_free(now)
    }
    fn tx_frame(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, PortError> {
        (**self).tx_frame(now, fill)
    }
    fn tx_flush(&mut self, now: Instant) -> usize {
        (**self).tx_flush(now)
    }
    fn take_completions(&mut self, now: Instant) -> Completions {
        (**self).take_completions(now)
    }
    fn tx_ring(&self) -> TxRingStatus {
        (**self).tx_ring()
    }
    fn link_up(&self) -> bool {
        (**self).link_up()
    }
    fn counters(&self) -> PortCounters {
        (**self).counters()
    }
    fn poll_fd(&self) -> Option<RawFd> {
        (**self).poll_fd()
    }
}

/// Copies `frame` into the next TX slot of `port` (convenience for tests and slow paths).
pub fn send_copy<P: Port + ?Sized>(
    port: &mut P,
    now: Instant,
    frame: &[u8],
) -> Result<usize, PortError> {
    port.tx_frame(now, &mut |buf: &mut [u8]| {
        if frame.len() > buf.len() {
            // Report an impossible length so the port rejects it with BadLength.
            return usize::MAX;
        }
        buf[..frame.len()].copy_from_slice(frame);
        frame.len()
    })
}

/// Checks a length returned by a fill callback against the slot: `Ok(None)` for "nothing written".
pub(crate) fn check_fill_len(len: usize, slot_len: usize) -> Result<Option<usize>, PortError> {
    if len == 0 {
        Ok(None)
    } else if !(MIN_FRAME_LEN..=slot_len).contains(&len) {
        Err(PortError::BadLength)
    } else {
        Ok(Some(len))
    }
}
