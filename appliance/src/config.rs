//! The appliance's configuration file (TOML).
//!
//! Loading runs in three steps, each with one-line errors that name the key and the fix:
//! 1. TOML syntax, then a walk over the document that rejects unknown keys by their full path
//!    (`port[0].ifcae: unknown key; ...`) with the list of valid keys and a "did you mean".
//! 2. serde into raw structs (`deny_unknown_fields` everywhere as a second line of defence); type
//!    errors carry the key path.
//! 3. A validation pass into typed values ([`Config`]): CIDRs, MACs, rates, sizes, durations,
//!    ranges, references between sections and duplicates.
//!
//! Checks that depend on the machine (interfaces exist, cores exist, the telemetry address is
//! free) are a separate step, [`Config::check_environment`], so syntax and validation can be
//! tested anywhere.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// A configuration error: the key it concerns (a path like `port[0].ipv4`, or empty for the
/// file as a whole) and a message that says what is wrong and how to fix it.
///
/// `Display` prints exactly one line: `key: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Full key path (`port[1].gateway`, `tcp.time_wait`), or empty when no key applies.
    pub key: String,
    /// What is wrong and how to fix it, on one line.
    pub message: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: one_line(&message.into()),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Collapse any line breaks so an error always prints as one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every key the file accepts, by section (`""` is the top level). The unknown-key check walks
/// the document against this table, and a test keeps it equal to the serde structs' fields and to
/// the reference in docs/operations.md.
pub const SCHEMA: &[(&str, &[&str])] = &[
    ("", &["cores", "port", "service", "telemetry", "tcp", "log"]),
    (
        "port",
        &[
            "name",
            "backend",
            "iface",
            "ipv4",
            "extra_ipv4",
            "gateway",
            "mac",
            "tx_ring",
            "line_rate",
            "rx_burst",
            "admission",
            "admission_latency",
            "checksum_offload",
            "gso",
            "faults",
            "rx_ring",
            "eal_args",
        ],
    ),
    ("port.faults", &["loss", "duplicate", "reorder", "seed"]),
    ("service", &["kind", "port", "on"]),
    ("telemetry", &["listen", "enabled"]),
    (
        "tcp",
        &[
            "congestion",
            "send_buffer",
            "recv_buffer",
            "time_wait",
            "syn_backlog",
            "accept_backlog",
            "syn_cookies",
            "nodelay",
            "rto_min",
            "delayed_ack",
            "keepalive",
            "sack",
        ],
    ),
    ("log", &["level"]),
];

fn schema_keys(section: &str) -> &'static [&'static str] {
    SCHEMA
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, k)| *k)
        .unwrap_or(&[])
}

// ---------------------------------------------------------------------------------------------
// Typed, validated configuration.
// ---------------------------------------------------------------------------------------------

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Data-plane cores to pin poll loops to; `None`: no pinning, one data-plane thread.
    pub cores: Option<Vec<usize>>,
    /// Network ports, in file order.
    pub ports: Vec<PortConfig>,
    /// Services, in file order.
    pub services: Vec<ServiceConfig>,
    /// The management HTTP endpoint.
    pub telemetry: TelemetryConfig,
    /// TCP knobs.
    pub tcp: TcpConfig,
    /// Logging.
    pub log: LogConfig,
}

/// An IPv4 address with its prefix length (`10.0.0.2/24`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The host address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// The netmask (`/24` → 255.255.255.0).
    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(mask_bits(self.prefix_len))
    }

    /// The network address.
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & mask_bits(self.prefix_len))
    }

    /// The directed broadcast address.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask_bits(self.prefix_len))
    }

    /// Whether `ip` is inside this subnet.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        let m = mask_bits(self.prefix_len);
        u32::from(ip) & m == u32::from(self.addr) & m
    }

    /// Parse `a.b.c.d/len`.
    pub fn parse(s: &str) -> Option<Ipv4Cidr> {
        let (a, l) = s.split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix_len: u8 = l.parse().ok()?;
        (prefix_len <= 32).then_some(Ipv4Cidr { addr, prefix_len })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

fn mask_bits(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

/// Which driver moves a port's frames.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Linux AF_PACKET socket on an existing interface (veth, physical NIC).
    AfPacket,
    /// A TAP device the appliance creates (`/dev/net/tun`).
    Tap,
    /// In-process memory port (tests, demos).
    Memory,
    /// DPDK poll-mode driver (needs the `dpdk` cargo feature).
    Dpdk,
}

impl Backend {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::AfPacket => "af_packet",
            Backend::Tap => "tap",
            Backend::Memory => "memory",
            Backend::Dpdk => "dpdk",
        }
    }
}

/// TX admission policy (per-flow bound on the NIC TX ring, see the fairness crate).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// No admission control: segments go to the ring whenever it has room.
    Off,
    /// The paper's fixed queue limit with round-robin service of held-back flows.
    Paper,
    /// A limit adapted to the measured drain rate (BQL-like).
    Adaptive,
}

