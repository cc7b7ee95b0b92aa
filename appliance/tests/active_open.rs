//! Active open against the Linux kernel's TCP: the saps stack opens the connection to a kernel
//! listener, both directions carry 30 MB at the same time, byte-exact, and then saps closes
//! first: it ends in TIME_WAIT while the kernel's side of the connection is gone. The passive
//! side (Linux clients connecting to the appliance) is covered by `tcp_interop.rs`.
//!
//! No appliance binary: the test drives a `saps_stack::Interface` on an af_packet port itself,
//! in the order `saps::runtime` uses (receive burst, timers, TX completions, transmit), with the
//! application's calls between turns. The port's packet socket is opened inside the port
//! namespace and keeps belonging to it, so the loop may run on any thread. The kernel's side is
//! plain `std::net` sockets made inside the kernel namespace.
//!
//! Needs root: without it the test prints SKIPPED (CI runs it as root, where a skip fails).

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{
    kernel_topology, require_root, wait_for, KernelTopology, Netns, KERNEL_ADDR, PORT_ADDR,
    PREFIX_LEN,
};
use saps::port::af_packet::{AfPacketConfig, AfPacketPort};
use saps::port::Port;
use saps::runtime::{transmit, Clock, RX_BURST, TIMER_BUDGET, TX_BUDGET};
use saps_stack::iface::{Event, Interface, InterfaceConfig, Ipv4Cidr, SocketError, TcpHandle};
use saps_stack::stats::StackStats;
use saps_stack::tcp::{ConnInfo, State, TcpError};
use saps_stack::wire::ethernet::EthernetAddress;

/// Bytes each direction carries.
const TRANSFER_BYTES: u64 = 30_000_000;
/// The kernel listener's port.
const KERNEL_PORT: u16 = 5001;
/// The two byte streams' pattern keys. They differ, so bytes delivered to the wrong direction
/// would not pass for the right ones.
const SAPS_TO_KERNEL: u64 = 1;
const KERNEL_TO_SAPS: u64 = 2;
/// Bound on the whole exchange, from connect to both sides closed.
const DEADLINE: Duration = Duration::from_secs(60);
/// Longest one kernel socket call may block before the kernel side gives up (a saps side that
/// died must not leave the kernel side waiting forever).
const KERNEL_STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes per application read or write, on either side.
const CHUNK: usize = 64 * 1024;

