//! Traffic generators on Linux kernel sockets: the real peer of every scenario.
//!
//! Every generator takes the target's address and runs on the calling thread, so the runner can
//! put it inside the client namespace (`Netns::spawn`). Generators that use several connections
//! start one thread per connection from the calling thread; a thread inherits the namespace of
//! the thread that creates it, so they stay in the client namespace too.
//!
//! Times are [`Duration`]s since a common `start` [`Instant`] the caller passes in, so flows of
//! different generators line up on one time axis. A generator that cannot keep up with what was
//! asked reports what it achieved next to what was requested instead of silently doing less.
//! Every generator watches a [`Cancel`] flag (Ctrl-C) and a socket timeout, so none hangs.
//!
//! Downloads are checked byte for byte: both targets (saps's `source` and `http` services and
//! the Linux servers, which share `saps::bench`'s `serve_source`/`serve_http`) send
//! [`saps::services::PATTERN`] starting at offset 0 of the source stream and of every HTTP body,
//! so every read is compared with the pattern at its stream offset. A mismatch (a stack that
//! retransmits the wrong bytes, a reordering path bug) is an error in the result, never goodput.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use hdrhistogram::Histogram;
use saps::services::{fill_pattern, PATTERN};

/// Well-known ports of the services both targets run (saps's built-ins and the Linux servers).
pub mod ports {
    /// TCP and UDP echo.
    pub const ECHO: u16 = 7;
    /// TCP discard (upload sink).
    pub const DISCARD: u16 = 9;
    /// TCP chargen-like source: sends bytes until the peer closes.
    pub const SOURCE: u16 = 19;
    /// HTTP/1.1 with keep-alive, `GET /bytes/N`.
    pub const HTTP: u16 = 80;
}

/// Where the target's services listen. Generators take this instead of a bare address so tests
/// can point them at loopback services on ephemeral ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The target's address.
    pub addr: Ipv4Addr,
    /// TCP echo port.
    pub echo: u16,
    /// TCP discard port.
    pub discard: u16,
    /// TCP source port.
    pub source: u16,
    /// HTTP port.
    pub http: u16,
    /// UDP echo port.
    pub udp_echo: u16,
}

impl Endpoints {
    /// The well-known ports at `addr` (what both targets serve).
    pub fn well_known(addr: Ipv4Addr) -> Endpoints {
        Endpoints {
            addr,
            echo: ports::ECHO,
            discard: ports::DISCARD,
            source: ports::SOURCE,
            http: ports::HTTP,
            udp_echo: ports::ECHO,
        }
    }
    fn at(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr, port)
    }
}

/// How long a blocked socket call may wait before the generator gives up on that connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest ping-pong request: a round trip, not a bulk transfer (both directions fit in the
/// socket buffers, so write-then-read cannot deadlock).
pub const PING_MAX_SIZE: usize = 64 * 1024;

/// Most datagrams one UDP blast may send: the receiver keeps one flag per datagram.
pub const UDP_MAX_PACKETS: u64 = 10_000_000;

/// Largest slice [`check_pattern`] compares at once.
const CHECK_CHUNK: usize = 64 * 1024;

/// The pattern from offset 0, one period longer than [`CHECK_CHUNK`] so any chunk at any
/// offset is one contiguous slice of it. Built once per process.
fn expected() -> &'static [u8] {
    static EXPECTED: OnceLock<Box<[u8]>> = OnceLock::new();
    EXPECTED.get_or_init(|| {
        let mut v = vec![0u8; CHECK_CHUNK + PATTERN.len()];
        fill_pattern(&mut v, 0);
        v.into_boxed_slice()
    })
}

/// Check `data`, read at byte `offset` of a pattern stream (source stream or HTTP body): a
/// memcmp against the precomputed pattern, no allocation.
fn check_pattern(data: &[u8], offset: u64) -> io::Result<()> {
    let exp = expected();
    let mut at = offset;
    for chunk in data.chunks(CHECK_CHUNK) {
        let p = (at % PATTERN.len() as u64) as usize;
        let want = &exp[p..p + chunk.len()];
        if chunk != want {
            let i = chunk
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "wrong byte at stream offset {}: got {:#04x}, the pattern has {:#04x} (the target corrupted or misordered the data)",
                    at + i as u64,
                    chunk[i],
                    want[i]
                ),
            ));
        }
        at += chunk.len() as u64;
    }
    Ok(())
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// When send number `i` is due at `rate` per second after `t0`; an error (not a panic) when the
/// rate is so small that the time does not fit a [`Duration`] or an [`Instant`].
fn due_at(t0: Instant, i: u64, rate: f64) -> io::Result<Instant> {
    Duration::try_from_secs_f64(i as f64 / rate)
        .ok()
        .and_then(|d| t0.checked_add(d))
        .ok_or_else(|| invalid(format!("rate {rate}/s is too small to schedule send {i}")))
}

