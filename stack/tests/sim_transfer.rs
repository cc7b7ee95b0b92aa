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

/// Regression: a connection opened from inside `handle_frame` to a neighbour whose MAC is not
/// known yet must send its ARP request at once. The request used to be queued during
/// `poll_transmit` after the ready-frame check, so `poll_transmit` returned `None` and the
/// handshake waited for the 1 s SYN retransmission.
#[test]
fn first_syn_to_an_unresolved_neighbour_does_not_wait_for_the_rto() {
    use saps_stack::simhost::{Acceptor, Opener};
    let link = LinkConfig::with_delay(Duration::from_micros(50));
    let mut sim = pair(
        5,
        vec![App::Opener(Opener::new(B_IP, PORT, 1))],
        vec![App::Acceptor(Acceptor::new(PORT, 1))],
        link,
        link,
        |_| {},
    );
    sim.run_until(saps_stack::time::Instant::from_millis(10));
    let App::Opener(o) = &sim.node(0).apps[0] else {
        unreachable!()
    };
    assert_eq!(o.established, 1);
    // Gratuitous ARP 50 us, ARP request/reply 100 us, SYN/SYN-ACK 100 us.
    assert!(o.last_established.unwrap() <= saps_stack::time::Instant::from_micros(300));
}

/// Regression: more connections to one unresolved next hop than it has ARP waiting slots (16)
/// made `poll_transmit` loop forever (the 17th SYN was re-queued and popped again endlessly).
#[test]
fn many_connects_before_arp_resolves_do_not_hang_poll_transmit() {
    let mut snd = BulkSender::new(sink_addr(), 1_000);
    snd.connections = 100;
    let mut sim = pair(
        3,
        vec![App::BulkSender(snd)],
        vec![App::Sink(Sink::new(PORT))],
        delay_link(1),
        delay_link(1),
        |_| {},
    );
    let deadline = after(&sim, 30);
    sim.run_while(deadline, |s| !all_done(s));
    assert!(all_done(&sim));
    // Nothing waited for a SYN retransmission timeout.
    assert!(
        sim.now() < saps_stack::time::Instant::from_millis(500),
        "{:?}",
        sim.now()
    );
}

/// Regression (harness): a corrupted ARP reply (sender MAC with a flipped bit) used to poison the
/// client's ARP cache; every later frame went to a MAC nobody has and the connection died after
/// 100 s of retransmissions. Hosts now drop corrupted ARP frames like an Ethernet FCS would.
/// Found by `sim_props` with this seed and links.
#[test]
fn corrupted_arp_reply_does_not_poison_the_cache() {
    let fwd = LinkConfig {
        delay: Duration::from_micros(9226),
        jitter: Duration::from_micros(966),
        rate_bps: Some(1_000_000),
        queue_limit_packets: 4,
        loss: 0.011360720520318605,
        reorder: 0.028901205436025725,
        reorder_delay: Duration::ZERO,
        duplicate: 0.0325879141836552,
        corrupt: 0.0011021384900792195,
    };
    let bwd = LinkConfig {
        delay: Duration::ZERO,
        jitter: Duration::from_micros(1),
        rate_bps: None,
        queue_limit_packets: 4,
        loss: 0.029522659999910866,
        reorder: 0.042107692123332714,
        reorder_delay: Duration::ZERO,
        duplicate: 0.01921470217323784,
        corrupt: 0.007176789850395361,
    };
    let mut sim = pair(
        9560183728026970210,
        vec![App::BulkSender(BulkSender::new(sink_addr(), 0))],
        vec![App::Sink(Sink::new(PORT))],
        fwd,
        bwd,
        |_| {},
    );
    let deadline = after(&sim, 200);
    sim.run_while(deadline, |s| !all_done(s));
    assert!(all_done(&sim), "not done at {:?}", sim.now());
    assert_eq!(sim.node(0).arp_check_drops, 1);
    assert!(sim.now() < saps_stack::time::Instant::from_millis(5_000));
}
