//! Writes the seed corpora to `seeds/<target>/` (committed; re-run after changing an input
//! format): `cargo run --example gen_seeds` from `stack/fuzz`.
//!
//! Seeds are valid packets for the wire targets and scripted conversations for the structured
//! targets (handshakes, data both ways, loss and SACK, close sequences), so fuzzing starts deep
//! in the state machines instead of spending its first minutes discovering a handshake.

use std::fs;
use std::path::Path;

use saps_stack::wire::arp::{ArpOperation, ArpRepr};
use saps_stack::wire::ethernet::{EtherType, EthernetAddress, EthernetRepr};
use saps_stack::wire::icmpv4::Icmpv4Repr;
use saps_stack::wire::ipv4::{ip_protocol, Ipv4Repr};
use saps_stack::wire::tcp::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};
use saps_stack::wire::udp::UdpRepr;
use saps_stack::wire::{ChecksumMode, Ipv4Addr};
use saps_stack_fuzz::iface_frames as ifr;
use saps_stack_fuzz::tcp_connection::{self as tc, Op, Seg, Setup};

const SW: ChecksumMode = ChecksumMode::SOFTWARE;
/// The addresses the wire_tcp / wire_udp targets use for the pseudo-header.
const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name), data).unwrap();
}

fn tcp_segment(flags: TcpFlags, options: TcpOptions, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: saps_stack::tcp::SeqNumber(1000),
        ack: saps_stack::tcp::SeqNumber(5001),
        flags,
        window: 65535,
        urgent: 0,
        options,
        payload,
    };
    let mut b = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut b, SRC, DST, SW);
    b.truncate(n);
    b
}

fn ipv4(protocol: u8, l4: &[u8]) -> Vec<u8> {
    let ip = Ipv4Repr {
        src: SRC,
        dst: DST,
        protocol,
        ttl: 64,
        ident: 1,
        dont_fragment: true,
        more_fragments: false,
        fragment_offset: 0,
        dscp_ecn: 0,
        payload_len: l4.len(),
    };
    let mut b = vec![0u8; 20 + l4.len()];
    ip.emit(&mut b, SW);
    b[20..].copy_from_slice(l4);
    b
}

fn ethernet(ethertype: u16, payload: &[u8], vlan: Option<u16>) -> Vec<u8> {
    let eth = EthernetRepr {
        dst: EthernetAddress([0x02, 0, 0, 0, 0, 1]),
        src: EthernetAddress([0x02, 0, 0, 0, 0, 0x11]),
        ethertype,
        vlan,
    };
    let mut b = vec![0u8; eth.header_len() + payload.len()];
    let hl = eth.emit(&mut b);
    b[hl..].copy_from_slice(payload);
    b
}

