//! Date and datetime columns of CSV sources, read as text and converted
//! with one format per column.
//!
//! Polars' CSV reader parses a column declared `date`/`datetime` value by
//! value, trying its formats for each (about four times slower than one
//! explicit format on two million ISO timestamps). Here such a column is
//! read as a string and converted once with a single format: the one the
//! pipeline gives (`schemaOverrides[].format`) or the one
//! [`crate::model::date_format::infer`] picks from a sample at the start
//! of the first file (Polars' own candidates, in Polars' order). So valid
//! data gives exactly what the reader gave; a value the format does not
//! read fails the node with the column, the value, its row and the format
//! ([`first_bad`]).
//!
//! A sample no candidate reads at its first value (time zone offsets), a
//! column of nulls, or one mixing formats the reader reads value by value
//! keeps the reader's own parsing, as before.

use polars::prelude::*;

use super::SourceData;
use crate::model::date_format::{DateKind, infer};
use crate::model::pipeline::IngestionConfig;

/// Rows read from the start of the first file to infer a format.
pub const SAMPLE_ROWS: usize = 256;

/// A column read as text and converted with one format.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub column: String,
    /// Index of its entry in `schemaOverrides`.
    pub index: usize,
    pub dtype: DataType,
    pub format: String,
    /// Whether the pipeline gave the format (else it was inferred).
    pub given: bool,
}

impl Converted {
    /// The conversion: strict, so a value the format does not read fails.
    pub fn expr(&self, strict: bool) -> Expr {
        if let (DataType::Datetime(..), Some(whole)) =
            (&self.dtype, self.format.strip_suffix("%.f"))
        {
            return whole_seconds_first(self.column.as_str(), whole, &self.format, strict);
        }
        let options = StrptimeOptions {
            format: Some(self.format.as_str().into()),
            strict,
            exact: true,
            // Dates repeat (a day per many rows); datetimes mostly do not,
            // and Polars' per-value cache was then 8% of a timestamps scan.
            cache: matches!(self.dtype, DataType::Date),
        };
        let c = col(self.column.as_str());
        match &self.dtype {
            DataType::Date => c.str().to_date(options),
            _ => c
                .str()
                .to_datetime(Some(TimeUnit::Microseconds), None, options, lit("raise")),
        }
    }
}

/// A format ending in fractional seconds (`%.f`) reads whole seconds too,
/// but Polars parses it value by value with chrono, while the same format
/// without `%.f` takes Polars' fast fixed-width parser (about four times
/// faster). So each batch is parsed with the whole-seconds format first
/// and, only when that leaves a value unread (a fraction), again with the
/// full one: the same datetimes either way. Without Polars' per-value
/// cache: timestamps rarely repeat, and hashing each into an LRU cost more
/// than parsing it (8% of the timestamps pipeline's time, profiled). A
/// batch of the plain ISO shape is read with integers first ([`super::iso`]).
fn whole_seconds_first(column: &str, whole: &str, full: &str, strict: bool) -> Expr {
    let (whole, full) = (whole.to_string(), full.to_string());
    let iso = super::iso::separator(&whole);
    // `map_multiple`, not `Expr::map`, whose batches the streaming engine
    // hands to a blocking thread of their own.
    map_multiple(
        move |cols: &mut [Column]| {
            let c = &cols[0];
            let text = c.str()?;
            let raise = StringChunked::from_slice(PlSmallStr::EMPTY, &["raise"]);
            let parse = |fmt: &str| {
                text.as_datetime(
                    Some(fmt),
                    TimeUnit::Microseconds,
                    false,
                    false,
                    None,
                    &raise,
                )
            };
            // The common ISO shape with integers; anything else as before.
            if let Some(out) = iso.and_then(|sep| super::iso::parse(text, sep)) {
                return Ok(out.into_series().with_name(c.name().clone()).into_column());
            }
            let mut out = parse(&whole)?;
            if out.null_count() != text.null_count() {
                out = parse(&full)?;
                if strict && out.null_count() != text.null_count() {
                    polars_bail!(ComputeError: "a value of column \"{}\" is not a datetime in the format \"{full}\"", c.name());
                }
            }
            Ok(out.into_series().with_name(c.name().clone()).into_column())
        },
        [col(column)],
        |_: &Schema, fields: &[Field]| {
            let name = fields.first().map(|f| f.name().clone()).unwrap_or_default();
            Ok(Field::new(
                name,
                DataType::Datetime(TimeUnit::Microseconds, None),
            ))
        },
    )
}

/// The temporal overrides of a CSV node whose columns are read as text,
/// with their formats; `data` supplies the sample when a format is not
/// given. Columns left to the reader are not in the list.
pub fn plan(
    cfg: &IngestionConfig,
    data: &SourceData,
    sample: impl Fn(&[String]) -> Option<DataFrame>,
) -> Vec<Converted> {
    let Some(ovs) = &cfg.options.schema_overrides else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut to_infer = Vec::new();
    for (index, o) in ovs.iter().enumerate() {
        let Some(dtype) = mudrock_operators::dtype::parse(&o.dtype) else {
            continue;
        };
        if !matches!(dtype, DataType::Date | DataType::Datetime(..)) {
            continue;
        }
        match &o.format {
            Some(f) => out.push(Converted {
                column: o.name.clone(),
                index,
                dtype,
                format: f.clone(),
                given: true,
            }),
            None => to_infer.push((index, o.name.clone(), dtype)),
        }
    }
    if to_infer.is_empty() || !matches!(data, SourceData::Paths { paths, .. } if !paths.is_empty())
    {
        return out;
    }
    let names: Vec<String> = to_infer.iter().map(|(_, n, _)| n.clone()).collect();
    let Some(df) = sample(&names) else {
        return out;
    };
    for (index, name, dtype) in to_infer {
        let Ok(c) = df.column(&name).and_then(|c| c.str().cloned()) else {
            continue;
        };
        let values: Vec<&str> = c.iter().flatten().collect();
        let kind = match dtype {
            DataType::Date => DateKind::Date,
            _ => DateKind::Datetime,
        };
        if let Some(f) = infer(kind, &values) {
            out.push(Converted {
                column: name,
                index,
                dtype,
                format: f.to_string(),
                given: false,
            });
        }
    }
    out.sort_by_key(|c| c.index);
    out
}

/// The first value a conversion does not read, in the scan `lf` (its
/// converted columns still text): `column "c": value "v" at row n …`.
pub fn first_bad(lf: LazyFrame, converted: &[Converted]) -> Option<String> {
    for c in converted {
        let name = c.column.as_str();
        let bad = lf
            .clone()
            .select([col(name)])
            .with_row_index("__row", None)
            .filter(col(name).is_not_null().and(c.expr(false).is_null()))
            .limit(1)
            .collect()
            .ok()?;
        if bad.height() == 0 {
            continue;
        }
        let row = bad.column("__row").ok()?.get(0).ok()?.extract::<u64>()?;
        let value = bad.column(name).ok()?.str().ok()?.get(0)?.to_string();
        let shown: String = value.chars().take(64).collect();
        let what = match c.dtype {
            DataType::Date => "date",
            _ => "datetime",
        };
        let source = if c.given {
            format!("given in schemaOverrides[{}].format", c.index)
        } else {
            format!(
                "inferred from the first rows; set schemaOverrides[{}].format to read another",
                c.index
            )
        };
        return Some(format!(
            "column \"{name}\": value \"{shown}\" at row {} is not a {what} in the format \"{}\" ({source})",
            row + 1,
            c.format
        ));
    }
    None
}
