//! Float sums whose result does not depend on the order rows arrive in.
//!
//! Polars' partitioned group-by (the streaming engine's too) adds up each
//! partition on its own and combines the partitions in no fixed order, so
//! a float sum done that way can change in its last bits from run to run,
//! and an output's bytes with it. Here each value is put on a fixed grid of
//! 2^-64 as a 128-bit integer (x · 2^64, exact for the values below).
//! Integer sums are exact in any order, so the group-by partitions them
//! freely; per group the total is rounded once to the nearest f64 and
//! scaled back. That is the exact sum, correctly rounded: the same on every
//! run, engine and machine, and at least as accurate as any order of
//! additions.
//!
//! A value off the grid (bits finer than 2^-64 — any nonzero |x| < 2^-12
//! with a full mantissa —, NaN, ±∞) or a group whose total could overflow
//! (count × max |x| ≥ 2^62) fails the query with [`OFF_GRID`]; the engine
//! then builds the unit again with
//! [`crate::Limits::sequential_float_sums`], and the aggregate runs as one
//! unpartitioned query whose sums Polars adds in a fixed order, as it did
//! before.

use polars::prelude::*;

/// How the failure of a query with a value off the grid starts; the engine
/// reads it back (through Polars' wrapping) and computes without the grid.
pub const OFF_GRID: &str = "float sum off the exact grid";

/// Whether an error message (possibly wrapped) is [`OFF_GRID`]'s.
pub fn is_off_grid(message: &str) -> bool {
    message.contains(OFF_GRID)
}

/// The group-by's row count, shared by every exact sum of an aggregate
/// (at least each one's count of values: the bound on its total).
pub const ROWS: &str = "__mudrock_part_rows";

/// The grid's scale, 2^64.
const SCALE: f64 = 18_446_744_073_709_551_616.0;

/// Names of one sum's columns, all starting with its part name `p`:
/// `{p}_a` the argument (computed before, by SQL), then the others.
fn name(p: &str, what: &str) -> PlSmallStr {
    format!("{p}_{what}").into()
}

/// The per-row columns the group-by reduces, from the argument `{p}_a`
/// (Float64): `{p}_i` the value on the grid (Int128), `{p}_big` |x|
/// rounded up to a Float32 (a bound is all [`combine`] needs, and every
/// row a streaming group-by sets aside carries it: 4 bytes, not 8),
/// or +∞ for a value off the grid (null for null), and for a mean
/// `{p}_c`, "has a value" (Boolean, summed into a count; pruned where unused).
pub fn per_row(lf: LazyFrame, parts: &[String]) -> LazyFrame {
    let mut cols = Vec::new();
    for p in parts {
        let a = col(name(p, "a"));
        cols.push(
            grid_map::<Int128Type, _>(a.clone(), DataType::Int128, |x| grid(x).unwrap_or(0))
                .alias(name(p, "i")),
        );
        cols.push(a.clone().is_not_null().alias(name(p, "c")));
        cols.push(
            grid_map::<Float32Type, _>(a, DataType::Float32, |x| {
                if grid(x).is_some() {
                    at_least(x.abs())
                } else {
                    f32::INFINITY
                }
            })
            .alias(name(p, "big")),
        );
    }
    lf.with_columns(cols)
}

/// The nearest Float32 at or above `v` (≥ 0, finite: below 2^62 here).
#[inline]
fn at_least(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) < v { f.next_up() } else { f }
}

/// `x · 2^64` as an integer when that is exact and |x| < 2^62, read from
/// the float's bits (a cast to Int128 and back is two library calls per
/// value: 5% of the dates pipeline, profiled). Beyond 2^62 no group can
/// pass [`combine`]'s bound anyway, so such a value is off the grid too.
#[inline]
fn grid(x: f64) -> Option<i128> {
    const TWO_62: f64 = 4_611_686_018_427_387_904.0;
    if x.is_nan() || x.abs() >= TWO_62 {
        return None; // also ±∞
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    // x = ±m · 2^e, a subnormal without the implicit bit.
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp - 1075)
    };
    let shift = e + 64;
    let v = if m == 0 {
        0
    } else if shift >= 0 {
        i128::from(m) << shift
    } else if m.trailing_zeros() >= shift.unsigned_abs() {
        i128::from(m >> shift.unsigned_abs())
    } else {
        return None;
    };
    Some(if x < 0.0 { -v } else { v })
}

/// An elementwise map of a Float64 column's non-null values to `out`.
/// `map_multiple`, not `Expr::map`: the streaming engine runs a `map` on a
/// blocking thread of its own per batch (it may re-enter the engine),
/// which cost the joins pipeline 10% of its time.
fn grid_map<K, F>(a: Expr, out: DataType, f: F) -> Expr
where
    K: PolarsNumericType,
    F: Fn(f64) -> K::Native + Copy + Send + Sync + 'static,
{
    map_multiple(
        move |cols: &mut [Column]| {
            let c = &cols[0];
            let x = c.cast(&DataType::Float64)?;
            let x = x.f64()?.rechunk();
            let arr = x.downcast_as_array();
            let values: Vec<K::Native> = arr.values().iter().map(|&v| f(v)).collect();
            let ca = ChunkedArray::<K>::from_vec_validity(
                c.name().clone(),
                values,
                arr.validity().cloned(),
            );
            Ok(ca.into_series().into_column())
        },
        [a],
        move |_: &Schema, fields: &[Field]| {
            let name = fields.first().map(|f| f.name().clone()).unwrap_or_default();
            Ok(Field::new(name, out.clone()))
        },
    )
}

