//! The DPDK port backend (cargo feature `dpdk`): an ethdev port with one RX and one TX queue.
//!
//! - RX: `rte_eth_rx_burst` into a local array; the stack parses each frame in place in its
//!   mbuf; the burst is then freed to the RX pool in one call.
//! - TX: [`Port::tx_frame`] allocates an mbuf from the TX pool and lets the stack build the frame
//!   straight into its data room; the mbuf waits in a pending array until [`Port::tx_flush`]
//!   calls `rte_eth_tx_burst`. Mbufs the driver did not take stay pending for the next flush
//!   (nothing is dropped).
//! - Occupancy and completions come from the driver: the TX pool is used only for TX and has no
//!   per-lcore cache, so its in-use count is exactly "stash + pending + held by the driver"
//!   (the stash: a few mbufs taken from the pool in bulk, not yet written). When the
//!   driver frees a sent mbuf (after the NIC sent it, or at once for `net_af_packet`, which
//!   copies into the kernel's ring), that count drops; `rte_eth_tx_done_cleanup` is called each
//!   turn with frames outstanding, so drivers that free lazily report completions promptly
//!   (and never again once a driver says it has none).
//!
//! The EAL is process-wide: [`init_eal`] starts it once with the arguments of every DPDK port
//! (their devices as `--vdev` / `-a` plus each port's `eal_args`), choosing memory flags from the
//! hugepages on this machine unless the arguments already say.

use std::collections::VecDeque;
use std::sync::OnceLock;

use dpdk_bindings::{Eal, EthPort, Mbuf, Mempool, PortId, PortSetup, SocketId};
use saps_stack::Instant;

use super::{
    check_fill_len, Completions, Port, PortCounters, PortError, TxRingStatus, FRAME_OVERHEAD,
};
use crate::config::{Backend, PortConfig};

/// TX mbufs taken from the pool at once when the stash is empty.
const SPARE_BATCH: usize = 32;

static EAL: OnceLock<Result<Eal, String>> = OnceLock::new();

/// True if `device` names a virtual device (`net_ring0`, `net_af_packet0,iface=veth0`) rather
/// than a PCI address.
pub fn is_vdev(device: &str) -> bool {
    device.starts_with("net_") || device.starts_with("eth_") || device.contains('=')
}

/// The ethdev name DPDK gives `device`: a vdev's name before its `,key=value` arguments, or the
/// PCI address.
pub fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

fn has_flag(args: &[String], flags: &[&str]) -> bool {
    args.iter().any(|a| {
        flags
            .iter()
            .any(|f| a == f || a.starts_with(&format!("{f}=")))
    })
}

/// The EAL arguments for these ports: devices, user arguments, then memory, file-prefix, core
/// and telemetry defaults unless the user arguments set them. Returns a warning to log, if any.
pub fn eal_args_for(ports: &[&PortConfig]) -> (Vec<String>, Option<String>) {
    let mut args: Vec<String> = Vec::new();
    for p in ports {
        if let Some(dev) = p.iface.as_deref() {
            if is_vdev(dev) {
                args.push(format!("--vdev={dev}"));
            } else {
                args.push("-a".into());
                args.push(dev.to_string());
            }
        }
        args.extend(p.eal_args.iter().cloned());
    }
    let mut warning = None;
    let memory_flags = [
        "--no-huge",
        "--in-memory",
        "--huge-dir",
        "-m",
        "--socket-mem",
    ];
    if !has_flag(&args, &memory_flags) {
        let plan = hugepages::eal_memory_args(&hugepages::Status::read(), 256, 64);
        if plan.mode == hugepages::MemoryMode::NoHuge {
            // No runtime files: --in-memory is not allowed with --no-huge in DPDK 22.11.
            args.push("--no-shconf".into());
        }
        args.extend(plan.args);
        warning = plan.warning;
    }
    if !has_flag(&args, &["--file-prefix", "--in-memory", "--no-shconf"]) {
        args.push(format!("--file-prefix={}", hugepages::file_prefix()));
    }
    if !has_flag(&args, &["--no-pci", "-a", "--allow", "-b", "--block"])
        && ports.iter().all(|p| p.iface.as_deref().is_none_or(is_vdev))
    {
        // Virtual devices only: do not probe (and grab) every PCI NIC on the machine.
        args.push("--no-pci".into());
    }
    if !has_flag(&args, &["-l", "-c", "--lcores"]) {
        // The EAL pins the calling thread to its main lcore and threads spawned later inherit
        // that: map lcore 0 to every CPU this process may use, so saps' own pinning decides.
        let cpus = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(|v| v.trim().to_string())
            })
            .filter(|v| !v.is_empty());
        args.push(match cpus {
            Some(c) => format!("--lcores=0@({c})"),
            None => "-l 0".into(),
        });
    }
    if !has_flag(&args, &["--telemetry", "--no-telemetry"]) {
        // saps serves its own telemetry.
        args.push("--no-telemetry".into());
    }
    (args, warning)
}

