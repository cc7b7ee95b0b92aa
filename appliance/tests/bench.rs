//! `saps bench` end to end: it builds its topology, measures both sides and reports non-zero
//! figures. Ratios are not asserted: shared machines are too noisy for that.

mod common;

use std::process::Command;

/// The number after `"key":` in the bench's flat JSON object.
fn field(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let start = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e} in {json}"))
}

#[test]
fn bench_completes_and_measures_both_sides() {
    if !common::require_root("bench_completes_and_measures_both_sides") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_saps"))
        .args(["bench", "--seconds", "2", "--json"])
        .output()
        .expect("run saps bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "saps bench failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout.trim();
    for key in [
        "saps_requests_per_sec",
        "linux_requests_per_sec",
        "saps_latency_p50_us",
        "linux_latency_p50_us",
        "saps_bulk_mbps",
        "linux_bulk_mbps",
        "http_ratio",
        "bulk_ratio",
        "line_rate_goodput_mbps",
        "line_rate_wire_mbps",
    ] {
        assert!(field(json, key) > 0.0, "{key} is zero in {json}");
    }
    // The line-rate check cannot exceed the configured rate by much, whatever the machine.
    assert!(
        field(json, "line_rate_wire_mbps") < 200.0 * 1.1,
        "line rate not enforced: {json}"
    );
}
