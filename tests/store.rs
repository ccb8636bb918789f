//! The object-store conformance suite against every implementation that
//! runs without a server (S3 runs it in its own tests).

use mudrock::store::{LocalStore, MemoryStore, ObjectStore, conformance};

#[tokio::test(flavor = "multi_thread")]
async fn memory_store_conforms() {
    conformance::run_all(&MemoryStore::new(), "mem").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(&LocalStore::new(dir.path()), "local").await;
}

/// A write that fails part way (a folder where a file already is) leaves
/// no temporary file and publishes nothing of the batch.
#[tokio::test(flavor = "multi_thread")]
async fn local_put_in_order_that_fails_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::new(dir.path());
    s.create_bucket("bucket-b").await.unwrap();
    s.put("bucket-b", "run/blocked", "a file".into())
        .await
        .unwrap();
    let items = vec![
        ("run/lineage.json".to_string(), "{}".into()),
        ("run/blocked/inside".to_string(), "x".into()),
        ("run/metadata.json".to_string(), "{}".into()),
    ];
    assert!(s.put_in_order("bucket-b", items).await.is_err());
    let mut left: Vec<String> = std::fs::read_dir(dir.path().join("bucket-b/run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["blocked"], "no temporary file, no item published");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_store_lays_out_one_folder_per_bucket_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::new(dir.path());
    s.create_bucket("project-abc").await.unwrap();
    s.put("project-abc", "shared/x.csv", "a\n1\n".into())
        .await
        .unwrap();
    s.copy("project-abc", "shared/x.csv", "exports/y.csv")
        .await
        .unwrap();
    // Copying again onto an existing link of the same file (an unchanged
    // cache entry re-exported) must not leave the spare link behind.
    s.copy("project-abc", "shared/x.csv", "exports/y.csv")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("project-abc/shared/x.csv")).unwrap(),
        "a\n1\n"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path().join("project-abc/exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["y.csv"]);
    assert_eq!(
        s.local_path("project-abc", "shared/x.csv").unwrap(),
        dir.path().join("project-abc/shared/x.csv")
    );
    assert!(
        s.put("Bad_Bucket", "k", "x".into()).await.is_err(),
        "bucket names follow S3 rules"
    );
}

#[tokio::test]
async fn local_put_file_links_instead_of_copying_and_the_object_outlives_the_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = mudrock::store::LocalStore::new(dir.path().join("store"));
    store.create_bucket("bkt").await.unwrap();
    let scratch = dir.path().join("scratch.parquet");
    std::fs::write(&scratch, b"0123456789").unwrap();
    let meta = store
        .put_file("bkt", "k/data.parquet", &scratch)
        .await
        .unwrap();
    assert_eq!(meta.size, 10);
    let obj = dir.path().join("store/bkt/k/data.parquet");
    assert_eq!(
        std::fs::metadata(&obj).unwrap().ino(),
        std::fs::metadata(&scratch).unwrap().ino(),
        "same filesystem: a hard link, no copy"
    );
    std::fs::remove_file(&scratch).unwrap();
    assert_eq!(
        store.get("bkt", "k/data.parquet").await.unwrap().as_ref(),
        b"0123456789"
    );
}
