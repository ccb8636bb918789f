//! The facets mudrock puts on OpenLineage events: each with `_producer`
//! and the `_schemaURL` of the versioned facet schema it follows.

use serde_json::{Value, json};

/// Where event and facet schemas live: the spec version mudrock emits.
pub const SPEC: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";

/// Each facet mudrock emits, with the versioned schema it follows.
const FACETS: &[(&str, &str)] = &[
    (
        "schema",
        "1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    ),
    (
        "dataSource",
        "1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet",
    ),
    (
        "columnLineage",
        "1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
    ),
    (
        "outputStatistics",
        "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
    ),
    (
        "jobType",
        "2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    ),
    ("sql", "1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet"),
    (
        "errorMessage",
        "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    ),
    (
        "nominalTime",
        "1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet",
    ),
    ("parent", "1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"),
];

pub(super) fn producer() -> String {
    format!(
        "https://github.com/mudrock/mudrock/tree/v{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// A facet: its fields plus `_producer` and `_schemaURL`.
pub(super) fn facet(name: &str, fields: Value) -> Value {
    let schema = FACETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| format!("https://openlineage.io/spec/facets/{s}"))
        .unwrap_or_default();
    let mut f = fields;
    f["_producer"] = json!(producer());
    f["_schemaURL"] = json!(schema);
    f
}
