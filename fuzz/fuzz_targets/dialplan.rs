//! `cargo fuzz run dialplan`: see `callbackd_fuzz::dialplan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callbackd_fuzz::dialplan(data));
