//! The whole receive path: an Interface fed raw and crafted frames between application calls.
//! See `saps_stack_fuzz::iface_frames` for the input format and the invariants checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    saps_stack_fuzz::iface_frames::run(data);
});
