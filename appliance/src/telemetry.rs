//! Telemetry: the data plane publishes snapshots, the control thread serves them over HTTP.
//!
//! Data-plane threads own plain counters and never share them. About every
//! [`PUBLISH_INTERVAL`] they build a [`MetricsSnapshot`] and hand it to a [`MetricsPublisher`],
//! which swaps it into an [`arc_swap::ArcSwap`]: no lock, the data plane never waits for a
//! scrape. The control thread reads the newest snapshot through a [`MetricsHandle`] and serves:
//!
//! - `GET /metrics`: Prometheus text exposition format 0.0.4 (or OpenMetrics 1.0 when the
//!   scraper's `Accept` asks for `application/openmetrics-text`), encoded with the
//!   prometheus-client crate from the snapshot by a custom collector. Names start with `saps_`,
//!   use base units (bytes, seconds) and counters end in `_total`.
//! - `GET /healthz`: `200 ok` when the data plane published within [`HEALTH_MAX_AGE`], else 503.
//!
//! The server ([`spawn_telemetry_server`]) is a plain `std::net` loop on a management address:
//! one request at a time, `Connection: close`, bounded request size and time, and malformed
//! requests answered with 400 rather than a panic.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use saps_stack::stats::{DropReason, PacketCount, StackStats, TcpStats};

/// How often the data plane is expected to publish a snapshot.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);
/// `/healthz` answers 503 when the last snapshot is older than this.
pub const HEALTH_MAX_AGE: Duration = Duration::from_secs(2);
/// Largest request head the server reads before answering 431.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Longest time the server waits for one request (slow clients get 408 or are dropped).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Bucket upper bounds, in seconds, of every histogram on `/metrics` (`+Inf` is added).
pub const BUCKET_BOUNDS_SECONDS: [f64; 19] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of one network port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortMetrics {
    /// The port's configured name (metric label `port`).
    pub name: String,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received (Ethernet frames without FCS).
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames the driver or kernel dropped on receive.
    pub rx_drops: u64,
    /// Frames dropped on transmit.
    pub tx_drops: u64,
    /// Times the TX ring was found full.
    pub tx_full_events: u64,
    /// Frames sent inside merged large segments (segmentation offload).
    pub tx_offload_frames: u64,
    /// TX ring size, packets.
    pub tx_ring_capacity: u64,
    /// Packets in the TX ring when the snapshot was taken.
    pub tx_ring_occupancy_packets: u64,
    /// Bytes in the TX ring when the snapshot was taken.
    pub tx_ring_occupancy_bytes: u64,
    /// Carrier state.
    pub link_up: bool,
    /// Data segments admitted into the TX ring by TX admission.
    pub tx_admissions: u64,
    /// Times TX admission held flows back because the ring was at its limit.
    pub tx_admission_hold_backs: u64,
    /// Times the ring ran empty while flows were held back (line rate lost to the limit).
    pub tx_admission_ring_empty_while_waiting: u64,
    /// Current admission limit in bytes (0: no limit).
    pub tx_admission_limit_bytes: u64,
    /// Current admission limit in packets (0: no limit).
    pub tx_admission_limit_packets: u64,
    /// Flows waiting for TX admission when the snapshot was taken.
    pub tx_admission_flows_waiting: u64,
}

/// Counters of one configured service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceMetrics {
    /// Service kind (`echo`, `http`, ...: metric label `service`).
    pub kind: &'static str,
    /// L4 port (label `port`).
    pub port: u16,
    /// The network port it is bound to; `None` means all (label `on="all"`).
    pub on: Option<String>,
    /// Connections (or UDP peers) accepted since start.
    pub connections_total: u64,
    /// Connections open now.
    pub connections_active: u64,
    /// Payload bytes received.
    pub rx_bytes: u64,
    /// Payload bytes sent.
    pub tx_bytes: u64,
    /// Requests served (HTTP requests, UDP datagrams echoed, ...).
    pub requests_total: u64,
}

/// A latency distribution recorded in **microseconds**, exported in seconds.
#[derive(Clone, Debug)]
pub struct HistogramMetric {
    /// Metric name without the `saps_` prefix, ending in `_seconds`
    /// (e.g. `http_request_duration_seconds`).
    pub name: &'static str,
    /// One-line help text.
    pub help: &'static str,
    /// Recorded values in microseconds.
    pub histogram: Histogram<u64>,
}

impl HistogramMetric {
    /// An empty histogram for microsecond values from 1 µs to 60 s at 3 significant digits.
    pub fn new(name: &'static str, help: &'static str) -> Self {
        HistogramMetric {
            name,
            help,
            histogram: latency_histogram(),
        }
    }
}

