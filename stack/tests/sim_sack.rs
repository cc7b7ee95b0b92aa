//! SACK's benefit, measured end to end: one bulk flow over a 100 Mb/s link with 20 ms RTT and
//! 1% random loss on the data direction, with SACK on both ends versus off on both ends, over the
//! same seeds; with CUBIC (bound by its response to the loss rate either way) and with BBR
//! (bound by loss recovery, where SACK matters).

mod sim_common;

use saps_stack::sim::LinkConfig;
use saps_stack::stats::TcpStats;
use saps_stack::tcp::congestion::CongestionAlgorithm;
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
    bulk_goodput(seed, tcp, fwd, RATE, BYTES)
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
            "seed {seed}: sack {:.2} Mb/s (rexmit {} rto {} fast {} sack-rec {} undo {}/{}), \
             no sack {:.2} Mb/s (rexmit {} rto {} fast {} undo {}/{}), ratio {:.2}",
            g1 / 1e6,
            r1.retransmitted_segments,
            r1.rto_expiries,
            r1.fast_recoveries,
            r1.sack_recoveries,
            r1.undos_recovery,
            r1.undos_rto,
            g0 / 1e6,
            r0.retransmitted_segments,
            r0.rto_expiries,
            r0.fast_recoveries,
            r0.undos_recovery,
            r0.undos_rto,
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
    // Measured: about 1.15x with PRR (1.14x before it; 1.23x before lost retransmissions were
    // resent without an RTO: a recovery stuck on one absorbed later losses without a window
    // reduction), not the 3x one
    // might hope for (BBR below shows that). At 1% random
    // loss and 20 ms RTT the window is ~15-20 segments, so two losses in one window are rare and
    // NewReno's one-hole-per-RTT recovery seldom costs an RTO; both variants are bound by the
    // congestion response to the loss rate (~10 Mb/s, the Mathis et al. regime), not by
    // recovery. Assert what is robustly true for these deterministic seeds.
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

/// One BBR transfer of [`run`]'s link, with `buffer` bytes of send and receive buffer (and
/// out-of-order budget) on both ends.
fn run_bbr(seed: u64, sack: bool, buffer: usize) -> (f64, TcpStats) {
    let fwd = LinkConfig {
        rate_bps: Some(RATE),
        queue_limit_packets: 1000,
        loss: 0.01,
        ..delay_link(10)
    };
    let tcp = TcpConfig {
        sack,
        congestion: CongestionAlgorithm::Bbr,
        send_buffer: buffer,
        recv_buffer: buffer,
        ooo_budget: buffer,
        ..TcpConfig::default()
    };
    run_with(seed, tcp, fwd)
}

/// SACK's benefit with a sender that does not back off on random loss (BBR): the same link
/// as [`sack_beats_no_sack_at_one_percent_loss`], 4 MiB buffers (Linux's default `tcp_wmem`
/// maximum) so the window does not bound either variant. With SACK every loss is repaired
/// within about a round trip while BBR keeps the pipe full; without it NewReno repairs one
/// hole per round trip, a second loss in the window often ends in an RTO, and the RTO resends
/// the whole flight (go-back-N).
#[test]
fn bbr_sack_beats_no_sack_threefold_at_one_percent_loss() {
    let seeds = [1u64, 2, 3, 4, 5, 6];
    let (mut with, mut without) = (0.0, 0.0);
    for &seed in &seeds {
        let (g1, r1) = run_bbr(seed, true, 4 << 20);
        let (g0, r0) = run_bbr(seed, false, 4 << 20);
        println!(
            "bbr seed {seed}: sack {:.2} Mb/s (rexmit {} rto {} sack-rec {} undo {}/{}), \
             no sack {:.2} Mb/s (rexmit {} rto {} fast {} undo {}/{}), ratio {:.2}",
            g1 / 1e6,
            r1.retransmitted_segments,
            r1.rto_expiries,
            r1.sack_recoveries,
            r1.undos_recovery,
            r1.undos_rto,
            g0 / 1e6,
            r0.retransmitted_segments,
            r0.rto_expiries,
            r0.fast_recoveries,
            r0.undos_recovery,
            r0.undos_rto,
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
        // About one retransmission per loss with SACK (1% of ~13,700 segments, plus the odd
        // lost retransmission): no speculative resending of data still in flight.
        assert!(
            r1.retransmitted_segments < 500,
            "seed {seed}: {} retransmissions with SACK",
            r1.retransmitted_segments
        );
        with += g1;
        without += g0;
    }
    with /= seeds.len() as f64;
    without /= seeds.len() as f64;
    let ratio = with / without;
    println!(
        "bbr mean over {} seeds: sack {:.2} Mb/s ({:.1}% of link), no sack {:.2} Mb/s, ratio {ratio:.2}",
        seeds.len(),
        with / 1e6,
        100.0 * with / RATE as f64,
        without / 1e6,
    );
    assert!(ratio >= 3.0, "SACK/no-SACK goodput ratio {ratio:.2}");
    assert!(
        with > 0.75 * RATE as f64,
        "BBR with SACK keeps the link busy"
    );
}

/// How the ratio depends on the buffers (reported in docs/benchmarks.md): smaller windows cap
/// the SACK variant and spare the no-SACK one long go-back-N resends.
#[test]
fn bbr_sack_gain_by_buffer_size() {
    let mut ratios = Vec::new();
    for buffer in [256usize << 10, 1 << 20] {
        let (mut with, mut without) = (0.0, 0.0);
        for seed in [1u64, 2, 3] {
            with += run_bbr(seed, true, buffer).0;
            without += run_bbr(seed, false, buffer).0;
        }
        println!(
            "bbr, {} KiB buffers, 3 seeds: sack {:.2} Mb/s, no sack {:.2} Mb/s, ratio {:.2}",
            buffer >> 10,
            with / 3e6,
            without / 3e6,
            with / without
        );
        ratios.push(with / without);
    }
    // SACK never loses, and its gain grows with the window.
    assert!(ratios[0] > 1.0 && ratios[1] > ratios[0], "{ratios:?}");
}
