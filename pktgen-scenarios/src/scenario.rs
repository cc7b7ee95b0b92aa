//! Scenarios: the TOML format and the runner.
//!
//! A scenario names one experiment of the SAPS paper, the targets to run it against, the
//! testbed (delay, bottleneck rate, TX ring) and one workload. A `[quick]` table overrides any
//! of those keys for the CI-sized variant (`--quick`): it is merged key by key over the file
//! before the file is read, so a misspelt key in `[quick]` is an error like any other.
//!
//! ```toml
//! name = "fairness"
//! paper = "Figures 10-12"
//! description = "..."
//! targets = ["saps_off", "saps_paper", "saps_adaptive", "linux_nat"]
//! [testbed]
//! rate_mbps = 1000
//! [workload]
//! kind = "fairness"
//! streams = 3
//! bytes_per_stream = 100_000_000
//! [quick.workload]
//! bytes_per_stream = 10_000_000
//! ```
//!
//! `sack = [true, false]` (top level) runs every target once per value, with selective
//! acknowledgments on or off on the target's side (saps: `[tcp] sack`; Linux NAT: the servers'
//! `net.ipv4.tcp_sack`). Without it each target runs once with its stack's default (on).
//!
//! The runner starts one [`Testbed`] per target, runs the workload from the client namespace,
//! collects the generator results and the delay router's segment log, tears the testbed down
//! (dropping it), and hands everything to [`crate::report`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::analysis::{self, Latency};
use crate::delay_router::{Direction, RouterStats, SegmentRecord};
use crate::generators::{
    self, Amount, BulkMode, BulkSpec, Cancel, ConnRateResult, Endpoints, KeepAliveResult,
    PingPongResult, StreamResult, SweepPoint, UdpResult,
};
use crate::testbed::{
    congestion_name, Impairments, Target, Testbed, TestbedConfig, SAPS_CONGESTION,
};
use saps::config::CongestionAlgorithm;

/// The scenarios shipped with saps-pktgen (name, TOML text), also under `scenarios/`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("rtt", include_str!("../scenarios/rtt.toml")),
    ("bandwidth", include_str!("../scenarios/bandwidth.toml")),
    ("foreground", include_str!("../scenarios/foreground.toml")),
    ("fairness", include_str!("../scenarios/fairness.toml")),
    ("services", include_str!("../scenarios/services.toml")),
    ("sack", include_str!("../scenarios/sack.toml")),
    ("sack-bbr", include_str!("../scenarios/sack-bbr.toml")),
];

/// One system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// saps with TX admission off (the ring fills like a kernel's interface queue).
    SapsOff,
    /// saps with the paper's fixed queue limit and round-robin service.
    SapsPaper,
    /// saps with the adaptive limit.
    SapsAdaptive,
    /// Linux NAT (nftables DNAT + tbf) in front of Linux servers.
    LinuxNat,
}

impl TargetKind {
    /// Every target, in report order.
    pub const ALL: [TargetKind; 4] = [
        TargetKind::SapsOff,
        TargetKind::SapsPaper,
        TargetKind::SapsAdaptive,
        TargetKind::LinuxNat,
    ];

    /// The name used in scenario files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::SapsOff => "saps_off",
            TargetKind::SapsPaper => "saps_paper",
            TargetKind::SapsAdaptive => "saps_adaptive",
            TargetKind::LinuxNat => "linux_nat",
        }
    }

    /// Parse a command-line name (`saps_off`, `saps-off` and `off` all work).
    pub fn parse(s: &str) -> Option<TargetKind> {
        let s = s.trim().replace('-', "_");
        TargetKind::ALL
            .into_iter()
            .find(|t| t.name() == s || t.name().strip_prefix("saps_") == Some(s.as_str()))
    }

    fn testbed_target(self) -> Target {
        let policy = |p: &str| Target::Saps {
            policy: p.to_string(),
        };
        match self {
            TargetKind::SapsOff => policy("off"),
            TargetKind::SapsPaper => policy("paper"),
            TargetKind::SapsAdaptive => policy("adaptive"),
            TargetKind::LinuxNat => Target::LinuxNat,
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The emulated path: the same for every target of a scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestbedSpec {
    /// Delay the router adds in each direction, in milliseconds (paper: 1, i.e. 2 ms RTT).
    pub one_way_delay_ms: f64,
    /// Bottleneck rate in Mb/s (saps: line-rate emulation; Linux: tbf).
    pub rate_mbps: f64,
    /// The bottleneck queue in packets for both targets: saps's TX ring slots and the Linux
    /// NAT's tbf queue. Unset: the issue's set-up, 1024 slots for saps and 1000 packets for tbf.
    pub tx_ring: Option<u32>,
    /// Random loss the router adds (0..1), in both directions unless `loss_to_server` is set.
    pub loss: f64,
    /// Loss towards the target (the client's ACKs on a download) instead of `loss`: 0 puts
    /// the loss on the data direction of a download only.
    pub loss_to_server: Option<f64>,
    /// Whether the router logs every TCP segment (needed for time/sequence traces).
    pub log_segments: bool,
    /// The Linux NAT target's servers' congestion control (e.g. "cubic", saps's default);
    /// unset: what their namespace inherits from the host (bbr here).
    pub linux_congestion: Option<String>,
    /// saps's congestion control (`[tcp] congestion`: "newreno", "cubic" or "bbr"); unset: the
    /// appliance's default (cubic).
    pub saps_congestion: Option<String>,
}

/// The algorithm `testbed.saps_congestion` names, if it is one of saps's (exactly as saps's
/// `tcp.congestion` spells them: lower case, no aliases).
fn saps_congestion(name: &str) -> Option<CongestionAlgorithm> {
    SAPS_CONGESTION
        .into_iter()
        .find(|&cc| congestion_name(cc) == name)
}

impl Default for TestbedSpec {
    fn default() -> Self {
        TestbedSpec {
            one_way_delay_ms: 1.0,
            rate_mbps: 1000.0,
            tx_ring: None,
            loss: 0.0,
            loss_to_server: None,
            log_segments: false,
            linux_congestion: None,
            saps_congestion: None,
        }
    }
}

/// What the client does.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Workload {
    /// Request/response round trips over echo/7 (paper Table 3).
    PingPong {
        /// Bytes per request (paper: 4).
        #[serde(default = "four")]
        size: usize,
        /// Unmeasured round trips first.
        #[serde(default = "ten")]
        warmup: u64,
        /// Measured round trips.
        count: u64,
        /// Pause between round trips, in microseconds.
        #[serde(default)]
        interval_us: u64,
    },
    /// Fetch `GET /bytes/N` on fresh connections for each size (paper Figure 7).
    SizeSweep {
        /// Transfer sizes in bytes.
        sizes: Vec<u64>,
        /// Fetches per size.
        repetitions: u32,
    },
    /// Background bulk streams, then foreground transfers once they settle (Figures 8-9).
    Foreground {
        /// Background bulk downloads (paper: 2).
        #[serde(default = "two")]
        background_streams: usize,
        /// Milliseconds after the background streams start before the first foreground transfer.
        settle_ms: u64,
        /// Bytes per foreground transfer (paper: 100 KB).
        foreground_bytes: u64,
        /// Foreground transfers, one after another (the median is reported).
        repetitions: u32,
        /// Milliseconds between foreground starts.
        gap_ms: u64,
    },
    /// N bulk downloads of the same size started together (Figures 10-12).
    Fairness {
        /// Streams (paper: 3).
        streams: usize,
        /// Bytes per stream (paper: 100 MB).
        bytes_per_stream: u64,
        /// Jain window in milliseconds (issue: 100).
        #[serde(default = "hundred")]
        window_ms: u64,
        /// Windows starting earlier than this after the first are ignored for the minimum.
        #[serde(default = "two_hundred")]
        warmup_ms: u64,
        /// Goodput bucket width in milliseconds.
        #[serde(default = "ten")]
        bucket_ms: u64,
    },
    /// Every other generator once, one after another: an upload to discard/9, the
    /// connection-rate generator, keep-alive HTTP and the UDP blaster. A smoke test of the
    /// targets' services through the testbed, and their capacity.
    Services {
        /// Bytes of the upload.
        upload_bytes: u64,
        /// Connections to open (each: connect, `GET /bytes/connection_bytes`, close).
        connections: u64,
        /// Connections per second (0 = as fast as possible).
        connection_rate: f64,
        /// Threads opening connections.
        #[serde(default = "four")]
        concurrency: usize,
        /// Bytes fetched per connection.
        connection_bytes: u64,
        /// Requests on one keep-alive connection.
        keep_alive_requests: u64,
        /// Bytes per keep-alive response.
        keep_alive_bytes: u64,
        /// UDP datagrams to echo/7.
        udp_packets: u64,
        /// Bytes per datagram.
        udp_size: usize,
        /// Datagrams per second (0 = as fast as possible).
        udp_pps: f64,
    },
}

fn two() -> usize {
    2
}
fn four() -> usize {
    4
}
fn ten() -> u64 {
    10
}
fn hundred() -> u64 {
    100
}
fn two_hundred() -> u64 {
    200
}

fn all_targets() -> Vec<TargetKind> {
    TargetKind::ALL.to_vec()
}

/// A scenario file, after `[quick]` was merged in (or dropped).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (also the output file prefix).
    pub name: String,
    /// Which result of the paper this reproduces.
    pub paper: String,
    /// One paragraph: what is measured and what the paper saw.
    pub description: String,
    /// Targets to run against, in order.
    #[serde(default = "all_targets")]
    pub targets: Vec<TargetKind>,
    /// SACK variants: each target runs once per value, with selective acknowledgments on
    /// (`true`) or off on the target's side. Empty: once, with the stack's default (on).
    #[serde(default)]
    pub sack: Vec<bool>,
    /// The emulated path.
    #[serde(default)]
    pub testbed: TestbedSpec,
    /// What the client does.
    pub workload: Workload,
    /// Set by [`Scenario::parse`] when the `[quick]` overrides were applied.
    #[serde(skip)]
    pub quick: bool,
}