/// A histogram suitable for [`HistogramMetric`] (1 µs ..= 60 s, 3 significant digits). Record
/// with `saturating_record` so out-of-range values never fail on the data plane.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// Everything `/metrics` shows, as copied by the data plane at one moment.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// Time since the appliance started.
    pub uptime: Duration,
    /// Per network port.
    pub ports: Vec<PortMetrics>,
    /// The stack's counters, summed over ports.
    pub stack: StackStats,
    /// TCP connections by state name (`established`, `time_wait`, ...).
    pub tcp_states: Vec<(&'static str, u64)>,
    /// Per configured service.
    pub services: Vec<ServiceMetrics>,
    /// Latency histograms.
    pub histograms: Vec<HistogramMetric>,
}

struct Shared {
    snapshot: ArcSwap<MetricsSnapshot>,
    epoch: Instant,
    /// Microseconds after `epoch` of the last publish, 0 before the first one.
    last_publish_us: AtomicU64,
}

/// The data plane's end: publishes snapshots without locking.
pub struct MetricsPublisher {
    shared: Arc<Shared>,
    next_due: Option<Instant>,
}

/// The control thread's end: reads the newest snapshot. Cheap to clone.
#[derive(Clone)]
pub struct MetricsHandle {
    shared: Arc<Shared>,
}

impl MetricsPublisher {
    /// A connected publisher/handle pair. The handle shows an empty snapshot and reports
    /// unhealthy until the first [`publish`](Self::publish).
    pub fn new() -> (MetricsPublisher, MetricsHandle) {
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(MetricsSnapshot::default()),
            epoch: Instant::now(),
            last_publish_us: AtomicU64::new(0),
        });
        (
            MetricsPublisher {
                shared: shared.clone(),
                next_due: None,
            },
            MetricsHandle { shared },
        )
    }

    /// Publish a snapshot built by `build` if [`PUBLISH_INTERVAL`] has passed since the last
    /// one published this way (or none was). Meant to be called on every poll-loop iteration
    /// with the loop's clock reading: `build` (which copies counters) only runs when due.
    /// Returns whether it published.
    pub fn publish_if_due(
        &mut self,
        now: Instant,
        build: impl FnOnce() -> MetricsSnapshot,
    ) -> bool {
        if self.next_due.is_some_and(|due| now < due) {
            return false;
        }
        self.publish(build());
        self.next_due = Some(now + PUBLISH_INTERVAL);
        true
    }

    /// Make `snapshot` the one readers see, and mark the data plane alive.
    pub fn publish(&self, snapshot: MetricsSnapshot) {
        self.shared.snapshot.store(Arc::new(snapshot));
        let us = self
            .shared
            .epoch
            .elapsed()
            .as_micros()
            .clamp(1, u64::MAX as u128) as u64;
        self.shared.last_publish_us.store(us, Ordering::Release);
    }
}

impl MetricsHandle {
    /// The newest snapshot.
    pub fn snapshot(&self) -> Arc<MetricsSnapshot> {
        self.shared.snapshot.load_full()
    }

