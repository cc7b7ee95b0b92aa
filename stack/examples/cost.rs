//! Callgrind driver for the stack's per-packet cost: runs exactly N steps of one scenario after
//! a warm-up, with the server-side calls made through the `cg_server_*` marker functions.
//!
//! ```text
//! cargo build --release -p saps-stack --example cost
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*cg_server_*' \
//!     target/release/examples/cost rx 10000
//! ```
//!
//! Scenarios (see `benches/common/mod.rs`): `rx` (full-size segments received in ESTABLISHED,
//! two per step, one delayed ACK per step), `tx` (two full-size segments built and sent per step,
//! one ACK received), `conn` (one connection opened and closed by the client per step). `--ts`
//! negotiates TCP timestamps (1448-byte segments); `--offload` leaves checksums to the NIC. The last output line gives the step count and
//! per-step counters, which `scripts/bench-stack` divides the instruction counts by.

#[path = "../benches/common/mod.rs"]
mod common;

use common::{ConnScenario, RxScenario, Setup, TxScenario};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ts = args.iter().any(|a| a == "--ts");
    let setup = Setup {
        timestamps: ts,
        offload: args.iter().any(|a| a == "--offload"),
    };
    let mut rest = args.iter().filter(|a| !a.starts_with("--"));
    let scenario = rest.next().map(String::as_str).unwrap_or("rx");
    let steps: u64 = rest.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    match scenario {
        "rx" => {
            let mut s = RxScenario::new(setup);
            for _ in 0..steps {
                s.step::<true>();
            }
            assert_eq!(s.bytes, s.segments * common::full_segment(ts) as u64);
            println!(
                "scenario=rx timestamps={ts} steps={steps} segments={} acks={} bytes={}",
                s.segments, s.acks, s.bytes
            );
        }
        "tx" => {
            let mut s = TxScenario::new(setup);
            for _ in 0..steps {
                s.step::<true>();
            }
            assert_eq!(s.bytes, s.segments * common::full_segment(ts) as u64);
            println!(
                "scenario=tx timestamps={ts} steps={steps} segments={} acks={} bytes={}",
                s.segments, steps, s.bytes
            );
        }
        "conn" => {
            let mut s = ConnScenario::new(setup);
            for _ in 0..steps {
                s.step::<true>();
            }
            println!(
                "scenario=conn timestamps={ts} steps={steps} connections={} frames_out={}",
                s.connections, s.frames_out
            );
        }
        other => {
            eprintln!("unknown scenario {other:?}: use rx, tx or conn");
            std::process::exit(2);
        }
    }
}
