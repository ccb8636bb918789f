//! `select`: keeps, reorders and computes columns; nothing else survives.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sqlutil::{INPUT, ident, over, over_stand_in};
use crate::{
    Arity, ExprKind, ExprRef, Input, Limits, OpError, Operator, expr, one, unknown_column,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    pub columns: Vec<SelectItem>,
}

/// A column by name, or a computed column.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SelectItem {
    Name(String),
    Expr(NamedExpr),
}

/// `{"name", "expr"}`: a computed column.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedExpr {
    pub name: String,
    pub expr: String,
}

impl Operator for Select {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn row_wise(&self) -> bool {
        self.columns.iter().all(|c| match c {
            SelectItem::Name(_) => true,
            SelectItem::Expr(e) => expr::is_row_wise(&e.expr),
        })
    }

    fn validate(&self) -> Result<(), OpError> {
        if self.columns.is_empty() {
            return Err(OpError::config(
                "columns",
                "select needs at least one column",
            ));
        }
        Ok(())
    }

    fn expressions(&self) -> Vec<ExprRef> {
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                SelectItem::Expr(e) => Some(ExprRef {
                    field: format!("columns[{i}].expr"),
                    text: e.expr.clone(),
                    kind: ExprKind::Row,
                }),
                SelectItem::Name(_) => None,
            })
            .collect()
    }

    fn column_lineage(
        &self,
        inputs: &[crate::InputColumns],
        _output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{Derivation, identity, of_expression, origin, resolver};
        let Some(input) = inputs.first() else {
            return Vec::new();
        };
        let cols = identity(input);
        self.columns
            .iter()
            .map(|c| match c {
                SelectItem::Name(n) => vec![origin(0, n, Derivation::Copy)],
                SelectItem::Expr(e) => of_expression(&e.expr, &resolver(&cols)),
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        let mut items = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            match c {
                SelectItem::Name(n) => {
                    if input.schema.get(n).is_none() {
                        return Err(unknown_column(format!("columns[{i}]"), n, &input.schema));
                    }
                    items.push(ident(n));
                }
                SelectItem::Expr(e) => {
                    expr::check_columns(&format!("columns[{i}].expr"), &e.expr, &input.schema)?;
                    items.push(format!("({}) AS {}", e.expr, ident(&e.name)));
                }
            }
        }
        let q = format!("SELECT {} FROM {INPUT}", items.join(", "));
        Ok(over_stand_in(input.frame, &input.schema, |f| over(f, &q))?)
    }
}
