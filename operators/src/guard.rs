//! What SQL written in a pipeline may contain, checked on the parsed AST.
//!
//! Polars SQL can read files (`read_csv('/etc/...')` in a FROM, in a
//! subquery, in a CTE) and no setting turns that off. So every piece of SQL
//! a pipeline carries is walked here before Polars sees it:
//!
//! - an *expression* (filter predicates, derive/select/aggregate
//!   expressions, assert checks, conditional edges) may hold no query at all
//!   (no `IN (SELECT ...)`, `EXISTS`, scalar subquery) and call only the
//!   functions of [`FUNCTIONS`];
//! - a *query* (the `sql` operator, and every query the engine generates)
//!   is one SELECT whose tables are its inputs or its own CTEs: no table
//!   function, no string-literal or qualified table name, only the functions
//!   of [`FUNCTIONS`].
//!
//! Polars parses with the same sqlparser version and dialect, so what is
//! checked here is exactly what it runs.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArguments, ObjectName, Query, Statement, TableFactor, Visit, Visitor,
};

/// Every function an expression or a query may call: Polars SQL's scalar,
/// aggregate and window functions available in mudrock's build, plus
/// `date_trunc` (rewritten by mudrock). Lower case; names are matched
/// case-insensitively. The README lists them.
#[rustfmt::skip]
pub const FUNCTIONS: &[&str] = &[
    // bitwise
    "bit_and", "bitand", "bit_not", "bitnot", "bit_or", "bitor", "bit_xor", "bitxor", "xor",
    // math
    "abs", "cbrt", "ceil", "ceiling", "div", "exp", "floor", "ln", "log", "log10", "log1p",
    "log2", "mod", "pi", "pow", "power", "round", "trunc", "truncate", "sign", "sqrt",
    // trigonometry
    "cos", "cot", "sin", "tan", "cosd", "cotd", "sind", "tand", "acos", "asin", "atan", "atan2",
    "acosd", "asind", "atand", "atan2d", "degrees", "radians",
    // conditional
    "coalesce", "greatest", "if", "ifnull", "least", "nullif",
    // temporal
    "date", "date_part", "date_trunc", "strftime", "strptime", "timestamp", "datetime", "time",
    // strings
    "bit_length", "concat", "concat_ws", "ends_with", "left", "length", "char_length",
    "character_length", "lower", "lpad", "ltrim", "normalize", "octet_length", "regexp_like",
    "replace", "reverse", "right", "rpad", "rtrim", "split_part", "starts_with",
    "string_to_array", "strpos", "substr", "upper",
    // aggregates
    "avg", "corr", "count", "covar_pop", "covar_samp", "covar", "first", "last", "max", "median",
    "min", "quantile_cont", "quantile_disc", "stdev", "stddev", "stdev_samp", "stddev_samp",
    "string_agg", "listagg", "group_concat", "sum", "total", "var", "variance", "var_samp",
    // arrays
    "array_agg", "array_contains", "array_get", "array_length", "array_lower", "array_mean",
    "array_reverse", "array_sum", "array_to_string", "array_unique", "array_upper",
    // windows
    "first_value", "last_value", "lag", "lead", "row_number",
];

/// Aggregate functions among [`FUNCTIONS`]: one value per group.
#[rustfmt::skip]
pub const AGGREGATES: &[&str] = &[
    "avg", "corr", "count", "covar_pop", "covar_samp", "covar", "first", "last", "max", "median",
    "min", "quantile_cont", "quantile_disc", "stdev", "stddev", "stdev_samp", "stddev_samp",
    "string_agg", "listagg", "group_concat", "sum", "total", "var", "variance", "var_samp",
    "array_agg",
];

pub use crate::tokens::{MAX_BRACKETS, MAX_DOTS, check_tokens};

/// Why a piece of SQL was refused; the message names what and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub message: String,
    pub hint: Option<String>,
}

impl Refused {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Refused {
            message: message.into(),
            hint: None,
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " — {h}")?;
        }
        Ok(())
    }
}

/// The lower-case name of a one-part function name, or `None` for
/// qualified (`a.b(...)`) or dialect-specific names.
fn simple_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [part] => part.as_ident().map(|i| i.value.to_lowercase()),
        _ => None,
    }
}

