//! ISO 8601 timestamps of one fixed shape, read with integers.
//!
//! Polars' fast parser reads `%Y-%m-%dT%H:%M:%S` field by field into a
//! chrono date-time and converts that to microseconds
//! (`NaiveDate::from_ymd_opt`, `datetime_to_timestamp_us`: 13% of the
//! timestamps pipeline's time, profiled). A batch whose every value is
//! exactly `YYYY-MM-DD?HH:MM:SS` (19 bytes, `?` the format's separator,
//! each field in range) is read here with [`civil`]'s calendar instead:
//! what Polars gives for such text. Any other value (a fraction, a time
//! zone, a leap second, a short field) sends the whole batch to Polars, as
//! before.

use mudrock_operators::civil;
use polars::prelude::*;

/// The separator between date and time of the whole-seconds formats read
/// here.
pub fn separator(format: &str) -> Option<u8> {
    match format {
        "%Y-%m-%dT%H:%M:%S" => Some(b'T'),
        "%Y-%m-%d %H:%M:%S" => Some(b' '),
        _ => None,
    }
}

/// Microseconds since the epoch of `YYYY-MM-DD?HH:MM:SS`, or `None` for
/// any other text.
#[inline]
pub fn micros(s: &[u8], sep: u8) -> Option<i64> {
    if s.len() != 19
        || s[4] != b'-'
        || s[7] != b'-'
        || s[10] != sep
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let digit = |i: usize| {
        let c = s[i].wrapping_sub(b'0');
        (c < 10).then_some(i64::from(c))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    if !(1..=12).contains(&month)
        || !(1..=civil::days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = civil::days_from_civil(year, month, day);
    Some(days * civil::US_DAY + (hour * 3_600 + minute * 60 + second) * 1_000_000)
}

/// The batch `text` as microsecond datetimes, if every value has the shape
/// (nulls stay null).
pub fn parse(text: &StringChunked, sep: u8) -> Option<DatetimeChunked> {
    let mut out: Vec<Option<i64>> = Vec::with_capacity(text.len());
    for v in text.iter() {
        out.push(match v {
            Some(s) => Some(micros(s.as_bytes(), sep)?),
            None => None,
        });
    }
    let ca = Int64Chunked::from_iter_options(text.name().clone(), out.into_iter());
    Some(ca.into_datetime(TimeUnit::Microseconds, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polars' reading of `values` with `format`.
    fn polars(values: &[String], format: &str) -> Vec<Option<i64>> {
        let text = StringChunked::from_iter_values("t".into(), values.iter().map(String::as_str));
        let raise = StringChunked::from_slice(PlSmallStr::EMPTY, &["raise"]);
        let out = text
            .as_datetime(
                Some(format),
                TimeUnit::Microseconds,
                false,
                false,
                None,
                &raise,
            )
            .unwrap();
        out.physical().iter().collect()
    }

    #[test]
    fn reads_what_polars_reads_and_leaves_the_rest_to_it() {
        let mut values = Vec::new();
        // Every day of 1896-2104 (leap days, century years) at times
        // that move through the day, and the calendar's ends.
        let first = civil::days_from_civil(1896, 1, 1);
        for (k, day) in (first..first + 209 * 366).enumerate() {
            let (y, m, d) = civil::civil_from_days(day);
            let s = k as i64 * 7_919 % 86_400;
            values.push(format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                s / 3600,
                s / 60 % 60,
                s % 60
            ));
        }
        values.extend(["0000-01-01T00:00:00", "9999-12-31T23:59:59"].map(String::from));
        let want = polars(&values, "%Y-%m-%dT%H:%M:%S");
        for (v, w) in values.iter().zip(&want) {
            assert_eq!(micros(v.as_bytes(), b'T'), *w, "{v}");
            assert!(w.is_some(), "{v}");
        }
        // Not the shape, or out of range: none here, whatever Polars makes
        // of them (it reads some: a short field, a leap second).
        for v in [
            "2023-02-29T00:00:00",
            "1900-02-29T00:00:00",
            "2024-04-31T00:00:00",
            "2024-13-01T00:00:00",
            "2024-00-10T00:00:00",
            "2024-01-00T00:00:00",
            "2024-01-01T24:00:00",
            "2024-01-01T23:60:00",
            "2024-01-01T23:59:60",
            "2024-01-01 23:59:59",
            "2024-1-01T23:59:59",
            "2024-01-01T23:59:59.5",
            "2024-01-01T23:59:59Z",
            "2024-01-01T23:5a:59",
            "+024-01-01T23:59:59",
        ] {
            assert_eq!(micros(v.as_bytes(), b'T'), None, "{v}");
        }
        assert_eq!(
            micros(b"2024-01-01 23:59:59", b' '),
            want_of("2024-01-01 23:59:59")
        );
        let batch = StringChunked::from_iter_options(
            "t".into(),
            [Some("2024-02-29T12:00:01"), None].into_iter(),
        );
        let got = parse(&batch, b'T').unwrap();
        assert_eq!(got.physical().get(0), want_of("2024-02-29 12:00:01"));
        assert_eq!(got.physical().get(1), None);
        let bad =
            StringChunked::from_iter_values("t".into(), ["2024-02-29T12:00:01", "x"].into_iter());
        assert!(parse(&bad, b'T').is_none());
        assert_eq!(separator("%Y-%m-%d %H:%M:%S"), Some(b' '));
        assert_eq!(separator("%d/%m/%Y %H:%M:%S"), None);
    }

    fn want_of(v: &str) -> Option<i64> {
        polars(&[v.to_string()], "%Y-%m-%d %H:%M:%S")[0]
    }
}
