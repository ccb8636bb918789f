//! `join`: two inputs, left then right (input order), on equal keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use polars::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Arity, Input, Limits, OnStreaming, OpError, Operator, require_list};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Join {
    #[serde(default)]
    pub how: How,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub on: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub left_on: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub right_on: Option<Vec<String>>,
    #[serde(default = "default_suffix")]
    pub suffix: String,
}

fn default_suffix() -> String {
    "_right".into()
}

/// Accepts `"id"` as well as `["id"]`.
pub(crate) fn one_or_many<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum How {
    #[default]
    Inner,
    Left,
    Right,
    Full,
    Semi,
    Anti,
    Cross,
}

impl Join {
    fn keys(&self) -> (Vec<String>, Vec<String>, &'static str, &'static str) {
        match (&self.on, &self.left_on, &self.right_on) {
            (Some(on), _, _) => (on.clone(), on.clone(), "on", "on"),
            (None, l, r) => (
                l.clone().unwrap_or_default(),
                r.clone().unwrap_or_default(),
                "leftOn",
                "rightOn",
            ),
        }
    }
}

impl Operator for Join {
    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn validate(&self) -> Result<(), OpError> {
        let has_on = self.on.is_some();
        let has_lr = self.left_on.is_some() || self.right_on.is_some();
        if self.how == How::Cross {
            if has_on || has_lr {
                return Err(OpError::config(
                    "how",
                    "a cross join takes no keys; remove \"on\"/\"leftOn\"/\"rightOn\"",
                ));
            }
            return Ok(());
        }
        if has_on && has_lr {
            return Err(OpError::config(
                "on",
                "give either \"on\" or \"leftOn\" + \"rightOn\", not both",
            ));
        }
        if !has_on && !has_lr {
            return Err(OpError::config(
                "on",
                "a join needs \"on\" or \"leftOn\" + \"rightOn\"",
            ));
        }
        let (l, r, _, _) = self.keys();
        if l.is_empty() {
            return Err(OpError::config(
                if has_on { "on" } else { "leftOn" },
                "join keys are empty",
            ));
        }
        if l.len() != r.len() {
            return Err(OpError::config(
                "rightOn",
                format!(
                    "\"leftOn\" has {} columns but \"rightOn\" has {}",
                    l.len(),
                    r.len()
                ),
            ));
        }
        Ok(())
    }

    /// Left columns then right ones, copied; a right column whose name
    /// the left has comes out with the suffix. A key column holds the left
    /// key's values (the right's in a right join, either in a full join).
    fn column_lineage(
        &self,
        inputs: &[crate::InputColumns],
        output: &[String],
    ) -> crate::ColumnOrigins {
        use crate::lineage::{Derivation, origin};
        let (Some(left), Some(right)) = (inputs.first(), inputs.get(1)) else {
            return Vec::new();
        };
        let (l, r, _, _) = self.keys();
        let right_plain =
            |n: &str| right.has(n) && (self.how == How::Cross || !r.iter().any(|k| k == n));
        output
            .iter()
            .map(|n| {
                if let Some(k) = l.iter().position(|k| k == n) {
                    let (from_left, from_right) = (
                        origin(0, n, Derivation::Copy),
                        origin(1, &r[k], Derivation::Copy),
                    );
                    match self.how {
                        How::Right => vec![from_right],
                        How::Full => vec![from_left, from_right],
                        _ => vec![from_left],
                    }
                } else if left.has(n) {
                    vec![origin(0, n, Derivation::Copy)]
                } else if right_plain(n) {
                    vec![origin(1, n, Derivation::Copy)]
                } else {
                    n.strip_suffix(self.suffix.as_str())
                        .filter(|s| right_plain(s))
                        .map(|s| vec![origin(1, s, Derivation::Copy)])
                        .unwrap_or_default()
                }
            })
            .collect()
    }

