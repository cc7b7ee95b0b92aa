//! Built-in services, so the appliance is useful and measurable before application nodes exist:
//! `echo` (RFC 862), `discard` (RFC 863), `source` (bytes until the peer closes), `http` (a minimal
//! HTTP/1.1 responder with keep-alive: `GET /bytes/N` returns N bytes) and `udp_echo`.
//!
//! Services are driven by the stack's events and never block. A session that cannot write (its
//! send buffer is full) keeps its state and continues on `Writable`; echo reads only as much as it
//! can write back, so nothing is lost and the peer is flow-controlled by TCP itself.

use std::net::SocketAddrV4;

use saps_stack::iface::{Event, Interface, ListenerHandle, SocketError, TcpHandle};
use saps_stack::tcp::conn::TcpError;
use saps_stack::udp::UdpHandle;
use saps_stack::{EgressScheduler, Instant};

pub use crate::config::ServiceKind;

/// Per-service counters, published to telemetry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceCounters {
    /// Connections accepted (TCP) or datagrams received (UDP).
    pub connections_total: u64,
    /// Connections open now.
    pub connections_active: u64,
    /// Payload bytes received.
    pub rx_bytes: u64,
    /// Payload bytes sent.
    pub tx_bytes: u64,
    /// HTTP requests answered (UDP echo: datagrams answered).
    pub requests_total: u64,
}

/// One configured service instance.
#[derive(Debug)]
pub struct ServiceInfo {
    /// What it is.
    pub kind: ServiceKind,
    /// Its L4 port.
    pub port: u16,
    /// Counters.
    pub counters: ServiceCounters,
}

/// Largest HTTP request head accepted; a longer one gets 431 and the connection is closed.
const HTTP_MAX_HEAD: usize = 8 * 1024;
/// Largest body `GET /bytes/N` serves (1 TiB): bigger N gets 400.
const HTTP_MAX_BYTES: u64 = 1 << 40;

#[derive(Debug)]
enum SessionState {
    Echo {
        peer_closed: bool,
    },
    Discard,
    Source,
    Http {
        head: Vec<u8>,
        /// Response bytes still to send: the head first, then `body_left` pattern bytes.
        out: Vec<u8>,
        out_pos: usize,
        body_left: u64,
        close_after: bool,
        peer_closed: bool,
        started: Option<Instant>,
    },
}

#[derive(Debug)]
struct Session {
    handle: TcpHandle,
    service: usize,
    state: SessionState,
    /// Offset into the byte pattern, so streams are verifiable (byte i = PATTERN[i % len]).
    pattern_pos: usize,
}

/// The byte pattern source and http send: printable and position-dependent, so a client can
/// verify what it received.
pub const PATTERN: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";

/// The built-in services bound on one interface.
pub struct Services {
    services: Vec<ServiceInfo>,
    listeners: Vec<(ListenerHandle, usize)>,
    udp: Vec<(UdpHandle, usize)>,
    /// Sessions indexed by the connection's slab index: O(1) lookup per event.
    sessions: Vec<Option<Session>>,
    scratch: Box<[u8]>,
    /// HTTP request durations (first byte of request to last byte queued), microseconds.
    pub http_latency: Option<hdrhistogram::Histogram<u64>>,
}

impl Services {
    /// No services yet.
    pub fn new() -> Self {
        Services {
            services: Vec::new(),
            listeners: Vec::new(),
            udp: Vec::new(),
            sessions: Vec::new(),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            http_latency: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
        }
    }

    /// Bind a service on `iface`.
    pub fn add<E: EgressScheduler>(
        &mut self,
        iface: &mut Interface<E>,
        kind: ServiceKind,
        port: u16,
    ) -> Result<(), SocketError> {
        let index = self.services.len();
        match kind {
            ServiceKind::UdpEcho => {
                let h = iface.udp_bind(port)?;
                self.udp.push((h, index));
            }
            _ => {
                let l = iface.tcp_listen(port, None)?;
                self.listeners.push((l, index));
            }
        }
        self.services.push(ServiceInfo {
            kind,
            port,
            counters: ServiceCounters::default(),
        });
        Ok(())
    }

    /// The services and their counters.
    pub fn infos(&self) -> &[ServiceInfo] {
        &self.services
    }

