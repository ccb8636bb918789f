//! `aggregate`: one row per group of `by` (one row in all when `by` is
//! empty), with one column per aggregation. Groups come out sorted by their
//! keys: Polars' group-by order is arbitrary, and a result that changes
//! order between runs would change its blake3 and confuse every diff.
//!
//! Aggregations are SQL expressions, run in two phases: a group-by whose
//! items are only the aggregate calls, then a projection computing each
//! aggregation from their results. Polars runs a group-by of plain
//! reductions on its streaming group-by (partitioned, bounded memory), but
//! any expression over aggregates inside the group-by, like the
//! `when(null_count < len).then(sum)` that Polars SQL makes of `sum(x)`,
//! sends it to the slower unpartitioned hash aggregation (see the README's
//! benchmark figures). So `sum(x)` becomes `total(x)` and "has a value"
//! (`max(x IS NOT NULL)`) in the group-by, and SQL's "null when no value"
//! in the projection: the same result, from partitionable reductions.
//!
//! Only where the result cannot depend on the order rows arrive in: the
//! partitioned group-by adds up each partition on its own and in no fixed
//! order, so a float sum could differ in its last bits from run to run,
//! and an output's bytes (its blake3, every diff of it) with it. So the
//! split applies when every aggregate call is a count, a min, a max or a
//! sum of integers or booleans; float sums and everything else keep the
//! one-query form, whose order is fixed.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    DuplicateTreatment, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments,
    visit_expressions_mut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::select::NamedExpr;