/// One network port.
#[derive(Clone, Debug, PartialEq)]
pub struct PortConfig {
    /// Unique name, used by `service.on` and as the `port` metric label.
    pub name: String,
    /// Driver.
    pub backend: Backend,
    /// Interface (af_packet, tap) or device (dpdk) name.
    pub iface: Option<String>,
    /// Primary local address and subnet.
    pub ipv4: Ipv4Cidr,
    /// More local addresses (a bare address takes the primary prefix).
    pub extra_ipv4: Vec<Ipv4Cidr>,
    /// Default gateway, inside the primary subnet.
    pub gateway: Option<Ipv4Addr>,
    /// MAC address override (unicast).
    pub mac: Option<[u8; 6]>,
    /// TX ring size in packets.
    pub tx_ring: u32,
    /// Line rate in bits per second, when known (admission and pacing use it).
    pub line_rate_bps: Option<u64>,
    /// Frames received per poll.
    pub rx_burst: u32,
    /// TX admission policy.
    pub admission: Admission,
    /// `adaptive` admission: the most time worth of bytes (at the drain rate) the TX ring may
    /// hold while flows wait.
    pub admission_latency: Duration,
    /// Leave checksums to the NIC.
    pub checksum_offload: bool,
    /// af_packet: send consecutive data segments of a connection as one large segment for the
    /// kernel to cut back into frames (segmentation offload), through `sendmmsg`.
    pub gso: bool,
    /// Fault injection on this port (tests and experiments only).
    pub faults: Option<crate::port::faults::FaultConfig>,
    /// RX ring size in frames (dpdk descriptors, af_packet ring frames).
    pub rx_ring: u32,
    /// Extra DPDK EAL arguments (dpdk ports only).
    pub eal_args: Vec<String>,
}

/// Transport protocol a service listens on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` / `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Built-in services.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// TCP echo (RFC 862).
    Echo,
    /// TCP discard (RFC 863).
    Discard,
    /// TCP source: sends bytes as fast as allowed.
    Source,
    /// Minimal HTTP/1.1 server.
    Http,
    /// UDP echo.
    UdpEcho,
}

impl ServiceKind {
    /// The name used in the config file and as the `service` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Echo => "echo",
            ServiceKind::Discard => "discard",
            ServiceKind::Source => "source",
            ServiceKind::Http => "http",
            ServiceKind::UdpEcho => "udp_echo",
        }
    }

    /// The protocol the service listens on.
    pub fn protocol(self) -> Protocol {
        match self {
            ServiceKind::UdpEcho => Protocol::Udp,
            _ => Protocol::Tcp,
        }
    }
}

/// One service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// What it does.
    pub kind: ServiceKind,
    /// L4 port, 1..=65535.
    pub port: u16,
    /// The port (by name) it listens on; `None`: all ports.
    pub on: Option<String>,
}

/// The management endpoint (Prometheus `/metrics`, `/healthz`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Address the control thread listens on with kernel sockets.
    pub listen: SocketAddr,
    /// Whether to serve at all.
    pub enabled: bool,
}

/// Congestion control algorithm.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CongestionAlgorithm {
    /// CUBIC (RFC 9438).
    Cubic,
    /// NewReno (RFC 6582).
    NewReno,
    /// BBR v1 (as Linux's `tcp_bbr`): paced, model-based.
    Bbr,
}

/// TCP knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Congestion control.
    pub congestion: CongestionAlgorithm,
    /// Send buffer per connection, bytes.
    pub send_buffer: usize,
    /// Receive buffer per connection, bytes.
    pub recv_buffer: usize,
    /// TIME-WAIT duration.
    pub time_wait: Duration,
    /// Half-open connections per listener before SYN cookies (or drops).
    pub syn_backlog: u32,
    /// Established connections waiting for accept, per listener.
    pub accept_backlog: u32,
    /// Answer SYN floods with cookies.
    pub syn_cookies: bool,
    /// Disable Nagle by default.
    pub nodelay: bool,
    /// Lower bound of the retransmission timeout.
    pub rto_min: Duration,
    /// Delayed-ACK timeout.
    pub delayed_ack: Duration,
    /// Keepalive idle time; `None`: off.
    pub keepalive: Option<Duration>,
    /// Offer and use selective acknowledgments (RFC 2018); off: cumulative ACKs and NewReno
    /// recovery only (for comparisons and for peers that mishandle SACK).
    pub sack: bool,
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `saps=debug,warn`, ...
    pub level: String,
}

