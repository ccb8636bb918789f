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
//! order, so a plain float sum could differ in its last bits from run to
//! run, and an output's bytes (its blake3, every diff of it) with it. So
//! the split applies when every aggregate call is a count, a min, a max, a
//! sum of integers or booleans, or a sum or mean of Float64, which is
//! summed exactly on a fixed grid ([`crate::exact_sum`]: a 128-bit
//! integer total per group, rounded once). Everything else
//! keeps the one-query form, whose order is fixed; so does a unit whose
//! float values are off the grid (the engine builds it again with
//! `Limits::sequential_float_sums`).

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
use crate::{
    Arity, ExprKind, ExprRef, Input, Limits, OnStreaming, OpError, Operator, exact_sum, expr, one,
    packed_key, require_list,
};

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

    /// Order-free when split: partitioned reductions whose results do not
    /// depend on the order rows arrive in, groups sorted by their keys.
    fn on_streaming(&self, inputs: &[SchemaRef], limits: &Limits) -> OnStreaming {
        match inputs {
            [schema] if self.split(schema, limits).is_some() => OnStreaming::OrderFree,
            _ => OnStreaming::Differs,
        }
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

    fn build(&self, inputs: Vec<Input>, limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        require_list(&input.schema, "by", &self.by)?;
        for (i, a) in self.aggregations.iter().enumerate() {
            expr::check_columns(&format!("aggregations[{i}].expr"), &a.expr, &input.schema)?;
        }
        let split = self.split(&input.schema, limits);
        let Some(split) = split else {
            let q = one_phase_query(&self.by, &self.aggregations);
            return Ok(over_stand_in(input.frame, &input.schema, |f| over(f, &q))?);
        };
        Ok(over_stand_in(input.frame, &input.schema, |mut f| {
            let parts: Vec<String> = split.floats.iter().map(|(_, p)| p.clone()).collect();
            if !parts.is_empty() {
                let args: Vec<String> = split
                    .floats
                    .iter()
                    .map(|(arg, p)| format!("({arg}) AS {}", ident(&format!("{p}_a"))))
                    .collect();
                f = over(f, &format!("SELECT *, {} FROM {INPUT}", args.join(", ")))?;
                f = exact_sum::per_row(f, &parts);
            }
            if split.packed {
                f = f.with_column(packed_key::key(&self.by));
            }
            let mut groups = exact_sum::finish(over(f, &split.inner)?, &parts);
            if split.packed {
                groups = groups.with_columns(packed_key::unpack(&input.schema, &self.by)?);
            }
            over(groups, &split.outer)
        })?)
    }
}

