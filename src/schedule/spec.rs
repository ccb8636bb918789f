//! A schedule's time specification, checked at create time: the cron
//! expression (each field named when wrong), the zone ("did you mean"),
//! start before end, a jitter shorter than the time between fires, and a
//! spec that fires at all. Every problem is collected, with its field.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

use super::ticks::Ticks;
use crate::operators::did_you_mean;

/// The longest cron expression accepted (`schedule.cron`).
pub const MAX_CRON_CHARS: usize = 200;
/// The longest jitter accepted, in seconds (a week).
pub const MAX_JITTER_SECS: u32 = 7 * 86_400;

/// What to do with a wall-clock time that does not exist (spring forward).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "service", derive(sqlx::Type, utoipa::ToSchema))]
#[cfg_attr(
    feature = "service",
    sqlx(type_name = "dst_gap_policy", rename_all = "snake_case")
)]
pub enum DstGap {
    /// Fire once at the first valid instant after it.
    #[default]
    Shift,
    /// Do not fire (the ledger records it as `dst_skipped`).
    Skip,
}

/// Which occurrence of a repeated wall-clock time fires (fall back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "service", derive(sqlx::Type, utoipa::ToSchema))]
#[cfg_attr(
    feature = "service",
    sqlx(type_name = "dst_fold_policy", rename_all = "snake_case")
)]
pub enum DstFold {
    #[default]
    First,
    Last,
    Both,
}

impl DstFold {
    pub fn name(self) -> &'static str {
        match self {
            DstFold::First => "first",
            DstFold::Last => "last",
            DstFold::Both => "both",
        }
    }
}

/// What a scheduled run does when the pipeline's previous scheduled run
/// is still queued or running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "service", derive(sqlx::Type, utoipa::ToSchema))]
#[cfg_attr(
    feature = "service",
    sqlx(type_name = "overlap_policy", rename_all = "snake_case")
)]
pub enum Overlap {
    /// Do not run (the ledger says `skipped_overlap`).
    #[default]
    Skip,
    /// Run after it, with at most one run waiting.
    QueueOne,
    /// Run alongside.
    Allow,
    /// Cancel it, then run.
    CancelOther,
}

impl Overlap {
    pub fn name(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::QueueOne => "queue_one",
            Overlap::Allow => "allow",
            Overlap::CancelOther => "cancel_other",
        }
    }
}

/// A specification as given (API body, CLI flags, database row).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecInput {
    pub cron: String,
    pub timezone: String,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub jitter_secs: u32,
    pub dst_gap: DstGap,
    pub dst_fold: DstFold,
}

/// One thing wrong with a specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field, as the API spells it (`cron`, `timezone`, `endAt`, ...).
    pub field: &'static str,
    pub message: String,
}

fn problem(field: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        field,
        message: message.into(),
    }
}

/// A checked specification.
#[derive(Debug, Clone)]
pub struct Spec {
    cron: Cron,
    tz: Tz,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    jitter_secs: u32,
    dst_gap: DstGap,
    dst_fold: DstFold,
    every_hour: bool,
}

/// The names of the cron fields, with their ranges, for messages.
const FIELDS5: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, #, L"),
];

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Parses a cron expression; the error names the field at fault (found by
/// putting `*` in each field in turn until the expression parses).
fn parse_cron(text: &str) -> Result<Cron, String> {
    let text = text.trim();
    if text.chars().count() > MAX_CRON_CHARS {
        return Err(format!(
            "is longer than {MAX_CRON_CHARS} characters (limit schedule.cron)"
        ));
    }
    let e = match parser().parse(text) {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    if text.starts_with('@') {
        return Err(format!(
            "\"{text}\" is not a known macro (@yearly, @annually, @monthly, @weekly, @daily, @hourly)"
        ));
    }
    if !(5..=6).contains(&fields.len()) {
        return Err(format!(
            "\"{text}\" has {} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (with seconds first)",
            fields.len()
        ));
    }
    let names: Vec<(&str, &str)> = if fields.len() == 6 {
        std::iter::once(("second", "0-59")).chain(FIELDS5).collect()
    } else {
        FIELDS5.to_vec()
    };
    for (i, (name, range)) in names.iter().enumerate() {
        let mut probe = fields.clone();
        probe[i] = "*";
        if parser().parse(&probe.join(" ")).is_ok() {
            return Err(format!(
                "the {name} field \"{}\" is invalid (allowed: {range}, with * , - /)",
                fields[i]
            ));
        }
    }
    Err(format!("\"{text}\" is not a valid cron expression ({e})"))
}

fn parse_tz(name: &str) -> Result<Tz, String> {
    if let Ok(tz) = Tz::from_str(name) {
        return Ok(tz);
    }
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "unknown time zone \"{name}\"; did you mean \"{}\"?",
            tz.name()
        ));
    }
    let hint = did_you_mean(name, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
        .map(|h| format!("; {h}"))
        .unwrap_or_default();
    Err(format!(
        "unknown time zone \"{name}\" (an IANA name such as Europe/Paris){hint}"
    ))
}

