//! The data mudrock works on, with no behaviour beyond (de)serialising it:
//! the validated [`pipeline`] and the [`records`] a run leaves behind.
//! Everything else depends on this module; it depends on nothing of
//! mudrock's but the operators' configs.

pub mod date_format;
pub mod pipeline;
pub mod records;

pub use records::*;
