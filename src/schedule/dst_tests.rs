//! The daylight-saving rules checked on every real transition of several
//! zones for ten years ahead, against a brute-force oracle that knows no
//! cron crate and no gap search: it lists every minute's instant around
//! the transition with its wall time, and derives from that alone what
//! each rule says must fire.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::wall::local;
use super::*;

/// Northern and southern hemispheres, 30- and 45-minute offsets, a zone
/// whose clocks change at midnight.
const ZONES: [&str; 6] = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
];

fn offset(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

/// Every offset change in [from, to), to the second.
fn transitions(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let n = t + Duration::hours(1);
        if offset(tz, t) != offset(tz, n) {
            let (mut lo, mut hi) = (t.timestamp(), n.timestamp());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let m = DateTime::from_timestamp(mid, 0).unwrap();
                if offset(tz, m) == offset(tz, t) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(DateTime::from_timestamp(hi, 0).unwrap());
        }
        t = n;
    }
    out
}

/// What a tick says, for comparison: instant, wall time, fires.
type Seen = (DateTime<Utc>, NaiveDateTime, bool);

/// The oracle: for `minute` and `hour` (None = every hour), the ticks
/// whose wall times lie in `walls`, from the minute-by-minute table.
fn expected(
    table: &BTreeMap<NaiveDateTime, Vec<DateTime<Utc>>>,
    instants: &[(DateTime<Utc>, NaiveDateTime)],
    walls: (NaiveDateTime, NaiveDateTime),
    minute: u32,
    hour: Option<u32>,
    gap: DstGap,
    fold: DstFold,
) -> Vec<Seen> {
    let mut out: Vec<(DateTime<Utc>, bool, NaiveDateTime)> = Vec::new();
    let mut w = walls.0;
    while w <= walls.1 {
        if w.minute() == minute && hour.is_none_or(|h| w.hour() == h) {
            let at = table.get(&w).cloned().unwrap_or_default();
            match at.as_slice() {
                [] => {
                    let end = instants.iter().find(|(_, l)| *l > w).unwrap().0;
                    let fires = hour.is_some() && gap == DstGap::Shift;
                    out.push((end, fires, w));
                }
                [one] => out.push((*one, true, w)),
                [a, b] => {
                    let (fa, fb) = match (hour, fold) {
                        (None, _) | (_, DstFold::Both) => (true, true),
                        (_, DstFold::First) => (true, false),
                        (_, DstFold::Last) => (false, true),
                    };
                    out.push((*a, fa, w));
                    out.push((*b, fb, w));
                }
                more => panic!("{w} names {} instants", more.len()),
            }
        }
        w += Duration::minutes(1);
    }
    // Fires first on an instant, then by wall time; one fire per instant.
    out.sort_by_key(|(at, fires, w)| (*at, !*fires, *w));
    let mut last = None;
    out.into_iter()
        .map(|(at, fires, w)| {
            let fires = fires && last != Some(at);
            if fires {
                last = Some(at);
            }
            (at, w, fires)
        })
        .collect()
}

#[test]
fn every_transition_of_ten_years_follows_the_rules() {
    let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2036, 1, 1, 0, 0, 0).unwrap();
    let now = Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap();
    let (mut checked_transitions, mut checked_specs, mut gaps, mut folds) = (0, 0, 0, 0);
    for zone in ZONES {
        let tz: Tz = zone.parse().unwrap();
        let found = transitions(tz, from, to);
        assert!(
            found.len() >= 18,
            "{zone}: only {} transitions",
            found.len()
        );
        for x in found {
            if offset(tz, x) > offset(tz, x - Duration::seconds(1)) {
                gaps += 1;
            } else {
                folds += 1;
            }
            // Every minute's instant within ±18 h, with its wall time.
            let instants: Vec<(DateTime<Utc>, NaiveDateTime)> = (-18 * 60..=18 * 60)
                .map(|m| {
                    let t = x + Duration::minutes(m);
                    (t, local(tz, t))
                })
                .collect();
            let mut table: BTreeMap<NaiveDateTime, Vec<DateTime<Utc>>> = BTreeMap::new();
            for (t, l) in &instants {
                table.entry(*l).or_default().push(*t);
            }
            let walls = (
                local(tz, x - Duration::hours(12)),
                local(tz, x + Duration::hours(12)),
            );
            let h = local(tz, x - Duration::seconds(1)).hour();
            let hours = [None, Some(h), Some((h + 1) % 24), Some((h + 23) % 24)];
            for minute in [0, 15, 30, 45] {
                for hour in hours {
                    for gap in [DstGap::Shift, DstGap::Skip] {
                        for fold in [DstFold::First, DstFold::Last, DstFold::Both] {
                            let cron = match hour {
                                Some(h) => format!("{minute} {h} * * *"),
                                None => format!("{minute} * * * *"),
                            };
                            let spec = Spec::validate(
                                &SpecInput {
                                    cron: cron.clone(),
                                    timezone: zone.into(),
                                    dst_gap: gap,
                                    dst_fold: fold,
                                    ..Default::default()
                                },
                                now,
                            )
                            .unwrap();
                            let want = expected(&table, &instants, walls, minute, hour, gap, fold);
                            let got: Vec<Seen> = spec
                                .ticks_after(x - Duration::hours(16))
                                .take_while(|t| t.at <= x + Duration::hours(16))
                                .filter(|t| t.wall >= walls.0 && t.wall <= walls.1)
                                .map(|t| (t.at, t.wall, t.kind.fires()))
                                .collect();
                            assert_eq!(
                                got, want,
                                "{zone} transition at {x}: cron {cron:?}, {gap:?}, {fold:?}"
                            );
                            checked_specs += 1;
                        }
                    }
                }
            }
            checked_transitions += 1;
        }
    }
    println!(
        "dst rules: {} zones, {checked_transitions} transitions ({gaps} gaps, {folds} folds), {checked_specs} schedule checks",
        ZONES.len()
    );
}

#[test]
fn ticks_are_strictly_ordered_and_never_repeat_a_fire() {
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for zone in ZONES {
        for cron in ["*/30 * * * *", "0 2 * * *", "30 1 * * *", "0 0 * * *"] {
            let spec = Spec::validate(
                &SpecInput {
                    cron: cron.into(),
                    timezone: zone.into(),
                    dst_fold: DstFold::Both,
                    ..Default::default()
                },
                now,
            )
            .unwrap();
            let fires: Vec<_> = spec
                .ticks_after(now)
                .take_while(|t| t.at < now + Duration::days(366))
                .filter(|t| t.kind.fires())
                .map(|t| t.at)
                .collect();
            assert!(
                fires.windows(2).all(|w| w[0] < w[1]),
                "{zone} {cron}: fires out of order or repeated"
            );
        }
    }
}
