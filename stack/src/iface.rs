//! The interface: Ethernet, ARP, IPv4, ICMP, UDP and TCP tied together behind one sans-IO API.
//!
//! Call order, per poll-loop turn (all calls take `now`; nothing here reads a clock):
//! 1. [`Interface::handle_frame`] for every received frame;
//! 2. the application's calls (`tcp_*`, `udp_*`) and [`Interface::poll_event`] until `None`;
//! 3. [`Interface::handle_timeouts`] when [`Interface::poll_timeout`] has passed;
//! 4. [`Interface::poll_transmit`] into each free TX slot until it returns `None`;
//! 5. [`Interface::handle_tx_completions`] with what the port reports.
//!
//! Output order inside `poll_transmit`: ready frames (ARP, ICMP, UDP, RSTs, cookie SYN-ACKs), then
//! TCP control segments (ACKs, SYN, FIN, RST), then data segments in the order the egress scheduler
//! admits them. Control never waits behind data.
//!
//! Scale: connections live in a slab indexed by a dense `u32`; a segment finds its connection
//! through a keyed-hash table (SipHash with a per-instance secret, resistant to hash flooding);
//! timers sit in a timing wheel keyed by slab index, so nothing ever scans all connections.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::arp_cache::{ArpCache, ArpConfig, Resolution};
use crate::egress::{EgressScheduler, FifoEgress};
use crate::stats::{DropReason, StackStats};
use crate::tcp::conn::{CloseReason, ConnEvent, Connection, State, TcpError};
use crate::tcp::isn::{IsnGenerator, KeyedState};
use crate::tcp::syncookie::{CookieOptions, SynCookies};
use crate::tcp::{SeqNumber, TcpConfig};
use crate::time::{Duration, Instant};
use crate::timer::TimerWheel;
use crate::udp::{UdpError, UdpHandle, UdpMeta, UdpSockets};
use crate::wire::arp::{self, ArpOperation, ArpRepr};
use crate::wire::ethernet::{EthernetAddress, EthernetRepr};
use crate::wire::icmpv4::Icmpv4Repr;
use crate::wire::ipv4::{self, Ipv4Repr};
use crate::wire::tcp::{TcpFlags, TcpOptions, TcpRepr};
use crate::wire::udp::{self as wudp, UdpRepr};
use crate::wire::ChecksumMode;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const ETH_HEADER_LEN: usize = 14;
const L3_OFFSET: usize = ETH_HEADER_LEN;
const L4_OFFSET: usize = ETH_HEADER_LEN + ipv4::HEADER_LEN;
const ICMP_UNREACHABLE_PORT: u8 = 3;
const ICMP_UNREACHABLE_FRAG_NEEDED: u8 = 4;
const DEFAULT_TTL: u8 = 64;
const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

/// An IPv4 address with its prefix length (an interface address).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address.
    pub address: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// A CIDR value; `prefix_len` above 32 is clamped to 32.
    pub const fn new(address: Ipv4Addr, prefix_len: u8) -> Self {
        Ipv4Cidr {
            address,
            prefix_len: if prefix_len > 32 { 32 } else { prefix_len },
        }
    }

    fn mask(self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len as u32)
        }
    }

    /// Whether `ip` is in this subnet.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.address)) & self.mask() == 0
    }

    /// The subnet's directed-broadcast address.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) | !self.mask())
    }
}

/// Everything the interface needs to know at construction.
#[derive(Clone, Debug)]
pub struct InterfaceConfig {
    /// Our MAC address.
    pub mac: EthernetAddress,
    /// Our IPv4 addresses (the first is the primary one, used for gratuitous ARP first and as the
    /// source of connections to off-link hosts).
    pub addresses: Vec<Ipv4Cidr>,
    /// Default gateway for destinations outside every local subnet.
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU of the link.
    pub mtu: usize,
    /// Software checksums or NIC offload.
    pub checksum: ChecksumMode,
    /// Default TCP settings (listeners and connects may override).
    pub tcp: TcpConfig,
    /// ARP cache tunables.
    pub arp: ArpConfig,
    /// Seed for ISNs, SYN cookies and the flow-table hash key. Distinct per instance.
    pub seed: u64,
    /// Most TCP connections (all states) at once.
    pub max_connections: usize,
    /// Half-open connections per listener before SYN cookies (or drops) start.
    pub syn_backlog: usize,
    /// Established connections waiting for `tcp_accept` per listener.
    pub accept_backlog: usize,
    /// Answer SYNs with cookies when the SYN backlog is full.
    pub syn_cookies: bool,
    /// Out-of-order bytes buffered across all connections.
    pub ooo_total_budget: usize,
    /// Frames (ARP, ICMP, UDP, RSTs, frames waiting for ARP) held by the interface.
    pub frame_slots: usize,
    /// Frames held per unresolved next hop.
    pub arp_pending_per_hop: usize,
    /// UDP receive queue per socket, bytes.
    pub udp_rx_bytes: usize,
    /// UDP receive queue per socket, datagrams.
    pub udp_rx_datagrams: usize,
}

impl InterfaceConfig {
    /// Defaults for an interface with one address.
    pub fn new(mac: EthernetAddress, address: Ipv4Cidr) -> Self {
        InterfaceConfig {
            mac,
            addresses: vec![address],
            gateway: None,
            mtu: 1500,
            checksum: ChecksumMode::SOFTWARE,
            tcp: TcpConfig::default(),
            arp: ArpConfig::default(),
            seed: 0x5a95_5a95,
            max_connections: 1 << 20,
            syn_backlog: 1024,
            accept_backlog: 1024,
            syn_cookies: true,
            ooo_total_budget: 64 << 20,
            frame_slots: 512,
            arp_pending_per_hop: 16,
            udp_rx_bytes: 256 << 10,
            udp_rx_datagrams: 1024,
        }
    }
}

/// A TCP connection as the application names it. Stale handles (of a freed, reused slot) are
/// rejected, never confused with the new occupant.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpHandle {
    index: u32,
    generation: u32,
}

impl TcpHandle {
    /// The slab index (stable for the connection's life; useful as a map key or flow id).
    pub fn index(self) -> u32 {
        self.index
    }
}

/// A listening TCP port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenerHandle {
    index: u32,
    generation: u32,
}

/// What the interface tells the application.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A listener has a connection waiting in its accept queue.
    Acceptable(ListenerHandle),
    /// An active open completed.
    Connected(TcpHandle),
    /// Data (or the peer's FIN) can be read.
    Readable(TcpHandle),
    /// Send-buffer space became available.
    Writable(TcpHandle),
    /// The peer sent FIN: no more data will arrive.
    PeerClosed(TcpHandle),
    /// The connection ended. The handle stays valid until `tcp_close` or `tcp_abort`.
    Closed(TcpHandle, CloseReason),
    /// A UDP socket has datagrams.
    UdpReadable(UdpHandle),
}

/// Why a socket call failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SocketError {
    /// The handle names no open socket.
    InvalidHandle,
    /// The port is already in use.
    AddrInUse,
    /// No free ephemeral port for this destination.
    NoEphemeralPort,
    /// No local subnet contains the destination and there is no gateway.
    NoRoute,
    /// The connection limit is reached.
    TooManyConnections,
    /// The TCP connection refused the call.
    Tcp(TcpError),
    /// The UDP socket refused the call.
    Udp(UdpError),
}

impl core::fmt::Display for SocketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SocketError::InvalidHandle => f.write_str("invalid socket handle"),
            SocketError::AddrInUse => f.write_str("address in use"),
            SocketError::NoEphemeralPort => f.write_str("no free ephemeral port"),
            SocketError::NoRoute => f.write_str("no route to host"),
            SocketError::TooManyConnections => f.write_str("connection limit reached"),
            SocketError::Tcp(e) => write!(f, "tcp: {e:?}"),
            SocketError::Udp(e) => write!(f, "udp: {e}"),
        }
    }
}

impl std::error::Error for SocketError {}

