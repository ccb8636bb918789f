//! `assert`: data-quality checks that pass data through unchanged or fail
//! the node listing every check that failed.
//!
//! A check expression without an aggregate is a row check (every row must
//! be true; null counts as a failure); with one (`count(*) > 0`) it must
//! yield a single true.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::select::NamedExpr;
use crate::sqlutil::{INPUT, eval_bool, ident, over};
use crate::{Arity, ExprKind, ExprRef, Input, Limits, OpError, Operator, expr, one, require_list};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Assert {
    #[serde(default)]
    pub checks: Vec<NamedExpr>,
    #[serde(default)]
    pub not_null: Vec<String>,
    #[serde(default)]
    pub unique: Vec<String>,
}

impl Operator for Assert {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn validate(&self) -> Result<(), OpError> {
        if self.checks.is_empty() && self.not_null.is_empty() && self.unique.is_empty() {
            return Err(OpError::config(
                "checks",
                "assert needs \"checks\", \"notNull\" or \"unique\"",
            ));
        }
        Ok(())
    }

    fn expressions(&self) -> Vec<ExprRef> {
        self.checks
            .iter()
            .enumerate()
            .map(|(i, c)| ExprRef {
                field: format!("checks[{i}].expr"),
                text: c.expr.clone(),
                kind: ExprKind::Any,
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        for (i, c) in self.checks.iter().enumerate() {
            expr::check_columns(&format!("checks[{i}].expr"), &c.expr, &input.schema)?;
        }
        require_list(&input.schema, "notNull", &self.not_null)?;
        require_list(&input.schema, "unique", &self.unique)?;
        Ok(input.frame)
    }

    fn needs_check(&self) -> bool {
        true
    }

    fn check(&self, df: &DataFrame) -> Result<(), OpError> {
        let mut failed = Vec::new();
        for c in &self.checks {
            let parsed = expr::parse(&c.expr).map_err(|m| OpError::config("checks", m))?;
            if expr::is_aggregate(&parsed) {
                match eval_bool(df.clone().lazy(), &c.expr) {
                    Ok(true) => {}
                    Ok(false) => failed.push(format!("{} ({})", c.name, c.expr)),
                    Err(e) => failed.push(format!("{} ({}): {e}", c.name, c.expr)),
                }
            } else {
                let q = format!(
                    "SELECT CAST(COALESCE(SUM(CASE WHEN ({}) THEN 0 ELSE 1 END), 0) AS BIGINT) AS {} FROM {INPUT}",
                    c.expr,
                    ident("__failed")
                );
                let out = over(df.clone().lazy(), &q)?.collect()?;
                let bad = out.column("__failed")?.i64()?.get(0).unwrap_or(0);
                if bad > 0 {
                    failed.push(format!(
                        "{} ({}): {bad} of {} rows fail",
                        c.name,
                        c.expr,
                        df.height()
                    ));
                }
            }
        }
        for name in &self.not_null {
            let nulls = df.column(name)?.null_count();
            if nulls > 0 {
                failed.push(format!("notNull({name}): {nulls} null values"));
            }
        }
        for name in &self.unique {
            let column = df.column(name)?;
            let distinct = column.n_unique()?;
            if distinct != df.height() {
                failed.push(format!(
                    "unique({name}): {} duplicate values",
                    df.height() - distinct
                ));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            let total = self.checks.len() + self.not_null.len() + self.unique.len();
            Err(OpError::CheckFailed(format!(
                "{} of {total} checks failed: {}",
                failed.len(),
                failed.join("; ")
            )))
        }
    }
}
