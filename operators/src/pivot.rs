//! `pivot`: long to wide. One row per `index` combination, one column per
//! distinct value of `on` (sorted), filled with `aggregate` of `values`.
//!
//! Polars' lazy pivot needs the output columns up front, so this operator
//! collects the distinct `on` values while building: the one operator that
//! reads data at plan time.

use std::sync::Arc;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::join::one_or_many;
use crate::{Arity, Input, Limits, OpError, Operator, one, require_columns, require_list};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pivot {
    #[serde(deserialize_with = "required_one_or_many")]
    pub index: Vec<String>,
    pub on: String,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub values: Option<Vec<String>>,
    #[serde(default)]
    pub aggregate: PivotAgg,
}

fn required_one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(one_or_many(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PivotAgg {
    #[default]
    First,
    Last,
    Sum,
    Mean,
    Median,
    Min,
    Max,
    Count,
}

impl Pivot {
    /// Without `values`: every column that is neither `on` nor an index.
    fn unnamed_values<'a>(&self, columns: impl Iterator<Item = &'a str>) -> Vec<String> {
        columns
            .filter(|c| *c != self.on && !self.index.iter().any(|i| i == c))
            .map(str::to_string)
            .collect()
    }
}

impl Operator for Pivot {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    /// Index columns are copied; every other output column is a cell
    /// aggregated from the value column(s) (`{value}_{on value}` when there
    /// are several).
    fn column_lineage(
        &self,
        inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{Derivation, origin};
        let Some(input) = inputs.first() else {
            return Vec::new();
        };
        let values: Vec<String> = match &self.values {
            Some(v) => v.clone(),
            None => self.unnamed_values(input.columns.iter().map(String::as_str)),
        };
        output
            .iter()
            .map(|n| {
                if self.index.contains(n) {
                    return vec![origin(0, n, Derivation::Copy)];
                }
                let named: Vec<&String> = values
                    .iter()
                    .filter(|v| values.len() > 1 && n.starts_with(&format!("{v}_")))
                    .collect();
                let from: Vec<&String> = if named.is_empty() {
                    values.iter().collect()
                } else {
                    named
                };
                from.into_iter()
                    .map(|v| origin(0, v, Derivation::Aggregation))
                    .collect()
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>, limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        require_list(&input.schema, "index", &self.index)?;
        require_columns(&input.schema, [("on".to_string(), self.on.as_str())])?;
        let values: Vec<String> = match &self.values {
            Some(v) => {
                require_list(&input.schema, "values", &v)?;
                v.clone()
            }
            None => self.unnamed_values(input.schema.iter_names().map(|n| n.as_str())),
        };
        if values.is_empty() {
            return Err(OpError::config(
                "values",
                "nothing to pivot: every column is in \"index\" or \"on\"",
            ));
        }
        // At most as many distinct values as the column limit allows (and
        // one more, to tell): an id column never reaches memory whole.
        let cap = limits.max_pivot_columns / values.len();
        let on_values = input
            .frame
            .clone()
            .select([col(self.on.as_str())])
            .unique_stable(None, UniqueKeepStrategy::Any)
            .limit(cap.saturating_add(1).min(u32::MAX as usize) as IdxSize)
            .collect()?;
        if on_values.height() > cap {
            return Err(OpError::Limit(crate::limits::message(
                &format!(
                    "the pivot would make a column for each distinct value of \"{}\" \
                     times {} value column(s), more than {} column(s)",
                    self.on,
                    values.len(),
                    limits.max_pivot_columns
                ),
                format!("over {} distinct values", cap),
                "engine.max_pivot_columns",
                limits.max_pivot_columns,
            )));
        }
        let on_values = on_values
            .lazy()
            .sort([self.on.as_str()], SortMultipleOptions::default())
            .collect()?;
        let agg = match self.aggregate {
            PivotAgg::First => element().first(),
            PivotAgg::Last => element().last(),
            PivotAgg::Sum => element().sum(),
            PivotAgg::Mean => element().mean(),
            PivotAgg::Median => element().median(),
            PivotAgg::Min => element().min(),
            PivotAgg::Max => element().max(),
            PivotAgg::Count => element().count(),
        };
        let lf = input.frame.pivot(
            cols([self.on.as_str()]),
            Arc::new(on_values),
            cols(self.index.iter().map(String::as_str)),
            cols(values.iter().map(String::as_str)),
            agg,
            true,
            "_".into(),
            polars::frame::PivotColumnNaming::Auto,
        );
        // Stable output: rows by index.
        Ok(lf.sort(
            self.index.iter().map(String::as_str).collect::<Vec<_>>(),
            SortMultipleOptions::default(),
        ))
    }
}