/// Merge `over` into `base` key by key (tables recursively, everything else replaced).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The ranges [`Scenario::validate`] accepts, inclusive: wide enough for any experiment on one
/// machine, narrow enough that no value can overflow a generator's arithmetic or memory.
pub mod limits {
    /// `testbed.rate_mbps` (100 kb/s .. 100 Gb/s).
    pub const RATE_MBPS: (f64, f64) = (0.1, 100_000.0);
    /// `testbed.one_way_delay_ms`.
    pub const DELAY_MS: (f64, f64) = (0.0, 1000.0);
    /// `testbed.tx_ring` (saps's `port.tx_ring` range).
    pub const TX_RING: (u64, u64) = (16, 65_536);
    /// Ping-pong `size` in bytes (one echo round trip, not a bulk transfer).
    pub const PING_SIZE: (u64, u64) = (1, crate::generators::PING_MAX_SIZE as u64);
    /// Ping-pong `warmup` and `count` (`count` also needs at least 1).
    pub const ROUND_TRIPS: (u64, u64) = (0, 10_000_000);
    /// Ping-pong `interval_us` (up to 10 s).
    pub const INTERVAL_US: (u64, u64) = (0, 10_000_000);
    /// Bytes of one transfer, upload or stream (1 B .. 100 GB).
    pub const TRANSFER_BYTES: (u64, u64) = (1, 100_000_000_000);
    /// Bytes of one HTTP response of the services workload (0 .. 1 GB).
    pub const RESPONSE_BYTES: (u64, u64) = (0, 1_000_000_000);
    /// Repetitions of a sweep point or foreground transfer.
    pub const REPETITIONS: (u64, u64) = (1, 10_000);
    /// Parallel bulk streams.
    pub const STREAMS: (u64, u64) = (2, 64);
    /// Phase lengths in milliseconds (settle, gap, window, warm-up: up to 10 minutes).
    pub const PHASE_MS: (u64, u64) = (0, 600_000);
    /// Connections or keep-alive requests.
    pub const CONNECTIONS: (u64, u64) = (1, 10_000_000);
    /// `connection_rate` per second when not 0 (0 = as fast as possible).
    pub const CONNECTION_RATE: (f64, f64) = (1.0, 1_000_000.0);
    /// `udp_pps` when not 0 (0 = as fast as possible).
    pub const UDP_PPS: (f64, f64) = (1.0, 10_000_000.0);
}

/// `value` of `key` must lie in `range` (inclusive).
fn int_in(key: &str, value: u64, range: (u64, u64)) -> Result<(), String> {
    if (range.0..=range.1).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "`{key}` = {value} is out of range: set it to a value in {}..={}",
            range.0, range.1
        ))
    }
}

/// `value` of `key` must be a finite number in `range` (inclusive); NaN fails too.
fn float_in(key: &str, value: f64, range: (f64, f64)) -> Result<(), String> {
    if value >= range.0 && value <= range.1 {
        Ok(())
    } else {
        Err(format!(
            "`{key}` = {value} is out of range: set it to a number in [{}, {}]",
            range.0, range.1
        ))
    }
}

/// A rate: 0 (as fast as possible) or a number in `range`.
fn rate_in(key: &str, value: f64, range: (f64, f64)) -> Result<(), String> {
    if value == 0.0 || (value >= range.0 && value <= range.1) {
        Ok(())
    } else {
        Err(format!(
            "`{key}` = {value} is out of range: set it to 0 (as fast as possible) or a rate in [{}, {}] per second",
            range.0, range.1
        ))
    }
}

