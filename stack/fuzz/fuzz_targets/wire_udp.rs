//! UDP parse must not panic (both checksum modes); a parsed datagram round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use saps_stack::wire::udp::{UdpRepr, HEADER_LEN};
use saps_stack::wire::{ChecksumMode, Ipv4Addr};

const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fuzz_target!(|data: &[u8]| {
    let _ = UdpRepr::parse(data, SRC, DST, ChecksumMode::SOFTWARE);
    if let Ok((repr, payload)) = UdpRepr::parse(data, SRC, DST, ChecksumMode::OFFLOAD) {
        let mut buf = vec![0u8; HEADER_LEN + payload.len()];
        buf[HEADER_LEN..].copy_from_slice(payload);
        repr.emit(&mut buf, payload.len(), SRC, DST, ChecksumMode::SOFTWARE);
        let (back, p) = UdpRepr::parse(&buf, SRC, DST, ChecksumMode::SOFTWARE).expect("re-parse");
        assert_eq!(back, repr);
        assert_eq!(p, payload);
    }
});
