#!/usr/bin/env python3
"""The harness pipelines as a user would write them without mudrock.

    python peers.py polars|duckdb PIPELINE DATA OUT   # OUT/<output>.parquet
    python peers.py same A.parquet B.parquet          # same table?

Run by benches/floor.py in the venv it makes (Python Polars and DuckDB
from PyPI, pinned there). Each pipeline is the idiomatic script of that
tool: a Polars lazy query collected and written with zstd (a fan-out with
`pl.collect_all`, one shared scan), a DuckDB query copied to Parquet with
zstd (a fan-out from one temporary table). Outputs hold the same columns,
types and rows as mudrock's (see `same`).
"""

import sys
from pathlib import Path

TS_FORMAT = "%Y-%m-%dT%H:%M:%S"


def polars_run(name, data, out):
    import polars as pl

    def csv(table, **kw):
        return pl.scan_csv(data / f"{table}.csv", **kw)

    def write(df, stem):
        df.write_parquet(out / f"{stem}.parquet", compression="zstd")

    if name in ("chain", "stream"):
        lf = (csv("orders")
              .filter((pl.col("status") != "cancelled") & (pl.col("quantity") > 1))
              .with_columns((pl.col("quantity") * (1 - pl.col("discount"))).alias("units")))
        if name == "chain":
            lf = (lf.group_by("customer_id")
                  .agg(pl.col("units").sum(), pl.len().alias("orders"))
                  .sort(["units", "customer_id"], descending=[True, False]))
        write(lf.collect(), "out")
    elif name == "joins":
        df = (csv("orders")
              .join(csv("products"), on="product_id")
              .with_columns((pl.col("quantity") * pl.col("unit_price") * (1 - pl.col("discount"))).alias("revenue"))
              .join(csv("customers"), on="customer_id")
              .group_by("region", "category")
              .agg(pl.col("revenue").sum(), pl.len().alias("orders"))
              .sort(["revenue", "region", "category"], descending=[True, False, False])
              .head(10)
              .collect())
        write(df, "top")
    elif name == "fanout":
        orders = csv("orders")
        plans = {
            "by_status": orders.group_by("status").agg(pl.col("quantity").sum()).sort("status"),
            "by_product": orders.group_by("product_id")
            .agg(pl.col("quantity").sum(), pl.len().alias("orders")).sort("product_id"),
            "by_customer": orders.group_by("customer_id").agg(pl.col("discount").mean()).sort("customer_id"),
            "by_quantity": orders.group_by("quantity").agg(pl.len().alias("orders")).sort("quantity"),
        }
        for stem, df in zip(plans, pl.collect_all(list(plans.values()))):
            write(df, stem)
    elif name == "chain40":
        lf = csv("orders")
        for _ in range(40):
            lf = lf.with_columns(pl.col("discount") + 0.001)
        write(lf.collect(), "out")
    elif name == "timestamps":
        df = (csv("events", schema_overrides={"ts": pl.String})
              .with_columns(pl.col("ts").str.to_datetime(TS_FORMAT, time_unit="us"))
              .filter((pl.col("kind") != "refund") & (pl.col("amount") >= 1))
              .with_columns(pl.col("ts").dt.truncate("1mo").alias("month"))
              .group_by("month", "kind")
              .agg(pl.col("amount").sum().alias("revenue"), pl.len().alias("events"))
              .sort("month", "kind")
              .collect())
        write(df, "out")
    elif name == "dates":
        df = (pl.scan_parquet(data / "events.parquet")
              .filter(pl.col("shipped").is_not_null() & (pl.col("day") >= pl.date(2024, 7, 1)))
              .with_columns(pl.col("day").cast(pl.Datetime("us")).dt.truncate("1w").alias("week"),
                            pl.col("ts").dt.hour().alias("hour"))
              .group_by("week", "hour")
              .agg(pl.col("amount").sum().alias("revenue"), pl.len().alias("events"),
                   pl.col("shipped").max().alias("last_shipped"), pl.col("ts").min().alias("first_ts"))
              .sort("week", "hour")
              .collect())
        write(df, "out")
    else:
        sys.exit(f"peers.py: unknown pipeline {name}")


