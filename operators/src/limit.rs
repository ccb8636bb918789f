//! `limit`: `n` rows starting at `offset`.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, Limits, OnStreaming, OpError, Operator, one};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub n: u32,
    #[serde(default)]
    pub offset: u32,
}

impl Operator for Limit {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        Ok(one(inputs)
            .frame
            .slice(self.offset as i64, self.n as IdxSize))
    }

    /// The streaming engine slices in input order.
    fn on_streaming(&self, _inputs: &[SchemaRef], _limits: &Limits) -> OnStreaming {
        OnStreaming::Ordered
    }
}
