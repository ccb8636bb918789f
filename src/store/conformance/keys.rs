//! Conformance checks on keys and batches: keys that escape the bucket
//! are refused, and `put_in_order` never stores an item after one that
//! failed.

use bytes::Bytes;

use crate::store::{ObjectStore, StoreError};

pub(super) async fn invalid_keys(store: &dyn ObjectStore, b: &str) {
    for k in ["../escape", "/abs", "a/../../b", ""] {
        assert!(
            matches!(
                store.put(b, k, Bytes::from_static(b"x")).await,
                Err(StoreError::InvalidKey { .. })
            ),
            "key {k:?} must be rejected"
        );
    }
}

/// `put_in_order`: every item stored; on a bad item, none after it.
pub(super) async fn in_order(store: &dyn ObjectStore, b: &str) {
    let items = |v: &[(&str, &'static [u8])]| {
        v.iter()
            .map(|(k, d)| (k.to_string(), Bytes::from_static(d)))
            .collect::<Vec<_>>()
    };
    store
        .put_in_order(b, items(&[("o/lineage", b"1"), ("o/marker", b"22")]))
        .await
        .expect("put_in_order");
    assert_eq!(store.get(b, "o/lineage").await.unwrap().as_ref(), b"1");
    assert_eq!(store.get(b, "o/marker").await.unwrap().as_ref(), b"22");
    let bad = items(&[("p/first", b"1"), ("../p", b"2"), ("p/marker", b"3")]);
    assert!(matches!(
        store.put_in_order(b, bad).await,
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(
        matches!(
            store.head(b, "p/marker").await,
            Err(StoreError::NotFound { .. })
        ),
        "nothing after a failing item is stored"
    );
}
