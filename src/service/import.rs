//! `mudrock import-bucket`: registers a legacy bucket (the old "a bucket is
//! a project" layout) as a project, without copying its data: the project
//! row records the bucket (`projects.bucket`), and objects outside the
//! layout (`shared/`, `pipelines/`, `temp/`, `exports/`) are moved under
//! `shared/` by a server-side copy that is verified (size, then blake3 of
//! both objects) before the original is deleted (or kept, with
//! `--keep-originals`).
//!
//! Nothing is ever lost: an original goes only after its verified copy
//! exists. Planned in full first: a name whose place under `shared/` holds
//! other bytes stops the import before anything moves. Idempotent and
//! resumable: `bucket_imports` remembers the project an import made, a
//! rerun finishes what is left (a copy already verified is not made again)
//! and finds nothing to do once done.

use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::db::DbError;
use crate::store::{ObjectMeta, ObjectStore, StoreConfig, StoreError};

/// Top-level folders of the layout (storage.md); anything else is loose.
pub const LAYOUT: [&str; 4] = ["shared/", "pipelines/", "temp/", "exports/"];

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub bucket: String,
    pub owner: Uuid,
    pub name: Option<String>,
    pub dry_run: bool,
    pub keep_originals: bool,
}

/// One object of the bucket and what became of it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImportedObject {
    pub key: String,
    pub size: u64,
    /// `in_layout` (left where it is), `moved`, `copied` (original kept),
    /// `would_move` / `would_copy` (dry run).
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub bucket: String,
    pub project: Option<Uuid>,
    pub dry_run: bool,
    /// The project already existed from an earlier run of this import.
    pub resumed: bool,
    pub objects: Vec<ImportedObject>,
    /// Bytes hashed to verify copies (both sides).
    pub verified_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("bucket \"{0}\" does not exist")]
    NoBucket(String),
    #[error("bucket \"{bucket}\" is already project {project}")]
    AlreadyProject { bucket: String, project: Uuid },
    #[error("\"{0}\" is not a bucket name mudrock can use (3-63 of a-z 0-9 . -)")]
    BadName(String),
    #[error(
        "these objects cannot move under shared/, which holds other bytes under their names (nothing was moved): {}",
        .0.join(", ")
    )]
    Collisions(Vec<String>),
    #[error("the copy of {key} does not match it ({reason}); the original is kept")]
    Verify { key: String, reason: String },
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        ImportError::Db(DbError::Query(e))
    }
}

fn in_layout(key: &str) -> bool {
    LAYOUT.iter().any(|p| key.starts_with(p))
}

