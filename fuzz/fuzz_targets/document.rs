//! libFuzzer entry point for the `document` target (see ../targets.rs).
#![no_main]

#[path = "../targets.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::document(data));
