//! `saps run`: open the configured ports, build a stack per port, bind the services, start the
//! telemetry thread and the pinned data-plane threads, and stop cleanly on SIGINT/SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use saps_stack::iface::{InterfaceConfig, Ipv4Cidr as StackCidr};
use saps_stack::tcp::congestion::CongestionAlgorithm as StackCc;
use saps_stack::tcp::conn::State;
use saps_stack::wire::ethernet::EthernetAddress;
use saps_stack::wire::ChecksumMode;
use saps_stack::Instant;

use crate::config::{Admission, Backend, Config, CongestionAlgorithm, PortConfig};
use crate::control::ControlClient;
use crate::port::af_packet::{AfPacketConfig, AfPacketPort};
use crate::port::faults::Faults;
use crate::port::line_rate::{LineRate, LineRateConfig};
use crate::port::tap::{TapConfig, TapPort};
use crate::port::Port;
use crate::runtime::{self, Clock, IdlePolicy, PortContext};
use crate::telemetry::{
    self, HistogramMetric, MetricsPublisher, MetricsSnapshot, PortMetrics, ServiceMetrics,
};

/// Open the device behind one configured port, wrapped for line-rate emulation and faults.
pub fn open_port(cfg: &PortConfig) -> Result<Box<dyn Port>, String> {
    let iface = cfg.iface.clone().unwrap_or_default();
    let base: Box<dyn Port> = match cfg.backend {
        Backend::AfPacket => {
            let mut c = AfPacketConfig::new(&iface);
            c.mac = cfg.mac;
            c.tx_frames = (cfg.tx_ring as usize).max(64);
            c.rx_frames = cfg.rx_ring as usize;
            c.gso = cfg.gso;
            Box::new(AfPacketPort::open(&c).map_err(|e| format!("port {}: {e}", cfg.name))?)
        }
        Backend::Tap => {
            let mut c = TapConfig::new(&iface);
            c.mac = cfg.mac;
            c.tx_ring = cfg.tx_ring as usize;
            Box::new(TapPort::open(&c).map_err(|e| format!("port {}: {e}", cfg.name))?)
        }
        Backend::Memory => {
            return Err(format!(
                "port {}: backend \"memory\" is for in-process tests; use \"af_packet\" or \"tap\" with saps run",
                cfg.name
            ))
        }
        #[cfg(feature = "dpdk")]
        Backend::Dpdk => {
            crate::port::dpdk::init_eal(std::slice::from_ref(cfg))
                .map_err(|e| format!("port {}: {e}", cfg.name))?;
            Box::new(
                crate::port::dpdk::DpdkPort::open(cfg)
                    .map_err(|e| format!("port {}: {e}", cfg.name))?,
            )
        }
        #[cfg(not(feature = "dpdk"))]
        Backend::Dpdk => {
            return Err(format!(
                "port {}: built without the dpdk feature; rebuild with --features dpdk",
                cfg.name
            ))
        }
    };
    let base: Box<dyn Port> = match cfg.faults {
        Some(f) if f.is_active() => Box::new(Faults::new(base, f)),
        _ => base,
    };
    Ok(match cfg.line_rate_bps {
        Some(rate_bps) => Box::new(LineRate::new(
            base,
            LineRateConfig {
                rate_bps,
                tx_ring: cfg.tx_ring as usize,
            },
        )),
        None => base,
    })
}

/// The stack configuration for one port.
pub fn interface_config(
    cfg: &Config,
    port: &PortConfig,
    mac: [u8; 6],
    seed: u64,
) -> InterfaceConfig {
    let mut addresses = vec![StackCidr::new(port.ipv4.addr, port.ipv4.prefix_len)];
    addresses.extend(
        port.extra_ipv4
            .iter()
            .map(|c| StackCidr::new(c.addr, c.prefix_len)),
    );
    let mut ic = InterfaceConfig::new(EthernetAddress(mac), addresses[0]);
    ic.addresses = addresses;
    ic.gateway = port.gateway;
    ic.checksum = if port.checksum_offload {
        ChecksumMode::OFFLOAD
    } else if port.gso {
        // The gso path completes every frame's checksums (the kernel does, while it segments):
        // computing them in the stack too would be wasted work. Received frames are still
        // verified.
        ChecksumMode {
            verify_rx: true,
            fill_tx: false,
        }
    } else {
        ChecksumMode::SOFTWARE
    };
    ic.seed = seed;
    ic.syn_backlog = cfg.tcp.syn_backlog as usize;
    ic.accept_backlog = cfg.tcp.accept_backlog as usize;
    ic.syn_cookies = cfg.tcp.syn_cookies;
    let t = &mut ic.tcp;
    t.congestion = match cfg.tcp.congestion {
        CongestionAlgorithm::Cubic => StackCc::Cubic,
        CongestionAlgorithm::NewReno => StackCc::NewReno,
        CongestionAlgorithm::Bbr => StackCc::Bbr,
    };
    t.send_buffer = cfg.tcp.send_buffer;
    t.recv_buffer = cfg.tcp.recv_buffer;
    t.time_wait = cfg.tcp.time_wait.into();
    t.nodelay = cfg.tcp.nodelay;
    t.rto_min = cfg.tcp.rto_min.into();
    t.delayed_ack = cfg.tcp.delayed_ack.into();
    t.sack = cfg.tcp.sack;
    t.checksum = ic.checksum;
    if let Some(idle) = cfg.tcp.keepalive {
        t.keepalive = Some((idle.into(), saps_stack::Duration::from_secs(75), 9));
    }
    ic
}

