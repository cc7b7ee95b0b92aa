//! Structured fuzzing of the whole receive path: an [`Interface`] with a TCP listener and a UDP
//! socket, fed a program of raw frames, structurally valid frames (ARP for us, ICMP, UDP, TCP to
//! the listening port or to our own connections, with correct checksums and sequence numbers
//! that track the conversation so handshakes complete and data flows) and application calls,
//! with `poll_transmit` / `poll_event` / `handle_timeouts` in between.
//!
//! A crafted frame can be corrupted by one XORed byte, so every layer's checksum and length
//! checks are reached with otherwise-valid frames.
//!
//! Invariants checked:
//! - nothing panics (debug assertions and overflow checks are on in fuzz builds);
//! - every frame from `poll_transmit` fits the buffer and the MTU, comes from our MAC to a
//!   non-zero MAC, and parses back: Ethernet, then ARP, or IPv4 from one of our addresses with
//!   a valid header checksum and a TCP/UDP/ICMP payload with a valid checksum (software
//!   checksum mode; with offload only the structure is checked);
//! - a frame the Ethernet parser rejects is counted as a `Malformed` drop.

use std::net::{Ipv4Addr, SocketAddrV4};

use saps_stack::iface::{Event, Interface, InterfaceConfig, Ipv4Cidr, ListenerHandle, TcpHandle};
use saps_stack::stats::DropReason;
use saps_stack::tcp::{SeqNumber, TcpConfig};
use saps_stack::time::{Duration, Instant};
use saps_stack::udp::UdpHandle;
use saps_stack::wire::arp::{ArpOperation, ArpRepr};
use saps_stack::wire::ethernet::{EtherType, EthernetAddress, EthernetRepr};
use saps_stack::wire::icmpv4::Icmpv4Repr;
use saps_stack::wire::ipv4::{ip_protocol, Ipv4Repr};
use saps_stack::wire::tcp::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};
use saps_stack::wire::udp::UdpRepr;
use saps_stack::wire::ChecksumMode;

use crate::{peer_byte, Reader, Writer};

/// Our MAC.
pub const MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
/// Our address.
pub const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The default gateway.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
/// The listening TCP port.
pub const TCP_PORT: u16 = 80;
/// A second listener with its own configuration (tiny backlog: SYN cookies).
pub const TCP_PORT2: u16 = 8080;
/// The bound UDP port.
pub const UDP_PORT: u16 = 53;

/// The peers: (IP, MAC). The third is off-link (reached through the gateway, whose MAC is the
/// fourth entry's).
pub const PEERS: [(Ipv4Addr, EthernetAddress); 4] = [
    (
        Ipv4Addr::new(10, 0, 0, 1),
        EthernetAddress([0x02, 0, 0, 0, 0, 0x11]),
    ),
    (
        Ipv4Addr::new(10, 0, 0, 3),
        EthernetAddress([0x02, 0, 0, 0, 0, 0x13]),
    ),
    (
        Ipv4Addr::new(192, 0, 2, 7),
        EthernetAddress([0x02, 0, 0, 0, 0, 0xfe]),
    ),
    (GATEWAY, EthernetAddress([0x02, 0, 0, 0, 0, 0xfe])),
];

const MAX_OPS: usize = 300;
const FRAME_BUF: usize = 1600;
const MAX_PAYLOAD: usize = 1460;

