//! `sql`: a SELECT over the node's inputs, each a table named by its node id
//! (and `input` when there is exactly one).
//!
//! Polars SQL can read files (`read_parquet('/etc/...')`, `read_csv`, ...),
//! and no setting turns that off. So the query must be a single SELECT
//! whose tables are its inputs and its own CTEs, with no table function and
//! only allowed functions ([`crate::guard`]); it is checked at submission
//! against the node's input ids and again before it runs, in a fresh
//! context holding only the inputs.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::guard::{QueryRules, check_query};
use crate::{Arity, Input, Limits, OpError, Operator};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    pub query: String,
}

/// The table names a sql node's query may read: its inputs' node ids, and
/// `input` when it has exactly one.
fn table_names<'a>(inputs: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = inputs.into_iter().collect();
    if names.len() == 1 {
        names.push("input");
    }
    names
}

impl Sql {
    /// Checks the query as written and as it will run (after mudrock's
    /// rewrites, e.g. `date_trunc`): what validates is what runs.
    fn check(&self, tables: Option<&[&str]>, rules: QueryRules) -> Result<(), OpError> {
        let refused = |r: crate::guard::Refused| OpError::config("query", r.to_string());
        check_query(&self.query, tables, rules).map_err(refused)?;
        let rewritten = crate::sqlrewrite::rewrite_query(&self.query)
            .map_err(|m| OpError::config("query", m))?;
        if rewritten != self.query {
            check_query(&rewritten, tables, rules).map_err(|r| {
                OpError::config(
                    "query",
                    format!("query cannot run once date_trunc is rewritten: {r}"),
                )
            })?;
        }
        Ok(())
    }
}

impl Operator for Sql {
    fn arity(&self) -> Arity {
        Arity::AtLeast(1)
    }

    /// Without the inputs known: everything but the table names.
    fn validate(&self) -> Result<(), OpError> {
        self.check(None, QueryRules::Sql)
    }

    fn validate_inputs(&self, inputs: &[&str]) -> Result<(), OpError> {
        self.check(Some(&table_names(inputs.iter().copied())), QueryRules::Sql)
    }

    fn column_lineage(
        &self,
        inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        let names: Vec<&str> = inputs.iter().map(|i| i.name).collect();
        match check_query(&self.query, Some(&table_names(names)), QueryRules::Sql) {
            Ok(stmt) => crate::sql_lineage::lineage(&stmt, inputs, output),
            Err(_) => output
                .iter()
                .map(|_| crate::lineage::everything(inputs))
                .collect(),
        }
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let names = table_names(inputs.iter().map(|i| i.name.as_str()));
        self.check(Some(&names), QueryRules::Sql)?;
        let frames = names
            .iter()
            .zip(inputs.iter().cycle())
            .map(|(n, i)| (*n, i.frame.clone()));
        Ok(crate::sqlutil::run(frames, &self.query, QueryRules::Sql)?)
    }
}
