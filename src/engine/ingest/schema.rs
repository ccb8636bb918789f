//! A Parquet source's schema from its footer alone, for `plan`.

use polars::prelude::*;

use crate::error::{NodeError, NodeErrorKind};
use crate::store::{ObjectMeta, ObjectStore};

/// The schema of a Parquet object from its footer alone: two ranged reads
/// (the 8-byte tail, then the metadata), never the data.
pub async fn parquet_schema(
    store: &dyn ObjectStore,
    bucket: &str,
    meta: &ObjectMeta,
) -> Result<Schema, NodeError> {
    let bad = |m: String| NodeError::new(NodeErrorKind::Data, format!("{}: {m}", meta.key));
    let size = meta.size;
    if size < 12 {
        return Err(bad("not a Parquet file (too small)".into()));
    }
    let tail = store
        .get_range(bucket, &meta.key, size - 8..size)
        .await
        .map_err(NodeError::storage)?;
    if &tail[4..] != b"PAR1" {
        return Err(bad("not a Parquet file (no PAR1 footer)".into()));
    }
    let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if len + 12 > size {
        return Err(bad("corrupt Parquet footer length".into()));
    }
    let footer = store
        .get_range(bucket, &meta.key, size - 8 - len..size - 8)
        .await
        .map_err(NodeError::storage)?;
    let md = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&footer)
        .map_err(|e| bad(e.to_string()))?;
    let fm = md.file_metadata();
    let arrow = parquet::arrow::parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata())
        .map_err(|e| bad(e.to_string()))?;
    arrow
        .fields()
        .iter()
        .map(|f| polars_type(f.data_type()).map(|dt| Field::new(f.name().as_str().into(), dt)))
        .collect::<Option<Schema>>()
        .ok_or_else(|| bad("a column type is not supported for planning".into()))
}

/// Polars' type for an Arrow type, for the types mudrock handles.
fn polars_type(dt: &arrow_schema::DataType) -> Option<DataType> {
    use arrow_schema::{DataType as A, TimeUnit as U};
    let unit = |u: &U| match u {
        U::Second | U::Millisecond => TimeUnit::Milliseconds,
        U::Microsecond => TimeUnit::Microseconds,
        U::Nanosecond => TimeUnit::Nanoseconds,
    };
    Some(match dt {
        A::Boolean => DataType::Boolean,
        A::Int8 => DataType::Int8,
        A::Int16 => DataType::Int16,
        A::Int32 => DataType::Int32,
        A::Int64 => DataType::Int64,
        A::UInt8 => DataType::UInt8,
        A::UInt16 => DataType::UInt16,
        A::UInt32 => DataType::UInt32,
        A::UInt64 => DataType::UInt64,
        A::Float16 | A::Float32 => DataType::Float32,
        A::Float64 => DataType::Float64,
        A::Utf8 | A::LargeUtf8 | A::Utf8View => DataType::String,
        A::Binary | A::LargeBinary | A::BinaryView | A::FixedSizeBinary(_) => DataType::Binary,
        A::Date32 => DataType::Date,
        A::Date64 => DataType::Datetime(TimeUnit::Milliseconds, None),
        A::Timestamp(u, _) => DataType::Datetime(unit(u), None),
        A::Time32(_) | A::Time64(_) => DataType::Time,
        A::Duration(u) => DataType::Duration(unit(u)),
        A::Null => DataType::Null,
        A::List(f) | A::LargeList(f) | A::ListView(f) | A::LargeListView(f) => {
            DataType::List(Box::new(polars_type(f.data_type())?))
        }
        _ => return None,
    })
}
