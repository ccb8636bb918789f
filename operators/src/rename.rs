//! `rename`: renames columns (`{"old": "new"}`); order is kept.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, Limits, OpError, Operator, one, unknown_column};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    pub mapping: BTreeMap<String, String>,
}

impl Operator for Rename {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn row_wise(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<(), OpError> {
        let mut seen = std::collections::BTreeSet::new();
        for (old, new) in &self.mapping {
            if !seen.insert(new) {
                return Err(OpError::config(
                    format!("mapping.{old}"),
                    format!("two columns renamed to \"{new}\""),
                ));
            }
        }
        Ok(())
    }

    fn column_lineage(
        &self,
        _inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{Derivation, origin};
        output
            .iter()
            .map(|n| {
                let old = self
                    .mapping
                    .iter()
                    .find(|(_, new)| *new == n)
                    .map_or(n.as_str(), |(old, _)| old.as_str());
                vec![origin(0, old, Derivation::Copy)]
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let input = one(inputs);
        for (old, new) in &self.mapping {
            if input.schema.get(old).is_none() {
                return Err(unknown_column(format!("mapping.{old}"), old, &input.schema));
            }
            if input.schema.get(new).is_some() && !self.mapping.contains_key(new) {
                return Err(OpError::config(
                    format!("mapping.{old}"),
                    format!(
                        "cannot rename \"{old}\" to \"{new}\": the input already has a column \"{new}\""
                    ),
                ));
            }
        }
        let (old, new): (Vec<_>, Vec<_>) = self
            .mapping
            .iter()
            .map(|(o, n)| (o.as_str(), n.as_str()))
            .unzip();
        Ok(input.frame.rename(old, new, true))
    }
}