/// One step of the program.
#[derive(Clone, Debug)]
pub enum Op {
    /// Raw bytes as a frame.
    Raw(Vec<u8>),
    /// A crafted TCP segment.
    Tcp(TcpSpec),
    /// An ARP packet from peer `peer`: bit 0 reply, bits 1.. target selector.
    Arp {
        /// Peer index.
        peer: u8,
        /// Operation and target.
        kind: u8,
    },
    /// A UDP datagram from `peer`: `port_sel` 0 our socket, else a closed port.
    Udp {
        /// Peer index.
        peer: u8,
        /// Destination selector.
        port_sel: u8,
        /// Payload length.
        len: u16,
        /// Corruption (see [`TcpSpec::corrupt`]).
        corrupt: u16,
    },
    /// An ICMP message from `peer`: kind 0 echo request, 1 fragmentation needed quoting one of
    /// our flows, 2 port unreachable, else an unknown type.
    Icmp {
        /// Peer index.
        peer: u8,
        /// Message kind.
        kind: u8,
        /// Next-hop MTU / echo length.
        value: u16,
        /// Corruption.
        corrupt: u16,
    },
    /// Accept everything waiting.
    Accept,
    /// `tcp_send` on a handle.
    Send {
        /// Handle selector.
        h: u8,
        /// Bytes.
        len: u16,
    },
    /// `tcp_recv` on a handle.
    Recv {
        /// Handle selector.
        h: u8,
        /// Buffer size.
        len: u16,
    },
    /// Close (0), shutdown (1), abort (2), nodelay (3), keepalive (4) on a handle.
    Control {
        /// Handle selector.
        h: u8,
        /// What.
        what: u8,
    },
    /// `tcp_connect` to a peer.
    Connect {
        /// Peer index and port.
        peer: u8,
    },
    /// `udp_send_to` a peer, then `udp_recv_from` everything.
    UdpApp {
        /// Peer index.
        peer: u8,
        /// Payload length.
        len: u16,
    },
    /// Advance the clock (microseconds) and run timers with a budget.
    Advance {
        /// Microseconds.
        us: u32,
        /// Timer budget.
        budget: u8,
    },
    /// Transmit up to `n` frames (0 = until idle) and report them complete.
    Transmit(u8),
    /// Drain events.
    Events,
    /// Close and reopen the second listener.
    Relisten,
    /// The last crafted frame again.
    Duplicate,
}

/// A crafted TCP segment.
#[derive(Copy, Clone, Debug, Default)]
pub struct TcpSpec {
    /// Peer index (low 2 bits) and peer port (bits 2..4).
    pub peer: u8,
    /// Destination: 0 the listener, 1 the second listener, 2 a connection we opened, 3 the
    /// raw `port` value.
    pub dst_sel: u8,
    /// Raw destination port for `dst_sel` 3.
    pub port: u16,
    /// Flags.
    pub flags: u8,
    /// Sequence mode (low 2 bits; see [`Flow`]) and acknowledgment mode (bits 2..4).
    pub modes: u8,
    /// Sequence delta / value.
    pub seq: u32,
    /// Acknowledgment delta / value.
    pub ack: u32,
    /// Raw window.
    pub window: u16,
    /// Options: bit 0 MSS, 1 window scale, 2 SACK permitted, 3 timestamps, 4 one SACK block.
    pub opts: u8,
    /// Payload length (mod 1461).
    pub len: u16,
    /// Corruption: 0 none, else XOR byte `corrupt >> 8` at offset `corrupt & 0xff` from the
    /// start of the IPv4 header (wrapped to the frame).
    pub corrupt: u16,
}

const OPS: u8 = 17;

impl Op {
    fn decode(r: &mut Reader) -> Op {
        match r.u8() % OPS {
            0 => {
                let n = r.u16() as usize % FRAME_BUF;
                Op::Raw(r.bytes(n).to_vec())
            }
            1..=3 => Op::Tcp(TcpSpec {
                peer: r.u8(),
                dst_sel: r.u8(),
                port: r.u16(),
                flags: r.u8(),
                modes: r.u8(),
                seq: r.u32(),
                ack: r.u32(),
                window: r.u16(),
                opts: r.u8(),
                len: r.u16(),
                corrupt: r.u16(),
            }),
            4 => Op::Arp {
                peer: r.u8(),
                kind: r.u8(),
            },
            5 => Op::Udp {
                peer: r.u8(),
                port_sel: r.u8(),
                len: r.u16(),
                corrupt: r.u16(),
            },
            6 => Op::Icmp {
                peer: r.u8(),
                kind: r.u8(),
                value: r.u16(),
                corrupt: r.u16(),
            },
            7 => Op::Accept,
            8 => Op::Send {
                h: r.u8(),
                len: r.u16(),
            },
            9 => Op::Recv {
                h: r.u8(),
                len: r.u16(),
            },
            10 => Op::Control {
                h: r.u8(),
                what: r.u8(),
            },
            11 => Op::Connect { peer: r.u8() },
            12 => Op::UdpApp {
                peer: r.u8(),
                len: r.u16(),
            },
            13 => Op::Advance {
                us: r.u32(),
                budget: r.u8(),
            },
            14 => Op::Transmit(r.u8()),
            15 => Op::Events,
            _ => {
                if r.u8() & 1 == 0 {
                    Op::Relisten
                } else {
                    Op::Duplicate
                }
            }
        }
    }

