//! Shared scaffolding of the per-packet cost benchmarks (criterion benches in `benches/stack.rs`
//! and the callgrind drivers in `examples/cost_*.rs`).
//!
//! The device under test is one real [`Interface`] (the server). Its peer is not a second stack but
//! a small scripted TCP endpoint ([`Peer`]) that builds frames with the wire module: every frame it
//! feeds in is exactly what a well-behaved Linux client would send (MSS, window scale, SACK-permitted
//! and timestamp options; in-order full-size segments; one cumulative ACK per two segments), and
//! building them costs nothing that is measured. Frames the server emits are parsed by the peer only
//! to track sequence numbers and timestamps.
//!
//! Each scenario exposes the server-side steps as separate `#[inline(never)]` methods so that
//! callgrind can count them one at a time (`--toggle-collect`) and criterion can time them.

#![allow(dead_code)] // each bench/driver uses a different subset

use saps_stack::iface::{Event, Interface, InterfaceConfig, Ipv4Cidr, ListenerHandle, TcpHandle};
use saps_stack::tcp::SeqNumber;
use saps_stack::wire::ethernet::{EthernetAddress, EthernetRepr};
use saps_stack::wire::ipv4::{self, Ipv4Repr};
use saps_stack::wire::tcp::{TcpFlags, TcpOptions, TcpRepr};
use saps_stack::wire::{ChecksumMode, Ipv4Addr};
use saps_stack::{Duration, Instant};

/// Server (device under test) addresses.
pub const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
/// Server IPv4 address.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Peer MAC.
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
/// Peer IPv4 address.
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The listening port.
pub const SERVER_PORT: u16 = 80;
/// Full-size payload for a 1500-byte MTU without TCP options. The figures are for
/// 1460-byte segments, so the primary runs negotiate no timestamps; with timestamps (Linux's
/// default) a full segment carries [`MSS_TS`] bytes.
pub const MSS: usize = 1460;
/// Full-size payload when every segment carries the 12-byte timestamp option.
pub const MSS_TS: usize = 1448;

/// Payload of a full-size segment with or without timestamps.
pub const fn full_segment(timestamps: bool) -> usize {
    if timestamps {
        MSS_TS
    } else {
        MSS
    }
}
/// Time between two frames of a scenario: 10 µs, a 1 Gb/s link's pace for full frames.
pub const TICK: Duration = Duration::from_micros(10);

const ETH_LEN: usize = 14;
const FRAME_CAP: usize = 1514 + 4;

/// The scripted remote endpoint.
pub struct Peer {
    /// Our port.
    pub port: u16,
    /// Next sequence number we send.
    pub snd_nxt: SeqNumber,
    /// Next sequence number we expect from the server (what we acknowledge).
    pub rcv_nxt: SeqNumber,
    /// Send timestamps (TSval/TSecr) on every segment.
    pub timestamps: bool,
    ts_val: u32,
    ts_recent: u32,
    ident: u16,
    payload: Vec<u8>,
    /// The frame most recently built.
    pub frame: Vec<u8>,
}

impl Peer {
    /// A peer on `port` whose ISN is `isn`.
    pub fn new(port: u16, isn: u32, timestamps: bool) -> Peer {
        Peer {
            port,
            snd_nxt: SeqNumber(isn),
            rcv_nxt: SeqNumber(0),
            timestamps,
            ts_val: 1,
            ts_recent: 0,
            ident: 0,
            payload: (0..MSS).map(|i| (i * 7 + 3) as u8).collect(),
            frame: vec![0; FRAME_CAP],
        }
    }

    /// Start over as a new client on `port` with ISN `isn` (buffers reused).
    pub fn reset(&mut self, port: u16, isn: u32) {
        self.port = port;
        self.snd_nxt = SeqNumber(isn);
        self.rcv_nxt = SeqNumber(0);
        self.ts_recent = 0;
    }

