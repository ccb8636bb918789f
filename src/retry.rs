//! The one retry policy: exponential backoff with jitter (backon), bounded
//! by a total delay and optionally a number of attempts. The store, the
//! database calls of workers and migrations, and the engine's retry of a
//! unit's transient failures all build their backoff here.

use std::time::Duration;

use backon::ExponentialBuilder;
use serde::{Deserialize, Serialize};

/// How long and how often to retry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "snake_case")]
pub struct RetryPolicy {
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Total time spent waiting between attempts before giving up.
    pub budget_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay_ms: 100,
            max_delay_ms: 5_000,
            budget_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// Backoff within the budget, as many attempts as fit.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.min_delay_ms))
            .with_max_delay(Duration::from_millis(self.max_delay_ms))
            .with_total_delay(Some(Duration::from_millis(self.budget_ms)))
            .without_max_times()
            .with_jitter()
    }

    /// Backoff with no budget: for a write that must land while the
    /// process lives (a finished run's result).
    pub fn forever(&self) -> ExponentialBuilder {
        self.backoff().with_total_delay(None)
    }

    /// At most `times` retries (and still within the budget).
    pub fn times(&self, times: usize) -> ExponentialBuilder {
        self.backoff().with_max_times(times)
    }
}

/// The engine's retry of a node's transient failures (`execution.retries`):
/// 200 ms doubling up to 12.8 s, with jitter.
pub const UNIT: RetryPolicy = RetryPolicy {
    min_delay_ms: 200,
    max_delay_ms: 12_800,
    budget_ms: 600_000,
};

/// Migrations colliding on cluster-wide roles: short and few.
pub const MIGRATION: RetryPolicy = RetryPolicy {
    min_delay_ms: 50,
    max_delay_ms: 400,
    budget_ms: 5_000,
};

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn times_bounds_the_attempts_and_jitter_stays_within_twice_the_delay() {
        let delays: Vec<Duration> = UNIT.times(3).build().collect();
        assert_eq!(delays.len(), 3);
        for (i, d) in delays.iter().enumerate() {
            let base = Duration::from_millis(200 << i);
            assert!(*d >= base && *d <= base * 2, "delay {i}: {d:?}");
        }
        let budget = RetryPolicy {
            min_delay_ms: 10,
            max_delay_ms: 10,
            budget_ms: 50,
        };
        let total: Duration = budget.backoff().build().sum();
        assert!(total <= Duration::from_millis(50), "{total:?}");
        assert!(budget.forever().build().take(100).count() == 100);
    }
}