impl Scenario {
    /// Parse a scenario's TOML; with `quick`, the `[quick]` table is merged over it first.
    /// Errors name the offending key (serde's `unknown field`/`missing field` or the
    /// validation message).
    pub fn parse(text: &str, quick: bool) -> Result<Scenario, String> {
        let mut table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
        let overrides = match table.remove("quick") {
            None => None,
            Some(toml::Value::Table(t)) => Some(t),
            Some(_) => return Err("`quick` must be a table ([quick])".into()),
        };
        if quick {
            let Some(o) = overrides else {
                return Err("the scenario has no [quick] table for --quick".into());
            };
            merge(&mut table, o);
        }
        // Deserialize from text (not from the Value) so errors carry a line and column.
        let merged = toml::to_string(&table).map_err(|e| e.to_string())?;
        let mut s: Scenario = toml::from_str(&merged).map_err(|e| {
            let what = if quick { " (with [quick] merged)" } else { "" };
            format!("scenario{what}: {}", e.message())
        })?;
        s.quick = quick;
        s.validate()?;
        Ok(s)
    }

    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str, quick: bool) -> Result<Scenario, String> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(text, quick).map_err(|e| format!("{name_or_path}: {e}"));
        }
        let p = Path::new(name_or_path);
        if p.exists() {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            return Scenario::parse(&text, quick).map_err(|e| format!("{}: {e}", p.display()));
        }
        let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        Err(format!(
            "no scenario `{name_or_path}`: not a built-in ({}) and no such file",
            names.join(", ")
        ))
    }

    /// Checks serde cannot express: every numeric value has a range, so a typo cannot ask a
    /// generator for an absurd rate, size or count (which would panic or exhaust memory).
    /// Messages name the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.testbed;
        if self.targets.is_empty() {
            return Err("`targets` is empty: name at least one of saps_off, saps_paper, saps_adaptive, linux_nat".into());
        }
        float_in("testbed.rate_mbps", t.rate_mbps, limits::RATE_MBPS)?;
        float_in(
            "testbed.one_way_delay_ms",
            t.one_way_delay_ms,
            limits::DELAY_MS,
        )?;
        if !(0.0..1.0).contains(&t.loss) {
            return Err(format!(
                "`testbed.loss` = {} is out of range: set it to a fraction in [0, 1) (0.01 = 1% loss)",
                t.loss
            ));
        }
        if let Some(l) = t.loss_to_server {
            if !(0.0..1.0).contains(&l) {
                return Err(format!(
                    "`testbed.loss_to_server` = {l} is out of range: set it to a fraction in [0, 1) (0 = no loss towards the target)"
                ));
            }
        }
        if let Some(q) = t.tx_ring {
            int_in("testbed.tx_ring", u64::from(q), limits::TX_RING)?;
        }
        if let Some(cc) = &t.linux_congestion {
            let ok = !cc.is_empty()
                && cc.len() <= 15
                && cc
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(format!(
                    "`testbed.linux_congestion` = {cc:?} is not a congestion control name: set it to one of net.ipv4.tcp_available_congestion_control, e.g. \"cubic\""
                ));
            }
        }
        if let Some(cc) = &t.saps_congestion {
            if saps_congestion(cc).is_none() {
                let names: Vec<String> = SAPS_CONGESTION
                    .iter()
                    .map(|&c| format!("\"{}\"", congestion_name(c)))
                    .collect();
                return Err(format!(
                    "`testbed.saps_congestion` = {cc:?} is not one of saps's congestion controls: set it to {} (saps's `tcp.congestion`), or remove it for saps's default",
                    names.join(", ")
                ));
            }
        }
        if self.sack.len() > 2 || (self.sack.len() == 2 && self.sack[0] == self.sack[1]) {
            return Err(format!(
                "`sack` = {:?}: list each of true and false at most once (e.g. sack = [true, false]), or remove it for the stacks' default",
                self.sack
            ));
        }
        match &self.workload {
            Workload::PingPong {
                size,
                warmup,
                count,
                interval_us,
            } => {
                int_in("workload.size", *size as u64, limits::PING_SIZE)?;
                int_in("workload.warmup", *warmup, limits::ROUND_TRIPS)?;
                int_in("workload.count", *count, (1, limits::ROUND_TRIPS.1))?;
                int_in("workload.interval_us", *interval_us, limits::INTERVAL_US)?;
            }
            Workload::SizeSweep { sizes, repetitions } => {
                if sizes.is_empty() || sizes.len() > 64 {
                    return Err(format!(
                        "`workload.sizes` has {} entries: list 1 to 64 transfer sizes",
                        sizes.len()
                    ));
                }
                for s in sizes {
                    int_in("workload.sizes", *s, limits::TRANSFER_BYTES)?;
                }
                int_in(
                    "workload.repetitions",
                    u64::from(*repetitions),
                    limits::REPETITIONS,
                )?;
            }
            Workload::Foreground {
                background_streams,
                settle_ms,
                foreground_bytes,
                repetitions,
                gap_ms,
            } => {
                int_in(
                    "workload.background_streams",
                    *background_streams as u64,
                    (0, limits::STREAMS.1),
                )?;
                int_in("workload.settle_ms", *settle_ms, limits::PHASE_MS)?;
                int_in(
                    "workload.foreground_bytes",
                    *foreground_bytes,
                    limits::TRANSFER_BYTES,
                )?;
                int_in(
                    "workload.repetitions",
                    u64::from(*repetitions),
                    limits::REPETITIONS,
                )?;
                int_in("workload.gap_ms", *gap_ms, (1, limits::PHASE_MS.1))?;
                if !self.testbed.log_segments {
                    return Err("a foreground scenario needs `testbed.log_segments = true` for its time/sequence trace".into());
                }
            }
            Workload::Fairness {
                streams,
                bytes_per_stream,
                window_ms,
                warmup_ms,
                bucket_ms,
            } => {
                int_in("workload.streams", *streams as u64, limits::STREAMS)?;
                int_in(
                    "workload.bytes_per_stream",
                    *bytes_per_stream,
                    limits::TRANSFER_BYTES,
                )?;
                int_in("workload.bucket_ms", *bucket_ms, (1, 10_000))?;
                int_in("workload.window_ms", *window_ms, (1, limits::PHASE_MS.1))?;
                int_in("workload.warmup_ms", *warmup_ms, limits::PHASE_MS)?;
                if *window_ms < *bucket_ms || window_ms % bucket_ms != 0 {
                    return Err(format!(
                        "`workload.window_ms` ({window_ms}) must be a multiple of `workload.bucket_ms` ({bucket_ms}): set it to one"
                    ));
                }
            }
            Workload::Services {
                upload_bytes,
                connections,
                connection_rate,
                concurrency,
                connection_bytes,
                keep_alive_requests,
                keep_alive_bytes,
                udp_packets,
                udp_size,
                udp_pps,
            } => {
                int_in(
                    "workload.upload_bytes",
                    *upload_bytes,
                    limits::TRANSFER_BYTES,
                )?;
                int_in("workload.connections", *connections, limits::CONNECTIONS)?;
                rate_in(
                    "workload.connection_rate",
                    *connection_rate,
                    limits::CONNECTION_RATE,
                )?;
                int_in("workload.concurrency", *concurrency as u64, (1, 256))?;
                int_in(
                    "workload.connection_bytes",
                    *connection_bytes,
                    limits::RESPONSE_BYTES,
                )?;
                int_in(
                    "workload.keep_alive_requests",
                    *keep_alive_requests,
                    limits::CONNECTIONS,
                )?;
                int_in(
                    "workload.keep_alive_bytes",
                    *keep_alive_bytes,
                    limits::RESPONSE_BYTES,
                )?;
                int_in(
                    "workload.udp_packets",
                    *udp_packets,
                    (1, generators::UDP_MAX_PACKETS),
                )?;
                if !(16..=1472).contains(udp_size) {
                    return Err(format!("`workload.udp_size` = {udp_size} is out of range: set it to 16..=1472 (one unfragmented datagram with the 16-byte sequence/time header)"));
                }
                rate_in("workload.udp_pps", *udp_pps, limits::UDP_PPS)?;
            }
        }
        Ok(())
    }

    /// The runs of this scenario in order: each target, once per SACK variant.
    pub fn runs(&self, targets: &[TargetKind]) -> Vec<(TargetKind, Option<bool>)> {
        let variants: Vec<Option<bool>> = if self.sack.is_empty() {
            vec![None]
        } else {
            self.sack.iter().map(|&b| Some(b)).collect()
        };
        targets
            .iter()
            .flat_map(|&t| variants.iter().map(move |&v| (t, v)))
            .collect()
    }

    fn testbed_config(
        &self,
        target: TargetKind,
        sack: Option<bool>,
        saps_binary: &Path,
    ) -> TestbedConfig {
        let mut c = TestbedConfig::new(target.testbed_target());
        c.one_way_delay = Duration::from_secs_f64(self.testbed.one_way_delay_ms / 1000.0);
        c.rate_bps = (self.testbed.rate_mbps * 1e6) as u64;
        // Unset keeps the testbed's per-target default (saps 1024 slots, tbf 1000 packets).
        if let Some(q) = self.testbed.tx_ring {
            c.tx_ring = q;
        }
        c.impairments = Impairments {
            loss: self.testbed.loss,
            loss_to_server: self.testbed.loss_to_server,
            ..Impairments::default()
        };
        c.sack = sack;
        c.linux_congestion = self.testbed.linux_congestion.clone();
        // Validated in `validate`, so a name here is always one of saps's.
        c.saps_congestion = self
            .testbed
            .saps_congestion
            .as_deref()
            .and_then(saps_congestion);
        c.log_segments = self.testbed.log_segments;
        c.saps_binary = saps_binary.to_path_buf();
        c
    }
}

/// How to run a scenario.
pub struct RunOptions<'a> {
    /// Targets to run (None = the scenario's list).
    pub targets: Option<Vec<TargetKind>>,
    /// The saps binary the testbed starts.
    pub saps_binary: PathBuf,
    /// Where the report and plots go (created if missing).
    pub out_dir: PathBuf,
    /// Set by Ctrl-C; every phase checks it.
    pub cancel: Cancel,
    /// Called with one line per phase.
    pub progress: &'a dyn Fn(&str),
}

/// A foreground experiment's raw results.
#[derive(Clone, Debug)]
pub struct ForegroundRun {
    /// The background bulk streams.
    pub background: Vec<StreamResult>,
    /// The foreground transfers, in order.
    pub foreground: Vec<StreamResult>,
    /// Segments of the first completed foreground transfer (both directions), in time order.
    pub trace: Vec<SegmentRecord>,
    /// Segments of one background stream over the same period (data direction only).
    pub background_trace: Vec<SegmentRecord>,
}

