//! Tests of the trimmed source mappings: which files are mapped, that
//! touched pages are let go, and that what is read stays the same.

use std::time::Instant;

use super::*;

fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Resident KiB of the mapping that starts at `ptr`, from
/// `/proc/self/smaps`.
fn resident_kib(ptr: *const u8) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let start = format!("{:x}-", ptr as usize);
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
    assert!(lines.next().is_some(), "no mapping at {start}");
    let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
    rss.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn buffers(s: &ScanSources) -> &[Buffer<u8>] {
    match s {
        ScanSources::Buffers(b) => b,
        other => panic!("expected buffers, got {other:?}"),
    }
}

#[test]
fn large_files_become_buffers_small_and_empty_ones_stay_paths() {
    let dir = tempfile::tempdir().unwrap();
    let small = file(dir.path(), "small.csv", b"a\n1\n");
    let large = file(dir.path(), "large.csv", &vec![b'x'; 2 << 20]);
    let empty = file(dir.path(), "empty.csv", b"");
    let is_paths = |s: &ScanSources| matches!(s, ScanSources::Paths(_));
    assert!(is_paths(&scan_sources(
        std::slice::from_ref(&small),
        1 << 20
    )));
    let both = scan_sources(&[small.clone(), large.clone()], 1 << 20);
    let b = buffers(&both);
    assert_eq!(b.len(), 2, "every file mapped once one is large");
    assert_eq!(b[0].as_ref(), b"a\n1\n");
    assert_eq!(b[1].len(), 2 << 20);
    assert!(
        is_paths(&scan_sources(&[large.clone(), empty], 1 << 20)),
        "an empty file: Polars reads the paths"
    );
    assert!(is_paths(&scan_sources(
        &[large, dir.path().join("missing")],
        1 << 20
    )));
}

#[test]
fn touched_pages_are_let_go_and_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let path = file(dir.path(), "big.bin", &bytes);
    let sources = scan_sources(&[path], 1 << 20);
    let buf = buffers(&sources)[0].clone();
    let want: u64 = bytes.iter().map(|b| *b as u64).sum();
    // Every page read (8 MiB resident, without the trimmer); then the
    // trimmer lets them go within a deadline, and reading again gives the
    // same bytes.
    let got: u64 = buf.iter().map(|b| *b as u64).sum();
    assert_eq!(got, want, "bytes read through the mapping");
    let deadline = Instant::now() + Duration::from_secs(20);
    while resident_kib(buf.as_ptr()) >= 1024 {
        assert!(
            Instant::now() < deadline,
            "the mapping's pages were never let go"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(buf.as_ref(), &bytes[..]);
}

#[test]
fn polars_reads_the_buffers_as_it_reads_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,name,amount\n");
    for i in 0..60_000 {
        csv.push_str(&format!("{i},n{},{}.25\n", i % 97, i % 1000));
    }
    let path = file(dir.path(), "t.csv", csv.as_bytes());
    let read = |s: ScanSources| {
        LazyCsvReader::new_with_sources(s)
            .finish()
            .unwrap()
            .collect()
            .unwrap()
    };
    let mapped = scan_sources(std::slice::from_ref(&path), 1 << 10);
    assert!(matches!(mapped, ScanSources::Buffers(_)));
    let by_path = read(scan_sources(std::slice::from_ref(&path), u64::MAX));
    let by_buffer = read(mapped);
    assert_eq!(by_buffer.height(), 60_000);
    assert!(by_buffer.equals_missing(&by_path));

    // The same rows as Parquet, under a folder named like a Hive
    // partition (which adds no column, by path or not).
    std::fs::create_dir(dir.path().join("year=2024")).unwrap();
    let pq = dir.path().join("year=2024/t.parquet");
    let mut df = by_path.clone();
    ParquetWriter::new(std::fs::File::create(&pq).unwrap())
        .finish(&mut df)
        .unwrap();
    let read = |s: ScanSources| {
        LazyFrame::scan_parquet_sources(s, crate::parquet_scan::args())
            .unwrap()
            .collect()
            .unwrap()
    };
    let mapped = scan_sources(std::slice::from_ref(&pq), 1 << 10);
    assert!(matches!(mapped, ScanSources::Buffers(_)));
    assert!(read(mapped).equals_missing(&by_path));
    assert!(read(scan_sources(&[pq], u64::MAX)).equals_missing(&by_path));
}
