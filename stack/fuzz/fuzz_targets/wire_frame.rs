//! A whole frame through the layers as the interface would walk it: Ethernet, then ARP or IPv4,
//! then ICMP, UDP or TCP. Nothing may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use saps_stack::wire::arp::ArpRepr;
use saps_stack::wire::ethernet::{EtherType, EthernetRepr};
use saps_stack::wire::icmpv4::{quoted_ipv4, Icmpv4Repr};
use saps_stack::wire::ipv4::{ip_protocol, Ipv4Repr};
use saps_stack::wire::tcp::TcpRepr;
use saps_stack::wire::udp::UdpRepr;
use saps_stack::wire::ChecksumMode;

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    // Let the fuzzer pick the checksum mode so both paths get coverage.
    let mode = if first & 1 == 0 {
        ChecksumMode::OFFLOAD
    } else {
        ChecksumMode::SOFTWARE
    };
    let Ok((eth, payload)) = EthernetRepr::parse(data) else {
        return;
    };
    match eth.ethertype {
        EtherType::ARP => {
            let _ = ArpRepr::parse(payload);
        }
        EtherType::IPV4 => {
            let Ok((ip, payload)) = Ipv4Repr::parse(payload, mode) else {
                return;
            };
            if ip.is_fragment() {
                return;
            }
            match ip.protocol {
                ip_protocol::ICMP => {
                    if let Ok(Icmpv4Repr::DstUnreachable { original, .. }) =
                        Icmpv4Repr::parse(payload, mode)
                    {
                        let _ = quoted_ipv4(original);
                    }
                }
                ip_protocol::UDP => {
                    let _ = UdpRepr::parse(payload, ip.src, ip.dst, mode);
                }
                ip_protocol::TCP => {
                    let _ = TcpRepr::parse(payload, ip.src, ip.dst, mode);
                }
                _ => {}
            }
        }
        _ => {}
    }
});
