//! A schedule's fire times after an instant, in order, each with what the
//! daylight-saving rules made of it.
//!
//! Cron matches wall-clock times; the zone turns each matching wall time
//! into zero, one or two instants ([`wall::resolve`]). Because a later
//! wall time can name an earlier instant (a fold), candidates wait in a
//! heap until no wall time still to come can name an earlier one: wall
//! time `w` names instants at or after `w − (the largest offset the zone
//! has near w)`, read off the zone around the cursor ([`offset_range`]).
//!
//! Rules (the README's "Daylight saving"):
//! - a schedule whose hour field matches every hour fires at every instant
//!   whose wall time matches: both halves of a fold, nothing in a gap
//!   ("every elapsed hour");
//! - otherwise a gap time fires once at the gap's end (`dstGap: shift`) or
//!   not at all (`skip`), and a fold time at its first occurrence
//!   (`dstFold: first`), its second (`last`) or both;
//! - two fire times on one instant fire once (a shifted 02:00 meeting the
//!   03:00 fire); the others are kept as skipped ticks, so the ledger can
//!   say what became of every matching wall time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use super::spec::{DstFold, DstGap, Spec};
use super::wall::{self, Resolved};

/// One fire time of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tick {
    /// The nominal instant (before jitter): a run's `scheduled_for`.
    pub at: DateTime<Utc>,
    /// Fires sort before skips on one instant (field order is sort order).
    pub kind: TickKind,
    /// The wall-clock time in the schedule's zone that cron matched.
    pub wall: NaiveDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TickKind {
    /// Fires (the scheduler may still skip it: lateness, overlap, pause).
    Fire,
    /// Fires at the end of a gap its wall time fell into.
    FireShifted,
    /// Does not fire, for a daylight-saving reason.
    Skip(SkipReason),
}

impl TickKind {
    pub fn fires(self) -> bool {
        !matches!(self, TickKind::Skip(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// The wall time does not exist and `dstGap` is `skip`.
    Gap,
    /// The wall time does not exist and the schedule fires every hour.
    GapEveryHour,
    /// The other occurrence of a repeated wall time was chosen.
    FoldOther,
    /// Another fire time is on the same instant.
    SameInstant,
}

impl SkipReason {
    /// Why, for the ledger.
    pub fn reason(self, tick: &Tick, spec: &Spec) -> String {
        let w = tick.wall.format("%Y-%m-%d %H:%M:%S");
        let tz = spec.tz().name();
        match self {
            SkipReason::Gap => {
                format!("{w} does not exist in {tz} (clocks went forward) and dstGap is skip")
            }
            SkipReason::GapEveryHour => format!(
                "{w} does not exist in {tz} (clocks went forward); the schedule fires every elapsed hour"
            ),
            SkipReason::FoldOther => format!(
                "{w} happened twice in {tz} (clocks went back); dstFold is {} so this occurrence does not fire",
                spec.dst_fold().name()
            ),
            SkipReason::SameInstant => {
                format!("{w} fell on the same instant as another fire time, which fired")
            }
        }
    }
}

/// The smallest and largest UTC offset (seconds) a zone has within ±2.5
/// days of an instant, sampled every 6 hours: tz database transitions are
/// far further apart than that, so no offset in the window is missed.
pub(super) fn offset_range(tz: chrono_tz::Tz, around: DateTime<Utc>) -> (i64, i64) {
    use chrono::{Offset, TimeZone};
    (-10..=10)
        .map(|k| {
            let t = around + Duration::hours(6 * k);
            i64::from(
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            )
        })
        .fold((i64::MAX, i64::MIN), |(lo, hi), o| (lo.min(o), hi.max(o)))
}

/// Fire times after an instant, in order of (instant, wall time).
#[derive(Clone)]
pub struct Ticks<'a> {
    spec: &'a Spec,
    after: DateTime<Utc>,
    /// The next wall time to resolve is after this one.
    cursor: NaiveDateTime,
    exhausted: bool,
    heap: BinaryHeap<Reverse<Tick>>,
    last_fired: Option<DateTime<Utc>>,
}

impl<'a> Ticks<'a> {
    pub(super) fn new(spec: &'a Spec, after: DateTime<Utc>) -> Self {
        let after = after.max(spec.start().map_or(after, |s| s - Duration::seconds(1)));
        // An instant i after `after` has the wall time i + off(i) >
        // after + lo ≥ local(after) − (hi − lo).
        let (lo, hi) = offset_range(spec.tz(), after);
        let cursor = wall::local(spec.tz(), after) - Duration::seconds(hi - lo + 1);
        Ticks {
            spec,
            after,
            cursor,
            exhausted: false,
            heap: BinaryHeap::new(),
            last_fired: None,
        }
    }

    /// Resolves the next matching wall time into candidate ticks.
    fn advance(&mut self) {
        let Some(w) = self.spec.next_wall(self.cursor) else {
            self.exhausted = true;
            return;
        };
        self.cursor = w;
        let spec = self.spec;
        let mut push = |at: DateTime<Utc>, kind: TickKind| {
            if at > self.after {
                self.heap.push(Reverse(Tick { at, wall: w, kind }));
            }
        };
        match wall::resolve(spec.tz(), w) {
            Resolved::Single(t) => push(t, TickKind::Fire),
            Resolved::Fold(a, b) => {
                let (first, last) = if spec.every_hour() {
                    (TickKind::Fire, TickKind::Fire)
                } else {
                    let other = TickKind::Skip(SkipReason::FoldOther);
                    match spec.dst_fold() {
                        DstFold::First => (TickKind::Fire, other),
                        DstFold::Last => (other, TickKind::Fire),
                        DstFold::Both => (TickKind::Fire, TickKind::Fire),
                    }
                };
                push(a, first);
                push(b, last);
            }
            Resolved::Gap(end) => {
                let kind = if spec.every_hour() {
                    TickKind::Skip(SkipReason::GapEveryHour)
                } else {
                    match spec.dst_gap() {
                        DstGap::Shift => TickKind::FireShifted,
                        DstGap::Skip => TickKind::Skip(SkipReason::Gap),
                    }
                };
                push(end, kind);
            }
        }
    }
}

impl Iterator for Ticks<'_> {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        loop {
            if let Some(Reverse(top)) = self.heap.peek() {
                // A wall time after the cursor names an instant after
                // cursor − (the largest offset near it).
                let (_, hi) = offset_range(self.spec.tz(), self.cursor.and_utc());
                if self.exhausted || top.at <= self.cursor.and_utc() - Duration::seconds(hi) {
                    let Reverse(mut tick) = self.heap.pop().expect("peeked");
                    if self.spec.end().is_some_and(|end| tick.at > end) {
                        self.exhausted = true;
                        self.heap.clear();
                        return None;
                    }
                    if tick.kind.fires() {
                        if self.last_fired == Some(tick.at) {
                            tick.kind = TickKind::Skip(SkipReason::SameInstant);
                        } else {
                            self.last_fired = Some(tick.at);
                        }
                    }
                    return Some(tick);
                }
            } else if self.exhausted {
                return None;
            }
            if self.exhausted {
                continue;
            }
            self.advance();
        }
    }
}
