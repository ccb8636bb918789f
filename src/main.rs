//! The `mudrock` binary; everything lives in the library.
//!
//! The allocator is chosen here, for the process: jemalloc on Linux, as
//! Python Polars ships with (glibc's malloc keeps what Polars' worker threads
//! free in per-thread arenas, which shows as peak memory, and serialises
//! their large allocations).

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(mudrock::cli::main());
}
