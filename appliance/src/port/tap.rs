//! TAP port: a Linux TAP device created through `/dev/net/tun` (`IFF_TAP | IFF_NO_PI`).
//!
//! The appliance is the far end of the TAP "wire": frames it sends are received by the kernel on
//! the TAP interface and vice versa. I/O is one non-blocking `read`/`write` per frame, which is
//! fine for TAP's role (development, tests, small deployments). A software TX ring in front of the
//! device makes TX occupancy and completions behave like the other ports: `tx_flush` writes
//! queued frames until the device would block, and the rest stay queued.

use super::{Completions, Port, PortCounters, PortError, SlotRing, TxRingStatus, FRAME_OVERHEAD};
use crate::os;
use saps_stack::Instant;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Configuration of a [`TapPort`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapConfig {
    /// Device name to create or attach to (at most 15 bytes; `%d` lets the kernel number it).
    pub name: String,
    /// MAC the appliance uses on this wire. Default: the device's MAC with the last byte flipped
    /// and the locally-administered bit set, so it differs from the kernel side's address.
    pub mac: Option<[u8; 6]>,
    /// Software TX ring slots.
    pub tx_ring: usize,
    /// Bring the interface up (SIOCSIFFLAGS IFF_UP) after creating it.
    pub bring_up: bool,
}

impl TapConfig {
    /// Defaults for device `name`: derived MAC, 512 TX slots, brought up.
    pub fn new(name: &str) -> TapConfig {
        TapConfig {
            name: name.to_string(),
            mac: None,
            tx_ring: 512,
            bring_up: true,
        }
    }
}

/// A TAP device used as a port. The device disappears when the port is dropped (unless it was
/// made persistent by someone else).
pub struct TapPort {
    file: File,
    ctl: OwnedFd,
    name: String,
    mac: [u8; 6],
    mtu: usize,
    tx: SlotRing,
    rx_buf: Vec<u8>,
    done: Completions,
    counters: PortCounters,
}

impl TapPort {
    /// Creates (or attaches to) the TAP device. Errors name the device and the failing call.
    pub fn open(cfg: &TapConfig) -> io::Result<TapPort> {
        let (file, name) = os::tap_open(&cfg.name)?;
        let ctl = os::control_socket()?;
        if cfg.bring_up {
            let flags = os::if_flags(&ctl, &name)?;
            os::set_if_flags(&ctl, &name, flags | os::IFF_UP)?;
        }
        let dev_mac = os::if_hwaddr(&ctl, &name)?;
        let mtu = os::if_mtu(&ctl, &name)?;
        let mac = cfg.mac.unwrap_or({
            let mut m = dev_mac;
            m[0] = (m[0] | 0x02) & !0x01;
            m[5] ^= 0x01;
            m
        });
        let slot = mtu + FRAME_OVERHEAD;
        Ok(TapPort {
            file,
            ctl,
            name,
            mac,
            mtu,
            tx: SlotRing::new(cfg.tx_ring, slot),
            // Room beyond the MTU so that an oversize frame is detected, not silently truncated.
            rx_buf: vec![0; slot.max(2048) + 1],
            done: Completions::default(),
            counters: PortCounters::default(),
        })
    }

    /// MAC of the kernel side of the TAP device.
    pub fn kernel_mac(&self) -> io::Result<[u8; 6]> {
        os::if_hwaddr(&self.ctl, &self.name)
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn rx_burst(&mut self, _now: Instant, max: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max {
            match self.file.read(&mut self.rx_buf) {
                Ok(0) => break,
                Ok(len) if len == self.rx_buf.len() => {
                    // Possibly truncated: larger than any frame we accept.
                    self.counters.rx_drops += 1;
                }
                Ok(len) => {
                    f(&self.rx_buf[..len]);
                    self.counters.rx_packets += 1;
                    self.counters.rx_bytes += len as u64;
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: nothing more; other errors (device down) also end the burst.
                Err(_) => break,
            }
        }
        n
    }

    fn tx_free(&mut self, _now: Instant) -> usize {
        self.tx.free()
    }

    fn tx_frame(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, PortError> {
        let r = self.tx.push_with(now, fill);
        if r == Err(PortError::TxFull) {
            self.counters.tx_full += 1;
        }
        r
    }

    fn tx_flush(&mut self, _now: Instant) -> usize {
        let mut handed = 0;
        while let Some((frame, _)) = self.tx.front() {
            let len = frame.len();
            match self.file.write(frame) {
                Ok(_) => {
                    self.counters.tx_packets += 1;
                    self.counters.tx_bytes += len as u64;
                    self.done.packets += 1;
                    self.done.bytes += len as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EIO (interface down) or EINVAL: the frame cannot be sent; count it, move on so
                // one bad frame does not stall the ring.
                Err(_) => self.counters.tx_drops += 1,
            }
            self.tx.pop_front();
            handed += 1;
        }
        handed
    }

    fn take_completions(&mut self, _now: Instant) -> Completions {
        std::mem::take(&mut self.done)
    }

    fn tx_ring(&self) -> TxRingStatus {
        TxRingStatus {
            capacity: self.tx.capacity(),
            packets: self.tx.len(),
            bytes: self.tx.bytes(),
        }
    }

    fn link_up(&self) -> bool {
        os::if_flags(&self.ctl, &self.name)
            .map(|f| f & os::IFF_UP != 0 && f & os::IFF_RUNNING != 0)
            .unwrap_or(false)
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn counters(&self) -> PortCounters {
        self.counters
    }
}
