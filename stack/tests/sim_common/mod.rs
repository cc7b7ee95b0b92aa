//! Shared setup of the whole-stack simulation tests: two hosts on one link.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use saps_stack::iface::InterfaceConfig;
use saps_stack::sim::{LinkConfig, Simulator};
use saps_stack::simhost::{host_config, App, BulkSender, SimHost, Sink, Transfer};
use saps_stack::stats::TcpStats;
use saps_stack::tcp::TcpConfig;
use saps_stack::time::{Duration, Instant};

/// Address of host A (the client side).
pub const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Address of host B (the server side).
pub const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Port B's sink listens on.
pub const PORT: u16 = 5001;

/// A simulation of host A (index 0) and host B (index 1) joined by one link (index 0).
pub fn pair(
    seed: u64,
    a_apps: Vec<App>,
    b_apps: Vec<App>,
    forward: LinkConfig,
    backward: LinkConfig,
    tweak: impl Fn(&mut InterfaceConfig),
) -> Simulator<SimHost> {
    let mut sim = Simulator::new(seed);
    let mut ca = host_config(1, A_IP);
    let mut cb = host_config(2, B_IP);
    ca.seed ^= seed;
    cb.seed ^= seed.rotate_left(17);
    tweak(&mut ca);
    tweak(&mut cb);
    let a = sim.add_node(SimHost::new(ca, a_apps));
    let b = sim.add_node(SimHost::new(cb, b_apps));
    sim.connect(a, b, forward, backward);
    sim
}

/// A's bulk sender to B's sink.
pub fn sender(sim: &Simulator<SimHost>) -> &BulkSender {
    match &sim.node(0).apps[0] {
        App::BulkSender(b) => b,
        _ => panic!("host A runs no BulkSender"),
    }
}

/// B's sink.
pub fn sink(sim: &Simulator<SimHost>) -> &Sink {
    match &sim.node(1).apps[0] {
        App::Sink(s) => s,
        _ => panic!("host B runs no Sink"),
    }
}

/// The remote address of B's sink.
pub fn sink_addr() -> SocketAddrV4 {
    SocketAddrV4::new(B_IP, PORT)
}

/// Whether every transfer on both sides is complete (A's connections all opened and accepted).
pub fn all_done(sim: &Simulator<SimHost>) -> bool {
    let s = sender(sim);
    let k = sink(sim);
    s.all_complete()
        && k.transfers.len() == s.transfers.len()
        && k.transfers.iter().all(Transfer::complete)
}

/// States that are allowed once an application has closed everything.
pub fn only_closed_or_time_wait(sim: &Simulator<SimHost>, node: usize) -> bool {
    sim.node(node).only_closed_or_time_wait()
}

/// A readable summary of the nonzero connection-state counters of a node.
pub fn states_summary(sim: &Simulator<SimHost>, node: usize) -> String {
    sim.node(node).states_summary()
}

/// Checks one direction: the receiver got exactly `len` bytes of `sender_t`'s stream.
pub fn check_stream(from: &Transfer, to: &Transfer) -> Result<(), String> {
    from.check_delivered_to(to)
}

/// Goodput in bit/s of the bytes `to` received, from `from`'s connect to `to`'s FIN.
pub fn goodput_bps(from: &Transfer, to: &Transfer) -> f64 {
    let end = to.finished.expect("transfer finished");
    let secs = end.saturating_since(from.started).as_secs_f64();
    to.received as f64 * 8.0 / secs
}

/// A link with `delay` one way and nothing else.
pub fn delay_link(ms: u64) -> LinkConfig {
    LinkConfig::with_delay(Duration::from_millis(ms))
}

/// A deadline `secs` simulated seconds after now.
pub fn after(sim: &Simulator<SimHost>, secs: u64) -> Instant {
    Instant::from_micros(sim.now().total_micros() + secs * 1_000_000)
}

/// One bulk transfer of `bytes` from A to B with `tcp` on both ends, over `forward` and a clean
/// return path of 10 ms at `rate_bps`: the goodput (bit/s) and the sender's TCP counters. The
/// transfer must complete byte-exact within an hour of simulated time.
pub fn bulk_goodput(
    seed: u64,
    tcp: TcpConfig,
    forward: LinkConfig,
    rate_bps: u64,
    bytes: u64,
) -> (f64, TcpStats) {
    let backward = LinkConfig {
        rate_bps: Some(rate_bps),
        queue_limit_packets: 1000,
        ..delay_link(10)
    };
    let snd = BulkSender::new(sink_addr(), bytes);
    let mut sim = pair(
        seed,
        vec![App::BulkSender(snd)],
        vec![App::Sink(Sink::new(PORT))],
        forward,
        backward,
        |c| c.tcp = tcp.clone(),
    );
    let deadline = after(&sim, 3_600);
    sim.run_while(deadline, |s| !all_done(s));
    assert!(all_done(&sim), "seed {seed} {tcp:?}: not done");
    let (s, k) = (&sender(&sim).transfers[0], &sink(&sim).transfers[0]);
    check_stream(s, k).unwrap();
    (goodput_bps(s, k), sim.node(0).iface.stats().tcp.clone())
}
