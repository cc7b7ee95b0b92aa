//! Property tests of whole stacks in the deterministic simulation: random transfer sizes in both
//! directions over links with random delay, loss, reordering, duplication, corruption, rate and
//! queue limits. Every transfer must complete byte-exact, every connection must end in CLOSED or
//! TIME_WAIT on both sides, and nothing may panic.

mod sim_common;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use saps_stack::iface::InterfaceConfig;
use saps_stack::sim::{Direction, LinkConfig};
use saps_stack::simhost::{App, BulkSender, Echo, Sink};
use saps_stack::tcp::congestion::CongestionAlgorithm;
use saps_stack::time::Duration;
use sim_common::*;

/// `cases` cases from a fixed RNG seed, so CI runs the same cases every time (the simulation is
/// deterministic too). `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override both, to explore.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x5a95_0001);
    }
    c
}

fn link() -> impl Strategy<Value = LinkConfig> {
    (
        (0u64..=20_000, 0u64..=2_000),
        prop_oneof![
            1 => Just(None),
            3 => (1_000_000u64..=200_000_000).prop_map(Some),
        ],
        4usize..=1000,
        (0.0f64..0.05, 0.0f64..0.05, 0u64..=5_000),
        (0.0f64..0.05, 0.0f64..0.01),
    )
        .prop_map(
            |((delay, jitter), rate_bps, queue, (loss, reorder, rdelay), (duplicate, corrupt))| {
                LinkConfig {
                    delay: Duration::from_micros(delay),
                    jitter: Duration::from_micros(jitter),
                    rate_bps,
                    queue_limit_packets: queue,
                    loss,
                    reorder,
                    reorder_delay: Duration::from_micros(rdelay),
                    duplicate,
                    corrupt,
                }
            },
        )
}

/// The congestion control and SACK setting both ends run.
#[derive(Copy, Clone, Debug)]
struct TcpVariant {
    congestion: CongestionAlgorithm,
    sack: bool,
}

impl TcpVariant {
    fn apply(self, c: &mut InterfaceConfig) {
        c.tcp.congestion = self.congestion;
        c.tcp.sack = self.sack;
    }
}