    fn build(&mut self, flags: TcpFlags, payload_len: usize, syn_options: bool) -> &[u8] {
        let mut options = TcpOptions::default();
        if syn_options {
            options.mss = Some(MSS as u16);
            options.window_scale = Some(7);
            options.sack_permitted = true;
        }
        if self.timestamps {
            self.ts_val = self.ts_val.wrapping_add(1);
            options.timestamps = Some((self.ts_val, self.ts_recent));
        }
        let repr = TcpRepr {
            src_port: self.port,
            dst_port: SERVER_PORT,
            seq: self.snd_nxt,
            ack: if flags.ack() {
                self.rcv_nxt
            } else {
                SeqNumber(0)
            },
            flags,
            // 64240 << 7: never the limit.
            window: 64240,
            urgent: 0,
            options,
            payload: &self.payload[..payload_len],
        };
        let l4 = ETH_LEN + ipv4::HEADER_LEN;
        let tcp_len = repr.emit(
            &mut self.frame[l4..],
            PEER_IP,
            SERVER_IP,
            ChecksumMode::SOFTWARE,
        );
        self.ident = self.ident.wrapping_add(1);
        Ipv4Repr {
            src: PEER_IP,
            dst: SERVER_IP,
            protocol: 6,
            ttl: 64,
            ident: self.ident,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            dscp_ecn: 0,
            payload_len: tcp_len,
        }
        .emit(&mut self.frame[ETH_LEN..], ChecksumMode::SOFTWARE);
        EthernetRepr {
            dst: SERVER_MAC,
            src: PEER_MAC,
            ethertype: 0x0800,
            vlan: None,
        }
        .emit(&mut self.frame);
        self.snd_nxt = self.snd_nxt + repr.segment_len() as u32;
        &self.frame[..l4 + tcp_len]
    }

    /// A SYN with Linux's options.
    pub fn syn(&mut self) -> &[u8] {
        self.build(TcpFlags::SYN, 0, true)
    }

    /// A pure ACK of everything received so far.
    pub fn ack(&mut self) -> &[u8] {
        self.build(TcpFlags::ACK, 0, false)
    }

    /// A full-size data segment (ACK set, PSH clear as in bulk transfer).
    pub fn data(&mut self) -> &[u8] {
        self.build(TcpFlags::ACK, full_segment(self.timestamps), false)
    }

    /// FIN (with ACK).
    pub fn fin(&mut self) -> &[u8] {
        self.build(TcpFlags::FIN | TcpFlags::ACK, 0, false)
    }

    /// Learn from a frame the server sent: the next sequence number to acknowledge and the
    /// timestamp to echo. Returns the TCP flags, or `None` for a non-TCP frame.
    pub fn absorb(&mut self, frame: &[u8]) -> Option<TcpFlags> {
        let (eth, packet) = EthernetRepr::parse(frame).ok()?;
        if eth.ethertype != 0x0800 {
            return None;
        }
        let (ip, segment) = Ipv4Repr::parse(packet, ChecksumMode::OFFLOAD).ok()?;
        if ip.protocol != 6 {
            return None;
        }
        let seg = TcpRepr::parse(segment, ip.src, ip.dst, ChecksumMode::OFFLOAD).ok()?;
        if seg.flags.syn() {
            self.rcv_nxt = seg.seq;
        }
        let end = seg.seq + seg.segment_len() as u32;
        if end > self.rcv_nxt {
            self.rcv_nxt = end;
        }
        if let Some((tsval, _)) = seg.options.timestamps {
            self.ts_recent = tsval;
        }
        Some(seg.flags)
    }
}

/// How the server is configured for a run.
#[derive(Copy, Clone, Debug, Default)]
pub struct Setup {
    /// Negotiate TCP timestamps (full segments then carry [`MSS_TS`] bytes).
    pub timestamps: bool,
    /// Checksums offloaded to the NIC ([`ChecksumMode::OFFLOAD`]): no software verification or
    /// computation, to show what the protocol processing alone costs.
    pub offload: bool,
}