use crate::sqlutil::{INPUT, ident, over, over_stand_in};
use crate::{Arity, ExprKind, ExprRef, Input, Limits, OpError, Operator, expr, one, require_list};

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

    /// Group keys are copied; each aggregation derives from the columns its
    /// expression reads.
    fn column_lineage(
        &self,
        inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{Derivation, identity, of_expression, origin, resolver};
        let Some(input) = inputs.first() else {
            return Vec::new();
        };
        let cols = identity(input);
        output
            .iter()
            .map(|n| {
                if self.by.contains(n) {
                    vec![origin(0, n, Derivation::Copy)]
                } else {
                    self.aggregations
                        .iter()
                        .find(|a| a.name == *n)
                        .map(|a| of_expression(&a.expr, &resolver(&cols)))
                        .unwrap_or_default()
                }
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        require_list(&input.schema, "by", &self.by)?;
        for (i, a) in self.aggregations.iter().enumerate() {
            expr::check_columns(&format!("aggregations[{i}].expr"), &a.expr, &input.schema)?;
        }
        // Whether `sum(arg)` is exact whatever the order: integers and
        // booleans (asking Polars for the argument's type plans, it does
        // not compute).
        let stand_in = DataFrame::empty_with_arc_schema(input.schema.clone()).lazy();
        let exact_sum = |arg: &str| {
            over(
                stand_in.clone(),
                &format!("SELECT ({arg}) AS a FROM {INPUT}"),
            )
            .and_then(|mut lf| lf.collect_schema())
            .is_ok_and(|s| {
                s.iter_values()
                    .all(|dt| dt.is_integer() || dt == &DataType::Boolean)
            })
        };
        let q = two_phase_query(&self.by, &self.aggregations, &exact_sum)
            .unwrap_or_else(|| one_phase_query(&self.by, &self.aggregations));
        Ok(over_stand_in(input.frame, &input.schema, |f| over(f, &q))?)
    }
}

/// The aggregation as one SQL query: what Polars SQL makes of it directly.
fn one_phase_query(by: &[String], aggregations: &[NamedExpr]) -> String {
    let mut items: Vec<String> = by.iter().map(|b| ident(b)).collect();
    for a in aggregations {
        items.push(format!("({}) AS {}", a.expr, ident(&a.name)));
    }
    let mut q = format!("SELECT {} FROM {INPUT}", items.join(", "));
    if !by.is_empty() {
        let by: Vec<String> = by.iter().map(|b| ident(b)).collect();
        q.push_str(&format!(" GROUP BY {0} ORDER BY {0}", by.join(", ")));
    }
    q
}

/// Prefix of the group-by's intermediate columns.
const PART: &str = "__mudrock_part_";

/// The aggregation as a group-by of plain aggregate calls inside a
/// projection (see the module docs), or `None` where that split does not
/// apply: window functions, aggregates nested in aggregates, or a `by`
/// column that could clash with the intermediate names. Those run as one
/// query, as before.
fn two_phase_query(
    by: &[String],
    aggregations: &[NamedExpr],
    exact_sum: &dyn Fn(&str) -> bool,
) -> Option<String> {
    if by.iter().any(|b| b.starts_with(PART)) {
        return None;
    }
    // Rendered aggregate call -> its intermediate column(s), shared by
    // every aggregation that uses the same call.
    let mut parts: BTreeMap<String, String> = BTreeMap::new();
    let mut inner: Vec<String> = by.iter().map(|b| ident(b)).collect();
    let mut outer: Vec<String> = by.iter().map(|b| ident(b)).collect();
    for a in aggregations {
        let mut e = expr::parse(&a.expr).ok()?;
        if expr::has_window(&e) {
            return None;
        }
        let mut ok = true;
        let _ = visit_expressions_mut(&mut e, |x| {
            let SqlExpr::Function(f) = x else {
                return ControlFlow::Continue(());
            };
            if !expr::is_aggregate_call(f) {
                return ControlFlow::Continue(());
            }
            let fname = f.name.to_string().to_lowercase();
            let arg = plain_arg(f);
            let exact = match fname.as_str() {
                "count" | "min" | "max" => true,
                "sum" => arg.as_deref().is_some_and(exact_sum),
                _ => false,
            };
            if !exact {
                ok = false;
                return ControlFlow::Break(());
            }
            let call = f.to_string();
            // Post-order: an aggregate inside this one was already
            // replaced by a part column. Polars rejects that; so do we.
            if call.contains(PART) {
                ok = false;
                return ControlFlow::Break(());
            }
            let n = parts.len();
            let replacement = parts
                .entry(call.clone())
                .or_insert_with(|| {
                    let name = format!("{PART}{n}");
                    if let (Some(arg), "sum") = (&arg, fname.as_str()) {
                        // SQL's sum: null when the group has no value.
                        // "Has a value" as a max over booleans: Polars
                        // partitions that, not `count(x)` (nor the
                        // `len - null_count` it makes of a sum of them).
                        inner.push(format!("total({arg}) AS {}", ident(&name)));
                        inner.push(format!(
                            "max(({arg}) IS NOT NULL) AS {}",
                            ident(&format!("{name}n"))
                        ));
                        format!(
                            "CASE WHEN {} THEN {} END",
                            ident(&format!("{name}n")),
                            ident(&name)
                        )
                    } else {
                        inner.push(format!("{call} AS {}", ident(&name)));
                        ident(&name)
                    }
                })
                .clone();
            match Parser::new(&GenericDialect)
                .try_with_sql(&replacement)
                .and_then(|mut p| p.parse_expr())
            {
                Ok(r) => *x = r,
                Err(_) => {
                    ok = false;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        if !ok {
            return None;
        }
        outer.push(format!("({e}) AS {}", ident(&a.name)));
    }
    let by_list: Vec<String> = by.iter().map(|b| ident(b)).collect();
    let mut q = format!(
        "SELECT {} FROM (SELECT {} FROM {INPUT}",
        outer.join(", "),
        inner.join(", ")
    );
    if !by.is_empty() {
        q.push_str(&format!(" GROUP BY {}", by_list.join(", ")));
    }
    q.push_str(") AS __mudrock_groups");
    if !by.is_empty() {
        q.push_str(&format!(" ORDER BY {}", by_list.join(", ")));
    }
    Some(q)
}

/// The argument of a call with exactly one plain argument (an expression,
/// not `*`), no DISTINCT, no FILTER and no other clauses: `sum(x)`,
/// `count(a + b)`.
fn plain_arg(f: &sqlparser::ast::Function) -> Option<String> {
    if f.filter.is_some()
        || f.null_treatment.is_some()
        || !f.within_group.is_empty()
        || !matches!(f.parameters, FunctionArguments::None)
    {
        return None;
    }
    let FunctionArguments::List(l) = &f.args else {
        return None;
    };
    if !l.clauses.is_empty() || matches!(l.duplicate_treatment, Some(DuplicateTreatment::Distinct))
    {
        return None;
    }
    match l.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Some(e.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, expr: &str) -> NamedExpr {
        NamedExpr {
            name: name.into(),
            expr: expr.into(),
        }
    }

    /// Groups with values, with some nulls, with only nulls (SQL's sum is
    /// null there, not 0), and a null key.
    fn frame() -> LazyFrame {
        df!(
            "g" => [Some("a"), Some("a"), Some("b"), Some("b"), Some("c"), None, Some("a")],
            "x" => [Some(1i64), Some(2), None, None, Some(5), Some(6), None],
            "y" => [Some(0.5f64), None, Some(1.5), Some(2.5), None, Some(3.0), Some(4.0)],
            "s" => ["p", "q", "r", "s", "t", "u", "v"]
        )
        .unwrap()
        .lazy()
    }

    fn collect(q: &str, lf: LazyFrame) -> DataFrame {
        over(lf, q)
            .and_then(|lf| lf.collect())
            .unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    /// What `build` asks: is this sum's argument an integer or boolean?
    fn exact(arg: &str) -> bool {
        over(frame(), &format!("SELECT ({arg}) AS a FROM {INPUT}"))
            .and_then(|mut lf| lf.collect_schema())
            .is_ok_and(|s| s.iter_values().all(|dt| dt.is_integer()))
    }

    #[test]
    fn two_phases_give_what_one_query_gives() {
        let aggs = vec![
            named("sx", "sum(x)"),
            named("expr", "sum(x * 2) + 1"),
            named("n", "count(*)"),
            named("nx", "count(x)"),
            named("range", "max(x) - min(x)"),
            named("first_s", "min(s)"),
            named("hi", "max(y)"),
            named("ratio", "sum(x) / count(*)"),
            named("flag", "count(*) > 1"),
        ];
        for by in [vec!["g".to_string()], vec![]] {
            let one = one_phase_query(&by, &aggs);
            let two = two_phase_query(&by, &aggs, &exact).expect("splits");
            assert!(two.contains("total(x)"), "{two}");
            for lf in [frame(), frame().filter(lit(false))] {
                let (a, b) = (collect(&one, lf.clone()), collect(&two, lf));
                assert_eq!(a.schema(), b.schema(), "{two}");
                assert!(a.equals_missing(&b), "{two}\n{a}\n{b}");
            }
        }
        // All-null group: SQL's null, not 0.
        let df = collect(
            &two_phase_query(&["g".into()], &aggs[..1], &exact).unwrap(),
            frame(),
        );
        let sx = df.column("sx").unwrap().i64().unwrap();
        assert_eq!(sx.get(1), None, "group b has no x\n{df}");
        assert_eq!(sx.get(0), Some(3));
    }

    #[test]
    fn order_dependent_results_keep_one_query() {
        // A float sum (or mean) in a partitioned group-by adds in no fixed
        // order: its last bits, and the output's bytes, could change run
        // to run.
        for e in ["sum(y)", "sum(x) + sum(y)", "avg(x)", "first(s)"] {
            let aggs = [named("n", "count(*)"), named("a", e)];
            assert_eq!(two_phase_query(&["g".into()], &aggs, &exact), None, "{e}");
        }
    }

    #[test]
    fn the_group_by_holds_only_plain_reductions() {
        let two = two_phase_query(&["g".into()], &[named("sx", "sum(x)")], &exact).unwrap();
        assert_eq!(
            two,
            "SELECT \"g\", (CASE WHEN \"__mudrock_part_0n\" THEN \"__mudrock_part_0\" END) AS \"sx\" \
             FROM (SELECT \"g\", total(x) AS \"__mudrock_part_0\", max((x) IS NOT NULL) AS \"__mudrock_part_0n\" \
             FROM __input GROUP BY \"g\") AS __mudrock_groups ORDER BY \"g\""
        );
        // What Polars plans: reductions it partitions, nothing over them
        // (its optimizer would turn a sum of `x IS NOT NULL` into
        // `len - null_count`, which it does not partition).
        let plan = over(frame(), &two)
            .unwrap()
            .describe_optimized_plan()
            .unwrap();
        let lines: Vec<&str> = plan.lines().map(str::trim).collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("AGGREGATE"))
            .unwrap_or_else(|| panic!("{plan}"));
        assert_eq!(
            lines[at + 1],
            "[col(\"x\").sum().alias(\"__mudrock_part_0\"), \
             col(\"x\").is_not_null().max().alias(\"__mudrock_part_0n\")] BY [col(\"g\")]",
            "{plan}"
        );
    }

    #[test]
    fn windows_nesting_and_clashing_names_keep_one_query() {
        let w = [named("w", "sum(x) OVER (PARTITION BY g)")];
        assert_eq!(two_phase_query(&["g".into()], &w, &exact), None);
        let nested = [named("n", "max(sum(x))")];
        assert_eq!(two_phase_query(&["g".into()], &nested, &exact), None);
        let clash = [named("n", "count(*)")];
        assert_eq!(
            two_phase_query(&["__mudrock_part_0".into()], &clash, &exact),
            None
        );
    }
}
