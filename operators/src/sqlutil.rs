//! Running generated SQL over inputs in a fresh, closed Polars SQL context.
//!
//! Every context here starts empty and sees only the frames registered in
//! it, which is the first half of what keeps SQL away from files; the
//! second half is the table check in the `sql` operator.

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
