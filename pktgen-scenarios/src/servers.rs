//! The Linux servers of the baseline: the same services as saps's built-in ones, on kernel
//! sockets, so the two targets differ only in the stack (and the NAT router in front of Linux).
//!
//! | port | proto | service |
//! | ---- | ----- | ------- |
//! | 7    | tcp   | echo: every byte back, `TCP_NODELAY` (the 4-byte ping-pong) |
//! | 9    | tcp   | discard: reads and drops |
//! | 19   | tcp   | source: the byte pattern of `saps::services::PATTERN` until the peer closes |
//! | 80   | tcp   | HTTP/1.1 keep-alive, `GET /bytes/N` returns N pattern bytes |
//! | 7    | udp   | echo: every datagram back to its sender |
//!
//! HTTP and source are the appliance's own Linux server from `saps bench`
//! ([`saps::bench::serve_http`], [`saps::bench::serve_source`]); echo, discard and UDP echo are
//! here. One thread per listener waits in poll(2) (woken by a connection at once, checking the stop
//! flag every 50 ms), and each connection gets its own thread: kernel TCP plus a thread per
//! connection is how a plain Linux server behaves, and the scenarios use few connections.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use saps::topology::Netns;

/// TCP echo port.
pub const ECHO_PORT: u16 = 7;
/// TCP discard port.
pub const DISCARD_PORT: u16 = 9;
/// TCP byte-source port.
pub const SOURCE_PORT: u16 = 19;
/// HTTP port.
pub const HTTP_PORT: u16 = 80;
/// UDP echo port.
pub const UDP_ECHO_PORT: u16 = 7;

/// How long a blocked server thread waits before it looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// The kind of a TCP service.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TcpService {
    /// Echo every byte.
    Echo,
    /// Read and drop.
    Discard,
    /// Send the pattern until the peer closes.
    Source,
    /// `GET /bytes/N` over HTTP/1.1.
    Http,
}

impl TcpService {
    /// The well-known port of the service.
    pub fn port(self) -> u16 {
        match self {
            TcpService::Echo => ECHO_PORT,
            TcpService::Discard => DISCARD_PORT,
            TcpService::Source => SOURCE_PORT,
            TcpService::Http => HTTP_PORT,
        }
    }
}

/// Every TCP service, in start order (HTTP last: readiness is checked on port 80).
pub const ALL_TCP: [TcpService; 4] = [
    TcpService::Echo,
    TcpService::Discard,
    TcpService::Source,
    TcpService::Http,
];

/// The running servers; stopped (every thread told to stop and joined) on drop.
pub struct LinuxServers {
    stop: Arc<AtomicBool>,
    joins: Vec<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for LinuxServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxServers")
            .field("threads", &self.joins.len())
            .finish()
    }
}

impl LinuxServers {
    /// Start every service on `addr` (e.g. `0.0.0.0`) inside `ns`. Returns once all are bound.
    pub fn start(ns: &Netns, addr: Ipv4Addr) -> io::Result<LinuxServers> {
        let mut servers = LinuxServers {
            stop: Arc::new(AtomicBool::new(false)),
            joins: Vec::new(),
        };
        for svc in ALL_TCP {
            let stop = servers.stop.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            servers.joins.push(ns.spawn(move || {
                let listener = match TcpListener::bind(SocketAddrV4::new(addr, svc.port())) {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                accept_loop(listener, svc, &stop)
            })?);
            wait_ready(&ready_rx, &format!("{svc:?} on port {}", svc.port()))?;
        }
        let stop = servers.stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        servers.joins.push(ns.spawn(move || {
            let sock = match UdpSocket::bind(SocketAddrV4::new(addr, UDP_ECHO_PORT)) {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            udp_echo(sock, &stop)
        })?);
        wait_ready(&ready_rx, "UDP echo on port 7")?;
        Ok(servers)
    }

    /// The stop flag: setting it ends every thread within about 200 ms (for emergency teardown
    /// from another thread; drop also joins).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }
}

impl Drop for LinuxServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for j in self.joins.drain(..) {
            let _ = j.join();
        }
    }
}

fn wait_ready(rx: &std::sync::mpsc::Receiver<io::Result<()>>, what: &str) -> io::Result<()> {
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(io::Error::new(
            e.kind(),
            format!("Linux server {what}: {e}"),
        )),
        Err(_) => Err(io::Error::other(format!(
            "Linux server {what} did not start"
        ))),
    }
}

fn accept_loop(listener: TcpListener, svc: TcpService, stop: &Arc<AtomicBool>) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Wait in poll(2) so a connection is accepted at once, not at the next sleep's end.
        if !saps::os::poll_readable(listener.as_raw_fd(), 50).unwrap_or(true) {
            continue;
        }
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                let stop = stop.clone();
                // New threads inherit this thread's network namespace.
                conns.push(std::thread::spawn(move || {
                    let _ = match svc {
                        TcpService::Http => saps::bench::serve_http(s, &stop),
                        TcpService::Source => saps::bench::serve_source(s, &stop),
                        TcpService::Echo => serve_echo(s, &stop),
                        TcpService::Discard => serve_discard(s, &stop),
                    };
                }));
                conns.retain(|j| !j.is_finished());
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            // A connection reset before accept (ECONNABORTED) is the client's business.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => return Err(e),
        }
    }
    for j in conns {
        let _ = j.join();
    }
    Ok(())
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Every byte back until the peer closes.
fn serve_echo(mut s: TcpStream, stop: &AtomicBool) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(STOP_CHECK))?;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => s.write_all(&buf[..n])?,
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Read and drop until the peer closes.
fn serve_discard(mut s: TcpStream, stop: &AtomicBool) -> io::Result<()> {
    s.set_read_timeout(Some(STOP_CHECK))?;
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Every datagram back to its sender.
fn udp_echo(sock: UdpSocket, stop: &AtomicBool) -> io::Result<()> {
    sock.set_read_timeout(Some(STOP_CHECK))?;
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                // A full socket buffer drops the echo, as a UDP server does.
                let _ = sock.send_to(&buf[..n], from);
            }
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
