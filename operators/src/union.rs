//! `union`: stacks its inputs in input order. `vertical` needs the same
//! columns in the same order; `diagonal` aligns by name and fills nulls.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Arity, Input, Limits, OpError, Operator};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Union {
    #[serde(default)]
    pub how: How,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum How {
    #[default]
    Vertical,
    Diagonal,
}

impl Operator for Union {
    fn arity(&self) -> Arity {
        Arity::AtLeast(1)
    }

    /// Each output column is a copy of that column of every input that
    /// has it (all of them, unless `diagonal` fills a gap with nulls).
    fn column_lineage(
        &self,
        inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{Derivation, origin};
        output
            .iter()
            .enumerate()
            .map(|(pos, n)| {
                inputs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, inp)| match self.how {
                        // Vertical: by position, names may differ.
                        How::Vertical => {
                            inp.columns.get(pos).map(|c| origin(i, c, Derivation::Copy))
                        }
                        How::Diagonal => inp.has(n).then(|| origin(i, n, Derivation::Copy)),
                    })
                    .collect()
            })
            .collect()
    }

    fn build(&self, inputs: Vec<Input>, _limits: &Limits) -> Result<LazyFrame, OpError> {
        let args = UnionArgs {
            maintain_order: true,
            ..Default::default()
        };
        let first = inputs[0].schema.clone();
        if self.how == How::Vertical {
            for other in &inputs[1..] {
                let a: Vec<_> = first.iter_names().collect();
                let b: Vec<_> = other.schema.iter_names().collect();
                if a != b {
                    return Err(OpError::config(
                        "how",
                        format!(
                            "input \"{}\" has columns [{}] but \"{}\" has [{}]; use \"how\": \"diagonal\" to align by name",
                            inputs[0].name,
                            a.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                            other.name,
                            b.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        let frames: Vec<LazyFrame> = inputs.into_iter().map(|i| i.frame).collect();
        Ok(match self.how {
            How::Vertical => concat(frames, args)?,
            How::Diagonal => concat_lf_diagonal(frames, args)?,
        })
    }
}
