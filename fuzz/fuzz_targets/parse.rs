//! `cargo fuzz run parse`: the parser, every typed view of a message and the stream framing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_fuzz::parse(data));
