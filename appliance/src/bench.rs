//! `saps bench`: the appliance against the Linux kernel's own TCP, same client, same run.
//!
//! Builds three throwaway namespaces: a client, the appliance (`saps run` on `af_packet`, this
//! binary spawned like `saps demo` does) and a Linux server, with the client joined to each by its
//! own veth pair (offloads off on all ends, as the appliance needs). The Linux server is a small
//! server in this file, run on threads inside its namespace, speaking the same protocol as the
//! appliance's built-in services: `GET /bytes/N` over HTTP/1.1 keep-alive on port 80, and an
//! endless byte-pattern source on port 19. So both sides differ only in the TCP/IP stack (and the
//! server's structure: one busy-polling thread versus kernel TCP plus a thread per connection).
//!
//! Phases, each against the appliance first and then Linux, so that machine noise hits both
//! alike: wrk (`-t2 -c32 --latency`, keep-alive, `/bytes/100`) for requests per second and
//! latency; one bulk download from port 19 read by a kernel socket in the client namespace for
//! goodput, against the appliance twice: with the TX ring (the default) and with `port.gso`
//! (large segments the kernel cuts back into frames); and a separate line-rate check: the
//! appliance with `line_rate` set, one bulk download, measured against the configured rate.
//!
//! CPU placement (2-core machines): the client (wrk, the bulk reader) is pinned to core 0 and the
//! server side to core 1: the appliance with `cores = [1]` (its busy-polling deployment mode) and
//! the Linux server's threads with the same affinity. The appliance runs only during its own
//! phases, so its spinning core never competes with the Linux server. A veth runs the receiver's
//! kernel stack in softirq on the core that sent the frame, so by default each namespace's
//! receive work is steered (RPS) to its own side's core: the client's on the client core, the
//! servers' on the server core, as if they were separate machines. Without it the appliance's
//! core would also run the client kernel's TCP receive path for every frame it sends (and the
//! Linux server's ACK processing would run on the client core); `--no-steer` measures that way.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// HTTP and byte-source ports are the same on both servers (source: RFC 864's port).
use crate::linux_servers::{LinuxServers, TcpService, HTTP_PORT, SOURCE_PORT};
use crate::services::{fill_pattern, PATTERN};
use crate::topology::{run as run_cmd, Netns, VethPair};

/// Client address on the link to the appliance.
const CLIENT_SAPS_IP: &str = "10.79.0.1";
/// The appliance's address.
const SAPS_IP: &str = "10.79.0.2";
/// Client address on the link to the Linux server.
const CLIENT_LINUX_IP: &str = "10.79.1.1";
/// The Linux server's address.
const LINUX_IP: &str = "10.79.1.2";
/// [`LINUX_IP`] as an address, for binding the Linux server.
const LINUX_ADDR: Ipv4Addr = Ipv4Addr::new(10, 79, 1, 2);
/// The Linux server's congestion control (the appliance's default is CUBIC too).
const LINUX_CONGESTION: &str = "cubic";
/// Telemetry address inside the appliance's namespace.
const TELEMETRY: &str = "127.0.0.1:9100";
/// Body size of the requests-per-second phase.
const HTTP_BODY: u64 = 100;
/// Per-frame wire overhead the line-rate emulation counts (preamble, SFD, FCS, gap).
const WIRE_OVERHEAD: f64 = crate::port::line_rate::WIRE_OVERHEAD_BYTES as f64;

/// Options of `saps bench`.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Seconds each measurement phase runs.
    pub seconds: u64,
    /// Line rate for the separate emulation check (e.g. "200mbit"); `None` skips the check.
    pub line_rate: Option<String>,
    /// wrk connections.
    pub connections: u32,
    /// Pin the client to core 0 and the server side to core 1 (when the machine has 2+ cores).
    pub pin: bool,
    /// The appliance's `tcp.send_buffer` and `tcp.recv_buffer` (e.g. "4MiB"); `None` = its
    /// default.
    pub tcp_buffer: Option<String>,
    /// With pinning: steer each namespace's kernel receive work to its own side's core (RPS).
    pub steer_receive: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            seconds: 10,
            line_rate: Some("200mbit".into()),
            connections: 32,
            pin: true,
            tcp_buffer: None,
            steer_receive: true,
        }
    }
}

