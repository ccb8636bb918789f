//! Calendar arithmetic on Polars' physical temporal values (days and
//! microseconds since 1970-01-01, no time zone), with integer operations
//! only.
//!
//! Polars 0.55 turns every value into a chrono date-time to read its hour
//! or truncate it to a month (`NaiveDate::add_days` and friends were 10%
//! of the dates pipeline's time and 11% of the timestamps one's, profiled).
//! These are Howard Hinnant's `civil_from_days` / `days_from_civil` on the
//! proleptic Gregorian calendar, chrono's, so they give chrono's answers;
//! [`in_range`] keeps callers to the years chrono handles, outside which
//! they leave the value to Polars as before.

/// Microseconds in a day.
pub const US_DAY: i64 = 86_400_000_000;

/// Days from 1970-01-01 to year ±200,000 (chrono reads ±262,143): values
/// beyond are left to Polars.
const MAX_DAYS: i64 = 200_000 * 366;

/// Whether a column whose smallest and largest values are `min` and `max`
/// (in units of which a day holds `per_day`; no value: nothing to read)
/// lies in the days these functions handle as chrono does.
pub fn in_range(min: Option<i64>, max: Option<i64>, per_day: i64) -> bool {
    [min, max]
        .into_iter()
        .flatten()
        .all(|t| (-MAX_DAYS..=MAX_DAYS).contains(&t.div_euclid(per_day)))
}

/// Year, month (1-12) and day (1-31) of a day number.
#[inline]
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day number of a year, month (1-12) and day (1-31).
#[inline]
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in month `m` (1-12) of year `y`.
#[inline]
pub fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Calendar units a value is truncated to with these functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    Year,
    Quarter,
    Month,
    /// Weeks start on Monday (1970-01-05 was one).
    Week,
}

/// The start of the unit holding day `days`, as a day number.
#[inline]
pub fn truncate_days(days: i64, unit: Calendar) -> i64 {
    if unit == Calendar::Week {
        return days - (days - 4).rem_euclid(7);
    }
    let (y, m, d) = civil_from_days(days);
    match unit {
        Calendar::Month => days - (d - 1),
        Calendar::Quarter => days_from_civil(y, m - (m - 1) % 3, 1),
        _ => days_from_civil(y, 1, 1),
    }
}

/// The start of the unit holding `us` (microseconds since the epoch).
#[inline]
pub fn truncate_us(us: i64, unit: Calendar) -> i64 {
    truncate_days(us.div_euclid(US_DAY), unit) * US_DAY
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;

    /// Day numbers over ±550 years around the epoch and at the range ends.
    fn days() -> Vec<i64> {
        let around = |c: i64| c - 1_000..c + 1_000;
        (-200_000..200_000)
            .chain(around(-MAX_DAYS + 1_000))
            .chain(around(MAX_DAYS - 1_000))
            .collect()
    }

    #[test]
    fn civil_dates_are_polars_own_day_by_day() {
        let days = days();
        let s = Series::new(
            "d".into(),
            days.iter().map(|&d| d as i32).collect::<Vec<_>>(),
        )
        .cast(&DataType::Date)
        .unwrap();
        let (y, m, d) = (s.year().unwrap(), s.month().unwrap(), s.day().unwrap());
        for (k, &n) in days.iter().enumerate() {
            let want = (
                i64::from(y.get(k).unwrap()),
                i64::from(m.get(k).unwrap()),
                i64::from(d.get(k).unwrap()),
            );
            assert_eq!(civil_from_days(n), want, "{n}");
            let (ny, nm, _) = civil_from_days(n + 1);
            if (ny, nm) != (want.0, want.1) {
                assert_eq!(days_in_month(want.0, want.1), want.2, "last day {n}");
            }
            assert_eq!(days_from_civil(want.0, want.1, want.2), n);
        }
    }

    #[test]
    fn truncation_is_polars_own_for_every_unit() {
        // A time of day that moves through the day from one value to the next.
        let us: Vec<i64> = days()
            .iter()
            .map(|&d| d * US_DAY + (d * 7_777_777_777).rem_euclid(US_DAY))
            .collect();
        let ca = Int64Chunked::from_vec("t".into(), us.clone())
            .into_datetime(TimeUnit::Microseconds, None);
        for (every, unit) in [
            ("1y", Calendar::Year),
            ("1q", Calendar::Quarter),
            ("1mo", Calendar::Month),
            ("1w", Calendar::Week),
        ] {
            let every_ca = StringChunked::from_slice("every".into(), &[every]);
            let want = ca.truncate(None, &every_ca).unwrap();
            for (k, &t) in us.iter().enumerate() {
                assert_eq!(
                    Some(truncate_us(t, unit)),
                    want.physical().get(k),
                    "{every} {t}"
                );
            }
        }
    }

    #[test]
    fn truncates_microseconds_before_the_epoch_down() {
        // 1969-12-31 23:59:59.999999 is in December 1969's month and week.
        let t = -1;
        let dec = days_from_civil(1969, 12, 1) * US_DAY;
        assert_eq!(truncate_us(t, Calendar::Month), dec);
        assert_eq!(
            truncate_us(t, Calendar::Year),
            days_from_civil(1969, 1, 1) * US_DAY
        );
        assert_eq!(
            truncate_us(t, Calendar::Week),
            days_from_civil(1969, 12, 29) * US_DAY
        );
        assert!(in_range(Some(-MAX_DAYS), Some(MAX_DAYS), 1));
        assert!(!in_range(Some(0), Some(MAX_DAYS + 1), 1));
        assert!(!in_range(Some(-(MAX_DAYS + 1) * US_DAY), None, US_DAY));
        assert!(in_range(None, None, US_DAY));
    }
}
