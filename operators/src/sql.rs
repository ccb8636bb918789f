//! `sql`: a SELECT over the node's inputs, each a table named by its node id
//! (and `input` when there is exactly one).
//!
//! Polars SQL can read files (`read_parquet('/etc/...')`, `read_csv`, ...),
//! and no setting turns that off. So the query must be a single query
//! statement, may use no table functions, and may name only its inputs and
//! its own CTEs; it then runs in a fresh context holding only the inputs.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::{Arity, Input, OpError, Operator};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    pub query: String,
}

/// Collects table names, CTE names and table functions of a query.
#[derive(Default)]
struct Tables {
    relations: BTreeSet<String>,
    ctes: BTreeSet<String>,
    functions: Vec<String>,
}

impl Visitor for Tables {
    type Break = ();

    fn pre_visit_query(&mut self, q: &sqlparser::ast::Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => self.functions.push(name.to_string()),
            TableFactor::Table { name, .. } => {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    // The identifier's value, without its quotes ("x", 'x').
                    .map(|p| {
                        p.as_ident()
                            .map(|i| i.value.clone())
                            .unwrap_or_else(|| p.to_string())
                    })
                    .collect();
                self.relations.insert(parts.join("."));
            }
            TableFactor::TableFunction { expr, .. } => self.functions.push(expr.to_string()),
            TableFactor::Function { name, .. } => self.functions.push(name.to_string()),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

impl Sql {
    fn analyse(&self) -> Result<Tables, OpError> {
        let stmts = Parser::parse_sql(&GenericDialect, &self.query).map_err(|e| {
            let m = e.to_string();
            OpError::config(
                "query",
                format!(
                    "query does not parse: {}",
                    m.strip_prefix("sql parser error: ").unwrap_or(&m)
                ),
            )
        })?;
        let [stmt] = stmts.as_slice() else {
            return Err(OpError::config(
                "query",
                format!("query must be one SELECT statement, got {}", stmts.len()),
            ));
        };
        if !matches!(stmt, Statement::Query(_)) {
            return Err(OpError::config(
                "query",
                "query must be a SELECT statement; nothing else is allowed",
            ));
        }
        let mut tables = Tables::default();
        let _ = stmt.visit(&mut tables);
        if let Some(f) = tables.functions.first() {
            return Err(OpError::config(
                "query",
                format!("table function {f}(...) is not allowed: a sql node reads only its inputs"),
            ));
        }
        Ok(tables)
    }
}

impl Operator for Sql {
    fn arity(&self) -> Arity {
        Arity::AtLeast(1)
    }

    fn validate(&self) -> Result<(), OpError> {
        self.analyse().map(|_| ())
    }

    fn build(&self, inputs: Vec<Input>) -> Result<LazyFrame, OpError> {
        let tables = self.analyse()?;
        let mut names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
        if inputs.len() == 1 {
            names.push("input".into());
        }
        for t in &tables.relations {
            if !names.contains(t) && !tables.ctes.contains(t) {
                return Err(OpError::config(
                    "query",
                    format!(
                        "query reads table \"{t}\", which is not an input; tables: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
        let mut frames: Vec<(String, LazyFrame)> = inputs
            .iter()
            .map(|i| (i.name.clone(), i.frame.clone()))
            .collect();
        if inputs.len() == 1 {
            frames.push(("input".into(), inputs[0].frame.clone()));
        }
        Ok(crate::sqlutil::run(
            frames.iter().map(|(n, f)| (n.as_str(), f.clone())),
            &self.query,
        )?)
    }
}
