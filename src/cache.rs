//! Content cache: Merkle keys over configs and source bytes, and the cache
//! entries under `pipelines/{pipeline-id}/cache/{key}/`.
//!
//! Keys are computed before anything runs. An ingestion node's key covers
//! its canonical config and, for every matched object in key order, the key,
//! length and blake3 of its bytes; every other node's key covers its type,
//! operator name and implementation version, canonical config and its
//! inputs' keys in input order. So a change anywhere changes exactly the
//! keys downstream of it, and nothing else does (ids, names, editor
//! metadata, run ids and time are not hashed).
//!
//! Hashing a source reads all of it, so the source hash index remembers
//! (key, size, version) → blake3 under `temp/source-index/`; a warm run
//! only lists and heads its sources. The index lives in `temp/` because
//! losing it costs a re-hash, nothing more.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use crate::hash::{hash_bytes, hash_file};
pub use crate::model::SourceObject;
use crate::store::{ObjectMeta, ObjectStore, StoreError};

/// Bumped when the key derivation itself changes; invalidates everything.
const KEY_VERSION: &[u8] = b"mudrock-cache-v1";

/// Incremental key builder with length-prefixed fields, so that
/// ("ab","c") and ("a","bc") never collide.
pub struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    pub fn new(kind: &str) -> Self {
        let mut h = KeyHasher(blake3::Hasher::new());
        h.field(KEY_VERSION);
        h.field(kind.as_bytes());
        h
    }

    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

/// The hash of a pipeline definition: blake3 of its canonical JSON. Stored
/// with every saved version and in every run's metadata, so a run can be
/// traced to the exact definition it ran.
pub fn definition_hash(definition: &serde_json::Value) -> String {
    hash_bytes(crate::hash::canonical_json(definition).as_bytes())
}

/// Key of an ingestion node.
pub fn ingestion_key(canonical_config: &str, objects: &[SourceObject]) -> String {
    let mut h = KeyHasher::new("ingestion");
    h.field(canonical_config.as_bytes());
    for o in objects {
        h.field(o.key.as_bytes())
            .field(&o.size.to_le_bytes())
            .field(o.blake3.as_bytes());
    }
    h.finish()
}

/// Key of an operator or output node.
pub fn node_key(
    node_type: &str,
    operator: &str,
    version: u32,
    canonical_config: &str,
    inputs: &[&str],
) -> String {
    let mut h = KeyHasher::new(node_type);
    h.field(operator.as_bytes())
        .field(&version.to_le_bytes())
        .field(canonical_config.as_bytes());
    h.field(&(inputs.len() as u64).to_le_bytes());
    for k in inputs {
        h.field(k.as_bytes());
    }
    h.finish()
}

/// blake3 of a stored object, off the async threads: memory-mapped in
/// place on the local store, else streamed through the hasher (never
/// whole in memory).
pub async fn hash_object(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
) -> Result<String, StoreError> {
    match store.local_path(bucket, key) {
        Some(p) => {
            let key = key.to_string();
            let bucket = bucket.to_string();
            tokio::task::spawn_blocking(move || {
                hash_file(&p).map_err(|e| StoreError::io(&bucket, &key, e))
            })
            .await
            .map_err(|e| StoreError::Other(format!("hash task: {e}")))?
        }
        None => Ok(crate::store::download(store, bucket, key, None)
            .await?
            .blake3),
    }
}

/// An entry of the source hash index: the hash of one version of a source
/// object, as read the last time it was hashed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    key: String,
    size: u64,
    version: String,
    blake3: String,
}

fn index_key(source_key: &str) -> String {
    format!(
        "temp/source-index/{}.json",
        &blake3::hash(source_key.as_bytes()).to_hex()[..32]
    )
}

/// The source hash index's entry for `source_key`, if there is a readable
/// one. It needs only the key, so it can be asked for while the object
/// itself is still being looked up.
pub async fn source_index(
    store: &dyn ObjectStore,
    bucket: &str,
    source_key: &str,
) -> Option<IndexEntry> {
    let raw = store.get(bucket, &index_key(source_key)).await.ok()?;
    serde_json::from_slice::<IndexEntry>(&raw).ok()
}

