//! `[scheduler]` in the configuration (`MUDROCK_SCHEDULER__*`): how often
//! the scheduler looks for due schedules, how much one pass may do, how
//! late a fire time may be and still count as on time, and how long the
//! tick ledger is kept.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Longest wait between passes; a pass also runs when the earliest
    /// next fire time comes.
    pub poll_ms: u64,
    /// Schedules taken per transaction (`FOR UPDATE SKIP LOCKED`).
    pub batch: i64,
    /// The most fire times one schedule accounts for in one pass; the
    /// rest wait for the next pass (`scheduler.max_ticks_per_pass`).
    pub max_ticks_per_pass: usize,
    /// A fire time reached within this many seconds counts as on time
    /// (`catchup: none` runs only those).
    pub on_time_window_seconds: u32,
    /// Ledger entries older than this many days are deleted.
    pub tick_retention_days: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            poll_ms: 1_000,
            batch: 100,
            max_ticks_per_pass: 1_000,
            on_time_window_seconds: 60,
            tick_retention_days: 90,
        }
    }
}
