//! `saps bench-dpdk`: the `dpdk` port backend against `dpdk-testpmd` on the same virtual device,
//! and the `dpdk` backend against the `af_packet` backend, in one run.
//!
//! Two throwaway namespaces joined by one veth pair (offloads off): a client and a server side.
//! The server side's end is driven by DPDK's `net_af_packet` vdev, either by the appliance
//! (`saps run`, `backend = "dpdk"`, its `udp_echo` service) or by `dpdk-testpmd
//! --forward-mode=macswap` (which bounces every frame back with the MAC addresses swapped: the
//! limit of the port itself). Both get the same vdev string, ring sizes, RX burst (32), EAL memory
//! flags (`--no-huge -m 512 --no-shconf`) and CPU.
//!
//! The generator is one thread in the client namespace writing prebuilt 60-byte frames (an
//! 18-byte UDP payload: 64 bytes on a wire with FCS) to an AF_PACKET TX ring on the client's
//! veth end, to the echo port, from 16 source ports, as fast as the ring takes them. What comes
//! back is counted the same way for both servers: the client veth's `rx_packets` (read from
//! `/proc/thread-self/net/dev` inside the namespace), because testpmd's bounced frames carry an
//! IP destination that is not the client's and no socket would see them. The client's veth end
//! has no IPv4 address during this phase, so the kernel drops both kinds of returned frame at
//! the same point and never answers with ICMP; the appliance learns the client's MAC from the
//! datagrams themselves. The frames carry MACs that are neither veth end's own (the appliance
//! is configured with the server one; testpmd is promiscuous), so both kernels drop them before
//! IP processing: less kernel work on both cores that would hide the servers' difference.
//!
//! Each run measures the appliance and testpmd back to back (the order alternates between runs,
//! so machine noise hits both alike), each after a warm-up second. The bulk phase then gives the
//! client's veth end its address and downloads from the appliance's `source` service (port 19)
//! with a kernel TCP socket, once on the `dpdk` backend and once on `af_packet`, per run.
//!
//! CPU placement (2-core machines): the client (generator, bulk reader) on core 0; the server
//! (the whole `saps run` or `dpdk-testpmd` process, `taskset -c 1`, the appliance with
//! `cores = [1]` so it busy-polls, testpmd with both its lcores mapped to CPU 1) on core 1.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use saps_stack::wire::checksum;

use crate::bench::{pin_current, ratio, read_pattern};
use crate::port::af_packet::{AfPacketConfig, AfPacketPort};
use crate::port::Port;
use crate::topology::{Netns, VethPair};

/// The client's address (given to its veth end for the bulk phase only).
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 1);
/// The server side's address (the appliance's; testpmd has none).
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 2);
/// The server's MAC in the UDP phase (the appliance's `mac`; testpmd is promiscuous) and the
/// generator's. Neither is the veth ends' own, so both kernels see these frames as addressed to
/// another host and drop them right after the AF_PACKET taps, before any IP processing: kernel
/// work that would otherwise be charged to the generator's and the server's cores (both servers
/// alike) and hide the difference between them.
const SERVER_MAC: [u8; 6] = [0x02, 0x5a, 0, 0, 0, 0x02];
/// See [`SERVER_MAC`].
const CLIENT_MAC: [u8; 6] = [0x02, 0x5a, 0, 0, 0, 0x01];
/// The appliance's UDP echo port.
const ECHO_PORT: u16 = 7;
/// The appliance's byte-source port (bulk phase).
const SOURCE_PORT: u16 = 19;
/// UDP payload bytes: 14 + 20 + 8 + 18 = 60-byte frames, 64 on a wire with the FCS.
pub const PAYLOAD: usize = 18;
/// Source ports the generator cycles through (one prebuilt frame each).
const FLOWS: u16 = 16;
/// Telemetry address inside the server namespace.
const TELEMETRY: &str = "127.0.0.1:9100";
/// EAL memory flags of both servers: no hugepages needed (net_af_packet copies every frame
/// between the kernel's ring and an mbuf anyway, so the memory kind hardly matters).
const EAL_MEMORY: [&str; 4] = ["--no-huge", "-m", "512", "--no-shconf"];

