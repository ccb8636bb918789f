//! The dtype names of the pipeline format and their Polars types.

use polars::prelude::{DataType, TimeUnit};

/// Every dtype name the format accepts, in the spec's order.
pub const NAMES: &[&str] = &[
    "boolean", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
    "float64", "string", "date", "datetime", "time", "duration",
];

/// The Polars type for a format dtype name.
pub fn parse(name: &str) -> Option<DataType> {
    Some(match name {
        "boolean" => DataType::Boolean,
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "string" => DataType::String,
        "date" => DataType::Date,
        "datetime" => DataType::Datetime(TimeUnit::Microseconds, None),
        "time" => DataType::Time,
        "duration" => DataType::Duration(TimeUnit::Microseconds),
        _ => return None,
    })
}

/// The format's name for a Polars type (what `schema.json` shows); types the
/// format has no name for are shown as Polars writes them.
pub fn name(dtype: &DataType) -> String {
    match dtype {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::String => "string".into(),
        DataType::Date => "date".into(),
        DataType::Datetime(..) => "datetime".into(),
        DataType::Time => "time".into(),
        DataType::Duration(_) => "duration".into(),
        other => other.to_string(),
    }
}

/// Deserialises a dtype name, failing with the list of valid names.
pub(crate) fn check(field: &str, name: &str) -> Result<DataType, crate::OpError> {
    parse(name).ok_or_else(|| {
        let hint = crate::did_you_mean(name, NAMES.iter().copied())
            .unwrap_or_else(|| format!("one of: {}", NAMES.join(", ")));
        crate::OpError::config(field, format!("unknown dtype \"{name}\" — {hint}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in NAMES {
            assert_eq!(name(&parse(n).unwrap()), *n);
        }
        assert!(parse("int").is_none());
    }
}
