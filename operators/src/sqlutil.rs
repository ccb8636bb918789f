//! Running generated SQL over inputs in a fresh, closed Polars SQL context.
//!
//! Every context here starts empty and sees only the frames registered in
//! it, which is the first half of what keeps SQL away from files; the
//! second half is the table check in the `sql` operator.

use std::sync::Arc;

use polars::prelude::*;
use polars::sql::SQLContext;

/// Quotes a column or table name for SQL (`"a ""b"""`).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The table name generated queries use for a single input.
pub const INPUT: &str = "__input";

/// Runs `query` with `frames` registered under their names.
pub fn run<'a>(
    frames: impl IntoIterator<Item = (&'a str, LazyFrame)>,
    query: &str,
) -> PolarsResult<LazyFrame> {
    let query =
        crate::sqlrewrite::rewrite_query(query).map_err(|m| polars_err!(SQLInterface: "{m}"))?;
    let mut ctx = SQLContext::new();
    for (name, lf) in frames {
        ctx.register(name, lf);
    }
    ctx.execute(&query)
}

/// Runs a query over one frame registered as [`INPUT`].
pub fn over(lf: LazyFrame, query: &str) -> PolarsResult<LazyFrame> {
    run([(INPUT, lf)], query)
}

/// Evaluates an aggregate boolean expression over a frame: the conditional
/// edge's `condition` and assert's aggregate checks. Exactly one boolean is
/// required; null counts as false.
pub fn eval_bool(lf: LazyFrame, expr: &str) -> Result<bool, String> {
    let q = format!("SELECT ({expr}) AS {} FROM {INPUT}", ident("__ok"));
    let df = over(lf, &q)
        .and_then(|lf| lf.collect())
        .map_err(|e| e.to_string())?;
    if df.height() != 1 {
        return Err(format!("must yield one boolean, got {} rows", df.height()));
    }
    let col = df.column("__ok").map_err(|e| e.to_string())?;
    let ca = col
        .bool()
        .map_err(|_| format!("must yield a boolean, got {}", col.dtype()))?;
    Ok(ca.get(0).unwrap_or(false))
}

/// Builds a frame with `build` over a stand-in for `frame` (an empty frame
/// with its schema), then puts `frame`'s plan where the stand-in was.
///
/// Why: Polars SQL resolves the schema of a frame it is given in arenas of
/// its own, which re-resolves the whole plan behind the frame; in a chain
/// of n nodes built with SQL that is n² work (1.2 ms a node at 120 nodes).
/// Over a stand-in it is one leaf, and the engine resolves the grafted plan
/// in the arenas where `frame`'s plan is already resolved. The stand-in has
/// `frame`'s exact schema, so SQL plans the same expressions. Where the
/// result is not a chain of single-input steps down to the stand-in, or an
/// expression holds a plan of its own (a subquery), `build` runs over
/// `frame` itself, as before.
pub fn over_stand_in(
    frame: LazyFrame,
    schema: &SchemaRef,
    build: impl Fn(LazyFrame) -> PolarsResult<LazyFrame>,
) -> PolarsResult<LazyFrame> {
    let df = Arc::new(DataFrame::empty_with_arc_schema(schema.clone()));
    let stand_in = LazyFrame::from(DslPlan::DataFrameScan {
        df: df.clone(),
        schema: schema.clone(),
    });
    let built = build(stand_in)?;
    match graft(&built.logical_plan, &df, &frame.logical_plan) {
        Some(plan) => Ok(LazyFrame::from(plan)),
        None => build(frame),
    }
}