/// Starts the EAL for the DPDK ports among `ports` (no-op if there are none or it already
/// started). The error is one line.
pub fn init_eal(ports: &[PortConfig]) -> Result<(), String> {
    let dpdk: Vec<&PortConfig> = ports
        .iter()
        .filter(|p| p.backend == Backend::Dpdk)
        .collect();
    if dpdk.is_empty() {
        return Ok(());
    }
    let r = EAL.get_or_init(|| {
        let (args, warning) = eal_args_for(&dpdk);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        tracing::info!(args = %args.join(" "), "starting the DPDK EAL");
        Eal::init(&args).map_err(|e| format!("DPDK EAL: {e}"))
    });
    r.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// A DPDK-backed [`Port`].
pub struct DpdkPort {
    name: String,
    port: EthPort,
    tx_pool: Mempool,
    mac: [u8; 6],
    mtu: usize,
    /// Admission bound: frames pending plus held by the driver.
    capacity: usize,
    /// Built, not yet handed to the driver (front = oldest).
    pending: Vec<Mbuf>,
    /// Allocated from the TX pool, not yet written (see [`SPARE_BATCH`]).
    spare: Vec<Mbuf>,
    /// False once the driver said it has no `tx_done_cleanup`.
    cleanup_supported: bool,
    pending_lens: VecDeque<u32>,
    /// Lengths of frames handed to the driver and not yet freed by it, oldest first.
    driver_lens: VecDeque<u32>,
    driver_bytes: u64,
    pending_bytes: u64,
    counters: PortCounters,
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        // Return the mbufs this port still owns before the pool handle goes (fields drop in
        // declaration order, `tx_pool` before these): a pool dropped with mbufs out is leaked on
        // purpose, and with it the EAL's clean-up.
        self.pending.clear();
        self.spare.clear();
    }
}

impl DpdkPort {
    /// Opens the port of `cfg` (the EAL must be started with [`init_eal`]).
    pub fn open(cfg: &PortConfig) -> Result<DpdkPort, String> {
        let eal = match EAL.get() {
            Some(Ok(e)) => e.clone(),
            Some(Err(e)) => return Err(e.clone()),
            None => return Err("the DPDK EAL was not started".into()),
        };
        let (id, name) = match cfg.iface.as_deref() {
            Some(dev) => (
                eal.port_by_name(device_name(dev))
                    .map_err(|e| e.text.clone())?,
                device_name(dev).to_string(),
            ),
            None if eal.port_count() > 0 => (PortId(0), "dpdk0".to_string()),
            None => {
                return Err(
                    "no DPDK port found; set iface to a PCI address or vdev like \"net_af_packet0,iface=veth0\""
                        .into(),
                )
            }
        };
        let rx_desc = cfg.rx_ring.min(u32::from(u16::MAX)) as u16;
        let tx_desc = cfg.tx_ring.min(u32::from(u16::MAX)) as u16;
        // Pools sized as powers of two minus one (DPDK's sweet spot): RX needs the ring plus a
        // burst in flight; TX needs the ring plus the pending array and the stash.
        let pool_size = |n: u32| (n + 256).next_power_of_two() - 1;
        let tag = format!("{}_{}", id.0, std::process::id() % 100_000);
        let rx_pool = Mempool::new(
            &eal,
            &format!("rx{tag}"),
            pool_size(u32::from(rx_desc) * 2),
            0,
            Mempool::DEFAULT_DATA_ROOM,
            SocketId::ANY,
        )
        .map_err(|e| format!("RX mbuf pool: {e}; too few hugepages? see saps hugepages status"))?;
        let tx_pool = Mempool::new(
            &eal,
            &format!("tx{tag}"),
            pool_size(u32::from(tx_desc) * 2),
            0,
            Mempool::DEFAULT_DATA_ROOM,
            SocketId::ANY,
        )
        .map_err(|e| format!("TX mbuf pool: {e}; too few hugepages? see saps hugepages status"))?;
        let setup = PortSetup {
            rx_desc,
            tx_desc,
            promiscuous: true,
        };
        let mut port =
            EthPort::configure(&eal, id, &setup, &rx_pool).map_err(|e| format!("{name}: {e}"))?;
        port.start().map_err(|e| format!("{name}: {e}"))?;
        let mac = match cfg.mac {
            Some(m) => m,
            None => port.mac().map_err(|e| format!("{name}: {e}"))?,
        };
        let mtu = port.mtu().map(usize::from).unwrap_or(1500).clamp(576, 9000);
        // The frame must fit one mbuf's data room.
        let mtu = mtu.min(usize::from(Mempool::DEFAULT_DATA_ROOM) - 128 - FRAME_OVERHEAD);
        let capacity = usize::from(port.tx_desc()).min(cfg.tx_ring as usize).max(1);
        Ok(DpdkPort {
            name,
            port,
            tx_pool,
            mac,
            mtu,
            capacity,
            pending: Vec::with_capacity(capacity),
            spare: Vec::with_capacity(SPARE_BATCH),
            cleanup_supported: true,
            pending_lens: VecDeque::with_capacity(capacity),
            driver_lens: VecDeque::with_capacity(capacity * 2),
            driver_bytes: 0,
            pending_bytes: 0,
            counters: PortCounters::default(),
        })
    }

