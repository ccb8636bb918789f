//! `cast`: changes column types. Strict by default: a value that does not
//! convert fails the node instead of silently becoming null.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, Limits, OpError, Operator, dtype, one, unknown_column};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cast {
    pub columns: Vec<CastColumn>,
    #[serde(default = "yes")]
    pub strict: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CastColumn {
    pub name: String,
    pub dtype: String,
}

impl Operator for Cast {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn row_wise(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<(), OpError> {
        for (i, c) in self.columns.iter().enumerate() {
            dtype::check(&format!("columns[{i}].dtype"), &c.dtype)?;
        }
        Ok(())
    }

    /// Cast columns are transformed; the others copied.
    fn column_lineage(
        &self,
        _inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{Derivation, origin};
        output
            .iter()
            .map(|n| {
                let how = if self.columns.iter().any(|c| c.name == *n) {
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
        let mut exprs = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            if input.schema.get(&c.name).is_none() {
                return Err(unknown_column(
                    format!("columns[{i}].name"),
                    &c.name,
                    &input.schema,
                ));
            }
            let dt = dtype::check(&format!("columns[{i}].dtype"), &c.dtype)?;
            let e = col(c.name.as_str());
            exprs.push(if self.strict {
                e.strict_cast(dt)
            } else {
                e.cast(dt)
            });
        }
        Ok(input.frame.with_columns(exprs))
    }
}