/// Defaults of optional keys (also quoted in docs/operations.md).
pub mod defaults {
    /// `port.tx_ring`.
    pub const TX_RING: u32 = 1024;
    /// `port.rx_burst`.
    pub const RX_BURST: u32 = 32;
    /// `port.rx_ring`.
    pub const RX_RING: u32 = 1024;
    /// `port.admission_latency`, in milliseconds.
    pub const ADMISSION_LATENCY_MS: u64 = 5;
    /// `telemetry.listen`.
    pub const TELEMETRY_LISTEN: &str = "127.0.0.1:9100";
    /// `tcp.send_buffer` and `tcp.recv_buffer`.
    pub const TCP_BUFFER: usize = 4 * 1024 * 1024;
    /// `tcp.time_wait`.
    pub const TIME_WAIT_SECS: u64 = 60;
    /// `tcp.syn_backlog`, `tcp.accept_backlog`.
    pub const BACKLOG: u32 = 1024;
    /// `tcp.rto_min`.
    pub const RTO_MIN_MS: u64 = 200;
    /// `tcp.delayed_ack`.
    pub const DELAYED_ACK_MS: u64 = 40;
    /// `log.level`.
    pub const LOG_LEVEL: &str = "info";
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            enabled: true,
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            congestion: CongestionAlgorithm::Cubic,
            send_buffer: defaults::TCP_BUFFER,
            recv_buffer: defaults::TCP_BUFFER,
            time_wait: Duration::from_secs(defaults::TIME_WAIT_SECS),
            syn_backlog: defaults::BACKLOG,
            accept_backlog: defaults::BACKLOG,
            syn_cookies: true,
            nodelay: false,
            rto_min: Duration::from_millis(defaults::RTO_MIN_MS),
            delayed_ack: Duration::from_millis(defaults::DELAYED_ACK_MS),
            keepalive: None,
            sack: true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw serde structs: exactly the file's shape.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cores: Option<Vec<i64>>,
    #[serde(default)]
    port: Vec<RawPort>,
    #[serde(default)]
    service: Vec<RawService>,
    #[serde(default)]
    telemetry: RawTelemetry,
    #[serde(default)]
    tcp: RawTcp,
    #[serde(default)]
    log: RawLog,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: String,
    backend: String,
    iface: Option<String>,
    ipv4: String,
    extra_ipv4: Option<Vec<String>>,
    gateway: Option<String>,
    mac: Option<String>,
    tx_ring: Option<i64>,
    // A number or a string with a unit: parsed in validation.
    line_rate: Option<toml::Value>,
    rx_burst: Option<i64>,
    admission: Option<String>,
    admission_latency: Option<String>,
    checksum_offload: Option<bool>,
    gso: Option<bool>,
    faults: Option<RawFaults>,
    rx_ring: Option<i64>,
    eal_args: Option<Vec<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawFaults {
    loss: Option<f64>,
    duplicate: Option<f64>,
    reorder: Option<f64>,
    seed: Option<i64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawService {
    kind: String,
    port: i64,
    on: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    listen: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    congestion: Option<String>,
    send_buffer: Option<toml::Value>,
    recv_buffer: Option<toml::Value>,
    time_wait: Option<String>,
    syn_backlog: Option<i64>,
    accept_backlog: Option<i64>,
    syn_cookies: Option<bool>,
    nodelay: Option<bool>,
    rto_min: Option<String>,
    delayed_ack: Option<String>,
    keepalive: Option<String>,
    sack: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Loading.
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Parse and validate a configuration (no environment checks).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| syntax_error(text, &e))?;
        check_keys(&table)?;
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let key = if key == "." { String::new() } else { key };
                ConfigError::new(key, type_hint(&e.inner().to_string()))
            })?;
        validate(raw)
    }

    /// Read, parse and validate a file. Errors about the file itself name its path.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "",
                format!(
                    "cannot read config file {}: {}; check the path and its permissions",
                    path.display(),
                    e
                ),
            )
        })?;
        Config::from_toml_str(&text)
            .map_err(|e| ConfigError::new(e.key, format!("{} (in {})", e.message, path.display())))
    }

    /// Checks that depend on this machine: af_packet interfaces exist, the TAP device node
    /// exists, pinned cores exist, and the telemetry address can be bound (bound and released).
    pub fn check_environment(&self) -> Result<(), ConfigError> {
        if let Some(cores) = &self.cores {
            let available: Vec<usize> = core_affinity::get_core_ids()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.id)
                .collect();
            if !available.is_empty() {
                for (i, c) in cores.iter().enumerate() {
                    if !available.contains(c) {
                        return Err(ConfigError::new(
                            format!("cores[{i}]"),
                            format!(
                                "core {c} does not exist on this machine; available cores: {}",
                                join(available.iter())
                            ),
                        ));
                    }
                }
            }
        }
        for (i, p) in self.ports.iter().enumerate() {
            match p.backend {
                Backend::AfPacket => {
                    let iface = p.iface.as_deref().unwrap_or_default();
                    if !Path::new("/sys/class/net").join(iface).exists() {
                        return Err(ConfigError::new(
                            format!("port[{i}].iface"),
                            format!(
                                "no network interface named {iface:?} on this machine; \
                                 create it (e.g. `ip link add {iface} type veth peer name {iface}-peer`) \
                                 or pick one from /sys/class/net"
                            ),
                        ));
                    }
                }
                Backend::Tap => {
                    if !Path::new("/dev/net/tun").exists() {
                        return Err(ConfigError::new(
                            format!("port[{i}].backend"),
                            "tap needs /dev/net/tun, which does not exist; load the tun module \
                             (`modprobe tun`) or use backend = \"af_packet\"",
                        ));
                    }
                }
                Backend::Memory | Backend::Dpdk => {}
            }
        }
        if self.telemetry.enabled {
            std::net::TcpListener::bind(self.telemetry.listen).map_err(|e| {
                ConfigError::new(
                    "telemetry.listen",
                    format!(
                        "cannot listen on {}: {}; choose a free address or set enabled = false",
                        self.telemetry.listen, e
                    ),
                )
            })?;
        }
        Ok(())
    }
}

fn join<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let location = e.span().map(|span| {
        // Spans are byte offsets; fall back to the whole text rather than slice mid-character.
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map(|p| p + 1).unwrap_or(0) + 1;
        format!(" at line {line}, column {col}")
    });
    ConfigError::new(
        "",
        format!(
            "TOML syntax error{}: {}; see docs/operations.md for the file format",
            location.unwrap_or_default(),
            e.message().trim()
        ),
    )
}

/// serde's type messages ("invalid type: string \"x\", expected u16") plus a fix.
fn type_hint(msg: &str) -> String {
    let mut msg = one_line(&msg.replace("i64", "an integer"));
    // toml appends " in `port.tx_ring`"; the key path is already in front of the message.
    if let Some(start) = msg.find(" in `") {
        if let Some(len) = msg[start + 5..].find('`') {
            msg.replace_range(start..start + 5 + len + 1, "");
        }
    }
    let msg = msg.trim();
    format!("{msg}; see docs/operations.md for the expected type")
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest<'a>(word: &str, choices: &[&'a str]) -> Option<&'a str> {
    choices
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn unknown_key(path: String, key: &str, valid: &[&str]) -> ConfigError {
    let hint = suggest(key, valid)
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    ConfigError::new(
        path,
        format!("unknown key; {hint}valid keys here: {}", valid.join(", ")),
    )
}

