//! Datasets in OpenLineage events: named by OpenLineage's conventions
//! (through the [`super::Namer`]), with `dataSource`, and on outputs
//! `schema`, `columnLineage` and `outputStatistics`.

use serde_json::{Value, json};

use super::facets::facet;
use super::{Namer, RunArtifacts};
use crate::model::Lineage;

/// A dataset with its `dataSource` facet and any others given.
pub(super) fn dataset(name: &Namer, key: &str, facets: Value) -> Value {
    let (ns, n) = name(key);
    let uri = if ns == "file" {
        "file:///".to_string()
    } else {
        ns.clone()
    };
    let mut f = json!({ "dataSource": facet("dataSource", json!({ "name": ns, "uri": uri })) });
    if let Value::Object(x) = facets {
        for (k, v) in x {
            f[k] = v;
        }
    }
    json!({ "namespace": ns, "name": n, "facets": f })
}

/// An output dataset: schema, column lineage (to the source objects of
/// each source column's node), row count and size.
pub(super) fn output_dataset(
    a: &RunArtifacts,
    l: &Lineage,
    name: &Namer,
    o: &crate::model::LineageOutput,
) -> Value {
    let mut facets = json!({});
    if let Some(s) = a.schemas.get(&o.dataframe_id) {
        let fields: Vec<Value> = s
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| json!({ "name": c.name, "type": c.dtype, "ordinal_position": i + 1 }))
            .collect();
        facets["schema"] = facet("schema", json!({ "fields": fields }));
    }
    if let Some(cols) = &o.columns {
        let mut fields = serde_json::Map::new();
        for c in cols {
            let mut inputs = Vec::new();
            for s in &c.sources {
                for obj in l.sources.iter().filter(|x| x.node_id == s.node_id) {
                    let (ns, n) = name(&obj.object.key);
                    let subtype = match s.derivation {
                        mudrock_operators::Derivation::Copy => "IDENTITY",
                        mudrock_operators::Derivation::Transformation => "TRANSFORMATION",
                        mudrock_operators::Derivation::Aggregation => "AGGREGATION",
                    };
                    inputs.push(json!({
                        "namespace": ns,
                        "name": n,
                        "field": s.column,
                        "transformations": [{ "type": "DIRECT", "subtype": subtype }],
                    }));
                }
            }
            fields.insert(c.name.clone(), json!({ "inputFields": inputs }));
        }
        facets["columnLineage"] = facet("columnLineage", json!({ "fields": fields }));
    }
    let mut d = dataset(name, &o.path, facets);
    d["outputFacets"] = json!({
        "outputStatistics": facet("outputStatistics", json!({ "rowCount": o.rows, "fileCount": 1 })),
    });
    d
}
