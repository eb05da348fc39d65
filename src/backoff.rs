//! Capped exponential backoff with full jitter, for failed refreshes.

use std::time::Duration;

/// Default first backoff ceiling.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Default backoff cap.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(30);
/// While requests are waiting for a token, the refresher tries at least this often (one login at a
/// time, whatever the number of requests), unless the IAM asked for more with `Retry-After`.
pub(crate) const DEFAULT_DEMAND_INTERVAL: Duration = Duration::from_secs(1);
/// Longest `Retry-After` we honour.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Capped exponential backoff with full jitter: after the n-th consecutive failure the delay is
/// uniform in `[0, min(cap, base * 2^(n-1))]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
}

impl Backoff {
    /// The upper bound of the delay after `failures` consecutive failures (>= 1).
    pub(crate) fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// A delay drawn with full jitter; `unit` is a random number in `[0, 1)`.
    pub(crate) fn delay(&self, failures: u32, unit: f64) -> Duration {
        self.ceiling(failures).mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(800));
        assert_eq!(b.ceiling(5), Duration::from_secs(1));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(200));
        assert!(b.delay(40, 0.999_999) <= Duration::from_secs(1));
    }
}