/// A fairness experiment's raw results and its Jain series.
#[derive(Clone, Debug)]
pub struct FairnessRun {
    /// The streams.
    pub streams: Vec<StreamResult>,
    /// Jain's index per window over the common active period.
    pub jain: Vec<(Duration, f64)>,
    /// The Jain window.
    pub window: Duration,
    /// The warm-up excluded from the minimum.
    pub warmup: Duration,
}

/// What a workload produced on one target.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Ping-pong round trips.
    PingPong(PingPongResult),
    /// Transfer-size sweep.
    Sweep(Vec<SweepPoint>),
    /// Foreground transfers under background load.
    Foreground(ForegroundRun),
    /// Streams started together.
    Fairness(FairnessRun),
    /// The services smoke/capacity run.
    Services(Box<ServicesRun>),
}

/// What the services workload measured.
#[derive(Clone, Debug)]
pub struct ServicesRun {
    /// The upload to discard/9.
    pub upload: StreamResult,
    /// The connection-rate generator.
    pub connections: ConnRateResult,
    /// Keep-alive HTTP.
    pub keep_alive: KeepAliveResult,
    /// The UDP blaster.
    pub udp: UdpResult,
}

/// One target's run.
#[derive(Clone, Debug)]
pub struct TargetRun {
    /// The target.
    pub target: TargetKind,
    /// The SACK variant (`None`: the stack's default).
    pub sack: Option<bool>,
    /// The Linux servers' `net.ipv4.tcp_sack` read back after the workload (Linux NAT runs
    /// with a SACK variant).
    pub linux_tcp_sack: Option<bool>,
    /// The Linux servers' congestion control, read back after the workload (Linux NAT runs
    /// with a SACK variant).
    pub linux_congestion: Option<String>,
    /// The Linux servers' TCP counters after the workload (Linux NAT runs with a SACK variant;
    /// see [`crate::testbed::Testbed::linux_tcp_counters`]).
    pub linux_counters: Vec<(String, u64)>,
    /// The results, if the testbed came up and the workload ran.
    pub outcome: Option<Outcome>,
    /// What went wrong (testbed, workload, or generator errors), if anything.
    pub errors: Vec<String>,
    /// Wall time of the whole target (testbed up, workload, teardown).
    pub elapsed: Duration,
    /// The delay router's counters after the workload (None if the testbed never came up).
    pub router: Option<RouterStats>,
    /// saps's /metrics text after the workload (saps targets).
    pub saps_metrics: Option<String>,
    /// Retransmission timeouts the sender counted during each download attempt, in order, one
    /// list per size of the sweep (a size sweep with a SACK variant; empty if the counter could
    /// not be read after every download).
    pub timeouts_per_download: Vec<Vec<u64>>,
}

/// `target`, with ` sack=on` or ` sack=off` for a SACK variant.
pub fn run_label(target: TargetKind, sack: Option<bool>) -> String {
    match sack {
        None => target.to_string(),
        Some(on) => format!("{target} sack={}", if on { "on" } else { "off" }),
    }
}

/// The headline numbers of one target's run (each `None` when the workload does not give it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Median foreground completion time (connect to last byte).
    pub fct: Option<Duration>,
    /// Median foreground handshake time: the delay a new connection observes.
    pub handshake: Option<Duration>,
    /// Smallest Jain's index after the warm-up.
    pub jain_min: Option<f64>,
    /// Mean Jain's index over all windows.
    pub jain_mean: Option<f64>,
    /// Aggregate bulk goodput in bits/s (fairness: all bytes over first connect to last finish;
    /// sweep: the largest size's median bandwidth).
    pub goodput_bps: Option<f64>,
    /// Round-trip times.
    pub rtt: Option<Latency>,
}

impl TargetRun {
    /// The target's name, with the SACK variant if there is one: `linux_nat`,
    /// `saps_adaptive sack=off`.
    pub fn label(&self) -> String {
        run_label(self.target, self.sack)
    }

    /// A counter from saps's `/metrics` (summed over its label sets), if saps reported it.
    pub fn saps_counter(&self, name: &str) -> Option<u64> {
        metrics_counter(self.saps_metrics.as_ref()?, name)
    }

    /// A counter of the Linux servers' ([`TargetRun::linux_counters`]), if read.
    pub fn linux_counter(&self, name: &str) -> Option<u64> {
        self.linux_counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// The headline numbers.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        match &self.outcome {
            None => {}
            Some(Outcome::PingPong(p)) => s.rtt = analysis::latency(&p.rtt),
            Some(Outcome::Sweep(points)) => {
                s.goodput_bps = points
                    .iter()
                    .rev()
                    .find_map(|p| analysis::median(&p.transfer).map(|d| analysis::bps(p.size, d)));
            }
            Some(Outcome::Foreground(f)) => {
                let done: Vec<&StreamResult> = f
                    .foreground
                    .iter()
                    .filter(|r| r.finished.is_some())
                    .collect();
                let fct: Vec<Duration> = done.iter().filter_map(|r| r.completion()).collect();
                let hs: Vec<Duration> = done
                    .iter()
                    .filter_map(|r| r.connected.map(|c| c.saturating_sub(r.started)))
                    .collect();
                s.fct = analysis::median(&fct);
                s.handshake = analysis::median(&hs);
            }
            // The upload runs towards the target, not through its emulated bottleneck (which
            // limits the target's TX), so it is not a bulk-goodput figure; the report shows it.
            Some(Outcome::Services(_)) => {}
            Some(Outcome::Fairness(f)) => {
                s.jain_min = analysis::min_after_warmup(&f.jain, f.warmup);
                if !f.jain.is_empty() {
                    s.jain_mean =
                        Some(f.jain.iter().map(|x| x.1).sum::<f64>() / f.jain.len() as f64);
                }
                let first = f.streams.iter().map(|r| r.started).min();
                let last = f.streams.iter().map(|r| r.finished).max().flatten();
                if let (Some(a), Some(b)) = (first, last) {
                    if f.streams.iter().all(|r| r.finished.is_some()) {
                        let bytes = f.streams.iter().map(|r| r.bytes).sum();
                        s.goodput_bps = Some(analysis::bps(bytes, b.saturating_sub(a)));
                    }
                }
            }
        }
        s
    }
}

/// A counter from Prometheus text (summed over its label sets), if it is there.
pub fn metrics_counter(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let v = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        *found.get_or_insert(0) += v as u64;
    }
    found
}

/// A whole scenario run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The scenario as run.
    pub scenario: Scenario,
    /// One entry per target, in order.
    pub targets: Vec<TargetRun>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The Markdown report written to the output directory.
    pub report_path: PathBuf,
}

impl RunResult {
    /// The (first) run of `t`, if it was run.
    pub fn target(&self, t: TargetKind) -> Option<&TargetRun> {
        self.targets.iter().find(|r| r.target == t)
    }

    /// The run of `t` with SACK variant `sack`, if it was run.
    pub fn variant(&self, t: TargetKind, sack: Option<bool>) -> Option<&TargetRun> {
        self.targets
            .iter()
            .find(|r| r.target == t && r.sack == sack)
    }
}

