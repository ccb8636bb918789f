//! Date and datetime text formats: the candidates a CSV column's format
//! is inferred from, in Polars' order (polars-time's `patterns`), and the
//! check of a format a pipeline gives (`schemaOverrides[].format`).

use std::fmt::Write;

use chrono::{NaiveDate, NaiveDateTime};

/// What a column is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateKind {
    Date,
    Datetime,
}

/// Polars' candidate formats (polars-time's `patterns`), in its order:
/// dates, then datetimes year first, then day first.
pub const DATE_FORMATS: &[&str] = &[
    "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y",
];
pub const DATETIME_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H%M%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H%M%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H%M",
    "%Y-%m-%d",
    "%Y/%m/%dT%H:%M:%S%.f",
    "%Y/%m/%dT%H%M%S%.f",
    "%Y/%m/%dT%H:%M",
    "%Y/%m/%dT%H%M",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H%M%S%.f",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d %H%M",
    "%Y/%m/%d",
    "%Y.%m.%dT%H:%M:%S%.f",
    "%Y.%m.%dT%H%M%S%.f",
    "%Y.%m.%dT%H:%M",
    "%Y.%m.%dT%H%M",
    "%Y.%m.%d %H:%M:%S%.f",
    "%Y.%m.%d %H%M%S%.f",
    "%Y.%m.%d %H:%M",
    "%Y.%m.%d %H%M",
    "%Y.%m.%d",
    "%d-%m-%YT%H:%M:%S%.f",
    "%d-%m-%YT%H%M%S%.f",
    "%d-%m-%YT%H:%M",
    "%d-%m-%YT%H%M",
    "%d-%m-%Y %H:%M:%S%.f",
    "%d-%m-%Y %H%M%S%.f",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y %H%M",
    "%d-%m-%Y",
    "%d/%m/%YT%H:%M:%S%.f",
    "%d/%m/%YT%H%M%S%.f",
    "%d/%m/%YT%H:%M",
    "%d/%m/%YT%H%M",
    "%d/%m/%Y %H:%M:%S%.f",
    "%d/%m/%Y %H%M%S%.f",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H%M",
    "%d/%m/%Y",
    "%d.%m.%YT%H:%M:%S%.f",
    "%d.%m.%YT%H%M%S%.f",
    "%d.%m.%YT%H:%M",
    "%d.%m.%YT%H%M",
    "%d.%m.%Y %H:%M:%S%.f",
    "%d.%m.%Y %H%M%S%.f",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H%M",
    "%d.%m.%Y",
];

/// Whether `format` reads `value` as the dtype (a datetime format without
/// a time reads midnight, as Polars does).
pub fn reads(kind: DateKind, format: &str, value: &str) -> bool {
    match kind {
        DateKind::Date => NaiveDate::parse_from_str(value, format).is_ok(),
        DateKind::Datetime => {
            NaiveDateTime::parse_from_str(value, format).is_ok()
                || (!format.contains("%H") && NaiveDate::parse_from_str(value, format).is_ok())
        }
    }
}

/// The format to read a column with, from a sample of its values (in
/// file order): of the candidates that read the first value, the one that
/// reads the most of the sample (the earliest on a tie). When it does not
/// read them all but every value has some candidate that reads it, the
/// column mixes formats: None, and the reader parses it value by value as
/// before. A value no candidate reads is bad data: the format stands, and
/// the conversion names that value.
pub fn infer(kind: DateKind, sample: &[&str]) -> Option<&'static str> {
    let candidates = match kind {
        DateKind::Date => DATE_FORMATS,
        DateKind::Datetime => DATETIME_FORMATS,
    };
    let first = sample.first()?;
    let mut best: Option<(&'static str, usize)> = None;
    for f in candidates.iter().copied().filter(|f| reads(kind, f, first)) {
        let n = sample.iter().filter(|v| reads(kind, f, v)).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((f, n));
        }
    }
    let (format, n) = best?;
    if n < sample.len()
        && sample
            .iter()
            .all(|v| candidates.iter().any(|f| reads(kind, f, v)))
    {
        return None;
    }
    Some(format)
}

