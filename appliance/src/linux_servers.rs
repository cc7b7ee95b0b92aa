//! Linux servers on kernel sockets speaking the same protocols as the appliance's built-in
//! services: the baseline of `saps bench` and of `saps-pktgen`'s Linux NAT target, so saps and
//! Linux differ only in the stack.
//!
//! | port | proto | service |
//! | ---- | ----- | ------- |
//! | 7    | tcp   | echo: every byte back, `TCP_NODELAY` (the 4-byte ping-pong) |
//! | 9    | tcp   | discard: reads and drops |
//! | 19   | tcp   | source: [`PATTERN`] from offset 0 until the peer closes |
//! | 80   | tcp   | HTTP/1.1 keep-alive, `GET /bytes/N` returns N pattern bytes from offset 0 |
//! | 7    | udp   | echo: every datagram back to its sender |
//!
//! One thread per listener waits in poll(2) (woken by a connection at once, checking the stop
//! flag every 50 ms), and each connection gets its own thread: kernel TCP plus a thread per
//! connection is how a plain Linux server behaves. Every thread can be pinned to one core.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::bench::pin_current;
use crate::services::{fill_pattern, PATTERN};
use crate::topology::Netns;

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
    /// Start every service (all of [`ALL_TCP`] and UDP echo) on `addr` (e.g. `0.0.0.0`) inside
    /// `ns`, unpinned. Returns once all are bound.
    pub fn start(ns: &Netns, addr: Ipv4Addr) -> io::Result<LinuxServers> {
        LinuxServers::start_with(ns, addr, &ALL_TCP, true, None)
    }

    /// Start the TCP services `tcp` (and UDP echo if `udp_echo`) on `addr` inside `ns`, every
    /// thread (listeners and connections) pinned to `core` when given. Returns once all are
    /// bound; a port that cannot be bound is an error naming it.
    pub fn start_with(
        ns: &Netns,
        addr: Ipv4Addr,
        tcp: &[TcpService],
        udp_echo: bool,
        core: Option<usize>,
    ) -> io::Result<LinuxServers> {
        let mut servers = LinuxServers {
            stop: Arc::new(AtomicBool::new(false)),
            joins: Vec::new(),
        };
        for &svc in tcp {
            let stop = servers.stop.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            servers.joins.push(ns.spawn(move || {
                pin_current(core);
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
                accept_loop(listener, svc, core, &stop)
            })?);
            wait_ready(&ready_rx, &format!("{svc:?} on port {}", svc.port()))?;
        }
        if udp_echo {
            let stop = servers.stop.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            servers.joins.push(ns.spawn(move || {
                pin_current(core);
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
                udp_echo_loop(sock, &stop)
            })?);
            wait_ready(&ready_rx, "UDP echo on port 7")?;
        }
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

fn accept_loop(
    listener: TcpListener,
    svc: TcpService,
    core: Option<usize>,
    stop: &Arc<AtomicBool>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Wait in poll(2) so a connection is accepted at once, not at the next sleep's end.
        if !crate::os::poll_readable(listener.as_raw_fd(), 50).unwrap_or(true) {
            continue;
        }
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                let stop = stop.clone();
                // New threads inherit this thread's network namespace.
                conns.push(std::thread::spawn(move || {
                    pin_current(core);
                    let _ = match svc {
                        TcpService::Http => serve_http(s, &stop),
                        TcpService::Source => serve_source(s, &stop),
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

/// `GET /bytes/N` with keep-alive, the same responses (head and body) as the appliance's: every
/// body is the byte pattern from offset 0. Serves one connection until the peer closes, an
/// error, or `stop` (checked every 200 ms).
pub fn serve_http(mut s: TcpStream, stop: &AtomicBool) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut body = vec![0u8; 64 * 1024];
    fill_pattern(&mut body, 0);
    let mut buf = vec![0u8; 16 * 1024];
    let mut have = 0usize;
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        while let Some(end) = buf[..have]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
        {
            let (status, len, close) = parse_request(&buf[..end]);
            out.clear();
            let _ = write!(
                out,
                "HTTP/1.1 {status} {}\r\nServer: kern\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: {}\r\n\r\n",
                if status == 200 { "OK" } else { "Bad Request" },
                if close { "close" } else { "keep-alive" }
            );
            // Small bodies go out with the head in one write, as the appliance sends them.
            let mut left = len;
            let first = (left as usize).min(body.len() - out.len().min(body.len()));
            out.extend_from_slice(&body[..first]);
            left -= first as u64;
            s.write_all(&out)?;
            let mut pos = first;
            while left > 0 {
                let n = (left as usize).min(body.len() - 64);
                let off = pos % PATTERN.len();
                s.write_all(&body[off..off + n])?;
                left -= n as u64;
                pos += n;
            }
            buf.copy_within(end..have, 0);
            have -= end;
            if close {
                let _ = s.shutdown(Shutdown::Write);
                return Ok(());
            }
        }
        if have == buf.len() {
            return Ok(()); // head too long: give up on the connection
        }
        match s.read(&mut buf[have..]) {
            Ok(0) => return Ok(()),
            Ok(n) => have += n,
            Err(e) if would_block(&e) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// (status, body length, close) for a request head; anything but `GET /bytes/N` is a 400.
fn parse_request(head: &[u8]) -> (u16, u64, bool) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let mut close = version != "HTTP/1.1";
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("connection") {
                close = v.trim().eq_ignore_ascii_case("close");
            }
        }
    }
    match (method, target.strip_prefix("/bytes/")) {
        ("GET", Some(n)) => match n.parse::<u64>() {
            Ok(n) => (200, n, close),
            Err(_) => (400, 0, true),
        },
        _ => (400, 0, true),
    }
}

/// The byte pattern from offset 0 until the peer goes away or `stop` (the appliance's `source`)
/// on one connection.
pub fn serve_source(mut s: TcpStream, stop: &AtomicBool) -> io::Result<()> {
    s.set_write_timeout(Some(Duration::from_millis(200)))?;
    let mut chunk = vec![0u8; 64 * 1024];
    fill_pattern(&mut chunk, 0);
    while !stop.load(Ordering::Relaxed) {
        match s.write(&chunk) {
            Ok(0) => return Ok(()),
            // 64 KiB is a multiple of the pattern length, but a short write is not: send the
            // rest so the stream stays the pattern.
            Ok(n) if n < chunk.len() => {
                let mut rest = &chunk[n..];
                while !rest.is_empty() && !stop.load(Ordering::Relaxed) {
                    match s.write(rest) {
                        Ok(0) => return Ok(()),
                        Ok(m) => rest = &rest[m..],
                        Err(e) if would_block(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
    let _ = s.shutdown(Shutdown::Write);
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
fn udp_echo_loop(sock: UdpSocket, stop: &AtomicBool) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_server_requests_parse() {
        assert_eq!(
            parse_request(b"GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n"),
            (200, 100, false)
        );
        assert_eq!(
            parse_request(b"GET /bytes/5 HTTP/1.1\r\nConnection: close\r\n\r\n"),
            (200, 5, true)
        );
        assert_eq!(
            parse_request(b"GET /bytes/5 HTTP/1.0\r\n\r\n"),
            (200, 5, true)
        );
        assert_eq!(parse_request(b"GET /x HTTP/1.1\r\n\r\n"), (400, 0, true));
        assert_eq!(parse_request(b"\xff\xfe\r\n\r\n"), (400, 0, true));
    }
}
