//! Phase 3, per-kind configs: ingestion sources and formats, operator
//! configs through the registry (expressions checked by the guard), output
//! formats and exports.

use mudrock_operators::{SerdeProblem, did_you_mean, expr, read_serde_message};
use serde_json::Value;

use super::*;
use crate::model::pipeline::*;

/// Why a source key would leave the bucket, if it would.
pub fn check_source_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("source is empty".into());
    }
    if key.contains("://") || key.starts_with("s3:") || key.starts_with("file:") {
        return Err(format!(
            "source \"{key}\" is a URL; sources are keys inside the project's bucket"
        ));
    }
    if key.starts_with('/') || key.starts_with('\\') || (key.len() > 1 && key.as_bytes()[1] == b':')
    {
        return Err(format!(
            "source \"{key}\" is an absolute path; sources are keys inside the project's bucket"
        ));
    }
    if key.split(['/', '\\']).any(|seg| seg == "..") {
        return Err(format!(
            "source \"{key}\" escapes the bucket: \"..\" is not allowed"
        ));
    }
    if key.contains('\0') {
        return Err("source contains a NUL byte".into());
    }
    Ok(())
}

impl Validator {
    pub(super) fn ingestion(
        &mut self,
        cpath: &str,
        nid: Option<&str>,
        config: &Value,
    ) -> Option<NodeKind> {
        let cfg: IngestionConfig = match serde_path_to_error::deserialize(config) {
            Ok(c) => c,
            Err(e) => {
                let path = e.path().to_string();
                let (field, message, hint) = serde_problem(&e.inner().to_string());
                let prefix = if path == "." || path.is_empty() {
                    String::new()
                } else {
                    path.clone()
                };
                let full = join_path(cpath, &join_field(&prefix, &field));
                let message = if message.starts_with("data did not match any variant") {
                    "must be a key, a glob, or a list of keys".to_string()
                } else {
                    message
                };
                self.err_node(full, nid, message, hint);
                return None;
            }
        };
        let mut ok = true;
        match &cfg.source {
            Source::One(s) => {
                if let Err(m) = check_source_key(s) {
                    self.err_node(format!("{cpath}.source"), nid, m, None);
                    ok = false;
                }
            }
            Source::Many(v) => {
                if v.is_empty() {
                    self.err_node(format!("{cpath}.source"), nid, "source list is empty", None);
                    ok = false;
                }
                for (i, s) in v.iter().enumerate() {
                    if let Err(m) = check_source_key(s) {
                        self.err_node(format!("{cpath}.source[{i}]"), nid, m, None);
                        ok = false;
                    }
                }
            }
        }
        for k in cfg.source.keys() {
            if let Err(e) = globset::Glob::new(k) {
                self.err_node(
                    format!("{cpath}.source"),
                    nid,
                    format!("invalid glob \"{k}\": {}", e.kind()),
                    None,
                );
                ok = false;
            }
        }
        let format = cfg.effective_format();
        if format.is_none() {
            self.err_node(
                format!("{cpath}.format"),
                nid,
                format!(
                    "cannot infer the format of \"{}\"",
                    cfg.source.keys().first().copied().unwrap_or("")
                ),
                Some("set \"format\" to one of csv, parquet, json, ndjson".into()),
            );
            ok = false;
        }
        let o = &cfg.options;
        if format.is_some_and(|f| f != Format::Csv) {
            if let Some(opt) = o.csv_only().first() {
                self.err_node(
                    format!("{cpath}.options.{opt}"),
                    nid,
                    format!(
                        "option \"{opt}\" applies to csv only, not {}",
                        format.unwrap().name()
                    ),
                    None,
                );
                ok = false;
            }
        }
        if format == Some(Format::Parquet) && o.infer_schema_length.is_some() {
            self.err_node(
                format!("{cpath}.options.inferSchemaLength"),
                nid,
                "option \"inferSchemaLength\" does not apply to parquet",
                None,
            );
            ok = false;
        }
        for (name, val) in [("delimiter", &o.delimiter), ("quoteChar", &o.quote_char)] {
            if let Some(v) = val {
                if v.len() != 1 {
                    self.err_node(
                        format!("{cpath}.options.{name}"),
                        nid,
                        format!("must be a single ASCII character, got \"{v}\""),
                        None,
                    );
                    ok = false;
                }
            }
        }
        if let Some(ovs) = &o.schema_overrides {
            for (i, s) in ovs.iter().enumerate() {
                if mudrock_operators::dtype::parse(&s.dtype).is_none() {
                    let hint =
                        did_you_mean(&s.dtype, mudrock_operators::dtype::NAMES.iter().copied())
                            .or_else(|| {
                                Some(format!(
                                    "one of: {}",
                                    mudrock_operators::dtype::NAMES.join(", ")
                                ))
                            });
                    self.err_node(
                        format!("{cpath}.options.schemaOverrides[{i}].dtype"),
                        nid,
                        format!("unknown dtype \"{}\"", s.dtype),
                        hint,
                    );
                    ok = false;
                }
                if let Some(f) = &s.format {
                    let path = format!("{cpath}.options.schemaOverrides[{i}].format");
                    let problem = if format.is_some_and(|f| f != Format::Csv) {
                        Some("a format applies to csv sources only".to_string())
                    } else if !matches!(s.dtype.as_str(), "date" | "datetime") {
                        Some(format!(
                            "a format applies to date and datetime columns, not {}",
                            s.dtype
                        ))
                    } else {
                        crate::model::date_format::check_format(f)
                    };
                    if let Some(m) = problem {
                        self.err_node(path, nid, m, None);
                        ok = false;
                    }
                }
            }
        }
        ok.then_some(NodeKind::Ingestion(cfg))
    }