fn wire_seeds(dir: &Path) {
    let full_opts = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((12345, 0)),
        sack: SackBlocks::default(),
    };
    let mut sack = SackBlocks::default();
    sack.push(
        saps_stack::tcp::SeqNumber(6000),
        saps_stack::tcp::SeqNumber(7000),
    );
    sack.push(
        saps_stack::tcp::SeqNumber(8000),
        saps_stack::tcp::SeqNumber(9000),
    );
    let sack_opts = TcpOptions {
        timestamps: Some((1, 2)),
        sack,
        ..TcpOptions::default()
    };
    let syn = tcp_segment(TcpFlags::SYN, full_opts, &[]);
    let data = tcp_segment(
        TcpFlags::ACK | TcpFlags::PSH,
        sack_opts,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let fin = tcp_segment(TcpFlags::ACK | TcpFlags::FIN, TcpOptions::default(), &[]);
    for (name, seg) in [("syn", &syn), ("data_sack", &data), ("fin", &fin)] {
        write(dir, "wire_tcp", name, seg);
    }

    let udp_repr = UdpRepr {
        src_port: 5353,
        dst_port: 53,
    };
    let mut udp = vec![0u8; udp_repr.buffer_len(5)];
    udp[8..].copy_from_slice(b"hello");
    udp_repr.emit(&mut udp, 5, SRC, DST, SW);
    write(dir, "wire_udp", "hello", &udp);

    let echo = Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 2,
        data: b"ping",
    };
    let mut icmp_echo = vec![0u8; echo.buffer_len()];
    echo.emit(&mut icmp_echo, SW);
    let quoted = ipv4(ip_protocol::TCP, &syn[..20]);
    let unreach = Icmpv4Repr::DstUnreachable {
        code: 4,
        next_hop_mtu: 1280,
        original: &quoted[..28],
    };
    let mut icmp_unreach = vec![0u8; unreach.buffer_len()];
    unreach.emit(&mut icmp_unreach, SW);
    write(dir, "wire_icmpv4", "echo", &icmp_echo);
    write(dir, "wire_icmpv4", "frag_needed", &icmp_unreach);

    let arp_repr = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: EthernetAddress([0x02, 0, 0, 0, 0, 0x11]),
        sender_ip: SRC,
        target_hw: EthernetAddress([0; 6]),
        target_ip: DST,
    };
    let mut arp = vec![0u8; arp_repr.buffer_len()];
    arp_repr.emit(&mut arp);
    write(dir, "wire_arp", "request", &arp);

    let packets = [
        ("tcp_syn", ipv4(ip_protocol::TCP, &syn)),
        ("tcp_data", ipv4(ip_protocol::TCP, &data)),
        ("udp", ipv4(ip_protocol::UDP, &udp)),
        ("icmp_echo", ipv4(ip_protocol::ICMP, &icmp_echo)),
        ("icmp_unreach", ipv4(ip_protocol::ICMP, &icmp_unreach)),
    ];
    for (name, p) in &packets {
        write(dir, "wire_ipv4", name, p);
        let frame = ethernet(EtherType::IPV4, p, None);
        write(dir, "wire_ethernet", name, &frame);
        let mut sw = vec![1u8];
        sw.extend_from_slice(&frame);
        write(dir, "wire_frame", name, &sw);
    }
    let arp_frame = ethernet(EtherType::ARP, &arp, None);
    write(dir, "wire_ethernet", "arp", &arp_frame);
    write(
        dir,
        "wire_ethernet",
        "vlan",
        &ethernet(EtherType::IPV4, &packets[2].1, Some(7)),
    );
    let mut sw = vec![0u8];
    sw.extend_from_slice(&arp_frame);
    write(dir, "wire_frame", "arp", &sw);
}

fn seg(flags: TcpFlags, len: u16) -> Op {
    Op::Segment(Seg::in_order(flags, len))
}

