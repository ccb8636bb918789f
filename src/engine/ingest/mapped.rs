//! Large source files handed to Polars as mappings of mudrock's own, whose
//! resident pages are let go behind the scan.
//!
//! Polars reads a local file through a memory map of all of it: every page
//! its reader touches stays in the process's resident set until the scan
//! ends, so a 1 GiB CSV scanned on the streaming engine still shows as
//! 1 GiB of peak memory (the readers users compare with, Python Polars
//! and DuckDB, read into buffers they free). Here a file of at least
//! `trim_above` bytes is mapped by mudrock and given to Polars as a buffer
//! of that mapping; one thread tells the kernel every [`TRIM_EVERY`] that
//! the mappings' pages are not needed (`MADV_DONTNEED`). The file's bytes
//! stay in the page cache: a page read again is mapped back from there
//! (a minor fault), never lost, because the mappings are read-only views
//! of files no one writes through them. What stays resident is what the
//! readers touched since the last trim.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

use polars::prelude::*;
use polars_buffer::Buffer;

/// Sources at least this large are mapped and trimmed here (see the
/// module docs); smaller ones Polars maps itself.
pub const DEFAULT_TRIM_ABOVE_BYTES: u64 = 64 << 20;

/// How often the mapped sources' resident pages are let go.
pub const TRIM_EVERY: Duration = Duration::from_millis(20);

/// One source file, mapped read-only.
pub(crate) struct Mapped(memmap2::Mmap);

impl Mapped {
    fn open(path: &Path) -> std::io::Result<Mapped> {
        let file = std::fs::File::open(path)?;
        // SAFETY: a read-only shared mapping of a file the store replaces
        // by rename, never rewrites in place; a file truncated while it is
        // read can fault, as with the mapping Polars would make itself.
        unsafe { memmap2::Mmap::map(&file) }.map(Mapped)
    }

    /// Lets the mapping's resident pages go.
    pub(crate) fn trim(&self) {
        // SAFETY: MADV_DONTNEED only unmaps the pages of this read-only
        // file mapping, never written through: a later read maps the same
        // bytes back from the page cache.
        let _ = unsafe { self.0.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    }
}

/// What Polars holds: the mapping stays until the last buffer of it goes.
struct Owner(Arc<Mapped>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.0.0
    }
}

/// The scan sources of `paths`: buffers of mappings trimmed in the
/// background when a file is at least `trim_above` bytes (every file
/// mapped then, the small ones untrimmed), else the paths, for Polars to
/// map. Falls back to the paths when a file is missing, empty or cannot
/// be mapped here, so Polars reports what it would have.
pub fn scan_sources(paths: &[PathBuf], trim_above: u64) -> ScanSources {
    let as_paths = || {
        let p: Vec<PlRefPath> = paths
            .iter()
            .map(|p| PlRefPath::new(p.to_string_lossy().as_ref()))
            .collect();
        ScanSources::Paths(p.into())
    };
    let sizes: Option<Vec<u64>> = paths
        .iter()
        .map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .collect();
    let Some(sizes) = sizes else {
        return as_paths();
    };
    if !sizes.iter().any(|s| *s >= trim_above) || sizes.contains(&0) {
        return as_paths();
    }
    let mut buffers = Vec::with_capacity(paths.len());
    for (p, size) in paths.iter().zip(sizes) {
        let Ok(m) = Mapped::open(p) else {
            return as_paths();
        };
        let m = Arc::new(m);
        if size >= trim_above {
            trimmer().watch(&m);
        }
        buffers.push(Buffer::from_owner(Owner(m)));
    }
    ScanSources::Buffers(buffers.into())
}

/// The mappings being trimmed, and the thread trimming them.
struct Trimmer {
    maps: Mutex<Vec<Weak<Mapped>>>,
    added: Condvar,
}

fn trimmer() -> &'static Trimmer {
    static TRIMMER: OnceLock<&'static Trimmer> = OnceLock::new();
    TRIMMER.get_or_init(|| {
        let t: &'static Trimmer = Box::leak(Box::new(Trimmer {
            maps: Mutex::new(Vec::new()),
            added: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("mudrock-trim".into())
            .spawn(move || t.run());
        if let Err(e) = spawned {
            // Sources are still read, their pages just not let go early.
            tracing::warn!(error = %e, "source page trimmer not started");
        }
        t
    })
}

impl Trimmer {
    fn watch(&self, m: &Arc<Mapped>) {
        let mut maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        maps.push(Arc::downgrade(m));
        self.added.notify_one();
    }

    /// Every [`TRIM_EVERY`] while any mapping lives, trims each one; asleep
    /// while none does. A mapping whose buffers are all gone is unmapped
    /// then (by whoever drops it last) and forgotten here.
    fn run(&self) {
        loop {
            {
                let maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
                drop(
                    self.added
                        .wait_while(maps, |m| m.is_empty())
                        .unwrap_or_else(|e| e.into_inner()),
                );
            }
            std::thread::sleep(TRIM_EVERY);
            let live: Vec<Arc<Mapped>> = {
                let mut maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
                maps.retain(|w| w.strong_count() > 0);
                maps.iter().filter_map(Weak::upgrade).collect()
            };
            for m in &live {
                m.trim();
            }
        }
    }
}

#[cfg(test)]
#[path = "mapped_tests.rs"]
mod tests;