impl From<UdpError> for SocketError {
    fn from(e: UdpError) -> Self {
        SocketError::Udp(e)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct FourTuple {
    local: SocketAddrV4,
    remote: SocketAddrV4,
}

impl std::hash::Hash for FourTuple {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Two fixed-size writes instead of the derived six (arrays add length prefixes): this
        // hash runs for every received segment.
        let ips = (u32::from(*self.local.ip()) as u64) << 32 | u32::from(*self.remote.ip()) as u64;
        state.write_u64(ips);
        state.write_u32((self.local.port() as u32) << 16 | self.remote.port() as u32);
    }
}

const IN_CONTROL_QUEUE: u8 = 1;
const IN_EVENT_QUEUE: u8 = 2;
/// The application owns the handle (accepted or connected).
const OWNED: u8 = 4;
/// The application closed or aborted its handle: free the slot once the connection is closed.
const RELEASED: u8 = 8;
/// Counted in its listener's SYN backlog (half-open, not yet in the accept queue).
const IN_SYN_BACKLOG: u8 = 16;
/// Waiting in its listener's accept queue.
const IN_ACCEPT_QUEUE: u8 = 32;

struct Slot {
    conn: Connection,
    generation: u32,
    listener: u32,
    flags: u8,
    state: State,
    /// Out-of-order bytes this connection held at its last activity (for the global budget).
    ooo: u32,
    /// Ethernet and IPv4 headers of this connection's segments, built at its first segment
    /// sent to a resolved next hop and rebuilt if that hop's MAC changes.
    frame: Option<FrameTemplate>,
}

/// The Ethernet and IPv4 headers of one connection's segments: everything but the IPv4 total
/// length, identification and checksum is fixed for the connection's life (the route never
/// changes: the interface's addresses and gateway are fixed), so a segment's headers are a
/// 34-byte copy and three patched fields, the checksum updated from the fixed fields' sum
/// (RFC 1624 style) instead of summing the header again.
#[derive(Copy, Clone, Debug)]
struct FrameTemplate {
    /// The headers with total length, identification and checksum zero.
    bytes: [u8; L4_OFFSET],
    /// One's-complement sum (not folded) of the IPv4 header's 16-bit words as stored in `bytes`.
    ip_sum: u32,
    /// The next hop the destination MAC belongs to.
    next_hop: Ipv4Addr,
    /// The destination MAC in `bytes`.
    mac: EthernetAddress,
}

impl FrameTemplate {
    fn new(
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        next_hop: Ipv4Addr,
    ) -> Self {
        let mut bytes = [0u8; L4_OFFSET];
        tcp_frame_headers(
            src_mac,
            dst_mac,
            src,
            dst,
            0,
            0,
            ChecksumMode::OFFLOAD,
            &mut bytes,
        );
        // Total length back to zero: it is patched per segment.
        bytes[L3_OFFSET + 2..L3_OFFSET + 4].fill(0);
        let ip_sum = crate::wire::checksum::sum(&bytes[L3_OFFSET..], 0);
        FrameTemplate {
            bytes,
            ip_sum,
            next_hop,
            mac: dst_mac,
        }
    }
}

/// The Ethernet and IPv4 headers of a TCP segment of `l4_len` bytes (the generic emitters; the
/// reference for [`FrameTemplate`]).
#[allow(clippy::too_many_arguments)]
fn tcp_frame_headers(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    l4_len: usize,
    checksum: ChecksumMode,
    buf: &mut [u8],
) {
    EthernetRepr {
        dst: dst_mac,
        src: src_mac,
        ethertype: ETHERTYPE_IPV4,
        vlan: None,
    }
    .emit(buf);
    Ipv4Repr {
        src,
        dst,
        protocol: PROTO_TCP,
        ttl: DEFAULT_TTL,
        ident,
        dont_fragment: true,
        more_fragments: false,
        fragment_offset: 0,
        dscp_ecn: 0,
        payload_len: l4_len,
    }
    .emit(&mut buf[L3_OFFSET..], checksum);
}

struct Listener {
    port: u16,
    generation: u32,
    cfg: TcpConfig,
    half_open: usize,
    accept_queue: VecDeque<u32>,
    event_pending: bool,
}

/// Frames the interface built itself (ARP, ICMP, UDP, RSTs) or that wait for ARP resolution.
/// Buffers are allocated once per slot and reused.
struct FrameSlots {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    free: Vec<u16>,
    ready: VecDeque<u16>,
    /// (slot, next hop) for frames whose destination MAC is not known yet.
    waiting: Vec<(u16, Ipv4Addr)>,
    frame_capacity: usize,
}

impl FrameSlots {
    fn new(slots: usize, frame_capacity: usize) -> Self {
        let slots = slots.clamp(4, u16::MAX as usize);
        FrameSlots {
            bufs: (0..slots).map(|_| Vec::new()).collect(),
            lens: vec![0; slots],
            free: (0..slots as u16).rev().collect(),
            ready: VecDeque::with_capacity(slots),
            waiting: Vec::new(),
            frame_capacity,
        }
    }

    /// A free slot's buffer, allocated on first use.
    fn take(&mut self) -> Option<(u16, &mut [u8])> {
        let slot = self.free.pop()?;
        let buf = &mut self.bufs[slot as usize];
        if buf.len() < self.frame_capacity {
            buf.resize(self.frame_capacity, 0);
        }
        Some((slot, &mut buf[..]))
    }

    fn give_back(&mut self, slot: u16) {
        self.free.push(slot);
    }

    fn waiting_for(&self, hop: Ipv4Addr) -> usize {
        self.waiting.iter().filter(|(_, h)| *h == hop).count()
    }
}

/// Result of routing a destination.
#[derive(Copy, Clone, Debug)]
struct Route {
    source: Ipv4Addr,
    next_hop: Ipv4Addr,
}

/// The sans-IO network interface: one MAC, several IPv4 addresses, a TCP/UDP socket layer.
pub struct Interface<E: EgressScheduler = FifoEgress> {
    cfg: InterfaceConfig,
    stats: StackStats,
    arp: ArpCache,
    frames: FrameSlots,
    slots: Vec<Option<Slot>>,
    free_slots: Vec<u32>,
    generation: u32,
    flows: HashMap<FourTuple, u32, KeyedState>,
    listeners: Vec<Option<Listener>>,
    listener_by_port: HashMap<u16, u32>,
    control_queue: VecDeque<u32>,
    event_queue: VecDeque<u32>,
    listener_events: VecDeque<u32>,
    udp_events: VecDeque<UdpHandle>,
    udp: UdpSockets,
    egress: E,
    timers: TimerWheel,
    isn: IsnGenerator,
    cookies: SynCookies,
    ip_ident: u16,
    next_ephemeral: u16,
    states: [u64; State::COUNT],
    /// Out-of-order bytes buffered across all connections.
    ooo_total: usize,
    started: bool,
    scratch_hops: Vec<Ipv4Addr>,
    /// Flows whose data segment could not be built during one `poll_transmit` call.
    scratch_deferred: Vec<u32>,
    /// The flow in its egress burst (`dequeue_burst`), kept across `poll_transmit` calls.
    burst: Burst,
    /// Slot of the connection the last TCP segment went to (`u32::MAX`: none): segments come
    /// in trains, and checking this one slot's 4-tuple costs far less than hashing it.
    last_flow: u32,
}

/// A burst granted by the egress scheduler: which flow, how many segments it may still send
/// without asking again, and what it sent so far (reported once, at the burst's end).
#[derive(Copy, Clone, Debug)]
struct Burst {
    flow: u32,
    left: u32,
    packets: u32,
    bytes: usize,
}

impl Burst {
    const IDLE: Burst = Burst {
        flow: u32::MAX,
        left: 0,
        packets: 0,
        bytes: 0,
    };
}

fn secret_from(seed: u64, domain: u64) -> [u8; 16] {
    // SplitMix64 expansion of the seed: distinct secrets per purpose from one seed.
    let mut x = seed ^ domain.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
    out
}

impl Interface<FifoEgress> {
    /// An interface with the plain FIFO egress policy.
    pub fn new(cfg: InterfaceConfig, now: Instant) -> Self {
        Self::with_egress(cfg, FifoEgress::new(), now)
    }
}

impl<E: EgressScheduler> Interface<E> {
    /// An interface whose data segments are admitted by `egress`. Queues a gratuitous ARP for
    /// every address.
    pub fn with_egress(cfg: InterfaceConfig, egress: E, now: Instant) -> Self {
        let frame_capacity = cfg.mtu + ETH_HEADER_LEN + 4;
        let flow_key = secret_from(cfg.seed, 1);
        let mut iface = Interface {
            arp: ArpCache::new(cfg.arp),
            frames: FrameSlots::new(cfg.frame_slots, frame_capacity),
            stats: StackStats::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            generation: 0,
            flows: HashMap::with_hasher(KeyedState::from_secret(flow_key)),
            listeners: Vec::new(),
            listener_by_port: HashMap::new(),
            control_queue: VecDeque::new(),
            event_queue: VecDeque::new(),
            listener_events: VecDeque::new(),
            udp_events: VecDeque::new(),
            udp: UdpSockets::new(),
            egress,
            timers: TimerWheel::new(Duration::from_millis(1), 4096, 1024),
            isn: IsnGenerator::new(secret_from(cfg.seed, 2)),
            cookies: SynCookies::new(secret_from(cfg.seed, 3)),
            ip_ident: (cfg.seed >> 16) as u16,
            next_ephemeral: *EPHEMERAL_PORTS.start() + (cfg.seed % 16384) as u16,
            states: [0; State::COUNT],
            ooo_total: 0,
            started: false,
            scratch_hops: Vec::new(),
            scratch_deferred: Vec::new(),
            burst: Burst::IDLE,
            last_flow: u32::MAX,
            cfg,
        };
        iface.announce(now);
        iface
    }

    /// Queue a gratuitous ARP (an ARP request for our own address) for every address, so
    /// neighbours and switches learn where we are.
    pub fn announce(&mut self, _now: Instant) {
        let addresses = self.cfg.addresses.clone();
        for cidr in addresses {
            let repr = ArpRepr {
                operation: ArpOperation::Request,
                sender_hw: self.cfg.mac,
                sender_ip: cidr.address,
                target_hw: EthernetAddress([0; 6]),
                target_ip: cidr.address,
            };
            self.queue_arp(repr, EthernetAddress::BROADCAST);
        }
        self.started = true;
    }

    /// The configuration in force.
    pub fn config(&self) -> &InterfaceConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &StackStats {
        &self.stats
    }

    /// Connections per TCP state, indexed like [`State::ALL`].
    pub fn connection_states(&self) -> &[u64; State::COUNT] {
        &self.states
    }

    /// The egress scheduler (for its own counters).
    pub fn egress(&self) -> &E {
        &self.egress
    }

    /// Mutable access to the egress scheduler.
    pub fn egress_mut(&mut self) -> &mut E {
        &mut self.egress
    }

    /// Whether `ip` is one of our addresses.
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.cfg.addresses.iter().any(|c| c.address == ip)
    }

    fn is_local_broadcast(&self, ip: Ipv4Addr) -> bool {
        ip.is_broadcast()
            || self
                .cfg
                .addresses
                .iter()
                .any(|c| c.prefix_len < 31 && c.broadcast() == ip)
    }

    fn route(&self, dst: Ipv4Addr) -> Option<Route> {
        if let Some(c) = self.cfg.addresses.iter().find(|c| c.contains(dst)) {
            return Some(Route {
                source: c.address,
                next_hop: dst,
            });
        }
        let gw = self.cfg.gateway?;
        let c = self.cfg.addresses.iter().find(|c| c.contains(gw))?;
        Some(Route {
            source: c.address,
            next_hop: gw,
        })
    }

    // ---------------------------------------------------------------------------------------
    // Input
    // ---------------------------------------------------------------------------------------

