//! The TCP input path: one Connection driven by crafted segments, application calls and time.
//! See `saps_stack_fuzz::tcp_connection` for the input format and the invariants checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    saps_stack_fuzz::tcp_connection::run(data);
});