impl Aggregate {
    /// The two-phase form over input `schema`, where it applies.
    fn split(&self, schema: &SchemaRef, limits: &Limits) -> Option<Split> {
        if schema.iter_names().any(|n| n.starts_with(PART)) {
            return None;
        }
        // What a sum's argument is (asking Polars for its type plans, it
        // does not compute).
        let stand_in = DataFrame::empty_with_arc_schema(schema.clone()).lazy();
        let kind = |arg: &str| {
            let dtype = over(
                stand_in.clone(),
                &format!("SELECT ({arg}) AS a FROM {INPUT}"),
            )
            .and_then(|mut lf| lf.collect_schema())
            .ok()
            .and_then(|s| s.iter_values().next().cloned());
            match dtype {
                Some(dt) if dt.is_integer() || dt == DataType::Boolean => Arg::Integer,
                Some(DataType::Float64) if !limits.sequential_float_sums => Arg::Float,
                _ => Arg::Other,
            }
        };
        let packed = !limits.unpacked_group_keys && packed_key::packs(schema, &self.by);
        two_phase_query(&self.by, &self.aggregations, &kind, packed)
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

/// What an aggregate call's argument is, for the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// Integers and booleans: their sum is exact in any order.
    Integer,
    /// Float64, summed exactly on a grid ([`exact_sum`]).
    Float,
    Other,
}

/// The aggregation in two phases: the group-by of plain reductions and
/// the projection over it.
#[derive(Debug)]
struct Split {
    /// Float arguments summed exactly: (argument, part name). Each is
    /// computed as column `{part}_a` before the group-by, put on the grid
    /// per row for `inner` to total, and rounded as column `{part}`.
    floats: Vec<(String, String)>,
    /// The group-by, over [`INPUT`].
    inner: String,
    /// The projection and order, over the group-by's result as [`INPUT`].
    outer: String,
    /// The group-by is by [`packed_key::KEY`], which the input gets first;
    /// the keys come back from it ([`packed_key::unpack`]).
    packed: bool,
}

/// The aggregation as a group-by of plain aggregate calls and a projection
/// over them (see the module docs), or `None` where that split does not
/// apply: window functions, aggregates nested in aggregates, a `by` column
/// that could clash with the intermediate names, a sum of anything but
/// integers, booleans or Float64, an aggregate other than count, min, max,
/// sum and (of Float64) avg. Those run as one query, as before. `packed`:
/// group by [`packed_key::KEY`] (see [`Split::packed`]).
fn two_phase_query(
    by: &[String],
    aggregations: &[NamedExpr],
    kind: &dyn Fn(&str) -> Arg,
    packed: bool,
) -> Option<Split> {
    if by.iter().any(|b| b.starts_with(PART)) {
        return None;
    }
    // Rendered aggregate call -> its replacement in the projection, shared
    // by every aggregation that uses the same call.
    let mut parts: BTreeMap<String, String> = BTreeMap::new();
    let mut floats: Vec<(String, String)> = Vec::new();
    let mut inner: Vec<String> = match packed {
        false => by.iter().map(|b| ident(b)).collect(),
        true => vec![ident(packed_key::KEY)],
    };
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
            let call = f.to_string();
            // Post-order: an aggregate inside this one was already
            // replaced by a part column. Polars rejects that; so do we.
            if call.contains(PART) {
                ok = false;
                return ControlFlow::Break(());
            }
            let arg = plain_arg(f);
            // The argument's type matters to sums and means alone (and
            // asking for it plans a query): not to count, min, max, nor to
            // a call already split.
            let arg_kind = match (fname.as_str(), &arg) {
                _ if parts.contains_key(&call) => Arg::Other,
                ("sum" | "avg", Some(a)) => kind(a),
                _ => Arg::Other,
            };
            let n = parts.len();
            let name = format!("{PART}{n}");
            let replacement = match (fname.as_str(), arg_kind, &arg) {
                _ if parts.contains_key(&call) => parts[&call].clone(),
                ("count" | "min" | "max", _, _) => {
                    inner.push(format!("{call} AS {}", ident(&name)));
                    ident(&name)
                }
                // SQL's sum: null when the group has no value. "Has a
                // value" as a max over booleans: Polars partitions that,
                // not `count(x)` (nor the `len - null_count` it makes of a
                // sum of them).
                ("sum", Arg::Integer, Some(arg)) => {
                    let has = ident(&format!("{name}n"));
                    inner.push(format!("total({arg}) AS {}", ident(&name)));
                    inner.push(format!("max(({arg}) IS NOT NULL) AS {has}"));
                    format!("CASE WHEN {has} THEN {} END", ident(&name))
                }
                // The exact sum is null where the group has no value.
                ("sum" | "avg", Arg::Float, Some(arg)) => {
                    let mean = fname == "avg";
                    floats.push((arg.clone(), name.clone()));
                    inner.extend(exact_sum::reductions(&name, mean));
                    match mean {
                        false => ident(&name),
                        true => format!("{} / {}", ident(&name), ident(&format!("{name}_c"))),
                    }
                }
                _ => {
                    ok = false;
                    return ControlFlow::Break(());
                }
            };
            parts.insert(call, replacement.clone());
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
    if !floats.is_empty() {
        inner.push(format!("count(*) AS {}", ident(exact_sum::ROWS)));
    }
    let by_list = by.iter().map(|b| ident(b)).collect::<Vec<_>>().join(", ");
    let mut inner = format!("SELECT {} FROM {INPUT}", inner.join(", "));
    let mut outer = format!("SELECT {} FROM {INPUT}", outer.join(", "));
    if packed {
        inner.push_str(&format!(" GROUP BY {}", ident(packed_key::KEY)));
        outer.push_str(&format!(" ORDER BY {by_list}"));
    } else if !by.is_empty() {
        inner.push_str(&format!(" GROUP BY {by_list}"));
        outer.push_str(&format!(" ORDER BY {by_list}"));
    }
    Some(Split {
        floats,
        inner,
        outer,
        packed,
    })
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

    /// What `build` asks: what a sum's argument is.
    fn kind(arg: &str) -> Arg {
        let s = over(frame(), &format!("SELECT ({arg}) AS a FROM {INPUT}"))
            .and_then(|mut lf| lf.collect_schema())
            .unwrap();
        match s.iter_values().next().unwrap() {
            dt if dt.is_integer() => Arg::Integer,
            DataType::Float64 => Arg::Float,
            _ => Arg::Other,
        }
    }

    /// The aggregate built as the engine builds it.
    fn build(by: &[&str], aggs: &[NamedExpr], lf: LazyFrame, limits: &Limits) -> LazyFrame {
        let mut lf = lf;
        let schema = lf.collect_schema().unwrap();
        let op = Aggregate {
            by: by.iter().map(|b| b.to_string()).collect(),
            aggregations: aggs.to_vec(),
        };
        let input = Input {
            name: "in".into(),
            frame: lf,
            schema,
        };
        op.build(vec![input], limits).unwrap()
    }

    fn sequential() -> Limits {
        Limits {
            sequential_float_sums: true,
            ..Limits::default()
        }
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
            named("sy", "sum(y)"),
            named("my", "avg(y)"),
            named("both", "sum(y) * 2 + sum(x)"),
            named("sy2", "sum(y - 0.25)"),
        ];
        for by in [vec!["g"], vec![]] {
            let by_s: Vec<String> = by.iter().map(|b| b.to_string()).collect();
            let one = one_phase_query(&by_s, &aggs);
            let two = two_phase_query(&by_s, &aggs, &kind, false).expect("splits");
            assert!(two.inner.contains("total(x)"), "{two:?}");
            assert_eq!(two.floats.len(), 3, "{two:?}");
            for lf in [frame(), frame().filter(lit(false))] {
                let a = collect(&one, lf.clone());
                for limits in [Limits::default(), sequential()] {
                    let b = build(&by, &aggs, lf.clone(), &limits).collect().unwrap();
                    assert_eq!(a.schema(), b.schema(), "{two:?}");
                    assert!(a.equals_missing(&b), "{two:?}\n{a}\n{b}");
                }
            }
        }
        // All-null group: SQL's null, not 0, for integers and floats.
        let df = build(&["g"], &aggs, frame(), &Limits::default())
            .collect()
            .unwrap();
        let sx = df.column("sx").unwrap().i64().unwrap();
        assert_eq!(sx.get(1), None, "group b has no x\n{df}");
        assert_eq!(sx.get(0), Some(3));
        let sy = df.column("sy").unwrap().f64().unwrap();
        let my = df.column("my").unwrap().f64().unwrap();
        assert_eq!(
            (sy.get(2), my.get(2)),
            (None, None),
            "group c has no y\n{df}"
        );
        assert_eq!((sy.get(1), my.get(1)), (Some(4.0), Some(2.0)));
    }

