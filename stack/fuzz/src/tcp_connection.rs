//! Structured fuzzing of the TCP input path: one [`Connection`] opened actively or passively
//! (the handshake driven by crafted segments), then a program of crafted peer segments,
//! application calls and clock advances.
//!
//! The fake peer tracks the sequence space (what it sent, what the connection sent and
//! acknowledged) so most segments land in or near the windows and reach deep code; the input can
//! still ask for absolute, arbitrary numbers. Peer payload bytes are a function of their sequence
//! number ([`peer_byte`]) and application bytes a function of their stream offset
//! ([`app_byte`]), so corruption in reassembly or retransmission is caught, not only panics.
//!
//! Invariants checked after every step:
//! - nothing panics (including `debug_assert!`s and arithmetic overflow: the targets are built
//!   with `-Cdebug-assertions -Coverflow-checks`);
//! - every segment from `poll_control` / `poll_data` fits the buffer, re-parses with
//!   [`TcpRepr::parse`] and a verified checksum, carries the connection's ports, and its payload
//!   is exactly the application's bytes at that offset (never bytes `send` was not given);
//! - a SYN always carries the ISS;
//! - `poll_control` stops within a bounded number of segments and leaves `control_ready()`
//!   false (the interface re-queues a connection while it is true: a mismatch would loop);
//! - `poll_data` returns a segment whenever `data_ready` said so and the buffer has room, and
//!   never when it said not;
//! - `recv` returns exactly the peer's bytes in sequence order;
//! - after `handle_timeout(now)` no deadline is left at or before `now` (the interface's timer
//!   wheel would otherwise fire the connection again and again).

use saps_stack::stats::TcpStats;
use saps_stack::tcp::congestion::CongestionAlgorithm;
use saps_stack::tcp::{Connection, SeqNumber, State, TcpConfig};
use saps_stack::time::{Duration, Instant};
use saps_stack::wire::tcp::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};
use saps_stack::wire::{ChecksumMode, Ipv4Addr, SocketAddrV4};

use crate::{app_byte, peer_byte, Reader, Writer};

/// The connection's own address.
pub const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
/// The crafted peer's address.
pub const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);

/// Most operations per input (bounds the time per run).
const MAX_OPS: usize = 400;
/// Largest crafted payload.
const MAX_PAYLOAD: usize = 4000;

/// How the connection is opened.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Open {
    /// `Connection::connect`, left in SYN_SENT.
    Active,
    /// `Connection::connect`, then a SYN-ACK from the peer (ESTABLISHED if it is accepted).
    ActiveHandshake,
    /// `Connection::accept_syn`, left in SYN_RECEIVED.
    Passive,
    /// `Connection::accept_syn`, then the peer's ACK (ESTABLISHED).
    PassiveHandshake,
    /// `Connection::from_cookie` (ESTABLISHED at once).
    Cookie,
}

/// Connection configuration and opening, the first part of every input.
#[derive(Copy, Clone, Debug)]
pub struct Setup {
    /// Bit 0 timestamps, 1 SACK, 2 window scale, 3 nodelay, 4 tail loss probe, 5 NewReno,
    /// 6 small buffers (4 KiB send / 8 KiB receive), 7 initial window of one segment.
    pub cfg_bits: u8,
    /// Our MSS (clamped to 64..=9000).
    pub mss: u16,
    /// Our ISS.
    pub iss: u32,
    /// The peer's ISS.
    pub peer_iss: u32,
    /// Start time in milliseconds.
    pub start_ms: u32,
    /// Opening (index into [`Open`]).
    pub open: u8,
    /// Peer SYN options: bit 0 MSS, 1 window scale, 2 SACK permitted, 3 timestamps.
    pub peer_opts: u8,
    /// Peer MSS.
    pub peer_mss: u16,
    /// Peer window-scale shift (as sent, may exceed 14).
    pub peer_ws: u8,
    /// Peer window (raw field).
    pub peer_window: u16,
}