/// What wrk reported for one server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Socket errors (connect + read + write + timeout) plus non-2xx/3xx responses.
    pub errors: u64,
}

/// One server's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SideResult {
    /// wrk on `/bytes/100` with keep-alive.
    pub http: WrkResult,
    /// One bulk download, goodput in bits per second.
    pub bulk_bps: f64,
}

/// Appliance counters over the measurement phases (deltas from its `/metrics`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SapsCounters {
    /// Retransmitted TCP segments.
    pub retransmits: f64,
    /// TX-full events on the port (the ring refused a frame).
    pub tx_full_events: f64,
    /// Frames the port dropped on receive (ring overrun).
    pub rx_drops: f64,
    /// Frames the port dropped on transmit.
    pub tx_drops: f64,
    /// Frames sent inside merged large segments (`port.gso`).
    pub tx_offload_frames: f64,
    /// Frames sent.
    pub tx_packets: f64,
    /// Per phase ("http", "bulk", "line-rate"): the share of the phase the appliance's
    /// data-plane thread ran on a CPU, and the share it was runnable but waiting for one (from
    /// `/proc/PID/task/TID/schedstat`). A busy-polling thread should be near 1.0 and 0.0.
    pub dp_cpu: Vec<(String, f64, f64)>,
}

/// The line-rate emulation check.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineRateResult {
    /// The configured rate as given ("200mbit").
    pub configured: String,
    /// The configured rate in bits per second.
    pub rate_bps: f64,
    /// Goodput of one bulk download (TCP payload), bits per second.
    pub goodput_bps: f64,
    /// The same download as the emulated wire carried it: goodput times the measured ratio of
    /// wire bytes (frames + 24 bytes each) to payload bytes on the appliance's port.
    pub wire_bps: f64,
}

/// Everything `saps bench` measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BenchReport {
    /// Seconds per phase.
    pub seconds: u64,
    /// wrk connections.
    pub connections: u32,
    /// Client core and server core, if pinned.
    pub pinning: Option<(usize, usize)>,
    /// The appliance's TCP buffer setting, if not its default.
    pub tcp_buffer: Option<String>,
    /// Whether each namespace's receive processing was steered to its own side's core.
    pub steer_receive: bool,
    /// The appliance.
    pub saps: SideResult,
    /// The Linux kernel server.
    pub linux: SideResult,
    /// The appliance's bulk goodput with `port.gso = true`, bits per second (0: not measured).
    pub saps_bulk_gso_bps: f64,
    /// Appliance counters during the HTTP and bulk phases.
    pub saps_counters: SapsCounters,
    /// The line-rate check, if run.
    pub line_rate: Option<LineRateResult>,
}

/// "met" or "NOT met" for a ratio against the 0.8x target.
fn met(r: f64) -> &'static str {
    if r >= 0.8 {
        "met"
    } else {
        "NOT met"
    }
}

/// `a / b`, or 0 when `b` is not positive (a failed or skipped measurement).
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

impl BenchReport {
    /// Appliance requests/s over Linux requests/s.
    pub fn http_ratio(&self) -> f64 {
        ratio(
            self.saps.http.requests_per_sec,
            self.linux.http.requests_per_sec,
        )
    }

    /// Appliance bulk goodput over Linux bulk goodput.
    pub fn bulk_ratio(&self) -> f64 {
        ratio(self.saps.bulk_bps, self.linux.bulk_bps)
    }

