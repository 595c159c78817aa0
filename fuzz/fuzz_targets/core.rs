//! `cargo fuzz run core`: a whole core fed datagrams, stream bytes, authenticated requests,
//! answers from registered phones and the passing of time.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_fuzz::core(data));