/// Whether a format given in a pipeline is one chrono understands and
/// names a full date (for validation: an error message, or None).
pub fn check_format(format: &str) -> Option<String> {
    use chrono::format::{Item, StrftimeItems};
    if format.is_empty() || format.len() > 64 {
        return Some("must be 1 to 64 characters".into());
    }
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Some(format!("\"{format}\" is not a valid strftime format"));
    }
    // It reads a full date when a date written in it reads back.
    let probe = NaiveDate::from_ymd_opt(2031, 11, 23)
        .and_then(|d| d.and_hms_opt(13, 14, 15))
        .expect("a valid date");
    let mut text = String::new();
    if write!(text, "{}", probe.format(format)).is_err() {
        return Some(format!("\"{format}\" is not a valid strftime format"));
    }
    let back = NaiveDateTime::parse_from_str(&text, format)
        .map(|t| t.date())
        .or_else(|_| NaiveDate::parse_from_str(&text, format));
    match back {
        Ok(d) if d == probe.date() => None,
        _ => Some(format!(
            "\"{format}\" does not name a full date (year, month and day)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_the_first_format_that_reads_every_sample_value() {
        let dt = DateKind::Datetime;
        assert_eq!(
            infer(dt, &["2024-01-05T10:11:12", "2024-02-29T00:00:00.5"]),
            Some("%Y-%m-%dT%H:%M:%S%.f")
        );
        assert_eq!(infer(dt, &["2024-01-05 10:11"]), Some("%Y-%m-%d %H:%M"));
        assert_eq!(infer(dt, &["2024-01-05"]), Some("%Y-%m-%d"));
        assert_eq!(
            infer(dt, &["05/01/2024 10:11:12"]),
            Some("%d/%m/%Y %H:%M:%S%.f")
        );
        // An offset is left to the reader; so is an empty sample.
        assert_eq!(infer(dt, &["2024-01-05T10:11:12+02:00"]), None);
        assert_eq!(infer(dt, &[]), None);
        assert_eq!(
            infer(DateKind::Date, &["2024-01-05", "2024-12-31"]),
            Some("%Y-%m-%d")
        );
        assert_eq!(infer(DateKind::Date, &["31.12.2024"]), Some("%d.%m.%Y"));
        // A bad value keeps the format (the conversion will name it); two
        // formats in one column leave it to the reader.
        assert_eq!(
            infer(DateKind::Date, &["2024-01-05", "nope"]),
            Some("%Y-%m-%d")
        );
        assert_eq!(infer(DateKind::Date, &["2024-01-05", "2024/01/06"]), None);
        assert_eq!(
            infer(
                dt,
                &[
                    "2024-01-05 10:11",
                    "2024-01-05 10:11:12",
                    "2024-01-06 10:11:13"
                ]
            ),
            None
        );
        assert_eq!(
            infer(dt, &["2024-01-05T10:11:12", "2024-13-01T00:00:00"]),
            Some("%Y-%m-%dT%H:%M:%S%.f")
        );
    }

    #[test]
    fn given_formats_are_checked() {
        assert_eq!(check_format("%Y-%m-%dT%H:%M:%S"), None);
        assert_eq!(check_format("%F"), None);
        assert!(
            check_format("%Y-%m-%Q")
                .unwrap()
                .contains("not a valid strftime format")
        );
        assert!(
            check_format("%H:%M")
                .unwrap()
                .contains("does not name a full date")
        );
        assert!(
            check_format("%Y-%m")
                .unwrap()
                .contains("does not name a full date")
        );
        assert_eq!(check_format("%b %d %Y %H:%M"), None);
        assert_eq!(check_format("%d.%m.%y"), None);
        assert!(check_format("").is_some());
    }
}
