//! A whole host in the network simulation: an [`Interface`] plus a small deterministic
//! application, driven as a [`SimNode`].
//!
//! This is test and benchmark glue: it lets [`crate::sim::Simulator`] run complete stacks
//! (Ethernet, ARP, IPv4, TCP) against each other over impaired links, with applications that
//! check what arrives. Payload bytes are a keyed pseudo-random pattern ([`fill_pattern`]) that
//! depends on the sending and receiving addresses, so a receiver checks every byte it reads
//! without any shared state with the sender, and also hashes the stream ([`stream_hash`]).
//!
//! Driving order per simulator callback, following the interface's documented call order:
//! input (`handle_frame` / `handle_timeouts`) first, then the applications consume events and
//! make their socket calls; the simulator then drains `poll_transmit`.
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use saps_stack::sim::{LinkConfig, Simulator};
//! use saps_stack::simhost::{App, BulkSender, SimHost, Sink};
//! use saps_stack::time::{Duration, Instant};
//!
//! let mut sim = Simulator::new(1);
//! let server = SimHost::with_address(2, Ipv4Addr::new(10, 0, 0, 2), vec![App::Sink(Sink::new(80))]);
//! let remote = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
//! let client = SimHost::with_address(
//!     1,
//!     Ipv4Addr::new(10, 0, 0, 1),
//!     vec![App::BulkSender(BulkSender::new(remote, 100_000))],
//! );
//! let (a, b) = (sim.add_node(client), sim.add_node(server));
//! let link = LinkConfig::with_delay(Duration::from_millis(5));
//! sim.connect(a, b, link, link);
//! sim.run_until(Instant::from_millis(2_000));
//! let App::Sink(sink) = &sim.node(b).apps[0] else { unreachable!() };
//! let t = &sink.transfers[0];
//! assert_eq!(t.received, 100_000);
//! assert!(t.peer_fin && t.mismatches == 0);
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::iface::{
    Event, Interface, InterfaceConfig, Ipv4Cidr, ListenerHandle, SocketError, TcpHandle,
};
use crate::sim::SimNode;
use crate::tcp::{CloseReason, TcpConfig, TcpError};
use crate::time::Instant;
use crate::wire::ethernet::EthernetAddress;

/// Timer expirations handled per `handle_timeouts` call (the interface's bounded-work budget).
const TIMEOUT_BUDGET: usize = 256;
/// Rounds of `handle_timeouts` per simulator timeout before yielding back to the simulator.
const TIMEOUT_ROUNDS: usize = 1024;
/// Application read/write chunk.
const CHUNK: usize = 64 * 1024;

/// SplitMix64 finaliser: the pattern's mixing function.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern key of the byte stream sent from `from` to `to`.
pub fn pattern_key(from: SocketAddrV4, to: SocketAddrV4) -> u64 {
    let a = (u64::from(u32::from(*from.ip())) << 16) | u64::from(from.port());
    let b = (u64::from(u32::from(*to.ip())) << 16) | u64::from(to.port());
    mix(a ^ mix(b))
}