/// Reject keys the schema does not know, naming the full path.
fn check_keys(table: &toml::Table) -> Result<(), ConfigError> {
    let top = schema_keys("");
    for (k, v) in table {
        if !top.contains(&k.as_str()) {
            return Err(unknown_key(k.clone(), k, top));
        }
        match (k.as_str(), v) {
            ("port" | "service", toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let toml::Value::Table(t) = item else {
                        return Err(ConfigError::new(
                            format!("{k}[{i}]"),
                            format!("expected a table; write each entry as a [[{k}]] section"),
                        ));
                    };
                    check_section(&format!("{k}[{i}]"), k, t)?;
                }
            }
            ("port" | "service", _) => {
                return Err(ConfigError::new(
                    k.clone(),
                    format!("expected an array of tables; write each entry as [[{k}]], not [{k}]"),
                ))
            }
            ("telemetry" | "tcp" | "log", toml::Value::Table(t)) => check_section(k, k, t)?,
            ("telemetry" | "tcp" | "log", _) => {
                return Err(ConfigError::new(
                    k.clone(),
                    format!("expected a table; write it as a [{k}] section"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_section(path: &str, section: &str, t: &toml::Table) -> Result<(), ConfigError> {
    let valid = schema_keys(section);
    for (k, v) in t {
        if !valid.contains(&k.as_str()) {
            return Err(unknown_key(format!("{path}.{k}"), k, valid));
        }
        // Nested tables with their own schema entry (e.g. `port.faults`).
        let nested = format!("{section}.{k}");
        if let (toml::Value::Table(inner), true) = (v, SCHEMA.iter().any(|(s, _)| *s == nested)) {
            check_section(&format!("{path}.{k}"), &nested, inner)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Value parsers (public so the CLI and tests can use them).
// ---------------------------------------------------------------------------------------------

/// Split `"<number><unit>"` into its number and unit parts (unit lower-cased, spaces ignored).
fn split_number(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let num: String = s[..end].chars().filter(|c| *c != '_').collect();
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    value
        .is_finite()
        .then(|| (value, s[end..].trim().to_ascii_lowercase()))
}

/// Parse a rate: `"1gbit"`, `"200mbit"`, `"500kbit"`, `"2.5gbit"`, `"1000bit"`, or a plain
/// number of bits per second. Returns bits per second; zero is rejected.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{s:?} is not a rate; write it like \"1gbit\", \"200mbit\", \"500kbit\" or a number of bits/s"
        )
    };
    let (value, unit) = split_number(s).ok_or_else(bad)?;
    let scale: f64 = match unit.as_str() {
        "" | "bit" | "bps" => 1.0,
        "kbit" | "kbps" => 1e3,
        "mbit" | "mbps" => 1e6,
        "gbit" | "gbps" => 1e9,
        "tbit" | "tbps" => 1e12,
        _ => return Err(bad()),
    };
    let bps = (value * scale).round();
    if !(1.0..=1e13).contains(&bps) {
        return Err(format!(
            "{s:?} is out of range; a rate must be between 1bit and 10000gbit"
        ));
    }
    Ok(bps as u64)
}

/// Parse a size: `"256KiB"`, `"4MiB"`, `"1GiB"`, `"64kB"`, `"1000B"`, or a plain byte count.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad =
        || format!("{s:?} is not a size; write it like \"256KiB\", \"4MiB\" or a number of bytes");
    let (value, unit) = split_number(s).ok_or_else(bad)?;
    let scale: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return Err(bad()),
    };
    let bytes = (value * scale).round();
    if bytes > 1e15 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes as u64)
}

/// Parse a duration: `"60s"`, `"500ms"`, `"250us"`, `"2m"`, `"1h"`, `"1.5s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration; write it like \"60s\", \"500ms\" or \"250us\"");
    let (value, unit) = split_number(s).ok_or_else(bad)?;
    let secs_per_unit = match unit.as_str() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = value * secs_per_unit;
    if secs > 7.0 * 86400.0 {
        return Err(format!("{s:?} is too long; at most a week"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse `aa:bb:cc:dd:ee:ff` (or with `-`), requiring a unicast, non-zero address.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{s:?} is not a MAC address; write it like \"02:00:00:00:00:01\"");
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "{s:?} is a multicast address; use a unicast one (lowest bit of the first byte clear), \
             e.g. \"02:00:00:00:00:01\""
        ));
    }
    if mac == [0; 6] {
        return Err(format!(
            "{s:?} is the zero address; use a real one, e.g. \"02:00:00:00:00:01\""
        ));
    }
    Ok(mac)
}

// ---------------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------------

fn int_in_range(key: &str, v: i64, lo: i64, hi: i64) -> Result<i64, ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::new(
            key,
            format!("{v} is out of range; use a value from {lo} to {hi}"),
        ));
    }
    Ok(v)
}

fn one_of<T: Copy>(key: &str, v: &str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
    choices
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            ConfigError::new(
                key,
                format!("{v:?} is not valid; use one of: {}", names.join(", ")),
            )
        })
}

fn value_str(key: &str, v: &toml::Value, what: &str, example: &str) -> Result<String, ConfigError> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) if *i >= 0 => Ok(i.to_string()),
        toml::Value::Float(f) if *f >= 0.0 => Ok(f.to_string()),
        other => Err(ConfigError::new(
            key,
            format!("{other} is not a {what}; write it like {example}"),
        )),
    }
}

fn cidr(key: &str, s: &str) -> Result<Ipv4Cidr, ConfigError> {
    Ipv4Cidr::parse(s).ok_or_else(|| {
        ConfigError::new(
            key,
            format!("{s:?} is not an IPv4 CIDR; write it like \"10.0.0.2/24\""),
        )
    })
}

/// A host address must not be the subnet's network or broadcast address (except /31, /32).
fn check_host(key: &str, c: Ipv4Cidr) -> Result<(), ConfigError> {
    if c.prefix_len < 31 && (c.addr == c.network() || c.addr == c.broadcast()) {
        let which = if c.addr == c.network() {
            "network"
        } else {
            "broadcast"
        };
        return Err(ConfigError::new(
            key,
            format!(
                "{c} is the {which} address of its subnet; use a host address between {} and {}",
                Ipv4Addr::from(u32::from(c.network()) + 1),
                Ipv4Addr::from(u32::from(c.broadcast()) - 1)
            ),
        ));
    }
    if c.addr.is_unspecified() || c.addr.is_multicast() || c.addr.is_broadcast() {
        return Err(ConfigError::new(
            key,
            format!("{c} is not a unicast host address; use one like \"10.0.0.2/24\""),
        ));
    }
    Ok(())
}