    pub(super) fn operator(
        &mut self,
        cpath: &str,
        nid: Option<&str>,
        config: &Value,
    ) -> Option<NodeKind> {
        let obj = config.as_object().expect("checked by caller");
        let name = match obj.get("operator") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                self.err_node(format!("{cpath}.operator"), nid, "must be a string", None);
                return None;
            }
            None => {
                self.err_node(
                    format!("{cpath}.operator"),
                    nid,
                    "missing",
                    Some(format!("one of: {}", mudrock_operators::names().join(", "))),
                );
                return None;
            }
        };
        let Some(spec) = mudrock_operators::lookup(&name) else {
            let hint = did_you_mean(&name, mudrock_operators::names())
                .or_else(|| Some(format!("one of: {}", mudrock_operators::names().join(", "))));
            self.err_node(
                format!("{cpath}.operator"),
                nid,
                format!("unknown operator \"{name}\""),
                hint,
            );
            return None;
        };
        let mut rest = obj.clone();
        rest.remove("operator");
        let op = match spec.parse(&Value::Object(rest)) {
            Ok(op) => op,
            Err(e) => {
                self.err_node(join_path(cpath, &e.field), nid, e.message, e.hint);
                return None;
            }
        };
        let mut ok = true;
        let max = self.opts.limits.max_expression_chars;
        for x in op.expressions() {
            if let Err(r) = expr::check_syntax(&x.text, x.kind, max) {
                self.err_node(join_path(cpath, &x.field), nid, r.message, r.hint);
                ok = false;
            }
        }
        ok.then_some(NodeKind::Operator { spec, op })
    }

    pub(super) fn output(
        &mut self,
        cpath: &str,
        nid: Option<&str>,
        config: &Value,
    ) -> Option<NodeKind> {
        let cfg: OutputConfig = match serde_path_to_error::deserialize(config) {
            Ok(c) => c,
            Err(e) => {
                let path = e.path().to_string();
                let (field, message, hint) = serde_problem(&e.inner().to_string());
                let prefix = if path == "." { String::new() } else { path };
                let field = if prefix.is_empty() || prefix == field {
                    field
                } else {
                    join_field(&prefix, &field)
                };
                self.err_node(join_path(cpath, &field), nid, message, hint);
                return None;
            }
        };
        let mut ok = true;
        if cfg.format != "parquet" {
            self.err_node(
                format!("{cpath}.format"),
                nid,
                format!("outputs are always parquet, got \"{}\"", cfg.format),
                Some("use \"export\" for a copy in another format".into()),
            );
            ok = false;
        }
        if let Some(x) = &cfg.export {
            if let Err(m) = check_source_key(x) {
                self.err_node(
                    format!("{cpath}.export"),
                    nid,
                    m.replace("source", "export"),
                    None,
                );
                ok = false;
            } else if !x.starts_with("exports/") {
                self.err_node(
                    format!("{cpath}.export"),
                    nid,
                    format!("export \"{x}\" must be under exports/"),
                    None,
                );
                ok = false;
            } else if Format::from_extension(x).is_none() {
                self.err_node(
                    format!("{cpath}.export"),
                    nid,
                    format!("cannot tell the format of export \"{x}\""),
                    Some("end it in .csv, .parquet, .json or .ndjson".into()),
                );
                ok = false;
            }
        }
        ok.then_some(NodeKind::Output(cfg))
    }
}
pub(super) fn join_path(base: &str, field: &str) -> String {
    if field.is_empty() {
        base.to_string()
    } else if field.starts_with('[') {
        format!("{base}{field}")
    } else {
        format!("{base}.{field}")
    }
}

pub(super) fn join_field(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else if field.is_empty() || prefix.ends_with(field) {
        prefix.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Serde's complaint as (field, message, hint) for the document's own
/// structs (ingestion, output, execution).
pub(super) fn serde_problem(msg: &str) -> (String, String, Option<String>) {
    match read_serde_message(msg) {
        SerdeProblem::UnknownField { name, expected } => {
            let hint = did_you_mean(&name, expected.iter().map(String::as_str))
                .or_else(|| Some(format!("expected one of: {}", expected.join(", "))));
            let message = format!("unknown field \"{name}\"");
            (name, message, hint)
        }
        SerdeProblem::MissingField(name) => (name, "missing".to_string(), None),
        SerdeProblem::UnknownVariant { name, expected } => {
            let hint = did_you_mean(&name, expected.iter().map(String::as_str))
                .or_else(|| Some(format!("one of: {}", expected.join(", "))));
            (String::new(), format!("unknown value \"{name}\""), hint)
        }
        SerdeProblem::Other(message) => (String::new(), message, None),
    }
}
