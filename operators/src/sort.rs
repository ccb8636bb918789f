//! `sort`: orders rows by one or more columns; stable.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, Limits, OpError, Operator, one, require_columns};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sort {
    pub by: Vec<SortKey>,
}

/// A column to sort by; a bare string means ascending, nulls first.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortKey {
    Name(String),
    Spec(SortSpec),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SortSpec {
    pub column: String,
    #[serde(default)]
    pub descending: bool,
    #[serde(default)]
    pub nulls_last: bool,
}

impl SortKey {
    fn parts(&self) -> (&str, bool, bool) {
        match self {
            SortKey::Name(n) => (n, false, false),
            SortKey::Spec(s) => (&s.column, s.descending, s.nulls_last),
        }
    }
}

impl Operator for Sort {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn validate(&self) -> Result<(), OpError> {
        if self.by.is_empty() {
            return Err(OpError::config("by", "sort needs at least one column"));
        }
        Ok(())
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        require_columns(
            &input.schema,
            self.by
                .iter()
                .enumerate()
                .map(|(i, k)| (format!("by[{i}]"), k.parts().0)),
        )?;
        let exprs: Vec<Expr> = self.by.iter().map(|k| col(k.parts().0)).collect();
        let opts = SortMultipleOptions::default()
            .with_order_descending_multi(self.by.iter().map(|k| k.parts().1))
            .with_nulls_last_multi(self.by.iter().map(|k| k.parts().2))
            .with_maintain_order(true);
        Ok(input.frame.sort_by_exprs(exprs, opts))
    }
}
