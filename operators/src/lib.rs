//! Operators of the mudrock engine: what a pipeline's `operator` nodes can do.
//!
//! Each operator lives in its own file as a serde config struct (with
//! `deny_unknown_fields`, so a typo in the editor is an error rather than a
//! silently ignored option) that also implements the small [`Operator`]
//! runtime trait. [`REGISTRY`] lists them all; the engine knows operators only
//! through it. Operators build Polars lazy frames and never collect unless
//! they must (pivot needs its column values, assert inspects its data), so
//! Polars can optimise across node boundaries.

use std::fmt;

use polars::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub mod civil;
pub mod date_part;
pub mod date_trunc;
pub mod dtype;
pub mod exact_sum;
pub mod expr;
pub mod guard;
pub mod limits;
pub mod lineage;
pub mod packed_key;
pub mod sqlrewrite;
pub mod sqlutil;
mod tokens;

mod aggregate;
mod assert;
mod cast;
mod derive;
mod distinct;
mod drop;
mod drop_nulls;
mod fill_null;
mod filter;
mod join;
mod limit;
mod pivot;
mod rename;
mod select;
mod sort;
mod sql;
mod sql_lineage;
mod union;
mod unpivot;

mod config_error;

use config_error::parse_config;
pub use config_error::{ConfigError, SerdeProblem, did_you_mean, read_serde_message};
pub use expr::ExprKind;
pub use limits::Limits;
pub use lineage::{ColumnOrigins, Derivation, InputColumns, Origin};

/// How many inputs an operator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

impl Arity {
    /// The smallest number of inputs that lets the operator run.
    pub fn min(self) -> usize {
        match self {
            Arity::Exactly(n) | Arity::AtLeast(n) => n,
        }
    }

    /// The largest number of inputs it accepts, if bounded.
    pub fn max(self) -> Option<usize> {
        match self {
            Arity::Exactly(n) => Some(n),
            Arity::AtLeast(_) => None,
        }
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arity::Exactly(1) => write!(f, "1 input"),
            Arity::Exactly(n) => write!(f, "{n} inputs"),
            Arity::AtLeast(1) => write!(f, "at least 1 input"),
            Arity::AtLeast(n) => write!(f, "at least {n} inputs"),
        }
    }
}

/// What an operator's output is on Polars' streaming engine, which reads
/// sources in morsels on every core and meets rows (group-bys, joins) in
/// no fixed order, compared with the in-memory engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStreaming {
    /// The same rows in the same order when its inputs' rows come in the
    /// same order: row-wise operators, stable sorts, limits.
    Ordered,
    /// The same bytes whatever order its input rows come in: an aggregate
    /// that sorts its groups and adds exactly.
    OrderFree,
    /// The same rows, in an order that may change run to run: joins.
    Unordered,
    /// May differ in values (a float sum in no fixed order) or rows.
    Differs,
}

/// One input of an operator: the upstream node's id and its lazy frame.
#[derive(Clone)]
pub struct Input {
    /// Id of the node that produced it; the `sql` operator's table name.
    pub name: String,
    pub frame: LazyFrame,
    /// The frame's schema, resolved by the engine before building.
    pub schema: SchemaRef,
}

/// An expression inside a config, listed so it can be parsed at submission.
#[derive(Debug, Clone)]
pub struct ExprRef {
    /// Path below the node's `config`, e.g. `columns[2].expr`.
    pub field: String,
    pub text: String,
    pub kind: ExprKind,
}

/// Why an operator could not be built or run. `field` is the path below the
/// node's `config` that the problem is about, when there is one.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The config refers to something the data does not have.
    #[error("{message}")]
    Config { field: String, message: String },
    /// Polars refused the plan or failed while computing it.
    #[error("{0}")]
    Polars(#[from] PolarsError),
    /// An `assert` found data that breaks its checks.
    #[error("{0}")]
    CheckFailed(String),
    /// A resource over one of the [`Limits`]; the message names it.
    #[error("{0}")]
    Limit(String),
}

