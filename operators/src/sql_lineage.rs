//! Column lineage of a `sql` node's query: each output column traced
//! through CTEs, derived tables, joins, set operations and wildcards back to
//! the input tables' columns.
//!
//! What the resolver cannot follow (a table function, a `VALUES` body, an
//! expression wildcard) makes the columns concerned derive from every input
//! column as a transformation: more than the truth, never less.

use sqlparser::ast::{
    Expr as SqlExpr, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, WildcardAdditionalOptions,
};

use crate::lineage::{
    ColumnOrigins, Derivation, InputColumns, Origin, everything, normalise, of_parsed, origin,
    plain_name,
};

/// Named columns with their origins: a table in scope, or a query's result.
type Columns = Vec<(String, Vec<Origin>)>;

/// A table a query can read: an input or a CTE.
struct Env<'a> {
    inputs: &'a [InputColumns<'a>],
    ctes: Vec<(String, Columns)>,
}

/// Origins of each of `output`'s columns (the query's result columns).
pub fn lineage(stmt: &Statement, inputs: &[InputColumns], output: &[String]) -> ColumnOrigins {
    let items = match stmt {
        Statement::Query(q) => query(
            q,
            &Env {
                inputs,
                ctes: Vec::new(),
            },
        ),
        _ => None,
    };
    let fallback = || everything(inputs);
    let Some(items) = items else {
        return output.iter().map(|_| fallback()).collect();
    };
    if items.len() == output.len() {
        return items.into_iter().map(|(_, o)| normalise(o)).collect();
    }
    // Polars merged or dropped a column (`USING` keys): match by name.
    output
        .iter()
        .map(|name| {
            items
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, o)| normalise(o.clone()))
                .unwrap_or_else(fallback)
        })
        .collect()
}

fn query(q: &Query, env: &Env) -> Option<Columns> {
    let mut inner = Env {
        inputs: env.inputs,
        ctes: env.ctes.clone(),
    };
    for cte in q.with.iter().flat_map(|w| &w.cte_tables) {
        let mut cols = query(&cte.query, &inner)?;
        for (c, alias) in cols.iter_mut().zip(&cte.alias.columns) {
            c.0 = alias.name.value.clone();
        }
        inner.ctes.push((cte.alias.name.value.clone(), cols));
    }
    set_expr(&q.body, &inner)
}