/// Hashes a source object with `read` (which returns the object as read
/// and the blake3 of its bytes), or takes the hash from `indexed` (its
/// entry in the source index, see [`source_index`]) when the object's size
/// and version are unchanged. Returns whether bytes were read.
pub async fn hash_source<F, Fut>(
    store: &dyn ObjectStore,
    bucket: &str,
    meta: &ObjectMeta,
    indexed: Option<IndexEntry>,
    read: F,
) -> Result<(SourceObject, bool), StoreError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(ObjectMeta, String), StoreError>>,
{
    let ik = index_key(&meta.key);
    if let Some(e) = indexed {
        if e.key == meta.key && e.size == meta.size && e.version == meta.version {
            return Ok((
                SourceObject {
                    key: e.key,
                    size: e.size,
                    version: e.version,
                    blake3: e.blake3,
                },
                false,
            ));
        }
    }
    // What was read may be newer than the listing: record that version,
    // so the key and the index describe the bytes that were hashed.
    let (read_meta, blake3) = read().await?;
    let obj = SourceObject {
        key: meta.key.clone(),
        size: read_meta.size,
        version: read_meta.version,
        blake3,
    };
    let entry = IndexEntry {
        key: obj.key.clone(),
        size: obj.size,
        version: obj.version.clone(),
        blake3: obj.blake3.clone(),
    };
    // The index is an optimisation: failing to write it is not an error.
    if let Err(e) = store
        .put(
            bucket,
            &ik,
            Bytes::from(serde_json::to_vec(&entry).unwrap()),
        )
        .await
    {
        tracing::warn!(key = %meta.key, error = %e, "could not update the source hash index");
    }
    Ok((obj, true))
}

/// The `metadata.json` of a cache entry (written after `data.parquet`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheMeta {
    /// Version of this file's format (bumped when a field changes meaning
    /// or goes away; new optional fields do not bump it).
    #[serde(default = "crate::model::format_version")]
    pub format_version: u32,
    pub cache_key: String,
    /// The node that wrote it (for people browsing the bucket).
    pub node_id: String,
    pub rows: u64,
    pub bytes: u64,
    pub blake3: String,
    pub created_at: String,
    pub compression: String,
    pub schema: crate::model::SchemaJson,
    /// Results of conditional edges out of this node, by condition text, so
    /// a cached run does not load data to re-evaluate them.
    #[serde(default)]
    pub conditions: std::collections::BTreeMap<String, bool>,
    /// Copy of the export, for output nodes that request one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::model::ExportRecord>,
    /// The store's version of `data.parquet` right after it was written and
    /// hashed (ETag on S3, inode + mtime on disk). While it is unchanged the
    /// bytes are the ones hashed, so a hit needs no download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_version: Option<String>,
    /// Column names of this entry's node and of every node upstream of it,
    /// by cache key: what a run served by this entry traces its column
    /// lineage over.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub columns: std::collections::BTreeMap<String, Vec<String>>,
}

pub fn entry_prefix(pipeline_id: &str, key: &str) -> String {
    format!("pipelines/{pipeline_id}/cache/{key}/")
}

/// The key of an entry's `data.parquet`.
pub fn entry_data_key(pipeline_id: &str, key: &str) -> String {
    format!("{}data.parquet", entry_prefix(pipeline_id, key))
}

