//! Futures run at once, at most a given number at a time, results in their
//! order: for store requests that do not depend on one another.
//!
//! (`futures_util`'s `buffered` streams would do the same, but a stream
//! mapping through a closure over borrows is not `Send` for every lifetime,
//! which the futures spawned around the engine need; `join_all` with a
//! semaphore is.)

use std::future::Future;

/// Runs `futures` concurrently, `n` (at least one) in flight at a time, and
/// returns their outputs in the order given.
pub async fn at_most<F: Future>(n: usize, futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let permits = tokio::sync::Semaphore::new(n.max(1));
    let permits = &permits;
    futures_util::future::join_all(futures.into_iter().map(|f| async move {
        let _permit = permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        f.await
    }))
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn keeps_order_and_the_bound() {
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let (now, most) = (&now, &most);
        let out = super::at_most(
            3,
            (0..10).map(|i| async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                // Later ones finish first: the order must come from the input.
                for _ in 0..(10 - i) {
                    tokio::task::yield_now().await;
                }
                now.fetch_sub(1, Ordering::SeqCst);
                i
            }),
        )
        .await;
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        assert_eq!(
            most.load(Ordering::SeqCst),
            3,
            "three in flight, never more"
        );
    }
}