    /// Appliance bulk goodput with `port.gso` over Linux bulk goodput.
    pub fn bulk_gso_ratio(&self) -> f64 {
        ratio(self.saps_bulk_gso_bps, self.linux.bulk_bps)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let pin = match self.pinning {
            Some((c, sv)) => format!(
                "client on core {c}, server side on core {sv}, receive work {}",
                if self.steer_receive {
                    "steered to each side's core"
                } else {
                    "on the sending core"
                }
            ),
            None => "unpinned".into(),
        };
        let _ = writeln!(
            s,
            "saps bench: {} s per phase, wrk -t2 -c{} on /bytes/{HTTP_BODY}, {pin}, saps TCP buffers {}, Linux server {LINUX_CONGESTION}",
            self.seconds,
            self.connections,
            self.tcp_buffer.as_deref().unwrap_or("default")
        );
        let _ = writeln!(
            s,
            "{:<26} {:>12} {:>12} {:>8}",
            "metric", "saps", "Linux", "ratio"
        );
        let row = |s: &mut String, name: &str, a: f64, b: f64, digits: usize| {
            let _ = writeln!(
                s,
                "{:<26} {:>12.*} {:>12.*} {:>7.2}x",
                name,
                digits,
                a,
                digits,
                b,
                ratio(a, b)
            );
        };
        row(
            &mut s,
            "HTTP requests/s",
            self.saps.http.requests_per_sec,
            self.linux.http.requests_per_sec,
            0,
        );
        row(
            &mut s,
            "HTTP latency p50 (us)",
            self.saps.http.p50_us,
            self.linux.http.p50_us,
            0,
        );
        row(
            &mut s,
            "HTTP latency p99 (us)",
            self.saps.http.p99_us,
            self.linux.http.p99_us,
            0,
        );
        row(
            &mut s,
            "bulk goodput (Mb/s)",
            self.saps.bulk_bps / 1e6,
            self.linux.bulk_bps / 1e6,
            0,
        );
        row(
            &mut s,
            "bulk, port.gso (Mb/s)",
            self.saps_bulk_gso_bps / 1e6,
            self.linux.bulk_bps / 1e6,
            0,
        );
        let _ = writeln!(
            s,
            "{:<26} {:>12} {:>12}",
            "HTTP errors", self.saps.http.errors, self.linux.http.errors
        );
        let c = &self.saps_counters;
        let _ = writeln!(
            s,
            "saps counters during the runs: {:.0} retransmits, {:.0} TX-full events, {:.0} RX drops, {:.0} TX drops, {:.0} of {:.0} frames sent in merged large segments",
            c.retransmits, c.tx_full_events, c.rx_drops, c.tx_drops, c.tx_offload_frames, c.tx_packets
        );
        for (phase, on, wait) in &c.dp_cpu {
            let _ = writeln!(
                s,
                "saps data-plane thread, {phase} phase: on CPU {:.0}% of the time, waiting for a CPU {:.0}%",
                on * 100.0,
                wait * 100.0
            );
        }
        let _ = writeln!(
            s,
            "target >= 0.80x Linux: requests/s {:.2}x {}, bulk {:.2}x {}, bulk with port.gso {:.2}x {}",
            self.http_ratio(),
            met(self.http_ratio()),
            self.bulk_ratio(),
            met(self.bulk_ratio()),
            self.bulk_gso_ratio(),
            met(self.bulk_gso_ratio()),
        );
        if let Some(l) = &self.line_rate {
            let _ = writeln!(
                s,
                "line rate {}: bulk goodput {:.1} Mb/s ({:.3} of the rate), on the emulated wire {:.1} Mb/s ({:.3} of the rate; {} the 5% target)",
                l.configured,
                l.goodput_bps / 1e6,
                ratio(l.goodput_bps, l.rate_bps),
                l.wire_bps / 1e6,
                ratio(l.wire_bps, l.rate_bps),
                if (ratio(l.wire_bps, l.rate_bps) - 1.0).abs() <= 0.05 {
                    "within"
                } else {
                    "OUTSIDE"
                }
            );
        }
        s
    }