/// `plan` with the stand-in scan replaced by `real`, or `None` where the
/// plan holds anything but the single-input steps SQL makes of a select.
fn graft(plan: &DslPlan, stand_in: &Arc<DataFrame>, real: &DslPlan) -> Option<DslPlan> {
    let input = |i: &Arc<DslPlan>| graft(i, stand_in, real).map(Arc::new);
    let plain = |es: &[Expr]| {
        es.iter()
            .all(|e| !e.into_iter().any(|x| matches!(x, Expr::SubPlan(..))))
    };
    Some(match plan {
        DslPlan::DataFrameScan { df, .. } if Arc::ptr_eq(df, stand_in) => real.clone(),
        // SQL's own resolution of an input, in its arenas: the plan under it.
        DslPlan::IR { dsl, .. } => graft(dsl, stand_in, real)?,
        DslPlan::Filter {
            input: i,
            predicate,
        } if plain(std::slice::from_ref(predicate)) => DslPlan::Filter {
            input: input(i)?,
            predicate: predicate.clone(),
        },
        DslPlan::Select {
            expr,
            input: i,
            options,
        } if plain(expr) => DslPlan::Select {
            expr: expr.clone(),
            input: input(i)?,
            options: *options,
        },
        DslPlan::HStack {
            input: i,
            exprs,
            options,
        } if plain(exprs) => DslPlan::HStack {
            input: input(i)?,
            exprs: exprs.clone(),
            options: *options,
        },
        DslPlan::GroupBy {
            input: i,
            keys,
            predicates,
            aggs,
            maintain_order,
            options,
            apply: None,
        } if plain(keys) && plain(predicates) && plain(aggs) => DslPlan::GroupBy {
            input: input(i)?,
            keys: keys.clone(),
            predicates: predicates.clone(),
            aggs: aggs.clone(),
            maintain_order: *maintain_order,
            options: options.clone(),
            apply: None,
        },
        DslPlan::Sort {
            input: i,
            by_column,
            slice,
            sort_options,
        } if plain(by_column) => DslPlan::Sort {
            input: input(i)?,
            by_column: by_column.clone(),
            slice: *slice,
            sort_options: sort_options.clone(),
        },
        DslPlan::Slice {
            input: i,
            offset,
            len,
        } => DslPlan::Slice {
            input: input(i)?,
            offset: *offset,
            len: *len,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter and a projection over a scan-like plan: the input of the
    /// queries below.
    fn input() -> LazyFrame {
        df!(
            "g" => ["a", "b", "a", "c"],
            "x" => [Some(1i64), None, Some(3), Some(4)],
            "y" => [0.5f64, 1.5, 2.5, 3.5]
        )
        .unwrap()
        .lazy()
        .filter(col("y").gt(lit(0.0)))
        .with_column((col("y") * lit(2.0)).alias("z"))
    }

    /// The optimized plan, without the random id Polars gives a top-k's
    /// dynamic predicate.
    fn plan_text(lf: &LazyFrame) -> String {
        let text = lf.clone().describe_optimized_plan().unwrap();
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("dynamic_pred: ") {
            let (head, tail) = rest.split_at(at + "dynamic_pred: ".len());
            out.push_str(head);
            rest = tail.get(36..).unwrap_or("");
        }
        out + rest
    }

    #[test]
    fn a_query_over_the_stand_in_plans_what_it_plans_over_the_frame() {
        let mut lf = input();
        let schema = lf.collect_schema().unwrap();
        for q in [
            "SELECT * FROM __input WHERE (x > 1 AND g <> 'b')",
            "SELECT \"g\", (x * 2 + y) AS \"w\", \"z\" FROM __input",
            "SELECT \"g\", sum(y) AS \"s\", count(*) AS \"n\" FROM __input GROUP BY \"g\" ORDER BY \"g\"",
            "SELECT \"g\", s FROM (SELECT \"g\", total(x) AS s FROM __input GROUP BY \"g\") AS t ORDER BY \"g\" LIMIT 2",
        ] {
            let direct = over(input(), q).unwrap();
            let grafted = over_stand_in(input(), &schema, |f| over(f, q)).unwrap();
            assert_eq!(plan_text(&grafted), plan_text(&direct), "{q}");
            assert!(
                grafted
                    .collect()
                    .unwrap()
                    .equals_missing(&direct.collect().unwrap()),
                "{q}"
            );
        }
    }

    #[test]
    fn a_subquery_in_an_expression_is_planned_over_the_frame_itself() {
        let mut lf = input();
        let schema = lf.collect_schema().unwrap();
        let q = "SELECT * FROM __input WHERE x IN (SELECT x FROM __input WHERE g = 'a')";
        let direct = over(input(), q).unwrap().collect().unwrap();
        let built = over_stand_in(input(), &schema, |f| over(f, q))
            .unwrap()
            .collect()
            .unwrap();
        // Grafted, the subquery would have read the empty stand-in: no row.
        assert_eq!(direct.height(), 2);
        assert!(built.equals_missing(&direct), "{built}");
    }
}
