//! Exponential back-off with jitter for transient replication errors.

use std::time::Duration;

/// `delay(n) = min(max, base · 2ⁿ⁻¹) · u`, with `u` uniform in `[0.5, 1]` ("equal jitter"):
/// retries spread out instead of arriving together, and never wait less than half the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Largest delay (before jitter).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_millis(200), max: Duration::from_secs(10) }
    }
}

impl Backoff {
    /// The step before jitter for the `attempt`-th failure (1-based).
    pub fn step(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// The delay before retrying after the `attempt`-th failure, with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let step = self.step(attempt);
        step.mul_f64(rand::random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap_with_bounded_jitter() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) };
        assert_eq!(b.step(1), Duration::from_millis(100));
        assert_eq!(b.step(2), Duration::from_millis(200));
        assert_eq!(b.step(5), Duration::from_millis(1600));
        assert_eq!(b.step(6), Duration::from_secs(2));
        assert_eq!(b.step(u32::MAX), Duration::from_secs(2));
        for attempt in 1..40 {
            let d = b.delay(attempt);
            assert!(d >= b.step(attempt) / 2 && d <= b.step(attempt), "{attempt}: {d:?}");
        }
    }
}