impl Spec {
    /// Checks a specification at create or update time: [`Spec::parse`],
    /// and a spec with an end must fire between `now` and it.
    pub fn validate(input: &SpecInput, now: DateTime<Utc>) -> Result<Spec, Vec<Problem>> {
        let spec = Spec::parse(input)?;
        let from = spec.start.unwrap_or(now).max(now);
        if let Some(end) = spec.end
            && !spec
                .ticks_after(from - Duration::seconds(1))
                .any(|t| t.kind.fires())
        {
            return Err(vec![problem(
                "endAt",
                format!("the schedule never fires between {from} and its end {end}"),
            )]);
        }
        Ok(spec)
    }

    /// Checks what does not depend on the time: the cron expression, the
    /// zone, start before end, the jitter, and that the spec fires at all.
    pub fn parse(input: &SpecInput) -> Result<Spec, Vec<Problem>> {
        let mut problems = Vec::new();
        let cron = parse_cron(&input.cron).map_err(|m| problems.push(problem("cron", m)));
        let tz = parse_tz(input.timezone.trim()).map_err(|m| problems.push(problem("timezone", m)));
        if let (Some(s), Some(e)) = (input.start_at, input.end_at)
            && e <= s
        {
            problems.push(problem("endAt", format!("{e} is not after startAt {s}")));
        }
        if input.jitter_secs > MAX_JITTER_SECS {
            problems.push(problem(
                "jitterSeconds",
                format!(
                    "{} is over the limit of {MAX_JITTER_SECS}",
                    input.jitter_secs
                ),
            ));
        }
        let (Ok(cron), Ok(tz)) = (cron, tz) else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let every_hour = (0..24).all(|h| cron.pattern.hour_match(h).unwrap_or(false));
        let spec = Spec {
            cron,
            tz,
            start: input.start_at,
            end: input.end_at,
            jitter_secs: input.jitter_secs,
            dst_gap: input.dst_gap,
            dst_fold: input.dst_fold,
            every_hour,
        };
        spec.check_fires(input)?;
        Ok(spec)
    }

    /// A spec that never fires, or a jitter not shorter than the time
    /// between two fires, is refused.
    fn check_fires(&self, input: &SpecInput) -> Result<(), Vec<Problem>> {
        // The Gregorian calendar repeats every 400 years (weekdays too), so
        // a pattern that matches nothing in 400 years matches nothing ever.
        let cycle = NaiveDate::from_ymd_opt(4600, 1, 1)
            .expect("valid date")
            .and_hms_opt(0, 0, 0)
            .expect("valid time");
        if self.cron.find_next_occurrence(&cycle, true).is_err() {
            return Err(vec![problem(
                "cron",
                format!("\"{}\" never fires (no date matches it)", input.cron.trim()),
            )]);
        }
        if self.jitter_secs > 0 {
            // The shortest wall-clock gap between fires over a sample.
            let mut prev: Option<NaiveDateTime> = None;
            let mut w = cycle - Duration::seconds(1);
            let mut shortest = i64::MAX;
            for _ in 0..1_000 {
                let Some(next) = self.next_wall(w) else { break };
                if let Some(p) = prev {
                    shortest = shortest.min((next - p).num_seconds());
                }
                prev = Some(next);
                w = next;
            }
            if i64::from(self.jitter_secs) >= shortest {
                return Err(vec![problem(
                    "jitterSeconds",
                    format!(
                        "{} s is not shorter than the {shortest} s between two fires",
                        self.jitter_secs
                    ),
                )]);
            }
        }
        Ok(())
    }

    /// Fire times after `after`, in order (see [`Ticks`]).
    pub fn ticks_after(&self, after: DateTime<Utc>) -> Ticks<'_> {
        Ticks::new(self, after)
    }

    /// The next wall-clock time after `wall` that the cron matches.
    pub(super) fn next_wall(&self, wall: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron.find_next_occurrence(&wall, false).ok()
    }

    /// The delay of a fire, deterministic per (seed, fire time): up to the
    /// jitter, and always before the next fire time.
    pub fn jitter(
        &self,
        seed: &[u8],
        at: DateTime<Utc>,
        next_at: Option<DateTime<Utc>>,
    ) -> Duration {
        if self.jitter_secs == 0 {
            return Duration::zero();
        }
        let mut h = blake3::Hasher::new();
        h.update(seed);
        h.update(&at.timestamp().to_le_bytes());
        let n = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
        let mut d = Duration::seconds((n % u64::from(self.jitter_secs)) as i64);
        if let Some(next) = next_at {
            d = d
                .min((next - at) - Duration::seconds(1))
                .max(Duration::zero());
        }
        d
    }

    /// When a tick is due: a firing one at its jittered time, a skipped
    /// one at its instant. `next` is the tick after it.
    pub fn due_at(
        &self,
        seed: &[u8],
        tick: &super::Tick,
        next: Option<&super::Tick>,
    ) -> DateTime<Utc> {
        if tick.kind.fires() {
            tick.at + self.jitter(seed, tick.at, next.map(|n| n.at))
        } else {
            tick.at
        }
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }
    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.start
    }
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }
    pub fn dst_gap(&self) -> DstGap {
        self.dst_gap
    }
    pub fn dst_fold(&self) -> DstFold {
        self.dst_fold
    }
    /// Whether the hour field matches every hour: such a schedule fires at
    /// every instant whose wall time matches (every elapsed hour).
    pub fn every_hour(&self) -> bool {
        self.every_hour
    }
}