fn check_function(name: &ObjectName) -> Result<(), Refused> {
    let Some(lower) = simple_name(name) else {
        return Err(Refused::new(format!(
            "function {name}(...) is not allowed: only plain function names are"
        )));
    };
    // The functions `date_trunc` is rewritten to (the rewrite refuses them
    // in what users write).
    if FUNCTIONS.contains(&lower.as_str()) || crate::date_trunc::is_internal(&lower) {
        return Ok(());
    }
    let mut r = Refused::new(format!("function {name}(...) is not allowed"));
    r.hint = crate::did_you_mean(&lower, FUNCTIONS.iter().copied())
        .or_else(|| Some("see \"Expression functions\" in the README".into()));
    if is_table_function(&lower) {
        r.message = format!(
            "table function {name}(...) is not allowed: pipelines read data only through ingestion nodes"
        );
        r.hint = None;
    }
    Err(r)
}

fn is_table_function(lower: &str) -> bool {
    lower.starts_with("read_")
}

/// Walks SQL and stops at the first thing refused.
struct Walk<'a> {
    /// Whether queries may appear at all (a query's FROM-subqueries, CTEs).
    queries: bool,
    /// Whether a query may appear inside an expression (`IN (SELECT ...)`):
    /// only in a user's sql node.
    expr_subqueries: bool,
    /// Tables a query may read (`None`: any plain name, when the inputs
    /// are not known yet); CTE names are added as they are met.
    inputs: Option<&'a [&'a str]>,
    ctes: BTreeSet<String>,
    refused: Option<Refused>,
}

impl Walk<'_> {
    fn stop(&mut self, r: Refused) -> ControlFlow<()> {
        self.refused = Some(r);
        ControlFlow::Break(())
    }

    fn table(&mut self, t: &TableFactor) -> Result<(), Refused> {
        match t {
            TableFactor::Table { name, args, .. } => {
                if args.is_some() {
                    return Err(Refused::new(format!(
                        "table function {name}(...) is not allowed: pipelines read data only through ingestion nodes"
                    )));
                }
                let [part] = name.0.as_slice() else {
                    return Err(Refused::new(format!(
                        "table \"{name}\" is not allowed: name an input by its node id"
                    )));
                };
                let Some(ident) = part.as_ident() else {
                    return Err(Refused::new(format!("table {name} is not allowed")));
                };
                if ident.quote_style == Some('\'') {
                    return Err(Refused::new(format!(
                        "string-literal table '{}' is not allowed: a query reads only its inputs",
                        ident.value
                    )));
                }
                let v = ident.value.as_str();
                let Some(inputs) = self.inputs else {
                    return Ok(());
                };
                if inputs.contains(&v) || self.ctes.contains(v) {
                    return Ok(());
                }
                let mut r = Refused::new(format!(
                    "query reads table \"{v}\", which is not an input; tables: {}",
                    inputs.join(", ")
                ));
                r.hint = crate::did_you_mean(v, inputs.iter().copied());
                Err(r)
            }
            TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::UNNEST { .. } => Ok(()),
            TableFactor::TableFunction { expr, .. } => Err(Refused::new(format!(
                "table function {expr} is not allowed: pipelines read data only through ingestion nodes"
            ))),
            TableFactor::Function { name, .. } => Err(Refused::new(format!(
                "table function {name}(...) is not allowed: pipelines read data only through ingestion nodes"
            ))),
            other => Err(Refused::new(format!(
                "this kind of table is not supported: {other}"
            ))),
        }
    }
}

const NO_SUBQUERY: &str =
    "subqueries are not allowed in an expression (IN (SELECT ...), EXISTS, (SELECT ...))";
const NO_SUBQUERY_HINT: &str = "use a join, or a sql node over its inputs";

fn no_subquery() -> Refused {
    Refused {
        message: NO_SUBQUERY.into(),
        hint: Some(NO_SUBQUERY_HINT.into()),
    }
}