/// A server interface with a listener on [`SERVER_PORT`], its gratuitous ARPs already drained.
pub fn server(now: Instant, setup: Setup) -> (Interface, ListenerHandle) {
    let mut cfg = InterfaceConfig::new(SERVER_MAC, Ipv4Cidr::new(SERVER_IP, 24));
    cfg.tcp.timestamps = setup.timestamps;
    // The scripted peer does not answer ARP: keep its gleaned entry valid for the whole run
    // (criterion runs millions of steps, minutes of virtual time; a refresh once a minute would
    // be negligible per packet anyway).
    cfg.arp.ttl = Duration::from_secs(1 << 30);
    if setup.offload {
        cfg.checksum = ChecksumMode::OFFLOAD;
        cfg.tcp.checksum = ChecksumMode::OFFLOAD;
    }
    // Room for the connection-per-iteration scenario without TIME_WAIT pressure.
    let mut iface = Interface::new(cfg, now);
    let listener = iface.tcp_listen(SERVER_PORT, None).expect("listen");
    let mut buf = vec![0u8; FRAME_CAP];
    while iface.poll_transmit(now, &mut buf).is_some() {}
    (iface, listener)
}

// ---------------------------------------------------------------------------------------------
// Measured calls. Each scenario step takes `const M: bool`: with `M` the server-side calls go
// through these `#[inline(never)]` functions, whose names callgrind's `--toggle-collect` matches
// (`*cg_server_*`); without it (warm-up, criterion) the same calls are made directly. Everything
// else a step does (building the peer's frames, parsing the server's) is never counted.
// ---------------------------------------------------------------------------------------------

/// Measured: `handle_frame` of one received frame.
#[inline(never)]
pub fn cg_server_rx(iface: &mut Interface, now: Instant, frame: &[u8]) {
    iface.handle_frame(now, frame);
}

/// Measured: one `poll_transmit` call.
#[inline(never)]
pub fn cg_server_tx(iface: &mut Interface, now: Instant, buf: &mut [u8]) -> Option<usize> {
    iface.poll_transmit(now, buf)
}

/// Measured: the application's work (events and socket calls), given as a closure.
#[inline(never)]
pub fn cg_server_app<R>(iface: &mut Interface, f: impl FnOnce(&mut Interface) -> R) -> R {
    f(iface)
}

#[inline(always)]
fn rx<const M: bool>(iface: &mut Interface, now: Instant, frame: &[u8]) {
    if M {
        cg_server_rx(iface, now, frame)
    } else {
        iface.handle_frame(now, frame)
    }
}

#[inline(always)]
fn tx<const M: bool>(iface: &mut Interface, now: Instant, buf: &mut [u8]) -> Option<usize> {
    if M {
        cg_server_tx(iface, now, buf)
    } else {
        iface.poll_transmit(now, buf)
    }
}

#[inline(always)]
fn app<const M: bool, R>(iface: &mut Interface, f: impl FnOnce(&mut Interface) -> R) -> R {
    if M {
        cg_server_app(iface, f)
    } else {
        f(iface)
    }
}

/// Every frame due from the server, each absorbed by the peer; returns how many.
fn drain<const M: bool>(
    iface: &mut Interface,
    now: Instant,
    buf: &mut [u8],
    peer: &mut Peer,
) -> usize {
    let mut frames = 0;
    while let Some(n) = tx::<M>(iface, now, buf) {
        frames += 1;
        peer.absorb(&buf[..n]);
    }
    frames
}

/// One established connection between the server and a [`Peer`], plus the clock and buffers.
pub struct Established {
    /// The server.
    pub iface: Interface,
    /// The server's handle of the connection.
    pub handle: TcpHandle,
    /// The scripted client.
    pub peer: Peer,
    /// Virtual clock.
    pub now: Instant,
    /// Server TX buffer (what a port's TX slot would be).
    pub tx: Vec<u8>,
    /// Application buffer (source of sends, destination of receives).
    pub app: Vec<u8>,
}

impl Established {
    /// Opens one connection through the real handshake.
    pub fn new(setup: Setup) -> Established {
        let now = Instant::from_millis(1_000);
        let (mut iface, listener) = server(now, setup);
        let mut peer = Peer::new(40_000, 0x1000_0000, setup.timestamps);
        let mut tx = vec![0u8; FRAME_CAP];
        iface.handle_frame(now, peer.syn());
        let n = iface.poll_transmit(now, &mut tx).expect("SYN-ACK");
        let flags = peer.absorb(&tx[..n]).expect("tcp");
        assert!(flags.syn() && flags.ack(), "expected SYN-ACK");
        iface.handle_frame(now, peer.ack());
        let handle = iface.tcp_accept(listener).expect("accepted");
        while iface.poll_event().is_some() {}
        drain::<false>(&mut iface, now, &mut tx, &mut peer);
        Established {
            iface,
            handle,
            peer,
            now,
            tx,
            app: vec![0u8; 64 * 1024],
        }
    }

