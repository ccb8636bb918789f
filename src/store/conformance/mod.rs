//! The conformance suite every [`ObjectStore`] must pass.
//!
//! Called from the tests of each implementation (memory, local directory,
//! and S3 against a real server), so they all behave alike. Panics with a
//! message naming the broken expectation.

use bytes::Bytes;

use super::{ObjectStore, StoreError};

mod keys;

use keys::{in_order, invalid_keys};

/// Runs every check against `store`, using buckets whose names start with
/// `bucket_prefix` (they are created).
pub async fn run_all(store: &dyn ObjectStore, bucket_prefix: &str) {
    let bucket = format!("{bucket_prefix}-conf");
    store.create_bucket(&bucket).await.expect("create_bucket");
    store
        .create_bucket(&bucket)
        .await
        .expect("create_bucket must be idempotent");

    put_get_head(store, &bucket).await;
    missing(store, &bucket, bucket_prefix).await;
    list_by_prefix(store, &bucket).await;
    delete(store, &bucket).await;
    copy(store, &bucket).await;
    streaming(store, &bucket).await;
    streaming_reads(store, &bucket).await;
    put_file(store, &bucket).await;
    ranges(store, &bucket).await;
    parts(store, &bucket).await;
    invalid_keys(store, &bucket).await;
    in_order(store, &bucket).await;
}

async fn put_get_head(store: &dyn ObjectStore, b: &str) {
    let m = store
        .put(b, "a/one.txt", Bytes::from_static(b"hello"))
        .await
        .expect("put");
    assert_eq!(m.size, 5, "put reports the size");
    assert_eq!(
        store.get(b, "a/one.txt").await.expect("get").as_ref(),
        b"hello"
    );
    let h = store.head(b, "a/one.txt").await.expect("head");
    assert_eq!(h.size, 5);
    assert_eq!(h.key, "a/one.txt");
    // Overwrite: new content, new version.
    let m2 = store
        .put(b, "a/one.txt", Bytes::from_static(b"hello, world"))
        .await
        .expect("overwrite");
    assert_eq!(
        store.get(b, "a/one.txt").await.unwrap().as_ref(),
        b"hello, world"
    );
    assert_ne!(m.version, m2.version, "an overwrite changes the version");
    assert_eq!(
        store.head(b, "a/one.txt").await.unwrap().version,
        m2.version,
        "head and put agree on the version"
    );
    // Empty objects are objects.
    store
        .put(b, "a/empty", Bytes::new())
        .await
        .expect("put empty");
    assert_eq!(store.head(b, "a/empty").await.unwrap().size, 0);
}

async fn missing(store: &dyn ObjectStore, b: &str, prefix: &str) {
    assert!(
        matches!(
            store.get(b, "nope/x").await,
            Err(StoreError::NotFound { .. })
        ),
        "get of a missing key is NotFound"
    );
    assert!(
        matches!(
            store.head(b, "nope/x").await,
            Err(StoreError::NotFound { .. })
        ),
        "head of a missing key is NotFound"
    );
    let ghost = format!("{prefix}-ghost");
    assert!(
        matches!(
            store.put(&ghost, "k", Bytes::from_static(b"x")).await,
            Err(StoreError::NoSuchBucket(_))
        ),
        "put into a missing bucket is NoSuchBucket"
    );
}