fn validate_port(i: usize, p: RawPort) -> Result<PortConfig, ConfigError> {
    let k = |f: &str| format!("port[{i}].{f}");
    let name = p.name;
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::new(
            k("name"),
            format!("{name:?} is not a valid name; use 1 to 32 letters, digits, '_' or '-', like \"ext\""),
        ));
    }
    if name == "all" {
        return Err(ConfigError::new(
            k("name"),
            "\"all\" is reserved (it labels services on every port); choose another name",
        ));
    }
    let backend = one_of(
        &k("backend"),
        &p.backend,
        &[
            ("af_packet", Backend::AfPacket),
            ("tap", Backend::Tap),
            ("memory", Backend::Memory),
            ("dpdk", Backend::Dpdk),
        ],
    )?;
    if backend == Backend::Dpdk && !cfg!(feature = "dpdk") {
        return Err(ConfigError::new(
            k("backend"),
            "\"dpdk\": built without the dpdk feature; rebuild with --features dpdk",
        ));
    }
    match (&p.iface, backend) {
        (None, Backend::AfPacket | Backend::Tap) => {
            return Err(ConfigError::new(
                k("iface"),
                format!(
                    "missing; a {} port needs an interface name, e.g. iface = \"veth0\"",
                    backend.as_str()
                ),
            ))
        }
        (Some(_), Backend::Memory) => {
            return Err(ConfigError::new(
                k("iface"),
                "a memory port has no interface; remove this key",
            ))
        }
        (Some(s), Backend::AfPacket | Backend::Tap)
            if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', '\0']) || s == "." || s == ".." =>
        {
            return Err(ConfigError::new(
                k("iface"),
                format!("{s:?} is not an interface name; use 1 to 15 characters without '/' or spaces, like \"veth0\""),
            ))
        }
        (Some(s), Backend::Dpdk) if s.is_empty() => {
            return Err(ConfigError::new(
                k("iface"),
                "empty; give a PCI address or vdev, e.g. \"0000:01:00.0\", or remove the key",
            ))
        }
        _ => {}
    }
    let ipv4 = cidr(&k("ipv4"), &p.ipv4)?;
    check_host(&k("ipv4"), ipv4)?;
    let mut extra_ipv4 = Vec::new();
    for (j, s) in p.extra_ipv4.unwrap_or_default().iter().enumerate() {
        let key = format!("port[{i}].extra_ipv4[{j}]");
        let c = if s.contains('/') {
            cidr(&key, s)?
        } else {
            let addr: Ipv4Addr = s.parse().map_err(|_| {
                ConfigError::new(
                    &key,
                    format!("{s:?} is not an IPv4 address; write it like \"10.0.0.3\" or \"10.1.0.2/24\""),
                )
            })?;
            if !ipv4.contains(addr) {
                return Err(ConfigError::new(
                    &key,
                    format!(
                        "{addr} is outside {} (the port's ipv4 subnet); use an address inside it or give its own subnet like \"{addr}/24\"",
                        Ipv4Cidr { addr: ipv4.network(), prefix_len: ipv4.prefix_len }
                    ),
                ));
            }
            Ipv4Cidr {
                addr,
                prefix_len: ipv4.prefix_len,
            }
        };
        check_host(&key, c)?;
        if c.addr == ipv4.addr || extra_ipv4.iter().any(|e: &Ipv4Cidr| e.addr == c.addr) {
            return Err(ConfigError::new(
                &key,
                format!(
                    "{} is listed twice on this port; remove the duplicate",
                    c.addr
                ),
            ));
        }
        extra_ipv4.push(c);
    }
    let gateway = match p.gateway {
        None => None,
        Some(s) => {
            let g: Ipv4Addr = s.parse().map_err(|_| {
                ConfigError::new(
                    k("gateway"),
                    format!("{s:?} is not an IPv4 address; write it like \"10.0.0.1\""),
                )
            })?;
            let net = Ipv4Cidr {
                addr: ipv4.network(),
                prefix_len: ipv4.prefix_len,
            };
            if !ipv4.contains(g) {
                return Err(ConfigError::new(
                    k("gateway"),
                    format!("{g} is outside {net} (the port's ipv4 subnet); use a router address inside it"),
                ));
            }
            if g == ipv4.addr
                || (ipv4.prefix_len < 31 && (g == ipv4.network() || g == ipv4.broadcast()))
            {
                return Err(ConfigError::new(
                    k("gateway"),
                    format!("{g} cannot be the gateway of {net} (it is this port's own, the network or the broadcast address); use the router's address"),
                ));
            }
            Some(g)
        }
    };
    let mac = match p.mac {
        None => None,
        Some(s) => Some(parse_mac(&s).map_err(|m| ConfigError::new(k("mac"), m))?),
    };
    let tx_ring = int_in_range(
        &k("tx_ring"),
        p.tx_ring.unwrap_or(i64::from(defaults::TX_RING)),
        16,
        65536,
    )? as u32;
    let rx_burst = int_in_range(
        &k("rx_burst"),
        p.rx_burst.unwrap_or(i64::from(defaults::RX_BURST)),
        1,
        1024,
    )? as u32;
    let line_rate_bps = match p.line_rate {
        None => None,
        Some(v) => {
            let s = value_str(&k("line_rate"), &v, "rate", "\"1gbit\"")?;
            Some(parse_rate(&s).map_err(|m| ConfigError::new(k("line_rate"), m))?)
        }
    };
    let rx_ring = int_in_range(
        &k("rx_ring"),
        p.rx_ring.unwrap_or(i64::from(defaults::RX_RING)),
        64,
        32768,
    )? as u32;
    let eal_args = p.eal_args.unwrap_or_default();
    if !eal_args.is_empty() && backend != Backend::Dpdk {
        return Err(ConfigError::new(
            k("eal_args"),
            "only dpdk ports take EAL arguments; remove this key",
        ));
    }
    if let Some(a) = eal_args.iter().find(|a| a.is_empty() || a.contains('\0')) {
        return Err(ConfigError::new(
            k("eal_args"),
            format!("{a:?} is not an EAL argument; write each flag as a string, like [\"--no-huge\", \"-m\", \"256\"]"),
        ));
    }
    let admission = one_of(
        &k("admission"),
        p.admission.as_deref().unwrap_or("adaptive"),
        &[
            ("off", Admission::Off),
            ("paper", Admission::Paper),
            ("adaptive", Admission::Adaptive),
        ],
    )?;
    let admission_latency = duration_key(
        &k("admission_latency"),
        p.admission_latency.as_deref(),
        Duration::from_millis(defaults::ADMISSION_LATENCY_MS),
        Duration::from_micros(100),
        Duration::from_millis(100),
    )?;
    if p.admission_latency.is_some() && admission != Admission::Adaptive {
        return Err(ConfigError::new(
            k("admission_latency"),
            "only the adaptive policy uses a latency bound; remove this key or set admission = \"adaptive\"",
        ));
    }
    Ok(PortConfig {
        name,
        backend,
        iface: p.iface,
        ipv4,
        extra_ipv4,
        gateway,
        mac,
        tx_ring,
        line_rate_bps,
        rx_burst,
        admission,
        admission_latency,
        checksum_offload: match p.checksum_offload {
            Some(true) if backend != Backend::Dpdk => {
                return Err(ConfigError::new(
                    k("checksum_offload"),
                    format!(
                        "backend \"{}\" cannot offload checksums (frames leave exactly as built); remove the key or set it to false",
                        backend.as_str()
                    ),
                ))
            }
            v => v.unwrap_or(false),
        },
        gso: match p.gso {
            Some(true) if backend != Backend::AfPacket => {
                return Err(ConfigError::new(
                    k("gso"),
                    format!(
                        "only the af_packet backend has segmentation offload, not \"{}\"; remove the key or set it to false",
                        backend.as_str()
                    ),
                ))
            }
            v => v.unwrap_or(false),
        },
        rx_ring,
        eal_args,
        faults: match p.faults {
            None => None,
            Some(f) => {
                let prob = |name: &str, v: Option<f64>| -> Result<f64, ConfigError> {
                    let v = v.unwrap_or(0.0);
                    if (0.0..=0.5).contains(&v) {
                        Ok(v)
                    } else {
                        Err(ConfigError::new(
                            format!("{}.{name}", k("faults")),
                            format!("{v} is not a probability in 0..=0.5; write e.g. 0.02 for 2%"),
                        ))
                    }
                };
                Some(crate::port::faults::FaultConfig {
                    loss: prob("loss", f.loss)?,
                    duplicate: prob("duplicate", f.duplicate)?,
                    reorder: prob("reorder", f.reorder)?,
                    seed: f.seed.unwrap_or(1) as u64,
                })
            }
        },
    })
}