/// One crafted segment from the peer.
#[derive(Copy, Clone, Debug, Default)]
pub struct Seg {
    /// TCP flags.
    pub flags: u8,
    /// Sequence-number mode (see [`Peer::seq`]) in the low 2 bits.
    pub seq_mode: u8,
    /// Delta or absolute sequence number.
    pub seq: u32,
    /// Acknowledgment mode (see [`Peer::ack`]) in the low 2 bits.
    pub ack_mode: u8,
    /// Delta or absolute acknowledgment number.
    pub ack: u32,
    /// Raw window.
    pub window: u16,
    /// Options: bit 0 MSS, 1 window scale, 2 SACK permitted, 3 timestamps, 4 arbitrary TSval,
    /// 5-7 number of SACK blocks (0..=7, more than fit are dropped by the encoder).
    pub opts: u8,
    /// MSS option value.
    pub mss: u16,
    /// Window-scale option value.
    pub ws: u8,
    /// TSval delta (or absolute with opts bit 4).
    pub tsval: u32,
    /// SACK blocks, relative to what the peer has acknowledged (left offset, length).
    pub sack: [(u16, u16); 4],
    /// Payload length (mod [`MAX_PAYLOAD`] + 1).
    pub len: u16,
}

/// One step of the program.
#[derive(Copy, Clone, Debug)]
pub enum Op {
    /// Feed a crafted segment.
    Segment(Seg),
    /// `send` that many application bytes.
    Send(u16),
    /// `recv` into a buffer of that size.
    Recv(u16),
    /// Collect output: buffer-size selector (low 3 bits), data first (bit 3), at most
    /// `bits 4..8` segments (0 = all).
    Drain(u8),
    /// Advance the clock by that many microseconds, then run due timers.
    Advance(u32),
    /// Jump to the next deadline and run the timers.
    Fire,
    /// `close`.
    Close,
    /// `shutdown_write`.
    Shutdown,
    /// `abort`.
    Abort,
    /// `set_nodelay`.
    Nodelay(bool),
    /// `set_keepalive` (0 = off, else idle/interval in units of 100 ms and probes).
    Keepalive(u8),
    /// ICMP fragmentation-needed with this MTU.
    PathMtu(u16),
    /// `drop_ooo` (memory pressure).
    DropOoo,
    /// Feed the last segment the peer sent again (a duplicate).
    Duplicate,
}

const OPS: u8 = 14;

impl Setup {
    fn decode(r: &mut Reader) -> Setup {
        Setup {
            cfg_bits: r.u8(),
            mss: r.u16(),
            iss: r.u32(),
            peer_iss: r.u32(),
            start_ms: r.u32(),
            open: r.u8(),
            peer_opts: r.u8(),
            peer_mss: r.u16(),
            peer_ws: r.u8(),
            peer_window: r.u16(),
        }
    }

    /// Append the encoding of `self`.
    pub fn encode(&self, w: &mut Writer) {
        w.u8(self.cfg_bits)
            .u16(self.mss)
            .u32(self.iss)
            .u32(self.peer_iss)
            .u32(self.start_ms)
            .u8(self.open)
            .u8(self.peer_opts)
            .u16(self.peer_mss)
            .u8(self.peer_ws)
            .u16(self.peer_window);
    }

    fn open(&self) -> Open {
        match self.open % 5 {
            0 => Open::Active,
            1 => Open::ActiveHandshake,
            2 => Open::Passive,
            3 => Open::PassiveHandshake,
            _ => Open::Cookie,
        }
    }

    fn config(&self) -> TcpConfig {
        let b = self.cfg_bits;
        let small = b & 0x40 != 0;
        TcpConfig {
            mss: self.mss.clamp(64, 9000),
            timestamps: b & 1 != 0,
            sack: b & 2 != 0,
            window_scale: b & 4 != 0,
            nodelay: b & 8 != 0,
            tail_loss_probe: b & 16 != 0,
            congestion: if b & 32 != 0 {
                CongestionAlgorithm::NewReno
            } else {
                CongestionAlgorithm::Cubic
            },
            send_buffer: if small { 4096 } else { 256 * 1024 },
            recv_buffer: if small { 8192 } else { 256 * 1024 },
            ooo_budget: if small { 4096 } else { 256 * 1024 },
            initial_window_segments: if b & 0x80 != 0 { 1 } else { 10 },
            checksum: ChecksumMode::SOFTWARE,
            ..TcpConfig::default()
        }
    }

