//! Expressions: SQL expression strings, evaluated by Polars SQL.
//!
//! They are parsed with the same parser Polars SQL uses (sqlparser, generic
//! dialect) when a pipeline is submitted, so a typo fails validation instead
//! of a run. Once the input schema is known, the column names an expression
//! uses are checked against it, which gives a better message than Polars'
//! own ("did you mean").

use std::ops::ControlFlow;

use polars::prelude::Schema;
use sqlparser::ast::{Expr as SqlExpr, visit_expressions};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Whitespace};

use crate::guard::Refused;
use crate::{OpError, unknown_column};

/// What an expression is expected to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprKind {
    /// One value per row (derive, select, filter predicates, row checks).
    Row,
    /// One value per group (aggregate, conditional edges).
    Aggregate,
    /// Either: assert checks are row checks unless they aggregate.
    Any,
}

/// How deep an expression may nest (parentheses, CASE, function calls).
/// Fixed: Polars SQL parses at most 50 levels, and the queries the engine
/// builds around an expression add a few.
pub const MAX_NESTING: usize = 40;

/// The longest expression accepted by default (`limits.max_expression_chars`).
pub const DEFAULT_MAX_CHARS: usize = 10_000;

/// Parses an expression; the error is the parser's message.
pub fn parse(text: &str) -> Result<SqlExpr, String> {
    if text.trim().is_empty() {
        return Err("expression is empty".to_string());
    }
    crate::guard::check_tokens(text).map_err(|r| r.message)?;
    // The engine puts an expression inside a query of its own: a comment
    // could hide the rest of that query, so there are none.
    let tokens = sqlparser::tokenizer::Tokenizer::new(&GenericDialect, text)
        .tokenize_with_location()
        .map_err(|e| clean(e.to_string()))?;
    if tokens.iter().any(|t| {
        matches!(
            t.token,
            Token::Whitespace(
                Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)
            )
        )
    }) {
        return Err("comments are not allowed in an expression".to_string());
    }
    let mut parser = Parser::new(&GenericDialect)
        .with_recursion_limit(MAX_NESTING)
        .with_tokens_with_locations(tokens);
    let expr = parser.parse_expr().map_err(|e| match e {
        sqlparser::parser::ParserError::RecursionLimitExceeded => format!(
            "expression nests deeper than {MAX_NESTING} levels (a fixed limit: Polars SQL parses at most 50)"
        ),
        e => clean(e.to_string()),
    })?;
    // Anything left over ("a > 1 b") is a syntax error, not a second expression.
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!(
            "unexpected \"{}\" at {}",
            next.token, next.span.start
        ));
    }
    Ok(expr)
}

fn clean(msg: String) -> String {
    msg.strip_prefix("sql parser error: ")
        .unwrap_or(&msg)
        .to_string()
}

/// Whether the call is to an aggregate function (one value per group).
/// A window function (`sum(x) OVER (...)`) is one value per row.
pub fn is_aggregate_call(f: &sqlparser::ast::Function) -> bool {
    f.over.is_none()
        && crate::guard::AGGREGATES.contains(&f.name.to_string().to_lowercase().as_str())
}

