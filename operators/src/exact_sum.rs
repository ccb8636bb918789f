//! Float sums whose result does not depend on the order rows arrive in.
//!
//! Polars' partitioned group-by (the streaming engine's too) adds up each
//! partition on its own and combines the partitions in no fixed order, so
//! a float sum done that way can change in its last bits from run to run,
//! and an output's bytes with it. Here each value is split into three
//! integers on a fixed grid of 2^-64: its floor, then the next 32 bits of
//! its fraction, then the 32 after those. Integer sums are exact in any
//! order, so the group-by partitions them freely; per group the three
//! totals are put back together in 128-bit integer arithmetic and rounded
//! once to the nearest f64. That is the exact sum, correctly rounded: the
//! same on every run, engine and machine, and at least as accurate as
//! any order of additions.
//!
//! A value off the grid (|x| ≥ 2^52, bits finer than 2^-64 — any nonzero
//! |x| < 2^-12 with a full mantissa —, NaN, ±∞) or a group whose totals
//! could overflow fails the query with [`OFF_GRID`]; the engine then
//! builds the unit again with [`crate::Limits::sequential_float_sums`],
//! and the aggregate runs as one unpartitioned query whose sums Polars
//! adds in a fixed order, as it did before.

use polars::prelude::*;

/// How the failure of a query with a value off the grid starts; the engine
/// reads it back (through Polars' wrapping) and computes without the grid.
pub const OFF_GRID: &str = "float sum off the exact grid";

/// Whether an error message (possibly wrapped) is [`OFF_GRID`]'s.
pub fn is_off_grid(message: &str) -> bool {
    message.contains(OFF_GRID)
}

const TWO_32: f64 = 4_294_967_296.0;
/// Above this a float has no fraction bits, and its floor may not fit.
const TWO_52: f64 = 4_503_599_627_370_496.0;

/// Names of one sum's columns, all starting with its part name `p`:
/// `{p}_a` the argument (computed before, by SQL), then the limbs.
fn name(p: &str, what: &str) -> PlSmallStr {
    format!("{p}_{what}").into()
}

/// The per-row columns the group-by totals, from the argument `{p}_a`
/// (Float64): floor, fraction bits 1-32, fraction bits 33-64 (Int64), "on
/// the grid" (Boolean), |x| (Float64) and "has a value" (Int64, 0 or 1).
pub fn limbs(lf: LazyFrame, parts: &[String]) -> LazyFrame {
    let (mut first, mut second, mut third) = (Vec::new(), Vec::new(), Vec::new());
    for p in parts {
        let a = col(name(p, "a"));
        let fl = a.clone().floor();
        first.push(fl.clone().cast(DataType::Int64).alias(name(p, "hi")));
        first.push(((a.clone() - fl) * lit(TWO_32)).alias(name(p, "f")));
        first.push(a.clone().abs().alias(name(p, "big")));
        first.push(a.is_not_null().cast(DataType::Int64).alias(name(p, "c")));
        let f = col(name(p, "f"));
        let mid = f.clone().floor();
        second.push(mid.clone().cast(DataType::Int64).alias(name(p, "mid")));
        second.push(((f - mid) * lit(TWO_32)).alias(name(p, "l")));
        let l = col(name(p, "l"));
        third.push(l.clone().cast(DataType::Int64).alias(name(p, "lo")));
        third.push(
            col(name(p, "big"))
                .lt(lit(TWO_52))
                .and(l.clone().eq(l.floor()))
                .alias(name(p, "ok")),
        );
    }
    lf.with_columns(first)
        .with_columns(second)
        .with_columns(third)
}

/// The group-by's items for part `p` (SQL, over the frame [`limbs`] made):
/// plain reductions Polars partitions.
pub fn reductions(p: &str) -> Vec<String> {
    let q = |w: &str| crate::sqlutil::ident(&name(p, w));
    vec![
        format!("total({}) AS {}", q("hi"), q("hi")),
        format!("total({}) AS {}", q("mid"), q("mid")),
        format!("total({}) AS {}", q("lo"), q("lo")),
        format!("total({}) AS {}", q("c"), q("c")),
        format!("min({}) AS {}", q("ok"), q("ok")),
        format!("max({}) AS {}", q("big"), q("big")),
    ]
}

/// Column `p`: each group's exact sum, from the totals [`reductions`]
/// gave; 0 for a group without values (the outer query makes that null).
pub fn finish(lf: LazyFrame, parts: &[String]) -> LazyFrame {
    let exprs: Vec<Expr> = parts
        .iter()
        .map(|p| {
            let args: Vec<Expr> = ["hi", "mid", "lo", "c", "ok", "big"]
                .iter()
                .map(|w| col(name(p, w)))
                .collect();
            map_multiple(
                |cols: &mut [Column]| combine(cols).map(Column::from),
                args,
                |_: &Schema, fields: &[Field]| {
                    let n = fields.first().map(|f| f.name().clone()).unwrap_or_default();
                    Ok(Field::new(n, DataType::Float64))
                },
            )
            .alias(p.as_str())
        })
        .collect();
    lf.with_columns(exprs)
}