    fn occupancy(&self) -> usize {
        self.pending.len() + self.driver_lens.len()
    }
}

impl Port for DpdkPort {
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
        let mut total = 0;
        let (mut packets, mut bytes) = (0u64, 0u64);
        while total < max {
            let want = (max - total).min(64);
            let got = self.port.rx_burst_with(want, &mut |frame: &[u8]| {
                packets += 1;
                bytes += frame.len() as u64;
                f(frame);
            });
            total += got;
            if got < want {
                break;
            }
        }
        self.counters.rx_packets += packets;
        self.counters.rx_bytes += bytes;
        total
    }

    fn tx_free(&mut self, _now: Instant) -> usize {
        self.capacity.saturating_sub(self.occupancy())
    }

    fn tx_frame(
        &mut self,
        _now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, PortError> {
        if self.occupancy() >= self.capacity {
            self.counters.tx_full += 1;
            return Err(PortError::TxFull);
        }
        // Mbufs come from a small stash refilled in bulk: one pool operation per SPARE_BATCH
        // frames instead of one per frame (the pool has no per-lcore cache, see the module
        // docs), and a turn that ends with "nothing to send" costs none.
        if self.spare.is_empty() && !self.tx_pool.alloc_bulk(SPARE_BATCH, &mut self.spare) {
            if let Some(m) = self.tx_pool.alloc() {
                self.spare.push(m);
            }
        }
        let Some(mut m) = self.spare.pop() else {
            self.counters.tx_full += 1;
            return Err(PortError::TxFull);
        };
        let room = m.room_mut();
        let room_len = room.len();
        let n = match check_fill_len(fill(room), room_len) {
            Ok(Some(n)) => n,
            // Unused (nothing written, or a bad length): back to the stash, untouched.
            Ok(None) => {
                self.spare.push(m);
                return Ok(0);
            }
            Err(e) => {
                self.spare.push(m);
                return Err(e);
            }
        };
        m.set_len(n);
        self.pending.push(m);
        self.pending_lens.push_back(n as u32);
        self.pending_bytes += n as u64;
        Ok(n)
    }

    fn tx_flush(&mut self, _now: Instant) -> usize {
        let sent = self.port.tx_burst(&mut self.pending);
        for _ in 0..sent {
            let Some(len) = self.pending_lens.pop_front() else {
                break;
            };
            self.pending_bytes -= u64::from(len);
            self.driver_bytes += u64::from(len);
            self.driver_lens.push_back(len);
        }
        sent
    }

    fn take_completions(&mut self, _now: Instant) -> Completions {
        if self.driver_lens.is_empty() {
            // Nothing handed to the driver is outstanding: no completion is possible, so skip
            // the driver and pool calls (this runs every turn of the poll loop, idle or not).
            return Completions::default();
        }
        // Drivers that free sent mbufs lazily (at their free threshold) free them now. The
        // others report "not supported" (net_af_packet frees at once): asked once, not per turn.
        if self.cleanup_supported && self.port.tx_done_cleanup(0).is_none() {
            self.cleanup_supported = false;
        }
        let in_use = self.tx_pool.in_use() as usize;
        let held_by_driver = in_use.saturating_sub(self.pending.len() + self.spare.len());
        let done = self.driver_lens.len().saturating_sub(held_by_driver);
        let mut c = Completions::default();
        for _ in 0..done {
            let Some(len) = self.driver_lens.pop_front() else {
                break;
            };
            c.packets += 1;
            c.bytes += u64::from(len);
        }
        self.driver_bytes -= c.bytes;
        self.counters.tx_packets += c.packets as u64;
        self.counters.tx_bytes += c.bytes;
        c
    }

    fn tx_ring(&self) -> TxRingStatus {
        TxRingStatus {
            capacity: self.capacity,
            packets: self.occupancy(),
            bytes: self.pending_bytes + self.driver_bytes,
        }
    }

    fn link_up(&self) -> bool {
        self.port.link().map(|l| l.up).unwrap_or(false)
    }

    fn counters(&self) -> PortCounters {
        let mut c = self.counters;
        if let Ok(s) = self.port.stats() {
            c.rx_drops = s.imissed + s.rx_nombuf;
            c.tx_drops = s.oerrors;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings() {
        assert!(is_vdev("net_ring0"));
        assert!(is_vdev("net_af_packet0,iface=veth0"));
        assert!(!is_vdev("0000:01:00.0"));
        assert_eq!(device_name("net_af_packet0,iface=veth0"), "net_af_packet0");
        assert_eq!(device_name("0000:01:00.0"), "0000:01:00.0");
    }
}