/// A limit of `u64::MAX` ("none") as 0 for `/metrics`.
fn no_limit_as_zero(v: u64) -> u64 {
    if v == u64::MAX {
        0
    } else {
        v
    }
}

/// A seed for ISNs, cookies and hash keys that differs per run and per port.
fn seed_for(index: usize) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (std::process::id() as u64).rotate_left(32)
        ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Everything published about one data-plane thread's ports.
fn snapshot_of(ports: &[PortContext], uptime: Duration) -> MetricsSnapshot {
    let mut snap = MetricsSnapshot {
        uptime,
        ..MetricsSnapshot::default()
    };
    let mut states = [0u64; State::COUNT];
    let mut http = telemetry::latency_histogram();
    let mut admission_waits = telemetry::latency_histogram();
    for ctx in ports {
        let c = ctx.port.counters();
        let ring = ctx.port.tx_ring();
        let adm = ctx.iface.egress().stats();
        snap.ports.push(PortMetrics {
            name: ctx.name.clone(),
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            rx_drops: c.rx_drops,
            tx_drops: c.tx_drops + ctx.tx_bad_length,
            tx_full_events: c.tx_full,
            tx_offload_frames: c.tx_offload_frames,
            tx_ring_capacity: ring.capacity as u64,
            tx_ring_occupancy_packets: ring.packets as u64,
            tx_ring_occupancy_bytes: ring.bytes,
            link_up: ctx.port.link_up(),
            tx_admissions: adm.admissions,
            tx_admission_hold_backs: adm.hold_backs,
            tx_admission_ring_empty_while_waiting: adm.ring_empty_while_waiting,
            tx_admission_limit_bytes: no_limit_as_zero(adm.limit_bytes),
            tx_admission_limit_packets: no_limit_as_zero(adm.limit_packets),
            tx_admission_flows_waiting: adm.flows_waiting,
        });
        // Admission waits, bucket by bucket (upper bound of each power-of-two bucket).
        let waits = ctx.iface.egress().wait_histogram();
        for (i, &n) in waits.buckets().iter().enumerate() {
            if n > 0 {
                let us = saps_fairness::WaitHistogram::upper_bound_micros(i).clamp(1, 60_000_000);
                admission_waits.saturating_record_n(us, n);
            }
        }
        snap.stack.accumulate(ctx.iface.stats());
        for (total, n) in states.iter_mut().zip(ctx.iface.connection_states()) {
            *total += n;
        }
        for s in ctx.services.infos() {
            snap.services.push(ServiceMetrics {
                kind: s.kind.as_str(),
                port: s.port,
                on: Some(ctx.name.clone()),
                connections_total: s.counters.connections_total,
                connections_active: s.counters.connections_active,
                rx_bytes: s.counters.rx_bytes,
                tx_bytes: s.counters.tx_bytes,
                requests_total: s.counters.requests_total,
            });
        }
        if let Some(h) = ctx.services.http_latency.as_ref() {
            let _ = http.add(h);
        }
    }
    snap.tcp_states = State::ALL
        .iter()
        .map(|s| (s.name(), states[*s as usize]))
        .collect();
    let mut hm = HistogramMetric::new(
        "http_request_duration_seconds",
        "Time from a complete HTTP request head to the last response byte queued.",
    );
    hm.histogram = http;
    snap.histograms.push(hm);
    let mut hm = HistogramMetric::new(
        "tx_admission_wait_seconds",
        "Time a flow with a data segment ready waited for its TX admission turn (one sample per turn, not per segment).",
    );
    hm.histogram = admission_waits;
    snap.histograms.push(hm);
    snap
}

/// Merge per-thread snapshots into one.
fn merge(parts: &[Option<MetricsSnapshot>], uptime: Duration) -> MetricsSnapshot {
    let mut out = MetricsSnapshot {
        uptime,
        ..MetricsSnapshot::default()
    };
    for part in parts.iter().flatten() {
        out.ports.extend(part.ports.iter().cloned());
        out.services.extend(part.services.iter().cloned());
        out.stack.accumulate(&part.stack);
        if out.tcp_states.is_empty() {
            out.tcp_states = part.tcp_states.clone();
        } else {
            for (a, b) in out.tcp_states.iter_mut().zip(part.tcp_states.iter()) {
                a.1 += b.1;
            }
        }
        for h in &part.histograms {
            match out.histograms.iter_mut().find(|x| x.name == h.name) {
                Some(x) => {
                    let _ = x.histogram.add(&h.histogram);
                }
                None => out.histograms.push(h.clone()),
            }
        }
    }
    out
}

