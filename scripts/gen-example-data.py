#!/usr/bin/env python3
"""Generates the sales example's data (seeded, so the output is stable).

Usage: scripts/gen-example-data.py [OUT_DIR] [ORDERS]
Writes orders.csv, customers.csv and products.ndjson. The committed copy in
examples/sales/data was made with the defaults.
"""
import json
import random
import sys
from datetime import datetime, timedelta

out = sys.argv[1] if len(sys.argv) > 1 else "examples/sales/data"
n_orders = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rng = random.Random(42)

regions = ["north", "south", "east", "west"]
first = ["Ada", "Brook", "Cyd", "Dana", "Eli", "Fern", "Gus", "Hana", "Ivo", "Jun"]
last = ["Stone", "Marsh", "Clay", "Shale", "Flint", "Loam", "Silt", "Chalk"]
with open(f"{out}/customers.csv", "w") as f:
    f.write("customer_id,name,email,region,signup_date\n")
    for c in range(1, 201):
        name = f"{rng.choice(first)} {rng.choice(last)}"
        # A few customers share an email: the example's strict check flags them.
        email = f"c{c if c % 67 else 1}@example.com"
        day = datetime(2023, 1, 1) + timedelta(days=rng.randrange(700))
        f.write(f"{c},{name},{email},{rng.choice(regions)},{day:%Y-%m-%d}\n")

cats = ["tools", "garden", "kitchen", "outdoor"]
with open(f"{out}/products.ndjson", "w") as f:
    for p in range(1, 51):
        f.write(json.dumps({"product_id": p, "product": f"product-{p:03d}", "category": rng.choice(cats),
                            "unit_price": round(rng.uniform(2, 300), 2)}) + "\n")

statuses = ["paid"] * 8 + ["shipped"] * 5 + ["cancelled"]
start = datetime(2024, 1, 1)
with open(f"{out}/orders.csv", "w") as f:
    f.write("order_id,customer_id,product_id,quantity,status,order_ts\n")
    for o in range(1, n_orders + 1):
        ts = start + timedelta(minutes=rng.randrange(365 * 24 * 60))
        qty = rng.choice([1, 1, 1, 2, 2, 3, 5, 10]) if rng.random() > 0.01 else 0
        f.write(f"{o},{rng.randrange(1, 201)},{rng.randrange(1, 51)},{qty},{rng.choice(statuses)},{ts:%Y-%m-%d %H:%M:%S}\n")
