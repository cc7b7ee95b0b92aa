//! ICMP parse and the quoted-header helper must not panic; a parsed message round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use saps_stack::wire::icmpv4::{quoted_ipv4, Icmpv4Repr};
use saps_stack::wire::ChecksumMode;

fuzz_target!(|data: &[u8]| {
    let _ = Icmpv4Repr::parse(data, ChecksumMode::SOFTWARE);
    if let Some(q) = quoted_ipv4(data) {
        assert_eq!(q.payload.len(), 8);
    }
    if let Ok(repr) = Icmpv4Repr::parse(data, ChecksumMode::OFFLOAD) {
        if let Icmpv4Repr::DstUnreachable { original, .. }
        | Icmpv4Repr::TimeExceeded { original, .. } = repr
        {
            let _ = quoted_ipv4(original);
        }
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf, ChecksumMode::SOFTWARE);
        assert_eq!(Icmpv4Repr::parse(&buf, ChecksumMode::SOFTWARE), Ok(repr));
    }
});
