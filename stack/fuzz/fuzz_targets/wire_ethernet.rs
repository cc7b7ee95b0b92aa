//! Ethernet parse must not panic; a parsed header re-emits to the same bytes (tag priority aside).
#![no_main]
use libfuzzer_sys::fuzz_target;
use saps_stack::wire::ethernet::EthernetRepr;

fuzz_target!(|data: &[u8]| {
    if let Ok((repr, payload)) = EthernetRepr::parse(data) {
        assert_eq!(repr.header_len() + payload.len(), data.len());
        let mut buf = [0u8; 18];
        let n = repr.emit(&mut buf);
        let (back, _) = EthernetRepr::parse(&buf[..n]).expect("re-parse");
        assert_eq!(back, repr);
    }
});
