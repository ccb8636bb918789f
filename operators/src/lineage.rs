//! Column lineage of one operator: for each output column, the input
//! columns it derives from and how (a copy, a row-wise transformation or an
//! aggregation). Operators say it from their configs and parsed
//! expressions ([`crate::Operator::column_lineage`]); the engine composes
//! the answers along the DAG into source-to-output lineage.
//!
//! Only direct lineage is told: a column a filter, join key or group-by
//! reads to decide *which* rows come out is not an origin of the columns
//! that come out.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{Expr as SqlExpr, visit_expressions};

/// How an output column derives from an input column. Ordered: along a
/// chain, the strongest step wins (a copy of an aggregate is an
/// aggregation).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Derivation {
    /// The values are the input's, unchanged (moved, renamed, filtered,
    /// sorted, joined).
    Copy,
    /// Computed row by row from the input (an expression, a cast, a fill).
    Transformation,
    /// Computed from groups of input rows (sum, count, a pivot's cell).
    Aggregation,
}

/// One input column an output column derives from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// Position of the input in the node's input order.
    pub input: usize,
    pub column: String,
    pub how: Derivation,
}

/// One input's name (its node id, the `sql` operator's table name) and
/// its columns, in order.
#[derive(Debug, Clone, Copy)]
pub struct InputColumns<'a> {
    pub name: &'a str,
    pub columns: &'a [String],
}

impl InputColumns<'_> {
    pub fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c == column)
    }
}

/// Origins of each output column, in output order.
pub type ColumnOrigins = Vec<Vec<Origin>>;

pub(crate) fn origin(input: usize, column: &str, how: Derivation) -> Origin {
    Origin {
        input,
        column: column.to_string(),
        how,
    }
}

/// Each output column copied from the same-named column of input 0: what
/// operators that only choose, order or drop rows or columns do.
pub fn by_name(inputs: &[InputColumns], output: &[String]) -> ColumnOrigins {
    output
        .iter()
        .map(|name| match inputs.first() {
            Some(i) if i.has(name) => vec![origin(0, name, Derivation::Copy)],
            _ => Vec::new(),
        })
        .collect()
}

/// Sorted and without repeats; a column reached twice keeps its strongest
/// derivation.
pub fn normalise(mut origins: Vec<Origin>) -> Vec<Origin> {
    origins.sort_by(|a, b| {
        (a.input, &a.column, std::cmp::Reverse(a.how)).cmp(&(
            b.input,
            &b.column,
            std::cmp::Reverse(b.how),
        ))
    });
    origins.dedup_by(|later, first| later.input == first.input && later.column == first.column);
    origins
}

/// Origins of an expression's value, where `resolve` gives the origins of
/// a column name it reads. A bare column keeps its column's derivations;
/// anything else is a transformation, or an aggregation when it calls an
/// aggregate function. An expression that does not parse (validation
/// refuses it before a run) has none.
pub fn of_expression(text: &str, resolve: &dyn Fn(&SqlExpr) -> Vec<Origin>) -> Vec<Origin> {
    match crate::expr::parse(text) {
        Ok(e) => of_parsed(&e, resolve),
        Err(_) => Vec::new(),
    }
}

/// [`of_expression`] for a parsed expression.
pub fn of_parsed(e: &SqlExpr, resolve: &dyn Fn(&SqlExpr) -> Vec<Origin>) -> Vec<Origin> {
    let bare = strip_nested(e);
    if matches!(
        bare,
        SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)
    ) {
        return normalise(resolve(bare));
    }
    let how = if crate::expr::is_aggregate(e) {
        Derivation::Aggregation
    } else {
        Derivation::Transformation
    };
    let mut out = Vec::new();
    let _ = visit_expressions(e, |x| {
        if matches!(x, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)) {
            out.extend(resolve(x).into_iter().map(|o| Origin {
                how: o.how.max(how),
                ..o
            }));
        }
        ControlFlow::<()>::Continue(())
    });
    normalise(out)
}

/// `(((x)))` is `x`.
fn strip_nested(mut e: &SqlExpr) -> &SqlExpr {
    while let SqlExpr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// The column name of an unqualified identifier, for operators whose
/// expressions read one input.
pub fn plain_name(e: &SqlExpr) -> Option<&str> {
    match e {
        SqlExpr::Identifier(id) => Some(&id.value),
        SqlExpr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.as_str()),
        _ => None,
    }
}

/// Resolves against one input's named columns, each with its origins so
/// far (`derive` evolves them column by column).
pub fn resolver<'a>(columns: &'a [(String, Vec<Origin>)]) -> impl Fn(&SqlExpr) -> Vec<Origin> + 'a {
    move |e| {
        plain_name(e)
            .and_then(|n| columns.iter().find(|(c, _)| c == n))
            .map(|(_, o)| o.clone())
            .unwrap_or_default()
    }
}

/// Input 0's columns, each its own copy: where a one-input operator
/// starts.
pub fn identity(input: &InputColumns) -> Vec<(String, Vec<Origin>)> {
    input
        .columns
        .iter()
        .map(|c| (c.clone(), vec![origin(0, c, Derivation::Copy)]))
        .collect()
}

/// Every column of every input as a transformation: what is said of an
/// output column when the operator cannot tell (never less than the truth).
pub fn everything(inputs: &[InputColumns]) -> Vec<Origin> {
    inputs
        .iter()
        .enumerate()
        .flat_map(|(i, inp)| {
            inp.columns
                .iter()
                .map(move |c| origin(i, c, Derivation::Transformation))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<(String, Vec<Origin>)> {
        names
            .iter()
            .map(|n| (n.to_string(), vec![origin(0, n, Derivation::Copy)]))
            .collect()
    }

    #[test]
    fn expressions_say_copy_transformation_or_aggregation() {
        let c = cols(&["a", "b", "price"]);
        let r = resolver(&c);
        let of = |t: &str| of_expression(t, &r);
        assert_eq!(of("a"), vec![origin(0, "a", Derivation::Copy)]);
        assert_eq!(of("(a)"), vec![origin(0, "a", Derivation::Copy)]);
        assert_eq!(
            of("a * b + a"),
            vec![
                origin(0, "a", Derivation::Transformation),
                origin(0, "b", Derivation::Transformation)
            ]
        );
        assert_eq!(
            of("sum(price) / count(*)"),
            vec![origin(0, "price", Derivation::Aggregation)]
        );
        assert_eq!(of("count(*)"), vec![]);
        assert_eq!(of("1 + 2"), vec![]);
    }

    #[test]
    fn the_strongest_derivation_wins() {
        let o = normalise(vec![
            origin(0, "a", Derivation::Copy),
            origin(0, "a", Derivation::Aggregation),
            origin(0, "a", Derivation::Transformation),
        ]);
        assert_eq!(o, vec![origin(0, "a", Derivation::Aggregation)]);
    }
}