/// Run the appliance until SIGINT/SIGTERM. Errors are one line.
pub fn run(cfg: Config) -> Result<(), String> {
    cfg.check_environment().map_err(|e| e.to_string())?;
    let shutdown = Arc::new(AtomicBool::new(false));
    runtime::shutdown_on_signals(shutdown.clone()).map_err(|e| format!("signal handlers: {e}"))?;

    // The DPDK EAL is process-wide: start it once with every dpdk port's device and arguments.
    #[cfg(feature = "dpdk")]
    crate::port::dpdk::init_eal(&cfg.ports)?;

    let clock = Clock::start();
    let now = clock.now();
    let mut contexts = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let port = open_port(p)?;
        let mac = port.mac();
        let services: Vec<_> = cfg
            .services
            .iter()
            .filter(|s| s.on.as_deref().is_none_or(|on| on == p.name))
            .map(|s| (s.kind, s.port))
            .collect();
        let ic = interface_config(&cfg, p, mac, seed_for(i));
        let policy = match p.admission {
            Admission::Off => saps_fairness::Policy::Off,
            Admission::Paper => saps_fairness::Policy::Paper,
            Admission::Adaptive => saps_fairness::Policy::Adaptive,
        };
        let adm =
            runtime::admission_config(port.as_ref(), policy, p.line_rate_bps, p.admission_latency);
        let mut ctx = PortContext::with_admission(p.name.clone(), port, ic, adm, &services, now)?;
        ctx.rx_burst = p.rx_burst as usize;
        tracing::info!(
            port = %p.name,
            backend = p.backend.as_str(),
            iface = p.iface.as_deref().unwrap_or(""),
            ipv4 = %p.ipv4,
            mac = %EthernetAddress(mac),
            line_rate_bps = p.line_rate_bps.unwrap_or(0),
            "port up"
        );
        contexts.push(ctx);
    }

    // Distribute ports over the data-plane threads (one per configured core, or one unpinned).
    let cores: Vec<Option<usize>> = match &cfg.cores {
        Some(c) if !c.is_empty() => c.iter().map(|&c| Some(c)).collect(),
        _ => vec![None],
    };
    let threads = cores.len().min(contexts.len()).max(1);
    let mut control = ControlClient::default();
    let command_rx: Vec<_> = (0..threads)
        .map(|_| crate::control::channel(&mut control))
        .collect();

    let (publisher, handle) = MetricsPublisher::new();
    let telemetry_thread = if cfg.telemetry.enabled {
        let (addr, join) = telemetry::spawn_telemetry_server_with_control(
            cfg.telemetry.listen,
            handle,
            Some(control),
            shutdown.clone(),
        )
        .map_err(|e| e.to_string())?;
        tracing::info!(%addr, "telemetry: /metrics and /healthz");
        Some(join)
    } else {
        None
    };

    let mut groups: Vec<Vec<PortContext>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, ctx) in contexts.into_iter().enumerate() {
        groups[i % threads].push(ctx);
    }
    let parts: Arc<Mutex<Vec<Option<MetricsSnapshot>>>> = Arc::new(Mutex::new(vec![None; threads]));
    let publisher = Arc::new(publisher);
    let started = std::time::Instant::now();
    let idle = if cfg.cores.is_some() {
        IdlePolicy::Busy
    } else {
        IdlePolicy::Adaptive
    };
    let mut joins = Vec::new();
    for ((t, mut group), commands) in groups.into_iter().enumerate().zip(command_rx) {
        let core = cores[t];
        let shutdown = shutdown.clone();
        let parts = parts.clone();
        let publisher = publisher.clone();
        let join = std::thread::Builder::new()
            .name(format!("saps-dp{t}"))
            .spawn(move || {
                if let Some(id) = core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                        tracing::warn!(core = id, "could not pin the data-plane thread");
                    }
                }
                let mut on_tick = |ports: &[PortContext], _now: Instant| {
                    let snap = snapshot_of(ports, started.elapsed());
                    let Ok(mut all) = parts.lock() else {
                        return;
                    };
                    all[t] = Some(snap);
                    publisher.publish(merge(&all, started.elapsed()));
                };
                runtime::run_loop(
                    &mut group,
                    clock,
                    &shutdown,
                    idle,
                    Some(&commands),
                    &mut on_tick,
                );
            })
            .map_err(|e| format!("spawning a data-plane thread: {e}"))?;
        joins.push(join);
    }
    tracing::info!(threads, "data plane running; SIGINT or SIGTERM stops it");
    for j in joins {
        if j.join().is_err() {
            shutdown.store(true, Ordering::Relaxed);
            return Err("a data-plane thread panicked".into());
        }
    }
    shutdown.store(true, Ordering::Relaxed);
    if let Some(j) = telemetry_thread {
        let _ = j.join();
    }
    tracing::info!("stopped");
    Ok(())
}