    /// Same rows; the streaming engine's probe emits them in no fixed
    /// order.
    fn on_streaming(&self, _inputs: &[SchemaRef], _limits: &Limits) -> OnStreaming {
        OnStreaming::Unordered
    }

    fn build(&self, mut inputs: Vec<Input>, limits: &Limits) -> Result<LazyFrame, OpError> {
        let right = inputs.pop().expect("arity checked");
        let left = inputs.pop().expect("arity checked");
        if self.how == How::Cross {
            // Estimated before anything is joined: rows × rows.
            let count = |lf: &LazyFrame| -> Result<u64, OpError> {
                let df = lf.clone().select([len()]).collect()?;
                Ok(df.column("len")?.u32()?.get(0).unwrap_or(0) as u64)
            };
            let rows = count(&left.frame)?.saturating_mul(count(&right.frame)?);
            if rows > limits.max_join_rows {
                return Err(OpError::Limit(too_many_rows(
                    &rows.to_string(),
                    limits.max_join_rows,
                )));
            }
            return Ok(left
                .frame
                .cross_join(right.frame, Some(self.suffix.as_str().into())));
        }
        let (l, r, lf_field, rf_field) = self.keys();
        require_list(&left.schema, lf_field, &l)?;
        require_list(&right.schema, rf_field, &r)?;
        for (i, (a, b)) in l.iter().zip(&r).enumerate() {
            let (ta, tb) = (&left.schema.get(a).unwrap(), &right.schema.get(b).unwrap());
            if ta != tb && !(ta.is_primitive_numeric() && tb.is_primitive_numeric()) {
                return Err(OpError::config(
                    format!("{rf_field}[{i}]"),
                    format!(
                        "cannot join \"{a}\" ({ta}) with \"{b}\" ({tb}): the key types differ; cast one first"
                    ),
                ));
            }
        }
        let how = match self.how {
            How::Inner => JoinType::Inner,
            How::Left => JoinType::Left,
            How::Right => JoinType::Right,
            How::Full => JoinType::Full,
            How::Semi => JoinType::Semi,
            How::Anti => JoinType::Anti,
            How::Cross => unreachable!("handled above"),
        };
        let lk: Vec<Expr> = l.iter().map(|c| col(c.as_str())).collect();
        let rk: Vec<Expr> = r.iter().map(|c| col(c.as_str())).collect();
        let joined = left
            .frame
            .join_builder()
            .with(right.frame)
            .how(how)
            .left_on(lk)
            .right_on(rk)
            .suffix(self.suffix.as_str())
            // One key column for full joins, as a SQL user expects.
            .coalesce(JoinCoalesce::CoalesceColumns)
            .finish();
        if matches!(self.how, How::Semi | How::Anti) {
            return Ok(joined);
        }
        // Checked on the joined rows before anything downstream sees them:
        // in memory all at once; on the streaming engine batch by batch as
        // they come (a streamable map), so a join that explodes fails as it
        // grows and the joined rows are never held whole. One counter per
        // build: a plan collected twice counts twice (the engine's search
        // for a failing member after a failure knows this).
        // Filters and projections after the join still move below it.
        let max = limits.max_join_rows;
        let produced = Arc::new(AtomicU64::new(0));
        Ok(joined.map(
            move |df| {
                let rows = df.height() as u64;
                let so_far = produced.fetch_add(rows, Ordering::Relaxed) + rows;
                if so_far > max {
                    polars_bail!(ComputeError: "{}", too_many_rows(&format!("at least {so_far}"), max));
                }
                Ok(df)
            },
            AllowedOptimizations::PREDICATE_PUSHDOWN
                | AllowedOptimizations::PROJECTION_PUSHDOWN
                | AllowedOptimizations::STREAMING,
            None,
            Some("join row limit"),
        ))
    }
}

fn too_many_rows(rows: &str, max: u64) -> String {
    crate::limits::message(
        "the join would produce more rows",
        rows,
        "engine.max_join_rows",
        max,
    )
}
