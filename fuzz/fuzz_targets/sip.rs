//! `cargo fuzz run sip`: see `callbackd_fuzz::sip_datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callbackd_fuzz::sip_datagram(data));