fn tcp_seeds(dir: &Path) {
    let base = Setup {
        cfg_bits: 0x1f, // timestamps, SACK, window scale, nodelay, TLP
        mss: 1460,
        iss: 5000,
        peer_iss: 1000,
        start_ms: 10_000,
        open: 3, // passive + handshake
        peer_opts: 0x0f,
        peer_mss: 1460,
        peer_ws: 7,
        peer_window: 65535,
    };
    let ack = TcpFlags::ACK;
    let data = TcpFlags::ACK | TcpFlags::PSH;
    let fin = TcpFlags::ACK | TcpFlags::FIN;
    let drain = Op::Drain(4);

    // Request/response and an orderly close initiated by the peer.
    let http = [
        seg(data, 300),
        drain,
        Op::Recv(4096),
        Op::Send(5000),
        drain,
        seg(ack, 0),
        drain,
        seg(fin, 0),
        drain,
        Op::Recv(4096),
        Op::Close,
        drain,
        seg(ack, 0),
        Op::Fire,
    ];
    write(
        dir,
        "tcp_connection",
        "passive_http",
        &tc::encode(&base, &http),
    );

    // Active open; bulk send with loss: duplicate ACKs with SACK blocks, then an RTO.
    let active = Setup { open: 1, ..base };
    let mut dup = Seg::in_order(ack, 0);
    dup.ack_mode = 3; // partial ack
    dup.ack = 1460;
    let mut dup_sack = dup;
    dup_sack.opts = 8 | (1 << 5);
    dup_sack.sack = [(2920, 1460), (0, 0), (0, 0), (0, 0)];
    let bulk = [
        Op::Send(60_000),
        drain,
        Op::Segment(dup),
        Op::Segment(dup_sack),
        Op::Segment(dup_sack),
        Op::Segment(dup_sack),
        drain,
        Op::Advance(300_000),
        drain,
        Op::Fire,
        drain,
        seg(ack, 0),
        drain,
        Op::Shutdown,
        drain,
        seg(fin, 0),
        drain,
        Op::Fire,
    ];
    write(
        dir,
        "tcp_connection",
        "active_bulk_loss",
        &tc::encode(&active, &bulk),
    );

    // Out-of-order data, then the hole filled; a duplicate and a stale retransmission.
    let mut ahead = Seg::in_order(data, 500);
    ahead.seq_mode = 0;
    ahead.seq = 1000;
    let mut old = Seg::in_order(data, 200);
    old.seq_mode = 3;
    old.seq = 100;
    let mut fill = Seg::in_order(data, 1000);
    fill.seq_mode = 3;
    fill.seq = 1500; // back from the end of `ahead` to the start of the hole
    let ooo = [
        Op::Segment(ahead),
        drain,
        Op::Segment(fill),
        drain,
        seg(data, 1000),
        drain,
        Op::Duplicate,
        Op::Segment(old),
        Op::Recv(8000),
        drain,
        Op::DropOoo,
        Op::Abort,
        drain,
    ];
    write(
        dir,
        "tcp_connection",
        "out_of_order",
        &tc::encode(&base, &ooo),
    );

    // Zero window: persist probes, then the window opens; keepalive on an idle connection.
    let mut zero = Seg::in_order(ack, 0);
    zero.window = 0;
    let zw = [
        Op::Segment(zero),
        Op::Send(3000),
        drain,
        Op::Fire,
        drain,
        Op::Fire,
        drain,
        seg(ack, 0),
        drain,
        Op::Keepalive(0x21),
        Op::Fire,
        drain,
        Op::Fire,
        drain,
        Op::Fire,
    ];
    write(
        dir,
        "tcp_connection",
        "zero_window",
        &tc::encode(&base, &zw),
    );

    // SYN cookie open without options; simultaneous close into TIME_WAIT.
    let cookie = Setup {
        cfg_bits: 0x20, // NewReno, no options
        open: 4,
        peer_opts: 0x01,
        ..base
    };
    let close = [
        Op::Send(100),
        drain,
        Op::Close,
        drain,
        seg(fin, 0),
        drain,
        seg(ack, 0),
        Op::Fire,
        drain,
    ];
    write(
        dir,
        "tcp_connection",
        "cookie_close",
        &tc::encode(&cookie, &close),
    );

    // SYN_SENT and SYN_RECEIVED left to time out; RST in the window.
    let syn_sent = Setup { open: 0, ..base };
    let retries = [drain, Op::Fire, drain, Op::Fire, drain, Op::Fire];
    write(
        dir,
        "tcp_connection",
        "syn_sent_retries",
        &tc::encode(&syn_sent, &retries),
    );
    let syn_rcvd = Setup { open: 2, ..base };
    let rst = [drain, seg(TcpFlags::RST, 0), drain, Op::Fire];
    write(
        dir,
        "tcp_connection",
        "syn_received_rst",
        &tc::encode(&syn_rcvd, &rst),
    );
}