    /// Handle every pending event of `iface`. Bounded by the events the stack has queued.
    pub fn poll<E: EgressScheduler>(&mut self, iface: &mut Interface<E>, now: Instant) {
        while let Some(event) = iface.poll_event() {
            match event {
                Event::Acceptable(l) => self.accept_all(iface, l, now),
                Event::Readable(h)
                | Event::PeerClosed(h)
                | Event::Writable(h)
                | Event::Connected(h) => {
                    self.drive(iface, h, now, matches!(event, Event::PeerClosed(_)))
                }
                Event::Closed(h, _) => self.finish(iface, h, now),
                Event::UdpReadable(u) => self.udp_echo(iface, u, now),
            }
        }
    }

    fn accept_all<E: EgressScheduler>(
        &mut self,
        iface: &mut Interface<E>,
        l: ListenerHandle,
        now: Instant,
    ) {
        let Some(&(_, service)) = self.listeners.iter().find(|(x, _)| *x == l) else {
            return;
        };
        while let Some(h) = iface.tcp_accept(l) {
            let kind = self.services[service].kind;
            let state = match kind {
                ServiceKind::Echo => SessionState::Echo { peer_closed: false },
                ServiceKind::Discard => SessionState::Discard,
                ServiceKind::Source => SessionState::Source,
                ServiceKind::Http => SessionState::Http {
                    head: Vec::new(),
                    out: Vec::new(),
                    out_pos: 0,
                    body_left: 0,
                    close_after: false,
                    peer_closed: false,
                    started: None,
                },
                ServiceKind::UdpEcho => continue,
            };
            let counters = &mut self.services[service].counters;
            counters.connections_total += 1;
            counters.connections_active += 1;
            let i = h.index() as usize;
            if self.sessions.len() <= i {
                self.sessions.resize_with(i + 1, || None);
            }
            self.sessions[i] = Some(Session {
                handle: h,
                service,
                state,
                pattern_pos: 0,
            });
            // Data may already be waiting (it arrived before accept).
            self.drive(iface, h, now, false);
        }
    }

    fn finish<E: EgressScheduler>(&mut self, iface: &mut Interface<E>, h: TcpHandle, now: Instant) {
        if let Some(slot) = self.sessions.get_mut(h.index() as usize) {
            if slot.as_ref().is_some_and(|s| s.handle == h) {
                let s = slot.take().expect("checked above");
                let c = &mut self.services[s.service].counters;
                c.connections_active = c.connections_active.saturating_sub(1);
            }
        }
        let _ = iface.tcp_close(now, h);
    }

    fn drive<E: EgressScheduler>(
        &mut self,
        iface: &mut Interface<E>,
        h: TcpHandle,
        now: Instant,
        peer_closed_event: bool,
    ) {
        let Some(mut session) = self
            .sessions
            .get_mut(h.index() as usize)
            .and_then(|s| s.take_if(|s| s.handle == h))
        else {
            return;
        };
        let keep = self.run_session(iface, &mut session, now, peer_closed_event);
        if keep {
            self.sessions[h.index() as usize] = Some(session);
        } else {
            let c = &mut self.services[session.service].counters;
            c.connections_active = c.connections_active.saturating_sub(1);
            let _ = iface.tcp_close(now, h);
        }
    }

