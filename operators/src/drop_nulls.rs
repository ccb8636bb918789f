//! `drop_nulls`: removes rows with a null in `subset` (or in any column).

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, Limits, OpError, Operator, one, subset_selector};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropNulls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Vec<String>>,
}

impl Operator for DropNulls {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn row_wise(&self) -> bool {
        true
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        let subset = subset_selector(&input.schema, &self.subset)?;
        Ok(input.frame.drop_nulls(subset))
    }
}
