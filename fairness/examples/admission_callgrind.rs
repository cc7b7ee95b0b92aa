//! Callgrind driver for the admission decision: `N` decisions with 10,000 backlogged flows.
//!
//! ```text
//! cargo build --profile bench -p saps-fairness --example admission_callgrind
//! valgrind --tool=callgrind --toggle-collect='*run_decisions*' --callgrind-out-file=/tmp/adm.cg \
//!     target/release/examples/admission_callgrind adaptive 1000000 [quantum-in-frames]
//! ```
//! Instructions per admitted packet = Ir of the collected function / `admitted` printed here.
//! The loop is what the stack does per TX slot (`Interface::poll_transmit`): a segment of the
//! flow's open burst, or a new grant (`dequeue_burst`), the ring accounting per segment
//! (`burst_room`, `on_burst_segment`), `on_burst_end` once per burst, and a completion report
//! of 32 frames whenever the ring is at its limit.

use std::hint::black_box;

use saps_fairness::{Admission, AdmissionConfig, Policy};
use saps_stack::egress::EgressScheduler;
use saps_stack::Instant;

/// Active flows.
const FLOWS: u32 = 10_000;

/// Runs `n` TX slots.
///
/// Every call the stack makes on the scheduler is in here, in the interface's order
/// (`Interface::poll_transmit`, one slot per call): a segment of the open burst (after
/// `burst_room`: control segments may have taken the room) or a new grant (`dequeue_burst`),
/// `on_burst_segment` per segment, and `on_burst_end` once per burst.
#[inline(never)]
fn run_decisions(a: &mut Admission, n: u64) {
    let mut now = 1_000u64;
    // The open burst (as `Interface` keeps it): flow, segments granted, segments left.
    let mut flow = 0;
    let mut grant = 0u32;
    let mut left = 0u32;
    for _ in 0..n {
        let t = Instant::from_micros(now);
        if left == 0 || !a.burst_room() {
            if left != 0 {
                // Ring full mid-burst: end it (the flow still has data).
                let sent = grant - left;
                a.on_burst_end(flow, sent, sent as usize * 1514, true, t);
            }
            match a.dequeue_burst(t) {
                Some((f, g)) => {
                    flow = black_box(f);
                    grant = g;
                    left = g;
                }
                None => {
                    // 32 frames at 1 Gb/s left the ring.
                    left = 0;
                    now += 388;
                    a.on_completion(32, 32 * 1514, Instant::from_micros(now));
                    continue;
                }
            }
        }
        a.on_burst_segment(1514);
        left -= 1;
        if left == 0 {
            a.on_burst_end(flow, grant, grant as usize * 1514, true, t);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let policy = args.next().unwrap_or_else(|| "adaptive".into());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let Ok(policy) = Policy::from_name(&policy) else {
        eprintln!("usage: admission_callgrind off|paper|adaptive [decisions [quantum-frames]]");
        std::process::exit(2);
    };
    let mut cfg = AdmissionConfig::new(policy, 1024);
    cfg.line_rate_bps = Some(1_000_000_000);
    // Optional: the adaptive quantum in frames (the default is `AdmissionConfig::new`'s).
    if let Some(frames) = args.next().and_then(|s| s.parse::<u32>().ok()) {
        cfg.quantum = frames * cfg.max_frame;
    }
    cfg.flows_hint = FLOWS as usize;
    let mut a = Admission::new(cfg);
    for f in 0..FLOWS {
        a.enqueue(f, Instant::ZERO);
    }
    run_decisions(&mut a, black_box(n));
    let s = a.stats();
    // Every slot admits a segment except the refused ones (one hold-back each); `admissions`
    // lags by the burst still open at the end.
    let admitted = n - s.hold_backs;
    println!(
        "policy={} decisions={n} admitted={admitted} hold_backs={} limit_bytes={} waiting={}",
        policy.name(),
        s.hold_backs,
        s.limit_bytes,
        s.flows_waiting
    );
}