    /// Advance one session as far as the buffers allow. Returns false when it is finished.
    fn run_session<E: EgressScheduler>(
        &mut self,
        iface: &mut Interface<E>,
        s: &mut Session,
        now: Instant,
        peer_closed_event: bool,
    ) -> bool {
        let h = s.handle;
        let counters = &mut self.services[s.service].counters;
        let buf = &mut self.scratch[..];
        match &mut s.state {
            SessionState::Echo { peer_closed } => {
                *peer_closed |= peer_closed_event;
                loop {
                    let room = iface.tcp_send_capacity(h).unwrap_or(0).min(buf.len());
                    if room == 0 {
                        break;
                    }
                    match iface.tcp_recv(now, h, &mut buf[..room]) {
                        Ok(0) => break,
                        Ok(n) => {
                            counters.rx_bytes += n as u64;
                            let sent = iface.tcp_send(now, h, &buf[..n]).unwrap_or(0);
                            counters.tx_bytes += sent as u64;
                        }
                        Err(SocketError::Tcp(TcpError::Finished)) => {
                            *peer_closed = true;
                            break;
                        }
                        Err(_) => return false,
                    }
                }
                if *peer_closed && iface.tcp_recv_available(h).unwrap_or(0) == 0 {
                    // Everything read was queued for sending; close sends FIN after it.
                    return false;
                }
                true
            }
            SessionState::Discard => loop {
                match iface.tcp_recv(now, h, buf) {
                    Ok(0) => return true,
                    Ok(n) => counters.rx_bytes += n as u64,
                    Err(_) => return false,
                }
            },
            SessionState::Source => {
                // Read and drop whatever the peer sends; stop when it closes.
                loop {
                    match iface.tcp_recv(now, h, buf) {
                        Ok(0) => break,
                        Ok(n) => counters.rx_bytes += n as u64,
                        Err(_) => return false,
                    }
                }
                loop {
                    let room = iface.tcp_send_capacity(h).unwrap_or(0).min(buf.len());
                    if room == 0 {
                        return true;
                    }
                    fill_pattern(&mut buf[..room], s.pattern_pos);
                    match iface.tcp_send(now, h, &buf[..room]) {
                        Ok(0) => return true,
                        Ok(n) => {
                            s.pattern_pos = (s.pattern_pos + n) % PATTERN.len();
                            counters.tx_bytes += n as u64;
                        }
                        Err(_) => return false,
                    }
                }
            }
            SessionState::Http {
                head,
                out,
                out_pos,
                body_left,
                close_after,
                peer_closed,
                started,
            } => {
                *peer_closed |= peer_closed_event;
                loop {
                    // 1. Flush what is pending.
                    if *out_pos < out.len() {
                        match iface.tcp_send(now, h, &out[*out_pos..]) {
                            Ok(n) => {
                                *out_pos += n;
                                counters.tx_bytes += n as u64;
                            }
                            Err(_) => return false,
                        }
                        if *out_pos < out.len() {
                            return true;
                        }
                        out.clear();
                        *out_pos = 0;
                    }
                    while *body_left > 0 {
                        let room = iface.tcp_send_capacity(h).unwrap_or(0).min(buf.len());
                        let chunk = (*body_left).min(room as u64) as usize;
                        if chunk == 0 {
                            return true;
                        }
                        fill_pattern(&mut buf[..chunk], s.pattern_pos);
                        match iface.tcp_send(now, h, &buf[..chunk]) {
                            Ok(n) => {
                                s.pattern_pos = (s.pattern_pos + n) % PATTERN.len();
                                *body_left -= n as u64;
                                counters.tx_bytes += n as u64;
                                if n < chunk {
                                    return true;
                                }
                            }
                            Err(_) => return false,
                        }
                    }
                    if let Some(t0) = started.take() {
                        counters.requests_total += 1;
                        if let Some(hist) = self.http_latency.as_mut() {
                            let _ = hist.record(now.saturating_since(t0).total_micros().max(1));
                        }
                        if *close_after {
                            return false;
                        }
                    }
                    // 2. Parse the next request from what has arrived.
                    if let Some(end) = find_head_end(head) {
                        let request = parse_request(&head[..end]);
                        head.drain(..end);
                        *started = Some(now);
                        s.pattern_pos = 0;
                        let (status, body_len, close) = match request {
                            Ok(r) => (r.status, r.body_len, r.close),
                            Err(status) => (status, 0, true),
                        };
                        *close_after = close;
                        write_response_head(out, status, body_len, close);
                        *body_left = if status == 200 { body_len } else { 0 };
                        if status != 200 {
                            // Error bodies are a fixed short text.
                            out.extend_from_slice(status_text(status).as_bytes());
                        }
                        continue;
                    }
                    if head.len() >= HTTP_MAX_HEAD {
                        write_response_head(out, 431, status_text(431).len() as u64, true);
                        out.extend_from_slice(status_text(431).as_bytes());
                        *close_after = true;
                        *started = Some(now);
                        head.clear();
                        continue;
                    }
                    // 3. Read more request bytes.
                    let want = (HTTP_MAX_HEAD - head.len()).min(buf.len());
                    match iface.tcp_recv(now, h, &mut buf[..want]) {
                        Ok(0) => return true,
                        Ok(n) => {
                            counters.rx_bytes += n as u64;
                            head.extend_from_slice(&buf[..n]);
                        }
                        Err(SocketError::Tcp(TcpError::Finished)) => {
                            *peer_closed = true;
                            return false;
                        }
                        Err(_) => return false,
                    }
                }
            }
        }
    }

    fn udp_echo<E: EgressScheduler>(
        &mut self,
        iface: &mut Interface<E>,
        u: UdpHandle,
        now: Instant,
    ) {
        let Some(&(_, service)) = self.udp.iter().find(|(x, _)| *x == u) else {
            return;
        };
        let counters = &mut self.services[service].counters;
        // Bounded: at most the socket's queue, which the stack bounds.
        while let Ok(Some((meta, n))) = iface.udp_recv_from(u, &mut self.scratch) {
            counters.connections_total += 1;
            counters.rx_bytes += n as u64;
            let dst = SocketAddrV4::new(*meta.src.ip(), meta.src.port());
            if iface
                .udp_send_to(now, u, dst, Some(meta.dst), &self.scratch[..n])
                .is_ok()
            {
                counters.tx_bytes += n as u64;
                counters.requests_total += 1;
            }
        }
    }
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}