DUCKDB = {
    "chain": {"out": """
        SELECT customer_id, sum(quantity * (1 - discount)) AS units, count(*) AS orders
        FROM read_csv('{d}/orders.csv')
        WHERE status <> 'cancelled' AND quantity > 1
        GROUP BY customer_id ORDER BY units DESC, customer_id"""},
    "stream": {"out": """
        SELECT *, quantity * (1 - discount) AS units FROM read_csv('{d}/orders.csv')
        WHERE status <> 'cancelled' AND quantity > 1"""},
    "joins": {"top": """
        SELECT region, category, sum(quantity * unit_price * (1 - discount)) AS revenue, count(*) AS orders
        FROM read_csv('{d}/orders.csv') JOIN read_csv('{d}/products.csv') USING (product_id)
             JOIN read_csv('{d}/customers.csv') USING (customer_id)
        GROUP BY region, category ORDER BY revenue DESC, region, category LIMIT 10"""},
    "fanout": {
        "by_status": "SELECT status, CAST(sum(quantity) AS BIGINT) AS quantity FROM orders GROUP BY ALL ORDER BY ALL",
        "by_product": "SELECT product_id, CAST(sum(quantity) AS BIGINT) AS quantity, count(*) AS orders FROM orders "
                      "GROUP BY ALL ORDER BY product_id",
        "by_customer": "SELECT customer_id, avg(discount) AS discount FROM orders GROUP BY ALL ORDER BY customer_id",
        "by_quantity": "SELECT quantity, count(*) AS orders FROM orders GROUP BY ALL ORDER BY quantity",
    },
    "chain40": {"out": "SELECT * REPLACE ({expr} AS discount) FROM read_csv('{d}/orders.csv')"},
    "timestamps": {"out": """
        SELECT date_trunc('month', ts) AS month, kind, sum(amount) AS revenue, count(*) AS events
        FROM read_csv('{d}/events.csv', types = {{'ts': 'TIMESTAMP'}}, timestampformat = '""" + TS_FORMAT + """')
        WHERE kind <> 'refund' AND amount >= 1
        GROUP BY ALL ORDER BY month, kind"""},
    "dates": {"out": """
        SELECT CAST(date_trunc('week', day) AS TIMESTAMP) AS week, CAST(hour(ts) AS TINYINT) AS hour,
               sum(amount) AS revenue, count(*) AS events, max(shipped) AS last_shipped, min(ts) AS first_ts
        FROM read_parquet('{d}/events.parquet')
        WHERE shipped IS NOT NULL AND day >= DATE '2024-07-01'
        GROUP BY ALL ORDER BY week, hour"""},
}


def duckdb_run(name, data, out):
    import duckdb

    if name not in DUCKDB:
        sys.exit(f"peers.py: unknown pipeline {name}")
    con = duckdb.connect()
    if name == "fanout":
        con.execute(f"CREATE TEMP TABLE orders AS SELECT * FROM read_csv('{data}/orders.csv')")
    expr = "discount"
    for _ in range(40):
        expr = f"({expr} + 0.001)"
    for stem, query in DUCKDB[name].items():
        q = query.format(d=data, expr=expr)
        con.execute(f"COPY ({q}) TO '{out}/{stem}.parquet' (FORMAT parquet, COMPRESSION zstd)")


def same(a, b):
    """Same columns and rows: integers compared as integers, floats to 1e-9
    relative (summation order differs between engines), datetimes in
    microseconds; rows in the order of the exact columns."""
    import polars as pl

    def norm(path):
        df = pl.read_parquet(path)
        cols = []
        for n, t in df.schema.items():
            if t.is_integer():
                cols.append(pl.col(n).cast(pl.Int64))
            elif t.is_float():
                cols.append(pl.col(n).cast(pl.Float64))
            elif isinstance(t, pl.Datetime):
                cols.append(pl.col(n).cast(pl.Datetime("us")))
            else:
                cols.append(pl.col(n))
        return df.select(cols)

    x, y = norm(a), norm(b)
    if x.columns != y.columns:
        sys.exit(f"peers.py same: columns differ: {x.columns} vs {y.columns}")
    if x.schema != y.schema:
        sys.exit(f"peers.py same: types differ: {x.schema} vs {y.schema}")
    if x.height != y.height:
        sys.exit(f"peers.py same: {x.height} rows vs {y.height}")
    keys = [n for n, t in x.schema.items() if not t.is_float()]
    if keys:
        x, y = x.sort(keys, nulls_last=True), y.sort(keys, nulls_last=True)
    for n, t in x.schema.items():
        if t.is_float():
            p, q = x[n], y[n]
            ok = ((p - q).abs() <= 1e-9 * p.abs().clip(lower_bound=1.0)).fill_null(False) | (p.is_null() & q.is_null())
            if not ok.all():
                sys.exit(f"peers.py same: column {n} differs")
        elif not x[n].equals(y[n]):
            sys.exit(f"peers.py same: column {n} differs")
    print(f"same: {x.height} rows x {x.width} columns")


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "same":
        same(args[1], args[2])
    elif len(args) == 4 and args[0] in ("polars", "duckdb"):
        out = Path(args[3])
        out.mkdir(parents=True, exist_ok=True)
        run = polars_run if args[0] == "polars" else duckdb_run
        run(args[1], Path(args[2]), out)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