/// A shared stop flag: set by Ctrl-C (or a failing phase), polled by every generator loop.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Cancel {
        Cancel::default()
    }
    /// The flag itself, for `signal_hook::flag::register`-style handlers.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
    /// Ask every generator to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// True once [`Cancel::cancel`] was called (or the signal arrived).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn cancelled() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "cancelled")
}

/// Sleep until `at`, waking every 50 ms to honour `cancel`.
fn sleep_until(at: Instant, cancel: &Cancel) -> io::Result<()> {
    loop {
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        let now = Instant::now();
        if now >= at {
            return Ok(());
        }
        std::thread::sleep((at - now).min(Duration::from_millis(50)));
    }
}

fn connect(addr: SocketAddrV4) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&SocketAddr::V4(addr), IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

fn local_port(s: &TcpStream) -> u16 {
    s.local_addr().map(|a| a.port()).unwrap_or(0)
}

/// Bytes counted into fixed time buckets since the common start: the raw goodput series.
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    /// Width of one bucket.
    pub width: Duration,
    /// Bytes whose read/write completed in bucket `i` = `[i*width, (i+1)*width)`.
    pub bytes: Vec<u64>,
}

impl Buckets {
    /// Empty buckets of `width` (at least 1 ms).
    pub fn new(width: Duration) -> Buckets {
        Buckets {
            width: width.max(Duration::from_millis(1)),
            bytes: Vec::new(),
        }
    }
    /// Count `n` bytes at time `at` since the start.
    pub fn add(&mut self, at: Duration, n: u64) {
        let i = (at.as_nanos() / self.width.as_nanos()) as usize;
        if self.bytes.len() <= i {
            self.bytes.resize(i + 1, 0);
        }
        self.bytes[i] += n;
    }
    /// Sum of all buckets.
    pub fn total(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

/// Which way a bulk stream moves data, and through which service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkMode {
    /// Read from the source service (19/tcp): the target sends.
    Download,
    /// `GET /bytes/N` on http (80/tcp): the target sends exactly N bytes (needs a byte count).
    HttpDownload,
    /// Write to the discard service (9/tcp): the client sends.
    Upload,
}

/// How much one bulk stream moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    /// Exactly this many payload bytes, then close.
    Bytes(u64),
    /// Until this much time has passed since the stream connected, then close.
    For(Duration),
}

/// One bulk stream to run.
#[derive(Clone, Debug)]
pub struct BulkSpec {
    /// Direction and service.
    pub mode: BulkMode,
    /// How much to move.
    pub amount: Amount,
    /// When to connect, relative to the common start.
    pub start_at: Duration,
    /// Goodput bucket width (e.g. 10 ms).
    pub bucket: Duration,
}

/// What one bulk stream did. Times are since the common start.
#[derive(Clone, Debug)]
pub struct StreamResult {
    /// Stream index within its group.
    pub id: usize,
    /// Client-side port of the connection (finds the flow in the delay router's segment log).
    pub local_port: u16,
    /// Direction and service.
    pub mode: BulkMode,
    /// When `connect` was called.
    pub started: Duration,
    /// When the handshake completed.
    pub connected: Option<Duration>,
    /// When the last payload byte was read (download) or written (upload); `None` if it failed.
    pub finished: Option<Duration>,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Bytes per time bucket.
    pub buckets: Buckets,
    /// Why the stream stopped early, if it did.
    pub error: Option<String>,
}