impl Visitor for Walk<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if !self.queries {
            return self.stop(no_subquery());
        }
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        match self.table(t) {
            Ok(()) => ControlFlow::Continue(()),
            Err(r) => self.stop(r),
        }
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        let refused = match e {
            Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. }
                if !self.expr_subqueries =>
            {
                Some(no_subquery())
            }
            Expr::Function(f) => match check_function(&f.name) {
                Err(r) => Some(r),
                Ok(())
                    if matches!(f.args, FunctionArguments::Subquery(_))
                        && !self.expr_subqueries =>
                {
                    Some(no_subquery())
                }
                Ok(()) => None,
            },
            _ => None,
        };
        match refused {
            Some(r) => self.stop(r),
            None => ControlFlow::Continue(()),
        }
    }
}

/// Checks an expression: no query anywhere in it, allowed functions only.
pub fn check_expr(expr: &Expr) -> Result<(), Refused> {
    let mut w = Walk {
        queries: false,
        expr_subqueries: false,
        inputs: Some(&[]),
        ctes: BTreeSet::new(),
        refused: None,
    };
    let _ = expr.visit(&mut w);
    w.refused.map_or(Ok(()), Err)
}

/// What a checked query may hold besides its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryRules {
    /// A user's `sql` node: subqueries and CTEs over its inputs.
    Sql,
    /// A query the engine generated around checked expressions: no
    /// subquery inside an expression (a FROM-subquery of its own is fine).
    Generated,
}

/// Checks one parsed statement: a query reading only `inputs` (and its
/// own CTEs; `None`: any plain table name, for a check before the inputs
/// are known), calling only allowed functions.
pub fn check_statement(
    stmt: &Statement,
    inputs: Option<&[&str]>,
    rules: QueryRules,
) -> Result<(), Refused> {
    let Statement::Query(q) = stmt else {
        return Err(Refused::new(
            "query must be a SELECT statement; nothing else is allowed",
        ));
    };
    let mut w = Walk {
        queries: true,
        // Expressions inside a generated query were checked one by one; a
        // query inside one of them means the text was not what was checked.
        expr_subqueries: rules == QueryRules::Sql,
        inputs,
        ctes: BTreeSet::new(),
        refused: None,
    };
    let _ = q.visit(&mut w);
    w.refused.map_or(Ok(()), Err)
}

