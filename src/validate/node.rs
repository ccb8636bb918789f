//! Phase 2, a node's envelope: id, name, dependencies, `execution` and
//! `nodeType`, then the config of its kind (see `kinds`).

use mudrock_operators::did_you_mean;
use serde_json::{Map, Value};

use super::*;
use crate::model::pipeline::*;

const ID_RULE: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$";

/// Whether `id` is a valid node id (it becomes a storage path segment).
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Validator {
    pub(super) fn node(&mut self, path: &str, item: &Value) -> RawNode {
        let mut r = RawNode {
            id: None,
            path: path.to_string(),
            kind: None,
            name: String::new(),
            execution: Execution::default(),
            dependencies: Vec::new(),
        };
        let Some(obj) = item.as_object() else {
            self.err_node(path, None, "a node must be an object", None);
            return r;
        };
        let id = match obj.get("id") {
            None => {
                self.err_node(format!("{path}.id"), None, "missing", None);
                None
            }
            Some(Value::String(s)) if valid_id(s) => Some(s.clone()),
            Some(Value::String(s)) => {
                self.err_node(
                    format!("{path}.id"),
                    None,
                    format!("invalid id \"{s}\": must match {ID_RULE}"),
                    None,
                );
                None
            }
            Some(_) => {
                self.err_node(format!("{path}.id"), None, "must be a string", None);
                None
            }
        };
        r.id = id.clone();
        let nid = id.as_deref();
        r.name = obj
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| id.clone().unwrap_or_default());

        if let Some(deps) = obj.get("dependencies").filter(|v| !v.is_null()) {
            match deps.as_array() {
                Some(a) => {
                    for (i, d) in a.iter().enumerate() {
                        match d.as_str() {
                            Some(s) => r
                                .dependencies
                                .push((format!("{path}.dependencies[{i}]"), s.to_string())),
                            None => self.err_node(
                                format!("{path}.dependencies[{i}]"),
                                nid,
                                "must be a node id",
                                None,
                            ),
                        }
                    }
                }
                None => self.err_node(
                    format!("{path}.dependencies"),
                    nid,
                    "must be an array of node ids",
                    None,
                ),
            }
        }
        if let Some(ex) = obj.get("execution").filter(|v| !v.is_null()) {
            match serde_json::from_value::<Execution>(ex.clone()) {
                Ok(e)
                    if e.timeout_seconds
                        .is_some_and(|t| !(t > 0.0 && t.is_finite())) =>
                {
                    self.err_node(
                        format!("{path}.execution.timeoutSeconds"),
                        nid,
                        "must be a positive number of seconds",
                        None,
                    );
                }
                Ok(e) => r.execution = e,
                Err(e) => {
                    let (field, message, hint) = serde_problem(&e.to_string());
                    let p = if field.is_empty() {
                        format!("{path}.execution")
                    } else {
                        format!("{path}.execution.{field}")
                    };
                    self.err_node(p, nid, message, hint);
                }
            }
        }

        let config = obj
            .get("config")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let cpath = format!("{path}.config");
        if !config.is_object() {
            self.err_node(&cpath, nid, "must be an object", None);
            return r;
        }
        let node_type = match obj.get("nodeType") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                self.err_node(format!("{path}.nodeType"), nid, "must be a string", None);
                return r;
            }
            None => {
                self.err_node(
                    format!("{path}.nodeType"),
                    nid,
                    "missing: one of ingestion, operator, output",
                    None,
                );
                return r;
            }
        };
        r.kind = match node_type {
            "ingestion" => self.ingestion(&cpath, nid, &config),
            "operator" => self.operator(&cpath, nid, &config),
            "output" => self.output(&cpath, nid, &config),
            other => {
                let hint = did_you_mean(other, ["ingestion", "operator", "output"])
                    .or(Some("one of ingestion, operator, output".into()));
                self.err_node(
                    format!("{path}.nodeType"),
                    nid,
                    format!("unknown node type \"{other}\""),
                    hint,
                );
                None
            }
        };
        r
    }
}