    /// Process one received Ethernet frame. Malformed or foreign frames are counted and dropped.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.stats.eth_rx.add(frame.len());
        let (eth, payload) = match EthernetRepr::parse(frame) {
            Ok(v) => v,
            Err(_) => return self.stats.drop(DropReason::Malformed),
        };
        if eth.vlan.is_some() {
            // Tagged frames belong to a VLAN this interface is not configured for.
            return self.stats.drop(DropReason::NotForUs);
        }
        if eth.dst != self.cfg.mac && !eth.dst.is_broadcast() {
            return self.stats.drop(DropReason::NotForUs);
        }
        match eth.ethertype {
            ETHERTYPE_ARP => self.handle_arp(now, payload),
            ETHERTYPE_IPV4 => self.handle_ipv4(now, &eth, payload),
            _ => self.stats.drop(DropReason::UnsupportedProtocol),
        }
    }

    fn handle_arp(&mut self, now: Instant, payload: &[u8]) {
        self.stats.arp_rx.add(payload.len());
        let repr = match ArpRepr::parse(payload) {
            Ok(r) => r,
            Err(crate::wire::WireError::Unsupported) => {
                return self.stats.drop(DropReason::UnsupportedProtocol)
            }
            Err(_) => return self.stats.drop(DropReason::Malformed),
        };
        let for_us = self.is_local(repr.target_ip);
        // RFC 826: update an existing entry from any ARP packet; add one only when it is for us.
        if for_us || self.arp.contains(repr.sender_ip) {
            let was_pending = self.arp.fill(repr.sender_ip, repr.sender_hw, now);
            if was_pending {
                self.release_waiting(repr.sender_ip, repr.sender_hw);
            }
        }
        if !for_us {
            return;
        }
        if repr.operation == ArpOperation::Request && repr.sender_ip != repr.target_ip {
            let reply = ArpRepr {
                operation: ArpOperation::Reply,
                sender_hw: self.cfg.mac,
                sender_ip: repr.target_ip,
                target_hw: repr.sender_hw,
                target_ip: repr.sender_ip,
            };
            self.queue_arp(reply, repr.sender_hw);
        }
    }

    fn handle_ipv4(&mut self, now: Instant, eth: &EthernetRepr, packet: &[u8]) {
        let (ip, payload) = match Ipv4Repr::parse(packet, self.cfg.checksum) {
            Ok(v) => v,
            Err(crate::wire::WireError::Checksum) => {
                return self.stats.drop(DropReason::BadChecksum)
            }
            Err(_) => return self.stats.drop(DropReason::Malformed),
        };
        self.stats.ipv4_rx.add(packet.len());
        if ip.is_fragment() {
            // Reassembly is deliberately not supported: TCP peers use PMTU discovery (DF set),
            // and fragments are a classic resource-exhaustion vector for an edge appliance.
            return self.stats.drop(DropReason::Fragment);
        }
        let unicast = self.is_local(ip.dst);
        if !unicast && !self.is_local_broadcast(ip.dst) {
            return self.stats.drop(DropReason::NotForUs);
        }
        // Glean the sender's MAC when it is on-link: the reply usually goes straight back.
        if unicast
            && eth.src.is_unicast()
            && !self.arp.is_last_resolved(ip.src, now)
            && self.cfg.addresses.iter().any(|c| c.contains(ip.src))
            && self.arp.lookup(ip.src, now).is_none()
            && self.arp.fill(ip.src, eth.src, now)
        {
            self.release_waiting(ip.src, eth.src);
        }
        match ip.protocol {
            PROTO_ICMP => self.handle_icmp(now, &ip, payload, unicast),
            PROTO_UDP => self.handle_udp(now, &ip, packet, payload, unicast),
            PROTO_TCP if unicast => self.handle_tcp(now, &ip, payload),
            PROTO_TCP => self.stats.drop(DropReason::NotForUs),
            _ => self.stats.drop(DropReason::UnsupportedProtocol),
        }
    }

    fn handle_icmp(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8], unicast: bool) {
        self.stats.icmp_rx.add(payload.len());
        let repr = match Icmpv4Repr::parse(payload, self.cfg.checksum) {
            Ok(r) => r,
            Err(crate::wire::WireError::Checksum) => {
                return self.stats.drop(DropReason::BadChecksum)
            }
            Err(_) => return self.stats.drop(DropReason::Malformed),
        };
        match repr {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } if unicast => {
                let reply = Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                self.queue_icmp(now, ip.dst, ip.src, &reply);
            }
            Icmpv4Repr::DstUnreachable {
                code: ICMP_UNREACHABLE_FRAG_NEEDED,
                next_hop_mtu,
                original,
            } => {
                if let Some(tuple) = quoted_tcp_tuple(original) {
                    if let Some(&idx) = self.flows.get(&tuple) {
                        if let Some(slot) = self.slots[idx as usize].as_mut() {
                            slot.conn.set_path_mtu(next_hop_mtu);
                        }
                        self.after_activity(idx, now);
                    }
                }
            }
            _ => {}
        }
    }

    fn handle_udp(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        packet: &[u8],
        datagram: &[u8],
        unicast: bool,
    ) {
        let (udp, payload) = match UdpRepr::parse(datagram, ip.src, ip.dst, self.cfg.checksum) {
            Ok(v) => v,
            Err(crate::wire::WireError::Checksum) => {
                return self.stats.drop(DropReason::BadChecksum)
            }
            Err(_) => return self.stats.drop(DropReason::Malformed),
        };
        self.stats.udp_rx.add(datagram.len());
        let Some(handle) = self.udp.lookup(udp.dst_port) else {
            self.stats.drop(DropReason::NoUdpSocket);
            if unicast {
                // RFC 1122 3.2.2.1: port unreachable quoting the IP header and 8 bytes.
                let quoted_len = (ipv4::HEADER_LEN + 8).min(packet.len());
                let ihl = ((packet[0] & 0x0f) as usize * 4).min(packet.len());
                let quoted_len = quoted_len.max(ihl + 8).min(packet.len());
                let repr = Icmpv4Repr::DstUnreachable {
                    code: ICMP_UNREACHABLE_PORT,
                    next_hop_mtu: 0,
                    original: &packet[..quoted_len],
                };
                self.queue_icmp(now, ip.dst, ip.src, &repr);
            }
            return;
        };
        let was_empty = self.udp.queued(handle).unwrap_or(0) == 0;
        let meta = UdpMeta {
            src: SocketAddrV4::new(ip.src, udp.src_port),
            dst: ip.dst,
            len: payload.len(),
        };
        match self.udp.deliver(handle, meta, payload) {
            Ok(()) => {
                if was_empty {
                    self.udp_events.push_back(handle);
                }
            }
            Err(_) => self.stats.drop(DropReason::NoBuffer),
        }
    }

    fn handle_tcp(&mut self, now: Instant, ip: &Ipv4Repr, segment: &[u8]) {
        // Borrowed from the parse result rather than moved out of it: the segment (with its
        // options) is large, and the move was a copy per segment.
        let parsed = TcpRepr::parse(segment, ip.src, ip.dst, self.cfg.checksum);
        let seg = match &parsed {
            Ok(s) => s,
            Err(crate::wire::WireError::Checksum) => {
                return self.stats.drop(DropReason::BadChecksum)
            }
            Err(_) => return self.stats.drop(DropReason::Malformed),
        };
        self.stats.tcp_rx.add(segment.len());
        let tuple = FourTuple {
            local: SocketAddrV4::new(ip.dst, seg.dst_port),
            remote: SocketAddrV4::new(ip.src, seg.src_port),
        };
        if let Some(idx) = self.lookup_flow(&tuple) {
            let reuse = self.slots[idx as usize].as_ref().is_some_and(|slot| {
                slot.state == State::TimeWait
                    && slot.flags & RELEASED != 0
                    && slot.conn.time_wait_accepts_syn(seg)
            });
            if !reuse {
                if let Some(slot) = self.slots[idx as usize].as_mut() {
                    slot.conn.handle_segment(seg, now, &mut self.stats.tcp);
                }
                self.after_activity_inline(idx, now);
                return;
            }
            // RFC 6191: a new SYN may take over a TIME_WAIT connection's 4-tuple.
            self.free_slot(idx);
        }
        let Some(&lidx) = self.listener_by_port.get(&seg.dst_port) else {
            self.stats.drop(DropReason::NoListener);
            return self.send_reset_for(now, &tuple, seg);
        };
        let flags = seg.flags;
        if flags.rst() {
            return;
        }
        if flags.syn() && !flags.ack() {
            self.handle_listener_syn(now, lidx, tuple, seg);
        } else if flags.ack() && !flags.syn() {
            self.handle_listener_ack(now, lidx, tuple, seg);
        } else {
            self.stats.drop(DropReason::Malformed);
            self.send_reset_for(now, &tuple, seg);
        }
    }

    fn handle_listener_syn(&mut self, now: Instant, lidx: u32, tuple: FourTuple, seg: &TcpRepr) {
        let Some(listener) = self.listeners[lidx as usize].as_ref() else {
            return;
        };
        let backlog_full = listener.half_open >= self.cfg.syn_backlog
            || listener.accept_queue.len() >= self.cfg.accept_backlog;
        let table_full = self.flows.len() >= self.cfg.max_connections;
        if backlog_full || table_full {
            if self.cfg.syn_cookies && !table_full {
                return self.send_cookie_syn_ack(now, lidx, tuple, seg);
            }
            return self.stats.drop(DropReason::BacklogFull);
        }
        let cfg = listener.cfg.clone();
        let iss = self.isn.isn(tuple.local, tuple.remote, now);
        let conn = Connection::accept_syn(&cfg, tuple.local, tuple.remote, iss, seg, now);
        let idx = self.insert_conn(tuple, conn, lidx, IN_SYN_BACKLOG);
        if let Some(l) = self.listeners[lidx as usize].as_mut() {
            l.half_open += 1;
        }
        self.stats.tcp.passive_opens += 1;
        self.after_activity(idx, now);
    }

    fn handle_listener_ack(&mut self, now: Instant, lidx: u32, tuple: FourTuple, seg: &TcpRepr) {
        if self.cfg.syn_cookies {
            let cookie = seg.ack - 1u32;
            let peer_isn = seg.seq - 1u32;
            if let Some(opts) =
                self.cookies
                    .decode(tuple.local, tuple.remote, peer_isn, cookie, now)
            {
                let Some(listener) = self.listeners[lidx as usize].as_ref() else {
                    return;
                };
                if listener.accept_queue.len() >= self.cfg.accept_backlog
                    || self.flows.len() >= self.cfg.max_connections
                {
                    return self.stats.drop(DropReason::AcceptQueueFull);
                }
                let cfg = listener.cfg.clone();
                let conn = Connection::from_cookie(
                    &cfg,
                    tuple.local,
                    tuple.remote,
                    cookie,
                    peer_isn,
                    opts.mss,
                    opts.window_scale,
                    opts.sack_permitted,
                    seg,
                    now,
                );
                self.stats.tcp.cookies_validated += 1;
                self.stats.tcp.passive_opens += 1;
                let idx = self.insert_conn(tuple, conn, lidx, 0);
                self.after_activity(idx, now);
                return;
            }
            self.stats.drop(DropReason::BadCookie);
        } else {
            self.stats.drop(DropReason::NoListener);
        }
        self.send_reset_for(now, &tuple, seg);
    }

    fn send_cookie_syn_ack(&mut self, now: Instant, lidx: u32, tuple: FourTuple, seg: &TcpRepr) {
        let Some(listener) = self.listeners[lidx as usize].as_ref() else {
            return;
        };
        let cfg = &listener.cfg;
        let peer = seg.options;
        let opts = CookieOptions {
            mss: peer.mss.unwrap_or(536).min(cfg.mss),
            window_scale: if cfg.window_scale {
                peer.window_scale
            } else {
                None
            },
            sack_permitted: cfg.sack && peer.sack_permitted,
            timestamps: cfg.timestamps && peer.timestamps.is_some(),
        };
        let cookie = self
            .cookies
            .encode(tuple.local, tuple.remote, seg.seq, opts, now);
        let our_shift = if opts.window_scale.is_some() {
            window_shift_for(cfg.recv_buffer.min(u32::MAX as usize) as u32)
        } else {
            0
        };
        let options = TcpOptions {
            mss: Some(cfg.mss),
            window_scale: opts.window_scale.map(|_| our_shift),
            sack_permitted: opts.sack_permitted,
            timestamps: if opts.timestamps {
                peer.timestamps
                    .map(|(tsval, _)| ((now.total_micros() / 1000) as u32, tsval))
            } else {
                None
            },
            ..TcpOptions::default()
        };
        let reply = TcpRepr {
            src_port: tuple.local.port(),
            dst_port: tuple.remote.port(),
            seq: cookie,
            ack: seg.seq + 1u32,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: cfg.recv_buffer.min(65535) as u16,
            urgent: 0,
            options,
            payload: &[],
        };
        self.stats.tcp.cookies_sent += 1;
        self.queue_tcp_stateless(now, &tuple, &reply);
    }

    /// RFC 9293 3.10.7.1: answer a segment for no connection with a RST (never a RST for a RST).
    fn send_reset_for(&mut self, now: Instant, tuple: &FourTuple, seg: &TcpRepr) {
        if seg.flags.rst() {
            return;
        }
        let (seq, ack, flags) = if seg.flags.ack() {
            (seg.ack, SeqNumber(0), TcpFlags::RST)
        } else {
            (
                SeqNumber(0),
                seg.seq + seg.segment_len(),
                TcpFlags::RST | TcpFlags::ACK,
            )
        };
        let rst = TcpRepr {
            src_port: tuple.local.port(),
            dst_port: tuple.remote.port(),
            seq,
            ack,
            flags,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        self.stats.tcp.resets_sent += 1;
        self.queue_tcp_stateless(now, tuple, &rst);
    }

    // ---------------------------------------------------------------------------------------
    // Connection bookkeeping
    // ---------------------------------------------------------------------------------------

    /// The slot of the connection with this 4-tuple. The one-entry cache is checked against the
    /// slot's own addresses, so a freed or reused slot can never be returned for another flow.
    #[inline]
    fn lookup_flow(&mut self, tuple: &FourTuple) -> Option<u32> {
        if let Some(Some(slot)) = self.slots.get(self.last_flow as usize) {
            if slot.conn.remote() == tuple.remote && slot.conn.local() == tuple.local {
                return Some(self.last_flow);
            }
        }
        let idx = *self.flows.get(tuple)?;
        self.last_flow = idx;
        Some(idx)
    }

    fn insert_conn(&mut self, tuple: FourTuple, conn: Connection, listener: u32, flags: u8) -> u32 {
        debug_assert!(conn.local() == tuple.local && conn.remote() == tuple.remote);
        self.generation = self.generation.wrapping_add(1);
        let state = conn.state();
        self.states[state as usize] += 1;
        let slot = Slot {
            conn,
            generation: self.generation,
            listener,
            flags,
            state,
            ooo: 0,
            frame: None,
        };
        let idx = match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        self.flows.insert(tuple, idx);
        idx
    }

    /// Everything that must follow any input to a connection: queue its control output, offer
    /// its data to the egress scheduler, re-arm its timer, surface its events, move it between
    /// listener queues, and free it when it is closed and released.
    fn after_activity(&mut self, idx: u32, now: Instant) {
        self.after_activity_inline(idx, now);
    }

    /// [`Self::after_activity`] inlined, for the per-segment path of `handle_tcp`.
    #[inline(always)]
    fn after_activity_inline(&mut self, idx: u32, now: Instant) {
        let Some(slot) = self.slots[idx as usize].as_mut() else {
            return;
        };
        // Global out-of-order budget: a connection that pushes the total over it loses its
        // out-of-order queue (the peer retransmits; SACK tells it what we still hold).
        let ooo = slot.conn.ooo_bytes();
        self.ooo_total = self.ooo_total + ooo - slot.ooo as usize;
        slot.ooo = ooo as u32;
        if self.ooo_total > self.cfg.ooo_total_budget && ooo > 0 {
            slot.conn.drop_ooo();
            self.ooo_total -= ooo;
            slot.ooo = slot.conn.ooo_bytes() as u32;
            self.ooo_total += slot.ooo as usize;
            self.stats.drop(DropReason::NoBuffer);
        }
        self.sync_slot(idx);
        let Some(slot) = self.slots[idx as usize].as_mut() else {
            return;
        };
        if slot.conn.data_ready(now) {
            self.egress.enqueue(idx, now);
        }
        if slot.flags & OWNED != 0 && slot.flags & (IN_EVENT_QUEUE | RELEASED) == 0 {
            slot.flags |= IN_EVENT_QUEUE;
            self.event_queue.push_back(idx);
        }
        // Half-open connection of a listener: promote when established, forget when it failed.
        if slot.flags & IN_SYN_BACKLOG != 0 {
            let lidx = slot.listener;
            if matches!(slot.state, State::Established | State::CloseWait) {
                slot.flags &= !IN_SYN_BACKLOG;
                if let Some(l) = self
                    .listeners
                    .get_mut(lidx as usize)
                    .and_then(|l| l.as_mut())
                {
                    l.half_open = l.half_open.saturating_sub(1);
                }
                self.promote_to_accept_queue(idx, lidx, now);
            } else if slot.conn.is_closed() {
                slot.flags &= !IN_SYN_BACKLOG;
                slot.flags |= RELEASED;
                if let Some(l) = self
                    .listeners
                    .get_mut(lidx as usize)
                    .and_then(|l| l.as_mut())
                {
                    l.half_open = l.half_open.saturating_sub(1);
                }
            }
        } else if slot.flags & (OWNED | IN_ACCEPT_QUEUE) == 0 && slot.flags & RELEASED == 0 {
            // Created from a cookie: established without a half-open phase.
            let lidx = slot.listener;
            self.promote_to_accept_queue(idx, lidx, now);
        }
        self.maybe_free(idx);
    }

    fn promote_to_accept_queue(&mut self, idx: u32, lidx: u32, now: Instant) {
        let accept_backlog = self.cfg.accept_backlog;
        let Some(listener) = self
            .listeners
            .get_mut(lidx as usize)
            .and_then(|l| l.as_mut())
        else {
            // The listener went away: nobody will accept this connection.
            if let Some(slot) = self.slots[idx as usize].as_mut() {
                slot.conn.abort(now);
                slot.flags |= RELEASED;
            }
            return;
        };
        if listener.accept_queue.len() >= accept_backlog {
            self.stats.drop(DropReason::AcceptQueueFull);
            if let Some(slot) = self.slots[idx as usize].as_mut() {
                slot.conn.abort(now);
                slot.flags |= RELEASED;
            }
            return;
        }
        listener.accept_queue.push_back(idx);
        if !listener.event_pending {
            listener.event_pending = true;
            self.listener_events.push_back(lidx);
        }
        if let Some(slot) = self.slots[idx as usize].as_mut() {
            slot.flags |= IN_ACCEPT_QUEUE;
        }
    }

    fn maybe_free(&mut self, idx: u32) {
        let Some(slot) = self.slots[idx as usize].as_ref() else {
            return;
        };
        if slot.flags & RELEASED == 0 || !slot.conn.is_closed() {
            return;
        }
        if slot.flags & (IN_CONTROL_QUEUE) != 0 {
            // Let the control queue drain a final RST first; freed on the next activity.
            return;
        }
        self.free_slot(idx);
    }

    /// Remove a connection from every table and free its slot.
    fn free_slot(&mut self, idx: u32) {
        let Some(slot) = self.slots[idx as usize].as_ref() else {
            return;
        };
        let tuple = FourTuple {
            local: slot.conn.local(),
            remote: slot.conn.remote(),
        };
        self.states[slot.state as usize] -= 1;
        self.ooo_total -= slot.ooo as usize;
        self.flows.remove(&tuple);
        self.timers.cancel(idx);
        if E::BATCHED && self.burst.flow == idx {
            // Its burst ends with it; the scheduler forgets the flow (and its turn) in `remove`.
            self.burst = Burst::IDLE;
        }
        self.egress.remove(idx);
        self.slots[idx as usize] = None;
        self.free_slots.push(idx);
    }

    fn slot_for(&mut self, h: TcpHandle) -> Result<&mut Slot, SocketError> {
        match self.slots.get_mut(h.index as usize) {
            Some(Some(s)) if s.generation == h.generation && s.flags & RELEASED == 0 => Ok(s),
            _ => Err(SocketError::InvalidHandle),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Timers
    // ---------------------------------------------------------------------------------------

    /// The earliest time [`handle_timeouts`](Self::handle_timeouts) has work to do, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // ARP deadlines matter only while frames wait for a next hop.
        let arp = if self.frames.waiting.is_empty() {
            None
        } else {
            self.arp.next_deadline()
        };
        match (self.timers.next_deadline(), arp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run the connection timers that are due at `now`. Handles at most `budget` expirations
    /// per call (bounded work); returns how many it handled.
    pub fn handle_timeouts(&mut self, now: Instant, budget: usize) -> usize {
        let mut handled = 0;
        while handled < budget {
            let Some(idx) = self.timers.poll_expired(now) else {
                break;
            };
            handled += 1;
            if let Some(slot) = self.slots[idx as usize].as_mut() {
                let rtos = self.stats.tcp.rto_expiries;
                slot.conn.handle_timeout(now, &mut self.stats.tcp);
                if self.stats.tcp.rto_expiries != rtos {
                    self.reconfirm_neighbour(idx);
                }
                self.after_activity(idx, now);
            }
        }
        if handled < budget && !self.frames.waiting.is_empty() {
            self.scratch_hops.clear();
            self.arp
                .due_pending(now, &mut self.scratch_hops, budget - handled);
            let hops = std::mem::take(&mut self.scratch_hops);
            for hop in &hops {
                match self.arp.resolve(*hop, now) {
                    Resolution::SendRequest => {
                        if let Some(route) = self.route(*hop) {
                            self.send_arp_request(Route {
                                source: route.source,
                                next_hop: *hop,
                            });
                        }
                    }
                    // `resolve` has already forgotten the hop; its held frames go too.
                    Resolution::Unreachable => self.drop_waiting(*hop),
                    Resolution::Known(_) | Resolution::Waiting => {}
                }
            }
            self.scratch_hops = hops;
        }
        handled
    }

    /// A connection's retransmission timer expired: its next hop's MAC is no longer confirmed by
    /// forward progress (Linux's NUD moves such an entry to PROBE). Forget the entry, so the
    /// retransmission asks ARP again and a wrong entry (one forged or corrupted ARP reply, a
    /// neighbour that changed its MAC) misdirects the connection for one RTO, not the entry's
    /// whole TTL. The first frame from the neighbour or the answer to the request fills it again.
    fn reconfirm_neighbour(&mut self, idx: u32) {
        let Some(slot) = self.slots[idx as usize].as_ref() else {
            return;
        };
        let Some(route) = self.route(*slot.conn.remote().ip()) else {
            return;
        };
        if self.arp.is_resolved(route.next_hop) {
            self.arp.remove(route.next_hop);
            self.stats.arp_reprobes += 1;
        }
    }

    // ---------------------------------------------------------------------------------------
    // Output
    // ---------------------------------------------------------------------------------------

    /// Write the next frame to send into `buf` (at least MTU + 18 bytes) and return its length,
    /// or `None` when nothing is due. Call it once per free TX slot.
    #[inline]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        // The call that finds nothing (the last of every drain loop) returns here, inlined into
        // the caller, without the full function's frame.
        if self.frames.ready.is_empty()
            && self.control_queue.is_empty()
            && (!E::BATCHED || self.burst.left == 0)
            && self.egress.waiting() == 0
        {
            return None;
        }
        self.poll_transmit_some(now, buf)
    }

    /// [`Self::poll_transmit`] when something may be due.
    #[inline(never)]
    fn poll_transmit_some(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if let Some(len) = self.pop_ready_frame(now, buf) {
            return Some(len);
        }
        // One pass over the connections queued now: one whose segment cannot be built yet (next
        // hop unresolved with its pending queue full, no frame slot) is queued again by
        // `after_control` and retried on the next call, not in this loop forever.
        for _ in 0..self.control_queue.len() {
            let Some(idx) = self.control_queue.pop_front() else {
                break;
            };
            let Some(slot) = self.slots[idx as usize].as_mut() else {
                continue;
            };
            slot.flags &= !IN_CONTROL_QUEUE;
            // A due ACK rides on a data segment when the flow may send one now anyway.
            let piggyback = slot.conn.data_ready(now) && self.egress.may_send_now(idx, now);
            let mut sent = None;
            if piggyback {
                sent = self.emit_tcp(now, idx, buf, true);
            }
            if sent.is_none() {
                sent = self.emit_tcp(now, idx, buf, false);
            }
            self.after_control(idx, now);
            if let Some(len) = sent {
                self.egress.on_bypass(len, now);
                return Some(len);
            }
        }
        // Nothing waiting means nothing to dequeue (the trait's contract): the common empty
        // call ends here, with any ARP request a control segment queued meanwhile.
        if (!E::BATCHED || self.burst.left == 0) && self.egress.waiting() == 0 {
            return self.pop_ready_frame(now, buf);
        }
        // Likewise a flow whose data segment cannot be built now leaves the scheduler for the
        // rest of this call (reporting `more` would hand it straight back) and re-enters after.
        // A granted burst goes on without asking the scheduler again, as long as the ring has
        // room (control segments may have taken it since the grant). The burst state is kept
        // only for a scheduler that grants bursts (`E::BATCHED`, a constant: the other code
        // compiles away).
        let mut result = None;
        loop {
            let idx = if E::BATCHED && self.burst.left > 0 && self.egress.burst_room() {
                self.burst.flow
            } else {
                if E::BATCHED && self.burst.left > 0 {
                    // Ring full mid-burst: end it; the flow still has data (it had last time).
                    let b = self.burst;
                    let more = self.slots[b.flow as usize]
                        .as_ref()
                        .is_some_and(|s| s.conn.data_ready(now));
                    self.burst = Burst::IDLE;
                    self.egress
                        .on_burst_end(b.flow, b.packets, b.bytes, more, now);
                }
                let Some((flow, n)) = self.egress.dequeue_burst(now) else {
                    break;
                };
                if E::BATCHED {
                    self.burst = Burst {
                        flow,
                        left: n.max(1),
                        packets: 0,
                        bytes: 0,
                    };
                }
                flow
            };
            if self.slots[idx as usize].is_none() {
                let b = self.burst;
                self.burst = Burst::IDLE;
                self.egress
                    .on_burst_end(idx, b.packets, b.bytes, false, now);
                continue;
            }
            let sent = self.emit_tcp(now, idx, buf, true);
            let more = self.slots[idx as usize]
                .as_ref()
                .is_some_and(|s| s.conn.data_ready(now));
            // What the burst sent so far, this segment included.
            let (mut packets, mut bytes, mut done) = (0, 0, true);
            if let Some(len) = sent {
                self.egress.on_burst_segment(len);
                (packets, bytes) = (1, len);
            }
            if E::BATCHED {
                let b = &mut self.burst;
                if let Some(len) = sent {
                    b.left -= 1;
                    b.packets += 1;
                    b.bytes += len;
                }
                (packets, bytes, done) = (b.packets, b.bytes, b.left == 0);
            }
            if sent.is_none() || !more || done {
                if E::BATCHED {
                    self.burst = Burst::IDLE;
                }
                self.egress
                    .on_burst_end(idx, packets, bytes, more && sent.is_some(), now);
                if more && sent.is_none() {
                    self.scratch_deferred.push(idx);
                }
            }
            self.after_control(idx, now);
            if sent.is_some() {
                result = sent;
                break;
            }
        }
        if !self.scratch_deferred.is_empty() {
            let mut deferred = std::mem::take(&mut self.scratch_deferred);
            for &idx in &deferred {
                if self.slots[idx as usize]
                    .as_ref()
                    .is_some_and(|s| s.conn.data_ready(now))
                {
                    self.egress.enqueue(idx, now);
                }
            }
            deferred.clear();
            self.scratch_deferred = deferred;
        }
        // A segment that must wait for ARP queued the request as a ready frame: send it now.
        result.or_else(|| self.pop_ready_frame(now, buf))
    }

    /// The next ready frame built by the interface itself (ARP, ICMP, UDP, RSTs, frames whose
    /// next hop got resolved), copied into `buf`. Inlined: it runs at least twice per call of
    /// `poll_transmit`, nearly always on an empty queue.
    #[inline(always)]
    fn pop_ready_frame(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.frames.ready.is_empty() {
            return None;
        }
        let slot = self.frames.ready.pop_front()?;
        let len = self.frames.lens[slot as usize];
        buf[..len].copy_from_slice(&self.frames.bufs[slot as usize][..len]);
        self.frames.give_back(slot);
        self.stats.eth_tx.add(len);
        self.egress.on_bypass(len, now);
        Some(len)
    }

    /// After output from a connection: queue it again if more control segments are due (a FIN
    /// and a probe can be due together, and a data segment can make a FIN due), re-arm its timer
    /// and free it if it just finished.
    fn after_control(&mut self, idx: u32, _now: Instant) {
        self.sync_slot(idx);
        self.maybe_free(idx);
    }

    /// Bookkeeping after anything a connection did: the per-state counts, its place in the
    /// control queue when a control segment is due, and its timer.
    // Inlined into its two callers (after input, after output): runs twice per packet.
    #[inline(always)]
    fn sync_slot(&mut self, idx: u32) {
        let Some(slot) = self.slots[idx as usize].as_mut() else {
            return;
        };
        let new_state = slot.conn.state();
        if new_state != slot.state {
            self.states[slot.state as usize] -= 1;
            self.states[new_state as usize] += 1;
            slot.state = new_state;
        }
        if slot.flags & IN_CONTROL_QUEUE == 0 && slot.conn.control_ready() {
            slot.flags |= IN_CONTROL_QUEUE;
            self.control_queue.push_back(idx);
        }
        // Lazy timer: the wheel entry only ever moves earlier. A deadline that moved later or
        // went away (the common case: every segment pushes the retransmission or delayed-ACK
        // timer back, every ACK clears it) leaves the entry, which then expires early once,
        // finds nothing due in `handle_timeout` and re-arms here: one wheel operation per timer
        // period instead of one per segment. Freeing the slot cancels it.
        if let Some(deadline) = slot.conn.poll_timeout() {
            self.timers.schedule_no_later(idx, deadline);
        }
    }

    /// Build one TCP segment of connection `idx` (control or data) framed for the wire, into
    /// `buf` when the next hop is known, else into a frame slot that waits for ARP.
    fn emit_tcp(&mut self, now: Instant, idx: u32, buf: &mut [u8], data: bool) -> Option<usize> {
        let slot = self.slots[idx as usize].as_ref()?;
        let local = slot.conn.local();
        let remote = slot.conn.remote();
        // The template knows the next hop; route only before the first resolved segment.
        let next_hop = match &slot.frame {
            Some(t) => t.next_hop,
            None => self.route(*remote.ip())?.next_hop,
        };
        match self.arp.resolve(next_hop, now) {
            Resolution::Known(mac) => {
                let slot = self.slots[idx as usize].as_mut()?;
                let tcp_len = if data {
                    slot.conn
                        .poll_data(now, &mut buf[L4_OFFSET..], &mut self.stats.tcp)?
                } else {
                    slot.conn
                        .poll_control(now, &mut buf[L4_OFFSET..], &mut self.stats.tcp)?
                };
                let t = match slot.frame {
                    Some(t) if t.mac == mac => t,
                    _ => {
                        let t = FrameTemplate::new(
                            self.cfg.mac,
                            mac,
                            *local.ip(),
                            *remote.ip(),
                            next_hop,
                        );
                        slot.frame = Some(t);
                        t
                    }
                };
                self.ip_ident = self.ip_ident.wrapping_add(1);
                let ident = self.ip_ident;
                let ip_len = ipv4::HEADER_LEN + tcp_len;
                buf[..L4_OFFSET].copy_from_slice(&t.bytes);
                buf[L3_OFFSET + 2..L3_OFFSET + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
                buf[L3_OFFSET + 4..L3_OFFSET + 6].copy_from_slice(&ident.to_be_bytes());
                if self.cfg.checksum.fill_tx {
                    let sum = t.ip_sum + ip_len as u32 + ident as u32;
                    let c = !crate::wire::checksum::fold(sum);
                    buf[L3_OFFSET + 10..L3_OFFSET + 12].copy_from_slice(&c.to_be_bytes());
                }
                #[cfg(debug_assertions)]
                {
                    // Every test and simulation run checks the template against the emitters.
                    let mut check = [0u8; L4_OFFSET];
                    tcp_frame_headers(
                        self.cfg.mac,
                        mac,
                        *local.ip(),
                        *remote.ip(),
                        ident,
                        tcp_len,
                        self.cfg.checksum,
                        &mut check,
                    );
                    debug_assert_eq!(check, buf[..L4_OFFSET]);
                }
                let len = L4_OFFSET + tcp_len;
                self.stats.ipv4_tx.add(ip_len);
                self.stats.tcp_tx.add(tcp_len);
                self.stats.eth_tx.add(len);
                Some(len)
            }
            res @ (Resolution::SendRequest | Resolution::Waiting) => {
                let route = self.route(*remote.ip())?;
                if res == Resolution::SendRequest {
                    self.send_arp_request(route);
                }
                if self.frames.waiting_for(route.next_hop) >= self.cfg.arp_pending_per_hop {
                    return None;
                }
                let (fslot, fbuf) = self.frames.take()?;
                let slot = self.slots[idx as usize].as_mut()?;
                let produced = if data {
                    slot.conn
                        .poll_data(now, &mut fbuf[L4_OFFSET..], &mut self.stats.tcp)
                } else {
                    slot.conn
                        .poll_control(now, &mut fbuf[L4_OFFSET..], &mut self.stats.tcp)
                };
                let Some(tcp_len) = produced else {
                    self.frames.give_back(fslot);
                    return None;
                };
                self.stats.tcp_tx.add(tcp_len);
                let mut frame = std::mem::take(&mut self.frames.bufs[fslot as usize]);
                let len = self.frame_ipv4(
                    &mut frame,
                    EthernetAddress([0; 6]),
                    *local.ip(),
                    *remote.ip(),
                    PROTO_TCP,
                    tcp_len,
                );
                self.frames.bufs[fslot as usize] = frame;
                self.frames.lens[fslot as usize] = len;
                self.frames.waiting.push((fslot, route.next_hop));
                None
            }
            Resolution::Unreachable => None,
        }
    }

    /// Write Ethernet and IPv4 headers around an L4 payload already at `buf[L4_OFFSET..]`.
    fn frame_ipv4(
        &mut self,
        buf: &mut [u8],
        dst_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        l4_len: usize,
    ) -> usize {
        let eth = EthernetRepr {
            dst: dst_mac,
            src: self.cfg.mac,
            ethertype: ETHERTYPE_IPV4,
            vlan: None,
        };
        eth.emit(buf);
        self.ip_ident = self.ip_ident.wrapping_add(1);
        let ip = Ipv4Repr {
            src,
            dst,
            protocol,
            ttl: DEFAULT_TTL,
            ident: self.ip_ident,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            dscp_ecn: 0,
            payload_len: l4_len,
        };
        ip.emit(&mut buf[L3_OFFSET..], self.cfg.checksum);
        self.stats.ipv4_tx.add(ipv4::HEADER_LEN + l4_len);
        L4_OFFSET + l4_len
    }

    fn queue_arp(&mut self, repr: ArpRepr, dst: EthernetAddress) {
        let mac = self.cfg.mac;
        let Some((slot, buf)) = self.frames.take() else {
            return self.stats.drop(DropReason::NoBuffer);
        };
        let eth = EthernetRepr {
            dst,
            src: mac,
            ethertype: ETHERTYPE_ARP,
            vlan: None,
        };
        let hl = eth.emit(buf);
        repr.emit(&mut buf[hl..hl + arp::BUFFER_LEN]);
        // Pad to the Ethernet minimum so every driver accepts it.
        let len = (hl + arp::BUFFER_LEN).max(60);
        buf[hl + arp::BUFFER_LEN..len].fill(0);
        self.frames.lens[slot as usize] = len;
        self.frames.ready.push_back(slot);
        self.stats.arp_tx.add(arp::BUFFER_LEN);
    }

    fn send_arp_request(&mut self, route: Route) {
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: self.cfg.mac,
            sender_ip: route.source,
            target_hw: EthernetAddress([0; 6]),
            target_ip: route.next_hop,
        };
        self.queue_arp(repr, EthernetAddress::BROADCAST);
    }

    /// Put a frame built in slot `slot` (with a placeholder destination MAC) on its way: ready now
    /// if the next hop is known, else waiting for ARP (bounded per next hop).
    fn dispatch_slot(&mut self, now: Instant, slot: u16, len: usize, route: Route) {
        self.frames.lens[slot as usize] = len;
        match self.arp.resolve(route.next_hop, now) {
            Resolution::Known(mac) => {
                self.frames.bufs[slot as usize][..6].copy_from_slice(&mac.0);
                self.frames.ready.push_back(slot);
            }
            res @ (Resolution::SendRequest | Resolution::Waiting) => {
                if self.frames.waiting_for(route.next_hop) >= self.cfg.arp_pending_per_hop {
                    self.frames.give_back(slot);
                    self.stats.drop(DropReason::NoBuffer);
                } else {
                    self.frames.waiting.push((slot, route.next_hop));
                }
                if res == Resolution::SendRequest {
                    self.send_arp_request(route);
                }
            }
            Resolution::Unreachable => {
                self.frames.give_back(slot);
                self.stats.drop(DropReason::NoBuffer);
            }
        }
    }

    fn release_waiting(&mut self, hop: Ipv4Addr, mac: EthernetAddress) {
        let mut i = 0;
        while i < self.frames.waiting.len() {
            let (slot, h) = self.frames.waiting[i];
            if h == hop {
                self.frames.waiting.remove(i);
                self.frames.bufs[slot as usize][..6].copy_from_slice(&mac.0);
                self.frames.ready.push_back(slot);
            } else {
                i += 1;
            }
        }
    }

    fn drop_waiting(&mut self, hop: Ipv4Addr) {
        let mut i = 0;
        while i < self.frames.waiting.len() {
            let (slot, h) = self.frames.waiting[i];
            if h == hop {
                self.frames.waiting.remove(i);
                self.frames.give_back(slot);
                self.stats.drop(DropReason::NoBuffer);
            } else {
                i += 1;
            }
        }
    }

    fn queue_icmp(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, repr: &Icmpv4Repr) {
        let Some(route) = self.route(dst) else {
            return;
        };
        let icmp_len = repr.buffer_len();
        if L4_OFFSET + icmp_len > self.frames.frame_capacity {
            return self.stats.drop(DropReason::Malformed);
        }
        let checksum = self.cfg.checksum;
        let Some((slot, _)) = self.frames.take() else {
            return self.stats.drop(DropReason::NoBuffer);
        };
        let mut frame = std::mem::take(&mut self.frames.bufs[slot as usize]);
        repr.emit(&mut frame[L4_OFFSET..L4_OFFSET + icmp_len], checksum);
        let len = self.frame_ipv4(
            &mut frame,
            EthernetAddress([0; 6]),
            src,
            dst,
            PROTO_ICMP,
            icmp_len,
        );
        self.frames.bufs[slot as usize] = frame;
        self.stats.icmp_tx.add(icmp_len);
        self.dispatch_slot(now, slot, len, route);
    }

    fn queue_tcp_stateless(&mut self, now: Instant, tuple: &FourTuple, repr: &TcpRepr) {
        let Some(route) = self.route(*tuple.remote.ip()) else {
            return;
        };
        let checksum = self.cfg.checksum;
        let Some((slot, _)) = self.frames.take() else {
            return self.stats.drop(DropReason::NoBuffer);
        };
        let mut frame = std::mem::take(&mut self.frames.bufs[slot as usize]);
        let tcp_len = repr.emit(
            &mut frame[L4_OFFSET..],
            *tuple.local.ip(),
            *tuple.remote.ip(),
            checksum,
        );
        let len = self.frame_ipv4(
            &mut frame,
            EthernetAddress([0; 6]),
            *tuple.local.ip(),
            *tuple.remote.ip(),
            PROTO_TCP,
            tcp_len,
        );
        self.frames.bufs[slot as usize] = frame;
        self.stats.tcp_tx.add(tcp_len);
        self.dispatch_slot(now, slot, len, route);
    }

    /// The port reports frames that left its TX ring; the egress scheduler learns of it.
    pub fn handle_tx_completions(&mut self, now: Instant, packets: u32, bytes: u64) {
        self.egress.on_completion(packets, bytes, now);
    }

    // ---------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------

    /// The next event for the application, if any. Call until `None` after each batch of input.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(lidx) = self.listener_events.pop_front() {
            if let Some(l) = self
                .listeners
                .get_mut(lidx as usize)
                .and_then(|l| l.as_mut())
            {
                l.event_pending = false;
                if !l.accept_queue.is_empty() {
                    return Some(Event::Acceptable(ListenerHandle {
                        index: lidx,
                        generation: l.generation,
                    }));
                }
            }
        }
        if let Some(h) = self.udp_events.pop_front() {
            return Some(Event::UdpReadable(h));
        }
        while let Some(idx) = self.event_queue.pop_front() {
            let Some(slot) = self.slots[idx as usize].as_mut() else {
                continue;
            };
            let handle = TcpHandle {
                index: idx,
                generation: slot.generation,
            };
            if slot.flags & RELEASED != 0 {
                slot.flags &= !IN_EVENT_QUEUE;
                continue;
            }
            match slot.conn.poll_event() {
                Some(ev) => {
                    // More may be pending: look again next call.
                    self.event_queue.push_front(idx);
                    return Some(match ev {
                        ConnEvent::Connected => Event::Connected(handle),
                        ConnEvent::Readable => Event::Readable(handle),
                        ConnEvent::Writable => Event::Writable(handle),
                        ConnEvent::PeerClosed => Event::PeerClosed(handle),
                        ConnEvent::Closed(reason) => Event::Closed(handle, reason),
                    });
                }
                None => slot.flags &= !IN_EVENT_QUEUE,
            }
        }
        None
    }

    // ---------------------------------------------------------------------------------------
    // TCP API
    // ---------------------------------------------------------------------------------------

    /// Listen on `port` (every local address) with the interface's TCP settings or `cfg`.
    pub fn tcp_listen(
        &mut self,
        port: u16,
        cfg: Option<TcpConfig>,
    ) -> Result<ListenerHandle, SocketError> {
        if port == 0 || self.listener_by_port.contains_key(&port) {
            return Err(SocketError::AddrInUse);
        }
        self.generation = self.generation.wrapping_add(1);
        let listener = Listener {
            port,
            generation: self.generation,
            cfg: cfg.unwrap_or_else(|| self.cfg.tcp.clone()),
            half_open: 0,
            accept_queue: VecDeque::new(),
            event_pending: false,
        };
        let index = match self.listeners.iter().position(|l| l.is_none()) {
            Some(i) => {
                self.listeners[i] = Some(listener);
                i as u32
            }
            None => {
                self.listeners.push(Some(listener));
                (self.listeners.len() - 1) as u32
            }
        };
        self.listener_by_port.insert(port, index);
        Ok(ListenerHandle {
            index,
            generation: self.generation,
        })
    }

    /// Stop listening. Connections waiting in the accept queue are reset.
    pub fn tcp_unlisten(&mut self, l: ListenerHandle, now: Instant) -> Result<(), SocketError> {
        let listener = match self.listeners.get_mut(l.index as usize) {
            Some(Some(x)) if x.generation == l.generation => x,
            _ => return Err(SocketError::InvalidHandle),
        };
        let port = listener.port;
        let queued: Vec<u32> = listener.accept_queue.drain(..).collect();
        self.listeners[l.index as usize] = None;
        self.listener_by_port.remove(&port);
        for idx in queued {
            if let Some(slot) = self.slots[idx as usize].as_mut() {
                slot.conn.abort(now);
                slot.flags |= RELEASED;
                slot.flags &= !IN_ACCEPT_QUEUE;
            }
            self.after_activity(idx, now);
        }
        Ok(())
    }

    /// Take the next established connection from a listener's accept queue.
    pub fn tcp_accept(&mut self, l: ListenerHandle) -> Option<TcpHandle> {
        let listener = match self.listeners.get_mut(l.index as usize) {
            Some(Some(x)) if x.generation == l.generation => x,
            _ => return None,
        };
        while let Some(idx) = listener.accept_queue.pop_front() {
            let Some(slot) = self.slots[idx as usize].as_mut() else {
                continue;
            };
            slot.flags &= !IN_ACCEPT_QUEUE;
            slot.flags |= OWNED;
            if slot.flags & IN_EVENT_QUEUE == 0 {
                slot.flags |= IN_EVENT_QUEUE;
                self.event_queue.push_back(idx);
            }
            return Some(TcpHandle {
                index: idx,
                generation: slot.generation,
            });
        }
        None
    }

    /// Open a connection to `remote`. `Event::Connected` follows when the handshake completes.
    pub fn tcp_connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        cfg: Option<TcpConfig>,
    ) -> Result<TcpHandle, SocketError> {
        let route = self.route(*remote.ip()).ok_or(SocketError::NoRoute)?;
        if self.flows.len() >= self.cfg.max_connections {
            return Err(SocketError::TooManyConnections);
        }
        let span = (EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) as u32 + 1;
        let mut local = None;
        for _ in 0..span {
            let port = self.next_ephemeral;
            self.next_ephemeral = if port == *EPHEMERAL_PORTS.end() {
                *EPHEMERAL_PORTS.start()
            } else {
                port + 1
            };
            let candidate = SocketAddrV4::new(route.source, port);
            let tuple = FourTuple {
                local: candidate,
                remote,
            };
            if !self.flows.contains_key(&tuple) && !self.listener_by_port.contains_key(&port) {
                local = Some(tuple);
                break;
            }
        }
        let tuple = local.ok_or(SocketError::NoEphemeralPort)?;
        let cfg = cfg.unwrap_or_else(|| self.cfg.tcp.clone());
        let iss = self.isn.isn(tuple.local, tuple.remote, now);
        let conn = Connection::connect(&cfg, tuple.local, tuple.remote, iss, now);
        let idx = self.insert_conn(tuple, conn, u32::MAX, OWNED);
        self.stats.tcp.active_opens += 1;
        self.after_activity(idx, now);
        let generation = self.slots[idx as usize]
            .as_ref()
            .map(|s| s.generation)
            .unwrap_or(0);
        Ok(TcpHandle {
            index: idx,
            generation,
        })
    }

    /// Queue bytes for sending; returns how many fit in the send buffer.
    pub fn tcp_send(
        &mut self,
        now: Instant,
        h: TcpHandle,
        data: &[u8],
    ) -> Result<usize, SocketError> {
        let slot = self.slot_for(h)?;
        let n = slot.conn.send(data).map_err(SocketError::Tcp)?;
        if n > 0 {
            self.after_activity(h.index, now);
        }
        Ok(n)
    }

    /// Read received bytes. `Ok(0)`: nothing yet; `Err(Tcp(Finished))`: the peer closed.
    pub fn tcp_recv(
        &mut self,
        now: Instant,
        h: TcpHandle,
        buf: &mut [u8],
    ) -> Result<usize, SocketError> {
        let slot = self.slot_for(h)?;
        let n = slot.conn.recv(buf).map_err(SocketError::Tcp)?;
        if n > 0 {
            // The window may have opened enough to be worth a window update.
            self.after_activity(h.index, now);
        }
        Ok(n)
    }

    /// Bytes ready to be read.
    pub fn tcp_recv_available(&mut self, h: TcpHandle) -> Result<usize, SocketError> {
        Ok(self.slot_for(h)?.conn.recv_available())
    }

    /// Free space in the send buffer.
    pub fn tcp_send_capacity(&mut self, h: TcpHandle) -> Result<usize, SocketError> {
        Ok(self.slot_for(h)?.conn.send_capacity())
    }

    /// Bytes queued but not yet acknowledged.
    pub fn tcp_send_queued(&mut self, h: TcpHandle) -> Result<usize, SocketError> {
        Ok(self.slot_for(h)?.conn.send_queued())
    }

    /// The connection's state.
    pub fn tcp_state(&mut self, h: TcpHandle) -> Result<State, SocketError> {
        Ok(self.slot_for(h)?.conn.state())
    }

    /// Local and remote addresses.
    pub fn tcp_endpoints(
        &mut self,
        h: TcpHandle,
    ) -> Result<(SocketAddrV4, SocketAddrV4), SocketError> {
        let slot = self.slot_for(h)?;
        Ok((slot.conn.local(), slot.conn.remote()))
    }

    /// Send FIN after the queued data (half-close); reading continues.
    pub fn tcp_shutdown(&mut self, now: Instant, h: TcpHandle) -> Result<(), SocketError> {
        self.slot_for(h)?.conn.shutdown_write(now);
        self.after_activity(h.index, now);
        Ok(())
    }

    /// Close and release the handle: FIN after queued data (RST if unread data is pending, as
    /// Linux does). The connection finishes on its own; the handle becomes invalid.
    pub fn tcp_close(&mut self, now: Instant, h: TcpHandle) -> Result<(), SocketError> {
        let slot = self.slot_for(h)?;
        slot.conn.close(now);
        slot.flags |= RELEASED;
        self.after_activity(h.index, now);
        Ok(())
    }

    /// Reset the connection and release the handle.
    pub fn tcp_abort(&mut self, now: Instant, h: TcpHandle) -> Result<(), SocketError> {
        let slot = self.slot_for(h)?;
        slot.conn.abort(now);
        slot.flags |= RELEASED;
        self.after_activity(h.index, now);
        Ok(())
    }

    /// Disable (true) or enable (false) Nagle's algorithm.
    pub fn tcp_set_nodelay(
        &mut self,
        now: Instant,
        h: TcpHandle,
        on: bool,
    ) -> Result<(), SocketError> {
        self.slot_for(h)?.conn.set_nodelay(on);
        self.after_activity(h.index, now);
        Ok(())
    }

    /// Keepalive: `(idle, interval, probes)`, or `None` to disable.
    pub fn tcp_set_keepalive(
        &mut self,
        now: Instant,
        h: TcpHandle,
        keepalive: Option<(Duration, Duration, u32)>,
    ) -> Result<(), SocketError> {
        self.slot_for(h)?.conn.set_keepalive(keepalive);
        self.after_activity(h.index, now);
        Ok(())
    }

    /// Connections in the table (all states, including TIME_WAIT).
    pub fn tcp_connection_count(&self) -> usize {
        self.flows.len()
    }

    /// Every connection with its 4-tuple and a snapshot of its state, for operators (O(n):
    /// call it on demand, never per packet).
    pub fn tcp_connections(
        &self,
    ) -> impl Iterator<Item = (SocketAddrV4, SocketAddrV4, crate::tcp::ConnInfo)> + '_ {
        self.slots
            .iter()
            .flatten()
            .map(|s| (s.conn.local(), s.conn.remote(), s.conn.info()))
    }

    /// Out-of-order bytes buffered across all connections (bounded by `ooo_total_budget`).
    pub fn tcp_ooo_bytes(&self) -> usize {
        self.ooo_total
    }

    // ---------------------------------------------------------------------------------------
    // UDP API
    // ---------------------------------------------------------------------------------------

    /// Bind a UDP port.
    pub fn udp_bind(&mut self, port: u16) -> Result<UdpHandle, SocketError> {
        Ok(self
            .udp
            .bind(port, self.cfg.udp_rx_bytes, self.cfg.udp_rx_datagrams)?)
    }

    /// Close a UDP socket.
    pub fn udp_close(&mut self, h: UdpHandle) -> Result<(), SocketError> {
        Ok(self.udp.close(h)?)
    }

    /// Take the oldest datagram into `buf`.
    pub fn udp_recv_from(
        &mut self,
        h: UdpHandle,
        buf: &mut [u8],
    ) -> Result<Option<(UdpMeta, usize)>, SocketError> {
        Ok(self.udp.recv_from(h, buf)?)
    }

    /// Send a datagram from the socket's port to `dst`, optionally from a given local address
    /// (replies should come from the address the request was sent to).
    pub fn udp_send_to(
        &mut self,
        now: Instant,
        h: UdpHandle,
        dst: SocketAddrV4,
        src_ip: Option<Ipv4Addr>,
        payload: &[u8],
    ) -> Result<(), SocketError> {
        let port = self.udp.port(h)?;
        let route = self.route(*dst.ip()).ok_or(SocketError::NoRoute)?;
        let src = match src_ip {
            Some(ip) if self.is_local(ip) => ip,
            _ => route.source,
        };
        let l4_len = wudp::HEADER_LEN + payload.len();
        // The IP packet must fit the MTU (the frame buffer has room for more: a VLAN tag).
        if ipv4::HEADER_LEN + l4_len > self.cfg.mtu {
            return Err(SocketError::Udp(UdpError::TooLarge));
        }
        let checksum = self.cfg.checksum;
        let Some((slot, _)) = self.frames.take() else {
            self.stats.drop(DropReason::NoBuffer);
            return Err(SocketError::Udp(UdpError::NoBuffer));
        };
        let mut frame = std::mem::take(&mut self.frames.bufs[slot as usize]);
        frame[L4_OFFSET + wudp::HEADER_LEN..L4_OFFSET + l4_len].copy_from_slice(payload);
        let repr = UdpRepr {
            src_port: port,
            dst_port: dst.port(),
        };
        repr.emit(
            &mut frame[L4_OFFSET..],
            payload.len(),
            src,
            *dst.ip(),
            checksum,
        );
        let len = self.frame_ipv4(
            &mut frame,
            EthernetAddress([0; 6]),
            src,
            *dst.ip(),
            PROTO_UDP,
            l4_len,
        );
        self.frames.bufs[slot as usize] = frame;
        self.stats.udp_tx.add(l4_len);
        self.dispatch_slot(now, slot, len, route);
        Ok(())
    }
}

