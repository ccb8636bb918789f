//! Wall-clock times against a zone's real transitions: which instants a
//! local time names (none in a spring-forward gap, two in a fall-back
//! fold), and where a gap ends. chrono-tz carries the tz database; no
//! transition table is exposed, so a gap's end is found by search.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// What a wall-clock time is in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// One instant.
    Single(DateTime<Utc>),
    /// Twice (fall back): the earlier and the later instant.
    Fold(DateTime<Utc>, DateTime<Utc>),
    /// Never (spring forward): the first instant after the gap, whose wall
    /// time is the first valid one after it.
    Gap(DateTime<Utc>),
}

/// The wall-clock time of an instant in a zone.
pub fn local(tz: Tz, at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&tz).naive_local()
}

/// Resolves a wall-clock time in a zone.
pub fn resolve(tz: Tz, wall: NaiveDateTime) -> Resolved {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => Resolved::Single(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
            Resolved::Fold(a.min(b), a.max(b))
        }
        LocalResult::None => Resolved::Gap(gap_end(tz, wall)),
    }
}

/// The step used to walk out of a gap (gaps are whole quarter hours or
/// longer, up to the day Samoa skipped in 2011).
const STEP: Duration = Duration::minutes(15);

/// The first instant whose wall time is after `wall`, a time inside a gap:
/// the gap's end. Walks wall time out of the gap on both sides, then
/// bisects the instants between (one transition lies there).
fn gap_end(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    let latest = |r: LocalResult<DateTime<Tz>>| match r {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(a, b) => Some(a.max(b)),
        LocalResult::None => None,
    };
    let earliest = |r: LocalResult<DateTime<Tz>>| match r {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(a, b) => Some(a.min(b)),
        LocalResult::None => None,
    };
    let mut before = wall;
    let lo = loop {
        before -= STEP;
        if let Some(t) = latest(tz.from_local_datetime(&before)) {
            break t.with_timezone(&Utc);
        }
    };
    let mut after = wall;
    let hi = loop {
        after += STEP;
        if let Some(t) = earliest(tz.from_local_datetime(&after)) {
            break t.with_timezone(&Utc);
        }
    };
    // Invariant: local(lo) < wall < local(hi); find the first second whose
    // wall time is past `wall`.
    let (mut lo, mut hi) = (lo.timestamp(), hi.timestamp());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let t = DateTime::from_timestamp(mid, 0).expect("within chrono's range");
        if local(tz, t) > wall {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).expect("within chrono's range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }
    fn utc(s: &str) -> DateTime<Utc> {
        wall(s).and_utc()
    }

    #[test]
    fn new_york_gap_and_fold() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2026-03-08 02:00 EST → 03:00 EDT (07:00Z).
        assert_eq!(
            resolve(ny, wall("2026-03-08 02:30")),
            Resolved::Gap(utc("2026-03-08 07:00"))
        );
        // 2026-11-01 02:00 EDT → 01:00 EST: 01:30 is 05:30Z and 06:30Z.
        assert_eq!(
            resolve(ny, wall("2026-11-01 01:30")),
            Resolved::Fold(utc("2026-11-01 05:30"), utc("2026-11-01 06:30"))
        );
        assert_eq!(
            resolve(ny, wall("2026-07-01 12:00")),
            Resolved::Single(utc("2026-07-01 16:00"))
        );
    }

    #[test]
    fn lord_howe_half_hour_gap() {
        // Lord Howe: +10:30 → +11 at 02:00 local on the first Sunday of
        // October; 02:15 does not exist, the gap ends at 02:30 (15:30Z).
        let lh: Tz = "Australia/Lord_Howe".parse().unwrap();
        assert_eq!(
            resolve(lh, wall("2026-10-04 02:15")),
            Resolved::Gap(utc("2026-10-03 15:30"))
        );
    }

    #[test]
    fn samoa_skipped_a_whole_day() {
        // 2011-12-29 23:59:59 -10 was followed by 2011-12-31 00:00 +14.
        let apia: Tz = "Pacific/Apia".parse().unwrap();
        assert_eq!(
            resolve(apia, wall("2011-12-30 12:00")),
            Resolved::Gap(utc("2011-12-30 10:00"))
        );
    }
}
