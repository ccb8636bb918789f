//! `distinct`: removes duplicate rows (over `subset`, or all columns),
//! keeping the original order of the rows it keeps.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, Limits, OpError, Operator, one, subset_selector};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distinct {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Vec<String>>,
    #[serde(default)]
    pub keep: Keep,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    #[default]
    First,
    Last,
    Any,
    None,
}

impl Operator for Distinct {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        let subset = subset_selector(&input.schema, &self.subset)?;
        let keep = match self.keep {
            Keep::First => UniqueKeepStrategy::First,
            Keep::Last => UniqueKeepStrategy::Last,
            Keep::Any => UniqueKeepStrategy::Any,
            Keep::None => UniqueKeepStrategy::None,
        };
        Ok(input.frame.unique_stable(subset, keep))
    }
}