#[test]
fn saps_connects_to_a_kernel_listener_moves_30_mb_each_way_and_closes_first() {
    if !require_root("saps_connects_to_a_kernel_listener_moves_30_mb_each_way_and_closes_first") {
        return;
    }
    let topo = kernel_topology();
    let listener = topo
        .ns_kernel
        .run_in(|| TcpListener::bind((KERNEL_ADDR, KERNEL_PORT)))
        .expect("enter the kernel namespace")
        .expect("kernel listens");
    let mut host = SapsHost::open(&topo);
    let our_window_shift = host.iface.config().tcp.window_shift();
    let stop_saps = AtomicBool::new(false);
    let saps_in_time_wait = AtomicBool::new(false);

    let (saps, kernel, kernel_sockets) = std::thread::scope(|s| {
        // Whatever happens on this thread, the saps loop stops: a panic here must not leave it
        // running until its deadline.
        let _stop_on_exit = SetOnDrop(&stop_saps);
        let saps = s.spawn(|| saps_side(&mut host, &stop_saps, &saps_in_time_wait));
        let kernel = s.spawn(|| kernel_side(listener, &topo.ns_kernel));
        let kernel = kernel.join().expect("kernel side panicked");
        // The kernel closed after reading saps's FIN: its FIN puts saps in TIME_WAIT, and saps's
        // ACK of that FIN removes the kernel's socket. Look at the kernel's sockets while saps
        // still sits in TIME_WAIT: once saps has forgotten the connection, it would answer a
        // retransmitted FIN with a RST, which also removes the socket and would hide a missing ACK.
        let saps_reached_time_wait = kernel.is_ok()
            && wait_for(DEADLINE.as_millis() as u64, || {
                if saps_in_time_wait.load(Ordering::Relaxed) {
                    Some(true)
                } else {
                    saps.is_finished().then_some(false)
                }
            }) == Some(true);
        let kernel_sockets = if saps_reached_time_wait {
            kernel_sockets_once_settled(&topo.ns_kernel, Duration::from_secs(5))
        } else {
            kernel_sockets_now(&topo.ns_kernel)
        };
        stop_saps.store(true, Ordering::Relaxed);
        let saps = saps.join().expect("saps side panicked");
        (saps, kernel, kernel_sockets)
    });

    let saps = saps.unwrap_or_else(|e| {
        panic!("saps side failed: {e}\nkernel side: {kernel:?}\nkernel sockets:\n{kernel_sockets}")
    });
    let kernel = kernel.unwrap_or_else(|e| {
        panic!(
            "kernel side failed: {e}\nsaps side: {}\nkernel sockets:\n{kernel_sockets}",
            saps.diagnostics
        )
    });
    let context = format!(
        "saps side: {}\nkernel side: {kernel:?}\nkernel sockets at the end:\n{kernel_sockets}",
        saps.diagnostics
    );
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    let mbit_per_s = |d: Option<Duration>| TRANSFER_BYTES as f64 * 8.0 / secs(d) / 1e6;
    eprintln!(
        "active open to Linux: connected in {:.2} ms; 30 MB each way at once: saps->kernel acked in \
         {:.2} s ({:.0} Mbit/s), kernel->saps received in {:.2} s ({:.0} Mbit/s); \
         {} retransmitted segments, {} RTOs",
        secs(Some(saps.handshake)) * 1e3,
        secs(saps.send_done),
        mbit_per_s(saps.send_done),
        secs(saps.recv_done),
        mbit_per_s(saps.recv_done),
        saps.stats.tcp.retransmitted_segments,
        saps.stats.tcp.rto_expiries,
    );

    // saps opened the connection, and it is the one the kernel accepted.
    assert_eq!(saps.state_at_connect, State::Established, "{context}");
    assert_eq!(saps.stats.tcp.active_opens, 1, "{context}");
    assert_eq!(saps.stats.tcp.passive_opens, 0, "{context}");
    assert_eq!(kernel.peer, SocketAddr::V4(saps.local), "{context}");

    // The handshake settled timestamps, SACK and window scaling, as both sides see it.
    let info = saps.info_at_connect;
    assert!(info.timestamps, "timestamps not negotiated: {info:?}");
    assert!(info.sack, "SACK not negotiated: {info:?}");
    let (ours, kernels) = info
        .window_scale
        .unwrap_or_else(|| panic!("window scaling not negotiated: {info:?}"));
    assert_eq!(ours, our_window_shift, "{info:?}");
    assert!(
        kernels > 0,
        "the kernel offered no window scaling: {info:?}"
    );
    // The kernel's MSS of 1460 less the 12 bytes every timestamped segment carries.
    assert_eq!(info.mss, 1448, "{info:?}");
    // ss prints the kernel's view: `ts sack` (with -o on this iproute2) and
    // `wscale:<peer's shift>,<own shift>`.
    let ss_words: Vec<&str> = kernel.ss_established.split_whitespace().collect();
    for option in [
        "ts",
        "sack",
        &format!("wscale:{ours},{kernels}"),
        "mss:1448",
    ] {
        assert!(
            ss_words.contains(&option),
            "kernel's ss lacks `{option}`:\n{}",
            kernel.ss_established
        );
    }

    // Every byte arrived, in order, both ways.
    assert_eq!(saps.sent, TRANSFER_BYTES, "{context}");
    assert_eq!(kernel.sent, TRANSFER_BYTES, "{context}");
    kernel.received.assert_complete("saps -> kernel", &context);
    saps.received.assert_complete("kernel -> saps", &context);

    // saps closed first: it went FIN_WAIT -> TIME_WAIT, never through the passive closer's
    // states, and the kernel's socket is gone (no LAST_ACK left waiting for an ACK, no TIME_WAIT).
    assert_eq!(saps.states.last(), Some(&State::TimeWait), "{context}");
    for passive in [State::CloseWait, State::LastAck, State::Closing] {
        assert!(!saps.states.contains(&passive), "{context}");
    }
    assert!(
        kernel_sockets.trim().is_empty(),
        "kernel sockets left:\n{kernel_sockets}\n{context}"
    );
}