async fn list_by_prefix(store: &dyn ObjectStore, b: &str) {
    for k in [
        "l/b/2.csv",
        "l/a/1.csv",
        "l/a/sub/3.csv",
        "l/ab.csv",
        "m/4.csv",
    ] {
        store
            .put(b, k, Bytes::from(k.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let keys = |v: Vec<super::ObjectMeta>| v.into_iter().map(|m| m.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list(b, "l/").await.unwrap()),
        ["l/a/1.csv", "l/a/sub/3.csv", "l/ab.csv", "l/b/2.csv"],
        "list returns every key under the prefix, sorted"
    );
    assert_eq!(
        keys(store.list(b, "l/a").await.unwrap()),
        ["l/a/1.csv", "l/a/sub/3.csv", "l/ab.csv"],
        "a prefix is a string prefix, not a directory"
    );
    assert!(
        store.list(b, "zzz/").await.unwrap().is_empty(),
        "an unmatched prefix lists nothing"
    );
    let all = store.list(b, "").await.unwrap();
    assert!(all.iter().any(|m| m.key == "m/4.csv") && all.iter().any(|m| m.key == "l/ab.csv"));
    let sizes: Vec<u64> = store
        .list(b, "l/a/")
        .await
        .unwrap()
        .iter()
        .map(|m| m.size)
        .collect();
    assert_eq!(
        sizes,
        ["l/a/1.csv".len() as u64, "l/a/sub/3.csv".len() as u64],
        "list reports sizes"
    );
}

async fn delete(store: &dyn ObjectStore, b: &str) {
    store.put(b, "d/x", Bytes::from_static(b"x")).await.unwrap();
    store.delete(b, "d/x").await.expect("delete");
    assert!(
        matches!(store.head(b, "d/x").await, Err(StoreError::NotFound { .. })),
        "deleted objects are gone"
    );
    store
        .delete(b, "d/x")
        .await
        .expect("deleting a missing object succeeds");
    assert!(store.list(b, "d/").await.unwrap().is_empty());
}

async fn copy(store: &dyn ObjectStore, b: &str) {
    store
        .put(b, "c/src", Bytes::from_static(b"original"))
        .await
        .unwrap();
    store.copy(b, "c/src", "c/deep/dst").await.expect("copy");
    assert_eq!(store.head(b, "c/deep/dst").await.unwrap().size, 8);
    assert_eq!(
        store.get(b, "c/deep/dst").await.unwrap().as_ref(),
        b"original"
    );
    // The copy is independent of later writes to the source.
    store
        .put(b, "c/src", Bytes::from_static(b"changed"))
        .await
        .unwrap();
    assert_eq!(
        store.get(b, "c/deep/dst").await.unwrap().as_ref(),
        b"original",
        "a copy does not follow its source"
    );
    assert!(matches!(
        store.copy(b, "c/none", "c/x").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn streaming(store: &dyn ObjectStore, b: &str) {
    // 20 MiB in 1 MiB chunks with a recognisable pattern.
    let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut w = store.writer(b, "s/big.bin").await.expect("writer");
    for _ in 0..20 {
        w.write(Bytes::from(chunk.clone()))
            .await
            .expect("write chunk");
    }
    assert!(
        matches!(
            store.head(b, "s/big.bin").await,
            Err(StoreError::NotFound { .. })
        ),
        "a streaming write is invisible until finished"
    );
    let m = w.finish().await.expect("finish");
    assert_eq!(m.size, 20 << 20);
    let data = store.get(b, "s/big.bin").await.unwrap();
    assert_eq!(data.len(), 20 << 20);
    assert!(
        data.chunks(1 << 20).all(|c| c == chunk.as_slice()),
        "streamed bytes arrive intact and in order"
    );

    let mut w = store.writer(b, "s/aborted.bin").await.unwrap();
    w.write(Bytes::from_static(b"partial")).await.unwrap();
    w.abort().await.expect("abort");
    assert!(
        matches!(
            store.head(b, "s/aborted.bin").await,
            Err(StoreError::NotFound { .. })
        ),
        "an aborted write leaves nothing"
    );
    assert_eq!(
        store.list(b, "s/").await.unwrap().len(),
        1,
        "no temporary objects are listed"
    );
}

async fn streaming_reads(store: &dyn ObjectStore, b: &str) {
    // The 20 MiB object written by `streaming`: more than one download
    // batch, so batching and the file's order are exercised.
    let whole = store.get(b, "s/big.bin").await.unwrap();
    let head = store.head(b, "s/big.bin").await.unwrap();
    let mut r = store.reader(b, "s/big.bin").await.expect("reader");
    assert_eq!(r.meta(), &head, "a reader reports the object it opened");
    let mut read = Vec::new();
    while let Some(c) = r.next_chunk().await.expect("next_chunk") {
        read.extend_from_slice(&c);
    }
    assert!(
        read == whole.as_ref(),
        "chunks add up to the object, in order"
    );
    assert!(
        r.next_chunk().await.unwrap().is_none(),
        "a finished reader stays finished"
    );

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.bin");
    let d = super::download(store, b, "s/big.bin", Some(&dest))
        .await
        .expect("download");
    assert_eq!(d.meta, head);
    assert_eq!(d.blake3, blake3::hash(&whole).to_hex().to_string());
    assert!(
        std::fs::read(&dest).unwrap() == whole.as_ref(),
        "download writes the object's bytes"
    );
    let hashed = super::download(store, b, "s/big.bin", None).await.unwrap();
    assert_eq!(hashed.blake3, d.blake3, "hashing without a file");

    let empty = store.put(b, "s/empty", Bytes::new()).await.unwrap();
    let d = super::download(store, b, "s/empty", Some(&dir.path().join("e")))
        .await
        .expect("download an empty object");
    assert_eq!((d.meta.size, d.meta.version), (0, empty.version));
    assert_eq!(d.blake3, blake3::hash(b"").to_hex().to_string());
    store.delete(b, "s/empty").await.unwrap();

    let gone = dir.path().join("gone");
    assert!(
        matches!(
            super::download(store, b, "s/missing.bin", Some(&gone)).await,
            Err(StoreError::NotFound { .. })
        ),
        "downloading a missing object is NotFound"
    );
    assert!(!gone.exists(), "a failed download leaves no file");
}

async fn put_file(store: &dyn ObjectStore, b: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.bin");
    std::fs::write(&p, vec![7u8; 3 << 20]).unwrap();
    let m = store.put_file(b, "f/file.bin", &p).await.expect("put_file");
    assert_eq!(m.size, 3 << 20);
    assert_eq!(store.get(b, "f/file.bin").await.unwrap().len(), 3 << 20);
}

async fn ranges(store: &dyn ObjectStore, b: &str) {
    let data: Vec<u8> = (0..100u8).collect();
    store
        .put(b, "r/obj", Bytes::from(data.clone()))
        .await
        .unwrap();
    let r = |a: u64, z: u64| store.get_range(b, "r/obj", a..z);
    assert_eq!(r(10, 20).await.expect("get_range").as_ref(), &data[10..20]);
    assert_eq!(r(0, 1).await.unwrap().as_ref(), &data[..1]);
    assert_eq!(
        r(90, 1000).await.unwrap().as_ref(),
        &data[90..],
        "a range past the end is clamped"
    );
    assert!(
        r(200, 300).await.unwrap().is_empty(),
        "a range starting past the end is empty"
    );
    assert!(r(5, 5).await.unwrap().is_empty());
    assert!(matches!(
        store.get_range(b, "r/missing", 0..10).await,
        Err(StoreError::NotFound { .. })
    ));
    // The footer of a large object without fetching the rest.
    let tail = store
        .get_range(b, "s/big.bin", (20 << 20) - 8..20 << 20)
        .await
        .unwrap();
    let expected: Vec<u8> = ((20u32 << 20) - 8..20 << 20)
        .map(|i| ((i % (1 << 20)) % 251) as u8)
        .collect();
    assert_eq!(tail.as_ref(), expected.as_slice());
}

/// `seed`'s bytes that never repeat (unlike `s/big.bin`'s 1 MiB period),
/// so a part written at the wrong place changes the hash.
fn unrepeating(seed: &str, len: usize) -> Bytes {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    Bytes::from(out)
}

async fn parts(store: &dyn ObjectStore, b: &str) {
    let part = super::download::PART_BYTES as usize;
    let first = unrepeating("first", 2 * part + 12_345);
    let listed = store.put(b, "p/obj", first.clone()).await.unwrap();
    let got = store
        .get_part(b, "p/obj", 3..part as u64 + 5, &listed.version)
        .await
        .expect("get_part");
    assert!(
        got.as_deref() == Some(&first[3..part + 5]),
        "a part of the current version is its bytes"
    );
    assert_eq!(
        store
            .get_part(b, "p/obj", 0..10, "not-a-version")
            .await
            .expect("get_part of another version"),
        None,
        "a part of a version the object no longer is reads as None"
    );

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("obj");
    let d = super::download_listed(store, b, &listed, Some(&dest))
        .await
        .expect("download_listed");
    assert_eq!(d.meta, listed);
    assert_eq!(d.blake3, blake3::hash(&first).to_hex().to_string());
    assert!(
        std::fs::read(&dest).unwrap() == first.as_ref(),
        "the object is written in place"
    );
    // A connection too slow to keep: the rest after the first part comes
    // as ranged parts of the listed version (on a store whose reader
    // yields the object as one chunk there is no rest).
    let slow = super::download::download_listed_at(store, b, &listed, Some(&dest), u64::MAX)
        .await
        .expect("download_listed, the rest as parts");
    assert_eq!(slow, d, "the same object and hash either way");
    assert!(
        std::fs::read(&dest).unwrap() == first.as_ref(),
        "the stream's part and the ranged parts are written in order"
    );

    // Replaced after the listing: read again whole, as the new version.
    let second = unrepeating("second", 2 * part + 1);
    let now = store.put(b, "p/obj", second.clone()).await.unwrap();
    assert_ne!(now.version, listed.version, "an overwrite is a new version");
    let d = super::download_listed(store, b, &listed, Some(&dest))
        .await
        .expect("download_listed of a replaced object");
    assert_eq!((d.meta.size, &d.meta.version), (now.size, &now.version));
    assert_eq!(d.blake3, blake3::hash(&second).to_hex().to_string());
    assert!(std::fs::read(&dest).unwrap() == second.as_ref());

    store.delete(b, "p/obj").await.unwrap();
    let gone = dir.path().join("gone");
    assert!(
        matches!(
            super::download_listed(store, b, &now, Some(&gone)).await,
            Err(StoreError::NotFound { .. })
        ),
        "a listed object deleted since is NotFound"
    );
    assert!(!gone.exists(), "a failed download leaves no file");
}
