//! Several small group keys packed into one Int64 for the aggregate's
//! group-by. Polars groups a single primitive key in a flat hash table and
//! several keys through its row encoding (each row's keys serialised to
//! bytes, hashed and compared with `memcmp`); a `week, hour` group-by spent
//! most of its time there. Each key contributes its bits and a validity
//! bit, so two rows get the same packed key exactly when every key is
//! equal (nulls equal to nulls, as in a group-by): the groups are the same,
//! and the keys' values come back from each group's packed key ([`unpack`]).
//!
//! Integers of 32 bits or fewer and dates take a fixed width. One
//! `datetime` in milliseconds or microseconds may take the bits left over,
//! as an offset from zero (1970) wide enough for centuries either way; a
//! value beyond them fails the query with [`WIDE`], and the engine builds
//! the unit again unpacked ([`crate::Limits::unpacked_group_keys`]).

use polars::prelude::*;

/// The packed key's column, under the aggregate's intermediate prefix so
/// that an input column by that name turns the split (and this) off.
pub const KEY: &str = "__mudrock_part_key";

/// The error of a datetime key beyond the bits its packing left it.
pub const WIDE: &str = "group key beyond its packed range";

/// Whether an error message (possibly wrapped) is [`WIDE`]'s.
pub fn is_wide(message: &str) -> bool {
    message.contains(WIDE)
}

/// How a key of a type packs: a fixed number of bits, or a datetime taking
/// what is left, at least as many bits as given (its validity bit apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Fixed(u32),
    Wide { at_least: u32 },
}

fn slot(dt: &DataType) -> Option<Slot> {
    match dt {
        DataType::Int8 | DataType::UInt8 => Some(Slot::Fixed(8)),
        DataType::Int16 | DataType::UInt16 => Some(Slot::Fixed(16)),
        DataType::Int32 | DataType::UInt32 | DataType::Date => Some(Slot::Fixed(32)),
        // ±2^42 ms and ±2^52 µs: 139 and 142 years either side of 1970.
        DataType::Datetime(TimeUnit::Milliseconds, _) => Some(Slot::Wide { at_least: 43 }),
        DataType::Datetime(TimeUnit::Microseconds, _) => Some(Slot::Wide { at_least: 53 }),
        _ => None,
    }
}

/// The bits each of `dtypes` takes in the packed key (validity bits
/// apart), or `None` where they do not pack: fewer than two keys, a type
/// [`slot`] does not know, two datetimes, a datetime left fewer bits than
/// it needs, or more than 63 bits in all with a validity bit each.
fn widths(dtypes: &[&DataType]) -> Option<Vec<u32>> {
    if dtypes.len() < 2 {
        return None;
    }
    let slots: Vec<Slot> = dtypes.iter().map(|d| slot(d)).collect::<Option<_>>()?;
    let fixed: u32 = slots
        .iter()
        .map(|s| match s {
            Slot::Fixed(w) => w + 1,
            Slot::Wide { .. } => 1,
        })
        .sum();
    let wide = slots
        .iter()
        .filter(|s| matches!(s, Slot::Wide { .. }))
        .count();
    if fixed > 63 || wide > 1 {
        return None;
    }
    slots
        .iter()
        .map(|s| match *s {
            Slot::Fixed(w) => Some(w),
            Slot::Wide { at_least } => (63 - fixed >= at_least).then_some(63 - fixed),
        })
        .collect()
}

/// [`widths`], or the error of columns that do not pack.
fn packing(dtypes: &[&DataType]) -> PolarsResult<Vec<u32>> {
    widths(dtypes).ok_or_else(
        || polars_err!(ComputeError: "packed group key: columns of types {:?} do not pack", dtypes),
    )
}

/// Whether group keys `by` of `schema` pack into one Int64 ([`widths`]).
pub fn packs(schema: &Schema, by: &[String]) -> bool {
    let dtypes: Option<Vec<&DataType>> = by.iter().map(|b| schema.get(b.as_str())).collect();
    dtypes.and_then(|d| widths(&d)).is_some()
}

