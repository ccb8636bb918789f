//! `unpivot`: wide to long. `index` columns stay; the `on` columns (default:
//! all others) become `variable`/`value` rows.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::join::one_or_many;
use crate::{Arity, Input, Limits, OpError, Operator, one, require_list};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Unpivot {
    #[serde(default)]
    pub index: Vec<String>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub on: Option<Vec<String>>,
    #[serde(default = "variable")]
    pub variable_name: String,
    #[serde(default = "value")]
    pub value_name: String,
}

fn variable() -> String {
    "variable".into()
}

fn value() -> String {
    "value".into()
}

impl Unpivot {
    /// Without `on`: every column that is not an index.
    fn unnamed_on<'a>(&self, columns: impl Iterator<Item = &'a str>) -> Vec<String> {
        columns
            .filter(|c| !self.index.iter().any(|i| i == c))
            .map(str::to_string)
            .collect()
    }
}

impl Operator for Unpivot {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    /// Index columns are copied; the value column copies every unpivoted
    /// column; the variable column holds their names, not their data.
    fn column_lineage(
        &self,
        inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{Derivation, origin};
        let Some(input) = inputs.first() else {
            return Vec::new();
        };
        let on: Vec<String> = match &self.on {
            Some(on) => on.clone(),
            None => self.unnamed_on(input.columns.iter().map(String::as_str)),
        };
        output
            .iter()
            .map(|n| {
                if self.index.contains(n) {
                    vec![origin(0, n, Derivation::Copy)]
                } else if *n == self.value_name {
                    on.iter().map(|c| origin(0, c, Derivation::Copy)).collect()
                } else {
                    Vec::new()
                }
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        require_list(&input.schema, "index", &self.index)?;
        let on = match &self.on {
            Some(on) => {
                require_list(&input.schema, "on", &on)?;
                on.clone()
            }
            None => self.unnamed_on(input.schema.iter_names().map(|n| n.as_str())),
        };
        // Unpivoted columns must share a type; say which differ rather than
        // letting Polars pick a supertype silently or fail obscurely.
        let types: Vec<_> = on
            .iter()
            .map(|c| input.schema.get(c).unwrap().clone())
            .collect();
        if let Some(pos) = types.iter().position(|t| t != &types[0])
            && !(types[0].is_primitive_numeric() && types[pos].is_primitive_numeric())
        {
            return Err(OpError::config(
                "on",
                format!(
                    "columns to unpivot must share a type: \"{}\" is {} but \"{}\" is {}; cast first",
                    on[0], types[0], on[pos], types[pos]
                ),
            ));
        }
        Ok(input.frame.unpivot(UnpivotArgsDSL {
            on: Some(cols(on.iter().map(String::as_str))),
            index: cols(self.index.iter().map(String::as_str)),
            variable_name: Some(self.variable_name.as_str().into()),
            value_name: Some(self.value_name.as_str().into()),
        }))
    }
}
