//! The testbed: namespaces, veth pairs, the delay router and one target, torn down on drop.
//!
//! ```text
//!  client ns (10.80.0.1/24)   router ns (no addresses)        target
//!  [veth] ───────────────── [veth]  delay router  [veth] ───── saps: `saps run` on af_packet,
//!                                   (L2 bridge)                  owns 10.80.0.2/24
//!                                                              LinuxNat: NAT router 10.80.0.2/24
//!                                                                --[veth 10.80.1.0/24]-- servers
//! ```
//!
//! - The client and the target share one subnet: the delay router bridges Ethernet frames (ARP
//!   included), so [`Testbed::server_addr`] is `10.80.0.2` on both targets.
//! - saps: a namespace with a veth end without an address (saps owns it through AF_PACKET), a
//!   generated configuration (port with `line_rate`, `tx_ring`, `admission`; every built-in
//!   service; telemetry on `127.0.0.1:9100` inside that namespace).
//! - Linux NAT: a router namespace with `10.80.0.2` on its client side, nftables DNAT of that
//!   address to the server `10.80.1.2`, IPv4 forwarding, and `tbf` at `rate_bps` on its egress
//!   towards the clients with a `tx_ring`-packet queue (`limit` = packets x 1514 bytes) and the
//!   same 24 bytes of per-frame wire overhead as saps's line-rate emulation (`overhead 24`). The way
//!   back is routing, not masquerade: the server's default route points at the router, whose
//!   conntrack undoes the DNAT on replies. So the servers see the real client address, as behind
//!   the paper's NAT, and there is one translation per packet, not two.
//! - Optional, for comparisons: SACK on or off on the target's side ([`TestbedConfig::sack`]:
//!   saps's `[tcp] sack`, the servers' `net.ipv4.tcp_sack`) and the servers' congestion control
//!   ([`TestbedConfig::linux_congestion`]: `congctl` on their default route, since a namespace
//!   may only default to the host's allowed algorithms), and saps's
//!   ([`TestbedConfig::saps_congestion`]: `[tcp] congestion`).
//! - The delay router's thread runs SCHED_FIFO (see [`crate::delay_router`]).
//! - Offloads are off on every veth end, so both targets see MTU-size frames with checksums.
//! - IPv6 is off in every namespace: no router solicitations or DAD in the segment log.
//!
//! Teardown: dropping the [`Testbed`] stops saps (SIGTERM, then SIGKILL), the servers and the
//! router, and deletes the namespaces (which deletes the veths). Each live testbed is also in a
//! process-wide registry, so a signal handler (or anything else) can call [`teardown_all`] to
//! remove every live testbed at once, from any thread; it is idempotent, and dropping a testbed
//! afterwards is harmless. Names are `pk-<role>-<pid>-<n>`; [`remove_stale`] deletes namespaces
//! left by processes that no longer exist (killed with SIGKILL).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use saps::config::CongestionAlgorithm;
use saps::topology::{have_program, Netns, VethPair};

use crate::delay_router::{DelayRouter, RouterConfig, RouterStats, SegmentRecord};
use crate::servers::LinuxServers;

/// The client's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 1);
/// The public address: saps's own, or the NAT router's.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 2);
/// The NAT router's address towards the Linux servers.
pub const NAT_INSIDE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 80, 1, 1);
/// The Linux servers' address (behind the NAT).
pub const LINUX_SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 80, 1, 2);
/// saps's telemetry address inside its namespace.
pub const TELEMETRY_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9100);
/// Bytes per packet used to turn a queue length in packets into tbf's byte `limit`.
pub const TBF_PACKET_BYTES: u64 = 1514;
/// Namespace name prefix of every testbed namespace (`pk-<role>-<pid>-<n>`).
pub const NS_PREFIX: &str = "pk-";
/// How long [`Testbed::start`] waits for the target to answer on port 80.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// What sits behind the delay router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `saps run` on af_packet with this TX admission policy: "off", "paper" or "adaptive".
    Saps {
        /// The `port.admission` value.
        policy: String,
    },
    /// A Linux NAT router (nftables DNAT, tbf) in front of Linux servers.
    LinuxNat,
}

impl Target {
    /// A short label: `saps-off`, `saps-paper`, `saps-adaptive`, `linux-nat`.
    pub fn label(&self) -> String {
        match self {
            Target::Saps { policy } => format!("saps-{policy}"),
            Target::LinuxNat => "linux-nat".into(),
        }
    }
}