/// The packed key of columns `by`, as column [`KEY`]. An elementwise
/// `map_multiple` (the streaming engine runs an `Expr::map` on a blocking
/// thread per batch).
pub fn key(by: &[String]) -> Expr {
    map_multiple(
        |cols: &mut [Column]| pack(cols).map(Column::from),
        by.iter().map(|b| col(b.as_str())).collect::<Vec<_>>(),
        |_: &Schema, _: &[Field]| Ok(Field::new(KEY.into(), DataType::Int64)),
    )
    .alias(KEY)
}

/// The group keys `by` of `schema` back from column [`KEY`], one
/// expression each (named as the key, of its type), for the group-by's
/// result: a few rows per group instead of a `min` per key per input row.
pub fn unpack(schema: &Schema, by: &[String]) -> PolarsResult<Vec<Expr>> {
    let dtypes: Vec<DataType> = by
        .iter()
        .map(|b| schema.try_get(b.as_str()).cloned())
        .collect::<PolarsResult<_>>()?;
    let widths = packing(&dtypes.iter().collect::<Vec<_>>())?;
    let mut shift = 0u32; // the last key is in the lowest bits
    let mut exprs = Vec::with_capacity(by.len());
    for ((name, dtype), w) in by.iter().zip(dtypes).zip(widths).rev() {
        let at = shift;
        shift += w + 1;
        let out = Field::new(name.as_str().into(), dtype.clone());
        exprs.push(
            col(KEY)
                .map(
                    move |c: Column| unpack_one(&c, at, w, &dtype).map(Column::from),
                    move |_: &Schema, _: &Field| Ok(out.clone()),
                )
                .alias(name.as_str()),
        );
    }
    exprs.reverse();
    Ok(exprs)
}

/// One key of width `w` at bit `at` of each packed key: [`pack`] undone.
fn unpack_one(keys: &Column, at: u32, w: u32, dtype: &DataType) -> PolarsResult<Series> {
    let keys = keys.i64()?;
    let mask = (1u64 << w) - 1;
    let wide = matches!(dtype, DataType::Datetime(..));
    let signed = dtype.to_physical().is_signed_integer();
    let values: Int64Chunked = keys
        .iter()
        .map(|k| {
            let part = (k? as u64) >> at;
            if part & (1 << w) == 0 {
                return None;
            }
            let x = part & mask;
            Some(match (wide, signed) {
                (true, _) => x as i64 - (1i64 << (w - 1)),
                // Sign-extended from `w` bits.
                (false, true) => ((x << (64 - w)) as i64) >> (64 - w),
                (false, false) => x as i64,
            })
        })
        .collect();
    values.into_series().cast(&dtype.to_physical())?.cast(dtype)
}

