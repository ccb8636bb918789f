//! The seeded data of the harness: orders, customers and products as CSV,
//! and events (timestamps) as CSV and as date-heavy Parquet.

use std::path::Path;

use polars::prelude::*;

/// xorshift64*: seeded, identical on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const STATUSES: [&str; 5] = ["completed", "shipped", "pending", "cancelled", "returned"];
const REGIONS: [&str; 8] = [
    "north", "south", "east", "west", "central", "coast", "hills", "plains",
];
const SEGMENTS: [&str; 4] = ["consumer", "smb", "enterprise", "public"];

pub fn generate(sf: f64, dir: &Path) -> PolarsResult<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let orders = (2_000_000.0 * sf) as usize;
    let customers = ((50_000.0 * sf) as usize).max(100);
    let products = 10_000usize;

    let mut o = df! {
        "order_id" => (0..orders as i64).collect::<Vec<_>>(),
        "customer_id" => (0..orders).map(|_| rng.below(customers as u64) as i64).collect::<Vec<_>>(),
        "product_id" => (0..orders).map(|_| rng.below(products as u64) as i64).collect::<Vec<_>>(),
        "quantity" => (0..orders).map(|_| 1 + rng.below(10) as i64).collect::<Vec<_>>(),
        "discount" => (0..orders).map(|_| rng.below(31) as f64 / 100.0).collect::<Vec<_>>(),
        "status" => (0..orders).map(|_| STATUSES[rng.below(5) as usize]).collect::<Vec<_>>(),
    }?;
    let mut c = df! {
        "customer_id" => (0..customers as i64).collect::<Vec<_>>(),
        "name" => (0..customers).map(|i| format!("customer {i}")).collect::<Vec<_>>(),
        "region" => (0..customers).map(|_| REGIONS[rng.below(8) as usize]).collect::<Vec<_>>(),
        "segment" => (0..customers).map(|_| SEGMENTS[rng.below(4) as usize]).collect::<Vec<_>>(),
    }?;
    let mut p = df! {
        "product_id" => (0..products as i64).collect::<Vec<_>>(),
        "category" => (0..products).map(|i| format!("category {}", i % 20)).collect::<Vec<_>>(),
        "unit_price" => (0..products).map(|_| (100 + rng.below(50_000)) as f64 / 100.0).collect::<Vec<_>>(),
    }?;
    for (name, df) in [
        ("orders", &mut o),
        ("customers", &mut c),
        ("products", &mut p),
    ] {
        let f = std::fs::File::create(dir.join(format!("{name}.csv")))?;
        CsvWriter::new(f).finish(df)?;
    }
    events(&mut rng, orders, dir)
}

const KINDS: [&str; 5] = ["view", "click", "cart", "purchase", "refund"];

/// Events, as many as orders: `events.csv` with ISO timestamps
/// (`2024-03-05T14:22:09`, two years from 2024-01-01) and `events.parquet`
/// with the same rows as date-heavy columns (day, ts, shipped, 10 % of
/// them null).
fn events(rng: &mut Rng, n: usize, dir: &Path) -> PolarsResult<()> {
    const START_US: i64 = 1_704_067_200_000_000;
    const SPAN_S: u64 = 2 * 365 * 86_400;
    let ts: Vec<i64> = (0..n)
        .map(|_| START_US + rng.below(SPAN_S) as i64 * 1_000_000)
        .collect();
    let shipped: Vec<Option<i32>> = ts
        .iter()
        .map(|t| {
            let day = (t / 86_400_000_000) as i32;
            (rng.below(10) != 0).then(|| day + rng.below(10) as i32)
        })
        .collect();
    let mut df = df! {
        "event_id" => (0..n as i64).collect::<Vec<_>>(),
        "user_id" => (0..n).map(|_| rng.below(100_000) as i64).collect::<Vec<_>>(),
        "kind" => (0..n).map(|_| KINDS[rng.below(5) as usize]).collect::<Vec<_>>(),
        "amount" => (0..n).map(|_| rng.below(100_000) as f64 / 100.0).collect::<Vec<_>>(),
        "ts" => ts,
    }?;
    df.apply("ts", |c| {
        c.cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .unwrap()
    })?;
    let f = std::fs::File::create(dir.join("events.csv"))?;
    CsvWriter::new(f)
        .with_datetime_format(Some("%Y-%m-%dT%H:%M:%S".into()))
        .finish(&mut df)?;
    let mut p = df
        .lazy()
        .select([
            col("event_id"),
            col("user_id"),
            col("kind"),
            col("amount"),
            col("ts").cast(DataType::Date).alias("day"),
            col("ts"),
            lit(Series::new("shipped".into(), shipped))
                .cast(DataType::Date)
                .alias("shipped"),
        ])
        .collect()?;
    let f = std::fs::File::create(dir.join("events.parquet"))?;
    ParquetWriter::new(f)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(&mut p)?;
    Ok(())
}