/// Whether the expression calls an aggregate function.
pub fn is_aggregate(expr: &SqlExpr) -> bool {
    visit_expressions(expr, |e| match e {
        SqlExpr::Function(f) if is_aggregate_call(f) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Whether the expression calls a window function (`... OVER (...)`).
pub fn has_window(expr: &SqlExpr) -> bool {
    visit_expressions(expr, |e| match e {
        SqlExpr::Function(f) if f.over.is_some() => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Whether the expression computes a row's value from that row alone: it
/// parses, and calls no aggregate and no window function (`OVER`).
pub fn is_row_wise(text: &str) -> bool {
    parse(text).is_ok_and(|e| !is_aggregate(&e) && !has_window(&e))
}

/// Column names the expression refers to (plain identifiers only; qualified
/// names are left to Polars).
pub fn columns(expr: &SqlExpr) -> Vec<String> {
    let mut out = Vec::new();
    let _ = visit_expressions(expr, |e| {
        if let SqlExpr::Identifier(id) = e
            && !out.contains(&id.value)
        {
            out.push(id.value.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// Parses and checks an expression at submission: its length, its syntax,
/// what it may hold (no query, allowed functions only: [`crate::guard`])
/// and the kind expected of it.
pub fn check_syntax(text: &str, kind: ExprKind, max_chars: usize) -> Result<SqlExpr, Refused> {
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(Refused {
            message: crate::limits::message(
                "the expression's length in characters",
                chars,
                "limits.max_expression_chars",
                max_chars,
            ),
            hint: None,
        });
    }
    let expr = parse(text).map_err(|m| Refused {
        message: format!("expression does not parse: {m}"),
        hint: None,
    })?;
    crate::guard::check_expr(&expr)?;
    in_context(text, &expr)?;
    let refused = |m: &str| Refused {
        message: m.to_string(),
        hint: None,
    };
    match kind {
        ExprKind::Row if is_aggregate(&expr) => Err(refused(
            "aggregate functions are not allowed here; use an aggregate node",
        )),
        ExprKind::Aggregate if !is_aggregate(&expr) && has_columns_outside_aggregates(&expr) => {
            Err(refused(
                "expression must aggregate (e.g. sum(x), count(*)) to yield one value",
            ))
        }
        _ => Ok(expr),
    }
}

/// Checks that the expression means the same inside the queries the engine
/// builds around it: it parses there (a bare keyword such as `WITH` parses
/// alone but not in a WHERE) into the very same expression.
fn in_context(text: &str, expr: &SqlExpr) -> Result<(), Refused> {
    use sqlparser::ast::{SetExpr, Statement};
    let q = format!("SELECT * FROM {} WHERE ({text})", crate::sqlutil::INPUT);
    let refused = |m: String| Refused {
        message: format!("expression does not parse where it is used: {m}"),
        hint: Some("quote a column whose name is a keyword: \"name\"".into()),
    };
    let stmt = crate::guard::check_query(&q, None, crate::guard::QueryRules::Generated)
        .map_err(|r| refused(r.message))?;
    let selection = match &stmt {
        Statement::Query(q) => match q.body.as_ref() {
            SetExpr::Select(s) => s.selection.as_ref(),
            _ => None,
        },
        _ => None,
    };
    match selection {
        Some(SqlExpr::Nested(inner)) if inner.to_string() == expr.to_string() => {}
        other => {
            return Err(refused(format!(
                "it reads as {} there",
                other.map_or_else(|| "nothing".to_string(), |e| e.to_string())
            )));
        }
    }
    // And once mudrock's rewrites (date_trunc) have run over that query.
    let rewritten = crate::sqlrewrite::rewrite_query(&q).map_err(refused)?;
    crate::guard::check_query(&rewritten, None, crate::guard::QueryRules::Generated)
        .map(|_| ())
        .map_err(|r| refused(r.message))
}

/// Whether a column is used outside any aggregate call; `count(*) > 0` uses
/// none, `amount > 0` does.
fn has_columns_outside_aggregates(expr: &SqlExpr) -> bool {
    !columns(expr).is_empty() && !is_aggregate(expr)
}

/// Checks that every column the expression names exists in the schema.
pub fn check_columns(field: &str, text: &str, schema: &Schema) -> Result<(), OpError> {
    let expr = parse(text)
        .map_err(|m| OpError::config(field, format!("expression does not parse: {m}")))?;
    for name in columns(&expr) {
        if schema.get(&name).is_none() {
            return Err(unknown_column(field, &name, schema));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_wise_means_no_aggregate_and_no_window() {
        assert!(is_row_wise("x * 2 + 1"));
        assert!(is_row_wise(
            "CASE WHEN s = 'a' THEN upper(s) ELSE coalesce(s, '') END"
        ));
        assert!(is_row_wise("x > 1 AND y IS NOT NULL"));
        assert!(!is_row_wise("sum(x) OVER (PARTITION BY g)"));
        assert!(!is_row_wise("x - lag(x) OVER (ORDER BY t)"));
        assert!(!is_row_wise("row_number() OVER (ORDER BY t)"));
        assert!(!is_row_wise("x / sum(x)"));
        assert!(
            !is_row_wise("x +"),
            "what does not parse is not known to be row-wise"
        );
    }

    #[test]
    fn parses_and_finds_columns() {
        let e = parse("status <> 'cancelled' AND quantity > 0").unwrap();
        assert_eq!(columns(&e), vec!["status", "quantity"]);
        assert!(!is_aggregate(&e));
        let e = parse("count(*) > 0").unwrap();
        assert!(is_aggregate(&e));
        assert!(columns(&e).is_empty());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("quantity >").is_err());
        assert!(parse("a > 1 b").is_err());
        assert_eq!(
            parse("a > 1 -- ) OR b IN (SELECT 1)").unwrap_err(),
            "comments are not allowed in an expression"
        );
        assert!(parse("").is_err());
        let max = DEFAULT_MAX_CHARS;
        assert_eq!(
            check_syntax("sum(x)", ExprKind::Row, max)
                .unwrap_err()
                .message,
            "aggregate functions are not allowed here; use an aggregate node"
        );
        assert!(check_syntax("x > 1", ExprKind::Aggregate, max).is_err());
        assert!(check_syntax("count(*) > 0", ExprKind::Aggregate, max).is_ok());
        assert_eq!(
            check_syntax("x > 10", ExprKind::Row, 5)
                .unwrap_err()
                .message,
            "over the limit limits.max_expression_chars = 5: the expression's length in \
             characters (6); raise limits.max_expression_chars in the config if this is intended"
        );
        // Found by the fuzzer: a keyword parses alone, not in a query.
        let e = check_syntax("WITH", ExprKind::Row, max).unwrap_err();
        assert!(
            e.message
                .starts_with("expression does not parse where it is used: "),
            "{e}"
        );
        assert!(check_syntax("\"WITH\" > 1", ExprKind::Row, max).is_ok());
        let deep = format!("{}x{}", "(".repeat(60), ")".repeat(60));
        assert_eq!(
            check_syntax(&deep, ExprKind::Row, max).unwrap_err().message,
            "expression does not parse: expression nests deeper than 40 levels (a fixed \
             limit: Polars SQL parses at most 50)"
        );
    }

    #[test]
    fn window_functions_are_rows() {
        let e = parse("sum(x) OVER (PARTITION BY g)").unwrap();
        assert!(!is_aggregate(&e));
    }
}