/// Run `scenario` against each target, then write the report and plots into `opts.out_dir`.
/// A target whose testbed fails is reported with its error and the run goes on; Ctrl-C
/// (the cancel flag) stops the run with `Interrupted` after tearing the current testbed down.
pub fn run(scenario: &Scenario, opts: &RunOptions<'_>) -> io::Result<RunResult> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&opts.out_dir)?;
    let targets = opts
        .targets
        .clone()
        .unwrap_or_else(|| scenario.targets.clone());
    let mut runs = Vec::new();
    let planned = scenario.runs(&targets);
    for (i, &(target, sack)) in planned.iter().enumerate() {
        if opts.cancel.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        let label = run_label(target, sack);
        (opts.progress)(&format!(
            "[{}/{}] {} on {label}: starting testbed",
            i + 1,
            planned.len(),
            scenario.name
        ));
        let mut r = run_target(scenario, target, sack, opts);
        if opts.cancel.is_cancelled() {
            // Every generator reports "cancelled"; one line says it.
            r.errors = vec!["interrupted".into()];
        }
        let s = r.summary();
        (opts.progress)(&format!(
            "[{}/{}] {} on {label}: done in {:.1} s{}{}",
            i + 1,
            planned.len(),
            scenario.name,
            r.elapsed.as_secs_f64(),
            crate::report::summary_line(&s),
            if r.errors.is_empty() {
                String::new()
            } else {
                format!(" ERRORS: {}", r.errors.join("; "))
            }
        ));
        runs.push(r);
        if opts.cancel.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
    }
    let mut result = RunResult {
        scenario: scenario.clone(),
        targets: runs,
        elapsed: t0.elapsed(),
        report_path: PathBuf::new(),
    };
    result.report_path = crate::report::write(&result, &opts.out_dir)?;
    (opts.progress)(&format!(
        "{}: report {}",
        scenario.name,
        result.report_path.display()
    ));
    Ok(result)
}

fn run_target(
    scenario: &Scenario,
    target: TargetKind,
    sack: Option<bool>,
    opts: &RunOptions<'_>,
) -> TargetRun {
    let t0 = Instant::now();
    let mut r = TargetRun {
        target,
        sack,
        linux_tcp_sack: None,
        linux_congestion: None,
        linux_counters: Vec::new(),
        outcome: None,
        errors: Vec::new(),
        elapsed: Duration::ZERO,
        router: None,
        saps_metrics: None,
        timeouts_per_download: Vec::new(),
    };
    let label = r.label();
    let cfg = scenario.testbed_config(target, sack, &opts.saps_binary);
    match Testbed::start(&cfg) {
        Err(e) => r.errors.push(format!("testbed: {e}")),
        Ok(tb) => {
            (opts.progress)(&format!(
                "    {label}: testbed up, running {}",
                workload_name(&scenario.workload)
            ));
            let outcome = match (&scenario.workload, sack) {
                // A SACK comparison: which downloads hit an RTO is part of the result.
                (Workload::SizeSweep { sizes, repetitions }, Some(_)) => {
                    sweep_with_timeouts(&tb, sizes, *repetitions, &opts.cancel).map(
                        |(points, timeouts)| {
                            r.timeouts_per_download = timeouts;
                            Outcome::Sweep(points)
                        },
                    )
                }
                _ => run_workload(&tb, scenario, &opts.cancel),
            };
            match outcome {
                Ok(o) => {
                    r.errors.extend(outcome_errors(&o));
                    r.outcome = Some(o);
                }
                Err(e) => r.errors.push(format!("workload: {e}")),
            }
            r.router = Some(tb.router_stats());
            r.saps_metrics = tb.saps_metrics();
            if sack.is_some() {
                match tb.linux_tcp_sack() {
                    None => {}
                    Some(Ok(v)) => r.linux_tcp_sack = Some(v),
                    Some(Err(e)) => r.errors.push(format!("reading net.ipv4.tcp_sack: {e}")),
                }
                match tb.linux_congestion() {
                    None => {}
                    Some(Ok(v)) => r.linux_congestion = Some(v),
                    Some(Err(e)) => r
                        .errors
                        .push(format!("reading the congestion control: {e}")),
                }
                match tb.linux_tcp_counters() {
                    None => {}
                    Some(Ok(v)) => r.linux_counters = v,
                    Some(Err(e)) => r
                        .errors
                        .push(format!("reading the servers' TCP counters: {e}")),
                }
            }
            (opts.progress)(&format!("    {label}: tearing down"));
            drop(tb);
        }
    }
    r.elapsed = t0.elapsed();
    r
}

fn workload_name(w: &Workload) -> &'static str {
    match w {
        Workload::PingPong { .. } => "ping-pong",
        Workload::SizeSweep { .. } => "size sweep",
        Workload::Foreground { .. } => "foreground under background load",
        Workload::Fairness { .. } => "fairness streams",
        Workload::Services { .. } => "upload, connection rate, keep-alive HTTP, UDP",
    }
}

fn outcome_errors(o: &Outcome) -> Vec<String> {
    let streams = |v: &[StreamResult], what: &str| -> Vec<String> {
        v.iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{what} {}: {e}", s.id)))
            .collect()
    };
    match o {
        Outcome::PingPong(p) => p.error.iter().map(|e| format!("ping-pong: {e}")).collect(),
        Outcome::Sweep(points) => points
            .iter()
            .filter_map(|p| p.error.as_ref().map(|e| format!("size {}: {e}", p.size)))
            .collect(),
        Outcome::Foreground(f) => {
            let mut v = streams(&f.background, "background stream");
            v.extend(streams(&f.foreground, "foreground transfer"));
            v
        }
        Outcome::Fairness(f) => streams(&f.streams, "stream"),
        Outcome::Services(sv) => {
            let mut v = streams(std::slice::from_ref(&sv.upload), "upload");
            if let Some(e) = &sv.connections.first_error {
                v.push(format!(
                    "connections: {} failed, first: {e}",
                    sv.connections.failed
                ));
            }
            if let Some(e) = &sv.keep_alive.error {
                v.push(format!("keep-alive: {e}"));
            }
            if let Some(e) = &sv.udp.error {
                v.push(format!("udp: {e}"));
            }
            v
        }
    }
}

/// Run `f` on a thread inside the client namespace and wait for it.
fn in_client<T: Send + 'static>(
    tb: &Testbed,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    tb.client()
        .spawn(move || Ok(f()))?
        .join()
        .map_err(|_| io::Error::other("generator thread panicked"))?
}

/// The sender's retransmission timeouts so far: saps's `saps_tcp_rto_expiries_total`, or the
/// Linux servers' `TCPTimeouts`; `None` if it cannot be read.
fn sender_timeouts(tb: &Testbed) -> Option<u64> {
    match tb.target() {
        Target::Saps { .. } => metrics_counter(&tb.saps_metrics()?, "saps_tcp_rto_expiries_total"),
        Target::LinuxNat => tb
            .linux_tcp_counters()?
            .ok()?
            .into_iter()
            .find(|(name, _)| name == "TCPTimeouts")
            .map(|(_, v)| v),
    }
}

/// A size sweep one download at a time, reading the sender's RTO counter between downloads, so
/// a report can say which downloads hit a retransmission timeout, not only how many in all.
/// Returns the sweep (as [`generators::size_sweep`] would) and, per size, the RTOs per download
/// attempt in order; the latter is empty if the counter could not be read every time.
fn sweep_with_timeouts(
    tb: &Testbed,
    sizes: &[u64],
    repetitions: u32,
    cancel: &Cancel,
) -> io::Result<(Vec<SweepPoint>, Vec<Vec<u64>>)> {
    let ep = Endpoints::well_known(tb.server_addr());
    let mut points = Vec::new();
    let mut timeouts: Option<Vec<Vec<u64>>> = Some(Vec::new());
    let mut before = sender_timeouts(tb);
    for &size in sizes {
        if let Some(t) = timeouts.as_mut() {
            t.push(Vec::new());
        }
        let mut point = SweepPoint {
            size,
            transfer: Vec::new(),
            with_connect: Vec::new(),
            error: None,
        };
        for _ in 0..repetitions {
            let c = cancel.clone();
            for one in in_client(tb, move || generators::size_sweep(ep, &[size], 1, &c))? {
                point.transfer.extend(one.transfer);
                point.with_connect.extend(one.with_connect);
                if let Some(e) = one.error {
                    point.error.get_or_insert(e);
                }
            }
            let after = sender_timeouts(tb);
            timeouts = match (timeouts, before, after) {
                (Some(mut per_size), Some(b), Some(a)) => {
                    if let Some(v) = per_size.last_mut() {
                        v.push(a.saturating_sub(b));
                    }
                    Some(per_size)
                }
                _ => None,
            };
            before = after;
            if cancel.is_cancelled() {
                break;
            }
        }
        points.push(point);
    }
    Ok((points, timeouts.unwrap_or_default()))
}