/// Fill `buf` with the pattern starting at stream offset `pos`.
pub fn fill_pattern(buf: &mut [u8], pos: usize) {
    // Whole slices of the pattern, not a byte at a time: this runs for every byte `source`
    // and `http` send.
    let mut p = pos % PATTERN.len();
    let mut rest = buf;
    while !rest.is_empty() {
        let n = (PATTERN.len() - p).min(rest.len());
        let (head, tail) = rest.split_at_mut(n);
        head.copy_from_slice(&PATTERN[p..p + n]);
        rest = tail;
        p = 0;
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

struct Request {
    status: u16,
    body_len: u64,
    close: bool,
}

/// Parse a request head. `Err(status)` for a request we answer with an error and close.
fn parse_request(head: &[u8]) -> Result<Request, u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(400),
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(505),
    };
    let mut close = !http11;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("connection") {
            let v = value.trim();
            if v.eq_ignore_ascii_case("close") {
                close = true;
            } else if v.eq_ignore_ascii_case("keep-alive") {
                close = false;
            }
        }
        if name.trim().eq_ignore_ascii_case("content-length") && value.trim() != "0" {
            // Request bodies are not supported by this responder.
            return Err(413);
        }
    }
    if method != "GET" && method != "HEAD" {
        return Err(405);
    }
    let path = target.split('?').next().unwrap_or("");
    if let Some(n) = path.strip_prefix("/bytes/") {
        let n: u64 = n.parse().map_err(|_| 400u16)?;
        if n > HTTP_MAX_BYTES {
            return Err(400);
        }
        let body_len = if method == "HEAD" { 0 } else { n };
        return Ok(Request {
            status: 200,
            body_len,
            close,
        });
    }
    if path == "/" {
        return Ok(Request {
            status: 200,
            body_len: 0,
            close,
        });
    }
    Err(404)
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn write_response_head(out: &mut Vec<u8>, status: u16, body_len: u64, close: bool) {
    use std::io::Write;
    let reason = status_text(status);
    let len = if status == 200 {
        body_len
    } else {
        reason.len() as u64
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nServer: saps\r\nContent-Type: {}\r\nContent-Length: {len}\r\n{}\r\n",
        if status == 200 {
            "application/octet-stream"
        } else {
            "text/plain"
        },
        // HTTP/1.0 clients (ab) keep the connection only when told so explicitly.
        if close {
            "Connection: close\r\n"
        } else {
            "Connection: keep-alive\r\n"
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_requests_parse_and_errors_map_to_statuses() {
        let r = parse_request(b"GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body_len, r.close), (200, 100, false));
        let r = parse_request(b"GET /bytes/5 HTTP/1.0\r\n\r\n").unwrap();
        assert!(r.close);
        let r = parse_request(b"GET /bytes/5 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(!r.close);
        let r = parse_request(b"GET /bytes/5 HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(r.close);
        assert_eq!(
            parse_request(b"GET /nope HTTP/1.1\r\n\r\n").err(),
            Some(404)
        );
        assert_eq!(
            parse_request(b"POST /bytes/1 HTTP/1.1\r\n\r\n").err(),
            Some(405)
        );
        assert_eq!(
            parse_request(b"GET /bytes/x HTTP/1.1\r\n\r\n").err(),
            Some(400)
        );
        assert_eq!(
            parse_request(b"GET /bytes/1 HTTP/2\r\n\r\n").err(),
            Some(505)
        );
        assert_eq!(parse_request(b"\xff\xfe\r\n\r\n").err(), Some(400));
        assert_eq!(parse_request(b"GARBAGE\r\n\r\n").err(), Some(400));
    }

    #[test]
    fn pattern_is_position_dependent_and_continuous() {
        let mut a = [0u8; 100];
        fill_pattern(&mut a, 0);
        let mut b = [0u8; 30];
        fill_pattern(&mut b, 70);
        assert_eq!(&a[70..], &b[..]);
        assert_eq!(a[64], PATTERN[0]);
    }

    #[test]
    fn response_head_has_length_and_connection_close_when_asked() {
        let mut out = Vec::new();
        write_response_head(&mut out, 200, 42, true);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s.contains("Content-Length: 42\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
    }
}