/// Options of `saps bench-dpdk`.
#[derive(Clone, Debug)]
pub struct DpdkBenchOptions {
    /// Seconds each measurement phase runs (after a warm-up).
    pub seconds: u64,
    /// Measurement runs (each: appliance and testpmd UDP, dpdk and af_packet bulk).
    pub runs: u32,
    /// Warm-up before each UDP measurement, milliseconds.
    pub warmup_ms: u64,
    /// RX and TX ring size of the server's port (`rx_ring`/`tx_ring`, testpmd `--rxd/--txd`,
    /// the vdev's `framecnt`); default: the appliance's default ring size.
    pub ring: u32,
    /// Pin the client to core 0 and the server to core 1 (when the machine has 2+ cores).
    pub pin: bool,
    /// Also run the bulk-TCP phase.
    pub bulk: bool,
}

impl Default for DpdkBenchOptions {
    fn default() -> Self {
        DpdkBenchOptions {
            seconds: 5,
            runs: 3,
            warmup_ms: 1000,
            ring: crate::config::defaults::RX_RING,
            pin: true,
            bulk: true,
        }
    }
}

impl DpdkBenchOptions {
    /// The short mode of the test: one run of one second each, short warm-up.
    pub fn quick() -> Self {
        DpdkBenchOptions {
            seconds: 1,
            runs: 1,
            warmup_ms: 300,
            ..DpdkBenchOptions::default()
        }
    }
}

/// One server's UDP echo phase.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UdpRate {
    /// Frames back at the client per second.
    pub returned_pps: f64,
    /// Frames the generator put on the link per second (the offered load).
    pub offered_pps: f64,
    /// CPU time of the server process (all threads, user and kernel) per second of the phase:
    /// 1.0 = it had its core to itself.
    pub server_cpu: f64,
}

impl UdpRate {
    /// Frames returned per CPU-second of the server: its cost per frame, independent of how
    /// much of its core other jobs on the machine took.
    pub fn per_cpu_second(&self) -> f64 {
        ratio(self.returned_pps, self.server_cpu)
    }
}

/// One run's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DpdkRun {
    /// The appliance on the `dpdk` backend, `udp_echo`.
    pub saps: UdpRate,
    /// `dpdk-testpmd --forward-mode=macswap`.
    pub testpmd: UdpRate,
    /// Bulk TCP goodput on the `dpdk` backend, bits per second (0 if not run).
    pub bulk_dpdk_bps: f64,
    /// Bulk TCP goodput on the `af_packet` backend, bits per second (0 if not run).
    pub bulk_af_packet_bps: f64,
}

impl DpdkRun {
    /// Appliance echo rate over testpmd's bounce rate.
    pub fn udp_ratio(&self) -> f64 {
        ratio(self.saps.returned_pps, self.testpmd.returned_pps)
    }

    /// The same ratio per CPU-second of each server (see [`UdpRate::per_cpu_second`]).
    pub fn udp_cpu_ratio(&self) -> f64 {
        ratio(self.saps.per_cpu_second(), self.testpmd.per_cpu_second())
    }

    /// `dpdk` bulk goodput over `af_packet` bulk goodput.
    pub fn bulk_ratio(&self) -> f64 {
        ratio(self.bulk_dpdk_bps, self.bulk_af_packet_bps)
    }
}

/// Everything `saps bench-dpdk` measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DpdkBenchReport {
    /// Seconds per phase.
    pub seconds: u64,
    /// The vdev string both servers used (with this run's interface name).
    pub vdev: String,
    /// Ring size of the server's port.
    pub ring: u32,
    /// Client core and server core, if pinned.
    pub pinning: Option<(usize, usize)>,
    /// Whether the bulk phase ran.
    pub bulk: bool,
    /// The runs, in order.
    pub runs: Vec<DpdkRun>,
}

/// The median of `v` (0 when empty; the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

impl DpdkBenchReport {
    fn col(&self, f: impl Fn(&DpdkRun) -> f64) -> Vec<f64> {
        self.runs.iter().map(f).collect()
    }

    /// Median over the runs of the appliance/testpmd ratio.
    pub fn udp_ratio(&self) -> f64 {
        median(self.col(DpdkRun::udp_ratio))
    }

    /// Median over the runs of the appliance/testpmd ratio per server CPU-second.
    pub fn udp_cpu_ratio(&self) -> f64 {
        median(self.col(DpdkRun::udp_cpu_ratio))
    }

