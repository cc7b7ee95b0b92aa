//! Virtual time. The stack never reads a clock: the caller passes `now` into every call.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A point in time, in microseconds since an arbitrary origin chosen by the caller.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    micros: u64,
}

/// A span of time in microseconds.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    micros: u64,
}

impl Instant {
    /// The origin of time.
    pub const ZERO: Instant = Instant { micros: 0 };

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant {
            micros: millis.saturating_mul(1000),
        }
    }

    /// Microseconds since the origin.
    pub const fn total_micros(self) -> u64 {
        self.micros
    }

    /// Milliseconds since the origin (truncated).
    pub const fn total_millis(self) -> u64 {
        self.micros / 1000
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration {
            micros: self.micros.saturating_sub(earlier.micros),
        }
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration { micros: 0 };
    /// The longest representable span.
    pub const MAX: Duration = Duration { micros: u64::MAX };

    /// A span of `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        Duration { micros }
    }

    /// A span of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration {
            micros: millis.saturating_mul(1000),
        }
    }

    /// A span of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// Length in microseconds.
    pub const fn total_micros(self) -> u64 {
        self.micros
    }

    /// Length in milliseconds (truncated).
    pub const fn total_millis(self) -> u64 {
        self.micros / 1000
    }

    /// Length in seconds as a float, for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.micros as f64 / 1e6
    }

    /// `self * factor`, saturating.
    pub const fn saturating_mul(self, factor: u64) -> Duration {
        Duration {
            micros: self.micros.saturating_mul(factor),
        }
    }
}

/// A one-shot timer deadline: an [`Instant`] when armed, or not armed. Half the size of an
/// `Option<Instant>` (8 bytes rather than 16, which matters for the five a connection holds);
/// "not armed" is the otherwise unused `u64::MAX`. Arming at the very last microsecond,
/// `Instant::from_micros(u64::MAX)`, arms one microsecond earlier instead: that instant is only
/// reached by deadlines that saturate about 584,000 years after the origin.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) struct Deadline {
    micros: u64,
}

impl Deadline {
    const UNARMED: u64 = u64::MAX;

    /// Not armed.
    pub(crate) const NONE: Deadline = Deadline {
        micros: Self::UNARMED,
    };

    /// Whether the deadline is armed.
    pub(crate) const fn armed(self) -> bool {
        self.micros != Self::UNARMED
    }

    /// The deadline, if armed.
    pub(crate) const fn get(self) -> Option<Instant> {
        if self.armed() {
            Some(Instant::from_micros(self.micros))
        } else {
            None
        }
    }

    /// Whether the deadline is armed and `now` has reached it.
    pub(crate) const fn is_due(self, now: Instant) -> bool {
        self.armed() && self.micros <= now.micros
    }

    /// Arm (or re-arm) at `at`.
    pub(crate) fn set(&mut self, at: Instant) {
        self.micros = at.micros.min(Self::UNARMED - 1);
    }

    /// Disarm.
    pub(crate) fn clear(&mut self) {
        self.micros = Self::UNARMED;
    }

    /// The earlier of two deadlines; an unarmed one is later than any armed one.
    pub(crate) fn earlier(self, other: Deadline) -> Deadline {
        Deadline {
            micros: self.micros.min(other.micros),
        }
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::NONE
    }
}

impl fmt::Debug for Deadline {
    /// As the `Option<Instant>` it stands for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_add(rhs.micros),
        }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero: time never runs backwards for the stack.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_sub(rhs.micros),
        }
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration {
            micros: self.micros.saturating_add(rhs.micros),
        }
    }
}

impl Sub for Duration {
    type Output = Duration;
    fn sub(self, rhs: Duration) -> Duration {
        Duration {
            micros: self.micros.saturating_sub(rhs.micros),
        }
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        )
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}us", self.micros)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration::from_micros(d.as_micros().min(u64::MAX as u128) as u64)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        std::time::Duration::from_micros(d.micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = Instant::from_millis(5);
        assert_eq!((t + Duration::from_millis(3)).total_millis(), 8);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(
            (Instant::from_micros(u64::MAX) + Duration::from_secs(1)).total_micros(),
            u64::MAX
        );
    }

    #[test]
    fn deadline_is_an_option_instant_in_eight_bytes() {
        assert_eq!(core::mem::size_of::<Deadline>(), 8);
        let mut d = Deadline::default();
        assert!(!d.armed());
        assert_eq!(d.get(), None);
        assert!(!d.is_due(Instant::from_micros(u64::MAX)));
        assert_eq!(format!("{d:?}"), format!("{:?}", None::<Instant>));

        let t = Instant::from_millis(5);
        d.set(t);
        assert!(d.armed());
        assert_eq!(d.get(), Some(t));
        assert!(!d.is_due(Instant::from_micros(4_999)));
        assert!(d.is_due(t));
        assert!(d.is_due(Instant::from_millis(6)));
        assert_eq!(format!("{d:?}"), format!("{:?}", Some(t)));

        // Unarmed is later than anything armed.
        assert_eq!(d.earlier(Deadline::NONE), d);
        assert_eq!(Deadline::NONE.earlier(d), d);
        let mut e = Deadline::NONE;
        e.set(Instant::from_millis(3));
        assert_eq!(d.earlier(e).get(), Some(Instant::from_millis(3)));

        // The last microsecond is the sentinel: arming there arms one microsecond earlier.
        d.set(Instant::from_micros(u64::MAX));
        assert_eq!(d.get(), Some(Instant::from_micros(u64::MAX - 1)));
        assert!(d.is_due(Instant::from_micros(u64::MAX)));

        d.clear();
        assert!(!d.armed());
        assert_eq!(d, Deadline::NONE);
    }
}
