//! The raw-Polars floor for `benches/floor.py`: the benchmark pipelines
//! written by hand as one lazy plan each with the same Polars (version and
//! features) as mudrock, writing the same Parquet outputs (zstd, parallel
//! writer), and the seeded data generator.
//!
//!     floor-polars gen SF DIR            # orders (2 M × SF), customers, products
//!     floor-polars run PIPELINE DATA OUT [--streaming]
//!                                        # chain | joins | fanout | chain40 | timestamps | dates
//!                                        # (--streaming: Polars' streaming
//!                                        # engine, as `mudrock run --streaming always`)
//!     floor-polars same A.parquet B.parquet  # same columns, types and rows?

use std::path::{Path, PathBuf};

use polars::prelude::*;

mod seeded;
mod temporal;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("gen") if args.len() == 4 => seeded::generate(
            args[2].parse().expect("SF is a number"),
            Path::new(&args[3]),
        ),
        Some("run") if args.len() == 5 || (args.len() == 6 && args[5] == "--streaming") => {
            let engine = if args.len() == 6 {
                Engine::Streaming
            } else {
                Engine::InMemory
            };
            run(&args[2], Path::new(&args[3]), Path::new(&args[4]), engine)
        }
        Some("same") if args.len() == 4 => same(Path::new(&args[2]), Path::new(&args[3])),
        _ => {
            eprintln!(
                "usage: floor-polars gen SF DIR | run PIPELINE DATA OUT [--streaming] | same A.parquet B.parquet"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Whether two Parquet files hold the same table (floats to 1e-9
/// relative: summation order may differ between plans).
fn same(a: &Path, b: &Path) -> PolarsResult<()> {
    let read = |p: &Path| ParquetReader::new(std::fs::File::open(p)?).finish();
    let (x, y) = (read(a)?, read(b)?);
    if x.schema() != y.schema() {
        return Err(PolarsError::ComputeError(
            format!("schemas differ:\n{:?}\n{:?}", x.schema(), y.schema()).into(),
        ));
    }
    if x.height() != y.height() {
        return Err(PolarsError::ComputeError(
            format!("{} rows vs {}", x.height(), y.height()).into(),
        ));
    }
    // Rows in the order of their exact columns: sums in another order
    // differ in the last bits, which can swap rows sorted by a float.
    let keys: Vec<PlSmallStr> = x
        .columns()
        .iter()
        .filter(|c| !c.dtype().is_float())
        .map(|c| c.name().clone())
        .collect();
    let (x, y) = if keys.is_empty() {
        (x, y)
    } else {
        let by = |df: DataFrame| df.sort(keys.clone(), SortMultipleOptions::default());
        (by(x)?, by(y)?)
    };
    for (cx, cy) in x.columns().iter().zip(y.columns()) {
        let ok = if cx.dtype().is_float() {
            let (fx, fy) = (cx.cast(&DataType::Float64)?, cy.cast(&DataType::Float64)?);
            fx.f64()?
                .iter()
                .zip(fy.f64()?.iter())
                .all(|(p, q)| match (p, q) {
                    (Some(p), Some(q)) => (p - q).abs() <= 1e-9 * p.abs().max(1.0),
                    (None, None) => true,
                    _ => false,
                })
        } else {
            cx.as_materialized_series()
                .equals_missing(cy.as_materialized_series())
        };
        if !ok {
            return Err(PolarsError::ComputeError(
                format!("column {} differs", cx.name()).into(),
            ));
        }
    }
    println!("same: {} rows × {} columns", x.height(), x.width());
    Ok(())
}

fn scan(data: &Path, name: &str) -> PolarsResult<LazyFrame> {
    let path = data.join(format!("{name}.csv"));
    LazyCsvReader::new(PlRefPath::new(path.to_string_lossy().as_ref()))
        .with_has_header(true)
        .finish()
}

fn write(out: &Path, name: &str, mut df: DataFrame) -> PolarsResult<()> {
    std::fs::create_dir_all(out)?;
    let path: PathBuf = out.join(format!("{name}.parquet"));
    ParquetWriter::new(std::fs::File::create(path)?)
        .with_compression(ParquetCompression::Zstd(None))
        .set_parallel(true)
        .finish(&mut df)?;
    Ok(())
}

fn run(pipeline: &str, data: &Path, out: &Path, engine: Engine) -> PolarsResult<()> {
    match pipeline {
        // csv → filter → derive → output, streamed into its file on the
        // streaming engine (benches/memory.py).
        "stream" => {
            std::fs::create_dir_all(out)?;
            let path = out.join("out.parquet");
            let options = ParquetWriteOptions {
                compression: ParquetCompression::Zstd(None),
                ..Default::default()
            };
            scan(data, "orders")?
                .filter(
                    col("status")
                        .neq(lit("cancelled"))
                        .and(col("quantity").gt(lit(1))),
                )
                .with_column((col("quantity") * (lit(1) - col("discount"))).alias("units"))
                .sink(
                    SinkDestination::File {
                        target: SinkTarget::Path(PlRefPath::new(path.to_string_lossy().as_ref())),
                    },
                    FileWriteFormat::Parquet(std::sync::Arc::new(options)),
                    UnifiedSinkArgs::default(),
                )?
                .collect_with_engine(Engine::Streaming)?;
            Ok(())
        }
        // csv → filter → derive → aggregate → sort
        "chain" => {
            let df = scan(data, "orders")?
                .filter(
                    col("status")
                        .neq(lit("cancelled"))
                        .and(col("quantity").gt(lit(1))),
                )
                .with_column((col("quantity") * (lit(1) - col("discount"))).alias("units"))
                .group_by([col("customer_id")])
                .agg([col("units").sum(), len().alias("orders")])
                .sort_by_exprs(
                    [col("units"), col("customer_id")],
                    SortMultipleOptions::default().with_order_descending_multi([true, false]),
                )
                .collect_with_engine(engine)?
                .unwrap_single();
            write(out, "out", df)
        }
        // orders ⋈ products ⋈ customers → aggregate → top 10. "joins-fixed"
        // sums the float revenue the way mudrock's SQL sum is planned (null
        // for an all-null group), which Polars cannot partition: the same
        // fixed-order aggregation, to tell the engine's cost from that choice.
        "joins" | "joins-fixed" => {
            let revenue = if pipeline == "joins-fixed" {
                when(col("revenue").null_count().lt(col("revenue").len()))
                    .then(col("revenue").sum())
                    .otherwise(lit(NULL))
                    .alias("revenue")
            } else {
                col("revenue").sum()
            };
            let df = scan(data, "orders")?
                .join(
                    scan(data, "products")?,
                    [col("product_id")],
                    [col("product_id")],
                    JoinArgs::new(JoinType::Inner),
                )
                .with_column(
                    (col("quantity") * col("unit_price") * (lit(1) - col("discount")))
                        .alias("revenue"),
                )
                .join(
                    scan(data, "customers")?,
                    [col("customer_id")],
                    [col("customer_id")],
                    JoinArgs::new(JoinType::Inner),
                )
                .group_by([col("region"), col("category")])
                .agg([revenue, len().alias("orders")])
                .sort_by_exprs(
                    [col("revenue"), col("region"), col("category")],
                    SortMultipleOptions::default()
                        .with_order_descending_multi([true, false, false]),
                )
                .limit(10)
                .collect_with_engine(engine)?
                .unwrap_single();
            write(out, "top", df)
        }
        // one source into four aggregations
        "fanout" => {
            let orders = scan(data, "orders")?
                .collect_with_engine(engine)?
                .unwrap_single();
            let plans = [
                (
                    "by_status",
                    orders
                        .clone()
                        .lazy()
                        .group_by([col("status")])
                        .agg([col("quantity").sum()])
                        .sort(["status"], Default::default()),
                ),
                (
                    "by_product",
                    orders
                        .clone()
                        .lazy()
                        .group_by([col("product_id")])
                        .agg([col("quantity").sum(), len().alias("orders")])
                        .sort(["product_id"], Default::default()),
                ),
                (
                    "by_customer",
                    orders
                        .clone()
                        .lazy()
                        .group_by([col("customer_id")])
                        .agg([col("discount").mean()])
                        .sort(["customer_id"], Default::default()),
                ),
                (
                    "by_quantity",
                    orders
                        .lazy()
                        .group_by([col("quantity")])
                        .agg([len().alias("orders")])
                        .sort(["quantity"], Default::default()),
                ),
            ];
            for (name, lf) in plans {
                write(out, name, lf.collect_with_engine(engine)?.unwrap_single())?;
            }
            Ok(())
        }
        // 40 trivial derives
        "chain40" => {
            let mut lf = scan(data, "orders")?;
            for _ in 0..40 {
                lf = lf.with_column((col("discount") + lit(0.001)).alias("discount"));
            }
            write(out, "out", lf.collect_with_engine(engine)?.unwrap_single())
        }
        "timestamps" => temporal::timestamps(data, out, engine),
        "dates" => temporal::dates(data, out, engine),
        other => Err(PolarsError::ComputeError(
            format!("unknown pipeline {other}").into(),
        )),
    }
}