    fn peer_options(&self) -> TcpOptions {
        let o = self.peer_opts;
        TcpOptions {
            mss: (o & 1 != 0).then_some(self.peer_mss),
            window_scale: (o & 2 != 0).then_some(self.peer_ws),
            sack_permitted: o & 4 != 0,
            timestamps: (o & 8 != 0).then_some((self.start_ms.wrapping_mul(7), 0)),
            sack: SackBlocks::default(),
        }
    }
}

impl Seg {
    fn decode(r: &mut Reader) -> Seg {
        let mut s = Seg {
            flags: r.u8(),
            seq_mode: r.u8(),
            seq: r.u32(),
            ack_mode: r.u8(),
            ack: r.u32(),
            window: r.u16(),
            opts: r.u8(),
            ..Seg::default()
        };
        if s.opts & 1 != 0 {
            s.mss = r.u16();
        }
        if s.opts & 2 != 0 {
            s.ws = r.u8();
        }
        if s.opts & 8 != 0 {
            s.tsval = r.u32();
        }
        for i in 0..((s.opts >> 5) as usize).min(4) {
            s.sack[i] = (r.u16(), r.u16());
        }
        s.len = r.u16();
        s
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(self.flags)
            .u8(self.seq_mode)
            .u32(self.seq)
            .u8(self.ack_mode)
            .u32(self.ack)
            .u16(self.window)
            .u8(self.opts);
        if self.opts & 1 != 0 {
            w.u16(self.mss);
        }
        if self.opts & 2 != 0 {
            w.u8(self.ws);
        }
        if self.opts & 8 != 0 {
            w.u32(self.tsval);
        }
        for i in 0..((self.opts >> 5) as usize).min(4) {
            w.u16(self.sack[i].0).u16(self.sack[i].1);
        }
        w.u16(self.len);
    }

    /// An in-order segment with these flags and payload length, acknowledging everything.
    pub fn in_order(flags: TcpFlags, len: u16) -> Seg {
        Seg {
            flags: flags.0,
            seq_mode: 2,
            ack_mode: 2,
            window: 65535,
            opts: 8,
            len,
            ..Seg::default()
        }
    }
}

impl Op {
    fn decode(r: &mut Reader) -> Op {
        match r.u8() % OPS {
            0 => Op::Segment(Seg::decode(r)),
            1 => Op::Send(r.u16()),
            2 => Op::Recv(r.u16()),
            3 => Op::Drain(r.u8()),
            4 => Op::Advance(r.u32()),
            5 => Op::Fire,
            6 => Op::Close,
            7 => Op::Shutdown,
            8 => Op::Abort,
            9 => Op::Nodelay(r.u8() & 1 != 0),
            10 => Op::Keepalive(r.u8()),
            11 => Op::PathMtu(r.u16()),
            12 => Op::DropOoo,
            _ => Op::Duplicate,
        }
    }

    /// Append the encoding of `self`.
    pub fn encode(&self, w: &mut Writer) {
        match *self {
            Op::Segment(s) => {
                w.u8(0);
                s.encode(w);
            }
            Op::Send(n) => {
                w.u8(1).u16(n);
            }
            Op::Recv(n) => {
                w.u8(2).u16(n);
            }
            Op::Drain(b) => {
                w.u8(3).u8(b);
            }
            Op::Advance(us) => {
                w.u8(4).u32(us);
            }
            Op::Fire => {
                w.u8(5);
            }
            Op::Close => {
                w.u8(6);
            }
            Op::Shutdown => {
                w.u8(7);
            }
            Op::Abort => {
                w.u8(8);
            }
            Op::Nodelay(on) => {
                w.u8(9).u8(on as u8);
            }
            Op::Keepalive(b) => {
                w.u8(10).u8(b);
            }
            Op::PathMtu(m) => {
                w.u8(11).u16(m);
            }
            Op::DropOoo => {
                w.u8(12);
            }
            Op::Duplicate => {
                w.u8(13);
            }
        }
    }
}