/// Every congestion control (BBR paces and keeps per-segment records: different code paths),
/// with SACK mostly on.
fn tcp_variant() -> impl Strategy<Value = TcpVariant> {
    (
        prop_oneof![
            Just(CongestionAlgorithm::Cubic),
            Just(CongestionAlgorithm::NewReno),
            Just(CongestionAlgorithm::Bbr),
        ],
        prop_oneof![3 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(congestion, sack)| TcpVariant { congestion, sack })
}

/// Runs one A -> B transfer of `up` bytes with `down` bytes back on the same connection and
/// checks everything the module promises.
fn transfer(
    seed: u64,
    up: u64,
    down: u64,
    fwd: LinkConfig,
    bwd: LinkConfig,
    tcp: TcpVariant,
) -> Result<(), TestCaseError> {
    let snd = BulkSender::new(sink_addr(), up);
    let mut sk = Sink::new(PORT);
    sk.reply_bytes = down;
    let mut sim = pair(
        seed,
        vec![App::BulkSender(snd)],
        vec![App::Sink(sk)],
        fwd,
        bwd,
        |c| tcp.apply(c),
    );
    let deadline = after(&sim, 1_800);
    sim.run_while(deadline, |s| !all_done(s));
    let f = *sim.link_stats(0, Direction::Forward);
    prop_assert!(
        all_done(&sim),
        "not done at {:?}: sender {:?} sink {:?} link {:?}",
        sim.now(),
        sender(&sim).transfers,
        sink(&sim).transfers,
        f
    );
    prop_assert_eq!(sink(&sim).transfers.len(), 1);
    let (s, k) = (&sender(&sim).transfers[0], &sink(&sim).transfers[0]);
    prop_assert!(
        s.error.is_none() && k.error.is_none(),
        "{:?} {:?}",
        s.error,
        k.error
    );
    prop_assert!(
        s.closed.is_none() && k.closed.is_none(),
        "{:?} {:?}",
        s.closed,
        k.closed
    );
    check_stream(s, k).map_err(|e| TestCaseError::fail(format!("A->B: {e}")))?;
    check_stream(k, s).map_err(|e| TestCaseError::fail(format!("B->A: {e}")))?;
    // The closing handshake finishes (lost FINs and ACKs are retransmitted).
    let deadline = after(&sim, 300);
    sim.run_while(deadline, |s| {
        !(only_closed_or_time_wait(s, 0) && only_closed_or_time_wait(s, 1))
    });
    prop_assert!(
        only_closed_or_time_wait(&sim, 0) && only_closed_or_time_wait(&sim, 1),
        "A: {} B: {}",
        states_summary(&sim, 0),
        states_summary(&sim, 1)
    );
    // And after TIME_WAIT every slot is freed.
    let deadline = after(&sim, 61);
    sim.run_until(deadline);
    prop_assert_eq!(sim.node(0).iface.tcp_connection_count(), 0);
    prop_assert_eq!(sim.node(1).iface.tcp_connection_count(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn random_transfers_over_random_faults_complete_byte_exact(
        seed in any::<u64>(),
        up in prop_oneof![1 => Just(0u64), 1 => 0u64..10_000, 3 => 0u64..2_000_000],
        down in prop_oneof![2 => Just(0u64), 1 => 0u64..10_000, 2 => 0u64..2_000_000],
        fwd in link(),
        bwd in link(),
        tcp in tcp_variant(),
    ) {
        transfer(seed, up, down, fwd, bwd, tcp)?;
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// Echo: A's bytes come back unchanged through B's echo server over a lossy link.
    #[test]
    fn echo_over_random_faults_returns_every_byte(
        seed in any::<u64>(),
        up in 0u64..500_000,
        fwd in link(),
        bwd in link(),
    ) {
        let mut snd = BulkSender::new(sink_addr(), up);
        snd.expect_echo = true;
        let mut sim = pair(seed, vec![App::BulkSender(snd)], vec![App::Echo(Echo::new(PORT))], fwd, bwd, |_| {});
        let deadline = after(&sim, 1_800);
        sim.run_while(deadline, |s| !sender(s).all_complete());
        let s = &sender(&sim).transfers[0];
        prop_assert!(s.complete(), "{:?}", s);
        prop_assert_eq!(s.received, up);
        prop_assert_eq!(s.mismatches, 0);
        prop_assert_eq!(s.hash, saps_stack::simhost::stream_hash(s.send_key(), up));
        let deadline = after(&sim, 300);
        sim.run_until(deadline);
        prop_assert!(only_closed_or_time_wait(&sim, 0) && only_closed_or_time_wait(&sim, 1),
            "A: {} B: {}", states_summary(&sim, 0), states_summary(&sim, 1));
    }
}

/// Many concurrent connections between two hosts all complete byte-exact.
#[test]
fn two_hundred_concurrent_connections_complete() {
    let mut snd = BulkSender::new(sink_addr(), 40_000);
    snd.connections = 200;
    let mut sk = Sink::new(PORT);
    sk.reply_bytes = 5_000;
    let l = LinkConfig {
        rate_bps: Some(100_000_000),
        queue_limit_packets: 500,
        loss: 0.01,
        reorder: 0.01,
        duplicate: 0.005,
        corrupt: 0.002,
        ..delay_link(5)
    };
    let mut sim = pair(
        77,
        vec![App::BulkSender(snd)],
        vec![App::Sink(sk)],
        l,
        l,
        |_| {},
    );
    let deadline = after(&sim, 600);
    sim.run_while(deadline, |s| !all_done(s));
    assert!(all_done(&sim), "not done at {:?}", sim.now());
    let s = sender(&sim);
    let k = sink(&sim);
    assert_eq!(s.transfers.len(), 200);
    assert_eq!(k.transfers.len(), 200);
    for kt in &k.transfers {
        let st = s
            .transfers
            .iter()
            .find(|t| t.local == kt.remote)
            .expect("sink's peer is one of A's connections");
        check_stream(st, kt).unwrap();
        check_stream(kt, st).unwrap();
    }
    println!("200 connections done at {:?}", sim.now());
    let deadline = after(&sim, 300);
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
}

proptest! {
    #![proptest_config(config(16))]

    /// Several concurrent connections, each carrying data both ways, over random faults.
    #[test]
    fn concurrent_connections_over_random_faults_complete(
        seed in any::<u64>(),
        conns in 1usize..30,
        up in 0u64..100_000,
        down in 0u64..50_000,
        fwd in link(),
        bwd in link(),
        tcp in tcp_variant(),
    ) {
        let mut snd = BulkSender::new(sink_addr(), up);
        snd.connections = conns;
        let mut sk = Sink::new(PORT);
        sk.reply_bytes = down;
        let mut sim = pair(seed, vec![App::BulkSender(snd)], vec![App::Sink(sk)], fwd, bwd, |c| tcp.apply(c));
        let deadline = after(&sim, 1_800);
        sim.run_while(deadline, |s| !all_done(s));
        prop_assert!(all_done(&sim), "not done at {:?}", sim.now());
        let (s, k) = (sender(&sim), sink(&sim));
        prop_assert_eq!(k.transfers.len(), conns);
        for kt in &k.transfers {
            let st = s.transfers.iter().find(|t| t.local == kt.remote).expect("known peer");
            check_stream(st, kt).map_err(|e| TestCaseError::fail(format!("A->B: {e}")))?;
            check_stream(kt, st).map_err(|e| TestCaseError::fail(format!("B->A: {e}")))?;
        }
        let deadline = after(&sim, 300);
        sim.run_until(deadline);
        prop_assert!(only_closed_or_time_wait(&sim, 0) && only_closed_or_time_wait(&sim, 1),
            "A: {} B: {}", states_summary(&sim, 0), states_summary(&sim, 1));
    }
}

/// Sixty connections opened in one burst through 4-frame queues under 5% loss, reordering and
/// duplication, over 100 seeds: every one connects and completes. The burst overflows the next
/// hop's ARP hold queue (16 frames) before the first reply, and every SYN timeout re-probes ARP,
/// so SYN retries meet full queues again; they must not lose until the connect gives up.
#[test]
fn sixty_connections_opened_in_one_burst_through_tiny_queues_all_complete() {
    let mut syn_or_data_rtos = 0;
    for seed in 0..100 {
        let mut snd = BulkSender::new(sink_addr(), 20_000);
        snd.connections = 60;
        let mut sk = Sink::new(PORT);
        sk.reply_bytes = 2_000;
        let l = LinkConfig {
            queue_limit_packets: 4,
            loss: 0.05,
            reorder: 0.02,
            reorder_delay: Duration::from_micros(3_000),
            duplicate: 0.02,
            ..delay_link(2)
        };
        let mut sim = pair(
            seed,
            vec![App::BulkSender(snd)],
            vec![App::Sink(sk)],
            l,
            l,
            |_| {},
        );
        let deadline = after(&sim, 600);
        sim.run_while(deadline, |s| !all_done(s));
        let errors: Vec<_> = sender(&sim)
            .transfers
            .iter()
            .filter_map(|t| t.error)
            .collect();
        assert!(
            all_done(&sim),
            "seed {seed}: not done at {:?}, errors {errors:?}, A: {}",
            sim.now(),
            states_summary(&sim, 0)
        );
        syn_or_data_rtos += sim.node(0).iface.stats().tcp.rto_expiries;
    }
    // The faults are heavy enough that retries happen at all.
    assert!(syn_or_data_rtos > 100, "{syn_or_data_rtos} RTOs");
}