    /// Append the encoding of `self`.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Op::Raw(b) => {
                w.u8(0).u16(b.len() as u16).bytes(b);
            }
            Op::Tcp(t) => {
                w.u8(1)
                    .u8(t.peer)
                    .u8(t.dst_sel)
                    .u16(t.port)
                    .u8(t.flags)
                    .u8(t.modes)
                    .u32(t.seq)
                    .u32(t.ack)
                    .u16(t.window)
                    .u8(t.opts)
                    .u16(t.len)
                    .u16(t.corrupt);
            }
            Op::Arp { peer, kind } => {
                w.u8(4).u8(*peer).u8(*kind);
            }
            Op::Udp {
                peer,
                port_sel,
                len,
                corrupt,
            } => {
                w.u8(5).u8(*peer).u8(*port_sel).u16(*len).u16(*corrupt);
            }
            Op::Icmp {
                peer,
                kind,
                value,
                corrupt,
            } => {
                w.u8(6).u8(*peer).u8(*kind).u16(*value).u16(*corrupt);
            }
            Op::Accept => {
                w.u8(7);
            }
            Op::Send { h, len } => {
                w.u8(8).u8(*h).u16(*len);
            }
            Op::Recv { h, len } => {
                w.u8(9).u8(*h).u16(*len);
            }
            Op::Control { h, what } => {
                w.u8(10).u8(*h).u8(*what);
            }
            Op::Connect { peer } => {
                w.u8(11).u8(*peer);
            }
            Op::UdpApp { peer, len } => {
                w.u8(12).u8(*peer).u16(*len);
            }
            Op::Advance { us, budget } => {
                w.u8(13).u32(*us).u8(*budget);
            }
            Op::Transmit(n) => {
                w.u8(14).u8(*n);
            }
            Op::Events => {
                w.u8(15);
            }
            Op::Relisten => {
                w.u8(16).u8(0);
            }
            Op::Duplicate => {
                w.u8(16).u8(1);
            }
        }
    }
}

/// Interface configuration, the first bytes of every input.
#[derive(Copy, Clone, Debug, Default)]
pub struct Setup {
    /// Bit 0 offload checksums, 1 small limits (frame slots, backlogs, connections), 2 no SYN
    /// cookies, 3 small TCP buffers, 4 TCP options off, 5 gateway configured.
    pub bits: u8,
    /// Start time in milliseconds.
    pub start_ms: u32,
}

/// Encode a whole input.
pub fn encode(setup: &Setup, ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(setup.bits).u32(setup.start_ms);
    for op in ops {
        op.encode(&mut w);
    }
    w.out
}

/// The fake peer's view of one TCP conversation.
#[derive(Copy, Clone, Debug)]
struct Flow {
    peer_ip: Ipv4Addr,
    peer_port: u16,
    local_port: u16,
    /// Next sequence number the peer sends.
    nxt: SeqNumber,
    /// Highest sequence number (plus length) the stack sent.
    stack_max: SeqNumber,
    /// Last TSval the stack sent.
    tsval: u32,
}

struct Harness {
    iface: Interface,
    cfg: InterfaceConfig,
    now: Instant,
    listener: Option<ListenerHandle>,
    listener2: Option<ListenerHandle>,
    udp: Option<UdpHandle>,
    handles: Vec<TcpHandle>,
    flows: Vec<Flow>,
    /// Ephemeral ports of connections we opened (learned from their SYNs).
    our_ports: Vec<u16>,
    last: Vec<u8>,
    buf: Vec<u8>,
}

fn peer_of(sel: u8) -> (Ipv4Addr, EthernetAddress) {
    PEERS[(sel & 3) as usize]
}