/// Encode a whole input.
pub fn encode(setup: &Setup, ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    setup.encode(&mut w);
    for op in ops {
        op.encode(&mut w);
    }
    w.out
}

/// The fake peer's view of the sequence space.
struct Peer {
    /// Next sequence number the peer sends (after its SYN).
    nxt: SeqNumber,
    /// Highest sequence number (plus length) the connection has sent.
    conn_max: SeqNumber,
    /// The peer's last cumulative acknowledgment.
    acked: SeqNumber,
    /// Last TSval the connection sent (echoed as TSecr).
    conn_tsval: u32,
    /// Offset of the peer's timestamp clock from `now` in ms.
    ts_offset: u32,
    /// The connection's initial receive sequence number, when known (for checking `recv`).
    irs: Option<SeqNumber>,
    /// Bytes `recv` has returned.
    delivered: u32,
    /// Bytes `send` accepted.
    app_sent: u32,
    /// Last crafted segment, as bytes on the wire.
    last: Vec<u8>,
}

/// Pick a sequence number in the near future/past of `base` from a 32-bit input value.
fn near(base: SeqNumber, v: u32) -> SeqNumber {
    SeqNumber(base.0.wrapping_add((v as i16) as i32 as u32))
}

impl Peer {
    /// Sequence number for a segment: 0 near `nxt`, 1 absolute, 2 exactly `nxt`, 3 at `nxt`
    /// minus a bounded amount (a retransmission of old data).
    fn seq(&self, mode: u8, v: u32) -> SeqNumber {
        match mode & 3 {
            0 => near(self.nxt, v),
            1 => SeqNumber(v),
            2 => self.nxt,
            _ => SeqNumber(self.nxt.0.wrapping_sub(v % 70_000)),
        }
    }

    /// Acknowledgment number: 0 near the highest sent, 1 absolute, 2 everything sent, 3 a
    /// partial ACK between the last ACK and everything.
    fn ack(&self, mode: u8, v: u32) -> SeqNumber {
        match mode & 3 {
            0 => near(self.conn_max, v),
            1 => SeqNumber(v),
            2 => self.conn_max,
            _ => {
                let span = self.conn_max.since(self.acked);
                SeqNumber(self.acked.0.wrapping_add(v % span.saturating_add(1)))
            }
        }
    }
}

/// Everything the connection wants to send now, checked. `limit` 0 = all.
#[allow(clippy::too_many_arguments)]
fn drain(
    c: &mut Connection,
    peer: &mut Peer,
    iss: SeqNumber,
    now: Instant,
    st: &mut TcpStats,
    buf_len: usize,
    data_first: bool,
    limit: usize,
) {
    let mut buf = vec![0u8; buf_len];
    let mut count = 0usize;
    let mut phase = [false, true];
    if data_first {
        phase = [true, false];
    }
    for data in phase {
        let mut in_a_row = 0usize;
        loop {
            if limit != 0 && count >= limit {
                return;
            }
            let out = if data {
                let ready = c.data_ready(now);
                let out = c.poll_data(now, &mut buf, st);
                assert!(
                    out.is_none() || ready,
                    "poll_data produced a segment after data_ready() == false"
                );
                assert!(
                    out.is_some() || !ready || buf_len <= 60,
                    "data_ready() but poll_data gave nothing with a {buf_len}-byte buffer"
                );
                out
            } else {
                let out = c.poll_control(now, &mut buf, st);
                if out.is_none() && buf_len >= 60 {
                    assert!(
                        !c.control_ready(),
                        "poll_control returned None while control_ready() (state {:?})",
                        c.state()
                    );
                }
                out
            };
            let Some(n) = out else { break };
            count += 1;
            in_a_row += 1;
            if !data {
                assert!(in_a_row <= 16, "poll_control does not stop");
            } else {
                assert!(in_a_row <= 20_000, "poll_data does not stop");
            }
            check_output(&buf, n, peer, iss);
        }
    }
}