/// Writes the pattern bytes `offset .. offset + buf.len()` of stream `key` into `buf`.
pub fn fill_pattern(key: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = mix(key ^ (pos / 8).wrapping_mul(0xd6e8_feb8_6659_fd93)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// FNV-1a over `data`, continuing from `hash` (start from [`HASH_INIT`]).
pub fn hash_update(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Initial value of [`hash_update`].
pub const HASH_INIT: u64 = 0xcbf2_9ce4_8422_2325;

/// The hash of the first `len` bytes of pattern stream `key` (what a receiver must end with).
pub fn stream_hash(key: u64, len: u64) -> u64 {
    let mut buf = [0u8; 4096];
    let mut hash = HASH_INIT;
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        fill_pattern(key, off, &mut buf[..n]);
        hash = hash_update(hash, &buf[..n]);
        off += n as u64;
    }
    hash
}

/// One connection of a [`BulkSender`], [`Sink`] or [`Echo`]: what was sent, what arrived, when.
#[derive(Clone, Debug)]
pub struct Transfer {
    /// The connection.
    pub handle: TcpHandle,
    /// Our address (known once connected or accepted).
    pub local: SocketAddrV4,
    /// The peer's address.
    pub remote: SocketAddrV4,
    /// When the connection was opened (connect called or accepted).
    pub started: Instant,
    /// When the handshake completed (active side), or accept time (passive side).
    pub connected: Option<Instant>,
    /// Pattern bytes to send before the FIN.
    pub to_send: u64,
    /// Bytes accepted by `tcp_send` so far.
    pub sent: u64,
    /// The FIN was requested (all bytes queued).
    pub shut: bool,
    /// Bytes read.
    pub received: u64,
    /// FNV-1a of the bytes read.
    pub hash: u64,
    /// The pattern key the received bytes are checked against.
    pub expect_key: u64,
    /// Bytes read that differ from the expected pattern.
    pub mismatches: u64,
    /// Offset of the first differing byte.
    pub first_mismatch: Option<u64>,
    /// The peer's FIN was read (everything before it has been read).
    pub peer_fin: bool,
    /// When the peer's FIN was read.
    pub finished: Option<Instant>,
    /// `Closed` event seen before we released the handle: when and why.
    pub closed: Option<(Instant, CloseReason)>,
    /// A socket call failed unexpectedly (first error).
    pub error: Option<SocketError>,
    /// `tcp_close` was called: the handle is gone.
    pub released: bool,
    /// Echo mode: bytes read but not yet written back.
    echo_pending: Vec<u8>,
}

impl Transfer {
    fn new(handle: TcpHandle, now: Instant, to_send: u64) -> Transfer {
        let unspecified = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        Transfer {
            handle,
            local: unspecified,
            remote: unspecified,
            started: now,
            connected: None,
            to_send,
            sent: 0,
            shut: false,
            received: 0,
            hash: HASH_INIT,
            expect_key: 0,
            mismatches: 0,
            first_mismatch: None,
            peer_fin: false,
            finished: None,
            closed: None,
            error: None,
            released: false,
            echo_pending: Vec::new(),
        }
    }

    /// Key of the stream this side sends.
    pub fn send_key(&self) -> u64 {
        pattern_key(self.local, self.remote)
    }

    /// Done: everything sent and the peer's whole stream (up to its FIN) read.
    pub fn complete(&self) -> bool {
        self.shut && self.sent == self.to_send && self.peer_fin
    }

    /// Checks one direction of a finished transfer: `to` (the peer's end) received exactly
    /// this end's stream, whole (FIN seen), byte for byte and with the right hash. The error
    /// says what differs.
    pub fn check_delivered_to(&self, to: &Transfer) -> Result<(), String> {
        let key = self.send_key();
        if to.expect_key != key {
            return Err(format!(
                "receiver expects key {:x}, sender sent {:x}",
                to.expect_key, key
            ));
        }
        if !to.peer_fin {
            return Err(format!(
                "receiver saw no FIN ({} of {} bytes)",
                to.received, self.to_send
            ));
        }
        if to.received != self.to_send || self.sent != self.to_send {
            return Err(format!(
                "length: sent {} of {}, received {}",
                self.sent, self.to_send, to.received
            ));
        }
        if to.mismatches != 0 {
            return Err(format!(
                "{} bytes differ, first at {:?}",
                to.mismatches, to.first_mismatch
            ));
        }
        let want = stream_hash(key, self.to_send);
        if to.hash != want {
            return Err(format!("hash {:x} != {:x}", to.hash, want));
        }
        Ok(())
    }

    fn note_error(&mut self, e: SocketError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Learn the endpoints; `echo` checks incoming bytes against our own stream.
    fn learn_endpoints<E: crate::EgressScheduler>(
        &mut self,
        iface: &mut Interface<E>,
        echo_of_self: bool,
    ) {
        if let Ok((l, r)) = iface.tcp_endpoints(self.handle) {
            self.local = l;
            self.remote = r;
            self.expect_key = if echo_of_self {
                pattern_key(l, r)
            } else {
                pattern_key(r, l)
            };
        }
    }

    /// Queue as many pattern bytes as fit; FIN once all are queued.
    fn pump_send<E: crate::EgressScheduler>(
        &mut self,
        now: Instant,
        iface: &mut Interface<E>,
        scratch: &mut [u8],
    ) {
        if self.released || self.shut {
            return;
        }
        let key = self.send_key();
        while self.sent < self.to_send {
            // Generate only what the send buffer takes: a bulk sender is called on every ACK.
            let room = match iface.tcp_send_capacity(self.handle) {
                Ok(0) => return,
                Ok(room) => room,
                Err(e) => {
                    self.note_error(e);
                    return;
                }
            };
            let n = ((self.to_send - self.sent) as usize)
                .min(scratch.len())
                .min(room);
            fill_pattern(key, self.sent, &mut scratch[..n]);
            match iface.tcp_send(now, self.handle, &scratch[..n]) {
                Ok(k) => {
                    self.sent += k as u64;
                    if k < n {
                        return;
                    }
                }
                Err(e) => {
                    self.note_error(e);
                    return;
                }
            }
        }
        match iface.tcp_shutdown(now, self.handle) {
            Ok(()) => self.shut = true,
            Err(e) => self.note_error(e),
        }
    }

    /// Write back what an echo server read and still holds; FIN after the peer's FIN.
    fn pump_echo<E: crate::EgressScheduler>(&mut self, now: Instant, iface: &mut Interface<E>) {
        if self.released || self.shut {
            return;
        }
        while !self.echo_pending.is_empty() {
            match iface.tcp_send(now, self.handle, &self.echo_pending) {
                Ok(0) => return,
                Ok(k) => {
                    self.echo_pending.drain(..k);
                    self.sent += k as u64;
                }
                Err(e) => {
                    self.note_error(e);
                    return;
                }
            }
        }
        if self.peer_fin {
            self.to_send = self.sent;
            match iface.tcp_shutdown(now, self.handle) {
                Ok(()) => self.shut = true,
                Err(e) => self.note_error(e),
            }
        }
    }

    /// Read everything available, checking it against the expected pattern (echo: keep it).
    fn pump_recv<E: crate::EgressScheduler>(
        &mut self,
        now: Instant,
        iface: &mut Interface<E>,
        scratch: &mut [u8],
        echo: bool,
    ) {
        if self.released || self.peer_fin {
            return;
        }
        let mut expect = [0u8; 4096];
        loop {
            // An echo server reads only what it can hold for writing back (back-pressure).
            let room = if echo {
                CHUNK
                    .saturating_sub(self.echo_pending.len())
                    .min(scratch.len())
            } else {
                scratch.len()
            };
            if room == 0 {
                return;
            }
            match iface.tcp_recv(now, self.handle, &mut scratch[..room]) {
                Ok(0) => return,
                Ok(n) => {
                    let data = &scratch[..n];
                    self.hash = hash_update(self.hash, data);
                    for (c, chunk) in data.chunks(expect.len()).enumerate() {
                        let off = self.received + (c * expect.len()) as u64;
                        fill_pattern(self.expect_key, off, &mut expect[..chunk.len()]);
                        if chunk != &expect[..chunk.len()] {
                            for (i, (a, b)) in chunk.iter().zip(expect.iter()).enumerate() {
                                if a != b {
                                    self.mismatches += 1;
                                    self.first_mismatch.get_or_insert(off + i as u64);
                                }
                            }
                        }
                    }
                    if echo {
                        self.echo_pending.extend_from_slice(data);
                    }
                    self.received += n as u64;
                }
                Err(SocketError::Tcp(TcpError::Finished)) => {
                    self.peer_fin = true;
                    self.finished = Some(now);
                    return;
                }
                Err(e) => {
                    self.note_error(e);
                    return;
                }
            }
        }
    }

    /// Release the handle once both directions are done.
    fn maybe_close<E: crate::EgressScheduler>(&mut self, now: Instant, iface: &mut Interface<E>) {
        if !self.released && self.peer_fin && self.shut {
            self.released = true;
            if let Err(e) = iface.tcp_close(now, self.handle) {
                self.note_error(e);
            }
        }
    }
}

/// Connects to `remote` (`connections` times, all at `start`), sends `bytes` pattern bytes on
/// each, then shuts down; reads and checks whatever the peer sends until its FIN, then closes.
#[derive(Clone, Debug)]
pub struct BulkSender {
    /// Where to connect.
    pub remote: SocketAddrV4,
    /// Pattern bytes to send per connection.
    pub bytes: u64,
    /// How many connections to open.
    pub connections: usize,
    /// When to open them.
    pub start: Instant,
    /// Per-connection TCP settings (`None`: the interface's).
    pub tcp: Option<TcpConfig>,
    /// The peer echoes our stream back (check received bytes against our own pattern).
    pub expect_echo: bool,
    /// One record per connection, in the order they were opened.
    pub transfers: Vec<Transfer>,
    /// `tcp_connect` failures.
    pub connect_errors: u32,
    started: bool,
    by_handle: HashMap<TcpHandle, usize>,
}

impl BulkSender {
    /// One connection to `remote` carrying `bytes`, opened at time zero.
    pub fn new(remote: SocketAddrV4, bytes: u64) -> BulkSender {
        BulkSender {
            remote,
            bytes,
            connections: 1,
            start: Instant::ZERO,
            tcp: None,
            expect_echo: false,
            transfers: Vec::new(),
            connect_errors: 0,
            started: false,
            by_handle: HashMap::new(),
        }
    }

    /// Bytes sent so far, summed over connections.
    pub fn sent(&self) -> u64 {
        self.transfers.iter().map(|t| t.sent).sum()
    }

    /// Every connection is opened and complete.
    pub fn all_complete(&self) -> bool {
        self.started && self.transfers.iter().all(Transfer::complete)
    }
}

/// Listens on `port`; per accepted connection reads, checks and hashes everything until the
/// peer's FIN, sends `reply_bytes` pattern bytes of its own (0: FIN right away), then closes.
#[derive(Clone, Debug)]
pub struct Sink {
    /// Port to listen on.
    pub port: u16,
    /// Pattern bytes to send on each connection.
    pub reply_bytes: u64,
    /// Listener TCP settings (`None`: the interface's).
    pub tcp: Option<TcpConfig>,
    /// One record per accepted connection, in accept order.
    pub transfers: Vec<Transfer>,
    /// The listen call failed.
    pub listen_error: Option<SocketError>,
    listener: Option<ListenerHandle>,
    by_handle: HashMap<TcpHandle, usize>,
}

impl Sink {
    /// A sink on `port` that sends nothing back.
    pub fn new(port: u16) -> Sink {
        Sink {
            port,
            reply_bytes: 0,
            tcp: None,
            transfers: Vec::new(),
            listen_error: None,
            listener: None,
            by_handle: HashMap::new(),
        }
    }
}

/// Listens on `port` and writes back everything it reads; FIN after the peer's FIN.
#[derive(Clone, Debug)]
pub struct Echo {
    /// Port to listen on.
    pub port: u16,
    /// One record per accepted connection.
    pub transfers: Vec<Transfer>,
    listener: Option<ListenerHandle>,
    by_handle: HashMap<TcpHandle, usize>,
}

impl Echo {
    /// An echo server on `port`.
    pub fn new(port: u16) -> Echo {
        Echo {
            port,
            transfers: Vec::new(),
            listener: None,
            by_handle: HashMap::new(),
        }
    }
}

/// Opens `total` connections and keeps them open and idle, keeping no per-connection records
/// (for memory measurements). Connection `i` goes to `remote_ip:first_port + i / per_port`, so
/// each remote port gets at most `per_port` connections (the ephemeral port range is 16384).
/// At most `max_pending` handshakes are in flight at once.
#[derive(Clone, Debug)]
pub struct Opener {
    /// Server address.
    pub remote_ip: Ipv4Addr,
    /// First server port.
    pub first_port: u16,
    /// Connections per server port.
    pub per_port: usize,
    /// Connections to open.
    pub total: usize,
    /// Handshakes in flight at most.
    pub max_pending: usize,
    /// Connections opened (`tcp_connect` succeeded).
    pub opened: usize,
    /// Handshakes completed.
    pub established: usize,
    /// Connections that closed (failed handshakes, resets).
    pub failed: usize,
    /// `tcp_connect` errors.
    pub connect_errors: usize,
    /// When the last handshake completed.
    pub last_established: Option<Instant>,
}

impl Opener {
    /// `total` connections to `remote_ip` starting at `first_port`, 16000 per port, 512 at once.
    pub fn new(remote_ip: Ipv4Addr, first_port: u16, total: usize) -> Opener {
        Opener {
            remote_ip,
            first_port,
            per_port: 16_000,
            total,
            max_pending: 512,
            opened: 0,
            established: 0,
            failed: 0,
            connect_errors: 0,
            last_established: None,
        }
    }

    /// Ports the server must listen on: `first_port .. first_port + ports_needed()`.
    pub fn ports_needed(&self) -> u16 {
        self.total.div_ceil(self.per_port.max(1)) as u16
    }

    fn open_more<E: crate::EgressScheduler>(&mut self, now: Instant, iface: &mut Interface<E>) {
        while self.opened < self.total
            && self.opened - self.established - self.failed < self.max_pending
            && self.connect_errors < 16
        {
            let port = self.first_port + (self.opened / self.per_port.max(1)) as u16;
            match iface.tcp_connect(now, SocketAddrV4::new(self.remote_ip, port), None) {
                Ok(_) => self.opened += 1,
                Err(_) => self.connect_errors += 1,
            }
        }
    }
}

/// Listens on `count` ports from `first_port` and accepts every connection, keeping it open and
/// idle without per-connection records (the counterpart of [`Opener`]).
#[derive(Clone, Debug)]
pub struct Acceptor {
    /// First port.
    pub first_port: u16,
    /// Number of ports.
    pub count: u16,
    /// Connections accepted.
    pub accepted: usize,
    /// Accepted connections that later closed.
    pub closed: usize,
    listeners: Vec<ListenerHandle>,
}

impl Acceptor {
    /// Listen on `first_port .. first_port + count`.
    pub fn new(first_port: u16, count: u16) -> Acceptor {
        Acceptor {
            first_port,
            count,
            accepted: 0,
            closed: 0,
            listeners: Vec::new(),
        }
    }
}

/// The application of a simulated host.
#[derive(Clone, Debug)]
pub enum App {
    /// Active bulk transfer(s).
    BulkSender(BulkSender),
    /// Passive receiver (optionally replying with its own bulk data).
    Sink(Sink),
    /// Passive echo server.
    Echo(Echo),
    /// Opens many idle connections (claims every connection no other app claims: put it last).
    Opener(Opener),
    /// Accepts many idle connections (claims its listeners' connections and every connection
    /// no other app claims: put it last).
    Acceptor(Acceptor),
}

impl App {
    /// Setup and anything due at `now` (listen, connect).
    fn tick<E: crate::EgressScheduler>(&mut self, now: Instant, iface: &mut Interface<E>) {
        match self {
            App::BulkSender(b) => {
                if !b.started && now >= b.start {
                    b.started = true;
                    for _ in 0..b.connections {
                        match iface.tcp_connect(now, b.remote, b.tcp.clone()) {
                            Ok(h) => {
                                b.by_handle.insert(h, b.transfers.len());
                                b.transfers.push(Transfer::new(h, now, b.bytes));
                            }
                            Err(_) => b.connect_errors += 1,
                        }
                    }
                }
            }
            App::Sink(s) => {
                if s.listener.is_none() && s.listen_error.is_none() {
                    match iface.tcp_listen(s.port, s.tcp.clone()) {
                        Ok(l) => s.listener = Some(l),
                        Err(e) => s.listen_error = Some(e),
                    }
                }
            }
            App::Echo(e) => {
                if e.listener.is_none() {
                    e.listener = iface.tcp_listen(e.port, None).ok();
                }
            }
            App::Opener(o) => o.open_more(now, iface),
            App::Acceptor(a) => {
                if a.listeners.is_empty() {
                    for p in 0..a.count {
                        if let Ok(l) = iface.tcp_listen(a.first_port + p, None) {
                            a.listeners.push(l);
                        }
                    }
                }
            }
        }
    }

    /// The next time [`Self::tick`] has something to do.
    fn wake(&self) -> Option<Instant> {
        match self {
            App::BulkSender(b) if !b.started => Some(b.start),
            _ => None,
        }
    }

    /// Offer `ev` to this app; `true` if it was this app's.
    fn handle_event<E: crate::EgressScheduler>(
        &mut self,
        now: Instant,
        iface: &mut Interface<E>,
        ev: Event,
        scratch: &mut [u8],
    ) -> bool {
        match self {
            App::BulkSender(b) => {
                let Some(h) = tcp_handle_of(ev) else {
                    return false;
                };
                let Some(&i) = b.by_handle.get(&h) else {
                    return false;
                };
                let t = &mut b.transfers[i];
                if let Event::Connected(_) = ev {
                    t.connected = Some(now);
                    t.learn_endpoints(iface, b.expect_echo);
                }
                drive(t, now, iface, ev, scratch, false);
                true
            }
            App::Sink(s) => {
                if let Event::Acceptable(l) = ev {
                    if Some(l) != s.listener {
                        return false;
                    }
                    while let Some(h) = iface.tcp_accept(l) {
                        let mut t = Transfer::new(h, now, s.reply_bytes);
                        t.connected = Some(now);
                        t.learn_endpoints(iface, false);
                        drive(&mut t, now, iface, Event::Readable(h), scratch, false);
                        s.by_handle.insert(h, s.transfers.len());
                        s.transfers.push(t);
                    }
                    return true;
                }
                let Some(h) = tcp_handle_of(ev) else {
                    return false;
                };
                let Some(&i) = s.by_handle.get(&h) else {
                    return false;
                };
                drive(&mut s.transfers[i], now, iface, ev, scratch, false);
                true
            }
            App::Echo(e) => {
                if let Event::Acceptable(l) = ev {
                    if Some(l) != e.listener {
                        return false;
                    }
                    while let Some(h) = iface.tcp_accept(l) {
                        let mut t = Transfer::new(h, now, 0);
                        t.connected = Some(now);
                        t.learn_endpoints(iface, false);
                        drive(&mut t, now, iface, Event::Readable(h), scratch, true);
                        e.by_handle.insert(h, e.transfers.len());
                        e.transfers.push(t);
                    }
                    return true;
                }
                let Some(h) = tcp_handle_of(ev) else {
                    return false;
                };
                let Some(&i) = e.by_handle.get(&h) else {
                    return false;
                };
                drive(&mut e.transfers[i], now, iface, ev, scratch, true);
                true
            }
            App::Opener(o) => match ev {
                Event::Connected(_) => {
                    o.established += 1;
                    o.last_established = Some(now);
                    o.open_more(now, iface);
                    true
                }
                Event::Closed(h, _) => {
                    o.failed += 1;
                    let _ = iface.tcp_close(now, h);
                    o.open_more(now, iface);
                    true
                }
                Event::Readable(_) | Event::Writable(_) | Event::PeerClosed(_) => true,
                _ => false,
            },
            App::Acceptor(a) => match ev {
                Event::Acceptable(l) if a.listeners.contains(&l) => {
                    while iface.tcp_accept(l).is_some() {
                        a.accepted += 1;
                    }
                    true
                }
                Event::Closed(h, _) => {
                    a.closed += 1;
                    let _ = iface.tcp_close(now, h);
                    true
                }
                Event::Readable(_) | Event::Writable(_) | Event::PeerClosed(_) => true,
                _ => false,
            },
        }
    }
}

fn tcp_handle_of(ev: Event) -> Option<TcpHandle> {
    match ev {
        Event::Connected(h)
        | Event::Readable(h)
        | Event::Writable(h)
        | Event::PeerClosed(h)
        | Event::Closed(h, _) => Some(h),
        Event::Acceptable(_) | Event::UdpReadable(_) => None,
    }
}

/// Advance one transfer after an event: read, write, close.
fn drive<E: crate::EgressScheduler>(
    t: &mut Transfer,
    now: Instant,
    iface: &mut Interface<E>,
    ev: Event,
    scratch: &mut [u8],
    echo: bool,
) {
    if let Event::Closed(_, reason) = ev {
        if !t.released {
            t.closed = Some((now, reason));
            t.released = true;
            let _ = iface.tcp_close(now, t.handle);
        }
        return;
    }
    t.pump_recv(now, iface, scratch, echo);
    if echo {
        t.pump_echo(now, iface);
        // Writing back may have made room to read more.
        t.pump_recv(now, iface, scratch, echo);
        t.pump_echo(now, iface);
    } else {
        t.pump_send(now, iface, scratch);
    }
    t.maybe_close(now, iface);
}

/// An [`Interface`] and its applications as one simulated node.
pub struct SimHost<E: crate::EgressScheduler = crate::egress::FifoEgress> {
    /// The stack.
    pub iface: Interface<E>,
    /// The applications, offered each event in order.
    pub apps: Vec<App>,
    /// Events no app claimed.
    pub unclaimed_events: u64,
    /// Transmit completions reported by the simulated link (or by the TX ring, if any).
    pub tx_completions: u64,
    /// ARP frames dropped because their check value did not match (see [`ARP_CHECK_AT`]).
    pub arp_check_drops: u64,
    /// The emulated NIC TX ring, if the host has one ([`SimHost::with_tx_ring`]).
    tx_ring: Option<TxRing>,
    /// The applications have run once (listeners exist).
    set_up: bool,
    scratch: Vec<u8>,
}

/// Bytes per frame on an Ethernet wire that the frame itself does not carry: preamble and SFD
/// (8), FCS (4) and the inter-frame gap (12), as the appliance's line-rate port counts them.
pub const WIRE_OVERHEAD_BYTES: u64 = 24;

/// Shape of an emulated NIC TX ring (see [`TxRing`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TxRingConfig {
    /// Ring slots (frames that can wait for the wire), at least 1.
    pub slots: usize,
    /// Wire rate in bits per second (0 is taken as 1).
    pub rate_bps: u64,
    /// Per-frame wire bytes beyond the frame ([`WIRE_OVERHEAD_BYTES`] for Ethernet).
    pub overhead_bytes: u64,
}

impl TxRingConfig {
    /// A ring of `slots` frames drained at `rate_bps` with Ethernet's wire overhead.
    pub fn new(slots: usize, rate_bps: u64) -> TxRingConfig {
        TxRingConfig {
            slots,
            rate_bps,
            overhead_bytes: WIRE_OVERHEAD_BYTES,
        }
    }
}

/// Counters of a [`TxRing`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TxRingStats {
    /// Frames written into the ring.
    pub frames: u64,
    /// Bytes written into the ring (frame lengths, without wire overhead).
    pub bytes: u64,
    /// Transmit attempts that found every slot taken and left the frame in the stack
    /// (back-pressure): one per poll of the host while the ring is full, not one per episode.
    pub full: u64,
    /// Most frames ever in the ring at once.
    pub max_frames: usize,
    /// Times the wire went idle (the ring ran empty after having frames).
    pub idle_gaps: u64,
}

/// The TX ring of an emulated NIC: `slots` frames wait for a wire of `rate_bps`.
///
/// This is the bottleneck the SAPS paper is about. A frame starts on the wire when the wire is
/// free and the frame is in the ring, and takes `(len + overhead) * 8 / rate` (nanosecond
/// resolution, like [`crate::sim`]'s links); when its last bit is out it leaves the ring, the
/// host reports it with [`Interface::handle_tx_completions`] and hands it to the simulated link
/// (which should then have no rate of its own). While every slot is taken the host does not
/// poll the stack at all (back-pressure, nothing is ever dropped), exactly like the appliance's
/// poll loop with a full port. Slots are preallocated; each frame costs O(1) and one copy in and
/// one copy out.
#[derive(Clone, Debug)]
pub struct TxRing {
    cfg: TxRingConfig,
    slot_len: usize,
    bufs: Vec<u8>,
    lens: Vec<u32>,
    /// Nanosecond time at which each slot's frame has left the wire.
    finish_ns: Vec<u64>,
    head: usize,
    len: usize,
    /// Frames at the head that have left the wire and been reported, not yet handed to the link.
    done: usize,
    bytes_in_ring: u64,
    /// When the wire finishes the last frame written.
    wire_free_ns: u64,
    stats: TxRingStats,
}

impl TxRing {
    /// A ring of `cfg.slots` slots of `slot_len` bytes each.
    pub fn new(cfg: TxRingConfig, slot_len: usize) -> TxRing {
        let slots = cfg.slots.max(1);
        TxRing {
            cfg: TxRingConfig {
                slots,
                rate_bps: cfg.rate_bps.max(1),
                overhead_bytes: cfg.overhead_bytes,
            },
            slot_len,
            bufs: vec![0; slots * slot_len],
            lens: vec![0; slots],
            finish_ns: vec![0; slots],
            head: 0,
            len: 0,
            done: 0,
            bytes_in_ring: 0,
            wire_free_ns: 0,
            stats: TxRingStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TxRingConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &TxRingStats {
        &self.stats
    }

    /// Frames in the ring (written, not yet completed).
    pub fn frames(&self) -> usize {
        self.len - self.done
    }

    /// Bytes in the ring (written, not yet completed).
    pub fn bytes(&self) -> u64 {
        self.bytes_in_ring
    }

    /// Wire time of a frame of `len` bytes in nanoseconds (rounded up).
    pub fn frame_time_ns(&self, len: usize) -> u64 {
        let bits = (len as u128 + u128::from(self.cfg.overhead_bytes)) * 8;
        (bits * 1_000_000_000).div_ceil(u128::from(self.cfg.rate_bps)) as u64
    }

    /// When the oldest frame still on the wire leaves it (rounded up to a microsecond).
    pub fn next_completion(&self) -> Option<Instant> {
        if self.done == self.len {
            return None;
        }
        let i = (self.head + self.done) % self.cfg.slots;
        Some(Instant::from_micros(self.finish_ns[i].div_ceil(1000)))
    }

    /// Mark every frame that has left the wire by `now` as completed; returns their count and
    /// bytes (what the NIC reports).
    fn complete(&mut self, now: Instant) -> (u32, u64) {
        let now_ns = now.total_micros().saturating_mul(1000);
        let (mut packets, mut bytes) = (0u32, 0u64);
        while self.done < self.len {
            let i = (self.head + self.done) % self.cfg.slots;
            if self.finish_ns[i] > now_ns {
                break;
            }
            self.done += 1;
            packets += 1;
            bytes += u64::from(self.lens[i]);
        }
        self.bytes_in_ring -= bytes;
        if packets > 0 && self.done == self.len {
            self.stats.idle_gaps += 1;
        }
        (packets, bytes)
    }

    /// Hand the oldest completed frame to the caller (copied into `buf`).
    fn pop_done(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.done == 0 {
            return None;
        }
        let len = self.lens[self.head] as usize;
        let at = self.head * self.slot_len;
        buf[..len].copy_from_slice(&self.bufs[at..at + len]);
        self.head = (self.head + 1) % self.cfg.slots;
        self.len -= 1;
        self.done -= 1;
        Some(len)
    }

    /// The next free slot, or `None` when the ring is full.
    fn free_slot(&mut self) -> Option<&mut [u8]> {
        if self.len == self.cfg.slots {
            return None;
        }
        let i = (self.head + self.len) % self.cfg.slots;
        Some(&mut self.bufs[i * self.slot_len..(i + 1) * self.slot_len])
    }

    /// The frame of `len` bytes just written into [`Self::free_slot`] joins the ring at `now`.
    fn commit(&mut self, len: usize, now: Instant) {
        let i = (self.head + self.len) % self.cfg.slots;
        let now_ns = now.total_micros().saturating_mul(1000);
        let finish = now_ns.max(self.wire_free_ns) + self.frame_time_ns(len);
        self.wire_free_ns = finish;
        self.lens[i] = len as u32;
        self.finish_ns[i] = finish;
        self.len += 1;
        self.bytes_in_ring += len as u64;
        self.stats.frames += 1;
        self.stats.bytes += len as u64;
        self.stats.max_frames = self.stats.max_frames.max(self.len - self.done);
    }
}

impl SimHost {
    /// A host with MAC `02:00:00:00:00:<id>` (plus higher bytes of `id`) at `ip/24` with default
    /// settings and an ISN/hash seed derived from `id`.
    pub fn with_address(id: u32, ip: Ipv4Addr, apps: Vec<App>) -> SimHost {
        SimHost::new(host_config(id, ip), apps)
    }

    /// A host with the given interface configuration.
    pub fn new(cfg: InterfaceConfig, apps: Vec<App>) -> SimHost {
        SimHost::with_interface(Interface::new(cfg, Instant::ZERO), apps)
    }
}

/// The default configuration [`SimHost::with_address`] uses (tests adjust it before
/// [`SimHost::new`]).
pub fn host_config(id: u32, ip: Ipv4Addr) -> InterfaceConfig {
    let b = id.to_be_bytes();
    let mac = EthernetAddress([0x02, 0, b[0], b[1], b[2], b[3]]);
    let mut cfg = InterfaceConfig::new(mac, Ipv4Cidr::new(ip, 24));
    cfg.seed = 0x5a95_0000_0000 ^ u64::from(id).wrapping_mul(0x9e37_79b9);
    cfg
}

impl<E: crate::EgressScheduler> SimHost<E> {
    /// Whether every connection is CLOSED or in TIME_WAIT (what is left once the applications
    /// closed everything).
    pub fn only_closed_or_time_wait(&self) -> bool {
        let st = self.iface.connection_states();
        crate::tcp::State::ALL.iter().all(|&s| {
            matches!(s, crate::tcp::State::Closed | crate::tcp::State::TimeWait)
                || st[s as usize] == 0
        })
    }

    /// The nonzero connection-state counts, e.g. `ESTABLISHED=2,TIME_WAIT=5`.
    pub fn states_summary(&self) -> String {
        let st = self.iface.connection_states();
        crate::tcp::State::ALL
            .iter()
            .filter(|&&s| st[s as usize] > 0)
            .map(|&s| format!("{}={}", s.name(), st[s as usize]))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A host around an existing interface.
    pub fn with_interface(iface: Interface<E>, apps: Vec<App>) -> SimHost<E> {
        SimHost {
            iface,
            apps,
            unclaimed_events: 0,
            tx_completions: 0,
            arp_check_drops: 0,
            tx_ring: None,
            set_up: false,
            scratch: vec![0; CHUNK],
        }
    }

    /// Put an emulated NIC TX ring between the stack and the link (see [`TxRing`]). The link
    /// from this host should have no rate: the ring is the bottleneck.
    pub fn with_tx_ring(mut self, cfg: TxRingConfig) -> SimHost<E> {
        let slot_len = self.iface.config().mtu + 18;
        self.tx_ring = Some(TxRing::new(cfg, slot_len));
        self
    }

    /// The emulated TX ring, if any.
    pub fn tx_ring(&self) -> Option<&TxRing> {
        self.tx_ring.as_ref()
    }

    /// Let the applications act on what is due and on every pending event.
    pub fn run_apps(&mut self, now: Instant) {
        self.set_up = true;
        for app in &mut self.apps {
            app.tick(now, &mut self.iface);
        }
        while let Some(ev) = self.iface.poll_event() {
            let mut claimed = false;
            for app in &mut self.apps {
                if app.handle_event(now, &mut self.iface, ev, &mut self.scratch) {
                    claimed = true;
                    break;
                }
            }
            if !claimed {
                self.unclaimed_events += 1;
            }
        }
    }
}

/// Where a [`SimHost`] puts the check value of an ARP frame: in the Ethernet padding right after
/// the 28-byte ARP body.
///
/// ARP has no checksum; on a real link the Ethernet FCS drops a corrupted frame before the stack
/// sees it. The simulator's corruption flips bits in any frame, and a flipped bit in an ARP
/// reply's sender MAC poisons the neighbour's ARP cache (every later frame goes to a MAC nobody
/// has). So hosts protect ARP frames with a check value like an FCS, while IPv4/TCP frames stay
/// unprotected to exercise the stack's own checksums.
pub const ARP_CHECK_AT: usize = 42;

fn is_arp(frame: &[u8]) -> bool {
    frame.len() >= ARP_CHECK_AT + 4 && frame[12] == 0x08 && frame[13] == 0x06
}

fn arp_check(frame: &[u8]) -> [u8; 4] {
    (hash_update(HASH_INIT, &frame[..ARP_CHECK_AT]) as u32).to_le_bytes()
}

/// Put the check value into an outgoing ARP frame (other frames are left alone).
fn stamp_arp(frame: &mut [u8]) {
    if is_arp(frame) {
        let check = arp_check(frame);
        frame[ARP_CHECK_AT..ARP_CHECK_AT + 4].copy_from_slice(&check);
    }
}

impl<E: crate::EgressScheduler> SimNode for SimHost<E> {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        if is_arp(frame) && frame[ARP_CHECK_AT..ARP_CHECK_AT + 4] != arp_check(frame) {
            self.arp_check_drops += 1;
            return;
        }
        self.iface.handle_frame(now, frame);
        self.run_apps(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let Some(ring) = self.tx_ring.as_mut() else {
            let len = self.iface.poll_transmit(now, buf)?;
            stamp_arp(&mut buf[..len]);
            return Some(len);
        };
        // What left the wire completes first (the stack may admit more into the freed slots),
        // then goes to the link one frame per call; only when none is left does the stack get
        // polled, for as many frames as there are free slots.
        let (packets, bytes) = ring.complete(now);
        if packets > 0 {
            self.tx_completions += u64::from(packets);
            self.iface.handle_tx_completions(now, packets, bytes);
        }
        if let Some(len) = ring.pop_done(buf) {
            return Some(len);
        }
        loop {
            let Some(slot) = ring.free_slot() else {
                ring.stats.full += 1;
                return None;
            };
            let len = self.iface.poll_transmit(now, slot)?;
            stamp_arp(&mut slot[..len]);
            ring.commit(len, now);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if !self.set_up {
            // Listen before the first frame can arrive: a SYN must never find no listener.
            return Some(Instant::ZERO);
        }
        let apps = self.apps.iter().filter_map(App::wake).min();
        let ring = self.tx_ring.as_ref().and_then(TxRing::next_completion);
        [self.iface.poll_timeout(), apps, ring]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        // Drain everything due (bounded per call); the simulator calls again if more is due.
        // A TX ring completion alone needs no stack work: the simulator polls transmit next.
        for _ in 0..TIMEOUT_ROUNDS {
            if self.iface.poll_timeout().is_none_or(|t| t > now) {
                break;
            }
            self.iface.handle_timeouts(now, TIMEOUT_BUDGET);
        }
        self.run_apps(now);
    }

    fn handle_tx_complete(&mut self, now: Instant, _port: usize) {
        // With a TX ring the ring reports completions; the link's are of frames already out.
        if self.tx_ring.is_none() {
            self.tx_completions += 1;
            self.iface.handle_tx_completions(now, 1, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{LinkConfig, Simulator};
    use crate::time::Duration;

    #[test]
    fn tx_ring_paces_at_line_rate_and_back_pressures_without_drops() {
        let mut sim = Simulator::new(7);
        let b_ip = Ipv4Addr::new(10, 0, 0, 2);
        let remote = SocketAddrV4::new(b_ip, 80);
        let bytes = 300_000;
        let a = SimHost::with_address(
            1,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![App::BulkSender(BulkSender::new(remote, bytes))],
        )
        .with_tx_ring(TxRingConfig::new(8, 10_000_000));
        let b = SimHost::with_address(2, b_ip, vec![App::Sink(Sink::new(80))]);
        let (a, b) = (sim.add_node(a), sim.add_node(b));
        let link = LinkConfig::with_delay(Duration::from_micros(100));
        sim.connect(a, b, link, link);
        sim.run_until(Instant::from_millis(2_000));
        let App::Sink(sink) = &sim.node(b).apps[0] else {
            unreachable!()
        };
        let t = &sink.transfers[0];
        assert_eq!(t.received, bytes);
        assert_eq!(t.mismatches, 0);
        let host = sim.node(a);
        let ring = host.tx_ring().unwrap();
        let st = *ring.stats();
        // Never more than the slots, full often (the window is far larger), nothing left over.
        assert_eq!(st.max_frames, 8);
        assert!(st.full > 100, "{st:?}");
        assert_eq!(ring.frames(), 0);
        assert_eq!(ring.bytes(), 0);
        assert_eq!(host.tx_completions, st.frames);
        // Paced: the data cannot arrive faster than the wire (1514 + 24 bytes per 1448 payload).
        let wire_ns = ring.frame_time_ns(1514);
        assert_eq!(wire_ns, 1_230_400);
        let min_us = (bytes / 1448) * wire_ns / 1000;
        let took = t.finished.unwrap().total_micros();
        assert!(took >= min_us, "{took} us < {min_us} us");
        assert!(took < min_us * 3 / 2, "{took} us");
    }

    #[test]
    fn pattern_is_position_independent() {
        let key = 12345;
        let mut whole = vec![0u8; 1000];
        fill_pattern(key, 0, &mut whole);
        let mut part = vec![0u8; 333];
        fill_pattern(key, 101, &mut part);
        assert_eq!(&whole[101..434], &part[..]);
        assert_eq!(stream_hash(key, 1000), hash_update(HASH_INIT, &whole));
        assert_ne!(stream_hash(key, 1000), stream_hash(key + 1, 1000));
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 5);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
        assert_ne!(pattern_key(a, b), pattern_key(b, a));
    }
}
