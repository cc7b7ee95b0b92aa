//! SACK's benefit, measured end to end: one bulk flow over a 100 Mb/s link with 20 ms RTT and
//! 1% random loss on the data direction, with SACK on both ends versus off on both ends, over the
//! same seeds.

mod sim_common;

use saps_stack::sim::LinkConfig;
use saps_stack::simhost::{App, BulkSender, Sink};
use saps_stack::stats::TcpStats;
use saps_stack::tcp::TcpConfig;
use sim_common::*;

const RATE: u64 = 100_000_000;
const BYTES: u64 = 20_000_000;

/// Goodput (bit/s) of one 20 MB transfer and the sender's TCP counters.
fn run(seed: u64, sack: bool) -> (f64, TcpStats) {
    let fwd = LinkConfig {
        rate_bps: Some(RATE),
        queue_limit_packets: 1000,
        loss: 0.01,
        ..delay_link(10)
    };
    run_on(seed, sack, fwd)
}

/// Like [`run`] over a given data-direction link.
fn run_on(seed: u64, sack: bool, fwd: LinkConfig) -> (f64, TcpStats) {
    run_with(
        seed,
        TcpConfig {
            sack,
            ..TcpConfig::default()
        },
        fwd,
    )
}

/// One 20 MB transfer with the given TCP configuration on both ends.
fn run_with(seed: u64, tcp: TcpConfig, fwd: LinkConfig) -> (f64, TcpStats) {
    let bwd = LinkConfig {
        rate_bps: Some(RATE),
        queue_limit_packets: 1000,
        ..delay_link(10)
    };
    let snd = BulkSender::new(sink_addr(), BYTES);
    let mut sim = pair(
        seed,
        vec![App::BulkSender(snd)],
        vec![App::Sink(Sink::new(PORT))],
        fwd,
        bwd,
        |c| c.tcp = tcp.clone(),
    );
    let deadline = after(&sim, 3_600);
    sim.run_while(deadline, |s| !all_done(s));
    assert!(all_done(&sim), "seed {seed} {tcp:?}: not done");
    let (s, k) = (&sender(&sim).transfers[0], &sink(&sim).transfers[0]);
    check_stream(s, k).unwrap();
    if std::env::var("DEBUG_DROPS").is_ok() {
        for n in 0..2 {
            let st = sim.node(n).iface.stats();
            println!("node {n}: drops {:?} tcp {:?}", st.drops, st.tcp);
        }
    }
    (goodput_bps(s, k), sim.node(0).iface.stats().tcp.clone())
}

#[test]
fn sack_beats_no_sack_at_one_percent_loss() {
    let seeds = [1u64, 2, 3, 4, 5, 6];
    let mut with = 0.0;
    let mut without = 0.0;
    for &seed in &seeds {
        let (g1, r1) = run(seed, true);
        let (g0, r0) = run(seed, false);
        println!(
            "seed {seed}: sack {:.2} Mb/s (rexmit {} rto {} fast {} sack-rec {}), \
             no sack {:.2} Mb/s (rexmit {} rto {} fast {}), ratio {:.2}",
            g1 / 1e6,
            r1.retransmitted_segments,
            r1.rto_expiries,
            r1.fast_recoveries,
            r1.sack_recoveries,
            g0 / 1e6,
            r0.retransmitted_segments,
            r0.rto_expiries,
            r0.fast_recoveries,
            g1 / g0
        );
        assert!(
            r1.sack_recoveries > 0 && r1.fast_recoveries == 0,
            "SACK in use"
        );
        assert!(
            r0.sack_recoveries == 0 && r0.fast_recoveries > 0,
            "SACK off"
        );
        with += g1;
        without += g0;
    }
    with /= seeds.len() as f64;
    without /= seeds.len() as f64;
    let ratio = with / without;
    println!(
        "mean over {} seeds: sack {:.2} Mb/s ({:.1}% of link), no sack {:.2} Mb/s ({:.1}% of link), ratio {:.2}",
        seeds.len(),
        with / 1e6,
        100.0 * with / RATE as f64,
        without / 1e6,
        100.0 * without / RATE as f64,
        ratio
    );
    // Measured: about 1.18x, not the 3x one might hope for. At 1% random loss and 20 ms RTT the
    // window is ~15-20 segments, so two losses in one window are rare and NewReno's one-hole-
    // per-RTT recovery seldom costs an RTO; both variants are bound by the congestion response
    // to the loss rate (~10 Mb/s, the Mathis et al. regime), not by recovery. Assert what is
    // robustly true for these deterministic seeds.
    assert!(ratio > 1.1, "SACK/no-SACK goodput ratio {ratio:.2}");
    assert!(with < RATE as f64 && without > 1e6);
}

/// Where SACK matters more: bursts of drops in one window. A 30-packet drop-tail queue (BDP is
/// ~170 packets) overflows at the end of every slow start and every CUBIC probe, dropping many
/// segments of one window; NewReno repairs one hole per RTT, SACK all of them in one.
#[test]
fn sack_vs_no_sack_with_burst_drops_at_a_small_queue() {
    let fwd = LinkConfig {
        rate_bps: Some(RATE),
        queue_limit_packets: 30,
        loss: 0.001,
        ..delay_link(10)
    };
    let seeds = [1u64, 2, 3];
    let (mut with, mut without) = (0.0, 0.0);
    for &seed in &seeds {
        let (g1, r1) = run_on(seed, true, fwd);
        let (g0, r0) = run_on(seed, false, fwd);
        println!(
            "small queue, seed {seed}: sack {:.2} Mb/s (rexmit {} rto {}), no sack {:.2} Mb/s (rexmit {} rto {}), ratio {:.2}",
            g1 / 1e6,
            r1.retransmitted_segments,
            r1.rto_expiries,
            g0 / 1e6,
            r0.retransmitted_segments,
            r0.rto_expiries,
            g1 / g0
        );
        with += g1;
        without += g0;
    }
    let ratio = with / without;
    println!(
        "small queue, mean: sack {:.2} Mb/s, no sack {:.2} Mb/s, ratio {ratio:.2}",
        with / seeds.len() as f64 / 1e6,
        without / seeds.len() as f64 / 1e6
    );
    assert!(ratio > 1.0, "SACK/no-SACK goodput ratio {ratio:.2}");
}

#[test]
fn bbr_experiment() {
    use saps_stack::tcp::congestion::CongestionAlgorithm;
    let fwd = LinkConfig {
        rate_bps: Some(RATE),
        queue_limit_packets: 1000,
        loss: 0.01,
        ..delay_link(10)
    };
    let buf: usize = std::env::var("BUF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256 * 1024);
    for seed in [1u64, 2, 3] {
        for sack in [true, false] {
            let tcp = TcpConfig {
                sack,
                congestion: CongestionAlgorithm::Bbr,
                send_buffer: buf,
                recv_buffer: buf,
                ooo_budget: buf,
                ..TcpConfig::default()
            };
            let t0 = std::time::Instant::now();
            let (g, r) = run_with(seed, tcp, fwd);
            println!(
                "bbr seed {seed} sack {sack}: {:.2} Mb/s rexmit {} rto {} fast {} sack-rec {} ({:?})",
                g / 1e6,
                r.retransmitted_segments,
                r.rto_expiries,
                r.fast_recoveries,
                r.sack_recoveries,
                t0.elapsed()
            );
        }
    }
}