/// Check one segment the connection produced and learn from it.
fn check_output(buf: &[u8], n: usize, peer: &mut Peer, iss: SeqNumber) {
    assert!(n <= buf.len(), "segment longer than the buffer");
    let seg = match TcpRepr::parse(&buf[..n], *LOCAL.ip(), *REMOTE.ip(), ChecksumMode::SOFTWARE) {
        Ok(s) => s,
        Err(e) => panic!("output does not re-parse: {e:?}: {:02x?}", &buf[..n]),
    };
    crate::trace!(
        "  out: {:?} seq={} ack={} win={} len={} opts={:?}",
        seg.flags,
        seg.seq.0,
        seg.ack.0,
        seg.window,
        seg.payload.len(),
        seg.options
    );
    assert_eq!(seg.src_port, LOCAL.port());
    assert_eq!(seg.dst_port, REMOTE.port());
    if seg.flags.syn() {
        assert_eq!(seg.seq, iss, "SYN without the ISS");
    }
    if !seg.payload.is_empty() {
        let first = seg.seq + (seg.flags.syn() as u32);
        let off = first.0.wrapping_sub(iss.0.wrapping_add(1));
        assert!(
            (off as u64) + (seg.payload.len() as u64) <= peer.app_sent as u64,
            "sent bytes {off}..+{} beyond the {} the application gave",
            seg.payload.len(),
            peer.app_sent
        );
        for (i, &b) in seg.payload.iter().enumerate() {
            assert_eq!(
                b,
                app_byte(off.wrapping_add(i as u32)),
                "payload byte {} of a segment at offset {off} is wrong",
                i
            );
        }
    }
    if !seg.flags.rst() {
        let end = seg.seq + seg.segment_len();
        if end.diff(peer.conn_max) > 0 && end.diff(peer.conn_max) < (1 << 30) {
            peer.conn_max = end;
        }
    }
    if let Some((tsval, _)) = seg.options.timestamps {
        peer.conn_tsval = tsval;
    }
}

/// Build a segment from `s`, put it through emit + parse (so only wire-representable
/// segments are fed), feed it and track the sequence space.
fn feed(c: &mut Connection, peer: &mut Peer, s: &Seg, now: Instant, st: &mut TcpStats) {
    let flags = TcpFlags(s.flags);
    let seq = peer.seq(s.seq_mode, s.seq);
    let ack = peer.ack(s.ack_mode, s.ack);
    let len = s.len as usize % (MAX_PAYLOAD + 1);
    let first = seq + (flags.syn() as u32);
    let mut payload = [0u8; MAX_PAYLOAD];
    for (i, b) in payload[..len].iter_mut().enumerate() {
        *b = peer_byte(first.0.wrapping_add(i as u32));
    }
    let mut sack = SackBlocks::default();
    for &(l, n) in &s.sack[..((s.opts >> 5) as usize).min(4)] {
        let left = peer.acked + l as u32;
        sack.push(left, left + n as u32);
    }
    let now_ms = (now.total_micros() / 1000) as u32;
    let options = TcpOptions {
        mss: (s.opts & 1 != 0).then_some(s.mss),
        window_scale: (s.opts & 2 != 0).then_some(s.ws),
        sack_permitted: s.opts & 4 != 0,
        timestamps: (s.opts & 8 != 0).then(|| {
            let tsval = if s.opts & 16 != 0 {
                s.tsval
            } else {
                now_ms
                    .wrapping_add(peer.ts_offset)
                    .wrapping_add(s.tsval % 4)
            };
            (tsval, peer.conn_tsval)
        }),
        sack,
    };
    let repr = TcpRepr {
        src_port: REMOTE.port(),
        dst_port: LOCAL.port(),
        seq,
        ack,
        flags,
        window: s.window,
        urgent: 0,
        options,
        payload: &payload[..len],
    };
    let mut wire = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut wire, *REMOTE.ip(), *LOCAL.ip(), ChecksumMode::SOFTWARE);
    wire.truncate(n);
    peer.last = wire;
    feed_wire(c, peer, now, st);
    if flags.ack() && ack.diff(peer.acked) > 0 && ack.diff(peer.conn_max) <= 0 {
        peer.acked = ack;
    }
    let end = seq + (len as u32) + flags.syn() as u32 + flags.fin() as u32;
    let d = end.diff(peer.nxt);
    if d > 0 && d < (1 << 20) && !flags.rst() {
        peer.nxt = end;
    }
}