fn run_workload(tb: &Testbed, sc: &Scenario, cancel: &Cancel) -> io::Result<Outcome> {
    let ep = Endpoints::well_known(tb.server_addr());
    let cancel = cancel.clone();
    match sc.workload.clone() {
        Workload::PingPong {
            size,
            warmup,
            count,
            interval_us,
        } => {
            let p = in_client(tb, move || {
                generators::ping_pong(
                    ep,
                    size,
                    warmup,
                    count,
                    Duration::from_micros(interval_us),
                    &cancel,
                )
            })?;
            Ok(Outcome::PingPong(p))
        }
        Workload::SizeSweep { sizes, repetitions } => {
            let p = in_client(tb, move || {
                generators::size_sweep(ep, &sizes, repetitions, &cancel)
            })?;
            Ok(Outcome::Sweep(p))
        }
        Workload::Foreground {
            background_streams,
            settle_ms,
            foreground_bytes,
            repetitions,
            gap_ms,
        } => {
            let bucket = Duration::from_millis(10);
            let settle = Duration::from_millis(settle_ms);
            let gap = Duration::from_millis(gap_ms);
            // Background runs from 0 until one gap after the last foreground start.
            let bg_for = settle + gap * repetitions;
            let mut specs: Vec<BulkSpec> = (0..background_streams)
                .map(|_| BulkSpec {
                    mode: BulkMode::Download,
                    amount: Amount::For(bg_for),
                    start_at: Duration::ZERO,
                    bucket,
                })
                .collect();
            specs.extend((0..repetitions).map(|k| BulkSpec {
                mode: BulkMode::HttpDownload,
                amount: Amount::Bytes(foreground_bytes),
                start_at: settle + gap * k,
                bucket,
            }));
            let _ = tb.segment_log(); // drop anything logged before the workload
            let mut all = in_client(tb, move || {
                generators::bulk_streams(ep, &specs, Instant::now(), &cancel)
            })?;
            let mut foreground = all.split_off(background_streams);
            for (k, r) in foreground.iter_mut().enumerate() {
                r.id = k;
            }
            let log = tb.segment_log();
            let fg_port = foreground
                .iter()
                .find(|r| r.finished.is_some())
                .map(|r| r.local_port);
            let trace = fg_port
                .map(|p| flow_segments(&log, p, true))
                .unwrap_or_default();
            let background_trace = all
                .first()
                .map(|b| flow_segments(&log, b.local_port, false))
                .unwrap_or_default();
            Ok(Outcome::Foreground(ForegroundRun {
                background: all,
                foreground,
                trace,
                background_trace,
            }))
        }
        Workload::Services {
            upload_bytes,
            connections,
            connection_rate,
            concurrency,
            connection_bytes,
            keep_alive_requests,
            keep_alive_bytes,
            udp_packets,
            udp_size,
            udp_pps,
        } => {
            let run = in_client(tb, move || {
                let upload = generators::bulk_stream(
                    0,
                    ep,
                    &BulkSpec {
                        mode: BulkMode::Upload,
                        amount: Amount::Bytes(upload_bytes),
                        start_at: Duration::ZERO,
                        bucket: Duration::from_millis(10),
                    },
                    Instant::now(),
                    &cancel,
                );
                let connections = generators::connection_rate(
                    ep,
                    connections,
                    connection_rate,
                    concurrency,
                    connection_bytes,
                    &cancel,
                );
                let keep_alive =
                    generators::keep_alive_http(ep, keep_alive_bytes, keep_alive_requests, &cancel);
                let udp = generators::udp_blast(
                    ep,
                    udp_packets,
                    udp_size,
                    udp_pps,
                    Duration::from_millis(500),
                    &cancel,
                );
                ServicesRun {
                    upload,
                    connections,
                    keep_alive,
                    udp,
                }
            })?;
            Ok(Outcome::Services(Box::new(run)))
        }
        Workload::Fairness {
            streams,
            bytes_per_stream,
            window_ms,
            warmup_ms,
            bucket_ms,
        } => {
            let bucket = Duration::from_millis(bucket_ms);
            let window = Duration::from_millis(window_ms);
            let specs: Vec<BulkSpec> = (0..streams)
                .map(|_| BulkSpec {
                    mode: BulkMode::Download,
                    amount: Amount::Bytes(bytes_per_stream),
                    start_at: Duration::ZERO,
                    bucket,
                })
                .collect();
            let _ = tb.segment_log();
            let results = in_client(tb, move || {
                generators::bulk_streams(ep, &specs, Instant::now(), &cancel)
            })?;
            let _ = tb.segment_log();
            let jain = fairness_series(&results, bucket, window);
            Ok(Outcome::Fairness(FairnessRun {
                streams: results,
                jain,
                window,
                warmup: Duration::from_millis(warmup_ms),
            }))
        }
    }
}

/// Jain per window over the period all streams were connected and none had finished.
pub fn fairness_series(
    streams: &[StreamResult],
    bucket: Duration,
    window: Duration,
) -> Vec<(Duration, f64)> {
    let Some(active) = streams
        .iter()
        .map(|s| Some((s.connected?, s.finished?)))
        .collect::<Option<Vec<_>>>()
    else {
        return Vec::new();
    };
    let bytes: Vec<Vec<u64>> = streams.iter().map(|s| s.buckets.bytes.clone()).collect();
    analysis::jain_per_window(&bytes, &active, bucket, window)
}

