//! Analysis of generator results: completion times, goodput series, Jain's fairness index,
//! latency percentiles. Pure functions (no I/O, no clock), so each is unit-tested on its own.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Jain's fairness index of `xs`: (Σx)² / (n·Σx²). 1 = equal shares, 1/n = one takes all.
/// An empty slice or all zeros gives 1 (nobody is treated unfairly when nobody gets anything).
pub fn jain(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    if xs.is_empty() || sq == 0.0 {
        1.0
    } else {
        sum * sum / (n * sq)
    }
}

/// Re-bucket a byte series (`bucket` wide) into goodput in bits/s per `window`. `window` is
/// rounded down to a whole number of buckets (at least one); a trailing partial window is
/// dropped so every value covers the same time.
pub fn goodput_series(bytes: &[u64], bucket: Duration, window: Duration) -> Vec<f64> {
    let per = per_window(bucket, window);
    let secs = bucket.as_secs_f64() * per as f64;
    bytes
        .chunks_exact(per)
        .map(|c| c.iter().sum::<u64>() as f64 * 8.0 / secs)
        .collect()
}

fn per_window(bucket: Duration, window: Duration) -> usize {
    if bucket.is_zero() {
        return 1;
    }
    ((window.as_nanos() / bucket.as_nanos()) as usize).max(1)
}

/// Jain's index per `window` over the period in which every stream is active.
///
/// `streams[i]` are stream i's bytes per `bucket` since the common start; `active[i]` is the
/// interval during which it is supposed to be sending (start, finish). Windows are aligned to
/// the latest start and only whole windows before the earliest finish count: after one stream
/// completes, unequal shares are expected, not unfair. Returns (window start, index) pairs.
pub fn jain_per_window(
    streams: &[Vec<u64>],
    active: &[(Duration, Duration)],
    bucket: Duration,
    window: Duration,
) -> Vec<(Duration, f64)> {
    if streams.is_empty() || streams.len() != active.len() || bucket.is_zero() {
        return Vec::new();
    }
    let per = per_window(bucket, window);
    let from = active.iter().map(|a| a.0).max().unwrap_or_default();
    let to = active.iter().map(|a| a.1).min().unwrap_or_default();
    // First bucket that starts at or after `from`; last bucket that ends at or before `to`.
    let b = bucket.as_nanos();
    let first = from.as_nanos().div_ceil(b) as usize;
    let end = (to.as_nanos() / b) as usize;
    let mut out = Vec::new();
    let mut i = first;
    while i + per <= end {
        let shares: Vec<f64> = streams
            .iter()
            .map(|s| s.iter().skip(i).take(per).map(|&x| x as f64).sum::<f64>())
            .collect();
        out.push((bucket * i as u32, jain(&shares)));
        i += per;
    }
    out
}

/// The smallest index among windows that start at least `warmup` after the first window.
/// `None` if no window qualifies (the run was too short to say anything).
pub fn min_after_warmup(series: &[(Duration, f64)], warmup: Duration) -> Option<f64> {
    let t0 = series.first()?.0;
    series
        .iter()
        .filter(|(t, _)| t.saturating_sub(t0) >= warmup)
        .map(|&(_, j)| j)
        .fold(None, |m: Option<f64>, j| Some(m.map_or(j, |m| m.min(j))))
}

/// Median of durations (mean of the two middle ones for an even count); `None` if empty.
pub fn median(xs: &[Duration]) -> Option<Duration> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

/// Goodput in bits/s of `bytes` moved in `d` (0 for a zero duration).
pub fn bps(bytes: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        bytes as f64 * 8.0 / d.as_secs_f64()
    }
}

/// Latency summary of a histogram recorded in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Smallest sample.
    pub min: Duration,
    /// Mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

/// Summarise a nanosecond histogram; `None` if it is empty.
pub fn latency(h: &Histogram<u64>) -> Option<Latency> {
    if h.is_empty() {
        return None;
    }
    let ns = Duration::from_nanos;
    Some(Latency {
        count: h.len(),
        min: ns(h.min()),
        mean: ns(h.mean() as u64),
        p50: ns(h.value_at_quantile(0.50)),
        p90: ns(h.value_at_quantile(0.90)),
        p99: ns(h.value_at_quantile(0.99)),
        max: ns(h.max()),
    })
}