impl StreamResult {
    /// Flow completion time: from `connect` to the last byte, if the stream finished.
    pub fn completion(&self) -> Option<Duration> {
        self.finished.map(|f| f.saturating_sub(self.started))
    }
    /// Average goodput in bits/s over the stream's lifetime (0 if it never finished).
    pub fn goodput_bps(&self) -> f64 {
        match self.completion() {
            Some(d) if !d.is_zero() => self.bytes as f64 * 8.0 / d.as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// Run one bulk stream on this thread (the client namespace must already be entered).
pub fn bulk_stream(
    id: usize,
    target: Endpoints,
    spec: &BulkSpec,
    start: Instant,
    cancel: &Cancel,
) -> StreamResult {
    let mut r = StreamResult {
        id,
        local_port: 0,
        mode: spec.mode,
        started: Duration::ZERO,
        connected: None,
        finished: None,
        bytes: 0,
        buckets: Buckets::new(spec.bucket),
        error: None,
    };
    if let Err(e) = bulk_inner(target, spec, start, cancel, &mut r) {
        r.error = Some(e.to_string());
        r.finished = None;
    }
    r
}

fn bulk_inner(
    target: Endpoints,
    spec: &BulkSpec,
    start: Instant,
    cancel: &Cancel,
    r: &mut StreamResult,
) -> io::Result<()> {
    sleep_until(start + spec.start_at, cancel)?;
    r.started = start.elapsed();
    let port = match spec.mode {
        BulkMode::Download => target.source,
        BulkMode::HttpDownload => target.http,
        BulkMode::Upload => target.discard,
    };
    let mut s = connect(target.at(port))?;
    let connected_at = Instant::now();
    r.connected = Some(connected_at - start);
    r.local_port = local_port(&s);
    let limit = |moved: u64| -> bool {
        match spec.amount {
            Amount::Bytes(n) => moved >= n,
            Amount::For(d) => connected_at.elapsed() >= d,
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    match spec.mode {
        BulkMode::Upload => {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            while !limit(r.bytes) {
                if cancel.is_cancelled() {
                    return Err(cancelled());
                }
                let want = match spec.amount {
                    Amount::Bytes(n) => (n - r.bytes).min(buf.len() as u64) as usize,
                    Amount::For(_) => buf.len(),
                };
                let n = s.write(&buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed"));
                }
                r.bytes += n as u64;
                r.buckets.add(start.elapsed(), n as u64);
            }
            r.finished = Some(start.elapsed());
            // The discard service reads until we close; a clean close finishes the upload.
            let _ = s.shutdown(Shutdown::Write);
        }
        BulkMode::Download | BulkMode::HttpDownload => {
            let mut body_limit = None;
            if spec.mode == BulkMode::HttpDownload {
                let Amount::Bytes(n) = spec.amount else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "http_download needs a byte count",
                    ));
                };
                s.write_all(format!("GET /bytes/{n} HTTP/1.1\r\nHost: saps\r\n\r\n").as_bytes())?;
                let (len, early) = read_http_head(&mut s, &mut buf)?;
                if early > 0 {
                    check_pattern(&buf[..early], 0)?;
                    r.bytes += early as u64;
                    r.buckets.add(start.elapsed(), early as u64);
                }
                body_limit = Some(len);
            }
            loop {
                if let Some(len) = body_limit {
                    if r.bytes >= len {
                        break;
                    }
                } else if limit(r.bytes) {
                    break;
                }
                if cancel.is_cancelled() {
                    return Err(cancelled());
                }
                let want = match (body_limit, spec.amount) {
                    (Some(len), _) | (None, Amount::Bytes(len)) => {
                        (len - r.bytes).min(buf.len() as u64) as usize
                    }
                    (None, Amount::For(_)) => buf.len(),
                };
                let n = s.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("peer closed after {} bytes", r.bytes),
                    ));
                }
                check_pattern(&buf[..n], r.bytes)?;
                r.bytes += n as u64;
                r.buckets.add(start.elapsed(), n as u64);
            }
            r.finished = Some(start.elapsed());
        }
    }
    Ok(())
}

/// Read an HTTP response head into `buf`; returns (Content-Length, body bytes already read,
/// which were moved to the start of `buf`). Errors on a non-200 status or a missing length.
fn read_http_head(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<(u64, usize)> {
    let mut have = 0;
    loop {
        if have == buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP head too long",
            ));
        }
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed before the HTTP head ended",
            ));
        }
        have += n;
        if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap_or("");
            if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("HTTP status line {status:?}"),
                ));
            }
            let len = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Content-Length"))?;
            let body = have - (end + 4);
            buf.copy_within(end + 4..have, 0);
            return Ok((len, body));
        }
    }
}

/// Run several bulk streams at once (one thread each, all in the caller's namespace).
pub fn bulk_streams(
    target: Endpoints,
    specs: &[BulkSpec],
    start: Instant,
    cancel: &Cancel,
) -> Vec<StreamResult> {
    let handles: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let spec = spec.clone();
            let cancel = cancel.clone();
            std::thread::spawn(move || bulk_stream(i, target, &spec, start, &cancel))
        })
        .collect();
    handles
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            h.join().unwrap_or_else(|_| StreamResult {
                id: i,
                local_port: 0,
                mode: specs[i].mode,
                started: Duration::ZERO,
                connected: None,
                finished: None,
                bytes: 0,
                buckets: Buckets::new(specs[i].bucket),
                error: Some("generator thread panicked".into()),
            })
        })
        .collect()
}

