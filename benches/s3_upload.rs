//! Multipart upload throughput of a large Parquet output to the configured
//! S3 store, and the memory the upload needs.
//!
//!     source DIR/env   # from scripts/s3-server.sh start DIR, or any S3:
//!     MUDROCK_STORE__KIND=s3 MUDROCK_STORE__S3__ENDPOINT=... \
//!       cargo bench --bench s3_upload -- [GiB]
//!
//! Writes a Parquet file of random float64 columns (incompressible, so the
//! file is as large as the data), uploads it with `put_file` (parts of
//! `store.s3.part_size`), and prints the write time, upload time and
//! throughput, and the peak resident memory during the upload.

use std::time::Instant;

use mudrock::app::config::{Config, StoreKind};
use polars::prelude::*;

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Resets the peak-RSS counter (Linux: writing 5 to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let gib: f64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1.0);
    let mut config = Config::load(None).expect("configuration");
    if let Ok(e) = std::env::var("MUDROCK_TEST_S3_ENDPOINT") {
        config.store.kind = StoreKind::S3;
        config.store.s3.endpoint = Some(e);
        config.store.s3.access_key_id = std::env::var("MUDROCK_TEST_S3_ACCESS_KEY").ok();
        config.store.s3.secret_access_key = std::env::var("MUDROCK_TEST_S3_SECRET_KEY").ok();
    }
    assert_eq!(
        config.store.kind,
        StoreKind::S3,
        "configure an S3 store (see the module docs)"
    );

    let cols = 8usize;
    let rows = ((gib * (1u64 << 30) as f64) / (cols * 8) as f64) as usize;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let columns: Vec<Column> = (0..cols)
        .map(|c| {
            Column::new(
                format!("c{c}").into(),
                (0..rows).map(|_| next()).collect::<Vec<f64>>(),
            )
        })
        .collect();
    let mut df = DataFrame::new(rows, columns).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let t = Instant::now();
    let written = mudrock::artifacts::write_parquet(
        &mut df,
        &path,
        mudrock::model::pipeline::Compression::Uncompressed,
    )
    .unwrap();
    let write_s = t.elapsed().as_secs_f64();
    drop(df);
    let mib = written.bytes as f64 / (1 << 20) as f64;

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = config.open_store().await.unwrap();
        let bucket = config.bucket(Some("bench"));
        store.create_bucket(&bucket).await.unwrap();
        reset_peak();
        let before = peak_rss_mib();
        let t = Instant::now();
        let meta = store.put_file(&bucket, "temp/bench/big.parquet", &path).await.unwrap();
        let up_s = t.elapsed().as_secs_f64();
        assert_eq!(meta.size, written.bytes);
        println!("parquet: {mib:.0} MiB, {rows} rows x {cols} float64 columns, written in {write_s:.2} s ({:.0} MiB/s, with blake3 and schema)", mib / write_s);
        println!("upload:  {up_s:.2} s, {:.0} MiB/s, part size {} MiB", mib / up_s, config.store.s3.part_size >> 20);
        println!("memory:  peak RSS during the upload {:.0} MiB (baseline {before:.0} MiB)", peak_rss_mib());
        store.delete(&bucket, "temp/bench/big.parquet").await.unwrap();
    });
}
