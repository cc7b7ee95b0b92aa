//! ARP parse must not panic; a parsed packet round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use saps_stack::wire::arp::{ArpRepr, BUFFER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = ArpRepr::parse(data) {
        let mut buf = [0u8; BUFFER_LEN];
        repr.emit(&mut buf);
        assert_eq!(ArpRepr::parse(&buf), Ok(repr));
    }
});
