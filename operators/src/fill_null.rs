//! `fill_null`: replaces nulls with given values per column, or with a
//! strategy (forward, backward, mean, min, max, zero, one) over `subset` or
//! every column.

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Arity, Input, Limits, OpError, Operator, one, require_list, unknown_column};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillNull {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<FillValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillValue {
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Forward,
    Backward,
    Mean,
    Min,
    Max,
    Zero,
    One,
}

fn literal(field: &str, v: &Value) -> Result<Expr, OpError> {
    Ok(match v {
        Value::Bool(b) => lit(*b),
        Value::Number(n) if n.is_i64() => lit(n.as_i64().unwrap()),
        Value::Number(n) if n.is_u64() => lit(n.as_u64().unwrap()),
        Value::Number(n) => lit(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => lit(s.as_str()),
        _ => {
            return Err(OpError::config(
                field,
                "value must be a string, number or boolean",
            ));
        }
    })
}

impl Operator for FillNull {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    /// Constants per column are; strategies look at other rows.
    fn row_wise(&self) -> bool {
        self.strategy.is_none()
    }

    fn validate(&self) -> Result<(), OpError> {
        match (&self.columns, &self.strategy) {
            (Some(_), Some(_)) => Err(OpError::config(
                "strategy",
                "give either \"columns\" or \"strategy\", not both",
            )),
            (None, None) => Err(OpError::config(
                "columns",
                "fill_null needs \"columns\" or \"strategy\"",
            )),
            (Some(cols), None) => {
                if self.subset.is_some() {
                    return Err(OpError::config(
                        "subset",
                        "\"subset\" goes with \"strategy\"",
                    ));
                }
                for (i, c) in cols.iter().enumerate() {
                    let _ = literal(&format!("columns[{i}].value"), &c.value)?;
                }
                Ok(())
            }
            (None, Some(_)) => Ok(()),
        }
    }

    /// Filled columns are transformed (a strategy like `mean` reads the
    /// whole column, but each value stays its row's); the others copied.
    fn column_lineage(
        &self,
        _inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{Derivation, origin};
        let filled = |n: &String| {
            self.columns.iter().flatten().any(|c| c.name == *n)
                || (self.strategy.is_some() && self.subset.as_ref().is_none_or(|s| s.contains(n)))
        };
        output
            .iter()
            .map(|n| {
                let how = if filled(n) {
                    Derivation::Transformation
                } else {
                    Derivation::Copy
                };
                vec![origin(0, n, how)]
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        let mut exprs = Vec::new();
        if let Some(columns) = &self.columns {
            for (i, c) in columns.iter().enumerate() {
                let Some(dt) = input.schema.get(&c.name) else {
                    return Err(unknown_column(
                        format!("columns[{i}].name"),
                        &c.name,
                        &input.schema,
                    ));
                };
                let value =
                    literal(&format!("columns[{i}].value"), &c.value)?.strict_cast(dt.clone());
                exprs.push(col(c.name.as_str()).fill_null(value));
            }
        }
        if let Some(strategy) = self.strategy {
            let names: Vec<String> = match &self.subset {
                Some(s) => {
                    require_list(&input.schema, "subset", &s)?;
                    s.clone()
                }
                None => input.schema.iter_names().map(|n| n.to_string()).collect(),
            };
            let strategy = match strategy {
                Strategy::Forward => FillNullStrategy::Forward(None),
                Strategy::Backward => FillNullStrategy::Backward(None),
                Strategy::Mean => FillNullStrategy::Mean,
                Strategy::Min => FillNullStrategy::Min,
                Strategy::Max => FillNullStrategy::Max,
                Strategy::Zero => FillNullStrategy::Zero,
                Strategy::One => FillNullStrategy::One,
            };
            for n in names {
                exprs.push(col(n.as_str()).fill_null_with_strategy(strategy));
            }
        }
        Ok(input.frame.with_columns(exprs))
    }
}