/// Feed `peer.last` (parsed back from its wire form) and learn the IRS on the SYN that
/// synchronizes an active open.
fn feed_wire(c: &mut Connection, peer: &mut Peer, now: Instant, st: &mut TcpStats) {
    let wire = std::mem::take(&mut peer.last);
    let seg = TcpRepr::parse(&wire, *REMOTE.ip(), *LOCAL.ip(), ChecksumMode::SOFTWARE)
        .expect("crafted segment re-parses");
    let before = c.state();
    crate::trace!(
        "  in: {:?} seq={} ack={} win={} len={} opts={:?}",
        seg.flags,
        seg.seq.0,
        seg.ack.0,
        seg.window,
        seg.payload.len(),
        seg.options
    );
    c.handle_segment(&seg, now, st);
    let after = c.state();
    if before == State::SynSent && after != State::SynSent && after != State::Closed {
        peer.irs = seg.flags.syn().then_some(seg.seq);
        if seg.flags.syn() {
            // The peer's stream is now anchored here.
            peer.nxt = seg.seq + 1u32 + seg.payload.len() as u32 + seg.flags.fin() as u32;
        }
    }
    peer.last = wire;
}

fn run_timers(c: &mut Connection, now: Instant, st: &mut TcpStats) {
    for _ in 0..8 {
        match c.poll_timeout() {
            Some(t) if t <= now => c.handle_timeout(now, st),
            _ => return,
        }
    }
    if let Some(t) = c.poll_timeout() {
        assert!(
            t > now,
            "a timer stays due after handle_timeout: {t:?} <= {now:?}"
        );
    }
}

const BUF_SIZES: [usize; 8] = [60, 64, 100, 576, 1600, 1600, 9100, 65600];

