//! Criterion benches of the stack's per-packet cost through the real `Interface` (see
//! `benches/common/mod.rs` for the scenarios). Each iteration is one scenario step; the reported
//! time is per step (`rx`, `tx`: two segments; `conn`: one connection). The figures of record are
//! instruction counts from `scripts/bench-stack` (callgrind), because this machine is shared.
//!
//! `cargo bench -p saps-stack --bench stack -- --measurement-time 2`

#[path = "common/mod.rs"]
mod common;

use common::{ConnScenario, RxScenario, Setup, TxScenario};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn stack(c: &mut Criterion) {
    let mut g = c.benchmark_group("stack");
    for ts in [false, true] {
        let suffix = if ts { "_ts" } else { "" };
        let setup = Setup {
            timestamps: ts,
            offload: false,
        };
        g.throughput(Throughput::Elements(2));
        let mut rx = RxScenario::new(setup);
        g.bench_function(format!("rx_2seg_ack{suffix}"), |b| {
            b.iter(|| rx.step::<false>())
        });
        let mut tx = TxScenario::new(setup);
        g.bench_function(format!("tx_2seg{suffix}"), |b| {
            b.iter(|| tx.step::<false>())
        });
        g.throughput(Throughput::Elements(1));
        let mut conn = ConnScenario::new(setup);
        g.bench_function(format!("conn_open_close{suffix}"), |b| {
            b.iter(|| conn.step::<false>())
        });
    }
    g.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