/// One batch: for each column in turn, the key shifts left by the column's
/// width plus one and takes its validity bit and its value's low bits (0
/// for a null); a datetime's value is offset by half its range first.
fn pack(cols: &mut [Column]) -> PolarsResult<Series> {
    let n = cols.first().map_or(0, |c| c.len());
    let widths = packing(&cols.iter().map(|c| c.dtype()).collect::<Vec<_>>())?;
    let mut keys = vec![0u64; n];
    for (c, w) in cols.iter().zip(widths) {
        polars_ensure!(c.len() == n, ComputeError: "packed group key: columns of different lengths");
        let wide = matches!(c.dtype(), DataType::Datetime(..));
        let values = c.to_physical_repr().cast(&DataType::Int64)?;
        let values = values.i64()?.rechunk();
        let arr = values.downcast_as_array();
        let mask = (1u64 << w) - 1;
        let valid = 1u64 << w;
        // A datetime: v + 2^(w-1) must be within [0, 2^w).
        let offset: u64 = if wide { 1 << (w - 1) } else { 0 };
        let mut beyond = false;
        let mut put = |k: &mut u64, v: i64, ok: bool| {
            let x = (v as u64).wrapping_add(offset);
            beyond |= ok && wide && x > mask;
            let part = if ok { valid | (x & mask) } else { 0 };
            *k = (*k << (w + 1)) | part;
        };
        match arr.validity() {
            None => {
                for (k, &v) in keys.iter_mut().zip(arr.values().iter()) {
                    put(k, v, true);
                }
            }
            Some(bits) => {
                for ((k, &v), ok) in keys.iter_mut().zip(arr.values().iter()).zip(bits.iter()) {
                    put(k, v, ok);
                }
            }
        }
        polars_ensure!(!beyond, ComputeError: "{WIDE}: column {}", c.name());
    }
    let keys: Vec<i64> = keys.into_iter().map(|k| k as i64).collect();
    Ok(Int64Chunked::from_vec(KEY.into(), keys).into_series())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn schema(cols: &[(&str, DataType)]) -> Schema {
        cols.iter()
            .map(|(n, dt)| Field::new((*n).into(), dt.clone()))
            .collect()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn dt(unit: TimeUnit) -> DataType {
        DataType::Datetime(unit, None)
    }

    /// Asserts that rows with the same packed key (column [`KEY`] of `df`)
    /// hold the same tuple; returns how many keys there are.
    fn one_key_per_tuple<T>(df: &DataFrame, tuples: &[T]) -> usize
    where
        T: PartialEq + std::fmt::Debug + Copy,
    {
        let keys = df.column(KEY).unwrap().i64().unwrap();
        let mut seen: HashMap<i64, T> = HashMap::new();
        for (k, t) in keys.into_no_null_iter().zip(tuples) {
            assert_eq!(*seen.entry(k).or_insert(*t), *t, "key {k} packs two tuples");
        }
        seen.len()
    }

    /// Asserts that [`unpack`] gives columns `by` of `df` back from [`KEY`]:
    /// values, nulls and types.
    fn unpacks(df: &DataFrame, by: &[&str]) {
        let exprs = unpack(df.schema(), &names(by)).unwrap();
        let back = df.clone().lazy().select(exprs).collect().unwrap();
        let want = df.select(by.iter().copied()).unwrap();
        assert_eq!(back.schema(), want.schema());
        assert!(back.equals_missing(&want), "{back}\n{want}");
    }

    #[test]
    fn which_keys_pack() {
        let s = schema(&[
            ("week", DataType::Date),
            ("hour", DataType::Int8),
            ("d2", DataType::Date),
            ("n", DataType::Int64),
            ("s", DataType::String),
            ("u", DataType::UInt16),
            ("us", dt(TimeUnit::Microseconds)),
            ("us2", dt(TimeUnit::Microseconds)),
            ("ms", dt(TimeUnit::Milliseconds)),
            ("ns", dt(TimeUnit::Nanoseconds)),
        ]);
        assert!(packs(&s, &names(&["week", "hour"])));
        assert!(
            packs(&s, &names(&["week", "hour", "u"])),
            "33 + 9 + 17 bits"
        );
        assert!(!packs(&s, &names(&["week", "d2"])), "66 bits");
        assert!(
            !packs(&s, &names(&["week"])),
            "one key is Polars' fast path already"
        );
        assert!(!packs(&s, &names(&["week", "n"])), "64-bit integers do not");
        assert!(!packs(&s, &names(&["week", "s"])));
        assert!(!packs(&s, &names(&["week", "missing"])));
        assert!(
            packs(&s, &names(&["us", "hour"])),
            "53 bits left for the datetime"
        );
        assert!(
            !packs(&s, &names(&["us", "u"])),
            "45 bits left: too few for µs"
        );
        assert!(packs(&s, &names(&["ms", "u"])), "45 bits: enough for ms");
        assert!(!packs(&s, &names(&["us", "us2"])), "one datetime at most");
        assert!(
            !packs(&s, &names(&["ns", "hour"])),
            "ns would leave ±52 days"
        );
    }

    /// Equal packed keys exactly when the key tuples are equal (null equal
    /// to null), and each key unpacked back as it was, over the ends of
    /// every type's range (a datetime's packed range), negatives and nulls.
    #[test]
    fn packed_keys_are_equal_exactly_when_the_keys_are() {
        let a: Vec<Option<i8>> = vec![
            Some(i8::MIN),
            Some(-1),
            Some(0),
            Some(1),
            Some(i8::MAX),
            None,
        ];
        let b: Vec<Option<i32>> = vec![
            Some(i32::MIN),
            Some(-1),
            Some(0),
            Some(255),
            Some(i32::MAX),
            None,
        ];
        let c: Vec<Option<u16>> = vec![Some(0), Some(1), Some(u16::MAX), None];
        let mut rows = (Vec::new(), Vec::new(), Vec::new());
        for x in &a {
            for y in &b {
                for z in &c {
                    // Every tuple twice, so equal tuples must meet.
                    for _ in 0..2 {
                        rows.0.push(*x);
                        rows.1.push(*y);
                        rows.2.push(*z);
                    }
                }
            }
        }
        let df = df!("a" => rows.0.clone(), "b" => rows.1.clone(), "c" => rows.2.clone()).unwrap();
        let df = df
            .lazy()
            .with_column(col("b").cast(DataType::Date))
            .with_column(key(&names(&["a", "b", "c"])))
            .collect()
            .unwrap();
        let tuples: Vec<_> = (0..rows.0.len())
            .map(|i| (rows.0[i], rows.1[i], rows.2[i]))
            .collect();
        let distinct = one_key_per_tuple(&df, &tuples);
        assert_eq!(
            distinct,
            a.len() * b.len() * c.len(),
            "each tuple its own key"
        );
        unpacks(&df, &["a", "b", "c"]);

        // A µs datetime beside an Int8: 53 bits, ±2^52 µs.
        let edge = 1i64 << 52;
        let t: Vec<Option<i64>> = vec![
            Some(-edge),
            Some(-1),
            Some(0),
            Some(1),
            Some(edge - 1),
            None,
        ];
        let h: Vec<Option<i8>> = vec![Some(-128), Some(0), Some(127), None];
        let (mut tt, mut hh) = (Vec::new(), Vec::new());
        for x in &t {
            for y in &h {
                tt.extend([*x, *x]);
                hh.extend([*y, *y]);
            }
        }
        let df = df!("t" => tt.clone(), "h" => hh.clone()).unwrap();
        let df = df
            .lazy()
            .with_column(col("t").cast(dt(TimeUnit::Microseconds)))
            .with_column(key(&names(&["t", "h"])))
            .collect()
            .unwrap();
        let pairs: Vec<_> = tt.iter().zip(&hh).map(|(x, y)| (*x, *y)).collect();
        assert_eq!(one_key_per_tuple(&df, &pairs), t.len() * h.len());
        unpacks(&df, &["t", "h"]);
    }

    #[test]
    fn a_datetime_beyond_its_range_fails_for_the_engine_to_group_unpacked() {
        let edge = 1i64 << 52;
        for bad in [edge, -edge - 1, i64::MAX, i64::MIN] {
            let df = df!("t" => [Some(0i64), Some(bad)], "h" => [1i8, 2]).unwrap();
            let err = df
                .lazy()
                .with_column(col("t").cast(dt(TimeUnit::Microseconds)))
                .select([key(&names(&["t", "h"]))])
                .collect()
                .unwrap_err();
            assert!(is_wide(&err.to_string()), "{bad}: {err}");
        }
    }

    #[test]
    fn columns_that_do_not_pack_are_refused_not_truncated() {
        let df = df!("a" => [1i8], "n" => [1i64]).unwrap();
        let err = df
            .lazy()
            .select([key(&names(&["a", "n"]))])
            .collect()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("packed group key: columns of types"),
            "{err}"
        );
    }
}
