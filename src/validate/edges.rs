//! An edge: its ends, its type and, for conditional edges, the condition
//! (checked as an aggregate expression).

use std::collections::HashMap;

use mudrock_operators::{ExprKind, did_you_mean, expr};
use serde_json::Value;

use super::*;
use crate::model::pipeline::*;

impl Validator {
    pub(super) fn edge(
        &mut self,
        path: &str,
        item: &Value,
        ids: &HashMap<String, usize>,
        known: &[String],
    ) -> Option<Edge> {
        let Some(obj) = item.as_object() else {
            self.err_edge(path, None, "an edge must be an object", None);
            return None;
        };
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::Null) => path.to_string(),
            Some(_) => {
                self.err_edge(
                    format!("{path}.id"),
                    None,
                    "must be a non-empty string",
                    None,
                );
                return None;
            }
        };
        let eid = Some(id.as_str());
        let mut ends = [None, None];
        for (slot, field) in ["sourceNodeId", "targetNodeId"].into_iter().enumerate() {
            match obj.get(field) {
                Some(Value::String(s)) => match ids.get(s) {
                    Some(&i) => ends[slot] = Some(i),
                    None => {
                        let hint = did_you_mean(s, known.iter().map(String::as_str));
                        self.err_edge(
                            format!("{path}.{field}"),
                            eid,
                            format!("unknown node \"{s}\""),
                            hint,
                        );
                    }
                },
                Some(_) => self.err_edge(format!("{path}.{field}"), eid, "must be a node id", None),
                None => self.err_edge(format!("{path}.{field}"), eid, "missing", None),
            }
        }
        let condition = match obj.get("condition") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err_edge(format!("{path}.condition"), eid, "must be a string", None);
                return None;
            }
        };
        let kind = match obj
            .get("edgeType")
            .and_then(Value::as_str)
            .unwrap_or("data_flow")
        {
            "data_flow" => EdgeKind::DataFlow,
            "error" => EdgeKind::Error,
            "conditional" => match &condition {
                Some(c) if !c.trim().is_empty() => match expr::check_syntax(
                    c,
                    ExprKind::Aggregate,
                    self.opts.limits.max_expression_chars,
                ) {
                    Ok(_) => EdgeKind::Conditional(c.clone()),
                    Err(r) => {
                        let m = match r.message.strip_prefix("expression does not parse: ") {
                            Some(rest) => format!("condition does not parse: {rest}"),
                            None => r.message,
                        };
                        self.err_edge(format!("{path}.condition"), eid, m, r.hint);
                        return None;
                    }
                },
                _ => {
                    self.err_edge(
                        format!("{path}.condition"),
                        eid,
                        "a conditional edge needs a condition",
                        Some("e.g. \"count(*) > 0\"".into()),
                    );
                    return None;
                }
            },
            other => {
                let hint = did_you_mean(other, ["data_flow", "conditional", "error"])
                    .or(Some("one of data_flow, conditional, error".into()));
                self.err_edge(
                    format!("{path}.edgeType"),
                    eid,
                    format!("unknown edge type \"{other}\""),
                    hint,
                );
                return None;
            }
        };
        if condition.is_some() && !matches!(kind, EdgeKind::Conditional(_)) {
            self.err_edge(
                format!("{path}.condition"),
                eid,
                format!("a condition on a {} edge would be ignored", kind.name()),
                Some("set \"edgeType\": \"conditional\"".into()),
            );
            return None;
        }
        let [Some(source), Some(target)] = ends else {
            return None;
        };
        Some(Edge {
            id,
            source,
            target,
            kind,
            path: path.to_string(),
        })
    }
}
