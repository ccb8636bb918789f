//! Schedules as pure time arithmetic (core: no database, no clock).
//!
//! A [`Spec`] is a cron expression (5 or 6 fields, seconds optional, or an
//! `@hourly`-style macro; croner) in an IANA time zone (chrono-tz), with an
//! optional start and end, a jitter and two daylight-saving rules. Its
//! [`Spec::ticks_after`] lists every fire time after an instant, already
//! resolved against the zone's real transitions ([`wall`]): a wall-clock
//! time that does not exist (spring forward) and one that happens twice
//! (fall back) each become a tick with a defined outcome. What the
//! scheduler then does with a due tick (catch-up, lateness, pause) is
//! [`plan`]; overlap with running runs is the database's business.

mod plan;
mod spec;
mod ticks;
pub mod wall;

pub use plan::{Catchup, Decision, PlanInput, plan_due};
pub use spec::{DstFold, DstGap, Overlap, Problem, Spec, SpecInput};
pub use ticks::{SkipReason, Tick, TickKind, Ticks};

#[cfg(test)]
mod dst_tests;
#[cfg(test)]
mod tests;