fn set_expr(body: &SetExpr, env: &Env) -> Option<Columns> {
    match body {
        SetExpr::Select(s) => select(s, env),
        SetExpr::Query(q) => query(q, env),
        SetExpr::SetOperation { left, right, .. } => {
            let (l, r) = (set_expr(left, env)?, set_expr(right, env)?);
            if l.len() != r.len() {
                return None;
            }
            Some(
                l.into_iter()
                    .zip(r)
                    .map(|((name, mut a), (_, b))| {
                        a.extend(b);
                        (name, a)
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// A table in a SELECT's scope: the name it is known by, its columns.
type Scope = Vec<(String, Columns)>;

fn select(s: &Select, env: &Env) -> Option<Columns> {
    let mut scope: Scope = Vec::new();
    for twj in &s.from {
        factor(&twj.relation, env, &mut scope)?;
        for j in &twj.joins {
            factor(&j.relation, env, &mut scope)?;
        }
    }
    let resolve = |e: &SqlExpr| resolve(e, &scope);
    let mut out = Columns::new();
    for item in &s.projection {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let name = plain_name(e).map_or_else(|| e.to_string(), str::to_string);
                out.push((name, of_parsed(e, &resolve)));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                out.push((alias.value.clone(), of_parsed(expr, &resolve)));
            }
            SelectItem::Wildcard(opts) => {
                for (_, cols) in &scope {
                    out.extend(cols.iter().filter(|(c, _)| !excluded(opts, c)).cloned());
                }
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), opts) => {
                let t = last(n)?;
                let (_, cols) = scope.iter().find(|(a, _)| same(a, &t))?;
                out.extend(cols.iter().filter(|(c, _)| !excluded(opts, c)).cloned());
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Adds a FROM item's tables to the scope.
fn factor(t: &TableFactor, env: &Env, scope: &mut Scope) -> Option<()> {
    match t {
        TableFactor::Table { name, alias, .. } => {
            let table = last(name)?;
            let cols = table_columns(&table, env)?;
            let known_as = alias.as_ref().map_or(table, |a| a.name.value.clone());
            scope.push((known_as, cols));
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let mut cols = query(subquery, env)?;
            let known_as = alias.as_ref().map(|a| {
                for (c, a) in cols.iter_mut().zip(&a.columns) {
                    c.0 = a.name.value.clone();
                }
                a.name.value.clone()
            });
            scope.push((known_as.unwrap_or_default(), cols));
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            factor(&table_with_joins.relation, env, scope)?;
            for j in &table_with_joins.joins {
                factor(&j.relation, env, scope)?;
            }
        }
        _ => return None,
    }
    Some(())
}

/// A CTE (the innermost of that name) or an input; `input` names the
/// only input.
fn table_columns(name: &str, env: &Env) -> Option<Columns> {
    if let Some((_, cols)) = env.ctes.iter().rev().find(|(n, _)| same(n, name)) {
        return Some(cols.clone());
    }
    let at = env
        .inputs
        .iter()
        .position(|i| same(i.name, name))
        .or_else(|| (env.inputs.len() == 1 && same(name, "input")).then_some(0))?;
    Some(
        env.inputs[at]
            .columns
            .iter()
            .map(|c| (c.clone(), vec![origin(at, c, Derivation::Copy)]))
            .collect(),
    )
}

fn resolve(e: &SqlExpr, scope: &Scope) -> Vec<Origin> {
    let find = |cols: &Columns, c: &str| {
        cols.iter()
            .find(|(n, _)| n == c)
            .or_else(|| cols.iter().find(|(n, _)| same(n, c)))
            .map(|(_, o)| o.clone())
    };
    match e {
        SqlExpr::Identifier(id) => scope
            .iter()
            .find_map(|(_, cols)| find(cols, &id.value))
            .unwrap_or_default(),
        SqlExpr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let table = &parts[parts.len() - 2].value;
            let column = &parts[parts.len() - 1].value;
            scope
                .iter()
                .filter(|(a, _)| same(a, table))
                .find_map(|(_, cols)| find(cols, column))
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

fn excluded(opts: &WildcardAdditionalOptions, column: &str) -> bool {
    use sqlparser::ast::{ExceptSelectItem, ExcludeSelectItem};
    let in_exclude = match &opts.opt_exclude {
        Some(ExcludeSelectItem::Single(n)) => last(n).is_some_and(|n| same(&n, column)),
        Some(ExcludeSelectItem::Multiple(ns)) => {
            ns.iter().any(|n| last(n).is_some_and(|n| same(&n, column)))
        }
        None => false,
    };
    let in_except = match &opts.opt_except {
        Some(ExceptSelectItem {
            first_element,
            additional_elements,
        }) => {
            same(&first_element.value, column)
                || additional_elements.iter().any(|i| same(&i.value, column))
        }
        None => false,
    };
    in_exclude || in_except
}

fn last(n: &ObjectName) -> Option<String> {
    match n.0.last()? {
        ObjectNamePart::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::{QueryRules, check_query};

    fn trace(q: &str, inputs: &[(&str, &[&str])], output: &[&str]) -> Vec<Vec<String>> {
        let owned: Vec<(String, Vec<String>)> = inputs
            .iter()
            .map(|(n, c)| (n.to_string(), c.iter().map(|s| s.to_string()).collect()))
            .collect();
        let ins: Vec<InputColumns> = owned
            .iter()
            .map(|(n, c)| InputColumns {
                name: n,
                columns: c,
            })
            .collect();
        let names: Vec<&str> = inputs.iter().map(|(n, _)| *n).collect();
        let mut tables = names.clone();
        if tables.len() == 1 {
            tables.push("input");
        }
        let stmt = check_query(q, Some(&tables), QueryRules::Sql).expect("query checks");
        let out: Vec<String> = output.iter().map(|s| s.to_string()).collect();
        lineage(&stmt, &ins, &out)
            .into_iter()
            .map(|os| {
                os.into_iter()
                    .map(|o| {
                        let how = match o.how {
                            Derivation::Copy => "copy",
                            Derivation::Transformation => "transformation",
                            Derivation::Aggregation => "aggregation",
                        };
                        format!("{}.{}:{how}", names[o.input], o.column)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn ctes_joins_aliases_and_aggregates() {
        let got = trace(
            "WITH big AS (SELECT id, amount * 2 AS doubled FROM orders WHERE amount > 10) \
             SELECT c.name, b.doubled, sum(b.doubled) AS total, o.* \
             FROM big AS b JOIN customers c ON b.id = c.id JOIN (SELECT id AS oid FROM orders) o ON o.oid = b.id \
             GROUP BY c.name, b.doubled, o.oid",
            &[
                ("orders", &["id", "amount"]),
                ("customers", &["id", "name"]),
            ],
            &["name", "doubled", "total", "oid"],
        );
        assert_eq!(
            got,
            vec![
                vec!["customers.name:copy"],
                vec!["orders.amount:transformation"],
                vec!["orders.amount:aggregation"],
                vec!["orders.id:copy"],
            ]
        );
    }

    #[test]
    fn wildcards_unions_and_the_input_name() {
        let got = trace(
            "SELECT * EXCLUDE (b) FROM input UNION ALL SELECT a, c FROM input",
            &[("t", &["a", "b", "c"])],
            &["a", "c"],
        );
        assert_eq!(got, vec![vec!["t.a:copy"], vec!["t.c:copy"]]);
    }

    #[test]
    fn what_it_cannot_follow_derives_from_everything() {
        // Two result columns for one output: matched by name; a name not
        // found gets every input column.
        let got = trace(
            "SELECT a, b FROM t",
            &[("t", &["a", "b"])],
            &["b", "zz", "x"],
        );
        assert_eq!(got[0], vec!["t.b:copy"]);
        assert_eq!(got[1], vec!["t.a:transformation", "t.b:transformation"]);
    }
}