/// A latency histogram in nanoseconds (1 ns .. 60 s, 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Result of a request/response ping-pong.
#[derive(Clone, Debug)]
pub struct PingPongResult {
    /// Round trips measured (after the warm-up).
    pub count: u64,
    /// Round-trip times in nanoseconds.
    pub rtt: Histogram<u64>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// `count` round trips of `size` bytes over echo/7 with TCP_NODELAY, after `warmup` unmeasured
/// ones; `interval` between round trips (zero = back to back).
pub fn ping_pong(
    target: Endpoints,
    size: usize,
    warmup: u64,
    count: u64,
    interval: Duration,
    cancel: &Cancel,
) -> PingPongResult {
    let mut r = PingPongResult {
        count: 0,
        rtt: latency_histogram(),
        error: None,
    };
    let run = |r: &mut PingPongResult| -> io::Result<()> {
        if size > PING_MAX_SIZE {
            return Err(invalid(format!(
                "ping-pong size {size} is above {PING_MAX_SIZE} bytes"
            )));
        }
        let total = warmup
            .checked_add(count)
            .ok_or_else(|| invalid(format!("warmup {warmup} + count {count} overflows")))?;
        let mut s = connect(target.at(target.echo))?;
        s.set_nodelay(true)?;
        let out: Vec<u8> = (0..size.max(1)).map(|i| b'a' + (i % 26) as u8).collect();
        let mut back = vec![0u8; out.len()];
        for i in 0..total {
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            let t = Instant::now();
            s.write_all(&out)?;
            s.read_exact(&mut back)?;
            let rtt = t.elapsed();
            if back != out {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "echo mismatch"));
            }
            if i >= warmup {
                r.rtt.saturating_record(rtt.as_nanos() as u64);
                r.count += 1;
            }
            if !interval.is_zero() {
                std::thread::sleep(interval);
            }
        }
        Ok(())
    };
    if let Err(e) = run(&mut r) {
        r.error = Some(e.to_string());
    }
    r
}

/// One point of a transfer-size sweep.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    /// Bytes fetched per transfer.
    pub size: u64,
    /// Time from sending the request to the last body byte, one per repetition.
    pub transfer: Vec<Duration>,
    /// Time from `connect` to the last body byte, one per repetition.
    pub with_connect: Vec<Duration>,
    /// First error, if a repetition failed.
    pub error: Option<String>,
}

/// For each size, `repetitions` fresh connections that each fetch `GET /bytes/size` once
/// (bandwidth against transfer size, like the paper's Figure 7).
pub fn size_sweep(
    target: Endpoints,
    sizes: &[u64],
    repetitions: u32,
    cancel: &Cancel,
) -> Vec<SweepPoint> {
    let mut buf = vec![0u8; 64 * 1024];
    sizes
        .iter()
        .map(|&size| {
            let mut p = SweepPoint {
                size,
                transfer: Vec::new(),
                with_connect: Vec::new(),
                error: None,
            };
            for _ in 0..repetitions {
                if cancel.is_cancelled() {
                    p.error = Some("cancelled".into());
                    break;
                }
                match fetch_once(target, size, &mut buf) {
                    Ok((t, c)) => {
                        p.transfer.push(t);
                        p.with_connect.push(c);
                    }
                    Err(e) => {
                        p.error.get_or_insert(e.to_string());
                    }
                }
            }
            p
        })
        .collect()
}

/// Fetch `size` bytes on a new connection; (request-to-last-byte, connect-to-last-byte).
fn fetch_once(target: Endpoints, size: u64, buf: &mut [u8]) -> io::Result<(Duration, Duration)> {
    let t0 = Instant::now();
    let mut s = connect(target.at(target.http))?;
    s.set_nodelay(true)?;
    let t1 = Instant::now();
    http_get(&mut s, size, buf)?;
    let end = Instant::now();
    let _ = s.shutdown(Shutdown::Both);
    Ok((end - t1, end - t0))
}

/// One keep-alive `GET /bytes/size` on `s`, reading the whole body and checking it against the
/// pattern.
fn http_get(s: &mut TcpStream, size: u64, buf: &mut [u8]) -> io::Result<()> {
    s.write_all(format!("GET /bytes/{size} HTTP/1.1\r\nHost: saps\r\n\r\n").as_bytes())?;
    let (len, got) = read_http_head(s, buf)?;
    if len != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("asked for {size} bytes, Content-Length {len}"),
        ));
    }
    // A server that sends more than the body before we ask again is out of step too.
    if got as u64 > len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{got} bytes after the head of a {len}-byte body"),
        ));
    }
    check_pattern(&buf[..got], 0)?;
    let mut got = got as u64;
    while got < len {
        let want = (len - got).min(buf.len() as u64) as usize;
        let n = s.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("body ended after {got} of {len} bytes"),
            ));
        }
        check_pattern(&buf[..n], got)?;
        got += n as u64;
    }
    Ok(())
}