    #[test]
    fn float_sums_do_not_depend_on_row_order_or_engine() {
        // Values whose sum in row order depends on the order.
        let n = 20_000;
        let y: Vec<f64> = (0..n)
            .map(|i| {
                // Large and small magnitudes, all on the grid.
                let x = f64::from(i);
                match i % 3 {
                    0 => (x * 0.37).sin() * 1e9,
                    _ => 0.1 + 0.001 * f64::from(i % 1000),
                }
            })
            .collect();
        let g: Vec<i64> = (0..n).map(|i| i64::from(i % 7)).collect();
        let forward = df!("g" => &g, "y" => &y).unwrap();
        let reversed = forward.reverse();
        let aggs = [named("s", "sum(y)"), named("m", "avg(y)")];
        let bits = |df: DataFrame| -> Vec<u64> {
            ["s", "m"]
                .iter()
                .flat_map(|c| {
                    df.column(c)
                        .unwrap()
                        .f64()
                        .unwrap()
                        .into_no_null_iter()
                        .collect::<Vec<_>>()
                })
                .map(f64::to_bits)
                .collect()
        };
        let mut seen = Vec::new();
        for df in [&forward, &reversed] {
            for engine in [Engine::InMemory, Engine::Streaming] {
                let lf = build(&["g"], &aggs, df.clone().lazy(), &Limits::default());
                seen.push(bits(
                    lf.collect_with_engine(engine).unwrap().unwrap_single(),
                ));
            }
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
        // In row order, the two orders differ: the check above is not idle.
        let seq = |df: &DataFrame| {
            bits(
                build(&["g"], &aggs, df.clone().lazy(), &sequential())
                    .collect()
                    .unwrap(),
            )
        };
        assert_ne!(seq(&forward), seq(&reversed));
    }

    /// Date and Int8 keys, nulls in both, negative hours: grouped by one
    /// packed key, the result is what the one-query form gives, on both
    /// engines.
    #[test]
    fn packed_keys_give_what_one_query_gives() {
        let n = 5_000;
        let week: Vec<Option<i32>> = (0..n)
            .map(|i| (i % 11 != 0).then_some(19_000 + 7 * (i % 9)))
            .collect();
        let hour: Vec<Option<i8>> = (0..n)
            .map(|i| ((i / 7) % 13 != 0).then_some(((i / 9) % 24) as i8 - 12))
            .collect();
        let x: Vec<f64> = (0..n).map(|i| f64::from(i % 100) * 0.25).collect();
        let lf = df!("week" => week, "hour" => hour, "x" => x)
            .unwrap()
            .lazy()
            .with_column(col("week").cast(DataType::Date));
        let aggs = [
            named("s", "sum(x)"),
            named("n", "count(*)"),
            named("hi", "max(x)"),
        ];
        let by = ["week", "hour"];
        let by_s: Vec<String> = by.iter().map(|b| b.to_string()).collect();
        let mut input = lf.clone();
        let schema = input.collect_schema().unwrap();
        let split = Aggregate {
            by: by_s.clone(),
            aggregations: aggs.to_vec(),
        }
        .split(&schema, &Limits::default())
        .expect("splits");
        assert!(split.packed, "{split:?}");
        assert!(split.inner.contains(packed_key::KEY), "{split:?}");
        let one = collect(&one_phase_query(&by_s, &aggs), lf.clone());
        assert_eq!(
            one.height(),
            10 * 25,
            "9 weeks and null by 24 hours and null"
        );
        for engine in [Engine::InMemory, Engine::Streaming] {
            let packed = build(&by, &aggs, lf.clone(), &Limits::default())
                .collect_with_engine(engine)
                .unwrap()
                .unwrap_single();
            assert_eq!(one.schema(), packed.schema());
            assert!(one.equals_missing(&packed), "{engine:?}\n{one}\n{packed}");
        }
    }

    #[test]
    fn a_float_off_the_grid_fails_for_the_engine_to_sum_in_row_order() {
        let df = df!("g" => [1i64, 1], "y" => [1.0, 1e-30]).unwrap();
        let aggs = [named("s", "sum(y)")];
        let e = build(&["g"], &aggs, df.clone().lazy(), &Limits::default())
            .collect()
            .unwrap_err();
        assert!(exact_sum::is_off_grid(&e.to_string()), "{e}");
        let out = build(&["g"], &aggs, df.lazy(), &sequential())
            .collect()
            .unwrap();
        assert_eq!(
            out.column("s").unwrap().f64().unwrap().get(0),
            Some(1.0 + 1e-30)
        );
    }

    #[test]
    fn order_dependent_or_unsplittable_results_keep_one_query() {
        for e in [
            "sum(CAST(y AS REAL))",
            "avg(x)",
            "first(s)",
            "sum(DISTINCT y)",
        ] {
            let aggs = [named("n", "count(*)"), named("a", e)];
            assert!(
                two_phase_query(&["g".into()], &aggs, &kind, false).is_none(),
                "{e}"
            );
        }
        let aggs = [named("a", "sum(y)")];
        let seq = |_: &str| Arg::Other;
        assert!(two_phase_query(&["g".into()], &aggs, &seq, false).is_none());
    }

    #[test]
    fn the_group_by_holds_only_plain_reductions() {
        let two = two_phase_query(&["g".into()], &[named("sx", "sum(x)")], &kind, false).unwrap();
        assert_eq!(
            two.inner,
            "SELECT \"g\", total(x) AS \"__mudrock_part_0\", max((x) IS NOT NULL) AS \"__mudrock_part_0n\" \
             FROM __input GROUP BY \"g\""
        );
        assert_eq!(
            two.outer,
            "SELECT \"g\", (CASE WHEN \"__mudrock_part_0n\" THEN \"__mudrock_part_0\" END) AS \"sx\" \
             FROM __input ORDER BY \"g\""
        );
        // What Polars plans: reductions it partitions, nothing over them
        // (its optimizer would turn a sum of `x IS NOT NULL` into
        // `len - null_count`, which it does not partition).
        let aggregate_line = |aggs: &[NamedExpr]| {
            let plan = build(&["g"], aggs, frame(), &Limits::default())
                .describe_optimized_plan()
                .unwrap();
            let lines: Vec<String> = plan.lines().map(|l| l.trim().to_string()).collect();
            let at = lines
                .iter()
                .position(|l| l.starts_with("AGGREGATE"))
                .unwrap_or_else(|| panic!("{plan}"));
            lines[at + 1].clone()
        };
        assert_eq!(
            aggregate_line(&[named("sx", "sum(x)")]),
            "[col(\"x\").sum().alias(\"__mudrock_part_0\"), \
             col(\"x\").is_not_null().max().alias(\"__mudrock_part_0n\")] BY [col(\"g\")]",
        );
        let p = |w: &str| format!("col(\"__mudrock_part_0_{w}\")");
        assert_eq!(
            aggregate_line(&[named("sy", "sum(y)")]),
            format!(
                "[{}.sum(), {}.max(), len().alias(\"__mudrock_part_rows\")] BY [col(\"g\")]",
                p("i"),
                p("big")
            )
        );
    }

    #[test]
    fn windows_nesting_and_clashing_names_keep_one_query() {
        let w = [named("w", "sum(x) OVER (PARTITION BY g)")];
        assert!(two_phase_query(&["g".into()], &w, &kind, false).is_none());
        let nested = [named("n", "max(sum(x))")];
        assert!(two_phase_query(&["g".into()], &nested, &kind, false).is_none());
        let clash = [named("n", "count(*)")];
        assert!(two_phase_query(&["__mudrock_part_0".into()], &clash, &kind, false).is_none());
    }
}
