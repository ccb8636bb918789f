//! `filter`: keeps the rows for which `predicate` is true (null is false).

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sqlutil::{INPUT, over, over_stand_in};
use crate::{Arity, ExprKind, ExprRef, Input, Limits, OpError, Operator, expr, one};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub predicate: String,
}

impl Operator for Filter {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn row_wise(&self) -> bool {
        expr::is_row_wise(&self.predicate)
    }

    fn expressions(&self) -> Vec<ExprRef> {
        vec![ExprRef {
            field: "predicate".into(),
            text: self.predicate.clone(),
            kind: ExprKind::Row,
        }]
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        expr::check_columns("predicate", &self.predicate, &input.schema)?;
        let q = format!("SELECT * FROM {INPUT} WHERE ({})", self.predicate);
        Ok(over_stand_in(input.frame, &input.schema, |f| over(f, &q))?)
    }
}