/// The exact sums of one batch of groups: `[hi, mid, lo, c, ok, big]`.
fn combine(cols: &mut [Column]) -> PolarsResult<Series> {
    let [hi, mid, lo, c, ok, big] = cols else {
        polars_bail!(ComputeError: "exact sum: expected 6 columns, got {}", cols.len());
    };
    let i64s =
        |c: &Column| -> PolarsResult<Int64Chunked> { Ok(c.cast(&DataType::Int64)?.i64()?.clone()) };
    let (hi, mid, lo, c) = (i64s(hi)?, i64s(mid)?, i64s(lo)?, i64s(c)?);
    let ok = ok.bool()?.clone();
    let big = big.cast(&DataType::Float64)?.f64()?.clone();
    let mut out = Vec::with_capacity(hi.len());
    for i in 0..hi.len() {
        let n = c.get(i).unwrap_or(0);
        if n == 0 {
            out.push(0.0);
            continue;
        }
        // The limb totals are below n * 2^32 (< 2^63 for n < 2^31); the
        // floors' below n * (max|x| + 1) (< 2^63 when n * max|x| < 2^62).
        let fits = n < 1 << 31 && big.get(i).is_some_and(|b| b * (n as f64) < 2f64.powi(62));
        if ok.get(i) != Some(true) || !fits {
            polars_bail!(ComputeError: "{OFF_GRID}");
        }
        let v = (i128::from(hi.get(i).unwrap_or(0)) << 64)
            + (i128::from(mid.get(i).unwrap_or(0)) << 32)
            + i128::from(lo.get(i).unwrap_or(0));
        // One rounding (to nearest, ties to even), then an exact scaling.
        out.push(v as f64 * 2f64.powi(-64));
    }
    Ok(Series::new(PlSmallStr::EMPTY, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact sum of `xs` through the limbs, one group.
    fn exact(xs: &[Option<f64>]) -> PolarsResult<Option<f64>> {
        let p = "__p".to_string();
        let lf = df!("__p_a" => xs).unwrap().lazy();
        let lf = limbs(lf, std::slice::from_ref(&p));
        let aggs: Vec<Expr> = ["hi", "mid", "lo", "c"]
            .iter()
            .map(|w| col(name(&p, w)).sum())
            .chain([col(name(&p, "ok")).min(), col(name(&p, "big")).max()])
            .collect();
        let df = finish(lf.select(aggs), &[p]).collect()?;
        Ok(df.column("__p")?.f64()?.get(0))
    }

    #[test]
    fn sums_exactly_and_rounds_once() {
        // Row order gives 1.0 + 1e-16 + 1e-16 ... = 1.0; the exact sum is
        // above it. 2^-60 is on the grid.
        let tiny = 2f64.powi(-60);
        let mut xs = vec![Some(1.0)];
        xs.extend(std::iter::repeat_n(Some(tiny), 1 << 10));
        assert_eq!(exact(&xs).unwrap(), Some(1.0 + 2f64.powi(-50)));
        // Negative values, fractions, nulls.
        let xs = [Some(-1.25), Some(0.1), None, Some(2.5), Some(-0.2)];
        let want = -1.25 + 0.1 + 2.5 - 0.2;
        let got = exact(&xs).unwrap().unwrap();
        assert!((got - want).abs() <= f64::EPSILON * 4.0, "{got} vs {want}");
        // Order does not matter, bit for bit.
        let a: Vec<Option<f64>> = (0..1000).map(|i| Some(0.25 * f64::from(i) - 7.3)).collect();
        let mut b = a.clone();
        b.reverse();
        assert_eq!(
            exact(&a).unwrap().map(f64::to_bits),
            exact(&b).unwrap().map(f64::to_bits)
        );
        // No value: 0 here, the aggregate's null.
        assert_eq!(exact(&[None, None]).unwrap(), Some(0.0));
    }

    #[test]
    fn off_the_grid_fails_with_the_marker() {
        for bad in [1e-30, 1e300, f64::NAN, f64::INFINITY, TWO_52] {
            let e = exact(&[Some(1.0), Some(bad)]).unwrap_err();
            assert!(is_off_grid(&e.to_string()), "{bad}: {e}");
        }
        // Just on it: the largest value with a fraction, a full mantissa
        // at 2^-12; just off: the same at 2^-13.
        let third = 1.0 / 3.0;
        assert!(exact(&[Some(TWO_52 - 0.5), Some(third / 1024.0)]).is_ok());
        assert!(exact(&[Some(third / 2048.0)]).is_err());
    }
}
