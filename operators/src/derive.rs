//! `derive`: adds or replaces columns, in order; a later column may use an
//! earlier one (like a chain of `with_columns`).

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::select::NamedExpr;
use crate::sqlutil::{INPUT, ident, over, over_stand_in};
use crate::{Arity, ExprKind, ExprRef, Input, Limits, OpError, Operator, unknown_column};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derive {
    pub columns: Vec<NamedExpr>,
}

impl Operator for Derive {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn row_wise(&self) -> bool {
        self.columns
            .iter()
            .all(|c| crate::expr::is_row_wise(&c.expr))
    }

    fn validate(&self) -> Result<(), OpError> {
        if self.columns.is_empty() {
            return Err(OpError::config(
                "columns",
                "derive needs at least one column",
            ));
        }
        Ok(())
    }

    fn expressions(&self) -> Vec<ExprRef> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| ExprRef {
                field: format!("columns[{i}].expr"),
                text: c.expr.clone(),
                kind: ExprKind::Row,
            })
            .collect()
    }

    /// Column by column, as the frame evolves: a later column that reads an
    /// earlier one reads its origins.
    fn column_lineage(
        &self,
        inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{identity, of_expression, resolver};
        let Some(input) = inputs.first() else {
            return Vec::new();
        };
        let mut cols = identity(input);
        for c in &self.columns {
            let origins = of_expression(&c.expr, &resolver(&cols));
            match cols.iter_mut().find(|(n, _)| *n == c.name) {
                Some(slot) => slot.1 = origins,
                None => cols.push((c.name.clone(), origins)),
            }
        }
        output
            .iter()
            .map(|n| {
                cols.iter()
                    .find(|(c, _)| c == n)
                    .map(|(_, o)| o.clone())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = crate::one(inputs);
        // Column names as they evolve: replaced in place, new ones appended.
        let mut names: Vec<String> = input.schema.iter_names().map(|n| n.to_string()).collect();
        let mut queries = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            let field = format!("columns[{i}].expr");
            let parsed = crate::expr::parse(&c.expr).map_err(|m| {
                OpError::config(field.clone(), format!("expression does not parse: {m}"))
            })?;
            for col in crate::expr::columns(&parsed) {
                if !names.contains(&col) {
                    let schema = Schema::from_iter(
                        names.iter().map(|n| Field::new(n.into(), DataType::Null)),
                    );
                    return Err(unknown_column(field, &col, &schema));
                }
            }
            let computed = format!("({}) AS {}", c.expr, ident(&c.name));
            let mut items: Vec<String> = names
                .iter()
                .map(|n| {
                    if *n == c.name {
                        computed.clone()
                    } else {
                        ident(n)
                    }
                })
                .collect();
            if !names.contains(&c.name) {
                items.push(computed);
                names.push(c.name.clone());
            }
            queries.push(format!("SELECT {} FROM {INPUT}", items.join(", ")));
        }
        let apply = |mut lf: LazyFrame| {
            for q in &queries {
                lf = over(lf, q)?;
            }
            Ok(lf)
        };
        Ok(over_stand_in(input.frame, &input.schema, apply)?)
    }
}
