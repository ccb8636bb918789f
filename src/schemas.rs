//! JSON Schemas of the files a run leaves in the bucket, generated from
//! the Rust types that write them (schemars) and checked in under
//! `schemas/`, so tools outside mudrock can rely on the format. Each file
//! carries `formatVersion` ([`crate::model::FORMAT_VERSION`]).
//!
//! `tests/artifact_schemas.rs` fails when a checked-in schema differs from
//! the generated one (`MUDROCK_WRITE_SCHEMAS=1` rewrites them) and
//! validates a real run's artifacts against them.

use serde_json::Value;

use crate::cache::CacheMeta;
use crate::model::{DataframeMeta, Lineage, RunMeta, SchemaJson};

/// Each artifact: the schema's file name under `schemas/`, where the
/// artifact lives in the bucket, and its schema.
pub fn artifact_schemas() -> Vec<(&'static str, &'static str, Value)> {
    fn schema_of<T: schemars::JsonSchema>(title: &str, doc: &str) -> Value {
        let mut v = schemars::schema_for!(T).to_value();
        v["title"] = Value::String(title.into());
        v["description"] = Value::String(doc.into());
        v
    }
    vec![
        (
            "run-metadata.schema.json",
            "pipelines/{pipeline}/runs/{run}/metadata.json",
            schema_of::<RunMeta>(
                "mudrock run metadata.json",
                "A run's metadata.json, written last: the run's commit marker.",
            ),
        ),
        (
            "lineage.schema.json",
            "pipelines/{pipeline}/runs/{run}/lineage.json",
            schema_of::<Lineage>(
                "mudrock lineage.json",
                "A run's lineage: edges taken and not, source objects read, outputs written, column lineage.",
            ),
        ),
        (
            "dataframe-metadata.schema.json",
            "pipelines/{pipeline}/runs/{run}/outputs/{output}/metadata.json",
            schema_of::<DataframeMeta>(
                "mudrock output metadata.json",
                "An output dataframe's metadata.json.",
            ),
        ),
        (
            "schema.schema.json",
            "pipelines/{pipeline}/runs/{run}/outputs/{output}/schema.json",
            schema_of::<SchemaJson>(
                "mudrock schema.json",
                "An output's columns, and its Arrow schema in arrow-rs' serde form.",
            ),
        ),
        (
            "cache-metadata.schema.json",
            "pipelines/{pipeline}/cache/{key}/metadata.json",
            schema_of::<CacheMeta>(
                "mudrock cache entry metadata.json",
                "A cache entry's metadata.json, written after its data.parquet.",
            ),
        ),
    ]
}

/// A schema as checked in: pretty JSON with a trailing newline.
pub fn to_text(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}
