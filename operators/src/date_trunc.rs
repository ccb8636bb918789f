//! `date_trunc` on Polars' native temporal kernel.
//!
//! Polars SQL 0.55 has no `date_trunc`. [`crate::sqlrewrite`] turns
//! `date_trunc('month', x)` into a call of `mudrock_date_trunc_month(x)`,
//! a function this module's registry gives every SQL context the engine
//! runs: it truncates with `dt.truncate` (an integer operation on the
//! physical values) instead of formatting every value and parsing it back,
//! and gives what that gave: a datetime in microseconds without a time
//! zone (a date reads as its midnight). Year, quarter, month and week are
//! computed with [`civil`]'s integer calendar, where Polars converts each
//! value to a chrono date-time.
//!
//! Users cannot call these names themselves: the rewrite refuses a query
//! that names one.

use std::sync::Arc;

use polars::lazy::dsl::{BaseColumnUdf, UserDefinedFunction};
use polars::prelude::*;
use polars::sql::{FunctionOptions, FunctionRegistry};

use crate::civil;

/// Prefix of the functions `date_trunc` is rewritten to.
pub const PREFIX: &str = "mudrock_date_trunc_";

/// Units `date_trunc` accepts, with Polars' truncation interval.
pub const UNITS: &[(&str, &str)] = &[
    ("year", "1y"),
    ("quarter", "1q"),
    ("month", "1mo"),
    ("week", "1w"),
    ("day", "1d"),
    ("hour", "1h"),
    ("minute", "1m"),
    ("second", "1s"),
];

/// The interval of an internal function name (`mudrock_date_trunc_month`).
fn interval(name: &str) -> Option<&'static str> {
    let unit = name.to_ascii_lowercase();
    let unit = unit.strip_prefix(PREFIX)?;
    UNITS.iter().find(|(u, _)| *u == unit).map(|(_, i)| *i)
}

/// Whether a function name is one of the internal ones (this module's or
/// [`crate::date_part`]'s).
pub fn is_internal(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with(PREFIX) || crate::date_part::is_internal(name)
}

const OUT: DataType = DataType::Datetime(TimeUnit::Microseconds, None);

/// Truncates one column to `every`.
fn truncate(c: &Column, every: &str) -> PolarsResult<Column> {
    let dt = match c.dtype() {
        DataType::Date => c.cast(&OUT)?,
        DataType::Datetime(_, None) => c.clone(),
        DataType::Datetime(_, Some(tz)) => {
            polars_bail!(InvalidOperation: "date_trunc: datetimes with a time zone ({tz}) are not supported")
        }
        other => {
            polars_bail!(InvalidOperation: "date_trunc needs a date or datetime, got {}", crate::dtype::name(other))
        }
    };
    let s = dt.as_materialized_series();
    let ca = s.datetime()?;
    let out = match calendar(every) {
        // Calendar units on integers: Polars goes through chrono per value.
        Some(unit) if civil::in_range(ca.physical().min(), ca.physical().max(), civil::US_DAY) => {
            ca.physical()
                .apply_values(|t| civil::truncate_us(t, unit))
                .into_datetime(TimeUnit::Microseconds, None)
                .into_series()
        }
        _ => {
            let every = StringChunked::from_slice("every".into(), &[every]);
            ca.truncate(None, &every)?.into_series()
        }
    };
    Ok(out.cast(&OUT)?.with_name(c.name().clone()).into_column())
}

/// The calendar unit of an interval [`civil`] truncates to (Polars' own
/// kernel already does day and finer with integers).
fn calendar(every: &str) -> Option<civil::Calendar> {
    Some(match every {
        "1y" => civil::Calendar::Year,
        "1q" => civil::Calendar::Quarter,
        "1mo" => civil::Calendar::Month,
        "1w" => civil::Calendar::Week,
        _ => return None,
    })
}

/// The registry of the internal `date_trunc` and `date_part` functions.
pub struct Registry;

impl FunctionRegistry for Registry {
    fn register(&mut self, name: &str, _fun: UserDefinedFunction) -> PolarsResult<()> {
        polars_bail!(InvalidOperation: "functions cannot be registered (\"{name}\")")
    }

    fn get_udf(&self, name: &str) -> PolarsResult<Option<UserDefinedFunction>> {
        let Some(every) = interval(name) else {
            return Ok(crate::date_part::udf(name));
        };
        let udf = BaseColumnUdf::new(
            move |cols: &mut [Column]| match cols {
                [c] => truncate(c, every),
                _ => polars_bail!(InvalidOperation: "date_trunc takes 2 arguments (unit, value)"),
            },
            |_: &Schema, fields: &[Field]| {
                let name = fields.first().map(|f| f.name().clone()).unwrap_or_default();
                Ok(Field::new(name, OUT))
            },
        );
        let mut f = UserDefinedFunction::new(name.into(), udf);
        f.options = FunctionOptions::elementwise();
        Ok(Some(f))
    }

    fn contains(&self, name: &str) -> bool {
        interval(name).is_some() || crate::date_part::knows(name)
    }
}

/// A fresh SQL context whose only functions beyond Polars' own are these.
pub fn context() -> polars::sql::SQLContext {
    polars::sql::SQLContext::new().with_function_registry(Arc::new(Registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(q: &str, df: DataFrame) -> DataFrame {
        let mut ctx = context();
        ctx.register("t", df.lazy());
        ctx.execute(q).unwrap().collect().unwrap()
    }

    #[test]
    fn truncates_like_format_and_parse_did() {
        let ts = Column::new("ts".into(), [1_709_294_461_123_456i64, -86_400_000_001, 0])
            .cast(&OUT)
            .unwrap();
        let df = DataFrame::new_infer_height(vec![ts]).unwrap();
        for (unit, _) in UNITS
            .iter()
            .filter(|(u, _)| !matches!(*u, "week" | "quarter"))
        {
            let fmt = match *unit {
                "year" => "%Y-01-01 00:00:00",
                "month" => "%Y-%m-01 00:00:00",
                "day" => "%Y-%m-%d 00:00:00",
                "hour" => "%Y-%m-%d %H:00:00",
                "minute" => "%Y-%m-%d %H:%M:00",
                _ => "%Y-%m-%d %H:%M:%S",
            };
            let native = run(
                &format!("SELECT {PREFIX}{unit}(ts) AS x FROM t"),
                df.clone(),
            );
            let text = run(
                &format!("SELECT strptime(strftime(ts, '{fmt}'), '%Y-%m-%d %H:%M:%S') AS x FROM t"),
                df.clone(),
            );
            assert_eq!(native.column("x").unwrap().dtype(), &OUT, "{unit}");
            assert!(native.equals_missing(&text), "{unit}: {native} vs {text}");
        }
    }

    #[test]
    fn dates_read_as_midnight_and_other_types_are_refused() {
        let d = Column::new("d".into(), [19_782i32])
            .cast(&DataType::Date)
            .unwrap();
        let df = DataFrame::new_infer_height(vec![d]).unwrap();
        let out = run(&format!("SELECT {PREFIX}month(d) AS m FROM t"), df);
        let v = out.column("m").unwrap().get(0).unwrap().to_string();
        assert!(v.starts_with("2024-02-01 00:00:00"), "{v}");
        let s = DataFrame::new_infer_height(vec![Column::new("s".into(), ["x"])]).unwrap();
        let mut ctx = context();
        ctx.register("t", s.lazy());
        let e = ctx
            .execute(&format!("SELECT {PREFIX}day(s) FROM t"))
            .and_then(|lf| lf.collect())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("date_trunc needs a date or datetime, got string"),
            "{e}"
        );
    }
}
