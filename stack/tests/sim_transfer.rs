//! Whole stacks (Ethernet/ARP/IPv4/TCP) transferring data over simulated links.

mod sim_common;

use saps_stack::sim::LinkConfig;
use saps_stack::simhost::{App, BulkSender, Sink};
use saps_stack::time::Duration;
use sim_common::*;

#[test]
fn bulk_transfer_over_a_clean_link_is_byte_exact_and_closes() {
    let mut snd = BulkSender::new(sink_addr(), 1_000_000);
    snd.connections = 1;
    let mut sk = Sink::new(PORT);
    sk.reply_bytes = 300_000;
    let link = LinkConfig {
        rate_bps: Some(100_000_000),
        ..delay_link(5)
    };
    let mut sim = pair(
        1,
        vec![App::BulkSender(snd)],
        vec![App::Sink(sk)],
        link,
        link,
        |_| {},
    );
    let deadline = after(&sim, 60);
    sim.run_while(deadline, |s| !all_done(s));
    assert!(all_done(&sim), "not done at {:?}", sim.now());
    let (s, k) = (&sender(&sim).transfers[0], &sink(&sim).transfers[0]);
    check_stream(s, k).unwrap();
    check_stream(k, s).unwrap();
    let g = goodput_bps(s, k);
    println!("goodput {:.1} Mb/s, done at {:?}", g / 1e6, sim.now());
    // 1 MB over 10 ms RTT at 100 Mb/s: slow start dominates but it must not crawl.
    assert!(g > 20e6, "{g}");
    let deadline = after(&sim, 10);
    sim.run_until(deadline);
    assert!(
        only_closed_or_time_wait(&sim, 0),
        "{}",
        states_summary(&sim, 0)
    );
    assert!(
        only_closed_or_time_wait(&sim, 1),
        "{}",
        states_summary(&sim, 1)
    );
    // After TIME_WAIT (60 s) every slot is freed.
    let deadline = after(&sim, 70);
    sim.run_until(deadline);
    assert_eq!(sim.node(0).iface.tcp_connection_count(), 0);
    assert_eq!(sim.node(1).iface.tcp_connection_count(), 0);
    assert_eq!(
        sim.node(0).unclaimed_events + sim.node(1).unclaimed_events,
        0
    );
    let _ = Duration::ZERO;
}