/// The MAC a frame from `ip` arrives from (off-link peers come through the gateway).
fn src_mac(ip: Ipv4Addr) -> EthernetAddress {
    PEERS
        .iter()
        .find(|p| p.0 == ip)
        .map(|p| p.1)
        .unwrap_or(PEERS[3].1)
}

impl Harness {
    fn flow_mut(&mut self, ip: Ipv4Addr, port: u16, local: u16) -> Option<&mut Flow> {
        self.flows
            .iter_mut()
            .find(|f| f.peer_ip == ip && f.peer_port == port && f.local_port == local)
    }

    /// Frame an IPv4 packet with `l4` (already built, checksum included) from `src` to us.
    fn ipv4_frame(&self, src: Ipv4Addr, protocol: u8, l4: &[u8], corrupt: u16) -> Vec<u8> {
        let eth = EthernetRepr {
            dst: MAC,
            src: src_mac(src),
            ethertype: EtherType::IPV4,
            vlan: None,
        };
        let ip = Ipv4Repr {
            src,
            dst: ADDR,
            protocol,
            ttl: 64,
            ident: 7,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            dscp_ecn: 0,
            payload_len: l4.len(),
        };
        let mut f = vec![0u8; 14 + 20 + l4.len()];
        eth.emit(&mut f);
        ip.emit(&mut f[14..], ChecksumMode::SOFTWARE);
        f[34..].copy_from_slice(l4);
        if corrupt != 0 && corrupt >> 8 != 0 {
            let at = 14 + (corrupt & 0xff) as usize % (f.len() - 14);
            f[at] ^= (corrupt >> 8) as u8;
        }
        f
    }

    fn tcp(&mut self, t: &TcpSpec) {
        let (ip, _) = peer_of(t.peer);
        let peer_port = 40000 + ((t.peer >> 2) & 3) as u16;
        let local_port = match t.dst_sel & 3 {
            0 => TCP_PORT,
            1 => TCP_PORT2,
            2 => self
                .our_ports
                .get(t.port as usize % self.our_ports.len().max(1))
                .copied()
                .unwrap_or(TCP_PORT),
            _ => t.port,
        };
        let flags = TcpFlags(t.flags);
        let flow = self.flow_mut(ip, peer_port, local_port).copied();
        let (nxt, stack_max, tsecr) = match flow {
            Some(f) => (f.nxt, f.stack_max, f.tsval),
            None => (SeqNumber(t.seq), SeqNumber(t.ack), 0),
        };
        let seq = match t.modes & 3 {
            0 => nxt,
            1 => SeqNumber(t.seq),
            2 => SeqNumber(nxt.0.wrapping_add((t.seq as i16) as i32 as u32)),
            _ => SeqNumber(nxt.0.wrapping_sub(t.seq % 70_000)),
        };
        let ack = match (t.modes >> 2) & 3 {
            0 => stack_max,
            1 => SeqNumber(t.ack),
            2 => SeqNumber(stack_max.0.wrapping_add((t.ack as i16) as i32 as u32)),
            _ => SeqNumber(stack_max.0.wrapping_sub(t.ack % 70_000)),
        };
        let len = t.len as usize % (MAX_PAYLOAD + 1);
        let first = seq + flags.syn() as u32;
        let payload: Vec<u8> = (0..len)
            .map(|i| peer_byte(first.0.wrapping_add(i as u32)))
            .collect();
        let mut sack = SackBlocks::default();
        if t.opts & 16 != 0 {
            let left = SeqNumber(stack_max.0.wrapping_sub(t.ack % 8192));
            sack.push(left, left + (t.window as u32 % 4096));
        }
        let now_ms = (self.now.total_micros() / 1000) as u32;
        let repr = TcpRepr {
            src_port: peer_port,
            dst_port: local_port,
            seq,
            ack,
            flags,
            window: t.window,
            urgent: 0,
            options: TcpOptions {
                mss: (t.opts & 1 != 0).then_some(1460 - (t.port % 1024)),
                window_scale: (t.opts & 2 != 0).then_some((t.port >> 12) as u8),
                sack_permitted: t.opts & 4 != 0,
                timestamps: (t.opts & 8 != 0).then_some((now_ms.wrapping_mul(3), tsecr)),
                sack,
            },
            payload: &payload,
        };
        let mut l4 = vec![0u8; repr.buffer_len()];
        let n = repr.emit(&mut l4, ip, ADDR, ChecksumMode::SOFTWARE);
        l4.truncate(n);
        let frame = self.ipv4_frame(ip, ip_protocol::TCP, &l4, t.corrupt);
        self.input(frame);
        let end = seq + repr.segment_len();
        match self.flow_mut(ip, peer_port, local_port) {
            Some(f) => {
                let new_syn = flags.syn() && !flags.ack();
                let ahead = end.diff(f.nxt) > 0 && end.diff(f.nxt) < (1 << 20) && !flags.rst();
                if new_syn || ahead {
                    f.nxt = end;
                }
            }
            None => {
                if self.flows.len() < 64 {
                    self.flows.push(Flow {
                        peer_ip: ip,
                        peer_port,
                        local_port,
                        nxt: end,
                        stack_max: ack,
                        tsval: 0,
                    });
                }
            }
        }
    }

