//! `cargo fuzz run number`: see `callbackd_fuzz::number`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callbackd_fuzz::number(data));