/// Sequence numbers relative to the first one seen, unwrapped across 2³² (a time/sequence
/// trace starts at 0 and grows even if the ISN was near the top of the space).
pub fn relative_seq(seqs: &[u32]) -> Vec<u64> {
    let Some(&first) = seqs.first() else {
        return Vec::new();
    };
    // Track the highest unwrapped value; each new seq is placed at the unwrapped point nearest
    // to it (segments may be retransmitted or reordered, so seq can go backwards a little).
    let mut hi: i64 = 0;
    seqs.iter()
        .map(|&s| {
            let delta = s.wrapping_sub(first).wrapping_sub(hi as u32) as i32 as i64;
            let v = (hi + delta).max(0);
            hi = hi.max(v);
            v as u64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn jain_bounds() {
        assert_eq!(jain(&[5.0, 5.0, 5.0]), 1.0);
        assert!((jain(&[1.0, 0.0, 0.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert!((jain(&[2.0, 1.0]) - 0.9).abs() < 1e-12);
        assert_eq!(jain(&[]), 1.0);
        assert_eq!(jain(&[0.0, 0.0]), 1.0);
    }

    #[test]
    fn goodput_series_rebuckets_and_drops_partial_window() {
        // 10 ms buckets of 12_500 bytes = 10 Mb/s; windows of 20 ms; 5 buckets -> 2 windows.
        let s = goodput_series(&[12_500; 5], 10 * MS, 20 * MS);
        assert_eq!(s.len(), 2);
        assert!((s[0] - 10e6).abs() < 1e-6);
        // A window smaller than a bucket is one bucket.
        assert_eq!(goodput_series(&[1, 2], 10 * MS, MS).len(), 2);
    }

    #[test]
    fn jain_windows_only_cover_the_common_active_period() {
        // Stream 0 starts at 0, stream 1 at 25 ms; both end at 100 ms. 10 ms buckets, 20 ms
        // windows: the first whole window starts at 30 ms, the last ends by 100 ms -> 30, 50, 70.
        let a = vec![100u64; 10];
        let mut b = vec![0u64; 10];
        for x in b.iter_mut().skip(3) {
            *x = 100;
        }
        let w = jain_per_window(
            &[a, b],
            &[(Duration::ZERO, 100 * MS), (25 * MS, 100 * MS)],
            10 * MS,
            20 * MS,
        );
        let starts: Vec<_> = w.iter().map(|x| x.0).collect();
        assert_eq!(starts, vec![30 * MS, 50 * MS, 70 * MS]);
        assert!(w.iter().all(|x| x.1 == 1.0));
    }

    #[test]
    fn jain_windows_see_unfairness() {
        let a = vec![300u64; 10];
        let b = vec![100u64; 10];
        let w = jain_per_window(&[a, b], &[(Duration::ZERO, 100 * MS); 2], 10 * MS, 50 * MS);
        assert_eq!(w.len(), 2);
        assert!((w[0].1 - 0.8).abs() < 1e-12);
        // Mismatched inputs give nothing rather than a wrong answer.
        assert!(jain_per_window(&[vec![1]], &[], 10 * MS, 50 * MS).is_empty());
    }

    #[test]
    fn min_after_warmup_skips_the_warmup() {
        let s = vec![
            (Duration::ZERO, 0.5),
            (100 * MS, 0.9),
            (200 * MS, 0.99),
            (300 * MS, 0.97),
        ];
        assert_eq!(min_after_warmup(&s, 200 * MS), Some(0.97));
        assert_eq!(min_after_warmup(&s, Duration::ZERO), Some(0.5));
        assert_eq!(min_after_warmup(&s, 400 * MS), None);
        assert_eq!(min_after_warmup(&[], MS), None);
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3 * MS, MS, 2 * MS]), Some(2 * MS));
        assert_eq!(
            median(&[4 * MS, MS, 2 * MS, 3 * MS]),
            Some(Duration::from_micros(2500))
        );
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn latency_percentiles() {
        let mut h = crate::generators::latency_histogram();
        for us in 1..=100u64 {
            h.record(us * 1000).unwrap();
        }
        let l = latency(&h).unwrap();
        assert_eq!(l.count, 100);
        assert_eq!(l.min, Duration::from_micros(1));
        assert!((l.p50.as_micros() as i64 - 50).abs() <= 1);
        assert!((l.p99.as_micros() as i64 - 99).abs() <= 1);
        assert!((l.max.as_micros() as i64 - 100).abs() <= 1);
        assert!(latency(&crate::generators::latency_histogram()).is_none());
    }

    #[test]
    fn relative_seq_unwraps_and_tolerates_retransmits() {
        let isn = u32::MAX - 1000;
        let seqs = [
            isn,
            isn.wrapping_add(1448),
            isn.wrapping_add(2896),
            isn.wrapping_add(1448),
        ];
        assert_eq!(relative_seq(&seqs), vec![0, 1448, 2896, 1448]);
        assert_eq!(bps(125_000, Duration::from_secs(1)), 1e6);
        assert_eq!(bps(1, Duration::ZERO), 0.0);
    }
}