fn iface_seeds(dir: &Path) {
    use ifr::{Op as I, TcpSpec};
    let setup = ifr::Setup {
        bits: 0x20, // gateway
        start_ms: 1_000,
    };
    let tcp = |flags: TcpFlags, len: u16, opts: u8| {
        I::Tcp(TcpSpec {
            peer: 0,
            dst_sel: 0,
            flags: flags.0,
            modes: 0, // in order, acknowledging everything
            window: 65535,
            opts,
            len,
            seq: 1000,
            ..TcpSpec::default()
        })
    };
    let tx = I::Transmit(0);
    let ack = TcpFlags::ACK;
    let conversation = [
        I::Arp { peer: 0, kind: 0 },
        tx.clone(),
        tcp(TcpFlags::SYN, 0, 0x0f),
        tx.clone(),
        tcp(ack, 0, 0x08),
        I::Events,
        tcp(ack | TcpFlags::PSH, 100, 0x08),
        I::Recv { h: 0, len: 4096 },
        I::Send { h: 0, len: 3000 },
        tx.clone(),
        tcp(ack, 0, 0x08),
        tx.clone(),
        tcp(ack | TcpFlags::FIN, 0, 0x08),
        I::Control { h: 0, what: 0 },
        tx.clone(),
        tcp(ack, 0, 0x08),
        I::Advance {
            us: 70_000_000,
            budget: 255,
        },
        tx.clone(),
    ];
    write(
        dir,
        "iface_frames",
        "passive_conversation",
        &ifr::encode(&setup, &conversation),
    );

    let misc = [
        I::Udp {
            peer: 1,
            port_sel: 0,
            len: 20,
            corrupt: 0,
        },
        I::Udp {
            peer: 1,
            port_sel: 1,
            len: 20,
            corrupt: 0,
        },
        I::Icmp {
            peer: 0,
            kind: 0,
            value: 56,
            corrupt: 0,
        },
        tx.clone(),
        I::Arp { peer: 1, kind: 1 },
        I::Arp { peer: 0, kind: 1 },
        tx.clone(),
        I::UdpApp { peer: 1, len: 100 },
        I::UdpApp { peer: 2, len: 100 },
        tx.clone(),
        I::Arp { peer: 3, kind: 1 },
        tx.clone(),
        I::Udp {
            peer: 0,
            port_sel: 0,
            len: 20,
            corrupt: 0x0106,
        },
        I::Raw(vec![0xff; 20]),
        I::Raw(vec![]),
        I::Advance {
            us: 5_000_000,
            budget: 16,
        },
        tx.clone(),
    ];
    write(
        dir,
        "iface_frames",
        "udp_icmp_arp",
        &ifr::encode(&setup, &misc),
    );

    // Active open to an unresolved peer: ARP request, reply, SYN, SYN-ACK, data, then a
    // fragmentation-needed ICMP for the flow.
    let active = [
        I::Connect { peer: 1 },
        tx.clone(),
        I::Arp {
            peer: 1,
            kind: 1 | 8,
        },
        tx.clone(),
        I::Tcp(TcpSpec {
            peer: 1,
            dst_sel: 2,
            flags: (TcpFlags::SYN | TcpFlags::ACK).0,
            modes: 1,
            seq: 777,
            window: 65535,
            opts: 0x0f,
            ..TcpSpec::default()
        }),
        tx.clone(),
        I::Send { h: 0, len: 20_000 },
        tx.clone(),
        I::Icmp {
            peer: 1,
            kind: 1,
            value: 1280,
            corrupt: 0,
        },
        I::Tcp(TcpSpec {
            peer: 1,
            dst_sel: 2,
            flags: ack.0,
            window: 65535,
            opts: 0x08,
            ..TcpSpec::default()
        }),
        tx.clone(),
        I::Advance {
            us: 1_500_000,
            budget: 16,
        },
        tx.clone(),
    ];
    write(
        dir,
        "iface_frames",
        "active_open",
        &ifr::encode(&setup, &active),
    );

    // SYN flood against the small-backlog configuration: cookies, then a cookie ACK.
    let small = ifr::Setup {
        bits: 0x02,
        start_ms: 1_000,
    };
    let mut flood = vec![I::Arp { peer: 0, kind: 0 }];
    for p in 0..4u8 {
        flood.push(I::Tcp(TcpSpec {
            peer: p << 2,
            dst_sel: 0,
            flags: TcpFlags::SYN.0,
            modes: 1,
            seq: 1000 + p as u32,
            window: 65535,
            opts: 0x0f,
            ..TcpSpec::default()
        }));
        flood.push(tx.clone());
    }
    flood.push(I::Tcp(TcpSpec {
        peer: 3 << 2,
        dst_sel: 0,
        flags: ack.0,
        window: 65535,
        opts: 0x08,
        ..TcpSpec::default()
    }));
    flood.push(I::Events);
    flood.push(tx.clone());
    write(
        dir,
        "iface_frames",
        "syn_flood_cookies",
        &ifr::encode(&small, &flood),
    );
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    wire_seeds(&dir);
    tcp_seeds(&dir);
    iface_seeds(&dir);
    println!("seeds written to {}", dir.display());
}
