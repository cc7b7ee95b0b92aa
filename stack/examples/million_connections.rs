//! Holds N (default 1,000,000) established TCP connections between two whole stacks in the
//! deterministic simulation and prints memory per connection and peak RSS.
//!
//! ```text
//! cargo run --release -p saps-stack --example million_connections -- [N]
//! ```
//!
//! Memory comes from /proc/self/status (Linux): VmRSS before and after, VmHWM for the peak. Both
//! ends of every connection live in this one process, so the per-connection figure is printed per
//! end (what the appliance, which holds one end, pays) as well as per pair.

use std::time::Instant as WallClock;

use saps_stack::sim::{LinkConfig, Simulator};
use saps_stack::simhost::{host_config, Acceptor, App, Opener, SimHost};
use saps_stack::tcp::Connection;
use saps_stack::tcp::State;
use saps_stack::time::{Duration, Instant};

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let a_ip = std::net::Ipv4Addr::new(10, 0, 0, 1);
    let b_ip = std::net::Ipv4Addr::new(10, 0, 0, 2);
    let port = 10_000;

    let rss0 = status_kib("VmRSS:").unwrap_or(0);
    let wall = WallClock::now();
    let opener = Opener::new(b_ip, port, n);
    let ports = opener.ports_needed();
    let mut sim: Simulator<SimHost> = Simulator::new(1);
    let mut ca = host_config(1, a_ip);
    let mut cb = host_config(2, b_ip);
    ca.max_connections = n.max(1 << 20);
    cb.max_connections = n.max(1 << 20);
    let a = sim.add_node(SimHost::new(ca, vec![App::Opener(opener)]));
    let b = sim.add_node(SimHost::new(
        cb,
        vec![App::Acceptor(Acceptor::new(port, ports))],
    ));
    let link = LinkConfig::with_delay(Duration::from_micros(50));
    sim.connect(a, b, link, link);

    let counts = |s: &Simulator<SimHost>| {
        let (App::Opener(o), App::Acceptor(acc)) = (&s.node(a).apps[0], &s.node(b).apps[0]) else {
            unreachable!()
        };
        (
            o.established,
            acc.accepted,
            o.failed + acc.closed,
            o.connect_errors,
        )
    };
    let mut next_report = n / 10;
    let deadline = Instant::from_millis(3_600_000);
    sim.run_while(deadline, |s| {
        let (o, acc, failed, errs) = counts(s);
        if o >= next_report && next_report > 0 {
            eprintln!(
                "  {o} established ({acc} accepted, {failed} failed, {errs} connect errors) after {:.1} s wall, {:?} simulated",
                wall.elapsed().as_secs_f64(),
                s.now()
            );
            next_report += n / 10;
        }
        (o < n || acc < n) && errs < 16
    });
    let setup = wall.elapsed();
    // Idle for a simulated second: no timers should be running for idle connections.
    let idle_from = sim.now();
    sim.run_until(Instant::from_micros(idle_from.total_micros() + 1_000_000));
    let (o, acc, failed, errs) = counts(&sim);
    let est_a = sim.node(a).iface.connection_states()[State::Established as usize];
    let est_b = sim.node(b).iface.connection_states()[State::Established as usize];
    let rss1 = status_kib("VmRSS:").unwrap_or(0);
    let hwm = status_kib("VmHWM:").unwrap_or(0);
    println!("connections requested:        {n}");
    println!("established (opener/acceptor): {o} / {acc}; failed {failed}; connect errors {errs}");
    println!("ESTABLISHED in the tables:    A {est_a}, B {est_b}");
    println!(
        "time to establish:            {:.2} s wall ({:.0} connections/s), {:?} simulated",
        setup.as_secs_f64(),
        o as f64 / setup.as_secs_f64(),
        idle_from
    );
    println!(
        "RSS:                          {:.1} MiB before, {:.1} MiB after, peak {:.1} MiB",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let per_pair = (rss1.saturating_sub(rss0) * 1024) as f64 / o.max(1) as f64;
    println!(
        "bytes per connection (RSS):   {:.0} per pair, {:.0} per end",
        per_pair,
        per_pair / 2.0
    );
    println!(
        "size_of::<Connection>():      {} B",
        std::mem::size_of::<Connection>()
    );
    println!(
        "within 2 GiB peak:            {}",
        if hwm <= 2 * 1024 * 1024 { "yes" } else { "NO" }
    );
}