    /// Advance the virtual clock by one tick.
    #[inline(always)]
    pub fn tick(&mut self) {
        self.now += TICK;
    }
}

/// Receive scenario: the server is in ESTABLISHED and receives in-order full-size segments.
/// One step = two segments (the unit of delayed ACK). Per segment, in the documented call order:
/// `handle_frame`, the application drains events and reads everything, `poll_transmit` until
/// `None` (which yields the one cumulative ACK after every second segment).
pub struct RxScenario {
    /// The connection.
    pub conn: Established,
    /// Segments received so far.
    pub segments: u64,
    /// Frames the server sent so far (ACKs).
    pub acks: u64,
    /// Bytes the application read so far.
    pub bytes: u64,
}

impl RxScenario {
    /// Opens the connection and warms it up.
    pub fn new(setup: Setup) -> RxScenario {
        let mut s = RxScenario {
            conn: Established::new(setup),
            segments: 0,
            acks: 0,
            bytes: 0,
        };
        for _ in 0..256 {
            s.step::<false>();
        }
        s.reset_counts();
        s
    }

    /// Zero the counters (after warm-up).
    pub fn reset_counts(&mut self) {
        self.segments = 0;
        self.acks = 0;
        self.bytes = 0;
    }

    /// Two segments in, read, ACK out.
    #[inline(always)]
    pub fn step<const M: bool>(&mut self) {
        let c = &mut self.conn;
        for _ in 0..2 {
            c.tick();
            c.peer.data();
            rx::<M>(&mut c.iface, c.now, &c.peer.frame);
            let (now, h, buf) = (c.now, c.handle, &mut c.app);
            let n = app::<M, _>(&mut c.iface, |i| {
                while i.poll_event().is_some() {}
                let mut total = 0;
                while let Ok(n @ 1..) = i.tcp_recv(now, h, buf) {
                    total += n;
                }
                total
            });
            self.bytes += n as u64;
            self.acks += drain::<M>(&mut c.iface, c.now, &mut c.tx, &mut c.peer) as u64;
            self.segments += 1;
        }
    }
}

/// Bytes queued for sending in the TX scenario before the first step.
pub const TX_BACKLOG: usize = 32 * MSS;

/// Segments still in flight (sent, not yet acknowledged) after each ACK of the send scenario:
/// the peer acknowledges with a lag, as over a real path, so the sender always has data in flight.
pub const TX_IN_FLIGHT: usize = 8;

/// Send scenario: the server's application keeps the send buffer full; the server sends
/// full-size segments; the peer acknowledges every second one, [`TX_IN_FLIGHT`] segments behind.
/// One step = two `poll_transmit` calls (two data segments), one ACK received (acknowledging
/// two segments), the application tops the send buffer up.
pub struct TxScenario {
    /// The connection.
    pub conn: Established,
    /// End sequence numbers of the segments sent and not yet acknowledged by the peer.
    ends: std::collections::VecDeque<SeqNumber>,
    /// Data segments sent so far.
    pub segments: u64,
    /// Payload bytes sent so far.
    pub bytes: u64,
}

impl TxScenario {
    /// Opens the connection, fills the send buffer and warms up (cwnd opens during warm-up).
    pub fn new(setup: Setup) -> TxScenario {
        let mut s = TxScenario {
            conn: Established::new(setup),
            ends: std::collections::VecDeque::with_capacity(4 * TX_IN_FLIGHT),
            segments: 0,
            bytes: 0,
        };
        let c = &mut s.conn;
        let queued = c
            .iface
            .tcp_send(c.now, c.handle, &c.app[..TX_BACKLOG])
            .expect("send");
        assert_eq!(queued, TX_BACKLOG);
        for _ in 0..256 {
            s.step::<false>();
        }
        s.segments = 0;
        s.bytes = 0;
        s
    }