    /// Time since the last publish; `None` before the first.
    pub fn last_publish_age(&self) -> Option<Duration> {
        match self.shared.last_publish_us.load(Ordering::Acquire) {
            0 => None,
            us => Some(
                self.shared
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_micros(us)),
            ),
        }
    }

    /// Whether the data plane published within `max_age`.
    pub fn is_healthy(&self, max_age: Duration) -> bool {
        self.last_publish_age().is_some_and(|age| age <= max_age)
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding.
// ---------------------------------------------------------------------------------------------

/// Encodes one snapshot on each scrape.
#[derive(Debug)]
struct SnapshotCollector(Arc<MetricsSnapshot>);

/// A sample value of a counter or gauge family.
enum Value {
    Counter(u64),
    Gauge(i64),
    GaugeF(f64),
}

type Labels = Vec<(&'static str, String)>;

fn gauge(v: u64) -> Value {
    Value::Gauge(i64::try_from(v).unwrap_or(i64::MAX))
}

fn write_value(m: &mut MetricEncoder, v: &Value) -> Result<(), std::fmt::Error> {
    match v {
        Value::Counter(c) => m.encode_counter::<(), _, u64>(c, None),
        Value::Gauge(g) => m.encode_gauge(g),
        Value::GaugeF(g) => m.encode_gauge(g),
    }
}

fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    samples: Vec<(Labels, Value)>,
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in &samples {
        if labels.is_empty() {
            write_value(&mut m, v)?;
        } else {
            write_value(&mut m.encode_family(labels)?, v)?;
        }
    }
    Ok(())
}

/// Cumulative counts at [`BUCKET_BOUNDS_SECONDS`] turned into per-bucket counts (the encoder
/// accumulates), with the `+Inf` bucket last so its cumulative count equals `len()`.
fn histogram_buckets(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    let total = h.len();
    let mut out = Vec::with_capacity(BUCKET_BOUNDS_SECONDS.len() + 1);
    let mut prev = 0u64;
    for bound in BUCKET_BOUNDS_SECONDS {
        let bound_us = (bound * 1e6).round() as u64;
        // Values within the histogram's resolution of the bound count as below it.
        let cum = h.count_between(0, bound_us).clamp(prev, total);
        out.push((bound, cum - prev));
        prev = cum;
    }
    out.push((f64::MAX, total - prev));
    out
}

fn packet_counts(stats: &StackStats) -> [(&'static str, PacketCount, PacketCount); 6] {
    [
        ("ethernet", stats.eth_rx, stats.eth_tx),
        ("arp", stats.arp_rx, stats.arp_tx),
        ("ipv4", stats.ipv4_rx, stats.ipv4_tx),
        ("icmp", stats.icmp_rx, stats.icmp_tx),
        ("udp", stats.udp_rx, stats.udp_tx),
        ("tcp", stats.tcp_rx, stats.tcp_tx),
    ]
}

/// TCP counters as (metric name without prefix, help, value).
fn tcp_counters(t: &TcpStats) -> [(&'static str, &'static str, u64); 23] {
    [
        (
            "tcp_retransmitted_segments",
            "TCP segments retransmitted (any cause).",
            t.retransmitted_segments,
        ),
        (
            "tcp_rto_expiries",
            "TCP retransmission timer expiries.",
            t.rto_expiries,
        ),
        (
            "tcp_fast_recoveries",
            "TCP fast-recovery episodes entered on duplicate ACKs.",
            t.fast_recoveries,
        ),
        (
            "tcp_sack_recoveries",
            "TCP loss-recovery episodes driven by SACK.",
            t.sack_recoveries,
        ),
        (
            "tcp_sack_retransmits",
            "TCP segments retransmitted because SACK marked them lost.",
            t.sack_retransmits,
        ),
        (
            "tcp_lost_retransmissions",
            "TCP SACK-recovery retransmissions found lost before the retransmission timeout (each is then resent).",
            t.lost_retransmissions,
        ),
        (
            "tcp_sack_blocks_received",
            "SACK blocks received from peers.",
            t.sack_blocks_received,
        ),
        (
            "tcp_sack_blocks_sent",
            "SACK blocks sent to peers.",
            t.sack_blocks_sent,
        ),
        (
            "tcp_dsack_blocks_received",
            "D-SACK blocks received from peers (RFC 2883: a segment arrived twice).",
            t.dsack_blocks_received,
        ),
        (
            "tcp_undos_recovery",
            "TCP fast/SACK recovery episodes found spurious (D-SACK or timestamps) and undone.",
            t.undos_recovery,
        ),
        (
            "tcp_undos_rto",
            "TCP retransmission timeouts found spurious (D-SACK or timestamps) and undone.",
            t.undos_rto,
        ),
        (
            "tcp_challenge_acks",
            "Challenge ACKs sent (RFC 5961).",
            t.challenge_acks,
        ),
        ("tcp_resets_sent", "TCP RST segments sent.", t.resets_sent),
        (
            "tcp_resets_received",
            "TCP RST segments accepted from peers.",
            t.resets_received,
        ),
        ("tcp_syn_cookies_sent", "SYN cookies sent.", t.cookies_sent),
        (
            "tcp_syn_cookies_validated",
            "Connections created from a valid SYN cookie.",
            t.cookies_validated,
        ),
        (
            "tcp_window_probes",
            "TCP zero-window probes sent.",
            t.window_probes,
        ),
        (
            "tcp_keepalive_probes",
            "TCP keepalive probes sent.",
            t.keepalive_probes,
        ),
        (
            "tcp_timeouts",
            "TCP connections dropped after keepalive or retransmission limits.",
            t.timeouts,
        ),
        (
            "tcp_out_of_order_segments",
            "TCP segments queued for reassembly.",
            t.ooo_segments,
        ),
        (
            "tcp_active_opens",
            "TCP active opens (connect).",
            t.active_opens,
        ),
        (
            "tcp_passive_opens",
            "TCP passive opens (accepted from a listener).",
            t.passive_opens,
        ),
        (
            "tcp_delayed_acks",
            "Delayed ACKs sent when their timer fired.",
            t.delayed_acks,
        ),
    ]
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.0;
        family(
            &mut enc,
            "uptime_seconds",
            "Time since the appliance started.",
            MetricType::Gauge,
            vec![(vec![], Value::GaugeF(s.uptime.as_secs_f64()))],
        )?;

        // Per port.
        type PortField = fn(&PortMetrics) -> u64;
        let port_counters: [(&str, &str, PortField); 8] = [
            ("port_rx_packets", "Frames received on the port.", |p| {
                p.rx_packets
            }),
            ("port_rx_bytes", "Bytes received on the port.", |p| {
                p.rx_bytes
            }),
            ("port_tx_packets", "Frames sent on the port.", |p| {
                p.tx_packets
            }),
            ("port_tx_bytes", "Bytes sent on the port.", |p| p.tx_bytes),
            (
                "port_rx_drops",
                "Frames dropped by the port on receive.",
                |p| p.rx_drops,
            ),
            (
                "port_tx_drops",
                "Frames dropped by the port on transmit.",
                |p| p.tx_drops,
            ),
            (
                "port_tx_full_events",
                "Times the port's TX ring was found full.",
                |p| p.tx_full_events,
            ),
            (
                "port_tx_offload_frames",
                "Frames sent inside merged large segments that the kernel or NIC segments (port.gso).",
                |p| p.tx_offload_frames,
            ),
        ];
        let by_port = |f: PortField, counter: bool| -> Vec<(Labels, Value)> {
            s.ports
                .iter()
                .map(|p| {
                    let v = f(p);
                    (
                        vec![("port", p.name.clone())],
                        if counter { Value::Counter(v) } else { gauge(v) },
                    )
                })
                .collect()
        };
        let admission_counters: [(&str, &str, PortField); 3] = [
            (
                "port_tx_admissions",
                "Data segments admitted into the TX ring by TX admission.",
                |p| p.tx_admissions,
            ),
            (
                "port_tx_admission_hold_backs",
                "Times TX admission held flows back because the ring was at its limit.",
                |p| p.tx_admission_hold_backs,
            ),
            (
                "port_tx_admission_ring_empty_while_waiting",
                "Times the TX ring ran empty while flows were held back (lost line rate).",
                |p| p.tx_admission_ring_empty_while_waiting,
            ),
        ];
        for (name, help, f) in port_counters.into_iter().chain(admission_counters) {
            family(&mut enc, name, help, MetricType::Counter, by_port(f, true))?;
        }
        let port_gauges: [(&str, &str, PortField); 4] = [
            (
                "port_tx_ring_capacity_packets",
                "Size of the port's TX ring.",
                |p| p.tx_ring_capacity,
            ),
            (
                "port_tx_ring_occupancy_packets",
                "Packets in the port's TX ring.",
                |p| p.tx_ring_occupancy_packets,
            ),
            (
                "port_tx_ring_occupancy_bytes",
                "Bytes in the port's TX ring.",
                |p| p.tx_ring_occupancy_bytes,
            ),
            ("port_link_up", "1 when the port's link is up.", |p| {
                u64::from(p.link_up)
            }),
        ];
        let admission_gauges: [(&str, &str, PortField); 3] = [
            (
                "port_tx_admission_limit_bytes",
                "Current TX admission limit in bytes (0: none).",
                |p| p.tx_admission_limit_bytes,
            ),
            (
                "port_tx_admission_limit_packets",
                "Current TX admission limit in packets (0: none).",
                |p| p.tx_admission_limit_packets,
            ),
            (
                "port_tx_admission_flows_waiting",
                "Flows waiting for TX admission.",
                |p| p.tx_admission_flows_waiting,
            ),
        ];
        for (name, help, f) in port_gauges.into_iter().chain(admission_gauges) {
            family(&mut enc, name, help, MetricType::Gauge, by_port(f, false))?;
        }

        // Stack, by protocol layer.
        let layers = packet_counts(&s.stack);
        type Pick = fn(&(&'static str, PacketCount, PacketCount)) -> u64;
        let stack_counters: [(&str, &str, Pick); 4] = [
            (
                "stack_rx_packets",
                "Packets received by the stack, by protocol.",
                |l| l.1.packets,
            ),
            (
                "stack_rx_bytes",
                "Bytes received by the stack, by protocol.",
                |l| l.1.bytes,
            ),
            (
                "stack_tx_packets",
                "Packets sent by the stack, by protocol.",
                |l| l.2.packets,
            ),
            (
                "stack_tx_bytes",
                "Bytes sent by the stack, by protocol.",
                |l| l.2.bytes,
            ),
        ];
        for (name, help, pick) in stack_counters {
            let samples = layers
                .iter()
                .map(|l| (vec![("protocol", l.0.to_string())], Value::Counter(pick(l))))
                .collect();
            family(&mut enc, name, help, MetricType::Counter, samples)?;
        }
        let drops = DropReason::ALL
            .iter()
            .map(|r| {
                (
                    vec![("reason", r.as_str().to_string())],
                    Value::Counter(s.stack.drops_for(*r)),
                )
            })
            .collect();
        family(
            &mut enc,
            "stack_drops",
            "Frames or segments the stack dropped, by reason.",
            MetricType::Counter,
            drops,
        )?;

        family(
            &mut enc,
            "arp_reprobes",
            "Resolved ARP entries forgotten because a connection through that next hop hit its retransmission timeout (re-resolved; limits a forged ARP reply to one RTO).",
            MetricType::Counter,
            vec![(vec![], Value::Counter(s.stack.arp_reprobes))],
        )?;
        for (name, help, v) in tcp_counters(&s.stack.tcp) {
            family(
                &mut enc,
                name,
                help,
                MetricType::Counter,
                vec![(vec![], Value::Counter(v))],
            )?;
        }
        let states = s
            .tcp_states
            .iter()
            .map(|(state, n)| (vec![("state", state.to_string())], gauge(*n)))
            .collect();
        family(
            &mut enc,
            "tcp_connections",
            "TCP connections by state.",
            MetricType::Gauge,
            states,
        )?;

        // Services.
        let svc_labels = |v: &ServiceMetrics| -> Labels {
            vec![
                ("service", v.kind.to_string()),
                ("port", v.port.to_string()),
                ("on", v.on.clone().unwrap_or_else(|| "all".to_string())),
            ]
        };
        let per_service = |f: fn(&ServiceMetrics) -> Value| -> Vec<(Labels, Value)> {
            s.services.iter().map(|v| (svc_labels(v), f(v))).collect()
        };
        family(
            &mut enc,
            "service_connections",
            "Connections accepted by the service.",
            MetricType::Counter,
            per_service(|v| Value::Counter(v.connections_total)),
        )?;
        family(
            &mut enc,
            "service_active_connections",
            "Connections of the service open now.",
            MetricType::Gauge,
            per_service(|v| gauge(v.connections_active)),
        )?;
        family(
            &mut enc,
            "service_requests",
            "Requests served by the service.",
            MetricType::Counter,
            per_service(|v| Value::Counter(v.requests_total)),
        )?;
        let bytes = s
            .services
            .iter()
            .flat_map(|v| {
                [("rx", v.rx_bytes), ("tx", v.tx_bytes)].map(|(dir, n)| {
                    let mut l = svc_labels(v);
                    l.push(("direction", dir.to_string()));
                    (l, Value::Counter(n))
                })
            })
            .collect();
        family(
            &mut enc,
            "service_bytes",
            "Payload bytes of the service, by direction.",
            MetricType::Counter,
            bytes,
        )?;

        // Histograms, converted from microseconds to seconds.
        for h in &s.histograms {
            let buckets = histogram_buckets(&h.histogram);
            let count = h.histogram.len();
            let sum = if count == 0 {
                0.0
            } else {
                // hdrhistogram keeps no exact sum; mean × count is exact to its resolution.
                h.histogram.mean() * count as f64 / 1e6
            };
            let mut m = enc.encode_descriptor(h.name, h.help, None, MetricType::Histogram)?;
            m.encode_histogram::<()>(
                sum,
                count,
                &buckets,
                None::<&HashMap<usize, Exemplar<(), f64>>>,
            )?;
        }
        Ok(())
    }
}

/// The snapshot in OpenMetrics 1.0 text (as prometheus-client writes it, ending in `# EOF`).
pub fn encode_openmetrics(snapshot: &Arc<MetricsSnapshot>) -> String {
    let mut registry = Registry::with_prefix("saps");
    registry.register_collector(Box::new(SnapshotCollector(snapshot.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail; an error here would be a bug in the collector.
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// The snapshot in Prometheus text exposition format 0.0.4.
///
/// Differs from OpenMetrics only where 0.0.4 needs it: a counter's `# HELP`/`# TYPE` lines name
/// the `_total` series itself, and there is no `# EOF`.
pub fn encode_prometheus(snapshot: &Arc<MetricsSnapshot>) -> String {
    openmetrics_to_prometheus(&encode_openmetrics(snapshot))
}

fn openmetrics_to_prometheus(om: &str) -> String {
    let mut out = String::with_capacity(om.len() + 256);
    let counters: Vec<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    for line in om.lines() {
        if line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// HTTP server.
// ---------------------------------------------------------------------------------------------

/// Bind `addr` and serve `/metrics` and `/healthz` from `handle` on a new thread until
/// `shutdown` is set. Binds before returning so a busy address is reported at start, with an
/// error that names `telemetry.listen`. Returns the bound address (useful with port 0).
pub fn spawn_telemetry_server(
    addr: SocketAddr,
    handle: MetricsHandle,
    shutdown: Arc<AtomicBool>,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    spawn_telemetry_server_with_control(addr, handle, None, shutdown)
}

/// [`spawn_telemetry_server`] that also serves `GET /connections` (an `ss`-like table of every
/// TCP connection) by asking the data-plane threads through `control`.
pub fn spawn_telemetry_server_with_control(
    addr: SocketAddr,
    handle: MetricsHandle,
    control: Option<crate::control::ControlClient>,
    shutdown: Arc<AtomicBool>,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "telemetry.listen: cannot listen on {addr}: {e}; choose a free address or set [telemetry] enabled = false"
            ),
        )
    })?;
    let local = listener.local_addr()?;
    // Non-blocking accept so the loop notices `shutdown` without a wake-up connection.
    listener.set_nonblocking(true)?;
    let join = thread::Builder::new()
        .name("saps-telemetry".into())
        .spawn(move || serve(listener, handle, control, shutdown))?;
    Ok((local, join))
}

fn serve(
    listener: TcpListener,
    handle: MetricsHandle,
    control: Option<crate::control::ControlClient>,
    shutdown: Arc<AtomicBool>,
) {
    tracing::info!(addr = ?listener.local_addr().ok(), "telemetry server listening");
    while !shutdown.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = handle_connection(stream, &handle, control.as_ref()) {
                    tracing::debug!(%peer, error = %e, "telemetry request failed");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "telemetry accept failed");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    tracing::info!("telemetry server stopped");
}

/// A parsed request: what the router needs and nothing more.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    wants_openmetrics: bool,
}

/// Why a request could not be parsed, with its status code.
#[derive(Debug, PartialEq, Eq)]
enum BadRequest {
    Malformed,
    TooLarge,
    Timeout,
    Closed,
}

fn parse_request(head: &[u8]) -> Result<Request, BadRequest> {
    let text = std::str::from_utf8(head).map_err(|_| BadRequest::Malformed)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or(BadRequest::Malformed)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest::Malformed);
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase());
    if !token(method) || !target.starts_with('/') || !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Err(BadRequest::Malformed);
    }
    let mut wants_openmetrics = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or(BadRequest::Malformed)?;
        if name.eq_ignore_ascii_case("accept") && value.contains("application/openmetrics-text") {
            wants_openmetrics = true;
        }
    }
    let path = target.split('?').next().unwrap_or(target);
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        wants_openmetrics,
    })
}

