//! `cargo fuzz run config`: see `callbackd_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callbackd_fuzz::config(data));