    /// Median over the runs of the dpdk/af_packet bulk ratio.
    pub fn bulk_ratio(&self) -> f64 {
        median(self.col(DpdkRun::bulk_ratio))
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let pin = match self.pinning {
            Some((c, sv)) => format!("client on core {c}, server on core {sv}"),
            None => "unpinned".into(),
        };
        let _ = writeln!(
            s,
            "saps bench-dpdk: UDP echo of {} B frames ({PAYLOAD} B payload) on {} (rings {}), {} s per phase, {pin}",
            14 + 20 + 8 + PAYLOAD,
            self.vdev,
            self.ring,
            self.seconds
        );
        let _ = writeln!(
            s,
            "{:<4} {:>11} {:>11} {:>6} | {:>8} {:>8} | {:>11} {:>11} {:>6} | {:>9} {:>9}",
            "run",
            "saps pps",
            "tpmd pps",
            "ratio",
            "saps cpu",
            "tpmd cpu",
            "saps /cpu-s",
            "tpmd /cpu-s",
            "ratio",
            "offered s",
            "offered t"
        );
        for (i, r) in self.runs.iter().enumerate() {
            let _ = writeln!(
                s,
                "{:<4} {:>11.0} {:>11.0} {:>5.2}x | {:>7.0}% {:>7.0}% | {:>11.0} {:>11.0} {:>5.2}x | {:>9.0} {:>9.0}",
                i + 1,
                r.saps.returned_pps,
                r.testpmd.returned_pps,
                r.udp_ratio(),
                r.saps.server_cpu * 100.0,
                r.testpmd.server_cpu * 100.0,
                r.saps.per_cpu_second(),
                r.testpmd.per_cpu_second(),
                r.udp_cpu_ratio(),
                r.saps.offered_pps,
                r.testpmd.offered_pps
            );
        }
        let met = |v: f64| if v >= 0.8 { "met" } else { "NOT met" };
        let (u, c) = (self.udp_ratio(), self.udp_cpu_ratio());
        let _ = writeln!(
            s,
            "median ratio saps/testpmd: {u:.2}x in packets per second ({}), {c:.2}x per server CPU-second ({}); target >= 0.80x",
            met(u),
            met(c)
        );
        if self.bulk {
            let _ = writeln!(
                s,
                "bulk TCP goodput (one download from port {SOURCE_PORT}, kernel TCP client):"
            );
            let _ = writeln!(
                s,
                "{:<4} {:>14} {:>14} {:>7}",
                "run", "dpdk Mb/s", "af_packet Mb/s", "ratio"
            );
            for (i, r) in self.runs.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "{:<4} {:>14.0} {:>14.0} {:>6.2}x",
                    i + 1,
                    r.bulk_dpdk_bps / 1e6,
                    r.bulk_af_packet_bps / 1e6,
                    r.bulk_ratio()
                );
            }
            let _ = writeln!(s, "median ratio dpdk/af_packet {:.2}x", self.bulk_ratio());
        }
        s
    }

    /// The report as one JSON object: flat keys with numbers (medians) and per-run arrays.
    pub fn json(&self) -> String {
        let mut s = String::from("{");
        let fin = |v: f64| if v.is_finite() { v } else { 0.0 };
        let mut num = |k: &str, v: f64| {
            let _ = write!(s, "\"{k}\":{:.3},", fin(v));
        };
        num("seconds", self.seconds as f64);
        num("runs", self.runs.len() as f64);
        num("ring", f64::from(self.ring));
        num("payload_bytes", PAYLOAD as f64);
        num("saps_pps", median(self.col(|r| r.saps.returned_pps)));
        num("testpmd_pps", median(self.col(|r| r.testpmd.returned_pps)));
        num("udp_ratio", self.udp_ratio());
        num(
            "saps_pps_per_cpu_s",
            median(self.col(|r| r.saps.per_cpu_second())),
        );
        num(
            "testpmd_pps_per_cpu_s",
            median(self.col(|r| r.testpmd.per_cpu_second())),
        );
        num("udp_cpu_ratio", self.udp_cpu_ratio());
        if self.bulk {
            num(
                "bulk_dpdk_mbps",
                median(self.col(|r| r.bulk_dpdk_bps / 1e6)),
            );
            num(
                "bulk_af_packet_mbps",
                median(self.col(|r| r.bulk_af_packet_bps / 1e6)),
            );
            num("bulk_ratio", self.bulk_ratio());
        }
        let mut arr = |k: &str, v: Vec<f64>| {
            let items: Vec<String> = v.iter().map(|x| format!("{:.3}", fin(*x))).collect();
            let _ = write!(s, "\"{k}\":[{}],", items.join(","));
        };
        arr("runs_saps_pps", self.col(|r| r.saps.returned_pps));
        arr("runs_testpmd_pps", self.col(|r| r.testpmd.returned_pps));
        arr("runs_saps_offered_pps", self.col(|r| r.saps.offered_pps));
        arr(
            "runs_testpmd_offered_pps",
            self.col(|r| r.testpmd.offered_pps),
        );
        arr("runs_saps_cpu", self.col(|r| r.saps.server_cpu));
        arr("runs_testpmd_cpu", self.col(|r| r.testpmd.server_cpu));
        if self.bulk {
            arr("runs_bulk_dpdk_mbps", self.col(|r| r.bulk_dpdk_bps / 1e6));
            arr(
                "runs_bulk_af_packet_mbps",
                self.col(|r| r.bulk_af_packet_bps / 1e6),
            );
        }
        let pinned = match self.pinning {
            Some((c, sv)) => format!("\"client_core\":{c},\"server_core\":{sv}"),
            None => "\"client_core\":null,\"server_core\":null".into(),
        };
        s.push_str(&pinned);
        s.push('}');
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Frames and counters.

/// An Ethernet/IPv4/UDP frame with valid IP and UDP checksums and a `payload`-byte payload.
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: usize,
) -> Vec<u8> {
    let udp_len = 8 + payload;
    let ip_len = 20 + udp_len;
    let mut f = vec![0u8; 14 + ip_len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let c = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    {
        let udp = &mut f[34..];
        udp[0..2].copy_from_slice(&src.1.to_be_bytes());
        udp[2..4].copy_from_slice(&dst.1.to_be_bytes());
        udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        for (i, b) in udp[8..].iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }
    }
    let pseudo = checksum::pseudo_header(src.0, dst.0, 17, udp_len as u32);
    let mut c = !checksum::fold(checksum::sum(&f[34..], pseudo));
    if c == 0 {
        c = 0xffff; // 0 means "no checksum" in UDP over IPv4
    }
    f[40..42].copy_from_slice(&c.to_be_bytes());
    f
}