/// blake3 of an object, streamed.
async fn hash_of(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
) -> Result<(String, u64), StoreError> {
    let mut r = store.reader(bucket, key).await?;
    let mut h = blake3::Hasher::new();
    let mut n = 0u64;
    while let Some(chunk) = r.next_chunk().await? {
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok((h.finalize().to_hex().to_string(), n))
}

/// Imports `opts.bucket` (see the module docs).
pub async fn import(
    pool: &PgPool,
    store: &Arc<dyn ObjectStore>,
    buckets: &StoreConfig,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let b = opts.bucket.as_str();
    let valid = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && !b.starts_with(['.', '-'])
        && !b.ends_with(['.', '-']);
    if !valid {
        return Err(ImportError::BadName(b.chars().take(80).collect()));
    }
    let objects = match store.list(b, "").await {
        Ok(o) => o,
        Err(StoreError::NoSuchBucket(_)) => return Err(ImportError::NoBucket(b.into())),
        Err(e) => return Err(e.into()),
    };
    let earlier: Option<Uuid> =
        sqlx::query_scalar("SELECT project_id FROM bucket_imports WHERE bucket = $1")
            .bind(b)
            .fetch_optional(pool)
            .await?;
    if earlier.is_none() {
        let owner_of = match b.strip_prefix(buckets.bucket(Some("")).as_str()) {
            Some(id) => id.parse::<Uuid>().ok(),
            None => None,
        };
        let taken: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM projects WHERE bucket = $1 OR id = $2")
                .bind(b)
                .bind(owner_of)
                .fetch_optional(pool)
                .await?;
        if let Some(project) = taken {
            return Err(ImportError::AlreadyProject {
                bucket: b.into(),
                project,
            });
        }
    }

    // The plan: every loose object's place under shared/, checked first.
    let existing: std::collections::HashMap<&str, &ObjectMeta> =
        objects.iter().map(|o| (o.key.as_str(), o)).collect();
    let mut report = ImportReport {
        bucket: b.into(),
        project: earlier,
        dry_run: opts.dry_run,
        resumed: earlier.is_some(),
        objects: Vec::new(),
        verified_bytes: 0,
    };
    let mut loose: Vec<(&ObjectMeta, String, bool)> = Vec::new();
    let mut collisions = Vec::new();
    for o in &objects {
        if in_layout(&o.key) {
            report.objects.push(ImportedObject {
                key: o.key.clone(),
                size: o.size,
                action: "in_layout".into(),
                to: None,
            });
            continue;
        }
        let to = format!("shared/{}", o.key);
        let copied = match existing.get(to.as_str()) {
            None => false,
            Some(t) if t.size != o.size => {
                collisions.push(o.key.clone());
                continue;
            }
            Some(_) => {
                let (a, n1) = hash_of(store.as_ref(), b, &o.key).await?;
                let (c, n2) = hash_of(store.as_ref(), b, &to).await?;
                report.verified_bytes += n1 + n2;
                if a != c {
                    collisions.push(o.key.clone());
                    continue;
                }
                true
            }
        };
        if crate::store::check_key(&to).is_err() {
            collisions.push(o.key.clone());
            continue;
        }
        loose.push((o, to, copied));
    }
    if !collisions.is_empty() {
        return Err(ImportError::Collisions(collisions));
    }
    if opts.dry_run {
        for (o, to, _) in &loose {
            let action = if opts.keep_originals {
                "would_copy"
            } else {
                "would_move"
            };
            report.objects.push(ImportedObject {
                key: o.key.clone(),
                size: o.size,
                action: action.into(),
                to: Some(to.clone()),
            });
        }
        return Ok(report);
    }

    // The project, once.
    let project = match earlier {
        Some(p) => p,
        None => {
            let mut tx = pool.begin().await?;
            let p: Uuid = sqlx::query_scalar(
                "INSERT INTO projects (name, owner_id, settings, bucket) VALUES ($1, $2, '{}', $3) RETURNING id",
            )
            .bind(opts.name.as_deref().unwrap_or(b))
            .bind(opts.owner)
            .bind(b)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO bucket_imports (bucket, project_id) VALUES ($1, $2)")
                .bind(b)
                .bind(p)
                .execute(&mut *tx)
                .await?;
            let entry = super::audit::Entry {
                project: Some(p),
                user: Some(opts.owner),
                role: Some("owner".into()),
                action: "CLI import-bucket".into(),
                target: b.into(),
                request_id: None,
                outcome: super::audit::Outcome::Ok,
                status: None,
            };
            super::audit::append(&mut tx, &entry, chrono::Utc::now()).await?;
            tx.commit().await?;
            p
        }
    };
    report.project = Some(project);

    // Each loose object: copy, verify, then (unless kept) delete the
    // original; several objects at once, each in that order.
    let jobs: Vec<(String, u64, String, bool)> = loose
        .into_iter()
        .map(|(o, to, copied)| (o.key.clone(), o.size, to, copied))
        .collect();
    let done = futures_util::stream::iter(jobs)
        .map(|(key, size, to, copied)| {
            move_one(
                store.clone(),
                b.to_string(),
                key,
                size,
                to,
                copied,
                opts.keep_originals,
            )
        })
        .buffer_unordered(OBJECTS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    for d in done {
        let (object, verified) = d?;
        report.verified_bytes += verified;
        report.objects.push(object);
    }
    report.objects.sort_by(|a, b| a.key.cmp(&b.key));
    sqlx::query("UPDATE bucket_imports SET finished_at = now(), report = $2 WHERE bucket = $1")
        .bind(b)
        .bind(serde_json::to_value(&report.objects).unwrap_or_default())
        .execute(pool)
        .await?;
    Ok(report)
}

/// Objects moved at once.
const OBJECTS_AT_ONCE: usize = 8;

/// One loose object: copied (unless a verified copy is there), verified by
/// size and blake3, then the original deleted (unless kept).
async fn move_one(
    store: Arc<dyn ObjectStore>,
    bucket: String,
    key: String,
    size: u64,
    to: String,
    copied: bool,
    keep: bool,
) -> Result<(ImportedObject, u64), ImportError> {
    let b = bucket.as_str();
    let mut verified = 0;
    if !copied {
        store.copy(b, &key, &to).await?;
        let head = store.head(b, &to).await?;
        let (a, n1) = hash_of(store.as_ref(), b, &key).await?;
        let (c, n2) = hash_of(store.as_ref(), b, &to).await?;
        verified = n1 + n2;
        if head.size != size || a != c {
            let reason = format!(
                "{} bytes, blake3 {c}; the original: {size} bytes, blake3 {a}",
                head.size
            );
            return Err(ImportError::Verify { key, reason });
        }
    }
    if !keep {
        crate::store::delete_if_present(store.as_ref(), b, &key).await?;
    }
    let action = if keep { "copied" } else { "moved" };
    Ok((
        ImportedObject {
            key,
            size,
            action: action.into(),
            to: Some(to),
        },
        verified,
    ))
}