    /// Two segments out, the peer's ACK in, the application tops up what was sent.
    #[inline(always)]
    pub fn step<const M: bool>(&mut self) {
        let c = &mut self.conn;
        let seg = full_segment(c.peer.timestamps);
        for _ in 0..2 {
            c.tick();
            let n = tx::<M>(&mut c.iface, c.now, &mut c.tx).expect("a data segment is due");
            c.peer.absorb(&c.tx[..n]);
            self.ends.push_back(c.peer.rcv_nxt);
            self.segments += 1;
            // Ethernet, IPv4 and TCP headers (plus the timestamp option when negotiated).
            self.bytes += (n - 54 - if c.peer.timestamps { 12 } else { 0 }) as u64;
        }
        if self.ends.len() >= TX_IN_FLIGHT + 2 {
            // Acknowledge the oldest two segments only.
            self.ends.pop_front();
            let acked = self.ends.pop_front().expect("two queued");
            let received = c.peer.rcv_nxt;
            c.peer.rcv_nxt = acked;
            c.tick();
            c.peer.ack();
            c.peer.rcv_nxt = received;
            rx::<M>(&mut c.iface, c.now, &c.peer.frame);
        }
        let (now, h, buf) = (c.now, c.handle, &c.app[..2 * seg]);
        app::<M, _>(&mut c.iface, |i| {
            while i.poll_event().is_some() {}
            i.tcp_send(now, h, buf)
        })
        .expect("send");
    }
}

/// Connection scenario: one whole server-side connection life per step, closed by the client
/// first (the server's passive close, so nothing lingers in TIME_WAIT on the server). Frames,
/// each followed by the application's reaction and `poll_transmit` until `None`:
/// SYN in (SYN-ACK out), ACK in (accept), FIN in (ACK out; application closes; FIN out),
/// ACK in (connection freed).
pub struct ConnScenario {
    /// The server.
    pub iface: Interface,
    /// Virtual clock.
    pub now: Instant,
    /// The current client.
    pub peer: Peer,
    /// Server TX buffer.
    pub tx: Vec<u8>,
    /// Connections completed.
    pub connections: u64,
    /// Frames the server sent.
    pub frames_out: u64,
    next_port: u16,
    timestamps: bool,
}

impl ConnScenario {
    /// A server with a listener, warmed up by a few connections.
    pub fn new(setup: Setup) -> ConnScenario {
        let now = Instant::from_millis(1_000);
        let (iface, _listener) = server(now, setup);
        let timestamps = setup.timestamps;
        let mut s = ConnScenario {
            iface,
            now,
            peer: Peer::new(1, 0, timestamps),
            tx: vec![0u8; FRAME_CAP],
            connections: 0,
            frames_out: 0,
            next_port: 1024,
            timestamps,
        };
        for _ in 0..256 {
            s.step::<false>();
        }
        s.connections = 0;
        s.frames_out = 0;
        s
    }

    #[inline(always)]
    fn turn<const M: bool>(&mut self) {
        self.now += TICK;
        rx::<M>(&mut self.iface, self.now, &self.peer.frame);
        let now = self.now;
        app::<M, _>(&mut self.iface, |i| {
            while let Some(ev) = i.poll_event() {
                match ev {
                    Event::Acceptable(l) => while i.tcp_accept(l).is_some() {},
                    Event::PeerClosed(h) | Event::Closed(h, _) => {
                        let _ = i.tcp_close(now, h);
                    }
                    _ => {}
                }
            }
        });
        self.frames_out +=
            drain::<M>(&mut self.iface, self.now, &mut self.tx, &mut self.peer) as u64;
    }

    /// One connection from SYN to the server's release of it. Panics if the server did not
    /// free it (the scenario would then measure something else).
    #[inline(always)]
    pub fn step<const M: bool>(&mut self) {
        self.next_port = if self.next_port == u16::MAX {
            1024
        } else {
            self.next_port + 1
        };
        let isn = (self.next_port as u32).wrapping_mul(0x9e37_79b9);
        self.peer.reset(self.next_port, isn);
        self.peer.syn();
        self.turn::<M>();
        self.peer.ack();
        self.turn::<M>();
        self.peer.fin();
        self.turn::<M>();
        self.peer.ack();
        self.turn::<M>();
        assert_eq!(self.iface.tcp_connection_count(), 0, "connection not freed");
        self.connections += 1;
    }
}