/// Result of a keep-alive HTTP run.
#[derive(Clone, Debug)]
pub struct KeepAliveResult {
    /// Requests completed.
    pub requests: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Request latency (request sent to last body byte) in nanoseconds.
    pub latency: Histogram<u64>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// `requests` back-to-back `GET /bytes/size` on one keep-alive connection.
pub fn keep_alive_http(
    target: Endpoints,
    size: u64,
    requests: u64,
    cancel: &Cancel,
) -> KeepAliveResult {
    let t0 = Instant::now();
    let mut r = KeepAliveResult {
        requests: 0,
        elapsed: Duration::ZERO,
        latency: latency_histogram(),
        error: None,
    };
    let mut run = || -> io::Result<()> {
        let mut s = connect(target.at(target.http))?;
        s.set_nodelay(true)?;
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..requests {
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            let t = Instant::now();
            http_get(&mut s, size, &mut buf)?;
            r.latency.saturating_record(t.elapsed().as_nanos() as u64);
            r.requests += 1;
        }
        Ok(())
    };
    if let Err(e) = run() {
        r.error = Some(e.to_string());
    }
    r.elapsed = t0.elapsed();
    r
}

/// Result of the connection-rate generator.
#[derive(Clone, Debug)]
pub struct ConnRateResult {
    /// Connections asked for.
    pub requested: u64,
    /// Connections that completed (connect, transfer, close) without error.
    pub completed: u64,
    /// Connections that failed.
    pub failed: u64,
    /// Requested rate in connections/s (0 = as fast as possible).
    pub requested_rate: f64,
    /// Achieved rate: completed connections per second of wall time.
    pub achieved_rate: f64,
    /// Whether the generator fell behind the requested rate by more than 5%.
    pub fell_behind: bool,
    /// Connect time (SYN to established) in nanoseconds.
    pub connect: Histogram<u64>,
    /// Whole connection (connect, fetch, close) in nanoseconds.
    pub total: Histogram<u64>,
    /// First error seen.
    pub first_error: Option<String>,
}

/// Open `count` connections at `rate` per second (0 = back to back) from `concurrency` threads,
/// each fetching `GET /bytes/size` once and closing.
pub fn connection_rate(
    target: Endpoints,
    count: u64,
    rate: f64,
    concurrency: usize,
    size: u64,
    cancel: &Cancel,
) -> ConnRateResult {
    let concurrency = concurrency.max(1);
    let t0 = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                let mut connect_h = latency_histogram();
                let mut total_h = latency_histogram();
                let (mut ok, mut bad, mut first_error) = (0u64, 0u64, None::<String>);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count || cancel.is_cancelled() {
                        break;
                    }
                    if rate > 0.0 {
                        let slept = due_at(t0, i, rate).and_then(|due| sleep_until(due, &cancel));
                        if let Err(e) = slept {
                            first_error.get_or_insert(e.to_string());
                            break;
                        }
                    }
                    let t = Instant::now();
                    let res = (|| -> io::Result<()> {
                        let mut s = connect(target.at(target.http))?;
                        connect_h.saturating_record(t.elapsed().as_nanos() as u64);
                        s.set_nodelay(true)?;
                        http_get(&mut s, size, &mut buf)?;
                        s.shutdown(Shutdown::Both)
                    })();
                    match res {
                        Ok(()) => {
                            ok += 1;
                            total_h.saturating_record(t.elapsed().as_nanos() as u64);
                        }
                        Err(e) => {
                            bad += 1;
                            first_error.get_or_insert(e.to_string());
                        }
                    }
                }
                (connect_h, total_h, ok, bad, first_error)
            })
        })
        .collect();
    let mut r = ConnRateResult {
        requested: count,
        completed: 0,
        failed: 0,
        requested_rate: rate,
        achieved_rate: 0.0,
        fell_behind: false,
        connect: latency_histogram(),
        total: latency_histogram(),
        first_error: None,
    };
    for h in handles {
        match h.join() {
            Ok((c, t, ok, bad, err)) => {
                let _ = r.connect.add(c);
                let _ = r.total.add(t);
                r.completed += ok;
                r.failed += bad;
                if r.first_error.is_none() {
                    r.first_error = err;
                }
            }
            Err(_) => {
                r.first_error
                    .get_or_insert("generator thread panicked".into());
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    r.achieved_rate = r.completed as f64 / secs;
    r.fell_behind = rate > 0.0 && r.achieved_rate < rate * 0.95;
    r
}

/// Result of the UDP blaster.
#[derive(Clone, Debug)]
pub struct UdpResult {
    /// Datagrams asked for.
    pub requested: u64,
    /// Datagrams actually sent.
    pub sent: u64,
    /// Echoes received (each datagram counted once).
    pub echoed: u64,
    /// Requested send rate in packets/s (0 = as fast as possible).
    pub requested_pps: f64,
    /// Achieved send rate in packets/s.
    pub achieved_pps: f64,
    /// Whether the sender fell behind the requested rate by more than 5%.
    pub fell_behind: bool,
    /// Round-trip time of the echoes in nanoseconds.
    pub rtt: Histogram<u64>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

impl UdpResult {
    /// Fraction of sent datagrams whose echo never came back.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            1.0 - self.echoed as f64 / self.sent as f64
        }
    }
}

/// Send `count` datagrams of `size` bytes (at least 16) at `pps` (0 = as fast as possible) to
/// echo/7 udp and count the echoes, waiting `linger` after the last send for stragglers.
pub fn udp_blast(
    target: Endpoints,
    count: u64,
    size: usize,
    pps: f64,
    linger: Duration,
    cancel: &Cancel,
) -> UdpResult {
    let mut r = UdpResult {
        requested: count,
        sent: 0,
        echoed: 0,
        requested_pps: pps,
        achieved_pps: 0.0,
        fell_behind: false,
        rtt: latency_histogram(),
        error: None,
    };
    let size = size.max(16);
    // One flag per datagram on the receiver: bounded, so a huge count is an error, not an OOM.
    let slots = match usize::try_from(count) {
        Ok(n) if count <= UDP_MAX_PACKETS => n,
        _ => {
            r.error = Some(format!(
                "{count} datagrams asked for; at most {UDP_MAX_PACKETS} per blast"
            ));
            return r;
        }
    };
    let sock = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect(target.at(target.udp_echo)).map(|_| s))
        .and_then(|s| {
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .map(|_| s)
        }) {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    let t0 = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let rx = match sock.try_clone() {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    let receiver = {
        let done = done.clone();
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            let mut seen = vec![false; slots];
            let mut h = latency_histogram();
            let mut echoed = 0u64;
            let mut buf = vec![0u8; 65536];
            let mut quiet_since: Option<Instant> = None;
            loop {
                if cancel.is_cancelled() {
                    break;
                }
                match rx.recv(&mut buf) {
                    Ok(n) if n >= 16 => {
                        let seq = u64::from_be_bytes(buf[0..8].try_into().unwrap_or([0; 8]));
                        let sent_ns = u64::from_be_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
                        if let Some(slot) = seen.get_mut(seq as usize) {
                            if !*slot {
                                *slot = true;
                                echoed += 1;
                                let now_ns = t0.elapsed().as_nanos() as u64;
                                h.saturating_record(now_ns.saturating_sub(sent_ns).max(1));
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {}
                }
                if done.load(Ordering::SeqCst) {
                    let q = *quiet_since.get_or_insert_with(Instant::now);
                    if q.elapsed() >= linger || echoed == count {
                        break;
                    }
                }
            }
            (echoed, h)
        })
    };
    let mut payload = vec![0u8; size];
    for i in 0..count {
        if cancel.is_cancelled() {
            r.error = Some("cancelled".into());
            break;
        }
        if pps > 0.0 {
            let due = match due_at(t0, i, pps) {
                Ok(d) => d,
                Err(e) => {
                    r.error = Some(e.to_string());
                    break;
                }
            };
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        payload[0..8].copy_from_slice(&i.to_be_bytes());
        payload[8..16].copy_from_slice(&(t0.elapsed().as_nanos() as u64).to_be_bytes());
        match sock.send(&payload) {
            Ok(_) => r.sent += 1,
            // A full socket buffer is the generator not keeping up: count it as not sent.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                r.error.get_or_insert(e.to_string());
            }
        }
    }
    let send_secs = t0.elapsed().as_secs_f64().max(1e-9);
    r.achieved_pps = r.sent as f64 / send_secs;
    r.fell_behind = (pps > 0.0 && r.achieved_pps < pps * 0.95) || r.sent < count;
    done.store(true, Ordering::SeqCst);
    match receiver.join() {
        Ok((echoed, h)) => {
            r.echoed = echoed;
            r.rtt = h;
        }
        Err(_) => {
            r.error.get_or_insert("receiver thread panicked".into());
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// Loopback stand-ins for the targets' services, on one listener each; returns the ports
    /// in the order echo, discard, source, http.
    fn serve(kind: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    match kind {
                        "echo" => loop {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if s.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        },
                        // 65536 is a multiple of the pattern's length: the stream stays it.
                        "source" => {
                            fill_pattern(&mut buf, 0);
                            while s.write_all(&buf).is_ok() {}
                        }
                        // The pattern with one wrong byte at offset 100_000.
                        "bad_source" => {
                            let mut sent = 0usize;
                            loop {
                                fill_pattern(&mut buf, 0);
                                if (sent..sent + buf.len()).contains(&100_000) {
                                    buf[100_000 - sent] ^= 1;
                                }
                                if s.write_all(&buf).is_err() {
                                    break;
                                }
                                sent += buf.len();
                            }
                        }
                        "http" => http(&mut s),
                        _ => while matches!(s.read(&mut buf), Ok(n) if n > 0) {},
                    }
                });
            }
        });
        port
    }

    /// The loopback HTTP stand-in corrupts the middle of bodies of exactly this size.
    const CORRUPT_HTTP_SIZE: usize = 77_777;

    fn http(s: &mut TcpStream) {
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        loop {
            match s.read(&mut b) {
                Ok(1) => req.push(b[0]),
                _ => return,
            }
            if req.ends_with(b"\r\n\r\n") {
                let line = String::from_utf8_lossy(&req).into_owned();
                let n: usize = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/bytes/"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: keep-alive\r\n\r\n"
                );
                let mut out = head.into_bytes();
                let at = out.len();
                out.resize(at + n, 0);
                fill_pattern(&mut out[at..], 0);
                if CORRUPT_HTTP_SIZE == n {
                    out[at + n / 2] = b'!';
                }
                if s.write_all(&out).is_err() {
                    return;
                }
                req.clear();
            }
        }
    }

    fn lo(port: u16) -> Endpoints {
        Endpoints {
            addr: Ipv4Addr::LOCALHOST,
            echo: port,
            discard: port,
            source: port,
            http: port,
            udp_echo: port,
        }
    }

    #[test]
    fn buckets_count_bytes_in_their_window() {
        let mut b = Buckets::new(Duration::from_millis(10));
        b.add(Duration::from_millis(3), 5);
        b.add(Duration::from_millis(9), 5);
        b.add(Duration::from_millis(25), 7);
        assert_eq!(b.bytes, vec![10, 0, 7]);
        assert_eq!(b.total(), 17);
    }

    #[test]
    fn http_get_reads_exactly_the_body_on_keep_alive() {
        let port = serve("http");
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        for size in [0u64, 1, 1460, 100_000, 300_000] {
            http_get(&mut s, size, &mut buf).unwrap();
        }
        // The connection is still in step: one more request works.
        http_get(&mut s, 4, &mut buf).unwrap();
    }

    #[test]
    fn http_head_errors_are_values() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        });
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut buf = vec![0u8; 1024];
        let e = http_get(&mut s, 10, &mut buf).unwrap_err();
        assert!(e.to_string().contains("404"), "{e}");
    }

    #[test]
    fn cancel_stops_a_sleeping_generator() {
        let c = Cancel::new();
        c.cancel();
        let t = Instant::now();
        assert!(sleep_until(Instant::now() + Duration::from_secs(5), &c).is_err());
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn completion_and_goodput_of_a_stream() {
        let r = StreamResult {
            id: 0,
            local_port: 1,
            mode: BulkMode::Download,
            started: Duration::from_millis(100),
            connected: Some(Duration::from_millis(102)),
            finished: Some(Duration::from_millis(1100)),
            bytes: 125_000_000,
            buckets: Buckets::new(Duration::from_millis(10)),
            error: None,
        };
        assert_eq!(r.completion(), Some(Duration::from_secs(1)));
        assert!((r.goodput_bps() - 1e9).abs() < 1.0);
    }

    #[test]
    fn download_and_upload_loops_on_loopback() {
        let src = serve("source");
        let sink = serve("discard");
        let start = Instant::now();
        let cancel = Cancel::new();
        // Drive the inner loop directly with an address override.
        for (port, mode, amount) in [
            (src, BulkMode::Download, Amount::Bytes(3_000_000)),
            (sink, BulkMode::Upload, Amount::Bytes(3_000_000)),
            (
                src,
                BulkMode::Download,
                Amount::For(Duration::from_millis(100)),
            ),
        ] {
            let r = bulk_on_port(port, mode, amount, start, &cancel);
            assert!(r.error.is_none(), "{:?}", r.error);
            assert_eq!(r.bytes, r.buckets.total());
            if let Amount::Bytes(n) = amount {
                assert_eq!(r.bytes, n);
            } else {
                assert!(r.bytes > 0);
                assert!(r.completion().unwrap() >= Duration::from_millis(100));
            }
        }
    }

    fn bulk_on_port(
        port: u16,
        mode: BulkMode,
        amount: Amount,
        start: Instant,
        cancel: &Cancel,
    ) -> StreamResult {
        let spec = BulkSpec {
            mode,
            amount,
            start_at: Duration::ZERO,
            bucket: Duration::from_millis(10),
        };
        bulk_stream(0, lo(port), &spec, start, cancel)
    }

    #[test]
    fn a_tiny_rate_is_an_error_not_a_panic() {
        let t0 = Instant::now();
        assert!(due_at(t0, 0, 1e-300).is_ok());
        let e = due_at(t0, 5, 1e-300).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(due_at(t0, 5, 1000.0).unwrap() > t0);
    }

    #[test]
    fn connection_rate_with_a_tiny_rate_reports_it() {
        let http = serve("http");
        let cr = connection_rate(lo(http), 3, 1e-300, 1, 10, &Cancel::new());
        // The first connection is due at once; the second cannot be scheduled.
        assert_eq!(cr.completed, 1);
        assert!(cr.first_error.unwrap().contains("too small"));
    }

    #[test]
    fn udp_blast_refuses_absurd_counts_and_rates() {
        let target = lo(9); // nothing is sent: the checks come first
        let r = udp_blast(target, u64::MAX, 64, 0.0, Duration::ZERO, &Cancel::new());
        assert_eq!(r.sent, 0);
        assert!(r.error.unwrap().contains("at most"));
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = lo(u.local_addr().unwrap().port());
        let r = udp_blast(target, 3, 64, 1e-300, Duration::ZERO, &Cancel::new());
        assert_eq!(r.sent, 1);
        assert!(r.error.unwrap().contains("too small"));
    }

    #[test]
    fn ping_pong_refuses_oversized_requests_and_overflowing_counts() {
        let echo = serve("echo");
        let c = Cancel::new();
        let r = ping_pong(lo(echo), PING_MAX_SIZE + 1, 0, 1, Duration::ZERO, &c);
        assert!(r.error.unwrap().contains("size"));
        let r = ping_pong(lo(echo), 4, u64::MAX, 1, Duration::ZERO, &c);
        assert!(r.error.unwrap().contains("overflows"));
        let r = ping_pong(lo(echo), PING_MAX_SIZE, 0, 2, Duration::ZERO, &c);
        assert!(r.error.is_none(), "{:?}", r.error);
    }

    #[test]
    fn pattern_check_finds_the_wrong_byte_at_any_offset() {
        let mut data = vec![0u8; 3 * CHECK_CHUNK + 17];
        for start in [0u64, 1, 63, 64, 1_000_003] {
            fill_pattern(&mut data, (start % PATTERN.len() as u64) as usize);
            check_pattern(&data, start).unwrap();
            assert!(check_pattern(&data, start + 1).is_err());
            let i = 2 * CHECK_CHUNK + 5;
            data[i] ^= 0x20;
            let e = check_pattern(&data, start).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(
                e.to_string()
                    .contains(&format!("offset {}", start + i as u64)),
                "{e}"
            );
        }
        check_pattern(&[], 5).unwrap();
    }

    #[test]
    fn a_corrupted_download_is_an_error_not_goodput() {
        let bad = serve("bad_source");
        let r = bulk_on_port(
            bad,
            BulkMode::Download,
            Amount::Bytes(1_000_000),
            Instant::now(),
            &Cancel::new(),
        );
        let e = r.error.expect("a wrong byte must be reported");
        assert!(e.contains("offset 100000"), "{e}");
        assert!(r.finished.is_none());
        assert!(r.bytes <= 100_000);

        let http = serve("http");
        let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let e = http_get(&mut s, CORRUPT_HTTP_SIZE as u64, &mut buf).unwrap_err();
        assert!(e.to_string().contains("wrong byte"), "{e}");
        let e = fetch_once(lo(http), CORRUPT_HTTP_SIZE as u64, &mut buf).unwrap_err();
        assert!(e.to_string().contains("wrong byte"), "{e}");
        let r = bulk_on_port(
            http,
            BulkMode::HttpDownload,
            Amount::Bytes(CORRUPT_HTTP_SIZE as u64),
            Instant::now(),
            &Cancel::new(),
        );
        assert!(r.error.unwrap().contains("wrong byte"));
        // The same stand-in serves correct bodies of other sizes.
        let r = bulk_on_port(
            http,
            BulkMode::HttpDownload,
            Amount::Bytes(300_000),
            Instant::now(),
            &Cancel::new(),
        );
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.bytes, 300_000);
    }

    #[test]
    fn ping_pong_sweep_keepalive_conn_rate_and_udp_on_loopback() {
        let echo = serve("echo");
        let http = serve("http");
        let cancel = Cancel::new();
        let target = lo(echo);
        let pp = ping_pong(target, 4, 5, 50, Duration::ZERO, &cancel);
        assert!(pp.error.is_none(), "{:?}", pp.error);
        assert_eq!(pp.count, 50);
        assert_eq!(pp.rtt.len(), 50);
        let target = lo(http);
        let sw = size_sweep(target, &[1000, 200_000], 3, &cancel);
        assert_eq!(sw.len(), 2);
        for p in &sw {
            assert!(p.error.is_none(), "{:?}", p.error);
            assert_eq!(p.transfer.len(), 3);
            assert!(p.with_connect.iter().zip(&p.transfer).all(|(c, t)| c >= t));
        }
        let ka = keep_alive_http(target, 100, 20, &cancel);
        assert!(ka.error.is_none(), "{:?}", ka.error);
        assert_eq!(ka.requests, 20);
        let cr = connection_rate(target, 20, 0.0, 2, 100, &cancel);
        assert_eq!(cr.completed, 20, "{:?}", cr.first_error);
        assert!(!cr.fell_behind);
        // A rate the loopback can certainly keep: not behind. An absurd rate: behind, and said.
        let slow = connection_rate(target, 5, 200.0, 1, 10, &cancel);
        assert_eq!(slow.completed, 5);

        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uport = u.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut b = [0u8; 2048];
            while let Ok((n, from)) = u.recv_from(&mut b) {
                let _ = u.send_to(&b[..n], from);
            }
        });
        let target = lo(uport);
        let r = udp_blast(
            target,
            200,
            64,
            20_000.0,
            Duration::from_millis(200),
            &cancel,
        );
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.sent, 200);
        assert!(r.echoed >= 190, "echoed {}", r.echoed);
        assert!(r.loss() < 0.05);
    }
}