    fn input(&mut self, frame: Vec<u8>) {
        let malformed_before = self.iface.stats().drops_for(DropReason::Malformed);
        let eth_ok = EthernetRepr::parse(&frame).is_ok();
        self.iface.handle_frame(self.now, &frame);
        if !eth_ok {
            assert_eq!(
                self.iface.stats().drops_for(DropReason::Malformed),
                malformed_before + 1,
                "a frame too short for Ethernet was not counted as malformed"
            );
        }
        self.last = frame;
    }

    fn arp(&mut self, peer: u8, kind: u8) {
        let (ip, mac) = peer_of(peer);
        let target_ip = match (kind >> 1) & 3 {
            0 | 1 => ADDR,
            2 => Ipv4Addr::new(10, 0, 0, 99),
            _ => ip,
        };
        let repr = ArpRepr {
            operation: if kind & 1 != 0 {
                ArpOperation::Reply
            } else {
                ArpOperation::Request
            },
            sender_hw: mac,
            sender_ip: ip,
            target_hw: if kind & 1 != 0 {
                MAC
            } else {
                EthernetAddress([0; 6])
            },
            target_ip,
        };
        let eth = EthernetRepr {
            dst: if kind & 8 != 0 {
                MAC
            } else {
                EthernetAddress::BROADCAST
            },
            src: mac,
            ethertype: EtherType::ARP,
            vlan: None,
        };
        let mut f = vec![0u8; 60];
        let hl = eth.emit(&mut f);
        repr.emit(&mut f[hl..hl + repr.buffer_len()]);
        if kind & 16 != 0 {
            // Truncated ARP.
            f.truncate(hl + (kind as usize >> 5) * 3);
        }
        self.input(f);
    }

    fn udp_in(&mut self, peer: u8, port_sel: u8, len: u16, corrupt: u16) {
        let (ip, _) = peer_of(peer);
        let dst_port = if port_sel & 1 == 0 {
            UDP_PORT
        } else {
            1000 + port_sel as u16
        };
        let len = len as usize % (MAX_PAYLOAD + 1);
        let payload: Vec<u8> = (0..len).map(|i| peer_byte(i as u32)).collect();
        let repr = UdpRepr {
            src_port: 5353,
            dst_port,
        };
        let mut l4 = vec![0u8; repr.buffer_len(len)];
        l4[8..].copy_from_slice(&payload);
        repr.emit(&mut l4, len, ip, ADDR, ChecksumMode::SOFTWARE);
        let frame = self.ipv4_frame(ip, ip_protocol::UDP, &l4, corrupt);
        self.input(frame);
    }

