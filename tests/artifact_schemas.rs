//! The artifacts' JSON Schemas under `schemas/`: the checked-in files are
//! what the Rust types generate (`MUDROCK_WRITE_SCHEMAS=1` rewrites them),
//! and every artifact of a real run of the example (computed, then from the
//! cache) validates against them.

mod common;

use common::*;
use serde_json::Value;

fn schema_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

#[test]
fn checked_in_schemas_are_the_generated_ones() {
    let write = std::env::var_os("MUDROCK_WRITE_SCHEMAS").is_some();
    for (file, _, schema) in mudrock::schemas::artifact_schemas() {
        let path = schema_dir().join(file);
        let text = mudrock::schemas::to_text(&schema);
        if write {
            std::fs::create_dir_all(schema_dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == text,
            "schemas/{file} is not what the types generate; run \
             `MUDROCK_WRITE_SCHEMAS=1 cargo test --test artifact_schemas` and commit it"
        );
        // Every artifact says its format version.
        assert!(schema["properties"]["formatVersion"].is_object(), "{file}");
    }
}

fn validator(file: &str) -> jsonschema::Validator {
    let v: Value =
        serde_json::from_slice(&std::fs::read(schema_dir().join(file)).unwrap()).unwrap();
    jsonschema::options().offline().build(&v).unwrap()
}

#[tokio::test]
async fn the_example_runs_artifacts_validate() {
    let env = Env::new();
    env.copy_example_data();
    let mut checked = 0;
    for _ in 0..2 {
        let r = env.run(&example()).await;
        let p = &r.run_prefix;
        let mut files = vec![
            ("run-metadata.schema.json", format!("{p}metadata.json")),
            ("lineage.schema.json", format!("{p}lineage.json")),
        ];
        for f in env.files(&format!("{p}outputs/")) {
            if f.ends_with("/metadata.json") {
                files.push(("dataframe-metadata.schema.json", f));
            } else if f.ends_with("/schema.json") {
                files.push(("schema.schema.json", f));
            }
        }
        for f in env.files("pipelines/sales-by-region/cache/") {
            if f.ends_with("/metadata.json") {
                files.push(("cache-metadata.schema.json", f));
            }
        }
        for (schema, key) in files {
            let v = env.json(&key);
            assert_eq!(v["formatVersion"], 1, "{key}");
            let errors: Vec<String> = validator(schema)
                .iter_errors(&v)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{key} against {schema}: {errors:#?}");
            checked += 1;
        }
    }
    // 2 runs × (metadata, lineage, 4 outputs × 2) + the cache entries twice.
    assert!(checked >= 2 * 10 + 2 * 4, "{checked}");

    // And they do refuse a damaged artifact.
    let r = env.run(&example()).await;
    let mut meta = env.json(&format!("{}metadata.json", r.run_prefix));
    meta.as_object_mut().unwrap().remove("runId");
    meta["status"] = "finished".into();
    let errors: Vec<String> = validator("run-metadata.schema.json")
        .iter_errors(&meta)
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
}
