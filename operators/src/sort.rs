//! `sort`: orders rows by one or more columns; stable.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, Limits, OnStreaming, OpError, Operator, one, require_columns};

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
        let keys: Vec<&str> = self.by.iter().map(|k| k.parts().0).collect();
        let frame = match without_inner_sort(&input.frame.logical_plan, &keys) {
            Some(plan) => LazyFrame::from(plan),
            None => input.frame,
        };
        Ok(frame.sort_by_exprs(exprs, opts))
    }

    /// A stable sort: ties keep their input order on both engines.
    fn on_streaming(&self, _inputs: &[SchemaRef], _limits: &Limits) -> OnStreaming {
        OnStreaming::Ordered
    }
}

/// The input's plan without the sort it ends with (an aggregate's `ORDER
/// BY` of its group keys, say), when this sort's keys include every key of
/// that one: then rows this sort leaves tied were tied there too, kept in
/// the order they came in, so dropping it changes nothing but the work.
/// Sees through a final projection of plain columns (how Polars SQL ends
/// a query) and a resolved plan's wrapper.
fn without_inner_sort(plan: &DslPlan, keys: &[&str]) -> Option<DslPlan> {
    match plan {
        DslPlan::Sort {
            input,
            by_column,
            slice: None,
            ..
        } => {
            let covered = by_column.iter().all(|e| match e {
                Expr::Column(c) => keys.contains(&c.as_str()),
                _ => false,
            });
            covered.then(|| input.as_ref().clone())
        }
        DslPlan::Select {
            expr,
            input,
            options,
        } if expr.iter().all(|e| matches!(e, Expr::Column(_))) => without_inner_sort(input, keys)
            .map(|inner| DslPlan::Select {
                expr: expr.clone(),
                input: std::sync::Arc::new(inner),
                options: *options,
            }),
        // A plan whose schema was resolved keeps the original beside it.
        DslPlan::IR { dsl, .. } => without_inner_sort(dsl, keys),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_inner_sort_on_covered_keys_is_dropped() {
        let df = df!("g" => ["b", "a"], "v" => [1i64, 5]).unwrap();
        let inner = df
            .lazy()
            .sort(["g"], Default::default())
            .select([col("g"), col("v")]);
        let plan = &inner.logical_plan;
        let stripped = without_inner_sort(plan, &["v", "g"]).expect("g is covered");
        assert!(
            !LazyFrame::from(stripped)
                .describe_plan()
                .unwrap()
                .contains("SORT"),
            "the inner sort is gone, the projection kept"
        );
        // Keys that do not cover it keep it: its order decides ties.
        assert!(without_inner_sort(plan, &["v"]).is_none());
        // A projection that computes something is not seen through.
        let computed = inner.select([col("g"), (col("v") * lit(2)).alias("v")]);
        assert!(without_inner_sort(&computed.logical_plan, &["g", "v"]).is_none());
    }
}
