//! Undoing spurious congestion-window cuts, measured end to end: one CUBIC bulk flow over a
//! 100 Mb/s link with 20 ms RTT, no loss, and heavy reordering on the data direction (a
//! fraction of frames held back long enough for a dozen or more later ones to overtake them,
//! deeper than DupThresh). Every fast retransmission is then spurious; with undo (D-SACK and
//! Eifel timestamps) the cuts are taken back, without it each one costs CUBIC its window.
//! Every transfer is checked byte-exact. (Spurious-timeout undo is covered by the unit tests
//! in `conn.rs`; the simulated link has no delay-spike model.)

mod sim_common;

use saps_stack::sim::LinkConfig;
use saps_stack::stats::TcpStats;
use saps_stack::tcp::congestion::CongestionAlgorithm;
use saps_stack::tcp::TcpConfig;
use saps_stack::time::Duration;
use sim_common::*;

const RATE: u64 = 100_000_000;
const BYTES: u64 = 20_000_000;
/// Goodput (bit/s) of one 20 MB transfer and the sender's TCP counters.
fn run(seed: u64, tcp: TcpConfig, fwd: LinkConfig) -> (f64, TcpStats) {
    bulk_goodput(seed, tcp, fwd, RATE, BYTES)
}

fn reordering_link(reorder: f64, delay_ms: u64) -> LinkConfig {
    LinkConfig {
        rate_bps: Some(RATE),
        queue_limit_packets: 1000,
        reorder,
        reorder_delay: Duration::from_millis(delay_ms),
        ..delay_link(10)
    }
}

fn cfg(congestion: CongestionAlgorithm, undo: bool, timestamps: bool) -> TcpConfig {
    TcpConfig {
        congestion,
        undo,
        timestamps,
        ..TcpConfig::default()
    }
}

/// Mean goodput with and without undo over `seeds`, printing each run.
fn compare(
    label: &str,
    seeds: &[u64],
    fwd: LinkConfig,
    congestion: CongestionAlgorithm,
    timestamps: bool,
) -> (f64, f64, TcpStats) {
    let (mut with, mut without) = (0.0, 0.0);
    let mut total = TcpStats::default();
    for &seed in seeds {
        let (g1, r1) = run(seed, cfg(congestion, true, timestamps), fwd);
        let (g0, r0) = run(seed, cfg(congestion, false, timestamps), fwd);
        println!(
            "{label} seed {seed}: undo {:.2} Mb/s (rexmit {} rto {} sack-rec {} dsack {} \
             undo {}/{}), no undo {:.2} Mb/s (rexmit {} rto {} sack-rec {}), ratio {:.2}",
            g1 / 1e6,
            r1.retransmitted_segments,
            r1.rto_expiries,
            r1.sack_recoveries,
            r1.dsack_blocks_received,
            r1.undos_recovery,
            r1.undos_rto,
            g0 / 1e6,
            r0.retransmitted_segments,
            r0.rto_expiries,
            r0.sack_recoveries,
            g1 / g0
        );
        assert_eq!(r0.undos_recovery + r0.undos_rto, 0, "undo off");
        with += g1;
        without += g0;
        total.accumulate(&r1);
    }
    let n = seeds.len() as f64;
    let (with, without) = (with / n, without / n);
    println!(
        "{label} mean over {} seeds: undo {:.2} Mb/s, no undo {:.2} Mb/s, ratio {:.2}",
        seeds.len(),
        with / 1e6,
        without / 1e6,
        with / without
    );
    (with, without, total)
}

/// 1% of data frames held back 3 ms (about 25 full-sized frames at 100 Mb/s overtake each):
/// every recovery is spurious. With undo CUBIC keeps its window; without, it is cut each time.
#[test]
fn cubic_undo_beats_no_undo_under_heavy_reordering() {
    let fwd = reordering_link(0.01, 3);
    for timestamps in [true, false] {
        let label = if timestamps {
            "cubic ts"
        } else {
            "cubic no-ts"
        };
        let (with, without, st) = compare(
            label,
            &[1, 2, 3],
            fwd,
            CongestionAlgorithm::Cubic,
            timestamps,
        );
        assert!(st.undos_recovery > 0, "{label}: {st:?}");
        assert!(
            with > without * 1.2,
            "{label}: undo {with:.0} b/s vs no undo {without:.0} b/s"
        );
    }
}

/// NewReno gains the same way; BBR is unaffected (no undo: its model does not cut on loss).
#[test]
fn newreno_gains_and_bbr_is_unaffected() {
    let fwd = reordering_link(0.01, 3);
    let (with, without, st) = compare("newreno", &[1, 2], fwd, CongestionAlgorithm::NewReno, true);
    assert!(st.undos_recovery > 0);
    assert!(with > without, "newreno: {with:.0} vs {without:.0}");
    let (with, without, st) = compare("bbr", &[1, 2], fwd, CongestionAlgorithm::Bbr, true);
    assert_eq!(st.undos_recovery + st.undos_rto, 0);
    assert_eq!(with, without, "bbr: undo changes nothing");
}
