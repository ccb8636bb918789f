//! What the scheduler does with a schedule's due fire times: the pure part
//! of a pass. Every due tick gets a [`Decision`] — fire, or why not (late,
//! paused, daylight saving) — so the ledger accounts for each one; overlap
//! with running runs is decided afterwards, in the database.
//!
//! Catch-up after downtime (`catchup`):
//! - `all`: every due fire time runs, oldest first;
//! - `latest`: only the latest due fire time runs, the others are
//!   `missed_late`;
//! - `none`: a fire time runs only if the scheduler reaches it within its
//!   on-time window (`scheduler.on_time_window`); the others are missed.
//!
//! `maxLateness` applies to all three: a fire time more than that late is
//! `missed_late`, never run.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::spec::Spec;
use super::ticks::{Tick, TickKind};

/// What happens to fire times missed while no scheduler ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "service", derive(sqlx::Type, utoipa::ToSchema))]
#[cfg_attr(
    feature = "service",
    sqlx(type_name = "catchup_policy", rename_all = "snake_case")
)]
pub enum Catchup {
    None,
    #[default]
    Latest,
    All,
}

impl Catchup {
    pub fn name(self) -> &'static str {
        match self {
            Catchup::None => "none",
            Catchup::Latest => "latest",
            Catchup::All => "all",
        }
    }
}

/// A due fire time's fate, before overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it, at `fire_at` (the fire time plus its jitter).
    Fire {
        fire_at: DateTime<Utc>,
    },
    MissedLate(String),
    Paused(String),
    DstSkipped(String),
}

/// A schedule's state as a pass sees it.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// Fire times after this have not been accounted for yet.
    pub cursor: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub enabled: bool,
    pub pause_note: Option<&'a str>,
    pub catchup: Catchup,
    pub max_lateness: Option<Duration>,
    pub on_time_window: Duration,
    /// The most fire times one pass accounts for
    /// (`scheduler.max_ticks_per_pass`); the rest wait for the next pass.
    pub max_ticks: usize,
    /// Seeds the jitter (the schedule's id).
    pub seed: &'a [u8],
}

/// A pass's plan for one schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub decisions: Vec<(Tick, Decision)>,
    /// The new cursor: the last fire time accounted for.
    pub cursor: DateTime<Utc>,
    /// When the schedule is next due (its next fire time plus jitter), or
    /// none when it has ended.
    pub next_due: Option<DateTime<Utc>>,
}

/// Decides every fire time due by `input.now` (at most `max_ticks`).
pub fn plan_due(spec: &Spec, input: &PlanInput<'_>) -> Plan {
    let mut ticks = spec.ticks_after(input.cursor).peekable();
    let mut out = Vec::new();
    let mut cursor = input.cursor;
    // When a tick is due: a firing one at its jittered time.
    let due_at = |t: &Tick, next: Option<&Tick>| spec.due_at(input.seed, t, next);
    while out.len() < input.max_ticks {
        let Some(tick) = ticks.next() else { break };
        let next = ticks.peek().copied();
        let at = due_at(&tick, next.as_ref());
        if at > input.now {
            // Not due: this is the next wake-up; keep the cursor before it.
            return Plan {
                decisions: out,
                cursor,
                next_due: Some(at),
            };
        }
        cursor = tick.at;
        // The next firing tick, for `latest` (skips in between are rare).
        let later_due = || {
            let mut rest = ticks.clone();
            while let Some(n) = rest.next() {
                if n.kind.fires() {
                    return due_at(&n, rest.peek()) <= input.now;
                }
            }
            false
        };
        let decision = decide(spec, input, &tick, at, later_due);
        out.push((tick, decision));
    }
    let next_due = ticks.next().map(|t| {
        let n = ticks.peek().copied();
        due_at(&t, n.as_ref())
    });
    Plan {
        decisions: out,
        cursor,
        next_due,
    }
}

fn decide(
    spec: &Spec,
    input: &PlanInput<'_>,
    tick: &Tick,
    at: DateTime<Utc>,
    later_due: impl FnOnce() -> bool,
) -> Decision {
    if let TickKind::Skip(why) = tick.kind {
        return Decision::DstSkipped(why.reason(tick, spec));
    }
    if !input.enabled {
        return Decision::Paused(match input.pause_note {
            Some(n) if !n.is_empty() => format!("the schedule is paused: {n}"),
            _ => "the schedule is paused".to_string(),
        });
    }
    let late = input.now - at;
    if let Some(max) = input.max_lateness
        && late > max
    {
        return Decision::MissedLate(format!(
            "reached {} late, more than maxLateness {}",
            human(late),
            human(max)
        ));
    }
    match input.catchup {
        Catchup::All => {}
        Catchup::None if late > input.on_time_window => {
            return Decision::MissedLate(format!(
                "reached {} late (no scheduler was running) and catchup is none",
                human(late)
            ));
        }
        Catchup::None => {}
        Catchup::Latest => {
            // A later fire time that is also due runs instead.
            if later_due() {
                return Decision::MissedLate(
                    "a later fire time was also due and catchup is latest".to_string(),
                );
            }
        }
    }
    Decision::Fire { fire_at: at }
}

/// `1h 5m 3s`.
pub fn human(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}
