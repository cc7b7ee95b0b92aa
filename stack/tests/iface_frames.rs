//! The interface driven frame by frame, as a NIC would: ARP, ICMP, UDP, TCP demultiplexing, drops
//! with their reasons, and the global out-of-order budget.

use std::net::Ipv4Addr;

use saps_stack::iface::{Event, Interface, InterfaceConfig, Ipv4Cidr};
use saps_stack::stats::DropReason;
use saps_stack::tcp::SeqNumber;
use saps_stack::wire::arp::{ArpOperation, ArpRepr};
use saps_stack::wire::ethernet::{EtherType, EthernetAddress, EthernetRepr};
use saps_stack::wire::icmpv4::Icmpv4Repr;
use saps_stack::wire::ipv4::{self, Ipv4Repr};
use saps_stack::wire::tcp::{TcpFlags, TcpOptions, TcpRepr};
use saps_stack::wire::udp::UdpRepr;
use saps_stack::wire::ChecksumMode;
use saps_stack::Instant;

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const T0: Instant = Instant::ZERO;

fn iface() -> Interface {
    let cfg = InterfaceConfig::new(OUR_MAC, Ipv4Cidr::new(OUR_IP, 24));
    let mut i = Interface::new(cfg, T0);
    drain(&mut i); // the gratuitous ARP
    i
}

fn drain(i: &mut Interface) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1600];
    while let Some(n) = i.poll_transmit(T0, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + payload.len()];
    EthernetRepr {
        dst: OUR_MAC,
        src: PEER_MAC,
        ethertype,
        vlan: None,
    }
    .emit(&mut f);
    f[14..].copy_from_slice(payload);
    f
}

fn ip(protocol: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; ipv4::HEADER_LEN + l4.len()];
    Ipv4Repr {
        src: PEER_IP,
        dst: OUR_IP,
        protocol,
        ttl: 64,
        ident: 1,
        dont_fragment: true,
        more_fragments: false,
        fragment_offset: 0,
        dscp_ecn: 0,
        payload_len: l4.len(),
    }
    .emit(&mut p, ChecksumMode::SOFTWARE);
    p[ipv4::HEADER_LEN..].copy_from_slice(l4);
    eth(EtherType::IPV4, &p)
}

fn tcp(seg: &TcpRepr) -> Vec<u8> {
    let mut b = vec![0u8; seg.buffer_len()];
    seg.emit(&mut b, PEER_IP, OUR_IP, ChecksumMode::SOFTWARE);
    ip(6, &b)
}

fn seg(port: u16, seq: u32, ack: u32, flags: TcpFlags, payload: &[u8]) -> TcpRepr<'_> {
    TcpRepr {
        src_port: 40000,
        dst_port: port,
        seq: SeqNumber(seq),
        ack: SeqNumber(ack),
        flags,
        window: 65535,
        urgent: 0,
        options: TcpOptions::default(),
        payload,
    }
}

/// Parse a frame we sent down to its TCP segment.
fn parse_tcp(frame: &[u8]) -> TcpRepr<'_> {
    let (e, p) = EthernetRepr::parse(frame).unwrap();
    assert_eq!(e.dst, PEER_MAC);
    let (ip, l4) = Ipv4Repr::parse(p, ChecksumMode::SOFTWARE).unwrap();
    assert_eq!(ip.protocol, 6);
    TcpRepr::parse(l4, ip.src, ip.dst, ChecksumMode::SOFTWARE).unwrap()
}

#[test]
fn gratuitous_arp_is_sent_on_start() {
    let cfg = InterfaceConfig::new(OUR_MAC, Ipv4Cidr::new(OUR_IP, 24));
    let mut i = Interface::new(cfg, T0);
    let out = drain(&mut i);
    assert_eq!(out.len(), 1);
    let (e, p) = EthernetRepr::parse(&out[0]).unwrap();
    assert!(e.dst.is_broadcast());
    let arp = ArpRepr::parse(p).unwrap();
    assert_eq!((arp.sender_ip, arp.target_ip), (OUR_IP, OUR_IP));
}