/// The group-by's items for part `p` (SQL, over the frame [`per_row`] made):
/// plain reductions Polars partitions; `{p}_c`, the count of values, only
/// for a mean. The query adds `count(*) AS` [`ROWS`] once.
pub fn reductions(p: &str, mean: bool) -> Vec<String> {
    let q = |w: &str| crate::sqlutil::ident(&name(p, w));
    let mut items = vec![
        format!("total({}) AS {}", q("i"), q("i")),
        format!("max({}) AS {}", q("big"), q("big")),
    ];
    if mean {
        items.push(format!("total({}) AS {}", q("c"), q("c")));
    }
    items
}

/// Column `p`: each group's exact sum, from the totals [`reductions`]
/// gave; null for a group without values (SQL's sum).
pub fn finish(lf: LazyFrame, parts: &[String]) -> LazyFrame {
    let exprs: Vec<Expr> = parts
        .iter()
        .map(|p| {
            let args = [col(name(p, "i")), col(name(p, "big")), col(ROWS)];
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

/// The exact sums of one batch of groups: `[i, big, rows]`.
fn combine(cols: &mut [Column]) -> PolarsResult<Series> {
    let [i, big, rows] = cols else {
        polars_bail!(ComputeError: "exact sum: expected 3 columns, got {}", cols.len());
    };
    let i = i.cast(&DataType::Int128)?.i128()?.clone();
    // |x| rounded up to a Float32: a bound, and exact in Float64.
    let big = big.cast(&DataType::Float64)?.f64()?.clone();
    let rows = rows.cast(&DataType::Float64)?.f64()?.clone();
    let mut out: Vec<Option<f64>> = Vec::with_capacity(i.len());
    for k in 0..i.len() {
        // No value in the group: the max of |x| saw none.
        let Some(b) = big.get(k) else {
            out.push(None);
            continue;
        };
        // Every |x| · 2^64 is below 2^126 / rows here, so the total fits.
        let n = rows.get(k).unwrap_or(f64::INFINITY);
        if !(b.is_finite() && b * n < 2f64.powi(62)) {
            polars_bail!(ComputeError: "{OFF_GRID}");
        }
        // One rounding (to nearest, ties to even), then an exact scaling.
        out.push(Some(i.get(k).unwrap_or(0) as f64 / SCALE));
    }
    Ok(Series::new(PlSmallStr::EMPTY, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact sum of `xs`, one group.
    fn exact(xs: &[Option<f64>]) -> PolarsResult<Option<f64>> {
        let p = "__p".to_string();
        let lf = df!("__p_a" => xs).unwrap().lazy();
        let lf = per_row(lf, std::slice::from_ref(&p));
        let aggs = [
            col(name(&p, "i")).sum(),
            col(name(&p, "big")).max(),
            len().alias(ROWS),
        ];
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
        // No value: SQL's null.
        assert_eq!(exact(&[None, None]).unwrap(), None);
    }

    #[test]
    fn off_the_grid_fails_with_the_marker() {
        let two_61 = 2f64.powi(61);
        for bad in [
            1e-30,
            1e300,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            two_61,
        ] {
            let e = exact(&[Some(1.0), Some(bad)]).unwrap_err();
            assert!(is_off_grid(&e.to_string()), "{bad}: {e}");
        }
        // Just on it: a full mantissa at 2^-12, a large value alone; just
        // off: the same mantissa at 2^-13.
        let third = 1.0 / 3.0;
        assert_eq!(
            exact(&[Some(third / 1024.0), None]).unwrap(),
            Some(third / 1024.0)
        );
        assert_eq!(exact(&[Some(two_61)]).unwrap(), Some(two_61));
        assert!(exact(&[Some(third / 2048.0)]).is_err());
    }

    #[test]
    fn the_grid_from_the_bits_is_the_cast_and_back() {
        // What per_row computed before: a cast to Int128, exact when it
        // reads back as x · 2^64; and the bound combine applies.
        let by_cast = |x: f64| -> Option<i128> {
            let scaled = x * SCALE;
            let i = num_traits_free_cast(scaled)?;
            (i as f64 == scaled && x.abs() < 2f64.powi(62)).then_some(i)
        };
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut xs = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e-30,
            2f64.powi(-64),
            2f64.powi(-65),
            2f64.powi(62),
            -2f64.powi(62),
            2f64.powi(62) - 1024.0,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            1.0 / 3.0,
            -1.25,
            123_456.789,
        ];
        for _ in 0..200_000 {
            let bits = next();
            xs.push(f64::from_bits(bits));
            // Values near the grid's ends and cents, where most data is.
            let scale = 2f64.powi((bits % 140) as i32 - 80);
            xs.push((bits >> 11) as f64 * scale);
            xs.push(-((bits % 10_000_000) as f64) / 100.0);
        }
        for x in xs {
            assert_eq!(grid(x), by_cast(x), "{x:e} ({:#x})", x.to_bits());
        }
    }

    #[test]
    fn magnitudes_round_up_to_a_float32_bound() {
        for v in [
            0.0,
            0.1,
            1.0 / 3.0,
            1.0,
            16_777_217.0,
            2f64.powi(62) - 1024.0,
            5e-324,
        ] {
            let f = at_least(v);
            assert!(f64::from(f) >= v, "{v:e} -> {f:e}");
            // The nearest such Float32: one step down is below v.
            assert!(f == 0.0 || f64::from(f.next_down()) < v, "{v:e} -> {f:e}");
        }
        assert_eq!(at_least(0.5), 0.5, "exact values stay");
    }

    /// `f64 → i128` as Polars' cast does it: toward zero, none when out of
    /// range or not a number.
    fn num_traits_free_cast(v: f64) -> Option<i128> {
        let limit = 2f64.powi(127);
        (v.is_finite() && v >= -limit && v < limit).then_some(v as i128)
    }
}
