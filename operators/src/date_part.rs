//! `date_part` / `EXTRACT` of year, month, day, hour, minute and second
//! on integers.
//!
//! Polars SQL reads these with `dt.year()`, `dt.hour()` …, which convert
//! every value to a chrono date-time first (`NaiveDate::add_days` was a
//! tenth of the dates pipeline's time, profiled). [`crate::sqlrewrite`]
//! turns `date_part('hour', x)` and `EXTRACT(HOUR FROM x)` into
//! `mudrock_date_part_hour(x)`, registered here beside `date_trunc`'s
//! functions: a date or a datetime without a time zone is read with
//! [`crate::civil`]'s integer calendar, anything else (times, time zones,
//! years chrono does not reach) with Polars' own function, and the result
//! has Polars' type (Int32 for a year, Int8 for the rest), so a query
//! gives what it gave. Other parts stay Polars'.

use polars::lazy::dsl::{BaseColumnUdf, UserDefinedFunction};
use polars::prelude::*;
use polars::sql::FunctionOptions;

use crate::civil;

/// Prefix of the functions the parts are rewritten to.
pub const PREFIX: &str = "mudrock_date_part_";

/// A part computed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// The parts, by their names in the internal functions.
const PARTS: &[(&str, Part)] = &[
    ("year", Part::Year),
    ("month", Part::Month),
    ("day", Part::Day),
    ("hour", Part::Hour),
    ("minute", Part::Minute),
    ("second", Part::Second),
];

/// The internal name of a part as a user spells it (Polars' spellings of
/// these six), or `None` for a part left to Polars.
pub fn canonical(part: &str) -> Option<&'static str> {
    Some(match part.to_ascii_lowercase().as_str() {
        "year" | "years" | "y" => "year",
        "month" | "months" | "mon" | "mons" => "month",
        "day" | "days" | "dayofmonth" | "d" => "day",
        "hour" | "hours" | "h" => "hour",
        "minute" | "minutes" | "mins" | "min" | "m" => "minute",
        "second" | "seconds" | "sec" | "secs" | "s" => "second",
        _ => return None,
    })
}

fn part(name: &str) -> Option<Part> {
    let unit = name.to_ascii_lowercase();
    let unit = unit.strip_prefix(PREFIX)?;
    PARTS.iter().find(|(u, _)| *u == unit).map(|(_, p)| *p)
}

/// Whether `name` is one of the internal functions this module computes.
pub fn knows(name: &str) -> bool {
    part(name).is_some()
}

/// Whether a function name is one of the internal ones (or uses their
/// prefix).
pub fn is_internal(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with(PREFIX)
}

impl Part {
    fn dtype(self) -> DataType {
        match self {
            Part::Year => DataType::Int32,
            _ => DataType::Int8,
        }
    }

    /// The part of `t`, in units of which a second holds `UPS`.
    #[inline]
    fn of_t<const UPS: i64>(self, t: i64) -> i64 {
        let (minute, hour) = (60 * UPS, 3_600 * UPS);
        match self {
            Part::Hour => t.rem_euclid(24 * hour) / hour,
            Part::Minute => t.rem_euclid(hour) / minute,
            Part::Second => t.rem_euclid(minute) / UPS,
            _ => self.of_days(t.div_euclid(24 * hour)),
        }
    }

    /// The part of day `d`: its year, month or day; no hours.
    #[inline]
    fn of_days(self, d: i64) -> i64 {
        let (y, m, day) = civil::civil_from_days(d);
        match self {
            Part::Year => y,
            Part::Month => m,
            Part::Day => day,
            _ => 0,
        }
    }

    /// Polars' own function, for what [`extract`] does not compute.
    fn polars(self, s: &Series) -> PolarsResult<Series> {
        Ok(match self {
            Part::Year => s.year()?.into_series(),
            Part::Month => s.month()?.into_series(),
            Part::Day => s.day()?.into_series(),
            Part::Hour => s.hour()?.into_series(),
            Part::Minute => s.minute()?.into_series(),
            Part::Second => s.second()?.into_series(),
        })
    }
}

/// The part of every value of `c`, of Polars' type.
fn extract(c: &Column, part: Part) -> PolarsResult<Column> {
    let s = c.as_materialized_series();
    let ints = match s.dtype() {
        DataType::Datetime(tu, None) => {
            let t = s.datetime()?.physical();
            let ups = match tu {
                TimeUnit::Milliseconds => 1_000,
                TimeUnit::Microseconds => 1_000_000,
                TimeUnit::Nanoseconds => 1_000_000_000,
            };
            civil::in_range(t.min(), t.max(), 86_400 * ups).then(|| match tu {
                TimeUnit::Milliseconds => t.apply_values(|t| part.of_t::<1_000>(t)),
                TimeUnit::Microseconds => t.apply_values(|t| part.of_t::<1_000_000>(t)),
                TimeUnit::Nanoseconds => t.apply_values(|t| part.of_t::<1_000_000_000>(t)),
            })
        }
        DataType::Date if matches!(part, Part::Year | Part::Month | Part::Day) => {
            let days = s.date()?.physical();
            if civil::in_range(days.min().map(i64::from), days.max().map(i64::from), 1) {
                let days = days.cast(&DataType::Int64)?;
                Some(days.i64()?.apply_values(|d| part.of_days(d)))
            } else {
                None
            }
        }
        _ => None,
    };
    let out = match ints {
        Some(ca) => ca.into_series().cast(&part.dtype())?,
        None => part.polars(s)?,
    };
    Ok(out.with_name(c.name().clone()).into_column())
}

