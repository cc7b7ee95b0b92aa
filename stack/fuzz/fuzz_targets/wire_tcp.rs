//! TCP parse must not panic (both checksum modes); a parsed segment re-emits and re-parses to the
//! same value, except SACK blocks that do not fit beside the other options.
#![no_main]
use libfuzzer_sys::fuzz_target;
use saps_stack::wire::tcp::{SackBlocks, TcpRepr};
use saps_stack::wire::{ChecksumMode, Ipv4Addr};

const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fuzz_target!(|data: &[u8]| {
    let _ = TcpRepr::parse(data, SRC, DST, ChecksumMode::SOFTWARE);
    if let Ok(repr) = TcpRepr::parse(data, SRC, DST, ChecksumMode::OFFLOAD) {
        assert!(repr.header_len() <= 60);
        let mut buf = vec![0u8; repr.buffer_len()];
        let n = repr.emit(&mut buf, SRC, DST, ChecksumMode::SOFTWARE);
        assert_eq!(n, buf.len());
        let back = TcpRepr::parse(&buf, SRC, DST, ChecksumMode::SOFTWARE).expect("re-parse");
        let mut expected = repr;
        let mut sack = SackBlocks::default();
        for &(l, r) in &repr.options.sack.as_slice()[..repr.options.sack_blocks_emitted()] {
            sack.push(l, r);
        }
        expected.options.sack = sack;
        assert_eq!(back, expected);
    }
});