    fn icmp_in(&mut self, peer: u8, kind: u8, value: u16, corrupt: u16) {
        let (ip, _) = peer_of(peer);
        // A quoted IPv4 + TCP header of one of the flows (or of nothing).
        let mut quoted = [0u8; 28];
        if let Some(f) = self.flows.get(value as usize % self.flows.len().max(1)) {
            let q = Ipv4Repr {
                src: ADDR,
                dst: f.peer_ip,
                protocol: ip_protocol::TCP,
                ttl: 64,
                ident: 1,
                dont_fragment: true,
                more_fragments: false,
                fragment_offset: 0,
                dscp_ecn: 0,
                payload_len: 20,
            };
            q.emit(&mut quoted, ChecksumMode::SOFTWARE);
            quoted[20..22].copy_from_slice(&f.local_port.to_be_bytes());
            quoted[22..24].copy_from_slice(&f.peer_port.to_be_bytes());
        }
        let data: Vec<u8> = (0..(value as usize % 600)).map(|i| i as u8).collect();
        let repr = match kind & 3 {
            0 => Icmpv4Repr::EchoRequest {
                ident: value,
                seq_no: 1,
                data: &data,
            },
            1 => Icmpv4Repr::DstUnreachable {
                code: 4,
                next_hop_mtu: value,
                original: &quoted,
            },
            2 => Icmpv4Repr::DstUnreachable {
                code: 3,
                next_hop_mtu: 0,
                original: &quoted,
            },
            _ => Icmpv4Repr::Other {
                msg_type: kind >> 2,
                code: 0,
            },
        };
        let mut l4 = vec![0u8; repr.buffer_len()];
        repr.emit(&mut l4, ChecksumMode::SOFTWARE);
        let frame = self.ipv4_frame(ip, ip_protocol::ICMP, &l4, corrupt);
        self.input(frame);
    }

    fn handle(&self, h: u8) -> Option<TcpHandle> {
        if self.handles.is_empty() {
            return None;
        }
        Some(self.handles[h as usize % self.handles.len()])
    }

    fn accept(&mut self) {
        for l in [self.listener, self.listener2].into_iter().flatten() {
            while let Some(h) = self.iface.tcp_accept(l) {
                if self.handles.len() < 64 {
                    self.handles.push(h);
                }
            }
        }
    }

    fn transmit(&mut self, limit: usize) {
        let limit = if limit == 0 { 4096 } else { limit };
        let mut sent = 0u32;
        let mut bytes = 0u64;
        for _ in 0..limit {
            let buf_len = FRAME_BUF.max(self.cfg.mtu + 18);
            let Some(n) = self.iface.poll_transmit(self.now, &mut self.buf[..buf_len]) else {
                break;
            };
            assert!(n <= buf_len, "frame longer than the buffer");
            sent += 1;
            bytes += n as u64;
            let frame = self.buf[..n].to_vec();
            crate::trace!("  out frame {} bytes", n);
            self.check_output(&frame);
        }
        if sent > 0 {
            self.iface.handle_tx_completions(self.now, sent, bytes);
        }
    }

    /// Check one frame the interface sent and learn from it (flow sequence numbers).
    fn check_output(&mut self, frame: &[u8]) {
        let mode = self.cfg.checksum;
        let verify = ChecksumMode {
            verify_rx: mode.fill_tx,
            fill_tx: false,
        };
        let (eth, payload) = EthernetRepr::parse(frame).expect("output frame parses");
        assert_eq!(eth.src, MAC, "frame not from our MAC");
        assert_ne!(eth.dst, EthernetAddress([0; 6]), "frame to a zero MAC");
        assert!(eth.vlan.is_none());
        match eth.ethertype {
            EtherType::ARP => {
                let arp = ArpRepr::parse(payload).expect("output ARP parses");
                assert_eq!(arp.sender_hw, MAC);
            }
            EtherType::IPV4 => {
                assert!(frame.len() <= 14 + self.cfg.mtu, "frame above the MTU");
                let (ip, l4) = match Ipv4Repr::parse(payload, verify) {
                    Ok(v) => v,
                    Err(e) => panic!("output IPv4 does not parse: {e:?}: {frame:02x?}"),
                };
                assert!(
                    self.cfg.addresses.iter().any(|c| c.address == ip.src),
                    "IPv4 source {} is not ours",
                    ip.src
                );
                assert!(!ip.is_fragment());
                match ip.protocol {
                    ip_protocol::TCP => {
                        let seg = match TcpRepr::parse(l4, ip.src, ip.dst, verify) {
                            Ok(s) => s,
                            Err(e) => panic!("output TCP does not parse: {e:?}: {frame:02x?}"),
                        };
                        crate::trace!(
                            "  out tcp {}:{} -> {}:{} {:?} seq={} ack={} len={}",
                            ip.src,
                            seg.src_port,
                            ip.dst,
                            seg.dst_port,
                            seg.flags,
                            seg.seq.0,
                            seg.ack.0,
                            seg.payload.len()
                        );
                        self.learn(ip.dst, &seg);
                    }
                    ip_protocol::UDP => {
                        if let Err(e) = UdpRepr::parse(l4, ip.src, ip.dst, verify) {
                            panic!("output UDP does not parse: {e:?}: {frame:02x?}");
                        }
                    }
                    ip_protocol::ICMP => {
                        if let Err(e) = Icmpv4Repr::parse(l4, verify) {
                            panic!("output ICMP does not parse: {e:?}: {frame:02x?}");
                        }
                    }
                    p => panic!("output IPv4 with protocol {p}"),
                }
            }
            t => panic!("output frame with ethertype {t:#06x}"),
        }
    }