/// The internal function `name`, if it is one.
pub fn udf(name: &str) -> Option<UserDefinedFunction> {
    let part = part(name)?;
    let udf = BaseColumnUdf::new(
        move |cols: &mut [Column]| match cols {
            [c] => extract(c, part),
            _ => polars_bail!(InvalidOperation: "date_part takes 2 arguments (part, value)"),
        },
        move |_: &Schema, fields: &[Field]| {
            let Some(f) = fields.first() else {
                polars_bail!(InvalidOperation: "date_part takes 2 arguments (part, value)");
            };
            if !f.dtype().is_temporal() {
                polars_bail!(InvalidOperation: "date_part needs a date, datetime or time, got {}", crate::dtype::name(f.dtype()));
            }
            Ok(Field::new(f.name().clone(), part.dtype()))
        },
    );
    let mut f = UserDefinedFunction::new(name.into(), udf);
    f.options = FunctionOptions::elementwise();
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The internal function against Polars' own, on the same column.
    fn both(part_name: &str, c: Column) -> (Series, Series) {
        let p = part(&format!("{PREFIX}{part_name}")).unwrap();
        let ours = extract(&c, p).unwrap().as_materialized_series().clone();
        let theirs = p.polars(c.as_materialized_series()).unwrap();
        (ours, theirs)
    }

    #[test]
    fn parts_are_polars_own_for_dates_and_datetimes_of_every_unit() {
        let us: Vec<Option<i64>> = (-200_000i64..200_000)
            .map(|d| Some(d * 86_400_000_123 + d.rem_euclid(86_400) * 1_000_001))
            .chain([None])
            .collect();
        let days: Vec<Option<i32>> = (-200_000..200_000).map(Some).chain([None]).collect();
        for (name, _) in PARTS {
            for tu in [
                TimeUnit::Milliseconds,
                TimeUnit::Microseconds,
                TimeUnit::Nanoseconds,
            ] {
                let c = Column::new("t".into(), &us)
                    .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                    .unwrap()
                    .cast(&DataType::Datetime(tu, None))
                    .unwrap();
                let (ours, theirs) = both(name, c);
                assert_eq!(ours.dtype(), theirs.dtype(), "{name} {tu:?}");
                assert!(ours.equals_missing(&theirs), "{name} {tu:?}");
            }
            if matches!(*name, "year" | "month" | "day") {
                let c = Column::new("d".into(), &days)
                    .cast(&DataType::Date)
                    .unwrap();
                let (ours, theirs) = both(name, c);
                assert_eq!(ours.name().as_str(), "d");
                assert!(ours.equals_missing(&theirs), "{name} of dates");
            }
        }
    }

    #[test]
    fn spellings_map_to_the_six_parts_and_others_stay_polars() {
        assert_eq!(canonical("HOURS"), Some("hour"));
        assert_eq!(canonical("mon"), Some("month"));
        assert_eq!(canonical("dow"), None);
        assert!(is_internal("MUDROCK_DATE_PART_HOUR"));
        assert!(udf("mudrock_date_part_quarter").is_none());
        assert!(knows("mudrock_date_part_minute") && !knows("mudrock_date_part_quarter"));
    }

    #[test]
    fn a_query_gives_what_polars_sql_gave() {
        let ts: Vec<Option<i64>> = vec![Some(1_709_294_461_123_456), Some(-86_400_000_001), None];
        let df = DataFrame::new_infer_height(vec![
            Column::new("ts".into(), ts)
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                .unwrap(),
        ])
        .unwrap();
        let q = "SELECT date_part('year', ts) AS y, EXTRACT(MONTH FROM ts) AS m, \
                 date_part('d', ts) AS d, EXTRACT(HOUR FROM ts) AS h, \
                 date_part('minute', ts) AS mi, date_part('seconds', ts) AS s FROM t";
        let rewritten = crate::sqlrewrite::rewrite_query(q).unwrap();
        assert!(rewritten.contains(PREFIX), "{rewritten}");
        let run = |mut ctx: polars::sql::SQLContext, q: &str| {
            ctx.register("t", df.clone().lazy());
            ctx.execute(q).unwrap().collect().unwrap()
        };
        let ours = run(crate::date_trunc::context(), &rewritten);
        let theirs = run(polars::sql::SQLContext::new(), q);
        assert_eq!(ours.schema(), theirs.schema());
        assert!(ours.equals_missing(&theirs), "{ours} vs {theirs}");
        assert_eq!(
            ours.column("h").unwrap().get(1).unwrap(),
            AnyValue::Int8(23)
        );
        // Not a temporal column: a message of ours, naming the type.
        let mut ctx = crate::date_trunc::context();
        ctx.register("t", df!("s" => ["x"]).unwrap().lazy());
        let e = ctx
            .execute(&format!("SELECT {PREFIX}hour(s) FROM t"))
            .and_then(|lf| lf.collect())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("date_part needs a date, datetime or time, got string"),
            "{e}"
        );
    }
}