/// Impairments the delay router adds in each direction. `Default` is none.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Impairments {
    /// Probability that a frame is dropped (0.01 = 1%).
    pub loss: f64,
    /// Loss on the client-to-target direction instead of `loss` (`Some(0.0)`: only the target's
    /// data direction loses frames, the client's ACKs all arrive); `None`: `loss` both ways.
    pub loss_to_server: Option<f64>,
    /// Probability that a frame is swapped with the frame after it.
    pub reorder: f64,
    /// Probability that a frame is sent twice.
    pub duplicate: f64,
    /// Uniform jitter added to the delay, in `[-jitter, +jitter]`; never reorders.
    pub jitter: Duration,
}

/// Everything a testbed is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct TestbedConfig {
    /// saps or the Linux NAT baseline.
    pub target: Target,
    /// Delay the router adds in each direction (paper: 1 ms, so 2 ms RTT).
    pub one_way_delay: Duration,
    /// The bottleneck rate: saps's `line_rate`, or the NAT router's tbf rate towards the
    /// clients.
    pub rate_bps: u64,
    /// saps's `tx_ring` (the paper's 1024), or tbf's queue limit in packets.
    pub tx_ring: u32,
    /// Delay-router impairments.
    pub impairments: Impairments,
    /// The delay router logs every TCP segment ([`Testbed::segment_log`]).
    pub log_segments: bool,
    /// The delay router writes every frame to this pcap file.
    pub pcap: Option<PathBuf>,
    /// The `saps` binary to run (for [`Target::Saps`]).
    pub saps_binary: PathBuf,
    /// An extra rate limit in the delay router, both directions (`None`: none; the bottleneck
    /// is normally the target's own, `rate_bps`).
    pub router_rate_bps: Option<u64>,
    /// saps's `cores`: pin its data plane to these cores, where it busy-polls (lowest latency,
    /// one core spent). `None`: unpinned, spinning then sleeping 50 µs when idle (the default;
    /// polite on a shared machine, but an idle wake-up can add tens of µs to a ping-pong).
    pub saps_cores: Option<Vec<usize>>,
    /// Selective acknowledgments on the target's side: saps's `[tcp] sack`, or the Linux
    /// servers' `net.ipv4.tcp_sack` (SACK is negotiated, so the server side decides for the
    /// connection). `None`: each stack's default (on).
    pub sack: Option<bool>,
    /// The Linux servers' congestion control (`net.ipv4.tcp_congestion_control` in their
    /// namespace, e.g. "cubic" to match saps's default); `None`: what a new namespace inherits
    /// from the host (bbr on the machines here).
    pub linux_congestion: Option<String>,
    /// saps's congestion control (`[tcp] congestion`); `None`: the appliance's default (CUBIC).
    pub saps_congestion: Option<CongestionAlgorithm>,
}

impl TestbedConfig {
    /// The paper's set-up: 1 ms each way, 1 Gb/s, no impairments, no log; the queue of the
    /// issue: a 1024-slot TX ring for saps, a 1000-packet tbf queue for the Linux NAT (Linux's
    /// default interface queue); `saps_binary` from [`default_saps_binary`].
    pub fn new(target: Target) -> Self {
        let tx_ring = match target {
            Target::Saps { .. } => 1024,
            Target::LinuxNat => 1000,
        };
        TestbedConfig {
            target,
            one_way_delay: Duration::from_millis(1),
            rate_bps: 1_000_000_000,
            tx_ring,
            impairments: Impairments::default(),
            log_segments: false,
            pcap: None,
            saps_binary: default_saps_binary(),
            router_rate_bps: None,
            saps_cores: None,
            sack: None,
            linux_congestion: None,
            saps_congestion: None,
        }
    }
}

/// Every congestion control saps's `tcp.congestion` offers, in the order its documentation
/// lists them ([`TestbedConfig::saps_congestion`]).
pub const SAPS_CONGESTION: [CongestionAlgorithm; 3] = [
    CongestionAlgorithm::NewReno,
    CongestionAlgorithm::Cubic,
    CongestionAlgorithm::Bbr,
];

/// The name saps's `tcp.congestion` takes for `cc`: "newreno", "cubic" or "bbr".
pub fn congestion_name(cc: CongestionAlgorithm) -> &'static str {
    match cc {
        CongestionAlgorithm::NewReno => "newreno",
        CongestionAlgorithm::Cubic => "cubic",
        CongestionAlgorithm::Bbr => "bbr",
    }
}