/// Parses a query text as Polars SQL does (same dialect and options) and
/// checks it: exactly one statement (see [`check_statement`]).
pub fn check_query(
    text: &str,
    inputs: Option<&[&str]>,
    rules: QueryRules,
) -> Result<Statement, Refused> {
    use sqlparser::parser::{Parser, ParserOptions};
    check_tokens(text).map_err(|r| Refused::new(format!("query: {}", r.message)))?;
    let stmts = Parser::new(&sqlparser::dialect::GenericDialect)
        .with_options(ParserOptions {
            trailing_commas: true,
            ..Default::default()
        })
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| {
            let m = e.to_string();
            Refused::new(format!(
                "query does not parse: {}",
                m.strip_prefix("sql parser error: ").unwrap_or(&m)
            ))
        })?;
    let mut stmts = stmts.into_iter();
    let (Some(stmt), None) = (stmts.next(), stmts.next()) else {
        return Err(Refused::new("query must be one SELECT statement"));
    };
    check_statement(&stmt, inputs, rules)?;
    Ok(stmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(text: &str) -> Result<(), Refused> {
        check_expr(&crate::expr::parse(text).unwrap())
    }

    #[test]
    fn expressions_hold_no_query_and_only_listed_functions() {
        assert!(expr("upper(name) = 'A' AND coalesce(x, 0) > 1").is_ok());
        assert!(expr("sum(x) OVER (PARTITION BY g)").is_ok());
        let r = expr("id IN (SELECT * FROM read_csv('/etc/passwd'))").unwrap_err();
        assert!(r.message.starts_with("subqueries are not allowed"), "{r}");
        let r = expr("READ_CSV('/etc/passwd')").unwrap_err();
        assert!(r.message.starts_with("table function READ_CSV"), "{r}");
        let r = expr("uper(name)").unwrap_err();
        assert_eq!(r.message, "function uper(...) is not allowed");
        assert_eq!(r.hint.as_deref(), Some("did you mean \"upper\"?"));
        assert!(expr("pg_catalog.upper(x)").is_err());
    }

    #[test]
    fn queries_read_only_their_inputs() {
        let ok = "WITH t AS (SELECT * FROM a) SELECT * FROM t JOIN b ON t.k = b.k";
        assert!(check_query(ok, Some(&["a", "b"]), QueryRules::Sql).is_ok());
        for (q, start) in [
            ("SELECT * FROM c", "query reads table \"c\""),
            ("SELECT * FROM '/etc/passwd'", "string-literal table"),
            ("SELECT * FROM read_parquet('/x')", "table function"),
            ("SELECT * FROM a.b", "table \"a.b\" is not allowed"),
            ("DELETE FROM a", "query must be a SELECT"),
        ] {
            let r = check_query(q, Some(&["a"]), QueryRules::Sql).unwrap_err();
            assert!(r.message.starts_with(start), "{q}: {r}");
        }
        let q = "SELECT * FROM a WHERE x IN (SELECT x FROM a)";
        assert!(check_query(q, Some(&["a"]), QueryRules::Sql).is_ok());
        assert!(check_query(q, Some(&["a"]), QueryRules::Generated).is_err());
    }

    #[test]
    fn few_prefix_operators_in_a_row_and_case_balanced() {
        for ok in [
            "- -x",
            "NOT -x",
            "x + -1",
            "CASE WHEN NOT x THEN -1 ELSE 1 END",
            "x IS NOT NULL",
        ] {
            assert!(check_tokens(ok).is_ok(), "{ok}");
        }
        // Found by the fuzzer: 19 s to parse at ten repetitions.
        let slow = "CASE++++NOT+++++++++++O++FR++".repeat(10);
        let r = check_tokens(&slow).unwrap_err();
        assert!(
            r.message.starts_with("more than 3 operators in a row"),
            "{}",
            r.message
        );
        assert!(check_tokens("- - - -x").is_err());
        assert_eq!(
            check_tokens("CASE WHEN x THEN 1").unwrap_err().message,
            "unbalanced CASE: a CASE without its END"
        );
        let deep = format!("{}1{}", "CASE WHEN x THEN ".repeat(9), " END".repeat(9));
        assert!(
            check_tokens(&deep)
                .unwrap_err()
                .message
                .starts_with("CASE nested more than 8")
        );
    }

    #[test]
    fn a_dot_joins_two_names() {
        for ok in ["t.col", "\"a b\".\"c\"", "x + 1.5", ".5 * x", "a.b.c"] {
            assert!(check_tokens(ok).is_ok(), "{ok}");
        }
        assert!(check_query("SELECT t.* FROM t", Some(&["t"]), QueryRules::Sql).is_ok());
        // Found by the fuzzer: spaced dots inside unclosed parentheses, parse
        // time ×8 per repetition (6 s at six).
        let slow = " .lOR.lsinlx .(x .dTTTTS.aV+0L*N-z .lO[mW]".repeat(6);
        for bad in ["a .b", "a. b", "a.(b)", "(a).b", "a.[b]", slow.as_str()] {
            let r = check_tokens(bad).unwrap_err();
            assert_eq!(
                r.message, "a \".\" must join two names with no space around it, as in t.col",
                "{bad}"
            );
        }
    }

    #[test]
    fn brackets_are_balanced_and_few() {
        assert!(check_tokens("x[1] + y[2]").is_ok());
        // Found by the fuzzer: six unbalanced "[" took the parser 86 s.
        let slow = "[FFFFFFFFFFV.t.R_Oet.At.t.R_Oet.trR[At.R_Oet.R_OeCF.t.t[$EIFFFFFFFFFFFFFF\
                    HFFFFFFFFFFV.t.R_Oet.At.t.R_Oet.trR[At.R_Oet.R_OeFF.t.t[t.t.R_Oet.trR[At.R_FFWEmW]";
        assert!(check_tokens(slow).is_err());
        let r = check_tokens("x[1").unwrap_err();
        assert_eq!(r.message, "unbalanced brackets: \"[\" without \"]\"");
        assert!(check_tokens("a]").is_err());
        let many = format!("{}x{}", "[".repeat(9), "]".repeat(9));
        assert!(
            check_tokens(&many)
                .unwrap_err()
                .message
                .starts_with("too many brackets: 9")
        );
        let r = check_query(
            "SELECT [[[[[[[[[1]]]]]]]]] FROM a",
            Some(&["a"]),
            QueryRules::Sql,
        );
        assert!(
            r.unwrap_err()
                .message
                .starts_with("query: too many brackets")
        );
    }
}