/// Run one input.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let setup = Setup::decode(&mut r);
    let cfg = setup.config();
    let mut st = TcpStats::default();
    let mut now = Instant::from_millis(setup.start_ms as u64);
    let iss = SeqNumber(setup.iss);
    let peer_iss = SeqNumber(setup.peer_iss);
    let mut peer = Peer {
        nxt: peer_iss + 1u32,
        conn_max: iss,
        acked: iss,
        conn_tsval: 0,
        ts_offset: setup.start_ms.wrapping_mul(7).wrapping_sub(setup.start_ms),
        irs: None,
        delivered: 0,
        app_sent: 0,
        last: Vec::new(),
    };
    let syn_opts = setup.peer_options();
    let open = setup.open();
    let mut c = match open {
        Open::Active | Open::ActiveHandshake => Connection::connect(&cfg, LOCAL, REMOTE, iss, now),
        Open::Passive | Open::PassiveHandshake => {
            let syn = TcpRepr {
                src_port: REMOTE.port(),
                dst_port: LOCAL.port(),
                seq: peer_iss,
                ack: SeqNumber(0),
                flags: TcpFlags::SYN,
                window: setup.peer_window,
                urgent: 0,
                options: syn_opts,
                payload: &[],
            };
            peer.irs = Some(peer_iss);
            Connection::accept_syn(&cfg, LOCAL, REMOTE, iss, &syn, now)
        }
        Open::Cookie => {
            let ack = TcpRepr {
                src_port: REMOTE.port(),
                dst_port: LOCAL.port(),
                seq: peer_iss + 1u32,
                ack: iss + 1u32,
                flags: TcpFlags::ACK,
                window: setup.peer_window,
                urgent: 0,
                options: syn_opts,
                payload: &[],
            };
            peer.irs = Some(peer_iss);
            peer.conn_max = iss + 1u32;
            peer.acked = iss + 1u32;
            Connection::from_cookie(
                &cfg,
                LOCAL,
                REMOTE,
                iss,
                peer_iss,
                syn_opts.mss.unwrap_or(536),
                syn_opts.window_scale,
                syn_opts.sack_permitted,
                &ack,
                now,
            )
        }
    };
    drain(&mut c, &mut peer, iss, now, &mut st, 1600, false, 0);
    match open {
        Open::ActiveHandshake => {
            let mut s = Seg::in_order(TcpFlags::SYN | TcpFlags::ACK, 0);
            s.seq_mode = 1;
            s.seq = setup.peer_iss;
            s.window = setup.peer_window;
            s.opts = setup.peer_opts & 0x0f;
            s.mss = setup.peer_mss;
            s.ws = setup.peer_ws;
            feed(&mut c, &mut peer, &s, now, &mut st);
            drain(&mut c, &mut peer, iss, now, &mut st, 1600, false, 0);
        }
        Open::PassiveHandshake => {
            let mut s = Seg::in_order(TcpFlags::ACK, 0);
            s.window = setup.peer_window;
            s.opts = if setup.peer_opts & 8 != 0 { 8 } else { 0 };
            feed(&mut c, &mut peer, &s, now, &mut st);
            drain(&mut c, &mut peer, iss, now, &mut st, 1600, false, 0);
        }
        _ => {}
    }

    let mut rx = vec![0u8; 70_000];
    let mut tx = vec![0u8; 70_000];
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        let op = Op::decode(&mut r);
        crate::trace!("{:?} t={}us {:?}", c.state(), now.total_micros(), op);
        match op {
            Op::Segment(s) => feed(&mut c, &mut peer, &s, now, &mut st),
            Op::Duplicate => {
                if !peer.last.is_empty() {
                    feed_wire(&mut c, &mut peer, now, &mut st);
                }
            }
            Op::Send(n) => {
                let n = n as usize;
                for (i, b) in tx[..n].iter_mut().enumerate() {
                    *b = app_byte(peer.app_sent.wrapping_add(i as u32));
                }
                if let Ok(k) = c.send(&tx[..n]) {
                    assert!(k <= n, "send took more than it was given");
                    peer.app_sent = peer.app_sent.wrapping_add(k as u32);
                }
            }
            Op::Recv(n) => {
                let n = n as usize;
                let avail = c.recv_available();
                if let Ok(k) = c.recv(&mut rx[..n]) {
                    assert!(k <= n && k <= avail, "recv returned too much");
                    if let Some(irs) = peer.irs {
                        let start = irs + 1u32 + peer.delivered;
                        for (i, &b) in rx[..k].iter().enumerate() {
                            assert_eq!(
                                b,
                                peer_byte((start + i as u32).0),
                                "received byte {} of the stream is wrong",
                                peer.delivered as usize + i
                            );
                        }
                    }
                    peer.delivered = peer.delivered.wrapping_add(k as u32);
                }
            }
            Op::Drain(b) => {
                let size = BUF_SIZES[(b & 7) as usize];
                drain(
                    &mut c,
                    &mut peer,
                    iss,
                    now,
                    &mut st,
                    size,
                    b & 8 != 0,
                    (b >> 4) as usize,
                );
            }
            Op::Advance(us) => {
                now += Duration::from_micros(us as u64);
                run_timers(&mut c, now, &mut st);
            }
            Op::Fire => {
                if let Some(t) = c.poll_timeout() {
                    now = now.max(t);
                }
                run_timers(&mut c, now, &mut st);
            }
            Op::Close => c.close(now),
            Op::Shutdown => c.shutdown_write(now),
            Op::Abort => c.abort(now),
            Op::Nodelay(on) => c.set_nodelay(on),
            Op::Keepalive(b) => {
                if b == 0 {
                    c.set_keepalive(None);
                } else {
                    let unit = Duration::from_millis(100);
                    c.set_keepalive(Some((
                        unit.saturating_mul((b & 0x0f) as u64),
                        unit.saturating_mul((b >> 4) as u64),
                        (b % 5) as u32,
                    )));
                }
            }
            Op::PathMtu(m) => c.set_path_mtu(m),
            Op::DropOoo => c.drop_ooo(),
        }
        while c.poll_event().is_some() {}
        let _ = c.info();
    }
    drain(&mut c, &mut peer, iss, now, &mut st, 1600, false, 0);
    crate::trace!("end: {:?} {:?}", c.info(), st);
}
