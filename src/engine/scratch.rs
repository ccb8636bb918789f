//! The run's scratch directory and its disk budget (`engine.max_scratch_mb`).
//!
//! A run writes into its scratch directory copies of remote sources and
//! cached inputs, and the Parquet and export files it hands to the store.
//! Every such file is charged here; a file that would take the run over
//! its budget fails the node that needed it, with the limit's name.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The run's scratch directory, made when a file first goes there: a run
/// that computes nothing (every unit cached) makes and removes none (on a
/// journaling filesystem the removal could wait for a journal commit).
/// Dropped, it goes with everything in it.
#[derive(Debug)]
pub struct RunScratch {
    dir: PathBuf,
}

impl RunScratch {
    /// A directory of its own under `parent`, not made yet.
    pub fn new(parent: &Path) -> Self {
        let name = format!("mudrock-run-{}", uuid::Uuid::now_v7().simple());
        RunScratch {
            dir: parent.join(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// `name` in the scratch directory `dir`, which is made if missing. Where
/// it cannot be made, writing the file there fails the node that needed it
/// (as a full disk does).
pub fn file_in(dir: &Path, name: &str) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    dir.join(name)
}

impl Drop for RunScratch {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "scratch directory not removed")
            }
        }
    }
}

/// Bytes a run may hold in its scratch directory, and how many it holds.
#[derive(Debug)]
pub struct ScratchBudget {
    max: u64,
    used: AtomicU64,
}

impl ScratchBudget {
    pub fn new(max: u64) -> Self {
        ScratchBudget {
            max,
            used: AtomicU64::new(0),
        }
    }

    /// Takes `bytes` for `what`, or says why not (the over-the-limit
    /// message); a refused charge takes nothing.
    pub fn charge(&self, bytes: u64, what: &str) -> Result<(), String> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(bytes);
            if next > self.max {
                return Err(mudrock_operators::limits::message(
                    &format!(
                        "{what} needs {bytes} bytes of scratch disk, {used} are in use by this run"
                    ),
                    format!("{next} bytes"),
                    "engine.max_scratch_mb",
                    format!("{} MiB", self.max >> 20),
                ));
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// Bytes charged so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_until_the_budget_is_spent() {
        let b = ScratchBudget::new(3 << 20);
        b.charge(2 << 20, "a").unwrap();
        let e = b.charge(2 << 20, "source \"big.csv\"").unwrap_err();
        assert!(
            e.starts_with("over the limit engine.max_scratch_mb = 3 MiB: source \"big.csv\" needs"),
            "{e}"
        );
        assert_eq!(b.used(), 2 << 20, "a refused charge takes nothing");
        b.charge(1 << 20, "b").unwrap();
    }
}

/// A count of things in progress and its peak.
#[derive(Debug, Default)]
pub(super) struct Gauge {
    now: AtomicU64,
    peak: AtomicU64,
}

impl Gauge {
    /// Counts one in until the returned guard drops.
    pub(super) fn enter(&self) -> GaugeGuard<'_> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        GaugeGuard(self)
    }

    pub(super) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst) as usize
    }
}

pub(super) struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}