/// True if `frame` is IPv4/UDP to or from the echo port: an echo from the appliance, or a frame
/// testpmd bounced (the generator never sees its own frames).
fn is_echo(frame: &[u8]) -> bool {
    frame.len() >= 42
        && frame[12..14] == [0x08, 0x00]
        && frame[23] == 17
        && (frame[34..36] == ECHO_PORT.to_be_bytes() || frame[36..38] == ECHO_PORT.to_be_bytes())
}

/// (rx_packets, tx_packets) of `dev` from a `/proc/net/dev` text.
pub fn parse_net_dev(text: &str, dev: &str) -> Option<(u64, u64)> {
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != dev {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        return (v.len() >= 10).then(|| (v[1], v[9]));
    }
    None
}

/// (rx_packets, tx_packets) of `dev` in `ns` (sysfs shows the namespace it was mounted in, so
/// read the calling thread's own view of /proc/net/dev from a thread inside `ns`).
fn dev_counters(ns: &Netns, dev: &str) -> Result<(u64, u64), String> {
    let d = dev.to_string();
    let h = ns
        .spawn(move || {
            let text = std::fs::read_to_string("/proc/thread-self/net/dev")?;
            parse_net_dev(&text, &d)
                .ok_or_else(|| io::Error::other(format!("{d} not in /proc/net/dev")))
        })
        .map_err(|e| e.to_string())?;
    h.join()
        .map_err(|_| "reading counters panicked".to_string())?
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// The generator.

const GEN_IDLE: u8 = 0;
const GEN_PROBE: u8 = 1;
const GEN_BLAST: u8 = 2;
const GEN_STOP: u8 = 3;

struct GenCtrl {
    phase: AtomicU8,
    echoed: AtomicBool,
}

/// The generator thread, stopped and joined on drop.
struct Generator {
    ctrl: Arc<GenCtrl>,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl Generator {
    fn start(
        ns: &Netns,
        ifname: &str,
        frames: Vec<Vec<u8>>,
        ring: u32,
        core: Option<usize>,
    ) -> Result<Generator, String> {
        let ctrl = Arc::new(GenCtrl {
            phase: AtomicU8::new(GEN_IDLE),
            echoed: AtomicBool::new(false),
        });
        let c = ctrl.clone();
        let ifname = ifname.to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let join = ns
            .spawn(move || {
                pin_current(core);
                let mut cfg = AfPacketConfig::new(&ifname);
                cfg.tx_frames = ring as usize;
                cfg.rx_frames = 64;
                let port = match AfPacketPort::open(&cfg) {
                    Ok(p) => {
                        let _ = ready_tx.send(Ok(()));
                        p
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return Err(e);
                    }
                };
                generate(port, &frames, &c);
                Ok(())
            })
            .map_err(|e| format!("the generator: {e}"))?;
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the generator did not start".to_string())?
            .map_err(|e| format!("the generator: {e}"))?;
        Ok(Generator {
            ctrl,
            join: Some(join),
        })
    }

    fn set(&self, phase: u8) {
        self.ctrl.phase.store(phase, Ordering::Relaxed);
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.set(GEN_STOP);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn generate(mut port: AfPacketPort, frames: &[Vec<u8>], ctrl: &GenCtrl) {
    let clock = crate::runtime::Clock::start();
    let mut next = 0usize;
    let mut send = |port: &mut AfPacketPort, now, budget: usize| {
        for _ in 0..budget {
            let f = &frames[next % frames.len()];
            let r = port.tx_frame(now, &mut |buf: &mut [u8]| {
                buf[..f.len()].copy_from_slice(f);
                f.len()
            });
            if r.is_err() {
                break;
            }
            next = next.wrapping_add(1);
        }
        port.tx_flush(now);
        let _ = port.take_completions(now);
    };
    loop {
        let now = clock.now();
        match ctrl.phase.load(Ordering::Relaxed) {
            GEN_STOP => return,
            GEN_IDLE => {
                // Drop what arrived meanwhile so the probe sees fresh echoes only.
                port.rx_burst(now, 64, &mut |_| {});
                std::thread::sleep(Duration::from_millis(5));
            }
            GEN_PROBE => {
                send(&mut port, now, 1);
                std::thread::sleep(Duration::from_millis(10));
                let mut seen = false;
                port.rx_burst(now, 64, &mut |f| seen |= is_echo(f));
                if seen {
                    ctrl.echoed.store(true, Ordering::Relaxed);
                }
            }
            // The RX ring is left alone while blasting: once full, the kernel drops the copies
            // for this socket cheaply; the interface counters still count every frame.
            _ => send(&mut port, now, 64),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Servers.

/// A server process (the appliance or testpmd), stopped on drop.
struct Server {
    child: Child,
    files: Vec<std::path::PathBuf>,
    log_path: std::path::PathBuf,
}

impl Server {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        log.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    }

    /// Some(error) if the process has exited.
    fn exited(&mut self, what: &str) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{what} exited ({status}): {}", self.log_tail())),
            _ => None,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        crate::topology::stop_child(&mut self.child, Duration::from_secs(10));
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

struct Topology {
    cl: Netns,
    gw: Netns,
    link: VethPair,
    /// Ring size of the server's port.
    ring: u32,
}

fn temp_paths(kind: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let id = format!("{}-{}", std::process::id(), crate::topology::unique_id());
    (
        std::env::temp_dir().join(format!("saps-bench-dpdk-{kind}-{id}.toml")),
        std::env::temp_dir().join(format!("saps-bench-dpdk-{kind}-{id}.log")),
    )
}

/// The server command: `taskset -c CORE program` inside the server namespace when pinned.
fn server_command(topo: &Topology, core: Option<usize>, program: &str) -> std::process::Command {
    match core {
        Some(c) => {
            let mut cmd = topo.gw.command("taskset");
            cmd.args(["-c", &c.to_string(), program]);
            cmd
        }
        None => topo.gw.command(program),
    }
}

fn vdev(topo: &Topology) -> String {
    // framecnt: the kernel ring behind the vdev (its default is 512 frames), the same size as
    // the port's descriptor rings.
    format!(
        "net_af_packet0,iface={},framecnt={}",
        topo.link.a, topo.ring
    )
}

/// `saps run` on `backend` ("dpdk" or "af_packet") with udp_echo on 7 and source on 19.
/// With `mac`, the appliance uses [`SERVER_MAC`] instead of the interface's own.
fn start_saps(
    topo: &Topology,
    backend: &str,
    core: Option<usize>,
    ring: u32,
    mac: bool,
) -> Result<Server, String> {
    let cores = core.map(|c| format!("cores = [{c}]\n")).unwrap_or_default();
    let mac = if mac {
        let m = SERVER_MAC.map(|b| format!("{b:02x}")).join(":");
        format!("mac = \"{m}\"\n")
    } else {
        String::new()
    };
    let (iface, eal) = if backend == "dpdk" {
        let args: Vec<String> = EAL_MEMORY.iter().map(|a| format!("\"{a}\"")).collect();
        (vdev(topo), format!("eal_args = [{}]\n", args.join(", ")))
    } else {
        (topo.link.a.clone(), String::new())
    };
    let config = format!(
        "# Written by `saps bench-dpdk`.\n{cores}\n[[port]]\nname = \"ext\"\nbackend = \"{backend}\"\niface = \"{iface}\"\nipv4 = \"{SERVER_IP}/24\"\nrx_ring = {ring}\ntx_ring = {ring}\n{mac}{eal}\n[[service]]\nkind = \"udp_echo\"\nport = {ECHO_PORT}\n\n[[service]]\nkind = \"source\"\nport = {SOURCE_PORT}\n\n[telemetry]\nlisten = \"{TELEMETRY}\"\n"
    );
    let (config_path, log_path) = temp_paths(backend);
    std::fs::write(&config_path, config).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let child = server_command(topo, core, exe.to_str().unwrap_or("saps"))
        .args(["--log-level", "warn", "run", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("starting the appliance: {e}"))?;
    Ok(Server {
        child,
        files: vec![config_path],
        log_path,
    })
}

/// `dpdk-testpmd --forward-mode=macswap` on the same vdev, rings and burst as the appliance.
fn start_testpmd(topo: &Topology, core: Option<usize>, ring: u32) -> Result<Server, String> {
    let (_, log_path) = temp_paths("testpmd");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    // testpmd needs a main lcore and a forwarding lcore: both on the server's CPU (the main one
    // only wakes once a second to print statistics); unpinned, both may run on any CPU, as the
    // appliance's threads may.
    let cpus = match core {
        Some(c) => c.to_string(),
        None => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            format!("(0-{})", n - 1)
        }
    };
    let mut args: Vec<String> = vec![
        format!("--lcores=0@{cpus},1@{cpus}"),
        format!("--vdev={}", vdev(topo)),
        "--no-pci".into(),
        "--no-telemetry".into(),
    ];
    args.extend(EAL_MEMORY.iter().map(|s| s.to_string()));
    args.push("--".into());
    args.extend(
        [
            "--forward-mode=macswap",
            "--auto-start",
            "--stats-period=1",
            "--nb-cores=1",
            "--rxq=1",
            "--txq=1",
            &format!("--rxd={ring}"),
            &format!("--txd={ring}"),
            &format!("--burst={}", crate::runtime::RX_BURST),
            // Its default pool (~150k mbufs) does not fit the 512 MB; the appliance's pools
            // hold 2047 each.
            "--total-num-mbufs=8191",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let child = server_command(topo, core, "dpdk-testpmd")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .spawn()
        .map_err(|e| format!("starting dpdk-testpmd: {e}"))?;
    Ok(Server {
        child,
        files: Vec::new(),
        log_path,
    })
}

/// Probe until `server` echoes (or exits, or 30 s pass), warm up, then measure for `seconds`.
fn measure_udp(
    topo: &Topology,
    gen: &Generator,
    server: &mut Server,
    what: &str,
    seconds: u64,
    warmup: Duration,
) -> Result<UdpRate, String> {
    gen.ctrl.echoed.store(false, Ordering::Relaxed);
    gen.set(GEN_PROBE);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gen.ctrl.echoed.load(Ordering::Relaxed) {
        if let Some(e) = server.exited(what) {
            gen.set(GEN_IDLE);
            return Err(e);
        }
        if Instant::now() > deadline {
            gen.set(GEN_IDLE);
            return Err(format!(
                "{what} did not echo within 30 s: {}",
                server.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gen.set(GEN_BLAST);
    std::thread::sleep(warmup);
    let pid = server.child.id();
    let (rx0, tx0) = dev_counters(&topo.cl, &topo.link.b)?;
    let cpu0 = cpu_ns(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (rx1, tx1) = dev_counters(&topo.cl, &topo.link.b)?;
    let cpu1 = cpu_ns(pid);
    let secs = t0.elapsed().as_secs_f64();
    gen.set(GEN_IDLE);
    if let Some(e) = server.exited(what) {
        return Err(e);
    }
    Ok(UdpRate {
        returned_pps: rx1.saturating_sub(rx0) as f64 / secs,
        offered_pps: tx1.saturating_sub(tx0) as f64 / secs,
        server_cpu: cpu1.saturating_sub(cpu0) as f64 / 1e9 / secs,
    })
}

/// One bulk download from the appliance's source service for `seconds`, read by a kernel socket
/// in the client namespace and checked against the byte pattern. Bits per second.
fn bulk(
    topo: &Topology,
    server: &mut Server,
    what: &str,
    seconds: u64,
    core: Option<usize>,
) -> Result<f64, String> {
    let addr = SocketAddr::from((SERVER_IP, SOURCE_PORT));
    // Wait for the port to accept (the appliance starts in the background).
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        let h = topo
            .cl
            .spawn(move || TcpStream::connect_timeout(&addr, Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        match h.join().map_err(|_| "connect panicked".to_string())? {
            Ok(s) => break s,
            Err(e) => {
                if let Some(err) = server.exited(what) {
                    return Err(err);
                }
                if Instant::now() > deadline {
                    return Err(format!("{what}: cannot connect to port {SOURCE_PORT}: {e}"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    read_pattern(&topo.cl, stream, seconds, core)
        .map_err(|e| format!("bulk download ({what}): {e}"))
}

/// CPU time (ns, user and kernel) of every thread of process `pid` so far, from each thread's
/// `/proc/PID/task/TID/schedstat` (nanosecond resolution, unlike the tick counts of `stat`).
/// Threads that exited are missed; the servers' threads live as long as they do.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Run the benchmark. Errors are one line, ready to print after `error: `.
pub fn run(opts: &DpdkBenchOptions) -> Result<DpdkBenchReport, String> {
    if !cfg!(feature = "dpdk") {
        return Err("this saps was built without the dpdk backend; rebuild with: cargo build --release -p saps --features dpdk".into());
    }
    crate::topology::check_root_and_programs(
        "saps bench-dpdk",
        &[
            ("ip", "iproute2"),
            ("ethtool", "ethtool"),
            ("taskset", "util-linux"),
            ("dpdk-testpmd", "dpdk-dev"),
        ],
    )?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pinning = (opts.pin && cores >= 2).then_some((0usize, 1usize));
    let (client_core, server_core) = match pinning {
        Some((c, s)) => (Some(c), Some(s)),
        None => (None, None),
    };
    let seconds = opts.seconds.max(1);
    let ring = opts.ring.clamp(64, 4096);
    let warmup = Duration::from_millis(opts.warmup_ms);

    // Namespaces a killed earlier run left behind (Ctrl-C skips the clean-up of `Drop`).
    crate::topology::remove_stale("saps-");
    let cl = Netns::new("saps-bd-cl").map_err(|e| e.to_string())?;
    let gw = Netns::new("saps-bd-gw").map_err(|e| e.to_string())?;
    let link = VethPair::new(&gw, &cl).map_err(|e| e.to_string())?;
    let topo = Topology { cl, gw, link, ring };
    let frames: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| {
            udp_frame(
                SERVER_MAC,
                CLIENT_MAC,
                (CLIENT_IP, 40_000 + i),
                (SERVER_IP, ECHO_PORT),
                PAYLOAD,
            )
        })
        .collect();

    let mut report = DpdkBenchReport {
        seconds,
        vdev: vdev(&topo),
        ring,
        pinning,
        bulk: opts.bulk,
        runs: vec![DpdkRun::default(); opts.runs.max(1) as usize],
    };

    // UDP echo: the appliance and testpmd back to back, the order alternating between runs.
    {
        let gen = Generator::start(&topo.cl, &topo.link.b, frames, ring, client_core)?;
        for (i, run) in report.runs.iter_mut().enumerate() {
            for saps_first in [i % 2 == 0, i % 2 == 1] {
                if saps_first {
                    let mut s = start_saps(&topo, "dpdk", server_core, ring, true)?;
                    run.saps = measure_udp(&topo, &gen, &mut s, "the appliance", seconds, warmup)?;
                } else {
                    let mut s = start_testpmd(&topo, server_core, ring)?;
                    run.testpmd =
                        measure_udp(&topo, &gen, &mut s, "dpdk-testpmd", seconds, warmup)?;
                }
            }
        }
    }

    // Bulk TCP: the client's end gets its address; dpdk and af_packet alternate.
    if opts.bulk {
        topo.cl
            .exec(&[
                "ip",
                "addr",
                "add",
                &format!("{CLIENT_IP}/24"),
                "dev",
                &topo.link.b,
            ])
            .map_err(|e| e.to_string())?;
        for (i, run) in report.runs.iter_mut().enumerate() {
            for dpdk_first in [i % 2 == 0, i % 2 == 1] {
                let backend = if dpdk_first { "dpdk" } else { "af_packet" };
                let mut s = start_saps(&topo, backend, server_core, ring, false)?;
                let what = format!("the appliance on {backend}");
                let bps = bulk(&topo, &mut s, &what, seconds, client_core)?;
                if dpdk_first {
                    run.bulk_dpdk_bps = bps;
                } else {
                    run.bulk_af_packet_bps = bps;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_frames_have_valid_checksums() {
        let f = udp_frame(
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 0, 1],
            (CLIENT_IP, 40_000),
            (SERVER_IP, 7),
            PAYLOAD,
        );
        assert_eq!(f.len(), 60);
        assert_eq!(checksum::checksum(&f[14..34]), 0, "IP header checksum");
        let pseudo = checksum::pseudo_header(CLIENT_IP, SERVER_IP, 17, 26);
        assert_eq!(checksum::fold(checksum::sum(&f[34..], pseudo)), 0xffff);
        assert!(is_echo(&f));
        let mut other = f.clone();
        other[36..38].copy_from_slice(&9u16.to_be_bytes());
        assert!(!is_echo(&other));
        assert!(!is_echo(&f[..41]));
    }

    #[test]
    fn net_dev_counters_parse() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\nsb1234:  6000 100 0 0 0 0 0 0  9000 150 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(text, "sb1234"), Some((100, 150)));
        assert_eq!(parse_net_dev(text, "lo"), Some((2, 2)));
        assert_eq!(parse_net_dev(text, "sb12"), None);
        assert_eq!(parse_net_dev("x: 1 2", "x"), None);
    }

    #[test]
    fn report_takes_medians_and_renders() {
        let run = |s: f64, t: f64, d: f64, a: f64| DpdkRun {
            saps: UdpRate {
                returned_pps: s,
                offered_pps: 1e6,
                server_cpu: 0.5,
            },
            testpmd: UdpRate {
                returned_pps: t,
                offered_pps: 1e6,
                server_cpu: 1.0,
            },
            bulk_dpdk_bps: d,
            bulk_af_packet_bps: a,
        };
        let r = DpdkBenchReport {
            seconds: 5,
            vdev: "net_af_packet0,iface=sa1".into(),
            ring: 512,
            pinning: Some((0, 1)),
            bulk: true,
            runs: vec![
                run(90.0, 100.0, 1e9, 2e9),
                run(70.0, 100.0, 1e9, 1e9),
                run(85.0, 100.0, 3e9, 2e9),
            ],
        };
        assert!((r.udp_ratio() - 0.85).abs() < 1e-9);
        assert!((r.bulk_ratio() - 1.0).abs() < 1e-9);
        let t = r.table();
        assert!(
            t.contains("0.85x in packets per second (met), 1.70x per server CPU-second (met)"),
            "{t}"
        );
        assert!(t.contains("median ratio dpdk/af_packet 1.00x"), "{t}");
        let j = r.json();
        assert!(j.starts_with('{') && j.ends_with('}'), "{j}");
        assert!(j.contains("\"udp_ratio\":0.850,"), "{j}");
        assert!(j.contains("\"saps_pps\":85.000,"), "{j}");
        assert!(j.contains("\"saps_pps_per_cpu_s\":170.000,"), "{j}");
        assert!(j.contains("\"udp_cpu_ratio\":1.700,"), "{j}");
        assert!(
            j.contains("\"runs_testpmd_pps\":[100.000,100.000,100.000],"),
            "{j}"
        );
        assert!(j.contains("\"bulk_af_packet_mbps\":2000.000,"), "{j}");
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0, 1.0]), 2.0);
    }
}