    /// The report as one JSON object (flat keys, numbers; for scripts and the test).
    pub fn json(&self) -> String {
        let mut s = String::from("{");
        let mut num = |k: &str, v: f64| {
            let v = if v.is_finite() { v } else { 0.0 };
            let _ = write!(s, "\"{k}\":{v:.3},");
        };
        num("seconds", self.seconds as f64);
        num("connections", self.connections as f64);
        for (side, r) in [("saps", &self.saps), ("linux", &self.linux)] {
            num(&format!("{side}_requests_per_sec"), r.http.requests_per_sec);
            num(&format!("{side}_latency_p50_us"), r.http.p50_us);
            num(&format!("{side}_latency_p99_us"), r.http.p99_us);
            num(&format!("{side}_http_errors"), r.http.errors as f64);
            num(&format!("{side}_bulk_mbps"), r.bulk_bps / 1e6);
        }
        num("http_ratio", self.http_ratio());
        num("bulk_ratio", self.bulk_ratio());
        num("saps_bulk_gso_mbps", self.saps_bulk_gso_bps / 1e6);
        num("bulk_gso_ratio", self.bulk_gso_ratio());
        num("saps_retransmits", self.saps_counters.retransmits);
        num("saps_tx_full_events", self.saps_counters.tx_full_events);
        num("saps_rx_drops", self.saps_counters.rx_drops);
        num("saps_tx_drops", self.saps_counters.tx_drops);
        for (phase, on, wait) in &self.saps_counters.dp_cpu {
            let phase = phase.replace('-', "_");
            num(&format!("saps_dp_on_cpu_{phase}"), *on);
            num(&format!("saps_dp_wait_cpu_{phase}"), *wait);
        }
        if let Some(l) = &self.line_rate {
            num("line_rate_mbps", l.rate_bps / 1e6);
            num("line_rate_goodput_mbps", l.goodput_bps / 1e6);
            num("line_rate_wire_mbps", l.wire_bps / 1e6);
            num("line_rate_wire_ratio", ratio(l.wire_bps, l.rate_bps));
        }
        let pinned = match self.pinning {
            Some((c, sv)) => format!(
                "\"client_core\":{c},\"server_core\":{sv},\"steer_receive\":{}",
                self.steer_receive
            ),
            None => "\"client_core\":null,\"server_core\":null".into(),
        };
        s.push_str(&pinned);
        s.push('}');
        s
    }
}

/// Parse a wrk duration such as `370.12us`, `1.20ms` or `2.00s` into microseconds.
pub fn parse_wrk_duration(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix("m") {
        (n, 60e6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|v| v * scale)
}

/// Parse wrk's output (run with `--latency`): requests/s, p50, p99 and errors.
pub fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut have_rps = false;
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().parse().ok()?;
            have_rps = true;
        } else if let Some(v) = l.strip_prefix("50%") {
            r.p50_us = parse_wrk_duration(v)?;
        } else if let Some(v) = l.strip_prefix("99%") {
            r.p99_us = parse_wrk_duration(v)?;
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in v.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    r.errors += n.parse::<u64>().unwrap_or(0);
                }
            }
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    have_rps.then_some(r)
}

/// The appliance process, killed on drop (before its namespace goes away).
struct Appliance {
    child: Child,
    config_path: std::path::PathBuf,
    log_path: std::path::PathBuf,
}

impl Drop for Appliance {
    fn drop(&mut self) {
        crate::topology::stop_child(&mut self.child, Duration::from_secs(3));
        let _ = std::fs::remove_file(&self.config_path);
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// The three namespaces and two links.
struct Topology {
    cl: Netns,
    gw: Netns,
    lx: Netns,
    to_saps: VethPair,
    _to_linux: VethPair,
}

impl Topology {
    /// `steer`: (client core, server core) to steer each namespace's receive processing to the
    /// core of its own side, as if client and servers were separate machines.
    fn build(steer: Option<(usize, usize)>) -> io::Result<Topology> {
        // Namespaces a killed earlier run left behind (Ctrl-C skips the clean-up of `Drop`).
        crate::topology::remove_stale("saps-");
        let cl = Netns::new("saps-bench-cl")?;
        let gw = Netns::new("saps-bench-gw")?;
        let lx = Netns::new("saps-bench-lx")?;
        let to_saps = VethPair::new(&gw, &cl)?;
        let to_linux = VethPair::new(&lx, &cl)?;
        cl.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{CLIENT_SAPS_IP}/24"),
            "dev",
            &to_saps.b,
        ])?;
        cl.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{CLIENT_LINUX_IP}/24"),
            "dev",
            &to_linux.b,
        ])?;
        lx.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{LINUX_IP}/24"),
            "dev",
            &to_linux.a,
        ])?;
        // The Linux server runs CUBIC, like the appliance and like a stock Debian kernel,
        // whatever this host's default is (a namespace inherits the host's; some hosts use
        // bbr). `congctl` on the route to the client applies it to every connection.
        lx.exec(&[
            "ip",
            "route",
            "replace",
            &format!("{CLIENT_LINUX_IP}/32"),
            "dev",
            &to_linux.a,
            "congctl",
            LINUX_CONGESTION,
        ])
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("congestion control {LINUX_CONGESTION} for the Linux server: {e}"),
            )
        })?;
        if let Some((client, server)) = steer {
            cl.steer_receive_to_core(&to_saps.b, client)?;
            cl.steer_receive_to_core(&to_linux.b, client)?;
            gw.steer_receive_to_core(&to_saps.a, server)?;
            lx.steer_receive_to_core(&to_linux.a, server)?;
        }
        Ok(Topology {
            cl,
            gw,
            lx,
            to_saps,
            _to_linux: to_linux,
        })
    }
}

