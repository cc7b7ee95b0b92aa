//! Cost of one admitted packet with 10,000 backlogged flows, per policy: the interface's batched
//! calls (`dequeue_burst` per grant, `burst_room` + `on_burst_segment` per segment,
//! `on_burst_end` per burst; completions amortised). Run with `cargo bench -p saps-fairness --bench admission`.
//! The instruction count is measured with `examples/admission_callgrind.rs`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use saps_fairness::{Admission, AdmissionConfig, Policy};
use saps_stack::egress::EgressScheduler;
use saps_stack::Instant;

const FLOWS: u32 = 10_000;

fn controller(policy: Policy) -> Admission {
    let mut cfg = AdmissionConfig::new(policy, 1024);
    cfg.line_rate_bps = Some(1_000_000_000);
    cfg.flows_hint = FLOWS as usize;
    let mut a = Admission::new(cfg);
    for f in 0..FLOWS {
        a.enqueue(f, Instant::ZERO);
    }
    a
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("admission_10k_flows");
    g.throughput(Throughput::Elements(1));
    for policy in [Policy::Off, Policy::Paper, Policy::Adaptive] {
        let mut a = controller(policy);
        let mut now = 1_000u64;
        // The open burst, kept across iterations as the interface keeps it across TX slots.
        let (mut flow, mut grant, mut left) = (0, 0u32, 0u32);
        g.bench_function(policy.name(), |b| {
            b.iter(|| {
                // One admitted packet per iteration; report completions when held back.
                loop {
                    let t = Instant::from_micros(now);
                    if left == 0 || !a.burst_room() {
                        if left != 0 {
                            let sent = grant - left;
                            a.on_burst_end(flow, sent, sent as usize * 1514, true, t);
                        }
                        let Some((f, n)) = a.dequeue_burst(t) else {
                            left = 0;
                            now += 388;
                            a.on_completion(32, 32 * 1514, Instant::from_micros(now));
                            continue;
                        };
                        (flow, grant, left) = (black_box(f), n, n);
                    }
                    a.on_burst_segment(1514);
                    left -= 1;
                    if left == 0 {
                        a.on_burst_end(flow, grant, grant as usize * 1514, true, t);
                    }
                    break;
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