/// Read up to the end of the request head, within size and time bounds.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, BadRequest> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(BadRequest::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BadRequest::Timeout);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(BadRequest::Closed),
            // A client that half-closes after its request line still gets an answer.
            Ok(0) => return Ok(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(BadRequest::Timeout)
            }
            Err(_) => return Err(BadRequest::Closed),
        }
    }
}

fn handle_connection(
    mut stream: TcpStream,
    handle: &MetricsHandle,
    control: Option<&crate::control::ControlClient>,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let (status, content_type, body, head_only) =
        match read_head(&mut stream).and_then(|h| parse_request(&h)) {
            Err(BadRequest::Closed) => return Ok(()),
            Err(BadRequest::Malformed) => (400, TEXT, "bad request\n".to_string(), false),
            Err(BadRequest::TooLarge) => (431, TEXT, "request too large\n".to_string(), false),
            Err(BadRequest::Timeout) => (408, TEXT, "request timeout\n".to_string(), false),
            Ok(req) => {
                let head_only = req.method == "HEAD";
                if req.method != "GET" && !head_only {
                    (405, TEXT, "only GET and HEAD\n".to_string(), false)
                } else {
                    match req.path.as_str() {
                        "/metrics" => {
                            let snap = handle.snapshot();
                            if req.wants_openmetrics {
                                (200, OPENMETRICS, encode_openmetrics(&snap), head_only)
                            } else {
                                (200, PROMETHEUS, encode_prometheus(&snap), head_only)
                            }
                        }
                        "/connections" => match control {
                            None => (404, TEXT, "not found\n".to_string(), false),
                            Some(c) => match c.connections(100_000, Duration::from_secs(1)) {
                                Ok(rows) => (
                                    200,
                                    TEXT,
                                    crate::control::render_connections(&rows),
                                    head_only,
                                ),
                                Err(e) => (503, TEXT, format!("{e}\n"), head_only),
                            },
                        },
                        "/healthz" => match handle.last_publish_age() {
                            Some(age) if age <= HEALTH_MAX_AGE => {
                                (200, TEXT, "ok\n".to_string(), head_only)
                            }
                            Some(age) => (
                                503,
                                TEXT,
                                format!(
                                    "stale: data plane last published {:.1}s ago\n",
                                    age.as_secs_f64()
                                ),
                                head_only,
                            ),
                            None => (
                                503,
                                TEXT,
                                "starting: data plane has not published yet\n".to_string(),
                                head_only,
                            ),
                        },
                        _ => (
                            404,
                            TEXT,
                            "not found; try /metrics or /healthz\n".to_string(),
                            head_only,
                        ),
                    }
                }
            }
        };
    let mut response = String::with_capacity(body.len() + 160);
    let _ = write!(
        response,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !head_only {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes())?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Lingering close: discard what the client still sends (e.g. the rest of an oversized
    // request) so closing does not turn into a RST that destroys the response in flight.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 64 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// In a Prometheus text scrape, the sum of a metric's samples whose line starts with `name` and whose labels contain every one
/// of `labels` (e.g. `direction="tx"`).
pub fn sample_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample_snapshot() -> MetricsSnapshot {
        let mut stack = StackStats::default();
        stack.drop(DropReason::BadChecksum);
        stack.drop(DropReason::BadChecksum);
        stack.drop(DropReason::BadChecksum);
        stack.eth_rx.add(60);
        stack.tcp.retransmitted_segments = 7;
        let mut http =
            HistogramMetric::new("http_request_duration_seconds", "HTTP request latency.");
        for us in [5, 40, 40, 900, 1500, 120_000, 3_000_000, 59_000_000] {
            http.histogram.saturating_record(us);
        }
        MetricsSnapshot {
            uptime: Duration::from_millis(12_500),
            ports: vec![PortMetrics {
                name: "ext".into(),
                rx_packets: 10,
                rx_bytes: 1234,
                tx_packets: 9,
                tx_bytes: 999,
                tx_ring_capacity: 1024,
                tx_ring_occupancy_packets: 3,
                link_up: true,
                ..Default::default()
            }],
            stack,
            tcp_states: vec![("listen", 4), ("established", 5), ("time_wait", 0)],
            services: vec![ServiceMetrics {
                kind: "http",
                port: 80,
                on: None,
                connections_total: 3,
                connections_active: 1,
                rx_bytes: 300,
                tx_bytes: 4096,
                requests_total: 6,
            }],
            histograms: vec![
                http,
                HistogramMetric::new(
                    "tx_admission_wait_seconds",
                    "Time segments waited for TX admission.",
                ),
            ],
        }
    }

    /// A small checker for the 0.0.4 text format: every sample belongs to the family of the
    /// preceding `# TYPE`, names are `saps_[a-z_]+`, counters end in `_total`, and histogram
    /// buckets are cumulative and end with `le="+Inf"` equal to `_count`.
    fn check_exposition(text: &str) -> BTreeMap<String, String> {
        let name_ok = |n: &str| {
            n.starts_with("saps_")
                && n.len() > 5
                && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        };
        let mut types = BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        let mut buckets: Vec<(String, f64)> = Vec::new();
        let finish = |name: &str, buckets: &mut Vec<(String, f64)>, count: Option<f64>| {
            if let Some(count) = count {
                assert!(!buckets.is_empty(), "{name}: no buckets");
                assert!(
                    buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                    "{name}: buckets not monotonic"
                );
                let (le, last) = buckets.last().unwrap();
                assert_eq!(le, "+Inf", "{name}: last bucket");
                assert_eq!(*last, count, "{name}: +Inf bucket != _count");
            }
            buckets.clear();
        };
        let mut hist_count = None;
        for line in text.lines() {
            assert!(!line.is_empty(), "empty line");
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some((name, _)) = &current {
                    finish(name, &mut buckets, hist_count.take());
                }
                let (name, ty) = rest.split_once(' ').unwrap();
                assert!(name_ok(name), "bad name {name}");
                assert!(["counter", "gauge", "histogram"].contains(&ty), "type {ty}");
                if ty == "counter" {
                    assert!(
                        name.ends_with("_total"),
                        "counter {name} must end in _total"
                    );
                }
                assert!(
                    types.insert(name.to_string(), ty.to_string()).is_none(),
                    "duplicate family {name}"
                );
                current = Some((name.to_string(), ty.to_string()));
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            let name = series.split('{').next().unwrap();
            let (family, ty) = current.as_ref().expect("sample before # TYPE");
            match ty.as_str() {
                "histogram" => {
                    let suffix = name
                        .strip_prefix(family.as_str())
                        .expect("histogram sample name");
                    match suffix {
                        "_bucket" => {
                            let le = series
                                .split("le=\"")
                                .nth(1)
                                .unwrap()
                                .split('"')
                                .next()
                                .unwrap();
                            buckets.push((le.to_string(), value));
                        }
                        "_count" => hist_count = Some(value),
                        "_sum" => assert!(value >= 0.0),
                        other => panic!("histogram suffix {other}"),
                    }
                }
                _ => assert_eq!(name, family, "sample outside its family: {line}"),
            }
        }
        if let Some((name, _)) = &current {
            finish(name, &mut buckets, hist_count.take());
        }
        types
    }

    #[test]
    fn prometheus_text_is_well_formed_and_has_the_expected_series() {
        let snap = Arc::new(sample_snapshot());
        let text = encode_prometheus(&snap);
        let types = check_exposition(&text);
        assert_eq!(types["saps_port_rx_bytes_total"], "counter");
        assert_eq!(types["saps_tcp_connections"], "gauge");
        assert_eq!(types["saps_http_request_duration_seconds"], "histogram");
        for expected in [
            "saps_port_rx_bytes_total{port=\"ext\"} 1234",
            "saps_port_link_up{port=\"ext\"} 1",
            "saps_stack_drops_total{reason=\"bad_checksum\"} 3",
            "saps_stack_drops_total{reason=\"paws\"} 0",
            "saps_stack_rx_bytes_total{protocol=\"ethernet\"} 60",
            "saps_tcp_retransmitted_segments_total 7",
            "saps_tcp_connections{state=\"established\"} 5",
            "saps_service_bytes_total{service=\"http\",port=\"80\",on=\"all\",direction=\"tx\"} 4096",
            "saps_service_requests_total{service=\"http\",port=\"80\",on=\"all\"} 6",
            "saps_http_request_duration_seconds_count 8",
            "saps_http_request_duration_seconds_bucket{le=\"+Inf\"} 8",
            "saps_http_request_duration_seconds_bucket{le=\"0.00001\"} 1",
            "saps_http_request_duration_seconds_bucket{le=\"0.001\"} 4",
            "saps_http_request_duration_seconds_bucket{le=\"10.0\"} 7",
            "saps_tx_admission_wait_seconds_count 0",
            "saps_uptime_seconds 12.5",
        ] {
            assert!(text.lines().any(|l| l == expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"));
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("saps_http_request_duration_seconds_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 62.122525).abs() < 0.1, "sum {sum}");
    }

    #[test]
    fn openmetrics_keeps_eof_and_family_names() {
        let text = encode_openmetrics(&Arc::new(sample_snapshot()));
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE saps_port_rx_bytes counter\n"));
        assert!(text.contains("saps_port_rx_bytes_total{port=\"ext\"} 1234\n"));
    }

    #[test]
    fn empty_snapshot_encodes() {
        let text = encode_prometheus(&Arc::new(MetricsSnapshot::default()));
        check_exposition(&text);
        assert!(text.contains("saps_uptime_seconds 0.0"));
    }

    #[test]
    fn request_parsing() {
        let r = parse_request(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.path, "/metrics");
        assert!(r.wants_openmetrics);
        for bad in [
            &b"\xff\xfe\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
            b"",
        ] {
            assert_eq!(parse_request(bad), Err(BadRequest::Malformed), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn request_parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_request(&bytes);
        }

        #[test]
        fn request_parser_on_request_shaped_text(
            method in "[A-Za-z]{0,8}",
            target in "[ -~]{0,40}",
            headers in "([ -~]{0,30}\r\n){0,4}",
        ) {
            let text = format!("{method} {target} HTTP/1.1\r\n{headers}\r\n");
            let _ = parse_request(text.as_bytes());
        }
    }

    #[test]
    fn publish_if_due_throttles() {
        let (mut publisher, handle) = MetricsPublisher::new();
        let t0 = Instant::now();
        let mut builds = 0;
        let mut build = |up: u64| {
            builds += 1;
            MetricsSnapshot {
                uptime: Duration::from_millis(up),
                ..Default::default()
            }
        };
        assert!(publisher.publish_if_due(t0, || build(1)));
        assert!(!publisher.publish_if_due(t0 + Duration::from_millis(50), || build(2)));
        assert_eq!(handle.snapshot().uptime, Duration::from_millis(1));
        assert!(publisher.publish_if_due(t0 + PUBLISH_INTERVAL, || build(3)));
        assert_eq!(handle.snapshot().uptime, Duration::from_millis(3));
        assert_eq!(builds, 2);
    }

    #[test]
    fn health_follows_publishing() {
        let (publisher, handle) = MetricsPublisher::new();
        assert!(!handle.is_healthy(HEALTH_MAX_AGE));
        assert_eq!(handle.snapshot().ports.len(), 0);
        publisher.publish(sample_snapshot());
        assert!(handle.is_healthy(HEALTH_MAX_AGE));
        assert_eq!(handle.snapshot().ports[0].name, "ext");
        thread::sleep(Duration::from_millis(5));
        assert!(!handle.is_healthy(Duration::from_millis(1)));
    }

    fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {out:?}"));
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    #[test]
    fn live_server_serves_metrics_health_and_survives_garbage() {
        let (publisher, handle) = MetricsPublisher::new();
        let shutdown = Arc::new(AtomicBool::new(false));
        let (addr, join) =
            spawn_telemetry_server("127.0.0.1:0".parse().unwrap(), handle, shutdown.clone())
                .unwrap();

        let (code, body) = http(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(code, 503, "{body}");
        publisher.publish(sample_snapshot());
        let (code, body) = http(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((code, body.as_str()), (200, "ok\n"));

        let (code, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(code, 200);
        check_exposition(&body);
        assert!(body.contains("saps_port_rx_bytes_total{port=\"ext\"} 1234\n"));

        let (code, body) = http(
            addr,
            b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
        );
        assert_eq!(code, 200);
        assert!(body.ends_with("# EOF\n"));

        assert_eq!(http(addr, b"GET /nope HTTP/1.1\r\n\r\n").0, 404);
        assert_eq!(http(addr, b"POST /metrics HTTP/1.1\r\n\r\n").0, 405);
        assert_eq!(http(addr, b"\x00\x01garbage\xff\r\n\r\n").0, 400);
        assert_eq!(http(addr, &[b'A'; MAX_REQUEST_BYTES + 2048]).0, 431);
        // A client that connects and leaves without a word is simply closed.
        drop(TcpStream::connect(addr).unwrap());
        // Still serving after all that.
        let (code, body) = http(addr, b"GET /healthz HTTP/1.0\r\n\r\n");
        assert_eq!((code, body.as_str()), (200, "ok\n"));

        // The port is taken now: a second server reports it naming the config key.
        let err =
            spawn_telemetry_server(addr, MetricsPublisher::new().1, shutdown.clone()).unwrap_err();
        assert!(err.to_string().starts_with("telemetry.listen: "), "{err}");
        assert!(!err.to_string().contains('\n'));

        shutdown.store(true, Ordering::Relaxed);
        join.join().unwrap();
    }
}
