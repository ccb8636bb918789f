//! The bodies of mudrock's fuzz targets, shared by the libFuzzer harness
//! (`fuzz/fuzz_targets/`, the long run) and the short generated run in the
//! test suite (`tests/fuzz_short.rs`). Each must never panic; each also
//! checks a property of what it accepts.

use mudrock::operators::expr::{DEFAULT_MAX_CHARS, check_syntax};
use mudrock::operators::guard::{QueryRules, check_query};
use mudrock::operators::{ExprKind, sqlrewrite};
use mudrock::validate::{Options, validate_str};

/// The document validator, lenient and strict. A document it accepts is
/// accepted again from its own canonical JSON.
pub fn document(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for strict in [false, true] {
        let opts = Options {
            strict,
            ..Default::default()
        };
        if let Ok((p, _)) = validate_str(text, opts) {
            let again = p.definition.to_string();
            assert!(
                validate_str(&again, opts).is_ok(),
                "accepted once, refused from its own JSON: {again}"
            );
        }
    }
}

/// The expression parser and checker. An expression it accepts, put in
/// the query the engine builds around it, passes the query guard: nothing
/// in it can turn into a subquery, a table or a function not allowed.
pub fn expression(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for kind in [ExprKind::Row, ExprKind::Aggregate, ExprKind::Any] {
        if check_syntax(text, kind, DEFAULT_MAX_CHARS).is_ok() {
            for q in [
                format!("SELECT * FROM __input WHERE ({text})"),
                format!("SELECT ({text}) AS \"x\" FROM __input"),
            ] {
                let r = check_query(&q, Some(&["__input"]), QueryRules::Generated);
                assert!(
                    r.is_ok(),
                    "accepted {text:?}, but its query is refused: {r:?}"
                );
            }
        }
    }
}

/// The query guard and the SQL rewriter. A query a sql node accepts at
/// validation is accepted by the guard as it will run (rewritten).
pub fn query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inputs: &[&str] = &["input", "orders"];
    let _ = check_query(text, None, QueryRules::Sql);
    let _ = sqlrewrite::rewrite_query(text);
    let sql = mudrock::operators::lookup("sql").expect("registered");
    let accepted = sql
        .parse(&serde_json::json!({ "query": text }))
        .is_ok_and(|op| op.validate_inputs(&["orders"]).is_ok());
    if accepted {
        let rewritten = sqlrewrite::rewrite_query(text).expect("validated, so it rewrites");
        let r = check_query(&rewritten, Some(inputs), QueryRules::Sql);
        assert!(r.is_ok(), "{text:?} rewritten to {rewritten:?}: {r:?}");
    }
}
