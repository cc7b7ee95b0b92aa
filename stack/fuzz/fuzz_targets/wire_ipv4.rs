//! IPv4 parse must not panic (both checksum modes); a parsed header round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use saps_stack::wire::ipv4::{Ipv4Repr, HEADER_LEN};
use saps_stack::wire::ChecksumMode;

fuzz_target!(|data: &[u8]| {
    let _ = Ipv4Repr::parse(data, ChecksumMode::SOFTWARE);
    if let Ok((repr, payload)) = Ipv4Repr::parse(data, ChecksumMode::OFFLOAD) {
        assert_eq!(payload.len(), repr.payload_len);
        let mut buf = vec![0u8; HEADER_LEN + payload.len()];
        repr.emit(&mut buf, ChecksumMode::SOFTWARE);
        buf[HEADER_LEN..].copy_from_slice(payload);
        let (back, p) = Ipv4Repr::parse(&buf, ChecksumMode::SOFTWARE).expect("re-parse");
        assert_eq!(back, repr);
        assert_eq!(p, payload);
    }
});