/// The window-scale shift that lets `buffer` bytes be advertised (RFC 7323: at most 14).
pub fn window_shift_for(buffer: u32) -> u8 {
    let mut shift = 0u8;
    while shift < 14 && (65535u32 << shift) < buffer {
        shift += 1;
    }
    shift
}

/// From the original datagram quoted in an ICMP error, the 4-tuple of the TCP connection that
/// sent it (seen from our side). `None` unless it quotes a TCP header we could have sent.
fn quoted_tcp_tuple(original: &[u8]) -> Option<FourTuple> {
    if original.len() < 20 || original[0] >> 4 != 4 {
        return None;
    }
    let ihl = (original[0] & 0x0f) as usize * 4;
    if ihl < 20 || original.len() < ihl + 4 || original[9] != PROTO_TCP {
        return None;
    }
    let src = Ipv4Addr::new(original[12], original[13], original[14], original[15]);
    let dst = Ipv4Addr::new(original[16], original[17], original[18], original[19]);
    let sport = u16::from_be_bytes([original[ihl], original[ihl + 1]]);
    let dport = u16::from_be_bytes([original[ihl + 2], original[ihl + 3]]);
    Some(FourTuple {
        local: SocketAddrV4::new(src, sport),
        remote: SocketAddrV4::new(dst, dport),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
    const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x13]);
    const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    /// Every frame `poll_transmit` has now; fails instead of hanging if it never says `None`.
    fn drain(iface: &mut Interface, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1600];
        for _ in 0..10_000 {
            match iface.poll_transmit(now, &mut buf) {
                Some(n) => out.push(buf[..n].to_vec()),
                None => return out,
            }
        }
        panic!("poll_transmit never became idle");
    }

    fn arp_reply_from_peer() -> Vec<u8> {
        let arp = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hw: PEER_MAC,
            sender_ip: PEER,
            target_hw: MAC,
            target_ip: ADDR,
        };
        let eth = EthernetRepr {
            dst: MAC,
            src: PEER_MAC,
            ethertype: ETHERTYPE_ARP,
            vlan: None,
        };
        let mut f = vec![0u8; 60];
        let hl = eth.emit(&mut f);
        arp.emit(&mut f[hl..hl + arp::BUFFER_LEN]);
        f
    }

    fn tcp_from_peer(seg: &TcpRepr) -> Vec<u8> {
        let eth = EthernetRepr {
            dst: MAC,
            src: PEER_MAC,
            ethertype: ETHERTYPE_IPV4,
            vlan: None,
        };
        let ip = Ipv4Repr {
            src: PEER,
            dst: ADDR,
            protocol: PROTO_TCP,
            ttl: 64,
            ident: 1,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            dscp_ecn: 0,
            payload_len: seg.buffer_len(),
        };
        let mut f = vec![0u8; L4_OFFSET + seg.buffer_len()];
        eth.emit(&mut f);
        ip.emit(&mut f[L3_OFFSET..], ChecksumMode::SOFTWARE);
        seg.emit(&mut f[L4_OFFSET..], PEER, ADDR, ChecksumMode::SOFTWARE);
        f
    }

    /// TCP segments (parsed) among `frames`.
    fn tcp_segments(frames: &[Vec<u8>]) -> Vec<TcpRepr<'_>> {
        frames
            .iter()
            .filter(|f| f.len() > L4_OFFSET && f[12..14] == ETHERTYPE_IPV4.to_be_bytes())
            .filter(|f| f[L3_OFFSET + 9] == PROTO_TCP)
            .map(|f| TcpRepr::parse(&f[L4_OFFSET..], ADDR, PEER, ChecksumMode::SOFTWARE).unwrap())
            .collect()
    }

    #[test]
    fn udp_datagrams_never_exceed_the_mtu() {
        // Found by the iface_frames fuzz target: a 1473-byte payload made a 1501-byte IPv4
        // packet (with DF) because the check allowed for the frame buffer, not the MTU.
        let cfg = InterfaceConfig::new(MAC, Ipv4Cidr::new(ADDR, 24));
        let now = Instant::from_millis(1000);
        let mut iface = Interface::new(cfg, now);
        iface.handle_frame(now, &arp_reply_from_peer());
        let u = iface.udp_bind(53).unwrap();
        let dst = SocketAddrV4::new(PEER, 53);
        assert_eq!(
            iface.udp_send_to(now, u, dst, None, &[0u8; 1473]),
            Err(SocketError::Udp(UdpError::TooLarge))
        );
        iface.udp_send_to(now, u, dst, None, &[0u8; 1472]).unwrap();
        let out = drain(&mut iface, now);
        let largest = out.iter().map(|f| f.len()).max().unwrap();
        assert_eq!(largest, ETH_HEADER_LEN + 1500);
    }

    #[test]
    fn poll_transmit_returns_when_a_syn_cannot_wait_for_arp() {
        // Found by the iface_frames fuzz target: the next hop's queue of frames waiting for ARP
        // was full, so the SYN could not be held; poll_transmit re-queued the connection and
        // retried it forever.
        let mut cfg = InterfaceConfig::new(MAC, Ipv4Cidr::new(ADDR, 24));
        cfg.arp_pending_per_hop = 2;
        let now = Instant::from_millis(1000);
        let mut iface = Interface::new(cfg, now);
        let u = iface.udp_bind(53).unwrap();
        for _ in 0..2 {
            iface
                .udp_send_to(now, u, SocketAddrV4::new(PEER, 53), None, b"x")
                .unwrap();
        }
        let h = iface
            .tcp_connect(now, SocketAddrV4::new(PEER, 80), None)
            .unwrap();
        let out = drain(&mut iface, now);
        assert_eq!(out.len(), 2, "gratuitous ARP and the request for the peer");
        assert!(tcp_segments(&out).is_empty());
        // The peer answers: the held datagrams go out, then the SYN that could not be held.
        iface.handle_frame(now, &arp_reply_from_peer());
        let out = drain(&mut iface, now);
        assert_eq!(out.len(), 3);
        let segs = tcp_segments(&out);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].flags, TcpFlags::SYN);
        assert_eq!(iface.tcp_state(h), Ok(State::SynSent));
    }

    #[test]
    fn poll_transmit_returns_when_data_cannot_wait_for_arp() {
        // The data-path twin of the test above: an established connection whose neighbour entry
        // expired fills the next hop's pending queue with data segments; the FIFO egress got
        // `more` for a flow that could not send and handed it straight back, forever.
        let mut cfg = InterfaceConfig::new(MAC, Ipv4Cidr::new(ADDR, 24));
        cfg.arp_pending_per_hop = 2;
        cfg.arp.ttl = Duration::from_secs(5);
        let t0 = Instant::from_millis(1000);
        let mut iface = Interface::new(cfg, t0);
        iface.handle_frame(t0, &arp_reply_from_peer());
        let h = iface
            .tcp_connect(t0, SocketAddrV4::new(PEER, 80), None)
            .unwrap();
        let out = drain(&mut iface, t0);
        let syn = tcp_segments(&out)[0];
        let synack = TcpRepr {
            src_port: 80,
            dst_port: syn.src_port,
            seq: SeqNumber(7000),
            ack: syn.seq + 1u32,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 65535,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::default()
            },
            payload: &[],
        };
        iface.handle_frame(t0, &tcp_from_peer(&synack));
        assert_eq!(iface.tcp_state(h), Ok(State::Established));
        drain(&mut iface, t0);
        // The neighbour entry expires; the application has a window's worth of data.
        let t1 = t0 + Duration::from_secs(10);
        let data = vec![7u8; 20_000];
        assert!(iface.tcp_send(t1, h, &data).unwrap() > 0);
        let out = drain(&mut iface, t1);
        assert!(tcp_segments(&out).is_empty(), "data waits for ARP");
        assert!(!out.is_empty(), "an ARP request went out");
        // Asking again neither hangs nor loses the flow: once the peer answers, data flows.
        assert!(drain(&mut iface, t1).is_empty());
        iface.handle_frame(t1, &arp_reply_from_peer());
        let out = drain(&mut iface, t1);
        let segs = tcp_segments(&out);
        assert!(
            segs.len() > 2,
            "held segments and then more data: {}",
            segs.len()
        );
        assert!(segs.iter().all(|s| !s.payload.is_empty()));
    }
}
