//! Fuzz the frame and message decoders: `cargo fuzz run --sanitizer none decode`.
#![no_main]

mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::check(data));