fn duration_key(
    key: &str,
    s: Option<&str>,
    default: Duration,
    lo: Duration,
    hi: Duration,
) -> Result<Duration, ConfigError> {
    let Some(s) = s else { return Ok(default) };
    let d = parse_duration(s).map_err(|m| ConfigError::new(key, m))?;
    if d < lo || d > hi {
        return Err(ConfigError::new(
            key,
            format!("{s:?} is out of range; use a duration from {lo:?} to {hi:?}"),
        ));
    }
    Ok(d)
}

fn size_key(key: &str, v: Option<&toml::Value>, default: usize) -> Result<usize, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    let s = value_str(key, v, "size", "\"256KiB\"")?;
    let n = parse_size(&s).map_err(|m| ConfigError::new(key, m))?;
    const LO: u64 = 4 * 1024;
    const HI: u64 = 1 << 30;
    if !(LO..=HI).contains(&n) {
        return Err(ConfigError::new(
            key,
            format!("{s:?} is out of range; use a size from 4KiB to 1GiB"),
        ));
    }
    Ok(n as usize)
}

fn validate_tcp(t: RawTcp) -> Result<TcpConfig, ConfigError> {
    let d = TcpConfig::default();
    let ms = Duration::from_millis;
    let s = Duration::from_secs;
    Ok(TcpConfig {
        congestion: one_of(
            "tcp.congestion",
            t.congestion.as_deref().unwrap_or("cubic"),
            &[
                ("cubic", CongestionAlgorithm::Cubic),
                ("newreno", CongestionAlgorithm::NewReno),
                ("bbr", CongestionAlgorithm::Bbr),
            ],
        )?,
        send_buffer: size_key("tcp.send_buffer", t.send_buffer.as_ref(), d.send_buffer)?,
        recv_buffer: size_key("tcp.recv_buffer", t.recv_buffer.as_ref(), d.recv_buffer)?,
        // 2*MSL is at most 4 minutes (RFC 9293); zero disables TIME-WAIT for test rigs.
        time_wait: duration_key(
            "tcp.time_wait",
            t.time_wait.as_deref(),
            d.time_wait,
            Duration::ZERO,
            s(240),
        )?,
        syn_backlog: int_in_range(
            "tcp.syn_backlog",
            t.syn_backlog.unwrap_or(i64::from(d.syn_backlog)),
            1,
            1 << 20,
        )? as u32,
        accept_backlog: int_in_range(
            "tcp.accept_backlog",
            t.accept_backlog.unwrap_or(i64::from(d.accept_backlog)),
            1,
            1 << 20,
        )? as u32,
        syn_cookies: t.syn_cookies.unwrap_or(d.syn_cookies),
        nodelay: t.nodelay.unwrap_or(d.nodelay),
        rto_min: duration_key("tcp.rto_min", t.rto_min.as_deref(), d.rto_min, ms(1), s(60))?,
        // RFC 9293 3.8.6.3: an ACK must not be delayed by more than 500 ms.
        delayed_ack: duration_key(
            "tcp.delayed_ack",
            t.delayed_ack.as_deref(),
            d.delayed_ack,
            Duration::ZERO,
            ms(500),
        )?,
        keepalive: match t.keepalive.as_deref() {
            None => None,
            Some(k) => Some(duration_key(
                "tcp.keepalive",
                Some(k),
                s(1),
                s(1),
                s(7 * 86400),
            )?),
        },
        sack: t.sack.unwrap_or(d.sack),
    })
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let cores = match raw.cores {
        None => None,
        Some(list) => {
            if list.is_empty() {
                return Err(ConfigError::new(
                    "cores",
                    "empty; list at least one core like cores = [1], or remove the key for no pinning",
                ));
            }
            let mut out: Vec<usize> = Vec::new();
            for (i, c) in list.into_iter().enumerate() {
                let c = int_in_range(&format!("cores[{i}]"), c, 0, 4095)? as usize;
                if out.contains(&c) {
                    return Err(ConfigError::new(
                        format!("cores[{i}]"),
                        format!("core {c} is listed twice; remove the duplicate"),
                    ));
                }
                out.push(c);
            }
            Some(out)
        }
    };

    let mut ports: Vec<PortConfig> = Vec::new();
    for (i, p) in raw.port.into_iter().enumerate() {
        let p = validate_port(i, p)?;
        if let Some(j) = ports.iter().position(|q| q.name == p.name) {
            return Err(ConfigError::new(
                format!("port[{i}].name"),
                format!(
                    "{:?} is already the name of port[{j}]; port names must be unique",
                    p.name
                ),
            ));
        }
        for (j, q) in ports.iter().enumerate() {
            let theirs = std::iter::once(q.ipv4.addr).chain(q.extra_ipv4.iter().map(|c| c.addr));
            let mine: Vec<Ipv4Addr> = std::iter::once(p.ipv4.addr)
                .chain(p.extra_ipv4.iter().map(|c| c.addr))
                .collect();
            for a in theirs {
                if mine.contains(&a) {
                    return Err(ConfigError::new(
                        format!("port[{i}].ipv4"),
                        format!("{a} is already an address of port[{j}]; each address belongs to one port"),
                    ));
                }
            }
            if p.backend != Backend::Memory
                && p.backend == q.backend
                && p.iface.is_some()
                && p.iface == q.iface
            {
                return Err(ConfigError::new(
                    format!("port[{i}].iface"),
                    format!(
                        "{:?} is already used by port[{j}]; give each port its own interface",
                        p.iface.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        ports.push(p);
    }

    let port_names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    let mut services: Vec<ServiceConfig> = Vec::new();
    for (i, s) in raw.service.into_iter().enumerate() {
        let kind = one_of(
            &format!("service[{i}].kind"),
            &s.kind,
            &[
                ("echo", ServiceKind::Echo),
                ("discard", ServiceKind::Discard),
                ("source", ServiceKind::Source),
                ("http", ServiceKind::Http),
                ("udp_echo", ServiceKind::UdpEcho),
            ],
        )?;
        let port = int_in_range(&format!("service[{i}].port"), s.port, 1, 65535)? as u16;
        if let Some(on) = &s.on {
            if !port_names.contains(&on.as_str()) {
                let hint = if port_names.is_empty() {
                    "define a [[port]] first".to_string()
                } else {
                    format!("use one of: {}", port_names.join(", "))
                };
                return Err(ConfigError::new(
                    format!("service[{i}].on"),
                    format!("no port named {on:?}; {hint}"),
                ));
            }
        }
        let proto = kind.protocol();
        // Two services clash when they share protocol and port and either listens everywhere
        // or both name the same port. Services are few, so a scan is fine.
        if let Some(j) = services.iter().position(|other| {
            other.kind.protocol() == proto
                && other.port == port
                && (other.on.is_none() || s.on.is_none() || other.on == s.on)
        }) {
            return Err(ConfigError::new(
                format!("service[{i}].port"),
                format!(
                    "{port}/{} is already used by service[{j}]; choose another port or bind them to different ports with `on`",
                    proto.as_str()
                ),
            ));
        }
        services.push(ServiceConfig {
            kind,
            port,
            on: s.on,
        });
    }

    let telemetry = TelemetryConfig {
        listen: match raw.telemetry.listen {
            None => TelemetryConfig::default().listen,
            Some(s) => s.parse().map_err(|_| {
                ConfigError::new(
                    "telemetry.listen",
                    format!("{s:?} is not a socket address; write it like \"127.0.0.1:9100\""),
                )
            })?,
        },
        enabled: raw.telemetry.enabled.unwrap_or(true),
    };

    let level = raw
        .log
        .level
        .unwrap_or_else(|| defaults::LOG_LEVEL.to_string());
    if !is_log_filter(&level) {
        return Err(ConfigError::new(
            "log.level",
            format!("{level:?} is not a log filter; use one of \"error\", \"warn\", \"info\", \"debug\", \"trace\" (or a filter like \"saps=debug,info\")"),
        ));
    }

    Ok(Config {
        cores,
        ports,
        services,
        telemetry,
        tcp: validate_tcp(raw.tcp)?,
        log: LogConfig { level },
    })
}

/// A strict subset of tracing's filter syntax: comma-separated `level` or `target=level`.
/// Stricter than `EnvFilter` (which takes a bare word as a target) so that a typo such as
/// `level = "dbug"` is an error rather than a filter that silently matches nothing.
pub fn is_log_filter(s: &str) -> bool {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let is_level = |l: &str| LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l));
    !s.trim().is_empty()
        && s.split(',').all(|d| match d.trim().split_once('=') {
            None => is_level(d.trim()),
            Some((target, level)) => {
                !target.is_empty()
                    && target
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'-')
                    && is_level(level)
            }
        })
        && tracing_subscriber::EnvFilter::try_new(s).is_ok()
}

/// The keys of [`SCHEMA`] as dotted paths (`port.tx_ring`, `cores`), for docs checks.
pub fn schema_paths() -> Vec<String> {
    let mut out = Vec::new();
    let sections: BTreeMap<&str, &[&str]> = SCHEMA.iter().copied().collect();
    for (section, keys) in &sections {
        for key in keys.iter() {
            if section.is_empty() {
                if !sections.contains_key(key) {
                    out.push((*key).to_string());
                }
            } else {
                out.push(format!("{section}.{key}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde's own list of fields for a raw struct, read from its unknown-field error.
    fn serde_fields<T: serde::de::DeserializeOwned + fmt::Debug>() -> Vec<String> {
        let mut t = toml::Table::new();
        t.insert("__probe".into(), toml::Value::Integer(1));
        let err = toml::Value::Table(t)
            .try_into::<T>()
            .unwrap_err()
            .to_string();
        // serde writes "expected `a`", "expected `a` or `b`" or "expected one of `a`, `b`, ...".
        let list = err
            .split("expected")
            .nth(1)
            .unwrap_or_else(|| panic!("{err}"));
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn schema_matches_serde_structs() {
        let check = |section: &str, mut fields: Vec<String>| {
            let mut keys: Vec<String> =
                schema_keys(section).iter().map(|s| s.to_string()).collect();
            fields.sort();
            keys.sort();
            assert_eq!(fields, keys, "section {section:?}");
        };
        check("", serde_fields::<RawConfig>());
        check("port", serde_fields::<RawPort>());
        check("service", serde_fields::<RawService>());
        check("telemetry", serde_fields::<RawTelemetry>());
        check("tcp", serde_fields::<RawTcp>());
        check("log", serde_fields::<RawLog>());
    }

    #[test]
    fn cidr_math() {
        let c = Ipv4Cidr::parse("10.0.0.77/24").unwrap();
        assert_eq!(c.network(), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 1, 1)));
        let all = Ipv4Cidr::parse("1.2.3.4/0").unwrap();
        assert!(all.contains(Ipv4Addr::new(200, 1, 1, 1)));
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0.1/+4",
            "10.0.0.300/24",
            "/24",
            "10.0.0.1/024",
        ] {
            assert_eq!(Ipv4Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("200mbit"), Ok(200_000_000));
        assert_eq!(parse_rate("10Gbit"), Ok(10_000_000_000));
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("2.5gbit"), Ok(2_500_000_000));
        assert_eq!(parse_rate("1000000"), Ok(1_000_000));
        for bad in [
            "", "fast", "1gb/s", "0", "0mbit", "-1gbit", ".5gbit", "1e9", "1..0gbit",
        ] {
            let e = parse_rate(bad).unwrap_err();
            assert!(e.contains("gbit") || e.contains("range"), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("64kB"), Ok(64_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("4 parsecs").unwrap_err().contains("256KiB"));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("60").unwrap_err().contains("500ms"));
        assert!(parse_duration("1fortnight").is_err());
        assert!(parse_duration("99999h").unwrap_err().contains("too long"));
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:01"), Ok([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            parse_mac("AA-bb-cc-dd-ee-fe"),
            Ok([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xfe])
        );
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse_mac("00:00:00:00:00:00").unwrap_err().contains("zero"));
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:0g",
            "2:0:0:0:0:1",
            "02:00:00:00:00:01:02",
            "+2:00:00:00:00:01",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_filters() {
        for ok in [
            "info",
            "DEBUG",
            "saps=debug,warn",
            "saps::telemetry=trace",
            "off",
        ] {
            assert!(is_log_filter(ok), "{ok}");
        }
        for bad in [
            "",
            "loud",
            "loud=",
            "dbug",
            "saps=verbose",
            "info,",
            "=info",
        ] {
            assert!(!is_log_filter(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("ifcae", schema_keys("port")), Some("iface"));
        assert_eq!(suggest("telemtry", schema_keys("")), Some("telemetry"));
        assert_eq!(suggest("zzzzzzzz", schema_keys("")), None);
    }

    #[test]
    fn tcp_sack_defaults_on_and_can_be_turned_off() {
        assert!(TcpConfig::default().sack);
        assert!(Config::from_toml_str("").unwrap().tcp.sack);
        assert!(
            Config::from_toml_str("[tcp]\nsack = true\n")
                .unwrap()
                .tcp
                .sack
        );
        assert!(
            !Config::from_toml_str("[tcp]\nsack = false\n")
                .unwrap()
                .tcp
                .sack
        );
        // Not a bool: one line naming the key and the expected type.
        let e = Config::from_toml_str("[tcp]\nsack = \"no\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tcp.sack: "), "{e}");
        assert!(e.contains("expected a boolean"), "{e}");
        let e = Config::from_toml_str("[tcp]\nsak = false\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tcp.sak") && e.contains("sack"), "{e}");
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        let e = ConfigError::new("a.b", "x\ny\r\n z");
        assert_eq!(e.to_string(), "a.b: x y z");
    }
}
