//! `distinct`: removes duplicate rows (over `subset`, or all columns),
//! keeping the original order of the rows it keeps.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, OpError, Operator, one, require_columns};

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

    fn build(&self, inputs: Vec<Input>) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        let subset = match &self.subset {
            Some(s) => {
                require_columns(
                    &input.schema,
                    s.iter()
                        .enumerate()
                        .map(|(i, c)| (format!("subset[{i}]"), c.as_str())),
                )?;
                Some(cols(s.iter().map(String::as_str)))
            }
            None => None,
        };
        let keep = match self.keep {
            Keep::First => UniqueKeepStrategy::First,
            Keep::Last => UniqueKeepStrategy::Last,
            Keep::Any => UniqueKeepStrategy::Any,
            Keep::None => UniqueKeepStrategy::None,
        };
        Ok(input.frame.unique_stable(subset, keep))
    }
}