#[test]
fn arp_request_for_us_is_answered_and_others_are_not() {
    let mut i = iface();
    let mut req = [0u8; 28];
    let mut repr = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: EthernetAddress([0; 6]),
        target_ip: OUR_IP,
    };
    repr.emit(&mut req);
    i.handle_frame(T0, &eth(EtherType::ARP, &req));
    let out = drain(&mut i);
    assert_eq!(out.len(), 1);
    let arp = ArpRepr::parse(&out[0][14..42]).unwrap();
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!((arp.sender_hw, arp.sender_ip), (OUR_MAC, OUR_IP));
    assert_eq!(
        out[0].len(),
        60,
        "ARP frames are padded to the Ethernet minimum"
    );
    repr.target_ip = Ipv4Addr::new(10, 0, 0, 99);
    repr.emit(&mut req);
    i.handle_frame(T0, &eth(EtherType::ARP, &req));
    assert!(drain(&mut i).is_empty());
}

#[test]
fn ping_is_answered_with_the_same_data() {
    let mut i = iface();
    let data = b"saps ping payload";
    let req = Icmpv4Repr::EchoRequest {
        ident: 7,
        seq_no: 3,
        data,
    };
    let mut b = vec![0u8; req.buffer_len()];
    req.emit(&mut b, ChecksumMode::SOFTWARE);
    i.handle_frame(T0, &ip(1, &b));
    let out = drain(&mut i);
    assert_eq!(out.len(), 1, "the peer's MAC was gleaned, no ARP needed");
    let (_, p) = EthernetRepr::parse(&out[0]).unwrap();
    let (iph, l4) = Ipv4Repr::parse(p, ChecksumMode::SOFTWARE).unwrap();
    assert_eq!((iph.src, iph.dst), (OUR_IP, PEER_IP));
    match Icmpv4Repr::parse(l4, ChecksumMode::SOFTWARE).unwrap() {
        Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data: d,
        } => assert_eq!((ident, seq_no, d), (7, 3, &data[..])),
        other => panic!("expected an echo reply, got {other:?}"),
    }
}

#[test]
fn udp_to_a_closed_port_gets_port_unreachable_and_open_port_delivers() {
    let mut i = iface();
    let mut b = vec![0u8; 8 + 5];
    b[8..].copy_from_slice(b"hello");
    UdpRepr {
        src_port: 5555,
        dst_port: 9999,
    }
    .emit(&mut b, 5, PEER_IP, OUR_IP, ChecksumMode::SOFTWARE);
    i.handle_frame(T0, &ip(17, &b));
    assert_eq!(i.stats().drops_for(DropReason::NoUdpSocket), 1);
    let out = drain(&mut i);
    assert_eq!(out.len(), 1);
    let (_, p) = EthernetRepr::parse(&out[0]).unwrap();
    let (_, l4) = Ipv4Repr::parse(p, ChecksumMode::SOFTWARE).unwrap();
    assert!(matches!(
        Icmpv4Repr::parse(l4, ChecksumMode::SOFTWARE).unwrap(),
        Icmpv4Repr::DstUnreachable { code: 3, .. }
    ));

    let h = i.udp_bind(9999).unwrap();
    i.handle_frame(T0, &ip(17, &b));
    assert_eq!(i.poll_event(), Some(Event::UdpReadable(h)));
    let mut got = [0u8; 16];
    let (meta, n) = i.udp_recv_from(h, &mut got).unwrap().unwrap();
    assert_eq!((&got[..n], meta.src.port()), (&b"hello"[..], 5555));
}