impl OpError {
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        OpError::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The config field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            OpError::Config { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Serialises a config back to JSON; blanket-implemented for every config so
/// the engine can hash the canonical form (defaults filled in).
pub trait ConfigJson {
    fn config_json(&self) -> Value;
}

impl<T: Serialize> ConfigJson for T {
    fn config_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The runtime side of an operator. Implemented by its config struct.
pub trait Operator: ConfigJson + Send + Sync + fmt::Debug {
    fn arity(&self) -> Arity;

    /// Expressions in the config, parsed at submission.
    fn expressions(&self) -> Vec<ExprRef> {
        Vec::new()
    }

    /// Checks that need no data: called at submission after parsing.
    fn validate(&self) -> Result<(), OpError> {
        Ok(())
    }

    /// Checks that need the names of the node's inputs (in input order),
    /// called at submission once the graph is known: a `sql` query may
    /// read only these.
    fn validate_inputs(&self, _inputs: &[&str]) -> Result<(), OpError> {
        Ok(())
    }

    /// Builds the output frame. Inputs come in the pipeline's input order.
    fn build(&self, inputs: Vec<Input>, limits: &Limits) -> Result<LazyFrame, OpError>;

    /// Whether every output row is computed from one input row alone, in
    /// input order (filters, projections, row expressions without windows).
    /// Such operators give the same rows in the same order on Polars'
    /// streaming engine as on the in-memory one, so the engine may stream
    /// them whatever the size. Anything that groups, joins, sorts, windows
    /// or looks at neighbouring rows says no (the default).
    fn row_wise(&self) -> bool {
        false
    }

    /// How the output on Polars' streaming engine compares with the
    /// in-memory engine's, given inputs with these schemas (see
    /// [`OnStreaming`]). Row-wise operators keep order; the rest differ
    /// unless they say otherwise.
    fn on_streaming(&self, _inputs: &[SchemaRef], _limits: &Limits) -> OnStreaming {
        if self.row_wise() {
            OnStreaming::Ordered
        } else {
            OnStreaming::Differs
        }
    }

    /// For each of `output`'s columns (the built frame's, in order), the
    /// input columns it derives from ([`lineage`]). The default copies
    /// same-named columns of the first input: right for operators that
    /// only keep, drop or order rows or columns (filter, drop, sort, limit,
    /// distinct, drop_nulls, assert).
    fn column_lineage(&self, inputs: &[InputColumns], output: &[String]) -> ColumnOrigins {
        lineage::by_name(inputs, output)
    }

    /// Operators that must look at their materialised output (assert) say so.
    fn needs_check(&self) -> bool {
        false
    }

    /// Inspects the materialised output; only called when `needs_check`.
    fn check(&self, _df: &DataFrame) -> Result<(), OpError> {
        Ok(())
    }
}

/// Parses a config for the named operator.
type ParseFn = fn(&Value, &'static str) -> Result<Box<dyn Operator>, ConfigError>;

/// One registry entry.
pub struct OperatorSpec {
    pub name: &'static str,
    /// Bumped whenever the operator's semantics change: part of the cache key.
    pub version: u32,
    parse: ParseFn,
}

impl OperatorSpec {
    /// Parses a node config (with its `operator` field already removed).
    pub fn parse(&self, config: &Value) -> Result<Box<dyn Operator>, ConfigError> {
        let op = (self.parse)(config, self.name)?;
        op.validate().map_err(|e| ConfigError {
            field: e.field().unwrap_or("").to_string(),
            message: e.to_string(),
            hint: None,
        })?;
        Ok(op)
    }
}

impl fmt::Debug for OperatorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

const fn spec<C: Operator + DeserializeOwned + 'static>(
    name: &'static str,
    version: u32,
) -> OperatorSpec {
    OperatorSpec {
        name,
        version,
        parse: parse_config::<C>,
    }
}

/// The one list of operators.
pub static REGISTRY: &[OperatorSpec] = &[
    spec::<filter::Filter>("filter", 1),
    spec::<select::Select>("select", 1),
    spec::<derive::Derive>("derive", 1),
    spec::<rename::Rename>("rename", 1),
    spec::<drop::Drop>("drop", 1),
    spec::<cast::Cast>("cast", 1),
    spec::<aggregate::Aggregate>("aggregate", 2),
    spec::<join::Join>("join", 1),
    spec::<union::Union>("union", 1),
    spec::<sort::Sort>("sort", 1),
    spec::<limit::Limit>("limit", 1),
    spec::<distinct::Distinct>("distinct", 1),
    spec::<fill_null::FillNull>("fill_null", 1),
    spec::<drop_nulls::DropNulls>("drop_nulls", 1),
    spec::<pivot::Pivot>("pivot", 1),
    spec::<unpivot::Unpivot>("unpivot", 1),
    spec::<sql::Sql>("sql", 1),
    spec::<assert::Assert>("assert", 1),
];

/// Finds an operator by name.
pub fn lookup(name: &str) -> Option<&'static OperatorSpec> {
    REGISTRY.iter().find(|s| s.name == name)
}

/// Names of all operators, in registry order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|s| s.name).collect()
}

/// Checks that every named column exists in `schema`; `field` names where
/// the names came from, indexed per name (`columns[2]`).
pub fn require_columns<'a>(
    schema: &Schema,
    names: impl IntoIterator<Item = (String, &'a str)>,
) -> Result<(), OpError> {
    for (field, name) in names {
        if schema.get(name).is_none() {
            return Err(unknown_column(field, name, schema));
        }
    }
    Ok(())
}

/// Checks a config list of column names; problems are reported at
/// `field[i]`.
pub(crate) fn require_list(schema: &Schema, field: &str, names: &[String]) -> Result<(), OpError> {
    require_columns(
        schema,
        names
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{field}[{i}]"), c.as_str())),
    )
}

/// The error for a column that is not in the input.
pub fn unknown_column(field: impl Into<String>, name: &str, schema: &Schema) -> OpError {
    let hint = did_you_mean(name, schema.iter_names().map(|n| n.as_str()));
    let message = match hint {
        Some(h) => format!("unknown column \"{name}\" — {h}"),
        None => {
            let cols: Vec<&str> = schema.iter_names().map(|n| n.as_str()).take(12).collect();
            format!(
                "unknown column \"{name}\"; the input has: {}",
                cols.join(", ")
            )
        }
    };
    OpError::config(field, message)
}

/// A selector over `subset` (checked against the schema), or `None` for
/// all columns.
pub(crate) fn subset_selector(
    schema: &Schema,
    subset: &Option<Vec<String>>,
) -> Result<Option<Selector>, OpError> {
    match subset {
        Some(s) => {
            require_list(schema, "subset", s)?;
            Ok(Some(cols(s.iter().map(String::as_str))))
        }
        None => Ok(None),
    }
}

/// The single input of a one-input operator.
pub(crate) fn one(mut inputs: Vec<Input>) -> Input {
    inputs.swap_remove(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let dtypes = crate::dtype::NAMES.iter().copied();
        assert_eq!(
            did_you_mean("integer64", dtypes).as_deref(),
            Some("did you mean \"int64\"?")
        );
        assert_eq!(
            did_you_mean("qty", ["price", "quantity"]).as_deref(),
            Some("did you mean \"quantity\"?")
        );
        assert_eq!(
            did_you_mean("fliter", names()).as_deref(),
            Some("did you mean \"filter\"?")
        );
        assert_eq!(did_you_mean("zzz", names()), None);
        // Found by the fuzzer: a first character of several bytes.
        assert_eq!(did_you_mean("𑴆 x", ["xy", "𑴆y"]), None);
    }
}
