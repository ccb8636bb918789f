//! `aggregate`: one row per group of `by` (one row in all when `by` is
//! empty), with one column per aggregation. Groups come out sorted by their
//! keys: Polars' group-by order is arbitrary, and a result that changes
//! order between runs would change its blake3 and confuse every diff.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::select::NamedExpr;
use crate::sqlutil::{INPUT, ident, over};
use crate::{Arity, ExprKind, ExprRef, Input, OpError, Operator, expr, one, require_list};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    #[serde(default)]
    pub by: Vec<String>,
    pub aggregations: Vec<NamedExpr>,
}

impl Operator for Aggregate {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn validate(&self) -> Result<(), OpError> {
        if self.aggregations.is_empty() && self.by.is_empty() {
            return Err(OpError::config(
                "aggregations",
                "aggregate needs \"by\" columns or at least one aggregation",
            ));
        }
        Ok(())
    }

    fn expressions(&self) -> Vec<ExprRef> {
        self.aggregations
            .iter()
            .enumerate()
            .map(|(i, a)| ExprRef {
                field: format!("aggregations[{i}].expr"),
                text: a.expr.clone(),
                kind: ExprKind::Aggregate,
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        require_list(&input.schema, "by", &self.by)?;
        let mut items: Vec<String> = self.by.iter().map(|b| ident(b)).collect();
        for (i, a) in self.aggregations.iter().enumerate() {
            expr::check_columns(&format!("aggregations[{i}].expr"), &a.expr, &input.schema)?;
            items.push(format!("({}) AS {}", a.expr, ident(&a.name)));
        }
        let mut q = format!("SELECT {} FROM {INPUT}", items.join(", "));
        if !self.by.is_empty() {
            let by: Vec<String> = self.by.iter().map(|b| ident(b)).collect();
            q.push_str(&format!(" GROUP BY {0} ORDER BY {0}", by.join(", ")));
        }
        let lf = over(input.frame, &q)?;
        Ok(lf)
    }
}
