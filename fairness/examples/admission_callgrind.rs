//! Callgrind driver for the admission decision: `N` decisions with 10,000 backlogged flows.
//!
//! ```text
//! cargo build --profile bench -p saps-fairness --example admission_callgrind
//! valgrind --tool=callgrind --toggle-collect='*run_decisions*' --callgrind-out-file=/tmp/adm.cg \
//!     target/release/examples/admission_callgrind adaptive 1000000 [quantum-in-frames]
//! ```
//! Instructions per admitted packet = Ir of the collected function / admissions printed here.
//! The loop is what the stack does per TX slot: `dequeue`, `on_transmit`, and a completion
//! report of 32 frames whenever the ring is at its limit.

use std::hint::black_box;

use saps_fairness::{Admission, AdmissionConfig, Policy};
use saps_stack::egress::EgressScheduler;
use saps_stack::Instant;

/// Active flows.
const FLOWS: u32 = 10_000;

/// Runs `n` decisions; returns the number of admitted packets.
#[inline(never)]
fn run_decisions(a: &mut Admission, n: u64) -> u64 {
    let mut admitted = 0;
    let mut now = 1_000u64;
    for _ in 0..n {
        let t = Instant::from_micros(now);
        match a.dequeue(t) {
            Some(f) => {
                a.on_transmit(black_box(f), 1514, true, t);
                admitted += 1;
            }
            None => {
                // 32 frames at 1 Gb/s left the ring.
                now += 388;
                a.on_completion(32, 32 * 1514, Instant::from_micros(now));
            }
        }
    }
    admitted
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
    let admitted = run_decisions(&mut a, black_box(n));
    let s = a.stats();
    println!(
        "policy={} decisions={n} admitted={admitted} hold_backs={} limit_bytes={} waiting={}",
        policy.name(),
        s.hold_backs,
        s.limit_bytes,
        s.flows_waiting
    );
}
