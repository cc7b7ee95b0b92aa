//! A fixed-bucket histogram of admission waits (powers of two of microseconds, no allocation).

/// Number of buckets: bucket `i` counts waits `w` with `2^(i-1) <= w < 2^i` microseconds
/// (bucket 0: `w == 0`); the last bucket also takes everything longer (about 4 s and up).
pub const WAIT_BUCKETS: usize = 24;

/// Buckets kept internally: one per bit length of a `u32` wait (0 ..= 32), so recording needs
/// neither a clamp nor a bounds check; [`WaitHistogram::buckets`] folds the long tail.
const RAW_BUCKETS: usize = 33;

/// Admission waits in microseconds, in [`WAIT_BUCKETS`] power-of-two buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitHistogram {
    raw: [u64; RAW_BUCKETS],
    sum_micros: u64,
}

impl Default for WaitHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitHistogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        WaitHistogram {
            raw: [0; RAW_BUCKETS],
            sum_micros: 0,
        }
    }

    /// Record one wait of `micros` microseconds (waits from `u32::MAX` up count as that).
    #[inline]
    pub fn record(&mut self, micros: u64) {
        self.record_u32(micros.min(u64::from(u32::MAX)) as u32);
    }

    /// Record one wait of `micros` microseconds: the admission hot path (a few instructions).
    #[inline(always)]
    pub fn record_u32(&mut self, micros: u32) {
        self.raw[(u32::BITS - micros.leading_zeros()) as usize] += 1;
        self.sum_micros = self.sum_micros.wrapping_add(u64::from(micros));
    }

    /// Count per bucket (see [`WAIT_BUCKETS`]).
    pub fn buckets(&self) -> [u64; WAIT_BUCKETS] {
        let mut b = [0; WAIT_BUCKETS];
        for (i, &n) in self.raw.iter().enumerate() {
            b[i.min(WAIT_BUCKETS - 1)] += n;
        }
        b
    }

    /// Exclusive upper bound of bucket `i` in microseconds (`u64::MAX` for the last).
    pub fn upper_bound_micros(i: usize) -> u64 {
        if i + 1 >= WAIT_BUCKETS {
            u64::MAX
        } else {
            1u64 << i
        }
    }

    /// Number of waits recorded.
    pub fn count(&self) -> u64 {
        self.raw.iter().sum()
    }

    /// Sum of all waits in microseconds.
    pub fn sum_micros(&self) -> u64 {
        self.sum_micros
    }

    /// Upper bound of the longest wait recorded, in microseconds (0 if none).
    pub fn max_micros(&self) -> u64 {
        match self.buckets().iter().rposition(|&n| n > 0) {
            Some(i) => Self::upper_bound_micros(i),
            None => 0,
        }
    }

    /// Add `other`'s counts to this one (several ports into one metric).
    pub fn merge(&mut self, other: &WaitHistogram) {
        for (a, b) in self.raw.iter_mut().zip(other.raw.iter()) {
            *a += b;
        }
        self.sum_micros = self.sum_micros.wrapping_add(other.sum_micros);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        let mut h = WaitHistogram::new();
        for w in [0, 1, 2, 3, 4, 1000, u64::MAX] {
            h.record(w);
        }
        let b = h.buckets();
        assert_eq!(b[0], 1); // 0
        assert_eq!(b[1], 1); // 1
        assert_eq!(b[2], 2); // 2, 3
        assert_eq!(b[3], 1); // 4
        assert_eq!(b[10], 1); // 512..1024
        assert_eq!(b[WAIT_BUCKETS - 1], 1);
        assert_eq!(h.count(), 7);
        assert_eq!(h.max_micros(), u64::MAX);
        assert_eq!(WaitHistogram::new().max_micros(), 0);
        assert_eq!(WaitHistogram::upper_bound_micros(3), 8);
        let mut m = WaitHistogram::new();
        m.merge(&h);
        assert_eq!(m, h);
    }
}