#[test]
fn tcp_to_a_closed_port_is_reset_and_syn_to_a_listener_is_answered() {
    let mut i = iface();
    i.handle_frame(T0, &tcp(&seg(81, 1000, 0, TcpFlags::SYN, &[])));
    let out = drain(&mut i);
    assert_eq!(out.len(), 1);
    let rst = parse_tcp(&out[0]);
    assert!(rst.flags.rst() && rst.flags.ack());
    assert_eq!(rst.ack, SeqNumber(1001));
    assert_eq!(i.stats().drops_for(DropReason::NoListener), 1);

    let l = i.tcp_listen(80, None).unwrap();
    i.handle_frame(T0, &tcp(&seg(80, 5000, 0, TcpFlags::SYN, &[])));
    let out = drain(&mut i);
    let synack = parse_tcp(&out[0]);
    assert!(synack.flags.syn() && synack.flags.ack());
    assert_eq!(synack.ack, SeqNumber(5001));
    // Completing the handshake puts the connection in the accept queue.
    let ack = synack.seq + 1u32;
    i.handle_frame(T0, &tcp(&seg(80, 5001, ack.0, TcpFlags::ACK, &[])));
    assert_eq!(i.poll_event(), Some(Event::Acceptable(l)));
    let h = i.tcp_accept(l).expect("an established connection");
    i.handle_frame(
        T0,
        &tcp(&seg(
            80,
            5001,
            ack.0,
            TcpFlags::ACK | TcpFlags::PSH,
            b"data",
        )),
    );
    let mut buf = [0u8; 8];
    assert_eq!(i.tcp_recv(T0, h, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"data");
}

#[test]
fn bad_checksums_fragments_and_foreign_frames_are_counted_and_dropped() {
    let mut i = iface();
    let mut f = tcp(&seg(80, 1, 0, TcpFlags::SYN, &[]));
    let last = f.len() - 1;
    f[last - 4] ^= 0xff; // corrupt the TCP header (checksum fails)
    i.handle_frame(T0, &f);
    assert_eq!(i.stats().drops_for(DropReason::BadChecksum), 1);

    let mut frag = ip(17, &[0u8; 16]);
    // Set "more fragments" and fix the header checksum.
    frag[14 + 6] |= 0x20;
    frag[14 + 10] = 0;
    frag[14 + 11] = 0;
    let c = saps_stack::wire::checksum::checksum(&frag[14..34]);
    frag[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    i.handle_frame(T0, &frag);
    assert_eq!(i.stats().drops_for(DropReason::Fragment), 1);

    let mut foreign = ip(17, &[0u8; 16]);
    foreign[0..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
    i.handle_frame(T0, &foreign);
    assert_eq!(i.stats().drops_for(DropReason::NotForUs), 1);

    i.handle_frame(T0, &[0u8; 5]);
    assert_eq!(i.stats().drops_for(DropReason::Malformed), 1);
    assert!(drain(&mut i).is_empty());
}

#[test]
fn out_of_order_data_beyond_the_global_budget_is_dropped() {
    let mut cfg = InterfaceConfig::new(OUR_MAC, Ipv4Cidr::new(OUR_IP, 24));
    cfg.ooo_total_budget = 3000;
    let mut i = Interface::new(cfg, T0);
    drain(&mut i);
    let l = i.tcp_listen(80, None).unwrap();
    let mut handles = Vec::new();
    for (n, src_port) in [40001u16, 40002].into_iter().enumerate() {
        let mut s = seg(80, 100, 0, TcpFlags::SYN, &[]);
        s.src_port = src_port;
        i.handle_frame(T0, &tcp(&s));
        let out = drain(&mut i);
        let synack = out
            .iter()
            .map(|f| parse_tcp(f))
            .find(|t| t.flags.syn() && t.dst_port == src_port)
            .expect("a SYN-ACK")
            .seq;
        let mut a = seg(80, 101, (synack + 1u32).0, TcpFlags::ACK, &[]);
        a.src_port = src_port;
        i.handle_frame(T0, &tcp(&a));
        // Out of order: 1000 bytes starting 1000 bytes ahead, twice per connection.
        for k in 0..2u32 {
            let payload = [n as u8; 1000];
            let mut d = seg(
                80,
                1101 + k * 2000,
                (synack + 1u32).0,
                TcpFlags::ACK,
                &payload,
            );
            d.src_port = src_port;
            i.handle_frame(T0, &tcp(&d));
        }
        handles.push(i.tcp_accept(l));
    }
    assert!(
        handles.iter().all(|h| h.is_some()),
        "both handshakes completed"
    );
    assert!(
        i.tcp_ooo_bytes() <= 3000,
        "global budget exceeded: {}",
        i.tcp_ooo_bytes()
    );
    assert!(i.stats().drops_for(DropReason::NoBuffer) >= 1);
}

#[test]
fn unanswered_arp_is_retried_on_timeouts_then_its_frames_are_dropped() {
    let mut i = iface();
    let h = i.udp_bind(5000).unwrap();
    let dst = std::net::SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 50), 7);
    i.udp_send_to(T0, h, dst, None, b"x").unwrap();
    let arp_requests = |frames: &[Vec<u8>]| {
        frames
            .iter()
            .filter(|f| EthernetRepr::parse(f).unwrap().0.ethertype == EtherType::ARP)
            .count()
    };
    assert_eq!(arp_requests(&drain(&mut i)), 1, "first ARP request");
    let mut requests = 1;
    let mut t = T0;
    for _ in 0..10 {
        let Some(deadline) = i.poll_timeout() else {
            break;
        };
        t = deadline;
        i.handle_timeouts(t, 64);
        let mut buf = vec![0u8; 1600];
        while let Some(n) = i.poll_transmit(t, &mut buf) {
            assert_eq!(
                EthernetRepr::parse(&buf[..n]).unwrap().0.ethertype,
                EtherType::ARP
            );
            requests += 1;
        }
    }
    assert_eq!(
        requests, 3,
        "three requests in all (ArpConfig::max_retries)"
    );
    assert!(t >= Instant::from_millis(3000));
    assert_eq!(i.poll_timeout(), None, "nothing left waiting");
    assert_eq!(
        i.stats().drops_for(DropReason::NoBuffer),
        1,
        "the held datagram was dropped"
    );
}

#[test]
fn a_poisoned_arp_entry_is_re_resolved_when_the_connection_times_out() {
    const FORGED_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x66]);
    let mut i = iface();
    let l = i.tcp_listen(80, None).unwrap();
    // Handshake: the SYN's source MAC is gleaned, so PEER_IP resolves to PEER_MAC.
    i.handle_frame(T0, &tcp(&seg(80, 5000, 0, TcpFlags::SYN, &[])));
    let synack = parse_tcp(&drain(&mut i)[0]).seq;
    let ack = (synack + 1u32).0;
    i.handle_frame(T0, &tcp(&seg(80, 5001, ack, TcpFlags::ACK, &[])));
    assert_eq!(i.poll_event(), Some(Event::Acceptable(l)));
    let h = i.tcp_accept(l).unwrap();
    // One forged ARP reply (unsolicited, but for an address we have: RFC 826 merges it).
    let mut arp = [0u8; 28];
    ArpRepr {
        operation: ArpOperation::Reply,
        sender_hw: FORGED_MAC,
        sender_ip: PEER_IP,
        target_hw: OUR_MAC,
        target_ip: OUR_IP,
    }
    .emit(&mut arp);
    i.handle_frame(T0, &eth(EtherType::ARP, &arp));
    // Data now goes to the forged MAC, and nobody acknowledges it.
    assert_eq!(i.tcp_send(T0, h, b"hello").unwrap(), 5);
    let mut buf = vec![0u8; 1600];
    let n = i.poll_transmit(T0, &mut buf).expect("the data segment");
    assert_eq!(EthernetRepr::parse(&buf[..n]).unwrap().0.dst, FORGED_MAC);
    assert_eq!(i.poll_transmit(T0, &mut buf), None);
    // A tail loss probe may still follow the forged MAC; the retransmission timeout forgets the
    // entry, so the retransmission waits for a fresh ARP request instead.
    let mut t = T0;
    let mut request = None;
    for _ in 0..6 {
        t = i
            .poll_timeout()
            .expect("a timer runs while data is unacknowledged");
        i.handle_timeouts(t, 64);
        let after_rto = i.stats().tcp.rto_expiries > 0;
        while let Some(n) = i.poll_transmit(t, &mut buf) {
            let (e, p) = EthernetRepr::parse(&buf[..n]).unwrap();
            if after_rto {
                assert_ne!(e.dst, FORGED_MAC, "nothing to the forged MAC after the RTO");
            }
            if e.ethertype == EtherType::ARP {
                request = Some(ArpRepr::parse(p).unwrap());
            }
        }
        if request.is_some() {
            break;
        }
    }
    let request = request.expect("an ARP request for the peer after the RTO");
    assert_eq!(request.operation, ArpOperation::Request);
    assert_eq!(request.target_ip, PEER_IP);
    assert!(t < Instant::from_millis(3_000), "within the first RTOs");
    assert_eq!(i.stats().arp_reprobes, 1);
    assert_eq!(i.stats().tcp.rto_expiries, 1);
    // The real peer answers: the held retransmission goes to it.
    let mut reply = [0u8; 28];
    ArpRepr {
        operation: ArpOperation::Reply,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: OUR_MAC,
        target_ip: OUR_IP,
    }
    .emit(&mut reply);
    i.handle_frame(t, &eth(EtherType::ARP, &reply));
    let n = i
        .poll_transmit(t, &mut buf)
        .expect("the held retransmission");
    let rtx = parse_tcp(&buf[..n]); // asserts the destination is PEER_MAC
    assert_eq!(rtx.payload, b"hello");
}
