//! Criterion benches: rows per second per operator (built through the
//! registry, collected as the engine collects them), source hashing against
//! the blake3 crate on the same bytes, and the engine's per-node overhead.
//!
//!     cargo bench --bench operators                 # 1 M rows
//!     MUDROCK_BENCH_ROWS=10000000 cargo bench --bench operators
//!
//! Per-node overhead: compare `engine/chain/1`, `/40` and `/120` (the
//! same 1,000-row table through 1 or 40 trivial nodes):
//! (t40 - t1) / 39.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mudrock::engine::{Engine, RunOptions};
use mudrock::store::{MemoryStore, ObjectStore};
use mudrock_operators::{Input, lookup};
use polars::prelude::*;
use serde_json::{Value, json};

fn rows() -> usize {
    std::env::var("MUDROCK_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// id, g (1,000 groups), k (join key, n/10 values), x in [0, 1).
fn table(n: usize) -> DataFrame {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let x: Vec<f64> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect();
    df! {
        "id" => (0..n as i64).collect::<Vec<_>>(),
        "g" => (0..n as i64).map(|i| i % 1000).collect::<Vec<_>>(),
        "k" => (0..n as i64).map(|i| i % (n as i64 / 10).max(1)).collect::<Vec<_>>(),
        "x" => x,
    }
    .unwrap()
}

fn input(name: &str, df: &DataFrame) -> Input {
    Input {
        name: name.into(),
        schema: df.schema().clone(),
        frame: df.clone().lazy(),
    }
}

fn operator(config: Value) -> Box<dyn mudrock_operators::Operator> {
    let mut c = config.as_object().unwrap().clone();
    let name = c.remove("operator").unwrap();
    lookup(name.as_str().unwrap())
        .unwrap()
        .parse(&Value::Object(c))
        .unwrap()
}

fn operators(c: &mut Criterion) {
    let n = rows();
    let df = table(n);
    let dims = df! {"k" => (0..(n as i64 / 10).max(1)).collect::<Vec<_>>()}
        .unwrap()
        .lazy()
        .with_column((col("k") * lit(3)).alias("weight"))
        .collect()
        .unwrap();
    let (a, b) = (df.slice(0, n / 2), df.slice((n / 2) as i64, n - n / 2));
    let cases: Vec<(&str, Value, Vec<Input>)> = vec![
        (
            "filter",
            json!({"operator": "filter", "predicate": "x > 0.5 AND g < 500"}),
            vec![input("t", &df)],
        ),
        (
            "derive",
            json!({"operator": "derive", "columns": [{"name": "y", "expr": "x * 2 + 1"}]}),
            vec![input("t", &df)],
        ),
        (
            "aggregate",
            json!({"operator": "aggregate", "by": ["g"], "aggregations": [{"name": "s", "expr": "sum(x)"}, {"name": "n", "expr": "count(*)"}]}),
            vec![input("t", &df)],
        ),
        (
            "join",
            json!({"operator": "join", "on": "k"}),
            vec![input("t", &df), input("d", &dims)],
        ),
        (
            "sort",
            json!({"operator": "sort", "by": ["x"]}),
            vec![input("t", &df)],
        ),
        (
            "distinct",
            json!({"operator": "distinct", "subset": ["g", "k"]}),
            vec![input("t", &df)],
        ),
        (
            "union",
            json!({"operator": "union"}),
            vec![input("a", &a), input("b", &b)],
        ),
        (
            "sql",
            json!({"operator": "sql", "query": "SELECT g, sum(x) AS s FROM input WHERE x > 0.5 GROUP BY g"}),
            vec![input("t", &df)],
        ),
        (
            "cast",
            json!({"operator": "cast", "columns": [{"name": "x", "dtype": "float32"}, {"name": "g", "dtype": "int32"}]}),
            vec![input("t", &df)],
        ),
    ];
    let mut group = c.benchmark_group("operators");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    for (name, config, inputs) in cases {
        let op = operator(config);
        group.bench_with_input(BenchmarkId::new(name, n), &inputs, |bch, inputs| {
            bch.iter(|| {
                black_box(
                    op.build(inputs.clone(), &mudrock_operators::Limits::default())
                        .unwrap()
                        .collect()
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let size = 256usize << 20;
    let data: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.bin");
    std::fs::write(&path, &data).unwrap();
    let mut group = c.benchmark_group("hashing");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("mudrock_hash_file", |b| {
        b.iter(|| black_box(mudrock::cache::hash_file(&path).unwrap()))
    });
    group.bench_function("blake3_hash", |b| b.iter(|| black_box(blake3::hash(&data))));
    group.bench_function("blake3_update_rayon", |b| {
        b.iter(|| black_box(blake3::Hasher::new().update_rayon(&data).finalize()))
    });
    group.finish();
}

/// The same 1,000-row table through `len` trivial nodes and an output.
fn chain(len: usize) -> Value {
    let mut nodes = vec![
        json!({"id": "src", "nodeType": "ingestion", "config": {"source": "shared/t.parquet"}}),
    ];
    let mut prev = "src".to_string();
    for i in 0..len {
        let id = format!("n{i}");
        nodes.push(json!({"id": id, "nodeType": "operator", "config": {"operator": "derive", "columns": [{"name": "x", "expr": "x + 1"}]}, "dependencies": [prev]}));
        prev = id;
    }
    nodes.push(json!({"id": "out", "nodeType": "output", "config": {}, "dependencies": [prev]}));
    json!({"id": format!("chain{len}"), "nodes": nodes})
}

fn engine(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let mut df = table(1_000);
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df).unwrap();
    rt.block_on(async {
        store.create_bucket("project-local").await.unwrap();
        store
            .put("project-local", "shared/t.parquet", buf.into())
            .await
            .unwrap();
    });
    let engine = Engine::new(store);
    let mut group = c.benchmark_group("engine");
    group.sample_size(20);
    for len in [1usize, 40, 120] {
        let (p, _) = mudrock::validate::validate(chain(len), Default::default()).unwrap();
        let p = Arc::new(p);
        group.bench_with_input(BenchmarkId::new("chain", len), &p, |b, p| {
            b.iter(|| {
                let mut opts = RunOptions::local(p);
                opts.use_cache = false;
                rt.block_on(engine.run(p.clone(), opts)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, operators, hashing, engine);
criterion_main!(benches);