/// The `saps` binary next to the running executable (`target/<profile>/saps` for a binary in
/// `target/<profile>/` or a test in `target/<profile>/deps/`), else `saps` on the PATH.
pub fn default_saps_binary() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let p = dir.join("saps");
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from("saps")
}

/// A live testbed's resources as the registry sees them, for [`teardown_all`].
struct LiveEntry {
    id: usize,
    namespaces: Vec<String>,
    saps: Option<Arc<Mutex<Option<Child>>>>,
    stops: Vec<Arc<AtomicBool>>,
}

static LIVE: Mutex<Vec<LiveEntry>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<LiveEntry>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_entry(id: usize, f: impl FnOnce(&mut LiveEntry)) {
    if let Some(e) = registry().iter_mut().find(|e| e.id == id) {
        f(e);
    }
}

/// Tear down every live testbed of this process now: kill saps, stop the router and server
/// threads, delete the namespaces. Safe from any thread (a Ctrl-C handler), idempotent; the
/// [`Testbed`] values stay valid to drop (their calls then fail). Returns how many it removed.
pub fn teardown_all() -> usize {
    let entries: Vec<LiveEntry> = std::mem::take(&mut *registry());
    let n = entries.len();
    for e in entries {
        for s in &e.stops {
            s.store(true, Ordering::Relaxed);
        }
        if let Some(child) = &e.saps {
            if let Some(mut c) = child.lock().unwrap_or_else(|p| p.into_inner()).take() {
                stop(&mut c, Duration::from_secs(1));
            }
        }
        for ns in e.namespaces.iter().rev() {
            remove_namespace(ns);
        }
    }
    n
}

pub use saps::topology::remove_namespace;

/// Stop a child that may already have exited (then only reap it, without a `kill` complaint).
fn stop(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    saps::topology::stop_child(child, grace);
}

/// Delete testbed namespaces (`pk-<role>-<pid>-<n>`) whose process no longer exists: what a
/// SIGKILLed run leaves behind, killing what still runs inside them (an orphaned saps). Call it
/// when a run starts. Returns their names.
pub fn remove_stale() -> Vec<String> {
    saps::topology::remove_stale(NS_PREFIX)
}

/// The testbed namespaces in `ip netns list` output whose creating process no longer exists.
pub fn stale_namespaces(list: &str) -> Vec<String> {
    saps::topology::stale_namespaces(list, NS_PREFIX)
}

/// Removes the registry entry on drop (declared last in [`Testbed`], so it goes last).
struct LiveGuard(usize);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        registry().retain(|e| e.id != self.0);
    }
}

/// The saps process; stopped on drop (SIGTERM, 3 s grace, SIGKILL) and its files removed.
struct SapsProcess {
    child: Arc<Mutex<Option<Child>>>,
    config_path: PathBuf,
    log_path: PathBuf,
}

impl SapsProcess {
    /// The last lines of its log (for error messages).
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut g = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        }
    }
}

impl Drop for SapsProcess {
    fn drop(&mut self) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut c) = child {
            stop(&mut c, Duration::from_secs(3));
        }
        let _ = std::fs::remove_file(&self.config_path);
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// A running testbed. Fields drop in declaration order: processes and threads first, then the
/// namespaces, then the registry entry.
pub struct Testbed {
    saps: Option<SapsProcess>,
    servers: Option<LinuxServers>,
    router: DelayRouter,
    server_ns: Option<Netns>,
    target_ns: Netns,
    router_ns: Netns,
    client: Netns,
    target: Target,
    _live: LiveGuard,
}

impl std::fmt::Debug for Testbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Testbed")
            .field("target", &self.target)
            .field("client", &self.client.name())
            .field("router", &self.router_ns.name())
            .field("target_ns", &self.target_ns.name())
            .finish()
    }
}