    fn learn(&mut self, peer_ip: Ipv4Addr, seg: &TcpRepr) {
        if seg.flags.rst() {
            return;
        }
        let end = seg.seq + seg.segment_len();
        let local_port = seg.src_port;
        if seg.flags.syn()
            && !seg.flags.ack()
            && !self.our_ports.contains(&local_port)
            && self.our_ports.len() < 16
        {
            self.our_ports.push(local_port);
        }
        let tsval = seg.options.timestamps.map(|t| t.0).unwrap_or(0);
        match self.flow_mut(peer_ip, seg.dst_port, local_port) {
            Some(f) => {
                if seg.flags.syn() || end.diff(f.stack_max) > 0 {
                    f.stack_max = end;
                }
                if seg.flags.syn() && seg.flags.ack() {
                    f.nxt = seg.ack;
                }
                f.tsval = tsval;
            }
            None => {
                if self.flows.len() < 64 {
                    self.flows.push(Flow {
                        peer_ip,
                        peer_port: seg.dst_port,
                        local_port,
                        nxt: SeqNumber(0x1000_0000),
                        stack_max: end,
                        tsval,
                    });
                }
            }
        }
    }

    fn events(&mut self) {
        let mut n = 0;
        while let Some(e) = self.iface.poll_event() {
            n += 1;
            assert!(n < 100_000, "poll_event does not stop");
            crate::trace!("  event {:?}", e);
            if let Event::Acceptable(_) = e {
                self.accept();
            }
        }
    }
}