/// Start `saps run` in the appliance namespace and wait until it serves HTTP to the client.
fn start_appliance(
    topo: &Topology,
    core: Option<usize>,
    line_rate: Option<&str>,
    tcp_buffer: Option<&str>,
    gso: bool,
) -> Result<Appliance, String> {
    let tcp = tcp_buffer
        .map(|b| format!("\n[tcp]\nsend_buffer = \"{b}\"\nrecv_buffer = \"{b}\"\n"))
        .unwrap_or_default();
    let mut rate = line_rate
        .map(|r| format!("line_rate = \"{r}\"\n"))
        .unwrap_or_default();
    if gso {
        rate.push_str("gso = true\n");
    }
    let cores = core.map(|c| format!("cores = [{c}]\n")).unwrap_or_default();
    let config = format!(
        "# Written by `saps bench`.\n{cores}\n[[port]]\nname = \"ext\"\nbackend = \"af_packet\"\niface = \"{}\"\nipv4 = \"{SAPS_IP}/24\"\n{rate}\n[[service]]\nkind = \"http\"\nport = {HTTP_PORT}\n\n[[service]]\nkind = \"source\"\nport = {SOURCE_PORT}\n\n[telemetry]\nlisten = \"{TELEMETRY}\"\n{tcp}",
        topo.to_saps.a
    );
    let id = format!("{}-{}", std::process::id(), crate::topology::unique_id());
    let config_path = std::env::temp_dir().join(format!("saps-bench-{id}.toml"));
    let log_path = std::env::temp_dir().join(format!("saps-bench-{id}.log"));
    std::fs::write(&config_path, config).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let child = topo
        .gw
        .command(exe.to_str().unwrap_or("saps"))
        .args(["--log-level", "warn", "run", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("starting the appliance: {e}"))?;
    let mut appliance = Appliance {
        child,
        config_path,
        log_path,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = appliance.child.try_wait() {
            let log = std::fs::read_to_string(&appliance.log_path).unwrap_or_default();
            return Err(format!(
                "the appliance exited ({status}): {}",
                log.lines().last().unwrap_or("")
            ));
        }
        let ok = topo
            .cl
            .exec(&[
                "curl",
                "-sf",
                "-o",
                "/dev/null",
                "--max-time",
                "1",
                &format!("http://{SAPS_IP}/bytes/1"),
            ])
            .is_ok();
        if ok {
            return Ok(appliance);
        }
        if Instant::now() > deadline {
            // Keep the log for the operator.
            let log = std::mem::take(&mut appliance.log_path);
            return Err(format!(
                "the appliance did not answer HTTP within 15 s (log: {})",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scrape(gw: &Netns) -> String {
    gw.exec(&[
        "curl",
        "-s",
        "--max-time",
        "2",
        &format!("http://{TELEMETRY}/metrics"),
    ])
    .unwrap_or_default()
}

fn counters(text: &str) -> SapsCounters {
    SapsCounters {
        retransmits: crate::telemetry::sample_sum(
            text,
            "saps_tcp_retransmitted_segments_total",
            &[],
        ),
        tx_full_events: crate::telemetry::sample_sum(text, "saps_port_tx_full_events_total", &[]),
        rx_drops: crate::telemetry::sample_sum(text, "saps_port_rx_drops_total", &[]),
        tx_drops: crate::telemetry::sample_sum(text, "saps_port_tx_drops_total", &[]),
        tx_offload_frames: crate::telemetry::sample_sum(
            text,
            "saps_port_tx_offload_frames_total",
            &[],
        ),
        tx_packets: crate::telemetry::sample_sum(text, "saps_port_tx_packets_total", &[]),
        dp_cpu: Vec::new(),
    }
}

/// (ns on CPU, ns runnable but waiting) of the appliance's data-plane thread `saps-dp0`.
fn dp_schedstat(pid: u32) -> Option<(u64, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "saps-dp0" {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            let mut it = stat.split_whitespace().map(|v| v.parse::<u64>().ok());
            return Some((it.next()??, it.next()??));
        }
    }
    None
}

/// Measures the data-plane thread's CPU share over a phase.
struct CpuShare {
    pid: u32,
    start: Instant,
    before: Option<(u64, u64)>,
}

impl CpuShare {
    fn start(app: &Appliance) -> CpuShare {
        let pid = app.child.id();
        CpuShare {
            pid,
            start: Instant::now(),
            before: dp_schedstat(pid),
        }
    }

    fn finish(self, phase: &str, into: &mut SapsCounters) {
        let wall = self.start.elapsed().as_nanos() as f64;
        if let (Some(b), Some(a)) = (self.before, dp_schedstat(self.pid)) {
            into.dp_cpu.push((
                phase.to_string(),
                a.0.saturating_sub(b.0) as f64 / wall,
                a.1.saturating_sub(b.1) as f64 / wall,
            ));
        }
    }
}

fn add_delta(total: &mut SapsCounters, before: &SapsCounters, after: &SapsCounters) {
    total.retransmits += after.retransmits - before.retransmits;
    total.tx_full_events += after.tx_full_events - before.tx_full_events;
    total.rx_drops += after.rx_drops - before.rx_drops;
    total.tx_drops += after.tx_drops - before.tx_drops;
    total.tx_offload_frames += after.tx_offload_frames - before.tx_offload_frames;
    total.tx_packets += after.tx_packets - before.tx_packets;
}

/// Pin the calling thread to `core`, if given (best effort: a failure leaves it unpinned).
pub(crate) fn pin_current(core: Option<usize>) {
    if let Some(id) = core {
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

// ---------------------------------------------------------------------------------------------
// The client side.

/// wrk against `ip`, pinned to `core`, from the client namespace.
fn wrk(
    cl: &Netns,
    ip: &str,
    seconds: u64,
    connections: u32,
    core: Option<usize>,
) -> Result<WrkResult, String> {
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string(), "ip"]);
            cmd
        }
        None => Command::new("ip"),
    };
    cmd.args([
        "netns",
        "exec",
        cl.name(),
        "wrk",
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
        &format!("http://{ip}/bytes/{HTTP_BODY}"),
    ]);
    let out = run_cmd(&mut cmd).map_err(|e| format!("wrk: {e}"))?;
    parse_wrk(&out).ok_or_else(|| format!("cannot read wrk's output: {}", out.trim()))
}

/// One bulk download from `ip`:19 for `seconds`, read by a kernel socket in the client
/// namespace and checked against the byte pattern. Returns goodput in bits per second.
fn bulk(cl: &Netns, ip: &str, seconds: u64, core: Option<usize>) -> Result<f64, String> {
    let addr: SocketAddr = format!("{ip}:{SOURCE_PORT}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let stream = cl
        .spawn(move || TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|_| "connect panicked".to_string())?
        .map_err(|e| format!("bulk download from {ip}: {e}"))?;
    read_pattern(cl, stream, seconds, core).map_err(|e| format!("bulk download from {ip}: {e}"))
}

/// Read `s` (a connection to a `source` service) for `seconds` on a thread in `ns` pinned to
/// `core`, checking every byte against the pattern from offset 0. Bits per second.
pub(crate) fn read_pattern(
    ns: &Netns,
    s: TcpStream,
    seconds: u64,
    core: Option<usize>,
) -> io::Result<f64> {
    ns.spawn(move || {
        pin_current(core);
        let mut s = s;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        const CHUNK: usize = 256 * 1024;
        let mut buf = vec![0u8; CHUNK];
        let mut expect = vec![0u8; CHUNK + PATTERN.len()];
        fill_pattern(&mut expect, 0);
        let mut got = 0u64;
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(seconds.max(1));
        while Instant::now() < end {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::other("the source closed the connection"));
            }
            let off = (got % PATTERN.len() as u64) as usize;
            if buf[..n] != expect[off..off + n] {
                return Err(io::Error::other(format!(
                    "the source sent unexpected bytes near offset {got}"
                )));
            }
            got += n as u64;
        }
        Ok(got as f64 * 8.0 / t0.elapsed().as_secs_f64())
    })?
    .join()
    .map_err(|_| io::Error::other("the bulk reader panicked"))?
}

/// Parse a rate such as "200mbit" the way the configuration does, in bits per second.
fn parse_rate(text: &str) -> Result<u64, String> {
    crate::config::parse_rate(text).map_err(|m| format!("--line-rate: {m}"))
}

/// Run the benchmark. Errors are one line, ready to print after `error: `.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, String> {
    crate::topology::check_root_and_programs(
        "saps bench",
        &[
            ("ip", "iproute2"),
            ("ethtool", "ethtool"),
            ("curl", "curl"),
            ("wrk", "wrk"),
            ("taskset", "util-linux"),
        ],
    )?;
    let rate_bps = match &opts.line_rate {
        Some(r) => Some(parse_rate(r)?),
        None => None,
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pinning = (opts.pin && cores >= 2).then_some((0usize, 1usize));
    let (client_core, server_core) = match pinning {
        Some((c, s)) => (Some(c), Some(s)),
        None => (None, None),
    };
    let seconds = opts.seconds.max(1);
    let conns = opts.connections.max(1);

    let topo = Topology::build(pinning.filter(|_| opts.steer_receive))
        .map_err(|e| format!("the bench topology: {e}"))?;
    let linux = LinuxServers::start_with(
        &topo.lx,
        LINUX_ADDR,
        &[TcpService::Http, TcpService::Source],
        false,
        server_core,
    )
    .map_err(|e| format!("the Linux server: {e}"))?;
    // Warm the Linux path (ARP, first connection) like the appliance's readiness check does.
    topo.cl
        .exec(&[
            "curl",
            "-sf",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            &format!("http://{LINUX_IP}/bytes/1"),
        ])
        .map_err(|e| format!("the Linux server does not answer: {e}"))?;

    let mut report = BenchReport {
        seconds,
        connections: conns,
        pinning,
        tcp_buffer: opts.tcp_buffer.clone(),
        steer_receive: pinning.is_some() && opts.steer_receive,
        ..BenchReport::default()
    };

    // Requests per second: appliance, then Linux (the appliance stopped so its core is free).
    {
        let app = start_appliance(&topo, server_core, None, opts.tcp_buffer.as_deref(), false)?;
        let before = counters(&scrape(&topo.gw));
        let cpu = CpuShare::start(&app);
        report.saps.http = wrk(&topo.cl, SAPS_IP, seconds, conns, client_core)?;
        cpu.finish("http", &mut report.saps_counters);
        let after = counters(&scrape(&topo.gw));
        add_delta(&mut report.saps_counters, &before, &after);
        drop(app);
    }
    report.linux.http = wrk(&topo.cl, LINUX_IP, seconds, conns, client_core)?;

    // Bulk goodput, same order: the appliance on its TX ring, then with segmentation offload.
    let saps_bulk = |gso: bool, phase: &str, counters_out: &mut SapsCounters| {
        let app = start_appliance(&topo, server_core, None, opts.tcp_buffer.as_deref(), gso)?;
        let before = counters(&scrape(&topo.gw));
        let cpu = CpuShare::start(&app);
        let bps = bulk(&topo.cl, SAPS_IP, seconds, client_core)?;
        cpu.finish(phase, counters_out);
        let after = counters(&scrape(&topo.gw));
        add_delta(counters_out, &before, &after);
        drop(app);
        Ok::<f64, String>(bps)
    };
    report.saps.bulk_bps = saps_bulk(false, "bulk", &mut report.saps_counters)?;
    report.saps_bulk_gso_bps = saps_bulk(true, "bulk with port.gso", &mut report.saps_counters)?;
    report.linux.bulk_bps = bulk(&topo.cl, LINUX_IP, seconds, client_core)?;
    drop(linux);

    // The line-rate emulation: one bulk download at the configured rate.
    if let (Some(configured), Some(rate)) = (&opts.line_rate, rate_bps) {
        let app = start_appliance(
            &topo,
            server_core,
            Some(configured),
            opts.tcp_buffer.as_deref(),
            false,
        )?;
        let before = scrape(&topo.gw);
        let cpu = CpuShare::start(&app);
        let goodput = bulk(&topo.cl, SAPS_IP, seconds, client_core)?;
        cpu.finish("line-rate", &mut report.saps_counters);
        // Telemetry publishes every 100 ms: let the last of the download reach it.
        std::thread::sleep(Duration::from_millis(250));
        let after = scrape(&topo.gw);
        drop(app);
        let delta = |name: &str, labels: &[&str]| {
            crate::telemetry::sample_sum(&after, name, labels)
                - crate::telemetry::sample_sum(&before, name, labels)
        };
        let frames = delta("saps_port_tx_packets_total", &[]);
        let frame_bytes = delta("saps_port_tx_bytes_total", &[]);
        let payload = delta(
            "saps_service_bytes_total",
            &["service=\"source\"", "direction=\"tx\""],
        );
        let wire_per_payload = ratio(frame_bytes + WIRE_OVERHEAD * frames, payload);
        report.line_rate = Some(LineRateResult {
            configured: configured.clone(),
            rate_bps: rate as f64,
            goodput_bps: goodput,
            wire_bps: goodput * wire_per_payload,
        });
    }
    drop(topo);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 2s test @ http://10.79.0.2/bytes/100
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   388.12us  120.31us   5.23ms   85.12%
    Req/Sec    40.12k     2.31k   45.00k    70.00%
  Latency Distribution
     50%  370.00us
     75%  420.00us
     90%  500.00us
     99%    1.20ms
  160000 requests in 2.00s, 20.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  80000.50
Transfer/sec:     10.00MB
";

    #[test]
    fn wrk_output_is_parsed() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.requests_per_sec, 80000.5);
        assert_eq!(r.p50_us, 370.0);
        assert!((r.p99_us - 1200.0).abs() < 1e-6);
        assert_eq!(r.errors, 10);
        assert!(parse_wrk("unable to connect to 10.79.0.2:80").is_none());
    }

    #[test]
    fn wrk_durations_have_units() {
        assert_eq!(parse_wrk_duration("12.5us"), Some(12.5));
        assert_eq!(parse_wrk_duration("2.00s"), Some(2e6));
        assert_eq!(parse_wrk_duration("1.5m"), Some(90e6));
        assert_eq!(parse_wrk_duration("7"), None);
        assert_eq!(parse_wrk_duration("xms"), None);
    }

    #[test]
    fn metric_sums_filter_by_name_and_labels() {
        let text = "# TYPE x counter\nsaps_service_bytes_total{service=\"source\",direction=\"tx\"} 10\nsaps_service_bytes_total{service=\"source\",direction=\"rx\"} 3\nsaps_service_bytes_total{service=\"http\",direction=\"tx\"} 5\nsaps_service_bytes_totalx 99\n";
        assert_eq!(
            crate::telemetry::sample_sum(
                text,
                "saps_service_bytes_total",
                &["service=\"source\"", "direction=\"tx\""]
            ),
            10.0
        );
        assert_eq!(
            crate::telemetry::sample_sum(text, "saps_service_bytes_total", &[]),
            18.0
        );
    }

    #[test]
    fn report_renders_ratios_and_json() {
        let mut r = BenchReport {
            seconds: 2,
            connections: 32,
            pinning: Some((0, 1)),
            ..BenchReport::default()
        };
        r.saps.http.requests_per_sec = 90.0;
        r.linux.http.requests_per_sec = 100.0;
        r.saps.bulk_bps = 500e6;
        r.linux.bulk_bps = 1000e6;
        r.line_rate = Some(LineRateResult {
            configured: "200mbit".into(),
            rate_bps: 200e6,
            goodput_bps: 188e6,
            wire_bps: 199e6,
        });
        assert!((r.http_ratio() - 0.9).abs() < 1e-9);
        assert!((r.bulk_ratio() - 0.5).abs() < 1e-9);
        let t = r.table();
        assert!(t.contains("requests/s 0.90x met"), "{t}");
        assert!(t.contains("bulk 0.50x NOT met"), "{t}");
        assert!(t.contains("within the 5% target"), "{t}");
        let j = r.json();
        assert!(j.starts_with('{') && j.ends_with('}'));
        assert!(j.contains("\"http_ratio\":0.900,"), "{j}");
        assert!(j.contains("\"line_rate_wire_mbps\":199.000,"), "{j}");
        assert!(j.contains("\"client_core\":0,\"server_core\":1"), "{j}");
    }
}