fn ns(role: &str, id: usize) -> io::Result<Netns> {
    let n = Netns::new(&format!("{NS_PREFIX}{role}"))?;
    with_entry(id, |e| e.namespaces.push(n.name().to_string()));
    // No IPv6: no solicitations or DAD probes through the router. Best effort (a kernel
    // without IPv6 has nothing to turn off).
    let _ = n.exec(&[
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    Ok(n)
}

/// The checks [`Testbed::start`] makes before it looks at the machine: the admission policy
/// names one saps has, and the bottleneck is not empty.
fn check_config(cfg: &TestbedConfig) -> io::Result<()> {
    if let Target::Saps { policy } = &cfg.target {
        if !["off", "paper", "adaptive"].contains(&policy.as_str()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("saps policy {policy:?}: use \"off\", \"paper\" or \"adaptive\""),
            ));
        }
    }
    if cfg.rate_bps == 0 || cfg.tx_ring == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "rate_bps and tx_ring must be positive",
        ));
    }
    Ok(())
}

fn need(programs: &[(&str, &str)]) -> io::Result<()> {
    for (program, package) in programs {
        if !have_program(program) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{program}` not found; install it with: apt-get install -y {package}"),
            ));
        }
    }
    Ok(())
}

impl Testbed {
    /// Build the testbed and start the target; returns when the target answers TCP on
    /// `server_addr:80` from the client namespace. On error everything built so far is removed.
    pub fn start(cfg: &TestbedConfig) -> io::Result<Testbed> {
        // The configuration first: a mistake in it is reported as such, with or without root
        // and whatever is installed.
        check_config(cfg)?;
        if saps::os::geteuid() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the testbed builds network namespaces and needs root; run it with sudo (or as root)",
            ));
        }
        need(&[
            ("ip", "iproute2"),
            ("ethtool", "ethtool"),
            ("sysctl", "procps"),
        ])?;
        match &cfg.target {
            Target::LinuxNat => need(&[("nft", "nftables"), ("tc", "iproute2")])?,
            Target::Saps { .. } => {
                if !cfg.saps_binary.is_file() && !have_program(&cfg.saps_binary.to_string_lossy()) {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "saps binary {} not found; build it with `cargo build -p saps` and pass its path",
                            cfg.saps_binary.display()
                        ),
                    ));
                }
            }
        }
        let id = saps::topology::unique_id();
        registry().push(LiveEntry {
            id,
            namespaces: Vec::new(),
            saps: None,
            stops: Vec::new(),
        });
        let live = LiveGuard(id);

        let client = ns("cl", id)?;
        let router_ns = ns("rt", id)?;
        let is_nat = cfg.target == Target::LinuxNat;
        let target_ns = ns(if is_nat { "nat" } else { "saps" }, id)?;
        let server_ns = if is_nat { Some(ns("srv", id)?) } else { None };

        let c_link = VethPair::new(&client, &router_ns)?;
        let t_link = VethPair::new(&router_ns, &target_ns)?;
        client.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{CLIENT_ADDR}/24"),
            "dev",
            &c_link.a,
        ])?;

        let mut rcfg = RouterConfig::new(&c_link.b, &t_link.a, cfg.one_way_delay);
        rcfg.impairments = cfg.impairments;
        rcfg.rate_bps = cfg.router_rate_bps;
        rcfg.log_segments = cfg.log_segments;
        rcfg.pcap = cfg.pcap.clone();
        let router = DelayRouter::start(&router_ns, rcfg)?;
        with_entry(id, |e| e.stops.push(router.stop_flag()));

        let mut saps = None;
        let mut servers = None;
        match &cfg.target {
            Target::Saps { policy } => {
                let p = start_saps(cfg, policy, &target_ns, &t_link.b)?;
                with_entry(id, |e| e.saps = Some(p.child.clone()));
                saps = Some(p);
            }
            Target::LinuxNat => {
                let srv = server_ns
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no server namespace"))?;
                setup_nat(cfg, &target_ns, &t_link.b, srv)?;
                if let Some(cc) = &cfg.linux_congestion {
                    // On the servers' default route (towards the clients), not as the
                    // namespace's default: a namespace other than the host's may only default
                    // to the host's `tcp_allowed_congestion_control` (reno and bbr here), while
                    // a route may name any algorithm the kernel has.
                    srv.exec(&[
                        "ip",
                        "route",
                        "replace",
                        "default",
                        "via",
                        &NAT_INSIDE_ADDR.to_string(),
                        "congctl",
                        cc,
                    ])
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("congestion control {cc:?} (see net.ipv4.tcp_available_congestion_control): {e}"),
                        )
                    })?;
                }
                if let Some(on) = cfg.sack {
                    srv.exec(&[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv4.tcp_sack={}", u8::from(on)),
                    ])?;
                }
                let s = LinuxServers::start(srv, Ipv4Addr::UNSPECIFIED)?;
                with_entry(id, |e| e.stops.push(s.stop_flag()));
                servers = Some(s);
            }
        }
        let bed = Testbed {
            saps,
            servers,
            router,
            server_ns,
            target_ns,
            router_ns,
            client,
            target: cfg.target.clone(),
            _live: live,
        };
        bed.wait_ready()?;
        Ok(bed)
    }

    /// Connect to port 80 from the client namespace until it answers (or saps exits).
    fn wait_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddrV4::new(SERVER_ADDR, 80);
        loop {
            if let Some(p) = &self.saps {
                if let Some(status) = p.exited() {
                    return Err(io::Error::other(format!(
                        "saps exited ({status}) before answering: {}",
                        p.log_tail()
                    )));
                }
            }
            let ok = self
                .client
                .spawn(move || {
                    TcpStream::connect_timeout(&addr.into(), Duration::from_millis(500)).map(|_| ())
                })?
                .join()
                .map_err(|_| io::Error::other("readiness probe panicked"))?
                .is_ok();
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = self.saps.as_ref().map(|p| p.log_tail()).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} did not answer on {addr} within {} s {log}",
                        self.target.label(),
                        READY_TIMEOUT.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Linux client namespace; generators run here ([`Netns::spawn`], [`Netns::command`]).
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The delay router's namespace.
    pub fn router_ns(&self) -> &Netns {
        &self.router_ns
    }

    /// The target's namespace: saps's, or the NAT router's.
    pub fn target_ns(&self) -> &Netns {
        &self.target_ns
    }

    /// The Linux servers' namespace ([`Target::LinuxNat`] only).
    pub fn server_ns(&self) -> Option<&Netns> {
        self.server_ns.as_ref()
    }

    /// The target this testbed runs.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The public address: saps's, or the NAT router's.
    pub fn server_addr(&self) -> Ipv4Addr {
        SERVER_ADDR
    }

    /// The client's address.
    pub fn client_addr(&self) -> Ipv4Addr {
        CLIENT_ADDR
    }

    /// When the delay router started: [`SegmentRecord::at`] counts from here.
    pub fn router_started_at(&self) -> Instant {
        self.router.started_at()
    }

    /// Takes the segment records the router collected so far (empty unless `log_segments`).
    pub fn segment_log(&self) -> Vec<SegmentRecord> {
        self.router.segment_log()
    }

    /// The router's counters per direction.
    pub fn router_stats(&self) -> RouterStats {
        self.router.stats()
    }

    /// saps's `/metrics` text, fetched inside its namespace; `None` for the Linux NAT target or
    /// when saps does not answer.
    pub fn saps_metrics(&self) -> Option<String> {
        self.saps.as_ref()?;
        let text = self
            .target_ns
            .spawn(|| {
                let mut s =
                    TcpStream::connect_timeout(&TELEMETRY_ADDR.into(), Duration::from_secs(2))?;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"GET /metrics HTTP/1.0\r\nHost: saps\r\n\r\n")?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })
            .ok()?
            .join()
            .ok()?
            .ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        if head.starts_with("HTTP/1.") {
            Some(body.to_string())
        } else {
            None
        }
    }

    /// The Linux servers' `net.ipv4.tcp_sack` as it reads now ([`Target::LinuxNat`] only).
    pub fn linux_tcp_sack(&self) -> Option<io::Result<bool>> {
        let srv = self.server_ns.as_ref()?;
        Some(
            srv.exec(&["sysctl", "-n", "net.ipv4.tcp_sack"])
                .and_then(|v| match v.trim() {
                    "0" => Ok(false),
                    "1" => Ok(true),
                    other => Err(io::Error::other(format!(
                        "net.ipv4.tcp_sack reads {other:?}"
                    ))),
                }),
        )
    }

    /// The congestion control of the Linux servers' connections to the clients as configured
    /// now: their default route's `congctl`, else the namespace's
    /// `net.ipv4.tcp_congestion_control` ([`Target::LinuxNat`] only).
    pub fn linux_congestion(&self) -> Option<io::Result<String>> {
        let srv = self.server_ns.as_ref()?;
        let read = || -> io::Result<String> {
            let route = srv.exec(&["ip", "route", "show", "default"])?;
            if let Some(cc) = route_congctl(&route) {
                return Ok(cc.to_string());
            }
            srv.exec(&["sysctl", "-n", "net.ipv4.tcp_congestion_control"])
                .map(|v| v.trim().to_string())
        };
        Some(read())
    }

    /// The Linux servers' TCP counters (`/proc/net/snmp` `Tcp:` and `/proc/net/netstat`
    /// `TcpExt:`, e.g. `RetransSegs`, `TCPSackRecovery`, `TCPRenoRecovery`, `TCPTimeouts`), read
    /// in their namespace ([`Target::LinuxNat`] only).
    pub fn linux_tcp_counters(&self) -> Option<io::Result<Vec<(String, u64)>>> {
        let srv = self.server_ns.as_ref()?;
        Some(
            srv.exec(&["cat", "/proc/net/snmp", "/proc/net/netstat"])
                .map(|text| proc_net_counters(&text, &["Tcp", "TcpExt"])),
        )
    }

    /// What saps wrote to its log so far (warnings and errors); `None` for the Linux NAT target.
    pub fn saps_log(&self) -> Option<String> {
        let p = self.saps.as_ref()?;
        std::fs::read_to_string(&p.log_path).ok()
    }

    /// Tear everything down now (what drop does), returning the delay router's error, if it
    /// stopped on one.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.saps = None;
        self.servers = None;
        self.router.stop()
    }
}

/// Write saps's configuration and start it in `ns` on `iface`.
fn start_saps(
    cfg: &TestbedConfig,
    policy: &str,
    ns: &Netns,
    iface: &str,
) -> io::Result<SapsProcess> {
    let config = saps_config(cfg, policy, iface);
    let tag = format!("{}-{}", std::process::id(), saps::topology::unique_id());
    let config_path = std::env::temp_dir().join(format!("saps-pktgen-{tag}.toml"));
    let log_path = std::env::temp_dir().join(format!("saps-pktgen-{tag}.log"));
    std::fs::write(&config_path, config)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", config_path.display())))?;
    let log = std::fs::File::create(&log_path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", log_path.display())))?;
    let child = ns
        .command(&cfg.saps_binary.to_string_lossy())
        .args(["--log-level", "warn", "run", "--config"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("starting {}: {e}", cfg.saps_binary.display()),
            )
        })?;
    Ok(SapsProcess {
        child: Arc::new(Mutex::new(Some(child))),
        config_path,
        log_path,
    })
}

/// The `saps run` configuration for this testbed: one af_packet port on `iface` owning the
/// public address, the bottleneck and admission policy, every built-in service, telemetry.
pub fn saps_config(cfg: &TestbedConfig, policy: &str, iface: &str) -> String {
    let cores = match &cfg.saps_cores {
        Some(c) => format!(
            "cores = [{}]\n",
            c.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    };
    // Only what the testbed was asked to set: the rest keeps the appliance's defaults.
    let mut tcp = String::new();
    if let Some(on) = cfg.sack {
        tcp += &format!("sack = {on}\n");
    }
    if let Some(cc) = cfg.saps_congestion {
        tcp += &format!("congestion = \"{}\"\n", congestion_name(cc));
    }
    if !tcp.is_empty() {
        tcp.insert_str(0, "[tcp]\n");
    }
    format!(
        "# Written by saps-pktgen's testbed.\n{cores}[[port]]\nname = \"ext\"\nbackend = \"af_packet\"\niface = \"{iface}\"\nipv4 = \"{SERVER_ADDR}/24\"\nline_rate = \"{}bit\"\ntx_ring = {}\nadmission = \"{policy}\"\n{}\n[telemetry]\nlisten = \"{TELEMETRY_ADDR}\"\n{tcp}",
        cfg.rate_bps,
        cfg.tx_ring,
        saps::demo::ALL_SERVICES
    )
}

/// The NAT router: addresses, forwarding, DNAT, tbf towards the clients; the server's route.
fn setup_nat(cfg: &TestbedConfig, nat: &Netns, outside: &str, srv: &Netns) -> io::Result<()> {
    let inside = VethPair::new(nat, srv)?;
    nat.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{SERVER_ADDR}/24"),
        "dev",
        outside,
    ])?;
    nat.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{NAT_INSIDE_ADDR}/24"),
        "dev",
        &inside.a,
    ])?;
    srv.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{LINUX_SERVER_ADDR}/24"),
        "dev",
        &inside.b,
    ])?;
    srv.exec(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &NAT_INSIDE_ADDR.to_string(),
    ])?;
    nat.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    let rules = format!(
        "table ip pktgen_nat {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    iifname \"{outside}\" ip daddr {SERVER_ADDR} dnat to {LINUX_SERVER_ADDR}\n  }}\n}}\n"
    );
    let mut nft = nat
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = nft.stdin.take() {
        stdin.write_all(rules.as_bytes())?;
    }
    let out = nft.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "nft -f - in {}: {}",
            nat.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let (burst, limit) = tbf_sizes(cfg.rate_bps, cfg.tx_ring);
    nat.exec(&[
        "tc",
        "qdisc",
        "replace",
        "dev",
        outside,
        "root",
        "tbf",
        "rate",
        &format!("{}bit", cfg.rate_bps),
        "burst",
        &burst.to_string(),
        "limit",
        &limit.to_string(),
        // Count what saps's line-rate emulation counts: preamble, SFD, FCS and gap per frame.
        "overhead",
        &saps::port::line_rate::WIRE_OVERHEAD_BYTES.to_string(),
    ])?;
    Ok(())
}

/// The algorithm after `congctl` (and an optional `lock`) in `ip route show` output.
pub fn route_congctl(route: &str) -> Option<&str> {
    let mut words = route.split_whitespace().skip_while(|w| *w != "congctl");
    words.next()?;
    match words.next()? {
        "lock" => words.next(),
        cc => Some(cc),
    }
}

/// The counters of the `groups` in `/proc/net/snmp` or `/proc/net/netstat` text: each group
/// is a line of names followed by a line of values, both starting with `Group:`. Values that
/// are not unsigned integers (`MaxConn -1`) are left out.
pub fn proc_net_counters(text: &str, groups: &[&str]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(names) = lines.next() {
        let Some((group, names)) = names.split_once(':') else {
            continue;
        };
        if !groups.contains(&group) {
            continue;
        }
        let Some(values) = lines
            .next()
            .and_then(|v| v.strip_prefix(group)?.strip_prefix(':'))
        else {
            break;
        };
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<u64>() {
                out.push((n.to_string(), v));
            }
        }
    }
    out
}

/// tbf's `burst` and `limit` in bytes for `rate_bps` and a queue of `packets`: the limit is
/// `packets x 1514`; the burst is 100 µs at the rate (12.5 KB at 1 Gb/s, about 8 frames), at
/// least two full frames: small enough that tbf paces like a wire, large enough that its timer
/// is not asked to wake for every frame.
pub fn tbf_sizes(rate_bps: u64, packets: u32) -> (u64, u64) {
    let burst = (rate_bps / 8 / 10_000).max(2 * TBF_PACKET_BYTES);
    let limit = u64::from(packets) * TBF_PACKET_BYTES;
    (burst, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_defaults() {
        let c = TestbedConfig::new(Target::LinuxNat);
        assert_eq!(c.one_way_delay, Duration::from_millis(1));
        assert_eq!((c.rate_bps, c.tx_ring), (1_000_000_000, 1000));
        let s = TestbedConfig::new(Target::Saps {
            policy: "off".into(),
        });
        assert_eq!(s.tx_ring, 1024);
        assert_eq!(c.impairments, Impairments::default());
        assert!(!c.log_segments && c.pcap.is_none() && c.router_rate_bps.is_none());
        assert!(c.saps_cores.is_none() && c.sack.is_none() && c.linux_congestion.is_none());
        assert!(c.saps_congestion.is_none());
    }

    #[test]
    fn tbf_limit_is_packets_times_frame() {
        assert_eq!(tbf_sizes(1_000_000_000, 1000), (12_500, 1_514_000));
        assert_eq!(tbf_sizes(10_000_000, 10), (3028, 15_140));
    }

    #[test]
    fn stale_namespaces_are_those_of_dead_processes() {
        let me = std::process::id();
        let list = format!(
            "pk-cl-99999999-3 (id: 4)\npk-rt-{me}-1 (id: 5)\nother-99999999-1\npk-test-cl-99999999-0\npk-nat-99999998-7"
        );
        assert_eq!(
            stale_namespaces(&list),
            vec![
                "pk-cl-99999999-3".to_string(),
                "pk-test-cl-99999999-0".to_string(),
                "pk-nat-99999998-7".to_string()
            ]
        );
    }

    #[test]
    fn saps_config_is_valid_and_carries_the_bottleneck() {
        let mut cfg = TestbedConfig::new(Target::Saps {
            policy: "paper".into(),
        });
        cfg.rate_bps = 200_000_000;
        cfg.tx_ring = 512;
        cfg.saps_cores = Some(vec![1]);
        let text = saps_config(&cfg, "paper", "veth0");
        let c =
            saps::config::Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.cores, Some(vec![1]));
        let p = &c.ports[0];
        assert_eq!(p.line_rate_bps, Some(200_000_000));
        assert_eq!(p.tx_ring, 512);
        assert_eq!(p.admission, saps::config::Admission::Paper);
        assert_eq!(c.services.len(), 5);
        assert!(
            c.tcp.sack,
            "SACK stays on unless the testbed says otherwise"
        );
        cfg.sack = Some(false);
        let text = saps_config(&cfg, "paper", "veth0");
        let c =
            saps::config::Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(!c.tcp.sack);
        assert_eq!(c.ports[0].tx_ring, 512);
    }

    #[test]
    fn saps_config_sets_the_congestion_control_only_when_asked() {
        let mut cfg = TestbedConfig::new(Target::Saps {
            policy: "adaptive".into(),
        });
        let parse = |cfg: &TestbedConfig| {
            let text = saps_config(cfg, "adaptive", "veth0");
            saps::config::Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
        };
        assert_eq!(
            parse(&cfg).tcp.congestion,
            saps::config::TcpConfig::default().congestion,
            "unset keeps the appliance's default"
        );
        for cc in SAPS_CONGESTION {
            cfg.saps_congestion = Some(cc);
            assert_eq!(parse(&cfg).tcp.congestion, cc);
        }
        // Together with the SACK variant, in one [tcp] table.
        cfg.sack = Some(false);
        let c = parse(&cfg);
        assert_eq!(c.tcp.congestion, CongestionAlgorithm::Bbr);
        assert!(!c.tcp.sack);
    }

    #[test]
    fn proc_net_counters_pair_names_with_values() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm MaxConn RetransSegs\nTcp: 1 -1 11\n\
                    TcpExt: SyncookiesSent TCPSackRecovery\nTcpExt: 0 5\nMPTcpExt: TCPSackRecovery\nMPTcpExt: 9\n";
        assert_eq!(
            proc_net_counters(text, &["Tcp", "TcpExt"]),
            vec![
                ("RtoAlgorithm".to_string(), 1),
                ("RetransSegs".to_string(), 11),
                ("SyncookiesSent".to_string(), 0),
                ("TCPSackRecovery".to_string(), 5),
            ]
        );
        assert!(proc_net_counters("Tcp: A B\n", &["Tcp"]).is_empty());
    }

    #[test]
    fn congctl_is_read_from_a_route() {
        assert_eq!(
            route_congctl("default via 10.80.1.1 dev veth1 congctl cubic \n"),
            Some("cubic")
        );
        assert_eq!(
            route_congctl("default via 10.80.1.1 dev veth1 congctl lock reno"),
            Some("reno")
        );
        assert_eq!(route_congctl("default via 10.80.1.1 dev veth1"), None);
        assert_eq!(route_congctl("default via 10.80.1.1 congctl"), None);
    }

    #[test]
    fn labels() {
        let t = Target::Saps {
            policy: "adaptive".into(),
        };
        assert_eq!(t.label(), "saps-adaptive");
        assert_eq!(Target::LinuxNat.label(), "linux-nat");
    }

    #[test]
    fn bad_policy_is_rejected_before_anything_is_built() {
        let mut c = TestbedConfig::new(Target::Saps {
            policy: "fast".into(),
        });
        c.saps_binary = PathBuf::from("/bin/true");
        let err = Testbed::start(&c).err().unwrap().to_string();
        assert!(err.contains("\"fast\""), "{err}");
    }

    #[test]
    fn config_is_checked_before_the_programs_it_needs() {
        // A binary that does not exist would fail the program check; the empty bottleneck
        // must be reported first.
        let mut c = TestbedConfig::new(Target::Saps {
            policy: "adaptive".into(),
        });
        c.saps_binary = PathBuf::from("/nonexistent/saps");
        c.rate_bps = 0;
        let err = Testbed::start(&c).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("rate_bps"), "{err}");
    }
}
