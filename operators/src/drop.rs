//! `drop`: removes columns.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, Limits, OpError, Operator, one, require_list};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drop {
    pub columns: Vec<String>,
}

impl Operator for Drop {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn row_wise(&self) -> bool {
        true
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        require_list(&input.schema, "columns", &self.columns)?;
        Ok(input
            .frame
            .drop(cols(self.columns.iter().map(String::as_str))))
    }
}