/// Run one input.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let bits = r.u8();
    let start_ms = r.u32();
    let now = Instant::from_millis(start_ms as u64);
    let mut cfg = InterfaceConfig::new(MAC, Ipv4Cidr::new(ADDR, 24));
    if bits & 1 != 0 {
        cfg.checksum = ChecksumMode::OFFLOAD;
    }
    if bits & 2 != 0 {
        cfg.frame_slots = 4;
        cfg.syn_backlog = 2;
        cfg.accept_backlog = 2;
        cfg.max_connections = 6;
        cfg.arp_pending_per_hop = 2;
        cfg.udp_rx_bytes = 2048;
        cfg.udp_rx_datagrams = 2;
        cfg.ooo_total_budget = 8192;
    }
    cfg.syn_cookies = bits & 4 == 0;
    let mut tcp = TcpConfig {
        checksum: cfg.checksum,
        ..TcpConfig::default()
    };
    if bits & 8 != 0 {
        tcp.send_buffer = 4096;
        tcp.recv_buffer = 4096;
        tcp.ooo_budget = 2048;
    }
    if bits & 16 != 0 {
        tcp.timestamps = false;
        tcp.sack = false;
        tcp.window_scale = false;
    }
    cfg.tcp = tcp.clone();
    if bits & 32 != 0 {
        cfg.gateway = Some(GATEWAY);
    }
    let mut iface = Interface::new(cfg.clone(), now);
    let listener = iface.tcp_listen(TCP_PORT, None).ok();
    let cookie_cfg = TcpConfig {
        recv_buffer: 1 << 20,
        ..tcp
    };
    let listener2 = iface.tcp_listen(TCP_PORT2, Some(cookie_cfg)).ok();
    let udp = iface.udp_bind(UDP_PORT).ok();
    let mut h = Harness {
        iface,
        cfg,
        now,
        listener,
        listener2,
        udp,
        handles: Vec::new(),
        flows: Vec::new(),
        our_ports: Vec::new(),
        last: Vec::new(),
        buf: vec![0u8; 9300],
    };
    let mut rx = vec![0u8; 70_000];
    let tx: Vec<u8> = (0..70_000u32).map(crate::app_byte).collect();
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        let op = Op::decode(&mut r);
        crate::trace!("t={}us {:?}", h.now.total_micros(), op);
        match op {
            Op::Raw(b) => h.input(b),
            Op::Tcp(t) => h.tcp(&t),
            Op::Arp { peer, kind } => h.arp(peer, kind),
            Op::Udp {
                peer,
                port_sel,
                len,
                corrupt,
            } => h.udp_in(peer, port_sel, len, corrupt),
            Op::Icmp {
                peer,
                kind,
                value,
                corrupt,
            } => h.icmp_in(peer, kind, value, corrupt),
            Op::Accept => h.accept(),
            Op::Send { h: sel, len } => {
                if let Some(th) = h.handle(sel) {
                    if let Ok(n) = h.iface.tcp_send(h.now, th, &tx[..len as usize]) {
                        assert!(n <= len as usize);
                    }
                }
            }
            Op::Recv { h: sel, len } => {
                if let Some(th) = h.handle(sel) {
                    if let Ok(n) = h.iface.tcp_recv(h.now, th, &mut rx[..len as usize]) {
                        assert!(n <= len as usize);
                    }
                }
            }
            Op::Control { h: sel, what } => {
                if let Some(th) = h.handle(sel) {
                    let now = h.now;
                    let _ = match what % 5 {
                        0 => h.iface.tcp_close(now, th),
                        1 => h.iface.tcp_shutdown(now, th),
                        2 => h.iface.tcp_abort(now, th),
                        3 => h.iface.tcp_set_nodelay(now, th, what & 8 != 0),
                        _ => h.iface.tcp_set_keepalive(
                            now,
                            th,
                            Some((Duration::from_millis(500), Duration::from_millis(100), 2)),
                        ),
                    };
                }
            }
            Op::Connect { peer } => {
                let (ip, _) = peer_of(peer);
                let port = 40000 + ((peer >> 2) & 3) as u16;
                if let Ok(th) = h
                    .iface
                    .tcp_connect(h.now, SocketAddrV4::new(ip, port), None)
                {
                    if h.handles.len() < 64 {
                        h.handles.push(th);
                    }
                }
            }
            Op::UdpApp { peer, len } => {
                if let Some(u) = h.udp {
                    let (ip, _) = peer_of(peer);
                    let len = len as usize % 1600;
                    let _ = h.iface.udp_send_to(
                        h.now,
                        u,
                        SocketAddrV4::new(ip, 5353),
                        None,
                        &tx[..len],
                    );
                    let mut n = 0;
                    while let Ok(Some(_)) = h.iface.udp_recv_from(u, &mut rx[..len]) {
                        n += 1;
                        assert!(n < 10_000, "udp_recv_from does not stop");
                    }
                }
            }
            Op::Advance { us, budget } => {
                h.now += Duration::from_micros(us as u64);
                let now = h.now;
                h.iface.handle_timeouts(now, budget as usize + 1);
            }
            Op::Transmit(n) => h.transmit(n as usize),
            Op::Events => h.events(),
            Op::Relisten => {
                let now = h.now;
                match h.listener2.take() {
                    Some(l) => {
                        let _ = h.iface.tcp_unlisten(l, now);
                    }
                    None => h.listener2 = h.iface.tcp_listen(TCP_PORT2, None).ok(),
                }
            }
            Op::Duplicate => {
                let f = std::mem::take(&mut h.last);
                h.input(f);
            }
        }
    }
    h.events();
    h.transmit(0);
    crate::trace!("end: {:?}", h.iface.stats());
}
