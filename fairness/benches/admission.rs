//! Cost of one admission decision (dequeue + on_transmit, completions amortised) with 10,000
//! backlogged flows, per policy. Run with `cargo bench -p saps-fairness --bench admission`.
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
        g.bench_function(policy.name(), |b| {
            b.iter(|| {
                // One admitted packet per iteration; report completions when held back.
                loop {
                    let t = Instant::from_micros(now);
                    if let Some(f) = a.dequeue(t) {
                        a.on_transmit(black_box(f), 1514, true, t);
                        break;
                    }
                    now += 388;
                    a.on_completion(32, 32 * 1514, Instant::from_micros(now));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
