//! Scheduling units: each starts as soon as the units it reads from are
//! done, up to the run's concurrency, and every unit's outcome is gathered.

use tokio::sync::OwnedSemaphorePermit;

use super::*;

/// A unit's concurrency slot. A unit that times out hands its slot to the
/// computation it abandoned (Polars work on a blocking thread cannot be
/// stopped), so the slot is free only when that computation really ends.
pub(super) type Slot = Arc<std::sync::Mutex<Option<OwnedSemaphorePermit>>>;

/// Runs units as their inputs finish, up to the concurrency limit.
pub(super) async fn schedule(ctx: Arc<Ctx>) -> Result<Vec<UnitOutcome>, EngineError> {
    let p = ctx.pipeline.clone();
    let roots: Vec<usize> = ctx
        .prep
        .order
        .iter()
        .copied()
        .filter(|&i| ctx.prep.mat[i])
        .collect();
    // Units each unit waits for.
    let deps: HashMap<usize, Vec<usize>> = roots
        .iter()
        .map(|&r| {
            let mut d: Vec<usize> = ctx.prep.members[&r]
                .iter()
                .flat_map(|&m| p.inputs(m).map(|e| e.source))
                .filter(|s| ctx.prep.unit_of[*s] != r)
                .collect();
            d.sort();
            d.dedup();
            (r, d)
        })
        .collect();
    let sem = Arc::new(Semaphore::new(ctx.opts.concurrency.max(1)));
    let mut done: HashMap<usize, Finished> = HashMap::new();
    let mut waiting: Vec<usize> = roots.clone();
    let mut running = JoinSet::new();
    let mut outcomes = Vec::new();
    loop {
        let mut still = Vec::new();
        for r in waiting {
            if deps[&r].iter().all(|d| done.contains_key(d)) {
                let inputs: HashMap<usize, Finished> =
                    deps[&r].iter().map(|d| (*d, done[d].clone())).collect();
                let ctx = ctx.clone();
                let sem = sem.clone();
                running.spawn(async move {
                    let permit = sem
                        .acquire_owned()
                        .await
                        .expect("semaphore is never closed");
                    // Held until the unit's computation ends, which may be
                    // after the unit gave up on it (timeout).
                    let slot: Slot = Arc::new(std::sync::Mutex::new(Some(permit)));
                    run_unit(ctx, r, inputs, &slot).await
                });
            } else {
                still.push(r);
            }
        }
        waiting = still;
        let Some(joined) = running.join_next().await else {
            break;
        };
        let outcome =
            joined.map_err(|e| EngineError::Internal(format!("unit task panicked: {e}")))??;
        for (i, f) in &outcome.nodes {
            if ctx.prep.mat[*i] {
                done.insert(*i, f.clone());
            }
        }
        outcomes.push(outcome);
    }
    debug_assert!(waiting.is_empty());
    Ok(outcomes)
}