/// Byte `offset` of stream `key`: the top byte of a multiplicative hash of the offset. The stream
/// has no short period, so a lost, duplicated or misplaced segment fails at its first byte.
fn pattern_byte(key: u64, offset: u64) -> u8 {
    ((offset ^ (key << 56)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

/// Fills `buf` with stream `key` from `offset` on.
fn fill_pattern(key: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(key, offset + i as u64);
    }
}

/// Checks a received stream against its pattern as it arrives.
#[derive(Debug)]
struct PatternCheck {
    key: u64,
    received: u64,
    first_mismatch: Option<u64>,
}

impl PatternCheck {
    fn new(key: u64) -> Self {
        PatternCheck {
            key,
            received: 0,
            first_mismatch: None,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        if self.first_mismatch.is_none() {
            let at = self.received;
            self.first_mismatch = (at..)
                .zip(data)
                .find(|&(offset, &b)| b != pattern_byte(self.key, offset))
                .map(|(offset, _)| offset);
        }
        self.received += data.len() as u64;
    }

    fn is_complete(&self) -> bool {
        self.received == TRANSFER_BYTES
    }

    fn assert_complete(&self, direction: &str, context: &str) {
        assert_eq!(
            self.first_mismatch, None,
            "{direction}: first wrong byte at this offset\n{context}"
        );
        assert_eq!(
            self.received, TRANSFER_BYTES,
            "{direction}: bytes received\n{context}"
        );
    }
}

/// Sets the flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel's side
// ---------------------------------------------------------------------------------------------

/// What the kernel's side saw.
#[derive(Debug)]
struct KernelSide {
    /// The connecting address, as accept() reported it.
    peer: SocketAddr,
    /// `ss -tino` of the established connection, taken while the transfer ran.
    ss_established: String,
    sent: u64,
    received: PatternCheck,
}

/// Accepts one connection, sends the kernel's stream while reading saps's, and closes its write
/// direction only after it has read saps's FIN and sent everything. Closing any earlier would
/// race saps's FIN, and either side could end up the active closer.
fn kernel_side(listener: TcpListener, ns_kernel: &Netns) -> io::Result<KernelSide> {
    let stream = accept_within(&listener, Duration::from_secs(10))?;
    // Only the connection remains, so `ss` shows just it and, after the close, nothing.
    drop(listener);
    stream.set_read_timeout(Some(KERNEL_STALL_TIMEOUT))?;
    stream.set_write_timeout(Some(KERNEL_STALL_TIMEOUT))?;
    let peer = stream.peer_addr()?;
    let mut writer = stream.try_clone()?;
    std::thread::scope(|s| {
        let sending = s.spawn(move || send_pattern(&mut writer, KERNEL_TO_SAPS));
        let ss_established = ns_kernel
            .exec("ss", &["-tino", "state", "established"])
            .unwrap_or_else(|e| format!("(ss failed: {e})"));
        let mut received = PatternCheck::new(SAPS_TO_KERNEL);
        read_to_eof(&mut &stream, &mut received)?;
        let sent = sending
            .join()
            .map_err(|_| io::Error::other("kernel sender panicked"))??;
        stream.shutdown(Shutdown::Write)?;
        Ok(KernelSide {
            peer,
            ss_established,
            sent,
            received,
        })
    })
}

/// `accept` with a timeout (std's blocks forever).
fn accept_within(listener: &TcpListener, timeout: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if start.elapsed() > timeout {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("saps did not connect within {timeout:?}"),
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

fn send_pattern(w: &mut impl Write, key: u64) -> io::Result<u64> {
    let mut chunk = vec![0u8; CHUNK];
    let mut sent = 0;
    while sent < TRANSFER_BYTES {
        let n = CHUNK.min((TRANSFER_BYTES - sent) as usize);
        fill_pattern(key, sent, &mut chunk[..n]);
        w.write_all(&chunk[..n])?;
        sent += n as u64;
    }
    Ok(sent)
}

fn read_to_eof(r: &mut impl Read, check: &mut PatternCheck) -> io::Result<()> {
    let mut buf = vec![0u8; 4 * CHUNK];
    loop {
        match r.read(&mut buf)? {
            0 => return Ok(()),
            n => check.feed(&buf[..n]),
        }
    }
}

/// TCP sockets in the kernel namespace, one per line (empty: none).
fn kernel_sockets_now(ns_kernel: &Netns) -> String {
    ns_kernel
        .exec("ss", &["-tanoH"])
        .unwrap_or_else(|e| format!("(ss failed: {e})"))
}

/// Waits up to `timeout` for the kernel namespace to have no TCP sockets; returns what is left.
fn kernel_sockets_once_settled(ns_kernel: &Netns, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let sockets = kernel_sockets_now(ns_kernel);
        if sockets.trim().is_empty() || start.elapsed() > timeout {
            return sockets;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// saps's side
// ---------------------------------------------------------------------------------------------

/// The saps stack on an af_packet port on the topology's port end, with default settings.
struct SapsHost {
    iface: Interface,
    port: AfPacketPort,
    clock: Clock,
}

impl SapsHost {
    fn open(topo: &KernelTopology) -> SapsHost {
        let cfg = AfPacketConfig::new(&topo.veth.a);
        let port = topo
            .ns_port
            .run_in(|| AfPacketPort::open(&cfg))
            .expect("enter the port namespace")
            .expect("open af_packet port");
        let clock = Clock::start();
        let iface_cfg = InterfaceConfig::new(
            EthernetAddress(port.mac()),
            Ipv4Cidr::new(PORT_ADDR, PREFIX_LEN),
        );
        SapsHost {
            iface: Interface::new(iface_cfg, clock.now()),
            port,
            clock,
        }
    }

    /// One poll-loop turn without the application: received frames into the stack, due timers,
    /// TX completions, then the stack's frames into the TX ring. True if anything happened.
    fn turn(&mut self, now: saps_stack::Instant) -> Result<bool, String> {
        let iface = &mut self.iface;
        let received = self
            .port
            .rx_burst(now, RX_BURST, &mut |frame| iface.handle_frame(now, frame));
        let mut timers = 0;
        if iface.poll_timeout().is_some_and(|t| t <= now) {
            timers = iface.handle_timeouts(now, TIMER_BUDGET);
        }
        let done = self.port.take_completions(now);
        if done.packets > 0 {
            iface.handle_tx_completions(now, done.packets as u32, done.bytes);
        }
        let (sent, rejected) = transmit(&mut self.port, iface, now, TX_BUDGET);
        if let Some(e) = rejected {
            return Err(format!("the port rejected a frame of the stack: {e}"));
        }
        let flushed = self.port.tx_flush(now);
        Ok(received > 0 || timers > 0 || done.packets > 0 || sent > 0 || flushed > 0)
    }
}

/// What saps's side saw.
struct SapsSide {
    /// saps's address and ephemeral port.
    local: SocketAddrV4,
    /// The state when `Event::Connected` arrived, and the options the handshake settled.
    state_at_connect: State,
    info_at_connect: ConnInfo,
    /// From `tcp_connect` to `Event::Connected` (ARP resolution and the handshake).
    handshake: Duration,
    /// From `Event::Connected` until every byte saps sent was acknowledged.
    send_done: Option<Duration>,
    /// From `Event::Connected` until the kernel's last byte was read.
    recv_done: Option<Duration>,
    /// Every state the connection was seen in, in order (sampled once per loop turn).
    states: Vec<State>,
    sent: u64,
    received: PatternCheck,
    stats: StackStats,
    /// Connection, stack and port state at the end, for failure messages.
    diagnostics: String,
}

/// Runs saps's side until `stop` is set (the test has looked at the kernel's side) or the
/// deadline passes: connects, sends its stream while reading the kernel's, shuts down its write
/// direction once everything is queued, and sets `in_time_wait` when the connection gets there.
/// An error carries the connection's, stack's and port's state.
fn saps_side(
    host: &mut SapsHost,
    stop: &AtomicBool,
    in_time_wait: &AtomicBool,
) -> Result<SapsSide, String> {
    let start = Instant::now();
    let remote = SocketAddrV4::new(KERNEL_ADDR, KERNEL_PORT);
    let conn = host
        .iface
        .tcp_connect(host.clock.now(), remote, None)
        .map_err(|e| format!("tcp_connect: {e}"))?;
    let (local, _) = host.iface.tcp_endpoints(conn).map_err(|e| e.to_string())?;
    let poll_fd = host.port.poll_fd();
    let mut app = SapsApp::new(conn);
    let mut buf = vec![0u8; CHUNK];
    while !stop.load(Ordering::Relaxed) {
        if start.elapsed() > DEADLINE {
            return Err(format!(
                "not finished within {DEADLINE:?}\n{}",
                app.diagnostics(host)
            ));
        }
        let now = host.clock.now();
        let step = host.turn(now).and_then(|turned| {
            let stepped = app.step(&mut host.iface, now, start, &mut buf)?;
            Ok(turned || stepped)
        });
        let busy = step.map_err(|e| format!("{e}\n{}", app.diagnostics(host)))?;
        if app.states.last() == Some(&State::TimeWait) {
            in_time_wait.store(true, Ordering::Relaxed);
        }
        // Idle and nothing on its way out: sleep until a frame arrives (or a millisecond, for
        // the stack's timers) instead of spinning on a machine shared with the kernel's side.
        if !busy && host.port.tx_ring().packets == 0 {
            if let Some(fd) = poll_fd {
                saps::os::poll_readable(fd, 1).map_err(|e| format!("poll: {e}"))?;
            }
        }
    }
    let Some((state_at_connect, info_at_connect, handshake)) = app.connected else {
        return Err(format!("never connected\n{}", app.diagnostics(host)));
    };
    Ok(SapsSide {
        local,
        state_at_connect,
        info_at_connect,
        handshake,
        send_done: app.send_done,
        recv_done: app.recv_done,
        diagnostics: app.diagnostics(host),
        states: app.states,
        sent: app.sent,
        received: app.received,
        stats: host.iface.stats().clone(),
    })
}

/// The application on saps's side of the connection.
struct SapsApp {
    conn: TcpHandle,
    /// State and options when `Event::Connected` arrived, and the time since `tcp_connect`.
    connected: Option<(State, ConnInfo, Duration)>,
    /// When `Event::Connected` arrived: the transfer starts.
    connected_at: Option<Instant>,
    sent: u64,
    fin_queued: bool,
    received: PatternCheck,
    peer_finished: bool,
    send_done: Option<Duration>,
    recv_done: Option<Duration>,
    states: Vec<State>,
}

impl SapsApp {
    fn new(conn: TcpHandle) -> Self {
        SapsApp {
            conn,
            connected: None,
            connected_at: None,
            sent: 0,
            fin_queued: false,
            received: PatternCheck::new(KERNEL_TO_SAPS),
            peer_finished: false,
            send_done: None,
            recv_done: None,
            states: vec![State::SynSent],
        }
    }

    /// The application's part of one loop turn: events, then writing and reading as far as the
    /// buffers allow. True if it moved any bytes.
    fn step(
        &mut self,
        iface: &mut Interface,
        now: saps_stack::Instant,
        start: Instant,
        buf: &mut [u8],
    ) -> Result<bool, String> {
        let conn = self.conn;
        let mut busy = false;
        while let Some(event) = iface.poll_event() {
            match event {
                Event::Connected(h) if h == conn => {
                    let state = iface.tcp_state(conn).map_err(|e| e.to_string())?;
                    let info = conn_info(iface, conn)
                        .ok_or("connected, but not in the connection table")?;
                    self.connected = Some((state, info, start.elapsed()));
                    self.connected_at = Some(Instant::now());
                }
                // The default TIME_WAIT lasts longer than the test: any close is a failure.
                Event::Closed(h, reason) if h == conn => {
                    return Err(format!("connection closed: {reason:?}"));
                }
                // Readable / Writable: the loop below tries both every turn anyway.
                _ => {}
            }
        }
        let Some(connected_at) = self.connected_at else {
            return Ok(false);
        };

        while self.sent < TRANSFER_BYTES {
            let room = iface.tcp_send_capacity(conn).map_err(|e| e.to_string())?;
            let n = room
                .min(buf.len())
                .min((TRANSFER_BYTES - self.sent) as usize);
            if n == 0 {
                break;
            }
            fill_pattern(SAPS_TO_KERNEL, self.sent, &mut buf[..n]);
            let queued = iface
                .tcp_send(now, conn, &buf[..n])
                .map_err(|e| format!("tcp_send: {e}"))?;
            self.sent += queued as u64;
            busy |= queued > 0;
            if queued < n {
                break;
            }
        }
        if self.sent == TRANSFER_BYTES && !self.fin_queued {
            // Half-close: the FIN goes after the queued data; reading continues.
            iface.tcp_shutdown(now, conn).map_err(|e| e.to_string())?;
            self.fin_queued = true;
        }

        while !self.peer_finished {
            match iface.tcp_recv(now, conn, buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.received.feed(&buf[..n]);
                    busy = true;
                    if self.received.is_complete() {
                        self.recv_done.get_or_insert(connected_at.elapsed());
                    }
                }
                Err(SocketError::Tcp(TcpError::Finished)) => self.peer_finished = true,
                Err(e) => return Err(format!("tcp_recv: {e}")),
            }
        }

        let state = iface.tcp_state(conn).map_err(|e| e.to_string())?;
        if self.states.last() != Some(&state) {
            self.states.push(state);
        }
        if self.sent == TRANSFER_BYTES
            && iface.tcp_send_queued(conn).map_err(|e| e.to_string())? == 0
        {
            self.send_done.get_or_insert(connected_at.elapsed());
        }
        Ok(busy)
    }

    fn diagnostics(&self, host: &mut SapsHost) -> String {
        let state = host.iface.tcp_state(self.conn);
        let info = conn_info(&mut host.iface, self.conn);
        format!(
            "state {state:?}, states seen {:?}\nsent {} of {TRANSFER_BYTES}, received {:?}, \
             peer finished {}\nconnection {info:?}\nstack {:#?}\nport {:?}, TX ring {:?}",
            self.states,
            self.sent,
            self.received,
            self.peer_finished,
            host.iface.stats(),
            host.port.counters(),
            host.port.tx_ring(),
        )
    }
}

/// The transport state of `conn` (from the operators' connection table).
fn conn_info(iface: &mut Interface, conn: TcpHandle) -> Option<ConnInfo> {
    let endpoints = iface.tcp_endpoints(conn).ok()?;
    iface
        .tcp_connections()
        .find(|&(local, remote, _)| (local, remote) == endpoints)
        .map(|(_, _, info)| info)
}