/// Looks up an entry and verifies it: metadata present, and the size and
/// blake3 of `data.parquet` as recorded (re-hashed unless the object's
/// version shows it untouched since it was hashed). Anything else is a miss.
pub async fn lookup(
    store: &dyn ObjectStore,
    bucket: &str,
    pipeline_id: &str,
    key: &str,
) -> Option<CacheMeta> {
    let prefix = entry_prefix(pipeline_id, key);
    let data_key = entry_data_key(pipeline_id, key);
    // The metadata and the data's HEAD at once: one round trip, not two.
    let meta_key = format!("{prefix}metadata.json");
    let (raw, head) = tokio::join!(store.get(bucket, &meta_key), store.head(bucket, &data_key));
    let meta: CacheMeta = serde_json::from_slice(&raw.ok()?).ok()?;
    let head = head.ok()?;
    if head.size != meta.bytes || meta.cache_key != key {
        tracing::warn!(key, "cache entry size mismatch; recomputing");
        return None;
    }
    // Same version as when written and hashed: the same bytes. Anything
    // else (rewritten in place, copied in by hand) is hashed again.
    if meta.data_version.as_deref() != Some(head.version.as_str()) {
        let actual = hash_object(store, bucket, &data_key).await.ok()?;
        if actual != meta.blake3 {
            tracing::warn!(key, "cache entry hash mismatch; recomputing");
            return None;
        }
    }
    if let Some(x) = &meta.export {
        let ok = store
            .head(bucket, &format!("{prefix}{}", x.cache_file))
            .await
            .is_ok_and(|h| h.size == x.bytes);
        if !ok {
            return None;
        }
    }
    Some(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_file_hash_is_the_hash_of_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        // Empty, small (read), one partial window, and across windows with
        // a ragged end: each must equal blake3 of the whole byte string.
        for len in [
            0usize,
            1000,
            (1 << 20) + 7,
            2 * crate::hash::HASH_WINDOW as usize + 12_345,
        ] {
            let data: Vec<u8> = (0..len)
                .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
                .collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &data).unwrap();
            assert_eq!(
                hash_file(&path).unwrap(),
                blake3::hash(&data).to_hex().to_string(),
                "{len} bytes"
            );
            assert_eq!(hash_file(&path).unwrap(), hash_bytes(&data));
        }
    }

    #[test]
    fn keys_cover_version_config_and_input_order() {
        let base = node_key(
            "operator",
            "filter",
            1,
            "{\"predicate\":\"x>1\"}",
            &["a", "b"],
        );
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            node_key(
                "operator",
                "filter",
                1,
                "{\"predicate\":\"x>1\"}",
                &["a", "b"]
            ),
            "deterministic"
        );
        assert_ne!(
            base,
            node_key(
                "operator",
                "filter",
                2,
                "{\"predicate\":\"x>1\"}",
                &["a", "b"]
            ),
            "operator version"
        );
        assert_ne!(
            base,
            node_key(
                "operator",
                "filter",
                1,
                "{\"predicate\":\"x>2\"}",
                &["a", "b"]
            ),
            "config"
        );
        assert_ne!(
            base,
            node_key(
                "operator",
                "filter",
                1,
                "{\"predicate\":\"x>1\"}",
                &["b", "a"]
            ),
            "input order"
        );
        assert_ne!(
            base,
            node_key(
                "output",
                "filter",
                1,
                "{\"predicate\":\"x>1\"}",
                &["a", "b"]
            ),
            "node type"
        );
        // Length prefixes: moving a byte between fields changes the key.
        assert_ne!(
            node_key("operator", "ab", 1, "c", &[]),
            node_key("operator", "a", 1, "bc", &[])
        );
    }

    #[test]
    fn ingestion_keys_cover_every_object() {
        let o = |k: &str, h: &str| SourceObject {
            key: k.into(),
            size: 1,
            version: "v".into(),
            blake3: h.into(),
        };
        let one = ingestion_key("{}", &[o("a", "h1")]);
        assert_ne!(one, ingestion_key("{}", &[o("a", "h2")]), "content");
        assert_ne!(one, ingestion_key("{}", &[o("b", "h1")]), "key");
        assert_ne!(
            one,
            ingestion_key("{}", &[o("a", "h1"), o("b", "h1")]),
            "another object"
        );
        let mut bigger = o("a", "h1");
        bigger.size = 2;
        assert_ne!(one, ingestion_key("{}", &[bigger]), "size");
        let mut touched = o("a", "h1");
        touched.version = "v2".into();
        assert_eq!(
            one,
            ingestion_key("{}", &[touched]),
            "a new mtime or ETag with the same bytes is the same key"
        );
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        use crate::hash::canonical_json;
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": null}}"#)
                .unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a": {"x": null, "y": [1, {"c": 3, "d": 2}]}, "b": 1}"#)
                .unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1}"#
        );
    }
}
