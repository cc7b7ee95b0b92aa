//! Throughput of the Internet checksum against a naive 16-bit loop.
//!
//! Run with `cargo bench -p saps-stack --bench checksum`. Plain `std` timing (no extra
//! dependencies): each case runs for about 0.2 s and prints bytes per nanosecond (= GB/s).

use saps_stack::wire::checksum;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The obvious implementation, for comparison.
fn naive(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    let mut pairs = data.chunks_exact(2);
    for p in pairs.by_ref() {
        s += u16::from_be_bytes([p[0], p[1]]) as u32;
        // Fold as we go so a u32 suffices for any length.
        s = (s & 0xffff) + (s >> 16);
    }
    if let [b] = pairs.remainder() {
        s += (*b as u32) << 8;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Runs `f` repeatedly for about `budget` and returns GB/s.
fn measure(data: &[u8], budget: Duration, f: impl Fn(&[u8]) -> u16) -> f64 {
    let mut iters: u64 = 0;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..64 {
            black_box(f(black_box(data)));
        }
        iters += 64;
    }
    let ns = start.elapsed().as_nanos() as f64;
    (iters as f64 * data.len() as f64) / ns
}

fn main() {
    let budget = Duration::from_millis(200);
    let buf: Vec<u8> = (0..65_537u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    println!("{:>8} {:>12} {:>12}", "bytes", "sum GB/s", "naive GB/s");
    for len in [20usize, 64, 577, 1500, 9000, 65_536] {
        // Offset by one byte so the slice is unaligned, as a payload after a 14-byte header is.
        let data = &buf[1..1 + len];
        assert_eq!(checksum::checksum(data), naive(data));
        let fast = measure(data, budget, checksum::checksum);
        let slow = measure(data, budget, naive);
        println!("{len:>8} {fast:>12.2} {slow:>12.2}");
    }
}
