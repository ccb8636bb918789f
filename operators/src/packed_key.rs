//! Several small integer group keys packed into one Int64 for the
//! aggregate's group-by. Polars groups a single primitive key in a flat
//! hash table and several keys through its row encoding (each row's keys
//! serialised to bytes, hashed and compared with `memcmp`); a `week, hour`
//! group-by spent most of its time there. Each key contributes its bits
//! and a validity bit, so two rows get the same packed key exactly when
//! every key is equal (nulls equal to nulls, as in a group-by): the groups
//! are the same, and the keys' values come back from the group as `min`s.

use polars::prelude::*;

/// The packed key's column, under the aggregate's intermediate prefix so
/// that an input column by that name turns the split (and this) off.
pub const KEY: &str = "__mudrock_part_key";

/// The bits a key of type `dt` takes (its validity bit apart): integers of
/// 32 bits or fewer and dates (days, 32 bits).
fn width(dt: &DataType) -> Option<u32> {
    match dt {
        DataType::Int8 | DataType::UInt8 => Some(8),
        DataType::Int16 | DataType::UInt16 => Some(16),
        DataType::Int32 | DataType::UInt32 | DataType::Date => Some(32),
        _ => None,
    }
}

/// Whether group keys `by` of `schema` pack into one Int64: two keys or
/// more, each of a type [`width`] knows, 63 bits or fewer with a validity
/// bit each.
pub fn packs(schema: &Schema, by: &[String]) -> bool {
    if by.len() < 2 {
        return false;
    }
    let mut bits = 0;
    for b in by {
        match schema.get(b.as_str()).and_then(width) {
            Some(w) => bits += w + 1,
            None => return false,
        }
    }
    bits <= 63
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

/// One batch: for each column in turn, the key shifts left by the column's
/// width plus one and takes its validity bit and its value's low bits (0
/// for a null).
fn pack(cols: &mut [Column]) -> PolarsResult<Series> {
    let n = cols.first().map_or(0, |c| c.len());
    let mut keys = vec![0u64; n];
    for c in cols.iter() {
        let Some(w) = width(c.dtype()) else {
            polars_bail!(ComputeError: "packed group key: column {} is {}", c.name(), c.dtype());
        };
        polars_ensure!(c.len() == n, ComputeError: "packed group key: columns of different lengths");
        let values = c.to_physical_repr().cast(&DataType::Int64)?;
        let values = values.i64()?.rechunk();
        let arr = values.downcast_as_array();
        let mask = (1u64 << w) - 1;
        let valid = 1u64 << w;
        match arr.validity() {
            None => {
                for (k, &v) in keys.iter_mut().zip(arr.values().iter()) {
                    *k = (*k << (w + 1)) | valid | (v as u64 & mask);
                }
            }
            Some(bits) => {
                for ((k, &v), ok) in keys.iter_mut().zip(arr.values().iter()).zip(bits.iter()) {
                    let part = if ok { valid | (v as u64 & mask) } else { 0 };
                    *k = (*k << (w + 1)) | part;
                }
            }
        }
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

    #[test]
    fn which_keys_pack() {
        let s = schema(&[
            ("week", DataType::Date),
            ("hour", DataType::Int8),
            ("d2", DataType::Date),
            ("n", DataType::Int64),
            ("s", DataType::String),
            ("u", DataType::UInt16),
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
        assert!(!packs(&s, &names(&["week", "n"])), "64-bit keys do not");
        assert!(!packs(&s, &names(&["week", "s"])));
        assert!(!packs(&s, &names(&["week", "missing"])));
    }

    /// Equal packed keys exactly when the key tuples are equal (null equal
    /// to null), over the ends of every type's range, negatives and nulls.
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
        let keys: Vec<i64> = df
            .column(KEY)
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let mut seen: HashMap<i64, (Option<i8>, Option<i32>, Option<u16>)> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            let t = (rows.0[i], rows.1[i], rows.2[i]);
            assert_eq!(*seen.entry(*k).or_insert(t), t, "key {k} packs two tuples");
        }
        assert_eq!(
            seen.len(),
            a.len() * b.len() * c.len(),
            "each tuple its own key"
        );
    }

    #[test]
    fn a_wide_column_is_refused_not_truncated() {
        let df = df!("a" => [1i8], "n" => [1i64]).unwrap();
        let err = df
            .lazy()
            .select([key(&names(&["a", "n"]))])
            .collect()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("packed group key: column n is i64"),
            "{err}"
        );
    }
}
