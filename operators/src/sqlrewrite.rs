//! Rewrites SQL functions users expect but Polars SQL 0.55 lacks into ones
//! it has, on the parsed AST (never by string search).
//!
//! `date_trunc('unit', x)` becomes `mudrock_date_trunc_unit(x)`, Polars'
//! native truncation registered by [`crate::date_trunc`] (year, quarter,
//! month, week, day, hour, minute, second); the result is a datetime.
//! `date_part('hour', x)` and `EXTRACT(HOUR FROM x)` of a year, month, day,
//! hour, minute or second become `mudrock_date_part_hour(x)`, computed
//! with integers by [`crate::date_part`] (other parts stay Polars'). A
//! query that names those internal functions itself is refused.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, Value, visit_expressions_mut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::date_trunc::{PREFIX, UNITS, is_internal};

fn needs_rewrite(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    ["date_trunc", "date_part", "extract"]
        .iter()
        .any(|f| lower.contains(f))
}

/// `x` as an expression, parsed back from text.
fn parse(text: &str, what: &str) -> Result<Expr, String> {
    Parser::new(&GenericDialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|err| format!("rewriting {what}: {err}"))
}

/// `date_part('part', x)` or `EXTRACT(part FROM x)` of a part
/// [`crate::date_part`] computes, as its internal function; anything else
/// is left as it is (Polars reads it, or says what is wrong).
fn rewrite_part(e: &mut Expr) {
    let (part, value) = match e {
        Expr::Extract { field, expr, .. } => (field.to_string(), expr.to_string()),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("date_part") => {
            let FunctionArguments::List(list) = &f.args else {
                return;
            };
            match list.args.as_slice() {
                [
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))),
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)),
                ] => match &v.value {
                    Value::SingleQuotedString(p) => (p.clone(), x.to_string()),
                    _ => return,
                },
                _ => return,
            }
        }
        _ => return,
    };
    // Only faster, never different: an expression that does not read back
    // from its text stays Polars' to compute.
    let text = |part| format!("{}{part}({value})", crate::date_part::PREFIX);
    if let Some(x) =
        crate::date_part::canonical(&part).and_then(|p| parse(&text(p), "date_part").ok())
    {
        *e = x;
    }
}

/// A name the user may not call: the functions `date_trunc` becomes.
fn refuse_internal(e: &Expr) -> Result<(), String> {
    match e {
        Expr::Function(f) if is_internal(&f.name.to_string()) => {
            Err(format!("unknown function \"{}\"", f.name))
        }
        _ => Ok(()),
    }
}

fn rewrite_one(e: &mut Expr) -> Result<(), String> {
    refuse_internal(e)?;
    rewrite_part(e);
    let Expr::Function(f) = e else { return Ok(()) };
    if !f.name.to_string().eq_ignore_ascii_case("date_trunc") {
        return Ok(());
    }
    let FunctionArguments::List(list) = &f.args else {
        return Err("date_trunc takes (unit, value)".into());
    };
    let args: Vec<&Expr> = list
        .args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x),
            _ => None,
        })
        .collect();
    let [unit, value] = args.as_slice() else {
        return Err(format!(
            "date_trunc takes 2 arguments (unit, value), got {}",
            list.args.len()
        ));
    };
    let unit = match unit {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.to_ascii_lowercase(),
            _ => return Err("date_trunc's unit must be a quoted string like 'month'".into()),
        },
        _ => return Err("date_trunc's unit must be a quoted string like 'month'".into()),
    };
    if !UNITS.iter().any(|(u, _)| *u == unit) {
        let names: Vec<&str> = UNITS.iter().map(|u| u.0).collect();
        return Err(format!(
            "date_trunc unit '{unit}' is not supported; use one of {}",
            names.join(", ")
        ));
    };
    *e = parse(&format!("{PREFIX}{unit}({value})"), "date_trunc")?;
    Ok(())
}

/// Rewrites a whole query; returns it unchanged when there is nothing to do.
/// The token checks come first, as before every parse of user text (the
/// fuzzer reached this parse with a query the guard refuses).
pub fn rewrite_query(sql: &str) -> Result<String, String> {
    if !needs_rewrite(sql) {
        return Ok(sql.to_string());
    }
    crate::guard::check_tokens(sql).map_err(|r| format!("query: {}", r.message))?;
    let mut stmts: Vec<Statement> =
        Parser::parse_sql(&GenericDialect, sql).map_err(|e| e.to_string())?;
    let mut err = None;
    let _ = visit_expressions_mut(&mut stmts, |e| match rewrite_one(e) {
        Ok(()) => ControlFlow::Continue(()),
        Err(m) => {
            err = Some(m);
            ControlFlow::Break(())
        }
    });
    if let Some(m) = err {
        return Err(m);
    }
    Ok(stmts
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_date_trunc() {
        let q = rewrite_query("SELECT date_trunc('month', ts) AS m FROM t").unwrap();
        assert_eq!(q, "SELECT mudrock_date_trunc_month(ts) AS m FROM t");
        assert_eq!(
            rewrite_query("SELECT date_trunc('WEEK', date_trunc('day', ts)) FROM t").unwrap(),
            "SELECT mudrock_date_trunc_week(mudrock_date_trunc_day(ts)) FROM t"
        );
        // The internal names are mudrock's, not the user's.
        assert_eq!(
            rewrite_query("SELECT mudrock_date_trunc_month(ts) FROM t").unwrap_err(),
            "unknown function \"mudrock_date_trunc_month\""
        );
        assert_eq!(rewrite_query("SELECT a FROM t").unwrap(), "SELECT a FROM t");
        // The token checks come before the parse: the fuzzer's query took
        // 13 s in this parse when the guard was only run elsewhere.
        let slow = format!(
            "SELECT date_trunc{}",
            "CASE++++NOT+++++++++++O++FR++".repeat(10)
        );
        let e = rewrite_query(&slow).unwrap_err();
        assert!(
            e.starts_with("query: more than 3 operators in a row"),
            "{e}"
        );
        assert!(
            rewrite_query("SELECT date_trunc('fortnight', ts) FROM t")
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn rewrites_the_parts_computed_with_integers_and_leaves_the_rest() {
        assert_eq!(
            rewrite_query("SELECT date_part('HOURS', ts) AS h, EXTRACT(MONTH FROM d) FROM t")
                .unwrap(),
            "SELECT mudrock_date_part_hour(ts) AS h, mudrock_date_part_month(d) FROM t"
        );
        assert_eq!(
            rewrite_query("SELECT date_part('second', date_trunc('day', ts)) FROM t").unwrap(),
            "SELECT mudrock_date_part_second(mudrock_date_trunc_day(ts)) FROM t"
        );
        // Parts Polars reads itself, and malformed calls it reports on.
        for q in [
            "SELECT date_part('dow', ts) FROM t",
            "SELECT EXTRACT(QUARTER FROM ts) FROM t",
            "SELECT date_part(ts) FROM t",
        ] {
            assert_eq!(rewrite_query(q).unwrap(), q);
        }
        assert_eq!(
            rewrite_query("SELECT mudrock_date_part_hour(ts) FROM t").unwrap_err(),
            "unknown function \"mudrock_date_part_hour\""
        );
    }
}