/// Segments of the connection whose client port is `port`: both directions, or only the data
/// direction (target to client, with payload) when `both` is false.
pub fn flow_segments(log: &[SegmentRecord], port: u16, both: bool) -> Vec<SegmentRecord> {
    let mut v: Vec<SegmentRecord> = log
        .iter()
        .filter(|s| match s.direction {
            Direction::ToClient => s.dst.port() == port && (both || s.len > 0),
            Direction::ToServer => both && s.src.port() == port,
        })
        .copied()
        .collect();
    v.sort_by_key(|s| s.at);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scenarios_parse_full_and_quick() {
        for (name, text) in BUILTIN {
            let full = Scenario::parse(text, false).unwrap_or_else(|e| panic!("{name}: {e}"));
            let quick = Scenario::parse(text, true).unwrap_or_else(|e| panic!("{name} quick: {e}"));
            assert_eq!(&full.name, name);
            assert!(quick.quick && !full.quick);
            assert_eq!(
                std::mem::discriminant(&full.workload),
                std::mem::discriminant(&quick.workload)
            );
        }
    }

    const BASE: &str = r#"
name = "t"
paper = "x"
description = "y"
[workload]
kind = "ping_pong"
count = 100
[quick.workload]
count = 5
"#;

    #[test]
    fn quick_overrides_only_what_it_names() {
        let s = Scenario::parse(BASE, true).unwrap();
        let Workload::PingPong { count, size, .. } = s.workload else {
            panic!("kind changed")
        };
        assert_eq!((count, size), (5, 4));
        assert_eq!(s.targets, TargetKind::ALL.to_vec());
        let s = Scenario::parse(BASE, false).unwrap();
        assert!(matches!(s.workload, Workload::PingPong { count: 100, .. }));
    }

    #[test]
    fn errors_name_the_key() {
        let e = Scenario::parse(&BASE.replace("count = 100", "cont = 100"), false).unwrap_err();
        assert!(e.contains("cont"), "{e}");
        let e = Scenario::parse(&BASE.replace("count = 5", "coutn = 5"), true).unwrap_err();
        assert!(e.contains("coutn"), "{e}");
        let e = Scenario::parse(&format!("{BASE}\n[testbed]\nrate = 1\n"), false).unwrap_err();
        assert!(e.contains("rate"), "{e}");
        let e =
            Scenario::parse(&format!("{BASE}\n[testbed]\nrate_mbps = -1\n"), false).unwrap_err();
        assert!(e.contains("testbed.rate_mbps"), "{e}");
        let e = Scenario::parse(&BASE.replace("ping_pong", "pingpong"), false).unwrap_err();
        assert!(e.contains("pingpong"), "{e}");
        let e = Scenario::parse(
            &BASE
                .replace("targets", "x")
                .replace("name = \"t\"", "name = \"t\"\ntargets = [\"saps_of\"]"),
            false,
        )
        .unwrap_err();
        assert!(e.contains("saps_of"), "{e}");
        let no_quick = BASE.split("[quick").next().unwrap();
        assert!(Scenario::parse(no_quick, true)
            .unwrap_err()
            .contains("[quick]"));
        assert!(Scenario::load("no-such-scenario", false)
            .unwrap_err()
            .contains("rtt"));
    }

    /// A valid scenario of each workload kind, for the range tests to break one key of.
    fn valid(kind: &str) -> &'static str {
        match kind {
            "ping_pong" => "name = \"t\"\npaper = \"x\"\ndescription = \"y\"\n[workload]\nkind = \"ping_pong\"\ncount = 5\n",
            "size_sweep" => "name = \"t\"\npaper = \"x\"\ndescription = \"y\"\n[workload]\nkind = \"size_sweep\"\nsizes = [1000]\nrepetitions = 1\n",
            "foreground" => "name = \"t\"\npaper = \"x\"\ndescription = \"y\"\n[testbed]\nlog_segments = true\n[workload]\nkind = \"foreground\"\nsettle_ms = 10\nforeground_bytes = 1000\nrepetitions = 1\ngap_ms = 10\n",
            "fairness" => "name = \"t\"\npaper = \"x\"\ndescription = \"y\"\n[workload]\nkind = \"fairness\"\nstreams = 2\nbytes_per_stream = 1000\n",
            _ => "name = \"t\"\npaper = \"x\"\ndescription = \"y\"\n[workload]\nkind = \"services\"\nupload_bytes = 1\nconnections = 1\nconnection_rate = 0\nconnection_bytes = 1\nkeep_alive_requests = 1\nkeep_alive_bytes = 1\nudp_packets = 1\nudp_size = 64\nudp_pps = 0\n",
        }
    }

    /// `valid(kind)` with `section.key = value` set must be rejected by a message that names
    /// the key and says how to fix it.
    fn rejects(kind: &str, section: &str, key: &str, value: &str) {
        let mut table: toml::Table = valid(kind).parse().unwrap();
        Scenario::parse(valid(kind), false).unwrap_or_else(|e| panic!("base {kind}: {e}"));
        let v: toml::Table = format!("v = {value}").parse().unwrap();
        let sec = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        sec.as_table_mut()
            .unwrap()
            .insert(key.into(), v["v"].clone());
        let text = toml::to_string(&table).unwrap();
        let e = Scenario::parse(&text, false)
            .expect_err(&format!("{kind}: {section}.{key} = {value} was accepted"));
        assert!(e.contains(&format!("`{section}.{key}`")), "{e}");
        assert!(e.contains("set it") || e.contains("list"), "no fix in: {e}");
    }

    macro_rules! rejected {
        ($($test:ident: $kind:literal, $section:literal, $key:literal = $value:literal;)*) => {
            $(
                #[test]
                fn $test() {
                    rejects($kind, $section, $key, $value);
                }
            )*
        };
    }

    rejected! {
        rejects_tiny_rate_mbps: "ping_pong", "testbed", "rate_mbps" = "1e-300";
        rejects_nan_rate_mbps: "ping_pong", "testbed", "rate_mbps" = "nan";
        rejects_huge_rate_mbps: "ping_pong", "testbed", "rate_mbps" = "1e9";
        rejects_negative_delay: "ping_pong", "testbed", "one_way_delay_ms" = "-1.0";
        rejects_huge_delay: "ping_pong", "testbed", "one_way_delay_ms" = "1e300";
        rejects_certain_loss: "ping_pong", "testbed", "loss" = "1.0";
        rejects_certain_loss_to_server: "ping_pong", "testbed", "loss_to_server" = "1.0";
        rejects_negative_loss_to_server: "ping_pong", "testbed", "loss_to_server" = "-0.1";
        rejects_tiny_tx_ring: "ping_pong", "testbed", "tx_ring" = "1";
        rejects_empty_linux_congestion: "ping_pong", "testbed", "linux_congestion" = "\"\"";
        rejects_odd_linux_congestion: "ping_pong", "testbed", "linux_congestion" = "\"cubic; reboot\"";
        rejects_empty_saps_congestion: "ping_pong", "testbed", "saps_congestion" = "\"\"";
        rejects_unknown_saps_congestion: "ping_pong", "testbed", "saps_congestion" = "\"vegas\"";
        rejects_upper_case_saps_congestion: "ping_pong", "testbed", "saps_congestion" = "\"BBR\"";
        rejects_reno_alias_saps_congestion: "ping_pong", "testbed", "saps_congestion" = "\"reno\"";
        rejects_huge_tx_ring: "ping_pong", "testbed", "tx_ring" = "1000000";
        rejects_zero_ping_size: "ping_pong", "workload", "size" = "0";
        rejects_huge_ping_size: "ping_pong", "workload", "size" = "1000000000";
        rejects_overflowing_warmup: "ping_pong", "workload", "warmup" = "9223372036854775807";
        rejects_zero_count: "ping_pong", "workload", "count" = "0";
        rejects_huge_count: "ping_pong", "workload", "count" = "9223372036854775807";
        rejects_huge_interval: "ping_pong", "workload", "interval_us" = "9223372036854775807";
        rejects_zero_sweep_size: "size_sweep", "workload", "sizes" = "[0]";
        rejects_huge_sweep_size: "size_sweep", "workload", "sizes" = "[1, 9223372036854775807]";
        rejects_no_sweep_sizes: "size_sweep", "workload", "sizes" = "[]";
        rejects_zero_sweep_repetitions: "size_sweep", "workload", "repetitions" = "0";
        rejects_huge_sweep_repetitions: "size_sweep", "workload", "repetitions" = "4000000000";
        rejects_many_background_streams: "foreground", "workload", "background_streams" = "100000";
        rejects_huge_settle: "foreground", "workload", "settle_ms" = "9223372036854775807";
        rejects_zero_foreground_bytes: "foreground", "workload", "foreground_bytes" = "0";
        rejects_zero_foreground_repetitions: "foreground", "workload", "repetitions" = "0";
        rejects_huge_foreground_repetitions: "foreground", "workload", "repetitions" = "4000000000";
        rejects_zero_gap: "foreground", "workload", "gap_ms" = "0";
        rejects_huge_gap: "foreground", "workload", "gap_ms" = "9223372036854775807";
        rejects_one_stream: "fairness", "workload", "streams" = "1";
        rejects_many_streams: "fairness", "workload", "streams" = "100000";
        rejects_zero_stream_bytes: "fairness", "workload", "bytes_per_stream" = "0";
        rejects_huge_stream_bytes: "fairness", "workload", "bytes_per_stream" = "9223372036854775807";
        rejects_zero_bucket: "fairness", "workload", "bucket_ms" = "0";
        rejects_odd_window: "fairness", "workload", "window_ms" = "105";
        rejects_huge_window: "fairness", "workload", "window_ms" = "9223372036854775800";
        rejects_huge_fairness_warmup: "fairness", "workload", "warmup_ms" = "9223372036854775807";
        rejects_zero_upload: "services", "workload", "upload_bytes" = "0";
        rejects_huge_upload: "services", "workload", "upload_bytes" = "9223372036854775807";
        rejects_zero_connections: "services", "workload", "connections" = "0";
        rejects_huge_connections: "services", "workload", "connections" = "9223372036854775807";
        rejects_tiny_connection_rate: "services", "workload", "connection_rate" = "1e-300";
        rejects_negative_connection_rate: "services", "workload", "connection_rate" = "-1.0";
        rejects_nan_connection_rate: "services", "workload", "connection_rate" = "nan";
        rejects_zero_concurrency: "services", "workload", "concurrency" = "0";
        rejects_huge_concurrency: "services", "workload", "concurrency" = "100000";
        rejects_huge_connection_bytes: "services", "workload", "connection_bytes" = "9223372036854775807";
        rejects_zero_keep_alive_requests: "services", "workload", "keep_alive_requests" = "0";
        rejects_huge_keep_alive_requests: "services", "workload", "keep_alive_requests" = "9223372036854775807";
        rejects_huge_keep_alive_bytes: "services", "workload", "keep_alive_bytes" = "9223372036854775807";
        rejects_zero_udp_packets: "services", "workload", "udp_packets" = "0";
        rejects_huge_udp_packets: "services", "workload", "udp_packets" = "9223372036854775807";
        rejects_small_udp_size: "services", "workload", "udp_size" = "8";
        rejects_huge_udp_size: "services", "workload", "udp_size" = "65536";
        rejects_tiny_udp_pps: "services", "workload", "udp_pps" = "1e-300";
        rejects_infinite_udp_pps: "services", "workload", "udp_pps" = "inf";
    }

    #[test]
    fn sack_axis_runs_each_target_per_variant() {
        let s = Scenario::parse(
            &BASE.replace(
                "description = \"y\"",
                "description = \"y\"\ntargets = [\"saps_adaptive\", \"linux_nat\"]\nsack = [true, false]",
            ),
            false,
        )
        .unwrap();
        use TargetKind::*;
        assert_eq!(
            s.runs(&s.targets),
            vec![
                (SapsAdaptive, Some(true)),
                (SapsAdaptive, Some(false)),
                (LinuxNat, Some(true)),
                (LinuxNat, Some(false)),
            ]
        );
        let c = s.testbed_config(LinuxNat, Some(false), Path::new("saps"));
        assert_eq!(c.sack, Some(false));
        // Without the axis: one run per target, the stack's default.
        let s = Scenario::parse(BASE, false).unwrap();
        assert!(s.sack.is_empty());
        assert_eq!(s.runs(&[SapsOff]), vec![(SapsOff, None)]);
        assert_eq!(
            s.testbed_config(SapsOff, None, Path::new("saps")).sack,
            None
        );
        assert_eq!(run_label(SapsOff, None), "saps_off");
        assert_eq!(run_label(LinuxNat, Some(false)), "linux_nat sack=off");
        for bad in ["[true, true]", "[false, false]", "[true, false, true]"] {
            let e = Scenario::parse(
                &BASE.replace(
                    "description = \"y\"",
                    &format!("description = \"y\"\nsack = {bad}"),
                ),
                false,
            )
            .unwrap_err();
            assert!(e.contains("`sack`") && e.contains("at most once"), "{e}");
        }
    }

    #[test]
    fn the_sack_scenario_puts_loss_on_the_data_direction_only() {
        for quick in [false, true] {
            let s = Scenario::load("sack", quick).unwrap();
            assert_eq!(s.sack, vec![true, false]);
            let c = s.testbed_config(TargetKind::SapsAdaptive, Some(true), Path::new("saps"));
            assert_eq!(c.impairments.loss, 0.01);
            assert_eq!(c.impairments.loss_to_server, Some(0.0));
            assert_eq!(c.one_way_delay, Duration::from_millis(10));
            assert_eq!(c.rate_bps, 100_000_000);
            assert_eq!(c.linux_congestion.as_deref(), Some("cubic"));
            assert_eq!(c.saps_congestion, None, "saps on its default (cubic)");
        }
    }

    #[test]
    fn the_sack_bbr_scenario_is_sack_with_both_senders_on_bbr() {
        for quick in [false, true] {
            let sack = Scenario::load("sack", quick).unwrap();
            let s = Scenario::load("sack-bbr", quick).unwrap();
            assert_eq!((&s.sack, &s.targets), (&sack.sack, &sack.targets));
            assert_eq!(
                format!("{:?}", s.workload),
                format!("{:?}", sack.workload),
                "same downloads as `sack`"
            );
            for target in [TargetKind::SapsAdaptive, TargetKind::LinuxNat] {
                let c = s.testbed_config(target, Some(false), Path::new("saps"));
                let base = sack.testbed_config(target, Some(false), Path::new("saps"));
                assert_eq!(c.impairments, base.impairments);
                assert_eq!(
                    (c.one_way_delay, c.rate_bps, c.tx_ring),
                    (base.one_way_delay, base.rate_bps, base.tx_ring)
                );
                assert_eq!(c.linux_congestion.as_deref(), Some("bbr"));
                assert_eq!(c.saps_congestion, Some(CongestionAlgorithm::Bbr));
            }
        }
    }

    #[test]
    fn saps_congestion_accepts_saps_names_only() {
        for name in ["newreno", "cubic", "bbr"] {
            let text = format!("{BASE}\n[testbed]\nsaps_congestion = \"{name}\"\n");
            let s = Scenario::parse(&text, false).unwrap_or_else(|e| panic!("{name}: {e}"));
            let c = s.testbed_config(TargetKind::SapsAdaptive, None, Path::new("saps"));
            assert_eq!(c.saps_congestion.map(congestion_name), Some(name));
        }
        let s = Scenario::parse(BASE, false).unwrap();
        assert_eq!(
            s.testbed_config(TargetKind::SapsAdaptive, None, Path::new("saps"))
                .saps_congestion,
            None,
            "unset leaves saps's default"
        );
        let e = Scenario::parse(
            &format!("{BASE}\n[testbed]\nsaps_congestion = \"vegas\"\n"),
            false,
        )
        .unwrap_err();
        assert!(e.contains("\"newreno\", \"cubic\", \"bbr\""), "{e}");
    }

    #[test]
    fn saps_counters_are_read_from_metrics_text() {
        let mut r = TargetRun {
            target: TargetKind::SapsAdaptive,
            sack: Some(false),
            linux_tcp_sack: None,
            linux_congestion: None,
            linux_counters: Vec::new(),
            outcome: None,
            errors: Vec::new(),
            elapsed: Duration::ZERO,
            router: None,
            saps_metrics: None,
            timeouts_per_download: Vec::new(),
        };
        assert_eq!(r.saps_counter("saps_tcp_sack_recoveries_total"), None);
        r.saps_metrics = Some(
            "# HELP saps_tcp_sack_recoveries_total x\n# TYPE saps_tcp_sack_recoveries_total counter\n\
             saps_tcp_sack_recoveries_total 7\nsaps_tcp_sack_recoveries_total_extra 100\n\
             saps_port_tx{port=\"a\"} 3\nsaps_port_tx{port=\"b\"} 4\n"
                .into(),
        );
        assert_eq!(r.saps_counter("saps_tcp_sack_recoveries_total"), Some(7));
        assert_eq!(r.saps_counter("saps_port_tx"), Some(7));
        assert_eq!(r.saps_counter("saps_missing"), None);
        assert_eq!(r.label(), "saps_adaptive sack=off");
    }

    #[test]
    fn target_names_round_trip() {
        for t in TargetKind::ALL {
            assert_eq!(TargetKind::parse(t.name()), Some(t));
        }
        assert_eq!(
            TargetKind::parse("adaptive"),
            Some(TargetKind::SapsAdaptive)
        );
        assert_eq!(TargetKind::parse("linux-nat"), Some(TargetKind::LinuxNat));
        assert_eq!(TargetKind::parse("nat"), None);
    }

    fn seg(at_ms: u64, dir: Direction, port: u16, len: u32) -> SegmentRecord {
        let c = std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 1), port);
        let s = std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 2), 80);
        let (src, dst) = match dir {
            Direction::ToClient => (s, c),
            Direction::ToServer => (c, s),
        };
        SegmentRecord {
            at: Duration::from_millis(at_ms),
            direction: dir,
            src,
            dst,
            seq: 0,
            ack: 0,
            len,
            flags: 0x10,
        }
    }

    #[test]
    fn flow_segments_filters_by_client_port_and_direction() {
        let log = vec![
            seg(3, Direction::ToClient, 5000, 1448),
            seg(1, Direction::ToServer, 5000, 0),
            seg(2, Direction::ToClient, 6000, 1448),
            seg(4, Direction::ToClient, 5000, 0),
        ];
        let both = flow_segments(&log, 5000, true);
        assert_eq!(
            both.iter().map(|s| s.at.as_millis()).collect::<Vec<_>>(),
            vec![1, 3, 4]
        );
        let data = flow_segments(&log, 5000, false);
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].len, 1448);
    }
}
