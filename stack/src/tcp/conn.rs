//! One TCP connection (the TCB): RFC 9293 state machine with RFC 7323 (window scale,
//! timestamps, PAWS), RFC 2018/6675 (SACK and SACK-based recovery), RFC 5681/6582 (NewReno fast
//! recovery), RFC 6937 (Proportional Rate Reduction in both recoveries, loss-based congestion
//! control only), RFC 3042 (limited transmit), RFC 6298 (RTO), RFC 5961 (challenge ACKs) and
//! RFC 1122 delayed ACKs.
//!
//! Sans-IO: segments (as [`TcpRepr`]) and `now` go in; complete TCP segments, events and the next
//! deadline come out. Output is split in two on purpose:
//! - [`Connection::poll_control`] yields control segments (SYN, SYN-ACK, pure ACKs, bare FIN, RST,
//!   probes), which must never wait behind the transmit admission queue;
//! - [`Connection::data_ready`] / [`Connection::poll_data`] yield data segments, which the egress
//!   admission may hold back. A decision not yet built is just recomputed later from the send
//!   buffer, so holding back loses or duplicates nothing.
//!
//! Driving a connection (what the interface does):
//! 1. feed each received segment to [`Connection::handle_segment`], call
//!    [`Connection::handle_timeout`] when [`Connection::poll_timeout`] passes;
//! 2. after any input or application call, drain [`Connection::poll_control`] until `None`
//!    ([`Connection::control_ready`] tells whether more is due), offer the connection to the
//!    egress while [`Connection::data_ready`], and re-read `poll_timeout` (sending can arm
//!    timers, e.g. the persist timer after `send` into a closed window);
//! 3. when data may go right away, calling `poll_data` before `poll_control` lets a pending
//!    ACK ride on the data segment instead of going out alone;
//! 4. [`Connection::is_closed`] says when the TCB may be freed (TIME_WAIT is not closed).

use crate::stats::TcpStats;
use crate::tcp::config::TcpConfig;
use crate::tcp::congestion::{Congestion, CongestionControl};
use crate::tcp::rate::RateSampler;
use crate::tcp::reassembly::RecvBuffer;
use crate::tcp::rtt::RttEstimator;
use crate::tcp::sack::{Scoreboard, MAX_SACK_RANGES};
use crate::tcp::sendbuf::SendBuffer;
use crate::tcp::seq::SeqNumber;
use crate::time::{Deadline, Duration, Instant};
use crate::wire::checksum;
use crate::wire::tcp::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};
use crate::wire::SocketAddrV4;

/// IP protocol number of TCP (for the pseudo-header).
const PROTOCOL_TCP: u8 = 6;

/// MSS assumed when the peer sends none (RFC 9293 3.7.1).
const DEFAULT_PEER_MSS: u16 = 536;
/// Quick ACKs at the start of a connection (ACK every segment while the peer slow-starts).
const QUICKACKS: u8 = 16;
/// Bytes the timestamp option adds to every segment.
const TS_OVERHEAD: u16 = 12;
/// TS.recent older than this is no longer used by PAWS (RFC 7323 section 5.5: 24 days).
const PAWS_IDLE_SECS: u32 = 24 * 24 * 3600;
/// Challenge ACKs per connection per second (RFC 5961 section 7).
const CHALLENGE_ACK_LIMIT: u8 = 10;

/// Connection states of RFC 9293 (LISTEN lives in the interface).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection (initial for nothing; final after close, reset or timeout).
    Closed,
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received and SYN-ACK sent, waiting for the ACK.
    SynReceived,
    /// Data transfer.
    Established,
    /// We sent FIN, it is not acknowledged yet.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// Peer sent FIN; we may still send.
    CloseWait,
    /// Both sent FIN simultaneously; waiting for the ACK of ours.
    Closing,
    /// Peer closed first, we sent FIN; waiting for its ACK.
    LastAck,
    /// Both FINs done; waiting 2*MSL.
    TimeWait,
}

/// Errors of the application calls.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TcpError {
    /// The handshake has not completed.
    NotConnected,
    /// The connection (or this direction of it) is closed.
    Closed,
    /// The connection was reset.
    Reset,
    /// The peer's FIN has been read: no more data will come.
    Finished,
}

impl core::fmt::Display for TcpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TcpError::NotConnected => "not connected",
            TcpError::Closed => "connection closed",
            TcpError::Reset => "connection reset",
            TcpError::Finished => "end of stream",
        })
    }
}

impl std::error::Error for TcpError {}

/// Why a connection reached CLOSED.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Orderly close (FIN both ways).
    Normal,
    /// The peer reset the connection.
    Reset,
    /// Retransmission, keepalive, handshake or FIN_WAIT_2 limits ran out.
    Timeout,
    /// Aborted locally.
    Aborted,
    /// The peer refused the connection (RST in answer to our SYN).
    Refused,
}

/// What happened to a connection, for the application.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConnEvent {
    /// The handshake completed.
    Connected,
    /// New in-order data (or the end of stream) can be read.
    Readable,
    /// Send-buffer space was freed.
    Writable,
    /// The peer's FIN arrived.
    PeerClosed,
    /// The connection is closed.
    Closed(CloseReason),
}

// Event bits.
const EV_CONNECTED: u8 = 1;
const EV_READABLE: u8 = 2;
const EV_WRITABLE: u8 = 4;
const EV_PEER_CLOSED: u8 = 8;
const EV_CLOSED: u8 = 16;

// Pending control segments.
const P_ACK: u8 = 1;
const P_SYN: u8 = 2;
const P_RST: u8 = 4;
const P_WPROBE: u8 = 8;
const P_KEEPALIVE: u8 = 16;
/// The RST carries ACK (abort of a synchronized connection).
const P_RST_ACK: u8 = 32;

// Boolean flags.
const F_TS: u32 = 1;
const F_SACK: u32 = 2;
const F_WS: u32 = 4;
const F_NODELAY: u32 = 8;
/// shutdown_write called: FIN after the queued data.
const F_FIN_QUEUED: u32 = 16;
/// close called: no more reads.
const F_RD_CLOSED: u32 = 32;
/// The peer's FIN has been processed (RCV.NXT counts it).
const F_PEER_FIN: u32 = 64;
/// Our SYN is acknowledged; the send buffer starts at SND.UNA.
const F_SYN_ACKED: u32 = 128;
/// An RTT measurement is running (Karn: only for never-retransmitted data).
const F_RTT_TIMING: u32 = 256;
/// Closed because of a reset (recv/send report `Reset`).
const F_WAS_RESET: u32 = 512;
/// Persist expiry: send the next segment even if Nagle/SWS would hold it.
const F_FORCE_PUSH: u32 = 1024;
/// A FIN arrived out of order at `ooo_fin`.
const F_OOO_FIN: u32 = 2048;
/// The NewReno fast retransmit of SND.UNA is due.
const F_RTX_UNA: u32 = 4096;
/// TS.recent holds a value.
const F_TS_RECENT: u32 = 8192;
/// Our FIN has been transmitted at least once.
const F_FIN_SENT: u32 = 1 << 14;
/// The retransmission timer currently runs as a tail-loss-probe timeout (RFC 8985 PTO).
const F_PTO: u32 = 1 << 15;
/// A tail loss probe (retransmission of the last segment) is due.
const F_TLP_RTX: u32 = 1 << 16;
/// A probe is outstanding: no further PTO until the cumulative ACK advances.
const F_TLP_OUT: u32 = 1 << 17;
/// Tail loss probes enabled.
const F_TLP_ON: u32 = 1 << 18;
/// The peer is streaming (last in-order segment full-sized, no PSH): keep the receive storage
/// when the application drains it instead of freeing and reallocating per segment.
const F_RCV_BULK: u32 = 1 << 19;
/// A D-SACK block (RFC 2883) for duplicate data is waiting to go in the next ACK.
const F_DSACK: u32 = 1 << 20;
/// `oow_ms` holds the time of the last rate-limited out-of-window ACK.
const F_OOW_SENT: u32 = 1 << 21;
/// This loss-recovery episode is paced by Proportional Rate Reduction (`prr`): set on entering
/// recovery under a loss-based congestion control. BBR modulates its own window in recovery.
const F_PRR: u32 = 1 << 22;
/// Compute the checksums of the segments we send in software (`TcpConfig::checksum.fill_tx`;
/// off when the NIC fills them in). A flag rather than a `ChecksumMode` in `Params`: that saves
/// `Connection` 8 B of padding.
const F_CSUM_TX: u32 = 1 << 23;
/// A loss-recovery episode or RTO may still be undone (`undo_marker`, `undo_retrans`, and the
/// congestion control's saved prior state describe it): set when the episode starts, cleared by
/// the undo or when the next episode starts over.
const F_UNDO: u32 = 1 << 24;
/// Eifel detection (RFC 3522) is armed: `undo_tsval` is the TSval of the episode's first
/// retransmission, and the first ACK advancing SND.UNA decides.
const F_UNDO_TS: u32 = 1 << 25;
/// The undoable episode is a retransmission timeout (else fast / SACK recovery).
const F_UNDO_RTO: u32 = 1 << 26;
/// More retransmissions than `undo_retrans` counts: no D-SACK undo for this episode.
const F_UNDO_NODSACK: u32 = 1 << 27;
/// The recovery episode was found spurious on a partial ACK: undo when recovery ends, unless
/// another hole is retransmitted first (then the evidence covers only part of the episode).
const F_UNDO_DEFER: u32 = 1 << 28;
/// Spurious-retransmission undo is enabled (`TcpConfig::undo`).
const F_UNDO_ON: u32 = 1 << 29;
/// Karn's rule cancelled the timed segment (a retransmission, loss recovery or an RTO): until
/// the next segment is timed, RTT samples come from the echoed timestamp.
const F_RTT_KARN: u32 = 1 << 30;
/// Minimum spacing of duplicate ACKs answering out-of-window segments without data (Linux's
/// tcp_invalid_ratelimit): breaks ACK loops between two confused endpoints.
const OOW_ACK_INTERVAL_MS: u32 = 500;

/// Proportional Rate Reduction (RFC 6937 with its PRR-SSRB bound, as revised by RFC 9937) for
/// one loss-recovery episode: the sender's transmissions track what the receiver reports
/// delivered, scaled by ssthresh / RecoverFS, so pipe falls smoothly to ssthresh over the
/// recovery round trip instead of in a burst-then-silence (RFC 6675 with cwnd = ssthresh).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct Prr {
    /// RecoverFS: pipe when recovery started.
    recover_fs: u32,
    /// prr_delivered: bytes cumulatively ACKed or SACKed during recovery.
    delivered: u32,
    /// prr_out: bytes sent during recovery.
    out: u32,
    /// sndcnt: bytes the last ACK allowed to be sent, less what was sent since.
    sndcnt: u32,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Recovery {
    None,
    NewReno,
    Sack,
}

/// Knobs copied from [`TcpConfig`] in compact form (milliseconds as u32).
#[derive(Clone, Debug)]
struct Params {
    rto_min_ms: u32,
    rto_max_ms: u32,
    time_wait_ms: u32,
    fin_wait2_ms: u32,
    delack_ms: u32,
    ka_idle_ms: u32,
    ka_intvl_ms: u32,
    ka_probes: u8,
    syn_retries: u8,
    synack_retries: u8,
    max_retransmits: u8,
    local_mss: u16,
    iw_segments: u16,
    ooo_budget: u32,
}

fn ms(d: Duration) -> u32 {
    d.total_millis().min(u32::MAX as u64) as u32
}

fn dur(ms: u32) -> Duration {
    Duration::from_millis(ms as u64)
}

/// A data segment the sender has decided on (rebuilt from state whenever asked).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct DataSeg {
    seq: SeqNumber,
    len: u32,
    fin: bool,
    kind: SegKind,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum SegKind {
    New,
    /// Tail loss probe: the last segment sent, again.
    Tlp,
    /// Go-back-N after an RTO, or retransmission from SND.NXT < SND.MAX.
    Rto,
    Fast,
    Sack,
    /// A SACK-recovery retransmission found lost, again.
    LostRtx,
}

/// A snapshot of a connection's transport state, for telemetry and debugging.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// State.
    pub state: State,
    /// Smoothed RTT, if measured.
    pub srtt: Option<Duration>,
    /// RTT variance.
    pub rttvar: Duration,
    /// Current retransmission timeout (with backoff).
    pub rto: Duration,
    /// Congestion window (bytes).
    pub cwnd: u32,
    /// Slow-start threshold (bytes).
    pub ssthresh: u32,
    /// Peer's receive window (bytes, scaled).
    pub snd_wnd: u32,
    /// Window we advertise (bytes).
    pub rcv_wnd: u32,
    /// Bytes sent and not yet acknowledged.
    pub bytes_in_flight: u32,
    /// Bytes queued for sending (including in flight).
    pub send_queued: u32,
    /// Bytes ready for the application.
    pub recv_available: u32,
    /// Bytes held out of order.
    pub ooo_bytes: u32,
    /// Payload bytes per full segment we send.
    pub mss: u16,
    /// Consecutive retransmission timeouts.
    pub retransmits: u8,
    /// In fast / SACK loss recovery.
    pub in_recovery: bool,
    /// Timestamps negotiated.
    pub timestamps: bool,
    /// SACK negotiated.
    pub sack: bool,
    /// Window scaling negotiated: (our shift, peer's shift).
    pub window_scale: Option<(u8, u8)>,
    /// Pacing rate (bytes per second) when the congestion control paces (BBR).
    pub pacing_rate: Option<u64>,
}

/// One TCP connection.
#[derive(Debug)]
pub struct Connection {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    state: State,
    flags: u32,
    pending: u8,
    events: u8,
    close_reason: CloseReason,
    recovery: Recovery,
    snd_shift: u8,
    rcv_shift: u8,
    dupacks: u8,
    quickacks: u8,
    retransmits: u8,
    persist_backoff: u8,
    ka_sent: u8,
    challenge_count: u8,
    /// Retransmissions of the undoable episode not yet reported duplicate by a D-SACK
    /// (RFC 3708): when the count falls to zero every one was spurious.
    undo_retrans: u8,
    challenge_sec: u32,
    oow_ms: u32,
    /// Peer's MSS (from its SYN), clamped by the path MTU.
    peer_mss: u16,
    /// Largest payload seen from the peer (receiver-side MSS estimate for delayed ACKs).
    rcv_mss: u16,

    iss: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    snd_max: SeqNumber,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    snd_wnd: u32,
    max_snd_wnd: u32,
    recover: SeqNumber,
    /// End of the last small (< MSS) segment sent (Minshall's Nagle).
    snd_sml: SeqNumber,
    inflation: u32,
    rtt_seq: SeqNumber,
    /// SND.UNA when the undoable episode started: D-SACKs below it are for older episodes.
    undo_marker: SeqNumber,
    /// TSval of the episode's first retransmission (Eifel detection, with `F_UNDO_TS`).
    undo_tsval: u32,
    /// Valid while `F_PRR` is set.
    prr: Prr,

    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// Right edge of the window we last advertised.
    rcv_adv: SeqNumber,
    last_ack_sent: SeqNumber,
    ooo_fin: SeqNumber,
    rst_seq: SeqNumber,
    /// D-SACK block to report (valid with `F_DSACK`).
    dsack: (SeqNumber, SeqNumber),
    unacked_bytes: u32,

    ts_recent: u32,
    /// Partial sum of the TCP pseudo-header without the length (addresses and protocol are
    /// fixed for the connection's life): every segment's checksum starts from it.
    pseudo_sum: u32,
    /// When TS.recent was last set, in seconds (RFC 7323 5.5: stale after 24 days).
    ts_recent_secs: u32,
    ts_offset: u32,

    rtt_time: Instant,
    last_send: Instant,
    rto_at: Deadline,
    delack_at: Deadline,
    persist_at: Deadline,
    keepalive_at: Deadline,
    /// TIME_WAIT or FIN_WAIT_2 timeout.
    state_at: Deadline,

    rtt: RttEstimator,
    cc: Congestion,
    p: Params,
    sendbuf: SendBuffer,
    recvbuf: RecvBuffer,
    scoreboard: Option<Box<Scoreboard>>,
    /// Per-segment send records for delivery-rate samples; only when the congestion control
    /// asks for them (BBR).
    rate: Option<Box<RateSampler>>,
    /// Pacing: data segments wait while `now` is before this; it is also the wake-up deadline.
    /// Zero when nothing waits (always, when the congestion control does not pace). The exact
    /// departure schedule, in nanoseconds, is in `rate`.
    pace_until: Instant,
}

impl Connection {
    fn new(
        cfg: &TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        now: Instant,
    ) -> Connection {
        let (ka_idle, ka_intvl, ka_probes) = match cfg.keepalive {
            Some((i, v, n)) => (ms(i), ms(v), n.min(255) as u8),
            None => (0, 0, 0),
        };
        let mss = cfg.mss.max(64);
        let cc = Congestion::new(
            cfg.congestion,
            DEFAULT_PEER_MSS as u32,
            cfg.initial_window_segments
                .saturating_mul(DEFAULT_PEER_MSS as u32),
        );
        let mut flags = 0;
        if cfg.tail_loss_probe {
            flags |= F_TLP_ON;
        }
        if cfg.undo {
            flags |= F_UNDO_ON;
        }
        if cfg.nodelay {
            flags |= F_NODELAY;
        }
        if cfg.checksum.fill_tx {
            flags |= F_CSUM_TX;
        }
        Connection {
            local,
            remote,
            state: State::Closed,
            flags,
            pending: 0,
            events: 0,
            close_reason: CloseReason::Normal,
            recovery: Recovery::None,
            snd_shift: 0,
            rcv_shift: 0,
            dupacks: 0,
            quickacks: QUICKACKS,
            retransmits: 0,
            persist_backoff: 0,
            ka_sent: 0,
            challenge_count: 0,
            undo_retrans: 0,
            challenge_sec: 0,
            oow_ms: 0,
            peer_mss: DEFAULT_PEER_MSS,
            rcv_mss: DEFAULT_PEER_MSS.min(mss),
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            recover: iss,
            snd_sml: iss,
            inflation: 0,
            rtt_seq: iss,
            undo_marker: iss,
            undo_tsval: 0,
            prr: Prr::default(),
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            last_ack_sent: SeqNumber(0),
            ooo_fin: SeqNumber(0),
            rst_seq: SeqNumber(0),
            dsack: (SeqNumber(0), SeqNumber(0)),
            unacked_bytes: 0,
            ts_recent: 0,
            pseudo_sum: checksum::pseudo_header(*local.ip(), *remote.ip(), PROTOCOL_TCP, 0),
            ts_recent_secs: (now.total_millis() / 1000) as u32,
            // Offsetting our timestamp clock by the ISS hides uptime (RFC 7323 section 7.1).
            ts_offset: iss.0,
            rtt_time: now,
            last_send: now,
            rto_at: Deadline::NONE,
            delack_at: Deadline::NONE,
            persist_at: Deadline::NONE,
            keepalive_at: Deadline::NONE,
            state_at: Deadline::NONE,
            rtt: RttEstimator::new(cfg.rto_initial),
            p: Params {
                rto_min_ms: ms(cfg.rto_min),
                rto_max_ms: ms(cfg.rto_max),
                time_wait_ms: ms(cfg.time_wait),
                fin_wait2_ms: ms(cfg.fin_wait2_timeout),
                delack_ms: ms(cfg.delayed_ack),
                ka_idle_ms: ka_idle,
                ka_intvl_ms: ka_intvl,
                ka_probes,
                syn_retries: cfg.syn_retries,
                synack_retries: cfg.synack_retries,
                max_retransmits: cfg.max_retransmits,
                local_mss: mss,
                iw_segments: cfg.initial_window_segments.clamp(1, 1000) as u16,
                ooo_budget: cfg.ooo_budget.min(u32::MAX as usize) as u32,
            },
            sendbuf: SendBuffer::new(cfg.send_buffer),
            recvbuf: RecvBuffer::new(cfg.recv_buffer),
            scoreboard: None,
            rate: cc.wants_rate_samples().then(Box::default),
            cc,
            pace_until: Instant::from_micros(0),
        }
    }

    /// Active open: SYN_SENT with a SYN queued (MSS, window scale, SACK-permitted and timestamps
    /// as configured).
    pub fn connect(
        cfg: &TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        now: Instant,
    ) -> Connection {
        let mut c = Connection::new(cfg, local, remote, iss, now);
        c.state = State::SynSent;
        if cfg.window_scale {
            c.flags |= F_WS;
            c.rcv_shift = cfg.window_shift();
        }
        if cfg.timestamps {
            c.flags |= F_TS;
        }
        if cfg.sack {
            c.flags |= F_SACK;
        }
        c.pending |= P_SYN;
        c
    }

    /// Passive open from a listener: SYN_RECEIVED with the SYN-ACK queued, options negotiated
    /// from `syn`.
    pub fn accept_syn(
        cfg: &TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        syn: &TcpRepr,
        now: Instant,
    ) -> Connection {
        let mut c = Connection::new(cfg, local, remote, iss, now);
        c.state = State::SynReceived;
        c.negotiate(cfg, &syn.options);
        c.irs = syn.seq;
        c.rcv_nxt = syn.seq + 1u32;
        c.snd_wnd = syn.window as u32;
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = syn.seq;
        c.rcv_adv = c.rcv_nxt + c.syn_window() as u32;
        c.last_ack_sent = c.rcv_nxt;
        c.pending |= P_SYN;
        c
    }

    /// A connection created directly in ESTABLISHED from a validated SYN cookie. `iss` is the
    /// cookie, `irs = ack.seq - 1`; timestamps are on when the ACK carries them.
    #[allow(clippy::too_many_arguments)]
    pub fn from_cookie(
        cfg: &TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        irs: SeqNumber,
        peer_mss: u16,
        peer_wscale: Option<u8>,
        peer_sack: bool,
        ack: &TcpRepr,
        now: Instant,
    ) -> Connection {
        let mut c = Connection::new(cfg, local, remote, iss, now);
        let opts = TcpOptions {
            mss: Some(peer_mss),
            window_scale: peer_wscale,
            sack_permitted: peer_sack,
            timestamps: ack.options.timestamps,
            sack: SackBlocks::default(),
        };
        c.negotiate(cfg, &opts);
        c.state = State::Established;
        c.flags |= F_SYN_ACKED;
        c.irs = irs;
        c.rcv_nxt = irs + 1u32;
        c.snd_una = iss + 1u32;
        c.snd_nxt = c.snd_una;
        c.snd_max = c.snd_una;
        c.recover = c.snd_una;
        c.rcv_adv = c.rcv_nxt + c.syn_window() as u32;
        c.last_ack_sent = c.rcv_nxt;
        c.snd_wnd = (ack.window as u32) << c.snd_shift;
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = ack.seq;
        c.snd_wl2 = ack.ack;
        c.events |= EV_CONNECTED;
        c.arm_keepalive(now);
        if !ack.payload.is_empty() || ack.flags.fin() {
            let mut scratch = TcpStats::default();
            c.handle_segment(ack, now, &mut scratch);
        }
        c
    }

    /// Options from the peer's SYN (or the cookie) intersected with ours.
    fn negotiate(&mut self, cfg: &TcpConfig, o: &TcpOptions) {
        if cfg.window_scale {
            if let Some(ws) = o.window_scale {
                self.flags |= F_WS;
                self.snd_shift = ws.min(14);
                self.rcv_shift = cfg.window_shift();
            }
        }
        if cfg.timestamps {
            if let Some((tsval, _)) = o.timestamps {
                self.flags |= F_TS | F_TS_RECENT;
                self.ts_recent = tsval;
            }
        }
        if cfg.sack && o.sack_permitted {
            self.flags |= F_SACK;
        }
        self.set_peer_mss(o.mss.unwrap_or(DEFAULT_PEER_MSS));
    }

    /// The peer's MSS is known (handshake): size the congestion controller's initial window.
    fn set_peer_mss(&mut self, mss: u16) {
        // Our own MSS reflects our MTU: never send more than that either.
        self.peer_mss = mss.clamp(64, self.p.local_mss);
        let smss = self.smss() as u32;
        self.cc
            .restart(smss, (self.p.iw_segments as u32).saturating_mul(smss));
    }

    /// Payload bytes per full-sized segment (peer MSS minus the timestamp option).
    fn smss(&self) -> u16 {
        let ts = if self.has(F_TS) { TS_OVERHEAD } else { 0 };
        self.peer_mss.saturating_sub(ts).max(32)
    }

    fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    fn syn_window(&self) -> u16 {
        self.recvbuf.capacity().min(65535) as u16
    }

    // ---------------------------------------------------------------- application side

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Local address and port.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// Remote address and port.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// CLOSED and nothing left to send: the interface may free it. TIME_WAIT is not closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.pending & P_RST == 0
    }

    /// Why the connection closed (meaningful once [`State::Closed`]).
    pub fn close_reason(&self) -> CloseReason {
        self.close_reason
    }

    /// Queue `data` for sending; returns how much fit in the send buffer.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {}
            State::Closed if self.has(F_WAS_RESET) => return Err(TcpError::Reset),
            _ => return Err(TcpError::Closed),
        }
        if self.has(F_FIN_QUEUED) {
            return Err(TcpError::Closed);
        }
        Ok(self.sendbuf.push(data))
    }

    /// Read in-order data. `Ok(0)` means nothing is available yet.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TcpError> {
        if self.has(F_WAS_RESET) {
            return Err(TcpError::Reset);
        }
        if self.has(F_RD_CLOSED) {
            return Err(TcpError::Closed);
        }
        match self.state {
            State::SynSent | State::SynReceived => return Err(TcpError::NotConnected),
            _ => {}
        }
        if self.recvbuf.readable() > 0 {
            if buf.is_empty() {
                return Ok(0);
            }
            let old_wnd = self.rcv_adv.since(self.rcv_nxt) as usize;
            let n = self.recvbuf.read(buf);
            if !self.has(F_RCV_BULK) {
                self.recvbuf.release_if_empty();
            }
            // Window update (Linux's rule): the advertised window fell to at most half the
            // buffer and could now at least double.
            let new_wnd = self.recvbuf.window();
            let cap = self.recvbuf.capacity();
            let thresh = (cap / 2).min(self.rcv_mss as usize);
            if self.state_receives()
                && old_wnd * 2 <= cap
                && new_wnd >= old_wnd * 2
                && new_wnd - old_wnd >= thresh
            {
                self.pending |= P_ACK;
            }
            return Ok(n);
        }
        if self.has(F_PEER_FIN) {
            return Err(TcpError::Finished);
        }
        if self.state == State::Closed {
            return Err(TcpError::Closed);
        }
        Ok(0)
    }

    /// In-order bytes ready to read.
    pub fn recv_available(&self) -> usize {
        self.recvbuf.readable()
    }

    /// Free space in the send buffer (0 when sending is no longer possible).
    pub fn send_capacity(&self) -> usize {
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
                if !self.has(F_FIN_QUEUED) =>
            {
                self.sendbuf.free()
            }
            _ => 0,
        }
    }

    /// Bytes queued and not yet acknowledged.
    pub fn send_queued(&self) -> usize {
        self.sendbuf.len()
    }

    /// Bytes held out of order (for the interface's global reassembly budget).
    pub fn ooo_bytes(&self) -> usize {
        self.recvbuf.ooo_bytes()
    }

    /// Drop the out-of-order queue (memory pressure). SACK information given to the peer becomes
    /// stale, which RFC 2018 allows (SACK is advisory; the peer keeps the data until ACKed).
    pub fn drop_ooo(&mut self) {
        self.recvbuf.drop_ooo();
        self.flags &= !F_OOO_FIN;
    }

    /// Heap bytes held by this connection's buffers.
    pub fn allocated(&self) -> usize {
        self.sendbuf.allocated()
            + self.recvbuf.allocated()
            + if self.scoreboard.is_some() {
                core::mem::size_of::<Scoreboard>()
            } else {
                0
            }
    }

    /// Send FIN after the queued data (half-close).
    pub fn shutdown_write(&mut self, now: Instant) {
        match self.state {
            State::SynSent => self.enter_closed(CloseReason::Normal),
            State::SynReceived => self.flags |= F_FIN_QUEUED,
            State::Established => {
                self.flags |= F_FIN_QUEUED;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.flags |= F_FIN_QUEUED;
                self.state = State::LastAck;
            }
            _ => {}
        }
        let _ = now;
    }

    /// Close both directions. With unread data pending this aborts with RST (as Linux does).
    pub fn close(&mut self, now: Instant) {
        if self.recvbuf.readable() > 0 && self.state != State::Closed {
            self.abort(now);
            return;
        }
        self.flags |= F_RD_CLOSED;
        self.shutdown_write(now);
        if self.state == State::FinWait2 {
            self.state_at.set(now + dur(self.p.fin_wait2_ms));
        }
    }

    /// Abort: queue a RST (for synchronized states) and go to CLOSED.
    pub fn abort(&mut self, _now: Instant) {
        match self.state {
            State::Closed | State::TimeWait | State::SynSent => {}
            _ => {
                self.rst_seq = self.snd_max;
                self.pending |= P_RST | P_RST_ACK;
            }
        }
        if self.state != State::Closed {
            self.enter_closed(CloseReason::Aborted);
        }
    }

    /// Disable (true) or enable Nagle's algorithm.
    pub fn set_nodelay(&mut self, nodelay: bool) {
        if nodelay {
            self.flags |= F_NODELAY;
        } else {
            self.flags &= !F_NODELAY;
        }
    }

    /// Configure keepalive: (idle, interval, probes), or `None` to disable.
    pub fn set_keepalive(&mut self, ka: Option<(Duration, Duration, u32)>) {
        match ka {
            Some((i, v, n)) => {
                self.p.ka_idle_ms = ms(i).max(1);
                self.p.ka_intvl_ms = ms(v).max(1);
                self.p.ka_probes = n.min(255) as u8;
                if !self.keepalive_at.armed() && self.state == State::Established {
                    self.keepalive_at
                        .set(self.last_send + dur(self.p.ka_idle_ms));
                }
            }
            None => {
                self.p.ka_idle_ms = 0;
                self.keepalive_at.clear();
            }
        }
    }

    /// ICMP "fragmentation needed": clamp the MSS to the path MTU.
    pub fn set_path_mtu(&mut self, mtu: u16) {
        let mss = mtu.saturating_sub(40).max(64);
        if mss < self.peer_mss {
            self.peer_mss = mss;
            self.cc.set_mss(self.smss() as u32);
        }
    }

    /// Transport state snapshot (cheap; no allocation).
    pub fn info(&self) -> ConnInfo {
        ConnInfo {
            state: self.state,
            srtt: self.rtt.srtt(),
            rttvar: self.rtt.rttvar(),
            rto: self.rto(),
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            snd_wnd: self.snd_wnd,
            rcv_wnd: self.rcv_adv.since(self.rcv_nxt),
            bytes_in_flight: self.snd_max.since(self.snd_una),
            send_queued: self.sendbuf.len() as u32,
            recv_available: self.recvbuf.readable() as u32,
            ooo_bytes: self.recvbuf.ooo_bytes() as u32,
            mss: self.smss(),
            retransmits: self.retransmits,
            in_recovery: self.recovery != Recovery::None,
            timestamps: self.has(F_TS),
            sack: self.has(F_SACK),
            window_scale: self.has(F_WS).then_some((self.rcv_shift, self.snd_shift)),
            pacing_rate: self.cc.pacing_rate(),
        }
    }

    /// In TIME_WAIT, whether a new SYN for the same 4-tuple may end this TCB and open a new
    /// connection (RFC 6191: its timestamp is newer than TS.recent, or without timestamps its
    /// sequence number is beyond RCV.NXT). The interface then drops this TCB and accepts.
    pub fn time_wait_accepts_syn(&self, syn: &TcpRepr) -> bool {
        if self.state != State::TimeWait || !syn.flags.syn() || syn.flags.ack() || syn.flags.rst() {
            return false;
        }
        match (
            self.has(F_TS) && self.has(F_TS_RECENT),
            syn.options.timestamps,
        ) {
            (true, Some((tsval, _))) => tsval.wrapping_sub(self.ts_recent) as i32 > 0,
            _ => syn.seq.diff(self.rcv_nxt) > 0,
        }
    }

    /// Smoothed RTT estimate, if any.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// Congestion window in bytes.
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }

    /// Next pending event.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        let e = self.events;
        let (bit, ev) = if e & EV_CONNECTED != 0 {
            (EV_CONNECTED, ConnEvent::Connected)
        } else if e & EV_READABLE != 0 {
            (EV_READABLE, ConnEvent::Readable)
        } else if e & EV_WRITABLE != 0 {
            (EV_WRITABLE, ConnEvent::Writable)
        } else if e & EV_PEER_CLOSED != 0 {
            (EV_PEER_CLOSED, ConnEvent::PeerClosed)
        } else if e & EV_CLOSED != 0 {
            (EV_CLOSED, ConnEvent::Closed(self.close_reason))
        } else {
            return None;
        };
        self.events &= !bit;
        Some(ev)
    }

    // ---------------------------------------------------------------- state helpers

    fn enter_closed(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.close_reason = reason;
        if reason == CloseReason::Reset || reason == CloseReason::Refused {
            self.flags |= F_WAS_RESET;
        }
        self.events |= EV_CLOSED;
        self.pending &= P_RST | P_RST_ACK;
        self.rto_at.clear();
        self.delack_at.clear();
        self.persist_at.clear();
        self.keepalive_at.clear();
        self.state_at.clear();
        self.sendbuf = SendBuffer::new(0);
        if reason != CloseReason::Normal {
            // Unread data stays readable after an orderly close only.
            self.recvbuf = RecvBuffer::new(0);
        } else {
            self.recvbuf.drop_ooo();
            self.recvbuf.release_if_empty();
        }
        self.flags &= !F_RCV_BULK;
        self.scoreboard = None;
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.rto_at.clear();
        self.persist_at.clear();
        self.keepalive_at.clear();
        self.delack_at.clear();
        self.state_at.set(now + dur(self.p.time_wait_ms));
        self.sendbuf = SendBuffer::new(0);
        self.scoreboard = None;
        self.flags &= !F_RCV_BULK;
        self.recvbuf.release_if_empty();
    }

    /// States in which we still accept data.
    fn state_receives(&self) -> bool {
        matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        )
    }

    /// States in which data may be (re)transmitted.
    fn state_sends(&self) -> bool {
        matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        ) && self.has(F_SYN_ACKED)
    }

    fn fin_seq(&self) -> SeqNumber {
        self.snd_una + self.sendbuf.len()
    }

    fn fin_sent(&self) -> bool {
        self.has(F_FIN_SENT)
    }

    fn arm_keepalive(&mut self, now: Instant) {
        if self.p.ka_idle_ms > 0 && self.state == State::Established {
            self.keepalive_at.set(now + dur(self.p.ka_idle_ms));
        }
    }

    fn rto(&self) -> Duration {
        self.rtt.rto(dur(self.p.rto_max_ms))
    }

    fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    fn flight(&self) -> u32 {
        self.snd_nxt.since(self.snd_una)
    }

    /// Bytes in the network: sent, not acknowledged, not SACKed.
    fn in_network(&self) -> u32 {
        let sacked = self
            .scoreboard
            .as_deref()
            .map_or(0, |sb| sb.sacked_below(self.snd_nxt));
        self.flight().saturating_sub(sacked)
    }

    /// End of an ACK with a rate sampler: hand its sample to the congestion control, and note
    /// whether the sender is now application-limited.
    #[inline(never)]
    fn rate_sample(&mut self, now: Instant) {
        let in_network = self.in_network();
        let Some(rate) = self.rate.as_deref_mut() else {
            return;
        };
        if let Some(rs) = rate.take_sample(now, in_network) {
            self.cc.on_rate_sample(now, &rs);
        }
        self.check_app_limited();
    }

    /// Draft-cheng's rule: the sender is application-limited when less than a segment waits
    /// to be sent, nothing waits for retransmission and the window is not full.
    fn check_app_limited(&mut self) {
        let unsent = (self.sendbuf.len() as u32).saturating_sub(self.snd_max.since(self.snd_una));
        let in_network = self.in_network();
        if unsent < self.smss() as u32
            && self.recovery == Recovery::None
            && self.snd_nxt == self.snd_max
            && in_network < self.cc.cwnd()
        {
            if let Some(rate) = self.rate.as_deref_mut() {
                rate.set_app_limited(in_network);
            }
        }
    }

    /// After a data segment of `len` payload bytes left at `now`: the pacer's next departure
    /// time. A connection that was quiet may send a burst of max(2 MSS, 1 ms at the rate),
    /// capped at 64 KiB, at once: that also absorbs the timer wheel's lateness (up to 1 ms).
    fn pace(&mut self, now: Instant, len: usize, rate: u64) {
        let burst = (2 * self.smss() as u64).max(rate / 1000).min(64 * 1024);
        let Some(sampler) = self.rate.as_deref_mut() else {
            return;
        };
        let rate = rate.max(1);
        let ns = |bytes: u64| {
            (bytes as u128 * 1_000_000_000 / rate as u128).min(u64::MAX as u128) as u64
        };
        let now_ns = now.total_micros().saturating_mul(1000);
        let start = sampler.pace_next_ns.max(now_ns.saturating_sub(ns(burst)));
        sampler.pace_next_ns = start.saturating_add(ns(len as u64));
        let until = Instant::from_micros(sampler.pace_next_ns.div_ceil(1000));
        self.pace_until = if until > now {
            until
        } else {
            Instant::from_micros(0)
        };
    }

    /// Whether the pacer holds data segments back at `now`.
    #[inline]
    fn paced(&self, now: Instant) -> bool {
        now < self.pace_until
    }

    /// Answer an unacceptable (or PAWS-failed) segment with a duplicate ACK. Segments carrying
    /// data or FIN are always answered; the others at most every `OOW_ACK_INTERVAL_MS`.
    fn dup_ack_for(&mut self, seg: &TcpRepr, now: Instant) {
        let occupies = (!seg.payload.is_empty() || seg.flags.fin()) && !seg.flags.syn();
        if !occupies {
            let ms = now.total_millis() as u32;
            if self.has(F_OOW_SENT) && ms.wrapping_sub(self.oow_ms) < OOW_ACK_INTERVAL_MS {
                return;
            }
            self.flags |= F_OOW_SENT;
            self.oow_ms = ms;
        }
        self.pending |= P_ACK;
    }

    fn set_dsack(&mut self, start: SeqNumber, end: SeqNumber) {
        if self.has(F_SACK) && end.diff(start) > 0 {
            self.dsack = (start, end);
            self.flags |= F_DSACK;
        }
    }

    /// Challenge ACK, rate-limited per connection (RFC 5961 section 7): at most
    /// `CHALLENGE_ACK_LIMIT` per second, so a blind attacker cannot turn us into an amplifier.
    fn send_challenge_ack(&mut self, now: Instant, stats: &mut TcpStats) {
        let sec = (now.total_millis() / 1000) as u32;
        if sec != self.challenge_sec {
            self.challenge_sec = sec;
            self.challenge_count = 0;
        }
        if self.challenge_count >= CHALLENGE_ACK_LIMIT {
            return;
        }
        self.challenge_count += 1;
        stats.challenge_acks += 1;
        self.pending |= P_ACK;
    }

    // ---------------------------------------------------------------- input

    /// Process one received segment (already matched to this connection by its 4-tuple).
    pub fn handle_segment(&mut self, seg: &TcpRepr, now: Instant, stats: &mut TcpStats) {
        if self.receive_predicted(seg, now, stats) {
            return;
        }
        match self.state {
            State::Closed => {}
            State::SynSent => self.handle_syn_sent(seg, now, stats),
            _ => self.handle_synchronized(seg, now, stats),
        }
    }

    /// Header prediction (Van Jacobson; RFC 9293 leaves the order of checks to the
    /// implementation): the next in-order data segment of an established connection with
    /// nothing of ours in flight, no flags but ACK (and PSH), no SACK blocks, a timestamp that
    /// passes PAWS, and room in the window. Every check of [`Self::handle_synchronized`] has a
    /// known outcome for it, so only its effects are applied: window update, TS.recent, the
    /// keepalive, the data. Returns false (nothing done) for any other segment.
    #[inline]
    fn receive_predicted(&mut self, seg: &TcpRepr, now: Instant, stats: &mut TcpStats) -> bool {
        let control = TcpFlags::SYN.0 | TcpFlags::FIN.0 | TcpFlags::RST.0 | TcpFlags::ACK.0;
        let len = seg.payload.len();
        if self.state != State::Established
            || seg.flags.0 & control != TcpFlags::ACK.0
            || seg.seq != self.rcv_nxt
            || seg.ack != self.snd_una
            || self.snd_una != self.snd_max
            || len == 0
            || len > self.rcv_adv.since(self.rcv_nxt) as usize
            || !seg.options.sack.is_empty()
            || self.flags & (F_RD_CLOSED | F_OOO_FIN) != 0
            || self.recvbuf.ooo_bytes() != 0
        {
            return false;
        }
        let tsval = match seg.options.timestamps {
            Some((tsval, _)) if self.has(F_TS) => {
                // PAWS passes for a TSval not older than TS.recent, whatever its age.
                if self.has(F_TS_RECENT) && (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    return false;
                }
                Some(tsval)
            }
            _ => None,
        };
        // Window update (SND.WL1/WL2), as in `process_ack`; the ACK itself acknowledges
        // nothing new and, with nothing in flight, cannot be a duplicate.
        self.update_send_window(seg);
        if let Some(tsval) = tsval {
            if seg.seq.diff(self.last_ack_sent) <= 0 && self.last_ack_sent.diff(seg.seq + len) <= 0
            {
                self.ts_recent = tsval;
                self.ts_recent_secs = (now.total_millis() / 1000) as u32;
                self.flags |= F_TS_RECENT;
            }
        }
        if self.p.ka_idle_ms > 0 {
            self.ka_sent = 0;
            self.arm_keepalive(now);
        }
        if len >= self.rcv_mss as usize && !seg.flags.psh() {
            self.flags |= F_RCV_BULK;
        } else {
            self.flags &= !F_RCV_BULK;
        }
        self.receive_data(seg.seq, seg.payload, now, stats);
        self.update_persist(now);
        true
    }

    /// RFC 9293 3.10.7.4: take the peer's window from a segment that is newer than the last
    /// window update (SND.WL1/SND.WL2). The ACK must not be older than SND.UNA.
    #[inline(always)]
    fn update_send_window(&mut self, seg: &TcpRepr) {
        let ack = seg.ack;
        if ack.diff(self.snd_una) >= 0
            && (self.snd_wl1.diff(seg.seq) < 0
                || (self.snd_wl1 == seg.seq && self.snd_wl2.diff(ack) <= 0))
        {
            let new_wnd = (seg.window as u32) << self.snd_shift;
            self.snd_wnd = new_wnd;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            if new_wnd > self.max_snd_wnd {
                self.max_snd_wnd = new_wnd;
            }
        }
    }

    fn handle_syn_sent(&mut self, seg: &TcpRepr, now: Instant, stats: &mut TcpStats) {
        let f = seg.flags;
        let mut ack_ok = false;
        if f.ack() {
            if seg.ack.diff(self.iss) <= 0 || seg.ack.diff(self.snd_max) > 0 {
                if !f.rst() {
                    self.rst_seq = seg.ack;
                    self.pending = (self.pending | P_RST) & !P_RST_ACK;
                }
                return;
            }
            ack_ok = true;
        }
        if f.rst() {
            if ack_ok {
                stats.resets_received += 1;
                self.enter_closed(CloseReason::Refused);
            }
            return;
        }
        if !f.syn() {
            return;
        }
        // Our SYN offered these; keep them only if the peer's SYN carries them too.
        let opts = &seg.options;
        if self.has(F_WS) {
            match opts.window_scale {
                Some(ws) => self.snd_shift = ws.min(14),
                None => {
                    self.flags &= !F_WS;
                    self.rcv_shift = 0;
                }
            }
        }
        if self.has(F_TS) {
            match opts.timestamps {
                Some((tsval, _)) => {
                    self.ts_recent = tsval;
                    self.ts_recent_secs = (now.total_millis() / 1000) as u32;
                    self.flags |= F_TS_RECENT;
                }
                None => self.flags &= !F_TS,
            }
        }
        if !opts.sack_permitted {
            self.flags &= !F_SACK;
        }
        self.set_peer_mss(opts.mss.unwrap_or(DEFAULT_PEER_MSS));
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1u32;
        self.rcv_adv = self.rcv_nxt + self.syn_window() as u32;
        self.last_ack_sent = self.rcv_nxt;
        if ack_ok {
            self.snd_una = seg.ack;
            self.flags |= F_SYN_ACKED;
            self.snd_wnd = seg.window as u32; // never scaled in a SYN
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.recover = self.snd_una;
            let sample = self.rtt_sample_on_ack(seg, now);
            self.after_handshake_rto(sample);
            self.retransmits = 0;
            self.rtt.reset_backoff();
            self.rto_at.clear();
            self.state = State::Established;
            self.events |= EV_CONNECTED;
            self.pending = (self.pending | P_ACK) & !P_SYN;
            self.arm_keepalive(now);
            if self.has(F_FIN_QUEUED) {
                self.state = State::FinWait1;
            }
        } else {
            // Simultaneous open (RFC 9293 3.5, figure 8): answer with SYN-ACK.
            self.state = State::SynReceived;
            self.snd_wnd = seg.window as u32;
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = seg.seq;
            self.pending |= P_SYN;
            self.flags &= !F_RTT_TIMING;
        }
    }

    /// RFC 6298 5.7: after a SYN (or SYN-ACK) timed out, start data transfer with RTO >= 3 s
    /// unless a valid sample was taken.
    fn after_handshake_rto(&mut self, sample: Option<Duration>) {
        if self.retransmits > 0 && sample.is_none() && self.rtt.srtt().is_none() {
            let rto = self.rto().max(Duration::from_secs(3));
            self.rtt = RttEstimator::new(rto);
        }
    }

    fn rtt_sample_on_ack(&mut self, seg: &TcpRepr, now: Instant) -> Option<Duration> {
        let min = dur(self.p.rto_min_ms);
        let max = dur(self.p.rto_max_ms);
        // The timed segment gives a microsecond sample; it is preferred, as Linux prefers its own
        // send times. The timestamp echo (a millisecond clock) is the fallback while nothing is
        // timed, i.e. after a retransmission (RFC 7323 section 4: TSecr is unambiguous where
        // Karn's rule discards the timed sample). Taking both would mix 0 ms and 1 ms samples
        // into SRTT on a sub-millisecond path.
        let sample = if self.has(F_RTT_TIMING) {
            if seg.ack.diff(self.rtt_seq) <= 0 {
                return None;
            }
            self.flags &= !F_RTT_TIMING;
            Some(now.saturating_since(self.rtt_time))
        } else if self.has(F_RTT_KARN) {
            self.ts_rtt_sample(seg, now)
        } else {
            // Between a timed sample and the next timed segment: the ACKs of the segments
            // sent in between would give 1 ms samples on a sub-millisecond path.
            None
        };
        if let Some(s) = sample {
            self.rtt.sample(s, min, max);
        }
        sample
    }

    /// Karn's rule: the segment being timed was (or may have been) retransmitted, so its ACK is
    /// ambiguous; the echoed timestamp measures instead until the next segment is timed.
    fn cancel_rtt_timing(&mut self) {
        self.flags = (self.flags & !F_RTT_TIMING) | F_RTT_KARN;
    }

    /// RTT from the echoed timestamp, at least one tick (Linux rounds a 0 ms echo up too: the
    /// true RTT is anywhere below the tick).
    fn ts_rtt_sample(&self, seg: &TcpRepr, now: Instant) -> Option<Duration> {
        if !self.has(F_TS) {
            return None;
        }
        let (_, tsecr) = seg.options.timestamps?;
        if tsecr == 0 {
            return None;
        }
        let d = self.ts_now(now).wrapping_sub(tsecr);
        (d < 0x8000_0000).then(|| Duration::from_millis(u64::from(d.max(1))))
    }

    fn handle_synchronized(&mut self, seg: &TcpRepr, now: Instant, stats: &mut TcpStats) {
        let f = seg.flags;
        // A retransmitted SYN while we wait for the handshake ACK: resend the SYN-ACK.
        if self.state == State::SynReceived
            && f.syn()
            && !f.ack()
            && !f.rst()
            && seg.seq == self.irs
        {
            self.pending |= P_SYN;
            return;
        }
        // PAWS (RFC 7323 section 5.3).
        if self.has(F_TS) && !f.rst() {
            if let Some((tsval, _)) = seg.options.timestamps {
                let age = ((now.total_millis() / 1000) as u32).wrapping_sub(self.ts_recent_secs);
                if self.has(F_TS_RECENT)
                    && age < PAWS_IDLE_SECS
                    && (tsval.wrapping_sub(self.ts_recent) as i32) < 0
                {
                    self.dup_ack_for(seg, now);
                    return;
                }
            }
        }
        // Acceptability (RFC 9293 3.10.7.4 first check).
        let wnd = self.rcv_adv.since(self.rcv_nxt);
        let len = seg.segment_len() as u32;
        let acceptable = match (len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => seg.seq.in_range(self.rcv_nxt, self.rcv_nxt + wnd),
            (_, 0) => false,
            (_, _) => {
                seg.seq.in_range(self.rcv_nxt, self.rcv_nxt + wnd)
                    || (seg.seq + (len - 1)).in_range(self.rcv_nxt, self.rcv_nxt + wnd)
            }
        };
        if !acceptable {
            if wnd == 0 && seg.seq == self.rcv_nxt && f.ack() && !f.rst() && !f.syn() {
                // Our window is closed but the ACK field is still valid (RFC 9293 3.10.7.4):
                // without this, two peers with full buffers would deadlock.
                if !self.process_ack(seg, now, stats) {
                    return;
                }
                self.update_persist(now);
            }
            if !f.rst() {
                self.dup_ack_for(seg, now);
                if !seg.payload.is_empty() && seg.seq.diff(self.rcv_nxt) < 0 {
                    // Old duplicate data: report it (the sender may undo a spurious retransmit).
                    let start = seg.seq + f.syn() as u32;
                    let end = (start + seg.payload.len()).min(self.rcv_nxt);
                    self.set_dsack(start, end);
                }
                if self.state == State::TimeWait && f.fin() {
                    // A retransmitted FIN: our ACK was lost. Re-ACK and restart 2MSL.
                    self.state_at.set(now + dur(self.p.time_wait_ms));
                }
            }
            return;
        }
        // RST (RFC 5961 section 3.2).
        if f.rst() {
            if seg.seq == self.rcv_nxt {
                if self.state == State::TimeWait {
                    // RFC 1337: ignore RSTs in TIME_WAIT (no assassination).
                    return;
                }
                stats.resets_received += 1;
                let reason = match self.state {
                    State::SynReceived => CloseReason::Refused,
                    State::Closing | State::LastAck => CloseReason::Normal,
                    _ => CloseReason::Reset,
                };
                self.enter_closed(reason);
                if reason == CloseReason::Normal {
                    self.flags |= F_WAS_RESET;
                }
            } else {
                self.send_challenge_ack(now, stats);
            }
            return;
        }
        // Trim to the window: the part before RCV.NXT, then past the right edge.
        let mut seq = seg.seq;
        let mut payload = seg.payload;
        let mut syn = f.syn();
        let mut fin = f.fin();
        let before = self.rcv_nxt.since(seq);
        if before > 0 {
            let mut cut = before;
            if syn {
                syn = false;
                cut -= 1;
            }
            let c = (cut as usize).min(payload.len());
            if c > 0 {
                let start = self.rcv_nxt - c as u32;
                self.set_dsack(start, self.rcv_nxt);
            }
            payload = &payload[c..];
            seq = self.rcv_nxt;
            if (cut as usize) > c {
                // Even the FIN is old.
                fin = false;
            }
        }
        let room = self.rcv_adv.since(seq) as usize;
        if payload.len() > room {
            payload = &payload[..room];
            fin = false;
        }
        // SYN in a synchronized state: challenge ACK (RFC 5961 section 4.2).
        if syn {
            self.send_challenge_ack(now, stats);
            return;
        }
        if !f.ack() {
            return;
        }
        // ACK processing.
        if self.state == State::SynReceived {
            if seg.ack.diff(self.snd_una) > 0 && seg.ack.diff(self.snd_max) <= 0 {
                self.flags |= F_SYN_ACKED;
                self.snd_una = seg.ack;
                self.recover = self.snd_una;
                self.snd_wnd = (seg.window as u32) << self.snd_shift;
                self.max_snd_wnd = self.snd_wnd;
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = seg.ack;
                let sample = self.rtt_sample_on_ack(seg, now);
                self.after_handshake_rto(sample);
                self.retransmits = 0;
                self.rtt.reset_backoff();
                self.rto_at.clear();
                self.state = if self.has(F_FIN_QUEUED) {
                    State::FinWait1
                } else {
                    State::Established
                };
                self.events |= EV_CONNECTED;
                self.pending &= !P_SYN;
                self.arm_keepalive(now);
            } else {
                self.rst_seq = seg.ack;
                self.pending = (self.pending | P_RST) & !P_RST_ACK;
                return;
            }
        } else if !self.process_ack(seg, now, stats) {
            return;
        }
        if self.state == State::Closed {
            return;
        }
        // TS.recent update (RFC 7323 section 4.3).
        if self.has(F_TS) {
            if let Some((tsval, _)) = seg.options.timestamps {
                if seg.seq.diff(self.last_ack_sent) <= 0
                    && self.last_ack_sent.diff(seg.seq + len) <= 0
                {
                    self.ts_recent = tsval;
                    self.ts_recent_secs = (now.total_millis() / 1000) as u32;
                    self.flags |= F_TS_RECENT;
                }
            }
        }
        if self.p.ka_idle_ms > 0 {
            self.ka_sent = 0;
            self.arm_keepalive(now);
        }
        // Data.
        if !payload.is_empty() && self.state_receives() {
            if self.has(F_RD_CLOSED) {
                // Data for a socket nobody will read: reset, as Linux does.
                self.abort(now);
                return;
            }
            if payload.len() >= self.rcv_mss as usize && !f.psh() {
                self.flags |= F_RCV_BULK;
            } else {
                self.flags &= !F_RCV_BULK;
            }
            self.receive_data(seq, payload, now, stats);
        }
        // FIN.
        if fin {
            let fseq = seq + payload.len();
            if self.state_receives() || self.state == State::SynReceived {
                if fseq == self.rcv_nxt {
                    self.process_fin(now);
                } else if fseq.diff(self.rcv_nxt) > 0 {
                    self.ooo_fin = fseq;
                    self.flags |= F_OOO_FIN;
                    self.pending |= P_ACK;
                }
            } else if self.state == State::TimeWait {
                self.pending |= P_ACK;
                self.state_at.set(now + dur(self.p.time_wait_ms));
            }
        }
        self.update_persist(now);
    }

    /// ACK processing for synchronized states. Returns false when the segment must be dropped.
    fn process_ack(&mut self, seg: &TcpRepr, now: Instant, stats: &mut TcpStats) -> bool {
        let ack = seg.ack;
        if ack.diff(self.snd_max) > 0 {
            // Acknowledges something never sent (RFC 5961 5.2: challenge ACK).
            self.send_challenge_ack(now, stats);
            return false;
        }
        let bound = self.max_snd_wnd.max(65535);
        if self.snd_una.diff(ack) > bound as i32 {
            // Far too old (RFC 5961 5.2).
            self.send_challenge_ack(now, stats);
            return false;
        }
        // What PRR's DeliveredData is measured against.
        let sacked_before = self
            .scoreboard
            .as_deref()
            .map_or(0, Scoreboard::sacked_bytes);
        let inflation_before = self.inflation;
        let mut acked = 0;
        let mut dupack = false;
        // SACK blocks (RFC 2018/6675).
        let mut sack_new = false;
        let mut dsack = None;
        if self.has(F_SACK) && !seg.options.sack.is_empty() {
            stats.sack_blocks_received += seg.options.sack.len as u64;
            let una = self.snd_una;
            let max = self.snd_max;
            let sb = self.scoreboard.get_or_insert_with(Default::default);
            let before = sacked_before;
            // The rate sampler needs what was SACKed before this ACK (at most 16 ranges).
            let mut earlier = [(SeqNumber(0), SeqNumber(0)); MAX_SACK_RANGES];
            let n_earlier = if self.rate.is_some() {
                let r = sb.ranges();
                earlier[..r.len()].copy_from_slice(r);
                r.len()
            } else {
                0
            };
            let blocks = seg.options.sack.as_slice();
            for &(l, r) in blocks {
                sb.add(una, max, l, r);
            }
            // D-SACK (RFC 2883 section 4): the first block lies below the cumulative ACK or
            // inside the second block.
            let (l0, r0) = blocks[0];
            if l0.diff(ack) < 0
                || blocks
                    .get(1)
                    .is_some_and(|&(l1, r1)| l0.diff(l1) >= 0 && r0.diff(r1) <= 0)
            {
                dsack = Some((l0, r0));
            }
            sack_new = sb.sacked_bytes() != before;
            if let (true, Some(rate)) = (sack_new, self.rate.as_deref_mut()) {
                for &block in seg.options.sack.as_slice() {
                    rate.on_sack_block(&earlier[..n_earlier], block, sb, now);
                }
            }
            if sb.is_idle() {
                self.scoreboard = None;
            }
        }
        if let Some((l, r)) = dsack {
            self.on_dsack(l, r, now, stats);
        }
        let flight_before = self.flight();
        let new_wnd = (seg.window as u32) << self.snd_shift;
        if ack.diff(self.snd_una) > 0 {
            acked = ack.since(self.snd_una);
            let data_acked = (acked as usize).min(self.sendbuf.len());
            self.sendbuf.consume(data_acked);
            self.snd_una = ack;
            if let Some(rate) = self.rate.as_deref_mut() {
                rate.on_cumulative_ack(ack, now);
            }
            if self.snd_nxt.diff(ack) < 0 {
                self.snd_nxt = ack;
            }
            let sample = self.rtt_sample_on_ack(seg, now);
            if self.has(F_UNDO_TS) {
                self.eifel_check(seg, now, stats);
            }
            self.retransmits = 0;
            self.rtt.reset_backoff();
            if let Some(sb) = self.scoreboard.as_mut() {
                sb.advance(ack);
                // A SACKed range starting exactly at the new SND.UNA means the receiver threw
                // SACKed data away (reneging): forget the scoreboard, HighRxt with it. Kept
                // while retransmissions are outstanding, so HighRxt outlives the episode.
                if sb.is_idle() || sb.ranges().first().is_some_and(|r| r.0 == ack) {
                    self.scoreboard = None;
                }
            }
            if data_acked > 0 {
                self.events |= EV_WRITABLE;
            }
            match self.recovery {
                Recovery::None => {
                    self.cc.on_ack(now, acked, sample, flight_before);
                }
                _ if ack.diff(self.recover) >= 0 => {
                    self.recovery = Recovery::None;
                    self.inflation = 0;
                    self.flags &= !(F_RTX_UNA | F_PRR);
                    if self.has(F_UNDO_DEFER) {
                        self.undo(now, stats);
                    } else {
                        self.cc.on_recovery_exit(now);
                    }
                }
                Recovery::NewReno => {
                    // Partial ACK (RFC 6582 3.2 step 5): retransmit the next hole, deflate.
                    self.flags |= F_RTX_UNA;
                    self.inflation = self.inflation.saturating_sub(acked) + self.smss() as u32;
                }
                Recovery::Sack => {
                    // HighRxt follows SND.UNA in the scoreboard's `advance`.
                }
            }
            self.dupacks = 0;
            self.flags &= !(F_TLP_OUT | F_TLP_RTX);
            if self.snd_una == self.snd_max {
                self.rto_at.clear();
                self.flags &= !F_PTO;
            } else {
                self.arm_retransmit_timer(now);
            }
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.flags.fin()
            && new_wnd == self.snd_wnd
            && self.snd_max != self.snd_una
            && (!self.has(F_SACK) || sack_new)
        {
            // Duplicate ACK (RFC 5681 section 2). With SACK only ACKs that SACK new data count
            // (RFC 6675 section 2), so duplicates caused by our own spurious retransmissions
            // do not trigger another recovery.
            self.dupacks = self.dupacks.saturating_add(1);
            dupack = true;
            if self.recovery == Recovery::NewReno {
                self.inflation += self.smss() as u32;
            }
        }
        // Window update (RFC 9293 3.10.7.4, SND.WL1/WL2).
        self.update_send_window(seg);
        // Enter loss recovery.
        if self.recovery == Recovery::None && self.snd_max != self.snd_una {
            let mss = self.smss() as u32;
            if self.has(F_TLP_OUT) && ack == self.snd_una {
                // The tail loss probe was answered without advancing SND.UNA: the holes below
                // the highest SACKed byte were sent more than a PTO ago and are lost, earlier
                // retransmissions of them included (else a lost one waits for the RTO).
                if let Some(sb) = self.scoreboard.as_mut() {
                    if let Some(h) = sb.high_sacked() {
                        sb.mark_lost_below(h);
                        sb.forget_retransmissions();
                        sack_new = true;
                    }
                }
            }
            let sack_lost = self
                .scoreboard
                .as_ref()
                .is_some_and(|sb| sb.loss_boundary(self.snd_una, mss) != self.snd_una);
            let trigger = self.dupacks >= 3 || (sack_new && sack_lost);
            if trigger && self.snd_una.diff(self.recover) >= 0 {
                self.recover = self.snd_max;
                self.cc.on_congestion_event(now, self.flight());
                self.start_undo_episode(false);
                self.cancel_rtt_timing();
                self.flags &= !F_TLP_RTX;
                if self.has(F_PTO) {
                    self.flags &= !F_PTO;
                    self.rto_at.set(now + self.rto());
                }
                if let (true, Some(sb)) = (self.has(F_SACK), self.scoreboard.as_deref_mut()) {
                    self.recovery = Recovery::Sack;
                    sb.start_episode();
                    stats.sack_recoveries += 1;
                } else {
                    self.recovery = Recovery::NewReno;
                    self.flags |= F_RTX_UNA;
                    self.inflation = 3 * mss;
                    stats.fast_recoveries += 1;
                }
                if !self.cc.wants_rate_samples() {
                    self.start_prr();
                }
            }
        }
        if self.recovery != Recovery::None {
            if sack_new && self.recovery == Recovery::Sack {
                self.detect_lost_retransmissions(stats);
            }
            if self.has(F_PRR) {
                self.prr_on_ack(acked, sacked_before, inflation_before, dupack);
            }
        }
        if self.rate.is_some() {
            self.rate_sample(now);
        }
        // State transitions on the ACK of our FIN.
        let fin_acked = self.fin_sent() && self.snd_una == self.snd_max;
        match self.state {
            State::FinWait1 if fin_acked => {
                self.state = State::FinWait2;
                self.rto_at.clear();
                if self.has(F_RD_CLOSED) {
                    self.state_at.set(now + dur(self.p.fin_wait2_ms));
                }
            }
            State::Closing if fin_acked => self.enter_time_wait(now),
            State::LastAck if fin_acked => {
                self.enter_closed(CloseReason::Normal);
                return false;
            }
            State::TimeWait => {
                // Nothing new can be acknowledged here; the FIN check below re-ACKs.
            }
            _ => {}
        }
        true
    }

    /// A loss-recovery episode (`rto == false`) or a first retransmission timeout starts: it
    /// may be undone later if its retransmissions prove spurious. The congestion control saved
    /// its prior state in the hook that cut the window. Out of line: recovery only.
    #[cold]
    #[inline(never)]
    fn start_undo_episode(&mut self, rto: bool) {
        self.flags &= !(F_UNDO | F_UNDO_TS | F_UNDO_RTO | F_UNDO_NODSACK | F_UNDO_DEFER);
        if !self.has(F_UNDO_ON) || self.cc.wants_rate_samples() {
            // BBR: loss does not cut its model, and its recovery ends by its own rules.
            return;
        }
        self.flags |= F_UNDO | if rto { F_UNDO_RTO } else { 0 };
        self.undo_marker = self.snd_una;
        self.undo_retrans = 0;
    }

    /// A segment starting at `seq` was retransmitted in the undoable episode: count it for
    /// D-SACK detection, and arm Eifel detection with the TSval of the first one. Only if that
    /// one starts at SND.UNA: then the first ACK advancing SND.UNA is for it, and echoes its
    /// TSval unless the original got there first. (A SACK episode may first resend a higher
    /// hole while the one at SND.UNA waits for an earlier retransmission; the ACK for that
    /// would echo an older TSval without saying anything about ours.)
    #[cold]
    #[inline(never)]
    fn undo_on_retransmit(&mut self, seq: SeqNumber, now: Instant) {
        self.flags &= !F_UNDO_DEFER;
        if self.undo_retrans == 0 && self.has(F_TS) && seq == self.snd_una {
            self.undo_tsval = self.ts_now(now);
            self.flags |= F_UNDO_TS;
        }
        match self.undo_retrans.checked_add(1) {
            Some(n) => self.undo_retrans = n,
            None => self.flags |= F_UNDO_NODSACK,
        }
    }

    /// Eifel detection (RFC 3522): the first ACK advancing SND.UNA after the episode's first
    /// retransmission. If it echoes a TSecr older than that retransmission's TSval, the ACK
    /// was for the original transmission: the retransmission was spurious.
    #[cold]
    #[inline(never)]
    fn eifel_check(&mut self, seg: &TcpRepr, now: Instant, stats: &mut TcpStats) {
        self.flags &= !F_UNDO_TS;
        if let Some((_, tsecr)) = seg.options.timestamps {
            if tsecr != 0 && (self.undo_tsval.wrapping_sub(tsecr) as i32) > 0 {
                self.undo(now, stats);
            }
        }
    }

    /// A D-SACK block `[l, r)` arrived (RFC 2883): the peer received that data twice. Inside
    /// the undoable episode it reports a spurious retransmission (RFC 3708); when every
    /// retransmission of the episode has been reported, the episode is undone.
    #[cold]
    #[inline(never)]
    fn on_dsack(&mut self, l: SeqNumber, r: SeqNumber, now: Instant, stats: &mut TcpStats) {
        stats.dsack_blocks_received += 1;
        if !self.has(F_UNDO)
            || self.has(F_UNDO_NODSACK)
            || self.undo_retrans == 0
            || l.diff(self.undo_marker) < 0
            // Only duplicates of data already cumulatively acknowledged count, as in Linux: a
            // D-SACK above SND.UNA reports a copy the network made of data not yet delivered
            // in order, which says nothing about whether a retransmission was needed.
            || r.diff(self.snd_una) > 0
            || r.diff(self.snd_max) > 0
            || r.diff(l) <= 0
        {
            return;
        }
        let mss = self.smss().max(1) as u32;
        let segs = r.since(l).div_ceil(mss).min(255) as u8;
        self.undo_retrans = self.undo_retrans.saturating_sub(segs);
        if self.undo_retrans == 0 {
            self.undo(now, stats);
        }
    }

    /// The undoable episode was spurious: restore the congestion state from before it
    /// (RFC 4015's response, Linux's undo), leave recovery, and after a timeout stop resending
    /// what was not lost (the goal of F-RTO, RFC 5682): new data goes next.
    #[cold]
    #[inline(never)]
    fn undo(&mut self, now: Instant, stats: &mut TcpStats) {
        if self.recovery != Recovery::None {
            if self.snd_una.diff(self.recover) < 0 {
                // A partial ACK: holes may remain, and leaving recovery now would leave them
                // to the retransmission timer. Undo when recovery ends (process_ack).
                self.flags |= F_UNDO_DEFER;
                return;
            }
            self.recovery = Recovery::None;
            self.inflation = 0;
            self.flags &= !(F_RTX_UNA | F_PRR);
        }
        self.cc.on_spurious_congestion_event(now);
        if self.has(F_UNDO_RTO) {
            stats.undos_rto += 1;
            if self.snd_nxt.diff(self.snd_max) < 0 {
                // F-RTO's goal (RFC 5682): what was sent before the timeout got there; send
                // new data instead of resending it. Fast retransmit is allowed again (one
                // segment was resent, so there are no go-back-N duplicates to guard against).
                self.snd_nxt = self.snd_max;
                self.recover = self.snd_una;
            }
        } else {
            stats.undos_recovery += 1;
        }
        self.flags &= !(F_UNDO | F_UNDO_TS | F_UNDO_RTO | F_UNDO_NODSACK | F_UNDO_DEFER);
    }

    /// Recovery has just started under a loss-based congestion control: PRR paces it
    /// (RFC 6937 section 3, RecoverFS = pipe as RFC 9937 has it). The first segment, the fast
    /// retransmission, may always go. Out of line: recovery only.
    #[cold]
    #[inline(never)]
    fn start_prr(&mut self) {
        let mss = self.seg_mss();
        self.flags |= F_PRR;
        self.prr = Prr {
            // At least ssthresh (Linux divides by the cwnd before the cut, which always is):
            // with most of the flight SACKed, pipe can start near zero, and dividing by it
            // let one ACK release hundreds of kilobytes (found by the tcp_connection fuzzer).
            recover_fs: self.recovery_pipe(mss).max(self.cc.ssthresh()).max(1),
            delivered: 0,
            out: 0,
            sndcnt: mss,
        };
    }

    /// PRR on an ACK during recovery (the one that started it included): count what it
    /// reports delivered and work out how much may be sent now (sndcnt). With SACK,
    /// DeliveredData is the advance of SND.UNA plus the change in SACKed bytes; without, it
    /// is estimated (RFC 6937 section 3): one MSS per duplicate ACK, and on a partial ACK the
    /// advance of SND.UNA less what the duplicate ACKs already counted (`inflation` before this
    /// ACK), but at least the segment that filled the hole. Out of line: recovery only.
    #[cold]
    #[inline(never)]
    fn prr_on_ack(&mut self, acked: u32, sacked_before: u32, inflation_before: u32, dupack: bool) {
        let mss = self.seg_mss();
        let delivered = if self.recovery == Recovery::Sack {
            let sacked = self
                .scoreboard
                .as_deref()
                .map_or(0, Scoreboard::sacked_bytes);
            acked.saturating_add(sacked).saturating_sub(sacked_before)
        } else if acked > 0 {
            acked.saturating_sub(inflation_before).max(acked.min(mss))
        } else if dupack {
            mss
        } else {
            0
        };
        if delivered == 0 {
            // Nothing left the network: the allowance stands (RFC 9937).
            return;
        }
        let ssthresh = self.cc.ssthresh();
        let pipe = self.recovery_pipe(mss);
        let prr = &mut self.prr;
        prr.delivered = prr.delivered.saturating_add(delivered);
        let sndcnt = if pipe > ssthresh {
            // Proportional: by the time RecoverFS is delivered, ssthresh has been sent.
            let due = (u64::from(prr.delivered) * u64::from(ssthresh))
                .div_ceil(u64::from(prr.recover_fs));
            u32::try_from(due)
                .unwrap_or(u32::MAX)
                .saturating_sub(prr.out)
        } else {
            // PRR-SSRB: pipe fell below ssthresh (more losses than the reduction asked for):
            // catch up, at most one MSS beyond what was delivered, like slow start.
            let bound = prr
                .delivered
                .saturating_sub(prr.out)
                .max(delivered)
                .saturating_add(mss);
            (ssthresh - pipe).min(bound)
        };
        // Never more than ssthresh at once, whatever the peer's SACK blocks claim.
        let sndcnt = sndcnt.min(ssthresh);
        // The fast retransmission goes whatever the arithmetic says (Linux does the same).
        prr.sndcnt = if prr.out == 0 {
            sndcnt.max(mss)
        } else {
            sndcnt
        };
    }

    /// Bytes in the network during loss recovery: RFC 6675 pipe with SACK (retransmissions
    /// judged lost are not in the network), else the flight less what duplicate ACKs reported
    /// delivered (`inflation`).
    fn recovery_pipe(&self, mss: u32) -> u32 {
        let una = self.snd_una;
        match (self.recovery, self.scoreboard.as_deref()) {
            (Recovery::Sack, Some(sb)) => sb
                .pipe(una, self.snd_max, sb.high_rxt(una), mss)
                .saturating_sub(sb.lost_retransmission_bytes(una)),
            (Recovery::Sack, None) => self.snd_max.since(una),
            _ => self.flight().saturating_sub(self.inflation),
        }
    }

    /// Payload bytes per data segment: the MSS less the room SACK blocks take in the header.
    fn seg_mss(&self) -> u32 {
        (self.smss() as u32)
            .saturating_sub(self.sack_overhead())
            .max(1)
    }

    /// Mark the watched SACK-recovery retransmissions that new SACK information shows lost;
    /// [`Self::next_data_general`] sends them again first. Out of line: recovery only.
    #[cold]
    #[inline(never)]
    fn detect_lost_retransmissions(&mut self, stats: &mut TcpStats) {
        let mss = self.smss() as u32;
        if let Some(sb) = self.scoreboard.as_deref_mut() {
            if sb.watching() {
                stats.lost_retransmissions +=
                    sb.detect_lost_retransmissions(self.snd_una, mss) as u64;
            }
        }
    }

    fn receive_data(&mut self, seq: SeqNumber, payload: &[u8], now: Instant, stats: &mut TcpStats) {
        let plen = payload.len().min(u16::MAX as usize) as u16;
        if plen > self.rcv_mss {
            self.rcv_mss = plen.min(self.p.local_mss);
        }
        let had_ooo = self.recvbuf.ooo_bytes() > 0;
        let out = self
            .recvbuf
            .insert(self.rcv_nxt, seq, payload, self.p.ooo_budget as usize);
        if out.queued_ooo {
            stats.ooo_segments += 1;
        }
        if out.advanced > 0 {
            self.rcv_nxt = self.rcv_nxt + out.advanced;
            self.events |= EV_READABLE;
            self.unacked_bytes += out.advanced as u32;
            if self.has(F_OOO_FIN) && self.ooo_fin == self.rcv_nxt {
                self.flags &= !F_OOO_FIN;
                self.process_fin(now);
                return;
            }
        }
        if out.queued_ooo || out.dropped || out.filled_hole || had_ooo {
            // Out of order, or filling a hole: ACK at once (RFC 5681 4.2).
            self.pending |= P_ACK;
        } else if out.advanced > 0 {
            if self.quickacks > 0 {
                self.quickacks -= 1;
                self.pending |= P_ACK;
            } else if self.unacked_bytes >= 2 * self.rcv_mss as u32 {
                self.pending |= P_ACK;
            } else if !self.delack_at.armed() {
                self.delack_at.set(now + dur(self.p.delack_ms));
            }
        }
    }

    fn process_fin(&mut self, now: Instant) {
        self.rcv_nxt = self.rcv_nxt + 1u32;
        self.flags |= F_PEER_FIN;
        self.flags &= !F_OOO_FIN;
        self.pending |= P_ACK;
        self.events |= EV_PEER_CLOSED | EV_READABLE;
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 => {
                if self.fin_sent() && self.snd_una == self.snd_max {
                    self.enter_time_wait(now);
                } else {
                    self.state = State::Closing;
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    /// Arm or clear the persist timer (zero-window probing) after the send side changed.
    /// Inlined for the common case, nothing queued to send (every segment of a receiver).
    #[inline(always)]
    fn update_persist(&mut self, now: Instant) {
        if self.sendbuf.is_empty() && self.state_sends() {
            // What the general path does with nothing unsent.
            self.persist_at.clear();
            self.persist_backoff = 0;
        } else {
            self.update_persist_general(now);
        }
    }

    #[inline(never)]
    fn update_persist_general(&mut self, now: Instant) {
        if !self.state_sends() {
            self.persist_at.clear();
            return;
        }
        let unsent = self
            .sendbuf
            .len()
            .saturating_sub(self.snd_nxt.since(self.snd_una) as usize);
        if unsent > 0 && self.snd_una == self.snd_max && self.next_data().is_none() {
            if !self.persist_at.armed() {
                let d = self.rto().max(dur(self.p.rto_min_ms));
                self.persist_at.set(now + d);
            }
        } else if self.snd_wnd > 0 || unsent == 0 {
            self.persist_at.clear();
            self.persist_backoff = 0;
        }
    }

    // ---------------------------------------------------------------- output

    /// Receive window to advertise (unscaled bytes) applying receiver SWS avoidance and never
    /// moving the right edge left. Updates RCV.ADV.
    fn advertise_window(&mut self) -> u16 {
        let cap = self.recvbuf.capacity() as u32;
        let avail = self.recvbuf.window() as u32;
        let cur = self.rcv_adv.since(self.rcv_nxt);
        let mut wnd = avail;
        // RFC 9293 3.8.6.2.2: move the right edge only by min(buffer/2, MSS) or more.
        let thresh = (cap / 2).min(self.rcv_mss as u32);
        if wnd > cur && wnd - cur < thresh {
            wnd = cur;
        }
        if wnd < cur {
            wnd = cur; // never shrink
        }
        let shift = self.rcv_shift as u32;
        let max = 65535u32 << shift;
        wnd = wnd.min(max);
        // Round up when keeping an edge so scaling never shrinks it.
        let field = if wnd == cur {
            (wnd + (1 << shift) - 1) >> shift
        } else {
            wnd >> shift
        }
        .min(65535);
        self.rcv_adv = self.rcv_nxt + (field << shift);
        field as u16
    }

    #[inline(always)]
    fn header(&mut self, now: Instant, flags: TcpFlags, seq: SeqNumber) -> TcpRepr<'static> {
        let mut options = TcpOptions::default();
        if self.has(F_TS) {
            options.timestamps = Some((
                self.ts_now(now),
                if self.has(F_TS_RECENT) {
                    self.ts_recent
                } else {
                    0
                },
            ));
        }
        let mut repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq,
            ack: SeqNumber(0),
            flags,
            window: 0,
            urgent: 0,
            options,
            payload: &[],
        };
        if flags.ack() {
            repr.ack = self.rcv_nxt;
            repr.window = self.advertise_window();
            self.last_ack_sent = self.rcv_nxt;
            if self.has(F_SACK) {
                if self.has(F_DSACK) {
                    // RFC 2883: the duplicate range goes first, once.
                    self.flags &= !F_DSACK;
                    repr.options.sack.push(self.dsack.0, self.dsack.1);
                }
                if self.recvbuf.ooo_bytes() > 0 {
                    let mut blocks = [(SeqNumber(0), SeqNumber(0)); 4];
                    let n = self.recvbuf.sack_blocks(4, &mut blocks);
                    for &(l, r) in &blocks[..n] {
                        repr.options.sack.push(l, r);
                    }
                }
            }
        }
        repr
    }

    /// Bytes the SACK option will take in the next ACK-bearing segment.
    fn sack_overhead(&self) -> u32 {
        if !self.has(F_SACK) {
            return 0;
        }
        let mut n = self.has(F_DSACK) as u32;
        if self.recvbuf.ooo_bytes() > 0 {
            let mut blocks = [(SeqNumber(0), SeqNumber(0)); 4];
            n += self.recvbuf.sack_blocks(4, &mut blocks) as u32;
        }
        let max = if self.has(F_TS) { 3 } else { 4 };
        let n = n.min(max);
        if n == 0 {
            0
        } else {
            4 + 8 * n
        }
    }

    #[inline(always)]
    fn emit(
        &self,
        repr: &TcpRepr,
        buf: &mut [u8],
        payload_off: usize,
        payload_len: usize,
        stats: &mut TcpStats,
    ) -> Option<usize> {
        let hl = repr.header_len();
        if buf.len() < hl + payload_len {
            return None;
        }
        repr.emit_header(buf);
        let n = if payload_len == 0 {
            0
        } else {
            self.sendbuf
                .copy_out(payload_off, &mut buf[hl..hl + payload_len])
        };
        let total = hl + n;
        if self.has(F_CSUM_TX) {
            TcpRepr::fill_checksum(&mut buf[..total], *self.local.ip(), *self.remote.ip());
        }
        stats.sack_blocks_sent += repr.options.sack_blocks_emitted() as u64;
        Some(total)
    }

    /// Whether the next ACK-bearing segment carries SACK blocks (then it needs the general
    /// [`Self::header`] / [`Self::emit`] path; every other segment takes [`Self::emit_plain`]).
    #[inline(always)]
    fn sack_due(&self) -> bool {
        self.has(F_SACK) && (self.has(F_DSACK) || self.recvbuf.ooo_bytes() > 0)
    }

    /// Header length of a segment without SACK blocks: 20, plus the timestamp option.
    #[inline(always)]
    fn plain_header_len(&self) -> usize {
        if self.has(F_TS) {
            32
        } else {
            20
        }
    }

    /// [`Self::header`] followed by [`Self::emit`] for a segment without SACK blocks (the
    /// caller checked [`Self::sack_due`]): the same bytes and the same effects, written straight
    /// from the connection's fields (fixed layout: the 20-byte header, then NOP, NOP, TS when
    /// timestamps are on), with the checksum started from the cached pseudo-header sum. Every
    /// pure ACK and every bulk data segment takes this path. `BARE`: a segment without payload
    /// (`payload_len` 0), whose header is checksummed as fixed-size words.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn emit_plain<const BARE: bool>(
        &mut self,
        now: Instant,
        flags: TcpFlags,
        seq: SeqNumber,
        buf: &mut [u8],
        payload_off: usize,
        payload_len: usize,
    ) -> Option<usize> {
        debug_assert!(!self.sack_due());
        debug_assert!(!BARE || payload_len == 0);
        let ts = self.has(F_TS);
        let hl = self.plain_header_len();
        let (ack, window) = if flags.ack() {
            let window = self.advertise_window();
            self.last_ack_sent = self.rcv_nxt;
            (self.rcv_nxt, window)
        } else {
            (SeqNumber(0), 0)
        };
        if buf.len() < hl + payload_len {
            return None;
        }
        let mut h = [0u8; 32];
        h[0..2].copy_from_slice(&self.local.port().to_be_bytes());
        h[2..4].copy_from_slice(&self.remote.port().to_be_bytes());
        h[4..8].copy_from_slice(&seq.0.to_be_bytes());
        h[8..12].copy_from_slice(&ack.0.to_be_bytes());
        h[12] = ((hl / 4) as u8) << 4;
        h[13] = flags.0;
        h[14..16].copy_from_slice(&window.to_be_bytes());
        if ts {
            let ecr = if self.has(F_TS_RECENT) {
                self.ts_recent
            } else {
                0
            };
            // NOP, NOP, kind 8, length 10 (Linux's layout, as `TcpOptions::emit`).
            h[20..24].copy_from_slice(&[1, 1, 8, 10]);
            h[24..28].copy_from_slice(&self.ts_now(now).to_be_bytes());
            h[28..32].copy_from_slice(&ecr.to_be_bytes());
            buf[..32].copy_from_slice(&h);
        } else {
            buf[..20].copy_from_slice(&h[..20]);
        }
        let n = if payload_len == 0 {
            0
        } else {
            self.sendbuf
                .copy_out(payload_off, &mut buf[hl..hl + payload_len])
        };
        let total = hl + n;
        if self.has(F_CSUM_TX) {
            let initial = self.pseudo_sum + total as u32;
            // A bare header (every pure ACK) is summed as fixed-size words: `buf` holds the
            // bytes of `h` (its checksum field still zero). Decided at compile time, so a data
            // segment's path does not keep `h` alive or test for it.
            let folded = match (BARE, ts) {
                (true, true) => checksum::fold(checksum::sum_header(&h, initial)),
                (true, false) => checksum::fold(checksum::sum_header::<20>(
                    h[..20].try_into().unwrap(),
                    initial,
                )),
                (false, _) => checksum::fold_with_initial(&buf[..total], initial),
            };
            buf[16..18].copy_from_slice(&(!folded).to_be_bytes());
        }
        Some(total)
    }

    /// A segment without payload (ACK, FIN, probe) at `seq`: the plain writer unless SACK blocks
    /// are due.
    #[inline(always)]
    fn emit_bare(
        &mut self,
        now: Instant,
        flags: TcpFlags,
        seq: SeqNumber,
        buf: &mut [u8],
        stats: &mut TcpStats,
    ) -> Option<usize> {
        if self.sack_due() {
            let repr = self.header(now, flags, seq);
            self.emit(&repr, buf, 0, 0, stats)
        } else {
            self.emit_plain::<true>(now, flags, seq, buf, 0, 0)
        }
    }

    fn ack_sent(&mut self) {
        self.pending &= !P_ACK;
        self.delack_at.clear();
        self.unacked_bytes = 0;
    }

    /// A bare FIN is due: all data sent, the FIN not (or, after an RTO, no longer) counted in
    /// SND.NXT.
    fn bare_fin_due(&self) -> bool {
        self.has(F_FIN_QUEUED) && self.state_sends() && self.snd_nxt == self.fin_seq()
    }

    /// Whether [`Connection::poll_control`] has a segment to write now. Several control
    /// segments can be due at once (e.g. a FIN and a window probe), so callers should call
    /// `poll_control` until it returns `None`, or re-queue the connection while this is true.
    pub fn control_ready(&self) -> bool {
        if self.pending & P_RST != 0 {
            return true;
        }
        match self.state {
            State::Closed => false,
            State::SynSent => self.pending & P_SYN != 0,
            State::SynReceived => self.pending & (P_SYN | P_ACK) != 0,
            _ => self.pending & (P_ACK | P_WPROBE | P_KEEPALIVE) != 0 || self.bare_fin_due(),
        }
    }

    /// Write the next due control segment into `buf` (complete with checksum); returns its
    /// length. Call repeatedly until `None`.
    pub fn poll_control(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        stats: &mut TcpStats,
    ) -> Option<usize> {
        if buf.len() < 60 {
            return None;
        }
        // Data queued by send() into a closed window needs the persist timer.
        if !self.persist_at.armed() {
            self.update_persist(now);
        }
        if self.pending & P_RST != 0 {
            let with_ack = self.pending & P_RST_ACK != 0;
            self.pending &= !(P_RST | P_RST_ACK);
            let mut repr = TcpRepr {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: self.rst_seq,
                ack: SeqNumber(0),
                flags: TcpFlags::RST,
                window: 0,
                urgent: 0,
                options: TcpOptions::default(),
                payload: &[],
            };
            if with_ack {
                repr.flags = TcpFlags::RST | TcpFlags::ACK;
                repr.ack = self.rcv_nxt;
            }
            stats.resets_sent += 1;
            return self.emit(&repr, buf, 0, 0, stats);
        }
        match self.state {
            State::Closed => {
                self.pending = 0;
                return None;
            }
            State::SynSent | State::SynReceived => {
                if self.pending & P_SYN != 0 {
                    self.pending &= !(P_SYN | P_ACK);
                    return self.emit_syn(now, buf, stats);
                }
                if self.state == State::SynSent {
                    self.pending &= !P_ACK;
                    return None;
                }
            }
            _ => {}
        }
        if self.bare_fin_due() {
            let retx = self.snd_max.diff(self.snd_nxt) > 0;
            self.flags |= F_FIN_SENT;
            let seq = self.snd_nxt;
            self.snd_nxt = seq + 1u32;
            if self.snd_max.diff(self.snd_nxt) < 0 {
                self.snd_max = self.snd_nxt;
            }
            if retx {
                stats.retransmitted_segments += 1;
                if self.has(F_UNDO) {
                    self.undo_on_retransmit(seq, now);
                }
            }
            if !self.rto_at.armed() {
                self.rto_at.set(now + self.rto());
            }
            self.ack_sent();
            self.last_send = now;
            // Nothing above changes what the header is built from (the receive side).
            return self.emit_bare(now, TcpFlags::FIN | TcpFlags::ACK, seq, buf, stats);
        }
        if self.pending & P_WPROBE != 0 {
            self.pending &= !P_WPROBE;
            stats.window_probes += 1;
            // An old sequence number elicits an ACK with the current window (Linux style).
            self.ack_sent();
            return self.emit_bare(now, TcpFlags::ACK, self.snd_una - 1u32, buf, stats);
        }
        if self.pending & P_KEEPALIVE != 0 {
            self.pending &= !P_KEEPALIVE;
            stats.keepalive_probes += 1;
            self.ack_sent();
            return self.emit_bare(now, TcpFlags::ACK, self.snd_una - 1u32, buf, stats);
        }
        if self.pending & P_ACK != 0 {
            // SND.MAX, not SND.NXT: after an RTO rewinds SND.NXT the peer has already seen
            // everything up to SND.MAX and would drop an ACK with an older sequence number.
            self.ack_sent();
            return self.emit_bare(now, TcpFlags::ACK, self.snd_max, buf, stats);
        }
        None
    }

    fn emit_syn(&mut self, now: Instant, buf: &mut [u8], stats: &mut TcpStats) -> Option<usize> {
        let synack = self.state == State::SynReceived;
        let mut options = TcpOptions {
            mss: Some(self.p.local_mss),
            ..Default::default()
        };
        if self.has(F_WS) {
            options.window_scale = Some(self.rcv_shift);
        }
        if self.has(F_SACK) {
            options.sack_permitted = true;
        }
        if self.has(F_TS) {
            options.timestamps = Some((self.ts_now(now), if synack { self.ts_recent } else { 0 }));
        }
        let repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.iss,
            ack: if synack { self.rcv_nxt } else { SeqNumber(0) },
            flags: if synack {
                TcpFlags::SYN | TcpFlags::ACK
            } else {
                TcpFlags::SYN
            },
            window: self.syn_window(),
            urgent: 0,
            options,
            payload: &[],
        };
        if self.snd_max == self.iss {
            // First transmission: time it (Karn: retransmitted SYNs are not timed).
            self.flags |= F_RTT_TIMING;
            self.rtt_seq = self.iss;
            self.rtt_time = now;
        } else {
            self.cancel_rtt_timing();
            stats.retransmitted_segments += 1;
        }
        self.snd_nxt = self.iss + 1u32;
        self.snd_max = self.snd_nxt;
        if !self.rto_at.armed() {
            // The first retry is jittered too: connections opened in one burst would all
            // time out together here.
            self.rto_at.set(now + self.rto() + self.syn_retry_jitter());
        }
        if synack {
            self.last_ack_sent = self.rcv_nxt;
            self.rcv_adv = self.rcv_nxt + self.syn_window() as u32;
        }
        self.last_send = now;
        self.emit(&repr, buf, 0, 0, stats)
    }

    /// The next data segment the sender would transmit now, if any.
    #[inline]
    fn next_data(&self) -> Option<DataSeg> {
        if !self.state_sends() {
            return None;
        }
        let buffered = self.sendbuf.len() as u32;
        if buffered == 0 {
            return None;
        }
        // Fast path, the bulk-transfer case (this runs two or three times per segment sent):
        // nothing to retransmit, no loss recovery or SACK state, no SACK blocks to carry, and
        // a full segment allowed by the data, the peer's window and cwnd. It returns exactly
        // what the general path below returns in that case.
        if self.flags & (F_RTX_UNA | F_TLP_RTX | F_DSACK) == 0
            && self.recovery == Recovery::None
            && self.dupacks == 0
            && self.snd_nxt == self.snd_max
            && self.scoreboard.is_none()
            && self.recvbuf.ooo_bytes() == 0
        {
            let mss = self.smss() as u32;
            let nxt_off = self.snd_nxt.since(self.snd_una);
            let usable_wnd = (self.snd_una + self.snd_wnd).since(self.snd_nxt);
            let usable_cwnd = self
                .cc
                .cwnd()
                .saturating_add(self.inflation)
                .saturating_sub(nxt_off);
            if nxt_off < buffered
                && buffered - nxt_off >= mss
                && usable_wnd >= mss
                && usable_cwnd >= mss
            {
                let seq = self.snd_nxt;
                let seg = DataSeg {
                    seq,
                    len: mss,
                    fin: self.has(F_FIN_QUEUED) && seq + mss == self.snd_una + buffered,
                    kind: SegKind::New,
                };
                // Every test and simulation run checks the shortcut against the general path.
                debug_assert_eq!(Some(seg), self.next_data_general(buffered));
                return Some(seg);
            }
        }
        self.next_data_general(buffered)
    }

    /// [`Connection::next_data`] for every case: retransmissions, recovery, SACK, small segments
    /// (Nagle, SWS avoidance). `buffered` is the send queue's length, not zero. Out of line, so
    /// the checks and the fast path above inline into their callers.
    #[inline(never)]
    fn next_data_general(&self, buffered: u32) -> Option<DataSeg> {
        let mss = self.seg_mss();
        let fin_q = self.has(F_FIN_QUEUED);
        let una = self.snd_una;
        let data_end = una + buffered;
        let mk = |seq: SeqNumber, len: u32, kind: SegKind| DataSeg {
            seq,
            len,
            fin: fin_q && seq + len == data_end,
            kind,
        };
        // NewReno fast retransmit of SND.UNA.
        if self.has(F_RTX_UNA) && self.recovery == Recovery::NewReno {
            let len = mss.min(buffered).min(self.snd_max.since(una).max(1));
            return Some(mk(una, len.min(buffered), SegKind::Fast));
        }
        if self.has(F_TLP_RTX) {
            let sent_end = self.snd_max.since(una).min(buffered);
            if sent_end > 0 {
                let len = mss.min(sent_end);
                let seq = una + (sent_end - len);
                return Some(DataSeg {
                    seq,
                    len,
                    fin: self.fin_sent() && seq + len == data_end,
                    kind: SegKind::Tlp,
                });
            }
        }
        let cwnd = self.cc.cwnd();
        let nxt_off = self.snd_nxt.since(una);
        let wnd_edge = una + self.snd_wnd;
        if self.recovery == Recovery::Sack {
            let sb = self.scoreboard.as_deref();
            let high_rxt = sb.map_or(una, |sb| sb.high_rxt(una));
            let room = if self.has(F_PRR) {
                self.prr.sndcnt >= mss
            } else {
                self.recovery_pipe(mss).saturating_add(mss) <= cwnd.max(mss)
            };
            if !room {
                return None;
            }
            if let Some(sb) = sb {
                // Lost retransmissions first: they hold SND.UNA, or will.
                if let Some((s, l)) = sb.lost_retransmission(una, mss) {
                    let off = s.since(una);
                    if off < buffered {
                        return Some(mk(s, l.min(buffered - off), SegKind::LostRtx));
                    }
                }
                if let Some((s, l)) = sb.next_lost(una, high_rxt, mss) {
                    let off = s.since(una);
                    if off < buffered {
                        return Some(mk(s, l.min(buffered - off), SegKind::Sack));
                    }
                }
            }
            // Rule 2: new data within the peer's window.
            if nxt_off < buffered {
                let len = mss
                    .min(buffered - nxt_off)
                    .min(wnd_edge.since(self.snd_nxt));
                if len > 0 && (len == mss || len == buffered - nxt_off) {
                    return Some(mk(self.snd_nxt, len, SegKind::New));
                }
            }
            // Rule 3: nothing lost to repair and no new data, but cwnd has room: retransmit
            // the first un-SACKed data above HighRxt, so the ACK clock keeps running instead
            // of waiting for the tail-loss probe or the RTO. (Rule 4's rescue retransmission
            // is left to the tail-loss probe, RFC 8985.) Only when everything queued has been
            // sent, and only under a loss-based congestion control, whose cwnd after the
            // reduction bounds these speculative resends to about the pipe. BBR's cwnd (2 BDP)
            // does not: a BBR sender limited by its send buffer resent a third of its data
            // this way in the simulation, nearly all of it still on its way. BBR leaves the
            // tail to the tail-loss probe, as Linux does.
            let rule3 = if nxt_off >= buffered && self.rate.is_none() {
                sb.and_then(|sb| sb.next_unsacked(una, high_rxt, self.snd_max, mss))
            } else {
                None
            };
            if let Some((s, l)) = rule3 {
                let off = s.since(una);
                if off < buffered {
                    return Some(mk(s, l.min(buffered - off), SegKind::Sack));
                }
            }
            return None;
        }
        // Go-back-N after an RTO, skipping what the peer SACKed. SACKed bytes are not in the
        // network, so they do not count against cwnd.
        let sb = self.scoreboard.as_deref();
        let flight = nxt_off - sb.map_or(0, |sb| sb.sacked_below(self.snd_nxt).min(nxt_off));
        let limited = if self.recovery == Recovery::None && (1..=2).contains(&self.dupacks) {
            self.dupacks as u32 * mss
        } else {
            0
        };
        let usable_cwnd = if self.has(F_PRR) {
            // NewReno recovery paced by PRR: what the last ACK allows, in whole segments.
            if self.prr.sndcnt >= mss {
                self.prr.sndcnt
            } else {
                0
            }
        } else {
            let cwnd_eff = cwnd.saturating_add(self.inflation).saturating_add(limited);
            cwnd_eff.saturating_sub(flight)
        };
        if self.snd_max.diff(self.snd_nxt) > 0 && nxt_off < buffered {
            let sent_end = self.snd_max.since(una).min(buffered);
            let mut len = mss
                .min(sent_end - nxt_off)
                .min(usable_cwnd.max(if flight == 0 { mss } else { 0 }));
            if let Some(s) = sb.and_then(|sb| sb.next_sacked_after(self.snd_nxt)) {
                len = len.min(s.since(self.snd_nxt));
            }
            if len == 0 {
                return None;
            }
            return Some(mk(self.snd_nxt, len, SegKind::Rto));
        }
        if nxt_off >= buffered {
            return None;
        }
        let avail = buffered - nxt_off;
        let usable_wnd = wnd_edge.since(self.snd_nxt);
        let len = mss.min(avail).min(usable_wnd).min(usable_cwnd);
        if len == 0 {
            return None;
        }
        if len < mss && !self.has(F_FORCE_PUSH) {
            if len < avail {
                // Sender SWS avoidance (RFC 9293 3.8.6.2.1): a small segment only if it is at
                // least half the largest window the peer offered.
                if len < usable_cwnd && len * 2 >= self.max_snd_wnd && self.max_snd_wnd > 0 {
                    // window-limited but large enough
                } else {
                    return None;
                }
            } else if !(self.has(F_NODELAY) || fin_q || self.snd_sml.diff(self.snd_una) <= 0) {
                // Nagle with Minshall's refinement (as Linux): hold a small segment only while
                // an earlier small segment is unacknowledged; full-sized ones do not block it.
                return None;
            }
        }
        Some(mk(self.snd_nxt, len, SegKind::New))
    }

    /// Whether a data segment could be sent now (see [`Connection::poll_data`]).
    #[inline]
    pub fn data_ready(&self, _now: Instant) -> bool {
        // The empty send queue (a receiver's case) answers before the call.
        !self.sendbuf.is_empty() && !self.paced(_now) && self.next_data().is_some()
    }

    /// Build the next data segment (at most one MSS, carrying ACK, timestamps and SACK blocks)
    /// into `buf`; returns its length. Nothing is lost or duplicated if this is called late.
    pub fn poll_data(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        stats: &mut TcpStats,
    ) -> Option<usize> {
        if self.paced(now) {
            return None;
        }
        let seg = self.next_data()?;
        let mut flags = TcpFlags::ACK;
        let off = seg.seq.since(self.snd_una) as usize;
        let mut len = seg.len as usize;
        // The segment shrinks if the buffer is short (then no FIN rides on it).
        let mut fin = seg.fin;
        let idle = self.snd_una == self.snd_max;
        // SACK blocks due: the general header path; otherwise the header is written at the end
        // by `emit_plain` (nothing below changes what it is built from).
        let mut repr = if self.sack_due() {
            Some(self.header(now, flags, seg.seq))
        } else {
            None
        };
        let hl = match &repr {
            Some(r) => r.header_len(),
            None => self.plain_header_len(),
        };
        let room = buf.len().saturating_sub(hl);
        if room == 0 {
            return None;
        }
        if len > room {
            len = room;
            fin = false;
        }
        if off + len == self.sendbuf.len() {
            flags = flags | TcpFlags::PSH;
        }
        if fin {
            flags = flags | TcpFlags::FIN;
            self.flags |= F_FIN_SENT;
        }
        if let Some(r) = repr.as_mut() {
            r.flags = flags;
        }
        let end = seg.seq + len + fin as u32;
        let is_retx = seg.seq.diff(self.snd_max) < 0;
        if self.rate.is_some() {
            self.record_send(seg.seq, end, now, len);
        }
        if idle && now.saturating_since(self.last_send) > self.rto() && !is_retx {
            self.cc.on_idle_restart(now);
        }
        match seg.kind {
            SegKind::Fast => {
                self.flags &= !F_RTX_UNA;
            }
            SegKind::Tlp => {
                self.flags &= !F_TLP_RTX;
            }
            SegKind::Sack | SegKind::LostRtx => {
                self.record_sack_retransmission(seg.seq, len, seg.kind, now, stats);
            }
            _ => {}
        }
        if is_retx {
            stats.retransmitted_segments += 1;
            if self.has(F_UNDO) {
                self.undo_on_retransmit(seg.seq, now);
            }
            if self.has(F_RTT_TIMING) && self.rtt_seq.diff(seg.seq) >= 0 {
                // Karn: the timed segment was retransmitted; its ACK is ambiguous.
                self.cancel_rtt_timing();
            }
        }
        if self.has(F_PRR) {
            // PRR: what recovery sends is paid for by what the receiver reports delivered.
            self.prr.out = self.prr.out.saturating_add(len as u32);
            self.prr.sndcnt = self.prr.sndcnt.saturating_sub(len as u32);
        }
        if len < self.smss() as usize {
            self.snd_sml = self.snd_sml.max(seg.seq + len);
        }
        if seg.seq == self.snd_nxt {
            self.snd_nxt = end;
            if seg.kind == SegKind::Rto {
                if let Some(sb) = self.scoreboard.as_deref() {
                    self.snd_nxt = sb.skip_sacked(self.snd_nxt).min(self.snd_max);
                }
            }
        }
        if self.snd_max.diff(end) < 0 {
            if !self.has(F_RTT_TIMING) && !is_retx {
                self.flags = (self.flags | F_RTT_TIMING) & !F_RTT_KARN;
                self.rtt_seq = seg.seq;
                self.rtt_time = now;
            }
            self.snd_max = end;
        }
        if seg.kind == SegKind::New && (!self.rto_at.armed() || self.has(F_PTO)) {
            // RFC 8985 7.2: (re)schedule the probe timeout after new data.
            self.arm_retransmit_timer(now);
        } else if !self.rto_at.armed() {
            self.rto_at.set(now + self.rto());
        }
        self.flags &= !F_FORCE_PUSH;
        self.persist_at.clear();
        self.ack_sent();
        self.last_send = now;
        let out = match repr {
            Some(r) => self.emit(&r, buf, off, len, stats),
            None => self.emit_plain::<false>(now, flags, seg.seq, buf, off, len),
        };
        debug_assert!(out.unwrap_or(hl + len) == hl + len);
        out
    }

    /// Bookkeeping for a SACK-recovery retransmission of `len` bytes at `seq` about to leave:
    /// HighRxt, the watch for its loss, the counter. Out of line: recovery only.
    #[cold]
    #[inline(never)]
    fn record_sack_retransmission(
        &mut self,
        seq: SeqNumber,
        len: usize,
        kind: SegKind,
        now: Instant,
        stats: &mut TcpStats,
    ) {
        stats.sack_retransmits += 1;
        let max = self.snd_max;
        if let Some(sb) = self.scoreboard.as_deref_mut() {
            sb.on_retransmit(seq, seq + len, max);
        }
        if kind == SegKind::LostRtx {
            // A fresh retransmission: it gets a whole RTO to be acknowledged.
            self.rto_at.set(now + self.rto());
            self.flags &= !F_PTO;
        }
    }

    /// Rate sampling and pacing for one data segment `[start, end)` about to leave (BBR's
    /// connections only; out of line so the others pay one branch).
    #[inline(never)]
    fn record_send(&mut self, start: SeqNumber, end: SeqNumber, now: Instant, len: usize) {
        let flight = self.in_network();
        let max = self.snd_max;
        if let Some(rate) = self.rate.as_deref_mut() {
            if start.diff(max) < 0 && end.diff(max) > 0 {
                rate.on_send(start, max, now, true, flight);
                rate.on_send(max, end, now, false, flight);
            } else {
                rate.on_send(start, end, now, start.diff(max) < 0, flight);
            }
        }
        if let Some(r) = self.cc.pacing_rate() {
            self.pace(now, len, r);
        }
    }

    // ---------------------------------------------------------------- timers

    /// The earliest deadline at which [`Connection::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // This runs after every segment. An unarmed deadline counts as the latest, so the
        // earliest of the five is a plain minimum; `pace_until` is zero when nothing waits.
        let t = self
            .rto_at
            .earlier(self.delack_at)
            .earlier(self.persist_at)
            .earlier(self.keepalive_at)
            .earlier(self.state_at)
            .get();
        if self.pace_until == Instant::from_micros(0) {
            return t;
        }
        match t {
            Some(t) if t <= self.pace_until => Some(t),
            _ => Some(self.pace_until),
        }
    }

    /// Run the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, stats: &mut TcpStats) {
        if self.pace_until <= now {
            // The pacer lets data go again; the caller re-queues the connection.
            self.pace_until = Instant::from_micros(0);
        }
        if self.state_at.is_due(now) {
            self.state_at.clear();
            match self.state {
                State::TimeWait => self.enter_closed(CloseReason::Normal),
                State::FinWait2 => {
                    self.abort(now);
                    self.close_reason = CloseReason::Timeout;
                    stats.timeouts += 1;
                }
                _ => {}
            }
        }
        if self.rto_at.is_due(now) {
            self.rto_at.clear();
            if self.has(F_PTO) {
                self.flags &= !F_PTO;
                self.on_pto(now);
            } else {
                self.on_rto(now, stats);
            }
        }
        if self.delack_at.is_due(now) {
            self.delack_at.clear();
            if self.state != State::Closed {
                self.pending |= P_ACK;
                stats.delayed_acks += 1;
            }
        }
        if self.persist_at.is_due(now) {
            self.persist_at.clear();
            if self.state_sends() && self.snd_una == self.snd_max && !self.sendbuf.is_empty() {
                if self.snd_wnd == 0 {
                    self.pending |= P_WPROBE;
                } else {
                    self.flags |= F_FORCE_PUSH;
                }
                self.persist_backoff = self.persist_backoff.saturating_add(1).min(16);
                let d = self
                    .rto()
                    .max(dur(self.p.rto_min_ms))
                    .saturating_mul(1u64 << self.persist_backoff.min(16))
                    .min(dur(self.p.rto_max_ms));
                self.persist_at.set(now + d);
            }
        }
        if self.keepalive_at.is_due(now) {
            self.keepalive_at.clear();
            if self.state == State::Established && self.p.ka_idle_ms > 0 {
                if self.snd_una != self.snd_max {
                    // Retransmissions are already probing.
                    self.keepalive_at.set(now + dur(self.p.ka_idle_ms));
                } else if self.ka_sent >= self.p.ka_probes {
                    stats.timeouts += 1;
                    self.abort(now);
                    self.close_reason = CloseReason::Timeout;
                } else {
                    self.ka_sent += 1;
                    self.pending |= P_KEEPALIVE;
                    self.keepalive_at.set(now + dur(self.p.ka_intvl_ms));
                }
            }
        }
    }

    /// How much later than the backed-off RTO the next SYN or SYN-ACK retry fires: up to a
    /// quarter of the RTO, fixed per connection and retry by the ISS (itself keyed and random).
    /// Connections opened in one burst otherwise retry in lockstep: their retries arrive as one
    /// burst again at the same full queue (a small link queue, the next hop's ARP hold queue
    /// after the timeout re-probes it) and the same ones can lose every time until they give up.
    fn syn_retry_jitter(&self) -> Duration {
        // splitmix64's finaliser: every bit of ISS and retry count moves every output bit.
        let mut z = (u64::from(self.iss.0) << 8 | u64::from(self.retransmits))
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let span_us = self.rto().total_micros() / 4;
        Duration::from_micros(z % (span_us + 1))
    }

    /// RFC 8985 PTO, when a tail loss probe may be scheduled now: 2*SRTT (at least 10 ms),
    /// plus a delayed-ACK allowance when only one segment is out, capped by the RTO.
    fn pto(&self) -> Option<Duration> {
        if !self.has(F_TLP_ON)
            || self.recovery != Recovery::None
            || self.has(F_TLP_OUT)
            || !self.state_sends()
            || self.snd_nxt != self.snd_max
            || self.sendbuf.is_empty()
        {
            return None;
        }
        let srtt = self.rtt.srtt()?;
        let mut pto = srtt.saturating_mul(2).max(Duration::from_millis(10));
        if self.snd_max.since(self.snd_una) <= self.smss() as u32 {
            pto = pto + dur(self.p.rto_min_ms);
        }
        Some(pto.min(self.rto()))
    }

    /// Start the retransmission timer for outstanding data: a PTO when a probe is allowed,
    /// else the RTO.
    fn arm_retransmit_timer(&mut self, now: Instant) {
        match self.pto() {
            Some(p) => {
                self.rto_at.set(now + p);
                self.flags |= F_PTO;
            }
            None => {
                self.rto_at.set(now + self.rto());
                self.flags &= !F_PTO;
            }
        }
    }

    /// The probe timeout fired: send one probe (the last segment again, unless new data can go),
    /// then fall back to the RTO.
    fn on_pto(&mut self, now: Instant) {
        if self.snd_una == self.snd_max {
            return;
        }
        if self.pto().is_some() {
            self.flags |= F_TLP_OUT;
            if self.next_data().is_none() {
                self.flags |= F_TLP_RTX;
            }
        }
        self.rto_at.set(now + self.rto());
    }

    fn on_rto(&mut self, now: Instant, stats: &mut TcpStats) {
        self.flags &= !(F_PTO | F_TLP_RTX | F_TLP_OUT);
        match self.state {
            State::SynSent | State::SynReceived => {
                let limit = if self.state == State::SynSent {
                    self.p.syn_retries
                } else {
                    self.p.synack_retries
                };
                if self.retransmits >= limit {
                    stats.timeouts += 1;
                    self.enter_closed(CloseReason::Timeout);
                    return;
                }
                self.retransmits += 1;
                stats.rto_expiries += 1;
                self.rtt.backoff();
                self.pending |= P_SYN;
                self.rto_at.set(now + self.rto() + self.syn_retry_jitter());
            }
            State::Closed | State::TimeWait | State::FinWait2 => {}
            _ => {
                if self.snd_una == self.snd_max {
                    return;
                }
                if self.retransmits >= self.p.max_retransmits {
                    stats.timeouts += 1;
                    self.abort(now);
                    self.close_reason = CloseReason::Timeout;
                    return;
                }
                self.retransmits += 1;
                stats.rto_expiries += 1;
                self.rtt.backoff();
                if self.retransmits > 1 {
                    // The same episode: undoing it restores the state before the first timeout.
                    self.cc.on_repeated_rto(now);
                } else {
                    self.cc.on_rto(now, self.flight());
                    self.start_undo_episode(true);
                }
                // RFC 6582 section 4: no fast retransmit for data sent before the timeout.
                self.recover = self.snd_max;
                self.snd_nxt = self.snd_una;
                self.recovery = Recovery::None;
                self.inflation = 0;
                self.dupacks = 0;
                self.flags &= !(F_RTX_UNA | F_PRR);
                self.cancel_rtt_timing();
                if self.retransmits > 1 {
                    // Repeated timeouts: the receiver may have reneged on its SACKs (RFC 2018
                    // section 8); resend everything.
                    self.scoreboard = None;
                } else if let Some(sb) = self.scoreboard.as_deref_mut() {
                    self.snd_nxt = sb.skip_sacked(self.snd_una).min(self.snd_max);
                    // Go-back-N resends everything un-SACKed: HighRxt starts over.
                    sb.forget_retransmissions();
                }
                self.rto_at.set(now + self.rto());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::congestion::CongestionAlgorithm;
    use crate::wire::{ChecksumMode, Ipv4Addr};

    const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
    const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Everything `c` wants to send now: control segments first, then data.
    fn drain(c: &mut Connection, now: Instant, st: &mut TcpStats) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1600];
        while let Some(n) = c.poll_control(now, &mut buf, st) {
            out.push(buf[..n].to_vec());
        }
        while let Some(n) = c.poll_data(now, &mut buf, st) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    /// Parse bytes sent by `from` (checksum verified).
    fn parse<'a>(from: &Connection, bytes: &'a [u8]) -> TcpRepr<'a> {
        TcpRepr::parse(
            bytes,
            *from.local.ip(),
            *from.remote.ip(),
            ChecksumMode::SOFTWARE,
        )
        .unwrap()
    }

    fn feed(to: &mut Connection, bytes: &[u8], now: Instant, st: &mut TcpStats) {
        let r = TcpRepr::parse(
            bytes,
            *to.remote.ip(),
            *to.local.ip(),
            ChecksumMode::SOFTWARE,
        )
        .unwrap();
        to.handle_segment(&r, now, st);
    }

    /// Move segments both ways until quiet (no loss).
    fn exchange(a: &mut Connection, b: &mut Connection, now: Instant, st: &mut TcpStats) {
        for _ in 0..1000 {
            let oa = drain(a, now, st);
            let ob = drain(b, now, st);
            if oa.is_empty() && ob.is_empty() {
                return;
            }
            for s in &oa {
                feed(b, s, now, st);
            }
            for s in &ob {
                feed(a, s, now, st);
            }
        }
        panic!("no quiescence");
    }

    fn plain_cfg() -> TcpConfig {
        TcpConfig {
            timestamps: false,
            sack: false,
            window_scale: false,
            ..TcpConfig::default()
        }
    }

    /// A crafted segment from the peer of a connection at `B` talking to `A`.
    fn seg<'a>(flags: TcpFlags, seq: u32, ack: u32, window: u16, payload: &'a [u8]) -> TcpRepr<'a> {
        TcpRepr {
            src_port: A.port(),
            dst_port: B.port(),
            seq: SeqNumber(seq),
            ack: SeqNumber(ack),
            flags,
            window,
            urgent: 0,
            options: TcpOptions::default(),
            payload,
        }
    }

    const PEER_ISS: u32 = 1000;
    const OUR_ISS: u32 = 5000;

    /// A passive connection at B, established with a crafted peer at A (no options unless
    /// `cfg` and `syn_opts` enable them). Returns it with its SYN-ACK consumed.
    fn passive(cfg: &TcpConfig, syn_opts: TcpOptions, st: &mut TcpStats) -> Connection {
        let mut syn = seg(TcpFlags::SYN, PEER_ISS, 0, 65535, &[]);
        syn.options = syn_opts;
        let mut c = Connection::accept_syn(cfg, B, A, SeqNumber(OUR_ISS), &syn, t(0));
        let out = drain(&mut c, t(0), st);
        assert_eq!(out.len(), 1);
        let sa = parse(&c, &out[0]);
        assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(sa.ack.0, PEER_ISS + 1);
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 1, 65535, &[]),
            t(1),
            st,
        );
        assert_eq!(c.state(), State::Established);
        assert_eq!(c.poll_event(), Some(ConnEvent::Connected));
        c
    }

    /// The plain header writer (`emit_plain`, every segment without SACK blocks) produces the
    /// bytes `TcpRepr::emit` would: each segment of a transfer both ways (data, pure ACKs, FINs,
    /// with and without timestamps) parses with a valid checksum and re-emits identically.
    #[test]
    fn plain_header_writer_matches_the_generic_emitter() {
        for timestamps in [false, true] {
            let cfg = TcpConfig {
                timestamps,
                ..TcpConfig::default()
            };
            let mut st = TcpStats::default();
            let mut a = Connection::connect(&cfg, A, B, SeqNumber(77), t(0));
            let mut b_opt = None;
            let mut seen = 0;
            let mut check = |from: &Connection, bytes: &[u8]| {
                let r = parse(from, bytes);
                let mut again = vec![0u8; bytes.len()];
                let n = r.emit(
                    &mut again,
                    *from.local.ip(),
                    *from.remote.ip(),
                    ChecksumMode::SOFTWARE,
                );
                assert_eq!(&again[..n], bytes, "{r:?}");
                seen += 1;
            };
            let data = vec![5u8; 100_000];
            let mut sent = 0;
            for i in 0..200u64 {
                let now = t(1 + i);
                for s in drain(&mut a, now, &mut st) {
                    check(&a, &s);
                    match b_opt.as_mut() {
                        None => {
                            let syn = parse(&a, &s);
                            b_opt = Some(Connection::accept_syn(
                                &cfg,
                                B,
                                A,
                                SeqNumber(9000),
                                &syn,
                                now,
                            ));
                        }
                        Some(b) => feed(b, &s, now, &mut st),
                    }
                }
                let Some(b) = b_opt.as_mut() else { continue };
                for s in drain(b, now, &mut st) {
                    check(b, &s);
                    feed(&mut a, &s, now, &mut st);
                }
                if a.state() == State::Established && sent < data.len() {
                    sent += a.send(&data[sent..]).unwrap();
                }
                let mut sink = [0u8; 4096];
                while b.recv(&mut sink).is_ok_and(|n| n > 0) {}
                if i == 150 {
                    a.close(now);
                    b.close(now);
                }
            }
            assert_eq!(sent, data.len());
            assert!(seen > 70, "only {seen} segments");
        }
    }

    /// Header prediction must leave a connection exactly as the full receive path does: two
    /// twins get the same segments (in order, out of order, PSH, window changes, stale and fresh
    /// timestamps, app reads in between), one through `handle_segment`, the other straight
    /// through `handle_synchronized`; their whole state and every segment they send must match.
    #[test]
    fn header_prediction_matches_the_full_receive_path() {
        for (timestamps, seed) in [(false, 1u32), (true, 2), (true, 3), (false, 4)] {
            let cfg = TcpConfig {
                timestamps,
                ..TcpConfig::default()
            };
            let opts = TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: timestamps.then_some((100, 0)),
                ..TcpOptions::default()
            };
            let mut st = TcpStats::default();
            let mut fast = passive(&cfg, opts, &mut st);
            let mut full = passive(&cfg, opts, &mut st);
            let payload = vec![7u8; 1460];
            let mut x = seed;
            let mut seq = PEER_ISS + 1;
            let mut tsval = 100u32;
            let mut buf = vec![0u8; 4096];
            for i in 0..250u32 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let r = x >> 8;
                let len = if r % 5 == 0 {
                    1 + (r as usize % 1460)
                } else {
                    1460
                };
                // Mostly in order; sometimes a segment ahead (a hole) or a repeat.
                let s = match r % 23 {
                    0 => seq + 1460,
                    1 => seq.wrapping_sub(1460),
                    _ => seq,
                };
                let flags = if r % 7 == 0 {
                    TcpFlags::ACK | TcpFlags::PSH
                } else {
                    TcpFlags::ACK
                };
                let window = if r % 11 == 0 { 100 } else { 500 };
                tsval = if r % 13 == 0 {
                    tsval.wrapping_sub(5)
                } else {
                    tsval.wrapping_add(1)
                };
                let mut sg = seg(flags, s, OUR_ISS + 1, window, &payload[..len]);
                if timestamps {
                    sg.options.timestamps = Some((tsval, 0));
                }
                let now = t(2 + i as u64);
                fast.handle_segment(&sg, now, &mut st);
                full.handle_synchronized(&sg, now, &mut st);
                if s == seq {
                    seq = fast.rcv_nxt.0;
                }
                if r % 3 == 0 {
                    let a = fast.recv(&mut buf);
                    let b = full.recv(&mut buf);
                    assert_eq!(a, b);
                }
                assert_eq!(format!("{fast:?}"), format!("{full:?}"), "segment {i}");
                if r % 2 == 0 {
                    assert_eq!(
                        drain(&mut fast, now, &mut st),
                        drain(&mut full, now, &mut st)
                    );
                }
            }
            assert!(fast.rcv_nxt.diff(SeqNumber(PEER_ISS + 1)) > 50_000);
        }
    }

    #[test]
    fn size_of_connection_is_small() {
        let n = core::mem::size_of::<Connection>();
        println!("size_of::<Connection>() = {n}");
        assert!(n < 1024, "Connection is {n} bytes");
        let mut st = TcpStats::default();
        let c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        assert_eq!(c.allocated(), 0);
    }

    #[test]
    fn active_passive_handshake_negotiates_options() {
        let cfg = TcpConfig::default();
        let mut st = TcpStats::default();
        let mut a = Connection::connect(&cfg, A, B, SeqNumber(100), t(0));
        assert_eq!(a.state(), State::SynSent);
        let out = drain(&mut a, t(0), &mut st);
        assert_eq!(out.len(), 1);
        let syn = parse(&a, &out[0]);
        assert_eq!(syn.flags, TcpFlags::SYN);
        assert_eq!(syn.options.mss, Some(1460));
        assert_eq!(syn.options.window_scale, Some(3));
        assert!(syn.options.sack_permitted);
        assert!(syn.options.timestamps.is_some());
        let mut b = Connection::accept_syn(&cfg, B, A, SeqNumber(u32::MAX - 5), &syn, t(1));
        assert_eq!(b.state(), State::SynReceived);
        let out = drain(&mut b, t(1), &mut st);
        let sa = parse(&b, &out[0]);
        assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(
            sa.options.timestamps.unwrap().1,
            syn.options.timestamps.unwrap().0
        );
        a.handle_segment(&sa, t(2), &mut st);
        assert_eq!(a.state(), State::Established);
        assert_eq!(a.poll_event(), Some(ConnEvent::Connected));
        exchange(&mut a, &mut b, t(3), &mut st);
        assert_eq!(b.state(), State::Established);
        assert_eq!(b.poll_event(), Some(ConnEvent::Connected));
        assert!(
            a.has(F_WS | F_TS | F_SACK) && a.flags & (F_WS | F_TS | F_SACK) == F_WS | F_TS | F_SACK
        );
        assert_eq!(a.snd_shift, 3);
        assert_eq!(b.snd_shift, 3);
        assert_eq!(a.smss(), 1448);
        // Data both ways, across B's sequence wrap.
        assert_eq!(a.send(b"hello").unwrap(), 5);
        assert_eq!(b.send(b"world!").unwrap(), 6);
        exchange(&mut a, &mut b, t(4), &mut st);
        let mut buf = [0u8; 64];
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(a.recv(&mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"world!");
        assert_eq!(a.recv(&mut buf), Ok(0));
        assert!(a.srtt().is_some());
    }

    #[test]
    fn no_options_when_peer_offers_none() {
        let cfg = TcpConfig::default();
        let mut st = TcpStats::default();
        let c = passive(&cfg, TcpOptions::default(), &mut st);
        assert_eq!(c.flags & (F_WS | F_TS | F_SACK), 0);
        assert_eq!(c.peer_mss, 536);
        assert_eq!(c.rcv_shift, 0);
    }

    #[test]
    fn simultaneous_open_and_simultaneous_close() {
        let cfg = TcpConfig::default();
        let mut st = TcpStats::default();
        let mut a = Connection::connect(&cfg, A, B, SeqNumber(100), t(0));
        let mut b = Connection::connect(&cfg, B, A, SeqNumber(9000), t(0));
        let sa = drain(&mut a, t(0), &mut st);
        let sb = drain(&mut b, t(0), &mut st);
        feed(&mut b, &sa[0], t(1), &mut st);
        feed(&mut a, &sb[0], t(1), &mut st);
        assert_eq!(a.state(), State::SynReceived);
        assert_eq!(b.state(), State::SynReceived);
        exchange(&mut a, &mut b, t(2), &mut st);
        assert_eq!(a.state(), State::Established);
        assert_eq!(b.state(), State::Established);
        // Simultaneous close: both FINs cross.
        a.close(t(3));
        b.close(t(3));
        let fa = drain(&mut a, t(3), &mut st);
        let fb = drain(&mut b, t(3), &mut st);
        assert_eq!(fa.len(), 1);
        assert!(parse(&a, &fa[0]).flags.fin());
        feed(&mut b, &fa[0], t(4), &mut st);
        feed(&mut a, &fb[0], t(4), &mut st);
        assert_eq!(a.state(), State::Closing);
        assert_eq!(b.state(), State::Closing);
        exchange(&mut a, &mut b, t(5), &mut st);
        assert_eq!(a.state(), State::TimeWait);
        assert_eq!(b.state(), State::TimeWait);
        a.handle_timeout(t(5) + Duration::from_secs(60), &mut st);
        assert!(a.is_closed());
        assert_eq!(a.close_reason(), CloseReason::Normal);
    }

    #[test]
    fn info_and_time_wait_reuse() {
        let cfg = TcpConfig::default();
        let mut st = TcpStats::default();
        let mut a = Connection::connect(&cfg, A, B, SeqNumber(100), t(0));
        let syn = drain(&mut a, t(0), &mut st);
        let mut b = Connection::accept_syn(&cfg, B, A, SeqNumber(7), &parse(&a, &syn[0]), t(0));
        exchange(&mut a, &mut b, t(1), &mut st);
        let i = a.info();
        assert_eq!(i.state, State::Established);
        assert!(i.timestamps && i.sack);
        assert_eq!(i.window_scale, Some((3, 3)));
        assert_eq!(i.mss, 1448);
        assert_eq!(i.cwnd, 14480);
        assert_eq!(i.rcv_wnd, 256 * 1024);
        a.close(t(2));
        exchange(&mut a, &mut b, t(2), &mut st);
        b.close(t(3));
        exchange(&mut a, &mut b, t(3), &mut st);
        assert_eq!(a.state(), State::TimeWait);
        let mut syn2 = seg(TcpFlags::SYN, b.snd_max.0 + 1000, 0, 65535, &[]);
        let (tsval, _) = b
            .header(t(4), TcpFlags::ACK, b.snd_max)
            .options
            .timestamps
            .unwrap();
        syn2.options.timestamps = Some((tsval.wrapping_add(1), 0));
        assert!(a.time_wait_accepts_syn(&syn2));
        syn2.options.timestamps = Some((tsval.wrapping_sub(100_000), 0));
        assert!(!a.time_wait_accepts_syn(&syn2));
        assert!(!b.time_wait_accepts_syn(&syn2), "B is not in TIME_WAIT");
    }

    #[test]
    fn half_close_then_time_wait_reacks_fin() {
        let cfg = plain_cfg();
        let mut st = TcpStats::default();
        let mut a = Connection::connect(&cfg, A, B, SeqNumber(100), t(0));
        let syn = drain(&mut a, t(0), &mut st);
        let mut b = Connection::accept_syn(&cfg, B, A, SeqNumber(7), &parse(&a, &syn[0]), t(0));
        exchange(&mut a, &mut b, t(1), &mut st);
        // A half-closes; B can still send.
        a.send(b"req").unwrap();
        a.shutdown_write(t(2));
        assert_eq!(a.send(b"x"), Err(TcpError::Closed));
        exchange(&mut a, &mut b, t(2), &mut st);
        assert_eq!(a.state(), State::FinWait2);
        assert_eq!(b.state(), State::CloseWait);
        let mut buf = [0u8; 16];
        assert_eq!(b.recv(&mut buf), Ok(3));
        assert_eq!(b.recv(&mut buf), Err(TcpError::Finished));
        let mut evs = Vec::new();
        while let Some(e) = b.poll_event() {
            evs.push(e);
        }
        assert!(evs.contains(&ConnEvent::PeerClosed));
        b.send(b"response").unwrap();
        exchange(&mut a, &mut b, t(3), &mut st);
        assert_eq!(a.recv(&mut buf), Ok(8));
        b.close(t(4));
        assert_eq!(b.state(), State::LastAck);
        let fin = drain(&mut b, t(4), &mut st);
        assert_eq!(fin.len(), 1);
        feed(&mut a, &fin[0], t(5), &mut st);
        assert_eq!(a.state(), State::TimeWait);
        let ack = drain(&mut a, t(5), &mut st);
        assert_eq!(ack.len(), 1);
        // The ACK is lost; B retransmits its FIN after the RTO, A re-ACKs and restarts 2MSL.
        let rto = b.poll_timeout().unwrap();
        b.handle_timeout(rto, &mut st);
        let fin2 = drain(&mut b, rto, &mut st);
        assert_eq!(fin2.len(), 1);
        assert!(parse(&b, &fin2[0]).flags.fin());
        let t_re = rto + Duration::from_secs(10);
        feed(&mut a, &fin2[0], t_re, &mut st);
        let ack2 = drain(&mut a, t_re, &mut st);
        assert_eq!(ack2.len(), 1);
        assert_eq!(parse(&a, &ack2[0]).ack, parse(&a, &ack[0]).ack);
        assert_eq!(a.poll_timeout(), Some(t_re + Duration::from_secs(60)));
        a.handle_timeout(t_re + Duration::from_secs(59), &mut st);
        assert_eq!(a.state(), State::TimeWait);
        a.handle_timeout(t_re + Duration::from_secs(60), &mut st);
        assert!(a.is_closed());
        feed(&mut b, &ack2[0], t_re, &mut st);
        assert!(b.is_closed());
        assert_eq!(b.close_reason(), CloseReason::Normal);
    }

    #[test]
    fn rst_exact_in_window_and_outside() {
        let mut st = TcpStats::default();
        let cfg = plain_cfg();
        let mut c = passive(&cfg, TcpOptions::default(), &mut st);
        let nxt = PEER_ISS + 1;
        // Outside the window: ignored silently.
        c.handle_segment(
            &seg(TcpFlags::RST, nxt + 1_000_000, 0, 0, &[]),
            t(2),
            &mut st,
        );
        assert!(drain(&mut c, t(2), &mut st).is_empty());
        // In window but not exact: challenge ACK.
        c.handle_segment(&seg(TcpFlags::RST, nxt + 100, 0, 0, &[]), t(2), &mut st);
        assert_eq!(c.state(), State::Established);
        assert_eq!(st.challenge_acks, 1);
        let out = drain(&mut c, t(2), &mut st);
        assert_eq!(out.len(), 1);
        let ack = parse(&c, &out[0]);
        assert_eq!(ack.flags, TcpFlags::ACK);
        assert_eq!(ack.ack.0, nxt);
        // Exact: reset.
        c.handle_segment(&seg(TcpFlags::RST, nxt, 0, 0, &[]), t(3), &mut st);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(st.resets_received, 1);
        assert!(c.is_closed());
        let mut buf = [0u8; 4];
        assert_eq!(c.recv(&mut buf), Err(TcpError::Reset));
        assert_eq!(c.send(b"x"), Err(TcpError::Reset));
        let mut last = None;
        while let Some(e) = c.poll_event() {
            last = Some(e);
        }
        assert_eq!(last, Some(ConnEvent::Closed(CloseReason::Reset)));
    }

    #[test]
    fn out_of_window_pure_acks_are_answered_at_most_every_500ms() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        let old = seg(TcpFlags::ACK, PEER_ISS, OUR_ISS + 1, 65535, &[]);
        c.handle_segment(&old, t(1000), &mut st);
        assert_eq!(drain(&mut c, t(1000), &mut st).len(), 1);
        c.handle_segment(&old, t(1100), &mut st);
        assert!(
            drain(&mut c, t(1100), &mut st).is_empty(),
            "ACK loop breaker"
        );
        // Old data is always answered (the sender needs the ACK).
        let dup = seg(
            TcpFlags::ACK,
            PEER_ISS - 9,
            OUR_ISS + 1,
            65535,
            b"0123456789",
        );
        c.handle_segment(&dup, t(1200), &mut st);
        assert_eq!(drain(&mut c, t(1200), &mut st).len(), 1);
        c.handle_segment(&old, t(1500), &mut st);
        assert_eq!(drain(&mut c, t(1500), &mut st).len(), 1);
    }

    #[test]
    fn syn_in_established_gets_challenge_ack() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        c.handle_segment(
            &seg(TcpFlags::SYN, PEER_ISS + 50, 0, 65535, &[]),
            t(2),
            &mut st,
        );
        assert_eq!(c.state(), State::Established);
        assert_eq!(st.challenge_acks, 1);
        let out = drain(&mut c, t(2), &mut st);
        let r = parse(&c, &out[0]);
        assert_eq!(r.flags, TcpFlags::ACK);
        assert_eq!(r.seq.0, OUR_ISS + 1);
        assert_eq!(r.ack.0, PEER_ISS + 1);
    }

    #[test]
    fn refused_and_bad_ack_in_syn_sent() {
        let mut st = TcpStats::default();
        let mut a = Connection::connect(&plain_cfg(), B, A, SeqNumber(OUR_ISS), t(0));
        drain(&mut a, t(0), &mut st);
        // A SYN-ACK acknowledging something else: RST with seq = that ack.
        a.handle_segment(
            &seg(TcpFlags::SYN | TcpFlags::ACK, 1, 77, 1000, &[]),
            t(1),
            &mut st,
        );
        let out = drain(&mut a, t(1), &mut st);
        let r = parse(&a, &out[0]);
        assert_eq!(r.flags, TcpFlags::RST);
        assert_eq!(r.seq.0, 77);
        assert_eq!(a.state(), State::SynSent);
        // RST without ACK: ignored. RST+ACK acceptable: refused.
        a.handle_segment(&seg(TcpFlags::RST, 0, 0, 0, &[]), t(1), &mut st);
        assert_eq!(a.state(), State::SynSent);
        a.handle_segment(
            &seg(TcpFlags::RST | TcpFlags::ACK, 0, OUR_ISS + 1, 0, &[]),
            t(1),
            &mut st,
        );
        assert_eq!(a.state(), State::Closed);
        assert_eq!(a.close_reason(), CloseReason::Refused);
    }

    #[test]
    fn syn_retries_then_timeout() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            syn_retries: 2,
            ..plain_cfg()
        };
        let mut a = Connection::connect(&cfg, B, A, SeqNumber(OUR_ISS), t(0));
        assert_eq!(drain(&mut a, t(0), &mut st).len(), 1);
        let mut gaps = Vec::new();
        let mut last = t(0);
        while let Some(d) = a.poll_timeout() {
            gaps.push((d - last).total_millis());
            last = d;
            a.handle_timeout(d, &mut st);
            drain(&mut a, d, &mut st);
        }
        // Each wait is the (doubled) RTO plus up to a quarter of it.
        assert_eq!(gaps.len(), 3, "{gaps:?}");
        assert!((1000..=1250).contains(&gaps[0]), "{gaps:?}");
        assert!((2000..=2500).contains(&gaps[1]), "{gaps:?}");
        assert!((4000..=5000).contains(&gaps[2]), "{gaps:?}");
        assert_eq!(a.close_reason(), CloseReason::Timeout);
        assert_eq!(st.retransmitted_segments, 2);
    }

    #[test]
    fn syn_retries_of_connections_opened_together_are_spread() {
        let mut st = TcpStats::default();
        let cfg = plain_cfg();
        let mut first_at = Vec::new();
        let mut second_after = Vec::new();
        for i in 0..32u32 {
            let iss = SeqNumber(OUR_ISS.wrapping_mul(2_654_435_761).wrapping_add(i * 7_919));
            let mut a = Connection::connect(&cfg, B, A, iss, t(0));
            drain(&mut a, t(0), &mut st);
            let first = a.poll_timeout().expect("first retry armed");
            first_at.push((first - t(0)).total_millis());
            a.handle_timeout(first, &mut st);
            drain(&mut a, first, &mut st);
            let second = a.poll_timeout().expect("second retry armed");
            second_after.push((second - first).total_millis());
        }
        // 32 connections opened at once retry on many distinct instants, across the RTO plus a
        // quarter of it, the first retry as well as the second; not all at once.
        for (at, lo, hi) in [(&mut first_at, 1000, 1250), (&mut second_after, 2000, 2500)] {
            at.sort_unstable();
            at.dedup();
            assert!(at.len() >= 24, "{at:?}");
            assert!(at[0] >= lo && *at.last().unwrap() <= hi, "{at:?}");
            assert!(at.last().unwrap() - at[0] >= (hi - lo) / 2, "{at:?}");
        }
    }

    #[test]
    fn overlapping_edges_and_out_of_order_hole_fill() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            sack: true,
            ..plain_cfg()
        };
        let opts = TcpOptions {
            sack_permitted: true,
            mss: Some(1000),
            ..Default::default()
        };
        let mut c = passive(&cfg, opts, &mut st);
        let s0 = PEER_ISS + 1;
        let data: Vec<u8> = (0..40u8).collect();
        // Out of order [20,30): immediate dup ACK with a SACK block.
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 20, OUR_ISS + 1, 65535, &data[20..30]),
            t(2),
            &mut st,
        );
        let out = drain(&mut c, t(2), &mut st);
        let r = parse(&c, &out[0]);
        assert_eq!(r.ack.0, s0);
        assert_eq!(
            r.options.sack.as_slice(),
            &[(SeqNumber(s0 + 20), SeqNumber(s0 + 30))]
        );
        assert_eq!(c.ooo_bytes(), 10);
        assert_eq!(st.ooo_segments, 1);
        // In order [0,10) plus an old duplicate overlapping the left edge.
        c.handle_segment(
            &seg(TcpFlags::ACK, s0, OUR_ISS + 1, 65535, &data[0..10]),
            t(3),
            &mut st,
        );
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 5, OUR_ISS + 1, 65535, &data[5..15]),
            t(3),
            &mut st,
        );
        // Overlapping the right edge of the queued range.
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 25, OUR_ISS + 1, 65535, &data[25..35]),
            t(3),
            &mut st,
        );
        // Fill the hole [15,20) (with overlap on both sides).
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 14, OUR_ISS + 1, 65535, &data[14..22]),
            t(4),
            &mut st,
        );
        assert_eq!(c.ooo_bytes(), 0);
        let out = drain(&mut c, t(4), &mut st);
        let last = parse(&c, out.last().unwrap());
        assert_eq!(last.ack.0, s0 + 35);
        // Only the D-SACK for the duplicated byte 14 (RFC 2883); no hole is left.
        assert_eq!(
            last.options.sack.as_slice(),
            &[(SeqNumber(s0 + 14), SeqNumber(s0 + 15))]
        );
        let mut buf = [0u8; 64];
        assert_eq!(c.recv(&mut buf), Ok(35));
        assert_eq!(&buf[..35], &data[..35]);
        // Entirely old data: dup ACK, nothing delivered.
        c.handle_segment(
            &seg(TcpFlags::ACK, s0, OUR_ISS + 1, 65535, &data[0..10]),
            t(5),
            &mut st,
        );
        assert_eq!(c.recv_available(), 0);
        let out = drain(&mut c, t(5), &mut st);
        assert_eq!(out.len(), 1);
        let r = parse(&c, &out[0]);
        assert_eq!(
            r.options.sack.as_slice(),
            &[(SeqNumber(s0), SeqNumber(s0 + 10))]
        );
        // Reported once.
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 35, OUR_ISS + 1, 65535, b"x"),
            t(6),
            &mut st,
        );
        c.pending |= P_ACK;
        let out = drain(&mut c, t(6), &mut st);
        assert!(parse(&c, &out[0]).options.sack.is_empty());
    }

    #[test]
    fn out_of_order_fin_processed_when_hole_fills() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        let s0 = PEER_ISS + 1;
        c.handle_segment(
            &seg(
                TcpFlags::ACK | TcpFlags::FIN,
                s0 + 3,
                OUR_ISS + 1,
                65535,
                b"def",
            ),
            t(2),
            &mut st,
        );
        assert_eq!(c.state(), State::Established);
        c.handle_segment(
            &seg(TcpFlags::ACK, s0, OUR_ISS + 1, 65535, b"abc"),
            t(2),
            &mut st,
        );
        assert_eq!(c.state(), State::CloseWait);
        let out = drain(&mut c, t(2), &mut st);
        assert_eq!(parse(&c, out.last().unwrap()).ack.0, s0 + 7);
        let mut buf = [0u8; 8];
        assert_eq!(c.recv(&mut buf), Ok(6));
        assert_eq!(&buf[..6], b"abcdef");
        assert_eq!(c.recv(&mut buf), Err(TcpError::Finished));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let cfg = plain_cfg();
        let mut st = TcpStats::default();
        let mut a = Connection::connect(&cfg, A, B, SeqNumber(u32::MAX - 1000), t(0));
        let syn = drain(&mut a, t(0), &mut st);
        let mut b = Connection::accept_syn(
            &cfg,
            B,
            A,
            SeqNumber(u32::MAX - 3),
            &parse(&a, &syn[0]),
            t(0),
        );
        exchange(&mut a, &mut b, t(1), &mut st);
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut got_a = Vec::new();
        let mut got_b = Vec::new();
        let mut sent = 0;
        let mut now = t(2);
        while got_b.len() < data.len() || got_a.len() < data.len() {
            if sent < data.len() {
                let n = a.send(&data[sent..]).unwrap();
                b.send(&data[sent..sent + n]).unwrap();
                sent += n;
            }
            exchange(&mut a, &mut b, now, &mut st);
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = b.recv(&mut buf) {
                got_b.extend_from_slice(&buf[..n]);
            }
            while let Ok(n @ 1..) = a.recv(&mut buf) {
                got_a.extend_from_slice(&buf[..n]);
            }
            now += Duration::from_millis(50);
            a.handle_timeout(now, &mut st);
            b.handle_timeout(now, &mut st);
        }
        assert_eq!(got_b, data);
        assert_eq!(got_a, data);
        // Both sides' sequence numbers wrapped through 2^32.
        assert!(a.snd_una.0 < 100_000 && b.snd_una.0 < 100_000);
    }

    #[test]
    fn paws_rejects_old_timestamp() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            timestamps: true,
            ..plain_cfg()
        };
        let opts = TcpOptions {
            timestamps: Some((1000, 0)),
            ..Default::default()
        };
        let mut c = passive(&cfg, opts, &mut st);
        let s0 = PEER_ISS + 1;
        let mut good = seg(TcpFlags::ACK, s0, OUR_ISS + 1, 65535, b"new");
        good.options.timestamps = Some((2000, 0));
        c.handle_segment(&good, t(2), &mut st);
        assert_eq!(c.recv_available(), 3);
        assert_eq!(c.ts_recent, 2000);
        let mut old = seg(TcpFlags::ACK, s0 + 3, OUR_ISS + 1, 65535, b"old");
        old.options.timestamps = Some((1500, 0));
        c.handle_segment(&old, t(3), &mut st);
        assert_eq!(c.recv_available(), 3, "PAWS must drop the segment");
        let out = drain(&mut c, t(3), &mut st);
        let r = parse(&c, &out[0]);
        assert_eq!(r.ack.0, s0 + 3);
        assert_eq!(r.options.timestamps.unwrap().1, 2000);
        // Timestamp wrap: a value just past 2^31 ahead is "older".
        let mut wrapped = seg(TcpFlags::ACK, s0 + 3, OUR_ISS + 1, 65535, b"xyz");
        wrapped.options.timestamps = Some((2000u32.wrapping_add(0x8000_0001), 0));
        c.handle_segment(&wrapped, t(3), &mut st);
        assert_eq!(c.recv_available(), 3);
        // After 24 idle days TS.recent is stale and no longer rejects (RFC 7323 5.5).
        let later = t(3) + Duration::from_secs(25 * 24 * 3600);
        c.handle_segment(&old, later, &mut st);
        assert_eq!(c.recv_available(), 6);
    }

    #[test]
    fn rtt_is_timed_in_microseconds_with_timestamps_on_a_fast_path() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            timestamps: true,
            tail_loss_probe: false,
            ..plain_cfg()
        };
        let opts = TcpOptions {
            timestamps: Some((1000, 0)),
            mss: Some(1000),
            ..Default::default()
        };
        let mut c = passive(&cfg, opts, &mut st);
        let mss = c.smss() as usize;
        let mut now = t(10);
        let mut peer_ts = 2000;
        // Sends `segments` full segments at once (after an RTO if `rto`) and acknowledges each
        // `rtt_us` after it left, echoing its TSval.
        let mut flight = |c: &mut Connection, now: &mut Instant, segments: usize, rto: bool| {
            c.send(&vec![1u8; mss * segments]).unwrap();
            let mut out = drain(c, *now, &mut st);
            if rto {
                let at = c.poll_timeout().expect("RTO armed");
                c.handle_timeout(at, &mut st);
                *now = at;
                out = drain(c, at, &mut st);
            }
            assert_eq!(out.len(), segments);
            *now += Duration::from_micros(300);
            for frame in &out {
                let r = parse(c, frame);
                let (tsval, _) = r.options.timestamps.expect("timestamps negotiated");
                let end = r.seq.0.wrapping_add(r.payload.len() as u32);
                peer_ts += 1;
                let mut ack = seg(TcpFlags::ACK, PEER_ISS + 1, end, 65535, &[]);
                ack.options.timestamps = Some((peer_ts, tsval));
                c.handle_segment(&ack, *now, &mut st);
            }
            *now += Duration::from_micros(700);
            c.srtt().unwrap().total_micros()
        };
        let mut srtt = 0;
        for _ in 0..20 {
            srtt = flight(&mut c, &mut now, 1, false);
        }
        // From the handshake's 1 ms towards 300 us; echoed millisecond timestamps would have
        // given 0 ms samples and an SRTT near zero.
        assert!((300..400).contains(&srtt), "srtt {srtt} us");
        // Three segments in one flight: the first is timed (300 us); the ACKs of the other two
        // echo timestamps too, but 1 ms samples from them would pull SRTT up.
        let before = srtt;
        srtt = flight(&mut c, &mut now, 3, false);
        assert_eq!(srtt, (before * 7 + 300) / 8, "one 300 us sample per flight");
        // A retransmitted segment is not timed (Karn); its echoed timestamp still gives a
        // sample, rounded up to the 1 ms tick.
        let before = srtt;
        srtt = flight(&mut c, &mut now, 1, true);
        assert_eq!(srtt, (before * 7 + 1000) / 8, "one 1 ms sample from TSecr");
    }

    #[test]
    fn delayed_ack_timing() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        c.quickacks = 0;
        let s0 = PEER_ISS + 1;
        let full = [7u8; 1460];
        c.handle_segment(
            &seg(TcpFlags::ACK, s0, OUR_ISS + 1, 65535, &full),
            t(10),
            &mut st,
        );
        assert!(drain(&mut c, t(10), &mut st).is_empty());
        assert_eq!(c.poll_timeout(), Some(t(50)));
        c.handle_timeout(t(49), &mut st);
        assert!(drain(&mut c, t(49), &mut st).is_empty());
        c.handle_timeout(t(50), &mut st);
        assert_eq!(st.delayed_acks, 1);
        let out = drain(&mut c, t(50), &mut st);
        assert_eq!(parse(&c, &out[0]).ack.0, s0 + 1460);
        // Every second full-sized segment is ACKed at once.
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 1460, OUR_ISS + 1, 65535, &full),
            t(60),
            &mut st,
        );
        assert!(drain(&mut c, t(60), &mut st).is_empty());
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 2920, OUR_ISS + 1, 65535, &full),
            t(61),
            &mut st,
        );
        let out = drain(&mut c, t(61), &mut st);
        assert_eq!(out.len(), 1);
        assert_eq!(parse(&c, &out[0]).ack.0, s0 + 4380);
        assert_eq!(c.poll_timeout(), None);
        // Data to send piggy-backs the pending ACK.
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 4380, OUR_ISS + 1, 65535, b"q"),
            t(70),
            &mut st,
        );
        c.send(b"answer").unwrap();
        let out = drain(&mut c, t(70), &mut st);
        assert_eq!(out.len(), 1);
        let r = parse(&c, &out[0]);
        assert_eq!(r.payload, b"answer");
        assert_eq!(r.ack.0, s0 + 4381);
        assert!(!c.delack_at.armed());
    }

    #[test]
    fn receive_storage_kept_while_streaming_freed_after_push() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        let s0 = PEER_ISS + 1;
        let full = [1u8; 1460];
        let mut buf = [0u8; 2000];
        c.handle_segment(
            &seg(TcpFlags::ACK, s0, OUR_ISS + 1, 65535, &full),
            t(2),
            &mut st,
        );
        assert_eq!(c.recv(&mut buf), Ok(1460));
        assert!(c.allocated() > 0, "streaming: no free/realloc per segment");
        let last = seg(
            TcpFlags::ACK | TcpFlags::PSH,
            s0 + 1460,
            OUR_ISS + 1,
            65535,
            b"end",
        );
        c.handle_segment(&last, t(3), &mut st);
        assert_eq!(c.recv(&mut buf), Ok(3));
        assert_eq!(c.allocated(), 0);
    }

    #[test]
    fn nagle_with_and_without_nodelay() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        c.send(b"a").unwrap();
        assert!(c.data_ready(t(2)));
        assert_eq!(drain(&mut c, t(2), &mut st).len(), 1);
        c.send(b"b").unwrap();
        c.send(b"c").unwrap();
        assert!(
            !c.data_ready(t(2)),
            "Nagle holds a small segment while one is unacked"
        );
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 2, 65535, &[]),
            t(3),
            &mut st,
        );
        let out = drain(&mut c, t(3), &mut st);
        assert_eq!(out.len(), 1);
        assert_eq!(parse(&c, &out[0]).payload, b"bc");
        c.set_nodelay(true);
        c.send(b"d").unwrap();
        assert!(c.data_ready(t(3)));
        let out = drain(&mut c, t(3), &mut st);
        assert_eq!(parse(&c, &out[0]).payload, b"d");
        // Minshall: with only full-sized segments unacknowledged a small one may go.
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 5, 65535, &[]),
            t(4),
            &mut st,
        );
        c.send(&[7u8; 536]).unwrap();
        c.set_nodelay(false);
        assert_eq!(drain(&mut c, t(4), &mut st).len(), 1);
        c.send(b"small").unwrap();
        let out = drain(&mut c, t(4), &mut st);
        assert_eq!(parse(&c, &out[0]).payload, b"small");
        c.send(b"held").unwrap();
        assert!(!c.data_ready(t(4)));
        c.handle_segment(
            &seg(
                TcpFlags::ACK,
                PEER_ISS + 1,
                OUR_ISS + 5 + 536 + 5,
                65535,
                &[],
            ),
            t(5),
            &mut st,
        );
        assert_eq!(drain(&mut c, t(5), &mut st).len(), 1);
        // A full segment is never held.
        c.set_nodelay(false);
        c.send(&[0u8; 600]).unwrap();
        let out = drain(&mut c, t(3), &mut st);
        assert_eq!(out.len(), 1);
        assert_eq!(parse(&c, &out[0]).payload.len(), 536);
    }

    #[test]
    fn zero_window_persist_probes_and_reopen() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        let s0 = PEER_ISS + 1;
        // Peer closes its window.
        c.handle_segment(&seg(TcpFlags::ACK, s0, OUR_ISS + 1, 0, &[]), t(2), &mut st);
        c.send(b"blocked").unwrap();
        assert!(!c.data_ready(t(2)));
        assert!(drain(&mut c, t(2), &mut st).is_empty());
        let p1 = c.poll_timeout().unwrap();
        assert_eq!(p1, t(202)); // RTO (200 ms after the handshake sample)
        c.handle_timeout(p1, &mut st);
        let out = drain(&mut c, p1, &mut st);
        assert_eq!(out.len(), 1);
        let probe = parse(&c, &out[0]);
        assert_eq!(probe.seq.0, OUR_ISS); // SND.UNA - 1
        assert!(probe.payload.is_empty());
        assert_eq!(st.window_probes, 1);
        let p2 = c.poll_timeout().unwrap();
        assert!(p2 - p1 > p1 - t(2), "persist backs off");
        c.handle_timeout(p2, &mut st);
        assert_eq!(drain(&mut c, p2, &mut st).len(), 1);
        assert_eq!(st.window_probes, 2);
        // Window reopens: data flows, persist stops.
        c.handle_segment(&seg(TcpFlags::ACK, s0, OUR_ISS + 1, 1000, &[]), p2, &mut st);
        let out = drain(&mut c, p2, &mut st);
        assert_eq!(parse(&c, &out[0]).payload, b"blocked");
        assert_eq!(c.persist_at.get(), None);
    }

    #[test]
    fn our_zero_window_and_window_update() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            recv_buffer: 4096,
            ..plain_cfg()
        };
        let mut c = passive(&cfg, TcpOptions::default(), &mut st);
        let s0 = PEER_ISS + 1;
        let d = [1u8; 4096];
        c.handle_segment(
            &seg(TcpFlags::ACK, s0, OUR_ISS + 1, 65535, &d[..536]),
            t(2),
            &mut st,
        );
        let mut s = s0 + 536;
        let mut off = 536;
        while off < 4096 {
            let n = (4096 - off).min(1460);
            c.handle_segment(
                &seg(TcpFlags::ACK, s, OUR_ISS + 1, 65535, &d[..n]),
                t(2),
                &mut st,
            );
            s += n as u32;
            off += n;
        }
        let out = drain(&mut c, t(2), &mut st);
        let r = parse(&c, out.last().unwrap());
        assert_eq!(r.window, 0);
        // More data is outside the zero window: dropped and ACKed.
        c.handle_segment(
            &seg(TcpFlags::ACK, s, OUR_ISS + 1, 65535, b"zz"),
            t(3),
            &mut st,
        );
        assert_eq!(c.recv_available(), 4096);
        drain(&mut c, t(3), &mut st);
        let mut buf = [0u8; 100];
        c.recv(&mut buf).unwrap();
        // Reading 100 bytes is below min(buffer/2, MSS): no update (receiver SWS avoidance).
        assert!(drain(&mut c, t(3), &mut st).is_empty());
        let mut big = [0u8; 3000];
        c.recv(&mut big).unwrap();
        let out = drain(&mut c, t(3), &mut st);
        assert_eq!(out.len(), 1);
        assert_eq!(parse(&c, &out[0]).window, 3100);
    }

    #[test]
    fn tail_loss_probe_repairs_lost_tail_without_rto() {
        let mut st = TcpStats::default();
        let opts = TcpOptions {
            mss: Some(1000),
            ..Default::default()
        };
        let (mut c, _) = with_flight(&plain_cfg(), opts, 3, &mut st);
        let una = OUR_ISS + 1;
        // SRTT is 1 ms (handshake): PTO = max(2*SRTT, 10 ms) with three segments out.
        assert_eq!(c.poll_timeout(), Some(t(12)));
        c.handle_timeout(t(12), &mut st);
        let out = drain(&mut c, t(12), &mut st);
        assert_eq!(out.len(), 1);
        let probe = parse(&c, &out[0]);
        assert_eq!((probe.seq.0, probe.payload.len()), (una + 2000, 1000));
        assert_eq!(st.retransmitted_segments, 1);
        // Then the real RTO is armed, and no second probe.
        assert_eq!(c.poll_timeout(), Some(t(212)));
        // The probe filled the tail: everything is acknowledged, no RTO ever fires.
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, una + 3000, 65535, &[]),
            t(20),
            &mut st,
        );
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(st.rto_expiries, 0);
        // A single segment out waits for a delayed ACK too: 10 ms + 200 ms, capped by the RTO.
        c.send(&[1u8; 1000]).unwrap();
        drain(&mut c, t(30), &mut st);
        assert_eq!(c.poll_timeout(), Some(t(30 + 200)));
    }

    #[test]
    fn answered_tail_loss_probe_starts_sack_recovery() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            sack: true,
            ..plain_cfg()
        };
        let opts = TcpOptions {
            mss: Some(1000),
            sack_permitted: true,
            ..Default::default()
        };
        let (mut c, _) = with_flight(&cfg, opts, 4, &mut st);
        let una = OUR_ISS + 1;
        // Segment 2 lost, 3 SACKed: one SACKed segment is below DupThresh, no recovery.
        let mut a = seg(TcpFlags::ACK, PEER_ISS + 1, una + 2000, 65535, &[]);
        a.options
            .sack
            .push(SeqNumber(una + 3000), SeqNumber(una + 4000));
        c.handle_segment(&a, t(5), &mut st);
        assert_eq!(c.recovery, Recovery::None);
        assert!(drain(&mut c, t(5), &mut st).is_empty());
        // PTO: probe with the last segment; its answer repeats the same SACK.
        let pto = c.poll_timeout().unwrap();
        assert!(pto < t(100));
        c.handle_timeout(pto, &mut st);
        let out = drain(&mut c, pto, &mut st);
        assert_eq!(parse(&c, &out[0]).seq.0, una + 3000);
        c.handle_segment(&a, pto + Duration::from_millis(2), &mut st);
        assert_eq!(c.recovery, Recovery::Sack);
        let out = drain(&mut c, pto + Duration::from_millis(2), &mut st);
        assert_eq!(out.len(), 1);
        assert_eq!(parse(&c, &out[0]).seq.0, una + 2000);
        assert_eq!(st.rto_expiries, 0);
    }

    #[test]
    fn rto_go_back_n_skips_sacked_data() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            sack: true,
            tail_loss_probe: false,
            ..plain_cfg()
        };
        let opts = TcpOptions {
            mss: Some(1000),
            sack_permitted: true,
            ..Default::default()
        };
        let (mut c, _) = with_flight(&cfg, opts, 6, &mut st);
        let una = OUR_ISS + 1;
        // Segments 2 and 3 SACKed (not enough for DupThresh), then silence: RTO.
        let mut a = seg(TcpFlags::ACK, PEER_ISS + 1, una, 65535, &[]);
        a.options
            .sack
            .push(SeqNumber(una + 2000), SeqNumber(una + 4000));
        c.handle_segment(&a, t(5), &mut st);
        assert_eq!(c.recovery, Recovery::None);
        let rto = c.poll_timeout().unwrap();
        c.handle_timeout(rto, &mut st);
        let mut sent = Vec::new();
        let mut now = rto;
        for _ in 0..6 {
            for s in drain(&mut c, now, &mut st) {
                let r = parse(&c, &s);
                if !r.payload.is_empty() {
                    sent.push(r.seq.0 - una);
                }
            }
            // Cumulative ACK of what was retransmitted so far (plus the SACKed part).
            now += Duration::from_millis(1);
            let acked = match sent.last() {
                Some(&s) if s + 1000 >= 2000 && s < 4000 => 4000,
                Some(&s) => s + 1000,
                None => 0,
            };
            let mut a = seg(TcpFlags::ACK, PEER_ISS + 1, una + acked, 65535, &[]);
            if acked < 2000 {
                a.options
                    .sack
                    .push(SeqNumber(una + 2000), SeqNumber(una + 4000));
            }
            c.handle_segment(&a, now, &mut st);
        }
        assert_eq!(sent, vec![0, 1000, 4000, 5000]);
        assert_eq!(c.send_queued(), 0);
    }

    #[test]
    fn rto_backoff_go_back_n_and_give_up() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            max_retransmits: 3,
            tail_loss_probe: false,
            ..plain_cfg()
        };
        let mut c = passive(&cfg, TcpOptions::default(), &mut st);
        c.send(&[9u8; 1072]).unwrap();
        let out = drain(&mut c, t(2), &mut st);
        assert_eq!(out.len(), 2);
        let mut last = t(2);
        let mut gaps = Vec::new();
        while let Some(d) = c.poll_timeout() {
            gaps.push((d - last).total_millis());
            last = d;
            c.handle_timeout(d, &mut st);
            let out = drain(&mut c, d, &mut st);
            if c.state() == State::Established {
                // Only one segment (cwnd = 1 MSS after RTO), starting at SND.UNA.
                assert_eq!(out.len(), 1);
                assert_eq!(parse(&c, &out[0]).seq.0, OUR_ISS + 1);
            } else {
                assert_eq!(parse(&c, &out[0]).flags, TcpFlags::RST | TcpFlags::ACK);
            }
        }
        // RTO 200 ms (1 ms handshake sample, clamped to rto_min), doubling.
        assert_eq!(gaps, vec![200, 400, 800, 1600]);
        assert_eq!(st.rto_expiries, 3);
        assert_eq!(st.timeouts, 1);
        assert_eq!(c.close_reason(), CloseReason::Timeout);
    }

    /// A connection with `n` full segments in flight; returns them.
    fn with_flight(
        cfg: &TcpConfig,
        opts: TcpOptions,
        n: usize,
        st: &mut TcpStats,
    ) -> (Connection, Vec<Vec<u8>>) {
        let mut c = passive(cfg, opts, st);
        let mss = c.smss() as usize;
        c.send(&vec![3u8; mss * n]).unwrap();
        let out = drain(&mut c, t(2), st);
        assert_eq!(out.len(), n);
        (c, out)
    }

    #[test]
    fn repeated_rto_holds_ssthresh() {
        for congestion in [CongestionAlgorithm::NewReno, CongestionAlgorithm::Cubic] {
            let mut st = TcpStats::default();
            let cfg = TcpConfig {
                congestion,
                tail_loss_probe: false,
                ..plain_cfg()
            };
            let opts = TcpOptions {
                mss: Some(1000),
                ..Default::default()
            };
            let (mut c, _) = with_flight(&cfg, opts, 10, &mut st);
            let first = c.poll_timeout().expect("RTO armed");
            c.handle_timeout(first, &mut st);
            let after_first = c.cc.ssthresh();
            // FlightSize was 10 segments: NewReno halves it, CUBIC keeps 0.7 of it.
            assert!(after_first >= 5_000, "{congestion}: ssthresh {after_first}");
            let out = drain(&mut c, first, &mut st);
            assert_eq!(out.len(), 1, "loss window: one segment from SND.UNA");
            // The resent segment is lost too: only it is in flight when the timer fires again.
            let second = c.poll_timeout().expect("RTO re-armed");
            c.handle_timeout(second, &mut st);
            assert_eq!(st.rto_expiries, 2);
            assert_eq!(c.cc.ssthresh(), after_first, "{congestion}: RFC 5681 3.1");
            assert_eq!(c.cwnd(), 1000);
        }
    }

    #[test]
    fn fast_retransmit_after_three_dupacks_newreno() {
        let mut st = TcpStats::default();
        let opts = TcpOptions {
            mss: Some(1000),
            ..Default::default()
        };
        let (mut c, _) = with_flight(&plain_cfg(), opts, 10, &mut st);
        let una = OUR_ISS + 1;
        // Segment 0 lost; 1 and 2 produce dupacks: limited transmit allows new data? none queued.
        for i in 0..3 {
            c.handle_segment(
                &seg(TcpFlags::ACK, PEER_ISS + 1, una, 65535, &[]),
                t(10 + i),
                &mut st,
            );
            if i < 2 {
                assert!(!c.data_ready(t(10)));
            }
        }
        assert_eq!(st.fast_recoveries, 1);
        let out = drain(&mut c, t(13), &mut st);
        assert_eq!(out.len(), 1);
        let r = parse(&c, &out[0]);
        assert_eq!(r.seq.0, una);
        assert_eq!(r.payload.len(), 1000);
        assert_eq!(st.retransmitted_segments, 1);
        // Partial ACK (segments 0..3 arrived, 3 lost too): retransmit segment 3 at once.
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, una + 3000, 65535, &[]),
            t(20),
            &mut st,
        );
        let out = drain(&mut c, t(20), &mut st);
        assert_eq!(parse(&c, &out[0]).seq.0, una + 3000);
        // Full ACK ends recovery.
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, una + 10000, 65535, &[]),
            t(30),
            &mut st,
        );
        assert_eq!(c.recovery, Recovery::None);
        assert_eq!(c.send_queued(), 0);
        assert_eq!(c.cwnd(), c.cc.ssthresh());
    }

    #[test]
    fn limited_transmit_sends_new_data_on_first_dupacks() {
        let mut st = TcpStats::default();
        let opts = TcpOptions {
            mss: Some(1000),
            ..Default::default()
        };
        let (mut c, _) = with_flight(&plain_cfg(), opts, 10, &mut st);
        c.send(&[1u8; 3000]).unwrap();
        assert!(!c.data_ready(t(3)), "cwnd full");
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 1, 65535, &[]),
            t(10),
            &mut st,
        );
        assert_eq!(drain(&mut c, t(10), &mut st).len(), 1);
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 1, 65535, &[]),
            t(11),
            &mut st,
        );
        assert_eq!(drain(&mut c, t(11), &mut st).len(), 1);
    }

    /// A SACK connection with ten 1000-byte segments in flight and nothing more to send.
    fn sack_flight(st: &mut TcpStats) -> Connection {
        let cfg = TcpConfig {
            sack: true,
            ..plain_cfg()
        };
        let opts = TcpOptions {
            mss: Some(1000),
            sack_permitted: true,
            ..Default::default()
        };
        with_flight(&cfg, opts, 10, st).0
    }

    /// Sequence number of byte `k * 1000` of [`sack_flight`]'s data.
    fn sack_seg(k: u32) -> SeqNumber {
        SeqNumber(OUR_ISS + 1 + k * 1000)
    }

    /// The peer ACKs up to segment `acked` and SACKs segments `[l, r)` for each block.
    fn sack_ack(
        c: &mut Connection,
        blocks: &[(u32, u32)],
        acked: u32,
        now: u64,
        st: &mut TcpStats,
    ) {
        let mut r = seg(TcpFlags::ACK, PEER_ISS + 1, sack_seg(acked).0, 65535, &[]);
        for &(l, rr) in blocks {
            r.options.sack.push(sack_seg(l), sack_seg(rr));
        }
        c.handle_segment(&r, t(now), st);
    }

    /// What the connection sends now: (offset from the first data byte, length) per segment.
    fn sent_ranges(c: &mut Connection, now: u64, st: &mut TcpStats) -> Vec<(u32, usize)> {
        drain(c, t(now), st)
            .iter()
            .map(|s| {
                let r = parse(c, s);
                (r.seq.0 - sack_seg(0).0, r.payload.len())
            })
            .collect()
    }

    #[test]
    fn sack_recovery_retransmits_exactly_the_holes() {
        let mut st = TcpStats::default();
        let mut c = sack_flight(&mut st);
        // Segments 2 and 5 lost; the receiver SACKs the rest as they arrive.
        sack_ack(&mut c, &[], 1, 10, &mut st);
        sack_ack(&mut c, &[], 2, 10, &mut st);
        sack_ack(&mut c, &[(3, 4)], 2, 11, &mut st);
        sack_ack(&mut c, &[(3, 5)], 2, 12, &mut st);
        assert_eq!(c.recovery, Recovery::None);
        sack_ack(&mut c, &[(6, 7), (3, 5)], 2, 13, &mut st);
        // 3 segments SACKed above segment 2: it is lost; recovery starts.
        assert_eq!(c.recovery, Recovery::Sack);
        assert_eq!(st.sack_recoveries, 1);
        assert_eq!(sent_ranges(&mut c, 13, &mut st), vec![(2000, 1000)]);
        sack_ack(&mut c, &[(6, 8), (3, 5)], 2, 14, &mut st);
        sack_ack(&mut c, &[(6, 9), (3, 5)], 2, 15, &mut st);
        // Segment 5 is lost (rule 1); segment 9 is not, but with no new data to send and room in
        // cwnd, rule 3 resends it too.
        assert_eq!(
            sent_ranges(&mut c, 15, &mut st),
            vec![(5000, 1000), (9000, 1000)]
        );
        assert_eq!(st.sack_retransmits, 3);
        sack_ack(&mut c, &[(6, 10)], 5, 20, &mut st);
        assert_eq!(c.recovery, Recovery::Sack);
        sack_ack(&mut c, &[], 10, 21, &mut st);
        assert_eq!(c.recovery, Recovery::None);
        assert!(c.scoreboard.is_none());
        assert!(st.sack_blocks_received >= 8);
    }

    #[test]
    fn sack_recovery_without_new_data_retransmits_unsacked_tail_rule_3() {
        let mut st = TcpStats::default();
        let mut c = sack_flight(&mut st);
        // Segment 0 lost; 1..=3 SACKed: recovery, rule 1 resends segment 0.
        for (hi, now) in [(2, 10), (3, 11), (4, 12)] {
            sack_ack(&mut c, &[(1, hi)], 0, now, &mut st);
        }
        assert_eq!(c.recovery, Recovery::Sack);
        assert_eq!(sent_ranges(&mut c, 12, &mut st), vec![(0, 1000)]);
        // 1..=7 SACKed: segments 8 and 9 are not lost (nothing SACKed above them) and there is
        // no new data, but pipe (8, 9 and the resent 0) leaves cwnd room: rule 3 resends them.
        for (hi, now) in [(6, 13), (8, 14)] {
            sack_ack(&mut c, &[(1, hi)], 0, now, &mut st);
        }
        assert_eq!(
            sent_ranges(&mut c, 14, &mut st),
            vec![(8000, 1000), (9000, 1000)]
        );
        // Nothing un-SACKed is left above HighRxt: nothing more.
        sack_ack(&mut c, &[(1, 8)], 0, 15, &mut st);
        assert!(sent_ranges(&mut c, 15, &mut st).is_empty());
        assert_eq!(st.sack_retransmits, 3);
    }

    /// Segment indices (of 1000 bytes, from the first data byte) the connection sends now.
    fn sent_segs(c: &mut Connection, now: u64, st: &mut TcpStats) -> Vec<u32> {
        sent_ranges(c, now, st)
            .into_iter()
            .map(|(off, len)| {
                assert_eq!((off % 1000, len), (0, 1000));
                off / 1000
            })
            .collect()
    }

    /// [`sack_flight`] with 30 more segments queued, segment 0 lost and SACK recovery under
    /// way: the peer SACKs 1..=13 as they arrive; segment 0 is retransmitted (SND.MAX was 14
    /// then) and new data 14..=21 goes out one segment per ACK. Returns the time of the last ACK.
    fn recovering_with_new_data(c: &mut Connection, st: &mut TcpStats) -> u64 {
        c.send(&[4u8; 30_000]).unwrap();
        let mut sent = Vec::new();
        for hi in 2..=14 {
            sack_ack(c, &[(1, hi)], 0, 8 + hi as u64, st);
            sent.extend(sent_segs(c, 8 + hi as u64, st));
        }
        assert_eq!(c.recovery, Recovery::Sack);
        assert_eq!(c.recover, sack_seg(14));
        // Limited transmit sends 10..=13 before recovery starts.
        assert_eq!(
            sent,
            vec![10, 11, 12, 13, 0, 14, 15, 16, 17, 18, 19, 20, 21]
        );
        22
    }

    #[test]
    fn lost_retransmission_is_resent_once_data_sent_after_it_is_sacked() {
        let mut st = TcpStats::default();
        let mut c = sack_flight(&mut st);
        let mut now = recovering_with_new_data(&mut c, &mut st);
        let rto_at = c.poll_timeout().unwrap();
        // The retransmission of 0 is lost. 1..=13 were SACKed, but all of them were sent before
        // it; then 14 and 15, sent after it, are SACKed: fewer than DupThresh segments, so it
        // may still arrive, and nothing is resent.
        for hi in [15, 16] {
            now += 1;
            sack_ack(&mut c, &[(1, hi)], 0, now, &mut st);
            assert_eq!(sent_segs(&mut c, now, &mut st), vec![hi + 7]);
        }
        assert_eq!(st.lost_retransmissions, 0);
        // A third segment sent after it is SACKed: it is lost, and resent at once, first.
        now += 1;
        sack_ack(&mut c, &[(1, 17)], 0, now, &mut st);
        assert_eq!(sent_segs(&mut c, now, &mut st), vec![0, 24]);
        assert_eq!(st.lost_retransmissions, 1);
        assert_eq!(st.sack_retransmits, 2);
        assert_eq!(st.rto_expiries, 0);
        assert!(t(now) < rto_at, "before the RTO");
        // The resend gets a whole RTO of its own.
        assert_eq!(c.poll_timeout(), Some(t(now) + c.rto()));
        // It is watched again: further SACKs of data sent before it do not resend it, and its
        // arrival ends recovery.
        now += 1;
        sack_ack(&mut c, &[(1, 18)], 0, now, &mut st);
        assert_eq!(sent_segs(&mut c, now, &mut st), vec![25]);
        now += 1;
        sack_ack(&mut c, &[], 26, now, &mut st);
        assert_eq!(c.recovery, Recovery::None);
        assert_eq!(st.lost_retransmissions, 1);
        assert!(c.scoreboard.is_none());
    }

    #[test]
    fn back_to_back_episode_does_not_resend_a_hole_still_in_flight() {
        let mut st = TcpStats::default();
        let mut c = sack_flight(&mut st);
        let mut now = recovering_with_new_data(&mut c, &mut st);
        // Segment 15 (new data, above the recovery point 14) is lost too, and so is the
        // retransmission of 0. SACKs of 16 and up find both lost within episode 1.
        let mut sent = Vec::new();
        for hi in 17..=20 {
            now += 1;
            sack_ack(&mut c, &[(16, hi), (1, 15)], 0, now, &mut st);
            sent.extend(sent_segs(&mut c, now, &mut st));
        }
        assert_eq!(sent, vec![22, 23, 0, 24, 15, 25, 26]);
        assert_eq!(st.lost_retransmissions, 1);
        // The second copy of 0 arrives: SND.UNA = 15 passes the recovery point, episode 1 ends
        // with the retransmission of 15 still in flight.
        now += 1;
        sack_ack(&mut c, &[(16, 20)], 15, now, &mut st);
        assert_eq!(c.recovery, Recovery::None);
        assert_eq!(sent_segs(&mut c, now, &mut st), vec![27]);
        // The next SACK starts episode 2 (15 is un-SACKed below 16..=20), which must not send
        // 15 a third time while its retransmission is in flight: new data instead.
        now += 1;
        sack_ack(&mut c, &[(16, 21)], 15, now, &mut st);
        assert_eq!(c.recovery, Recovery::Sack);
        assert_eq!(st.sack_recoveries, 2);
        let mut sent = sent_segs(&mut c, now, &mut st);
        // That retransmission (sent when SND.MAX was 25) is lost as well: once 25..=27 are
        // SACKed, episode 2 resends it.
        for hi in 22..=28 {
            now += 1;
            sack_ack(&mut c, &[(16, hi)], 15, now, &mut st);
            sent.extend(sent_segs(&mut c, now, &mut st));
        }
        assert_eq!(sent, vec![28, 29, 30, 31, 32, 33, 34, 15, 35]);
        assert_eq!(st.lost_retransmissions, 2);
        assert_eq!(st.rto_expiries, 0);
    }

    #[test]
    fn answered_tail_loss_probe_resends_holes_retransmitted_before() {
        let mut st = TcpStats::default();
        let mut c = sack_flight(&mut st);
        let mut now = recovering_with_new_data(&mut c, &mut st);
        // As in the back-to-back test: 15 and the first retransmission of 0 lost, both resent,
        // then episode 1 ends with the retransmission of 15 in flight.
        for hi in 17..=20 {
            now += 1;
            sack_ack(&mut c, &[(16, hi), (1, 15)], 0, now, &mut st);
            drain(&mut c, t(now), &mut st);
        }
        now += 1;
        sack_ack(&mut c, &[(16, 20)], 15, now, &mut st);
        assert_eq!(sent_segs(&mut c, now, &mut st), vec![27]);
        // Then silence: the probe timeout resends the last segment (cwnd is full), and its
        // answer SACKs only the probe. The holes below it were sent more than a PTO ago and are
        // lost, the earlier retransmission of 15 included: resend it first rather than wait
        // for the RTO.
        let pto = c.poll_timeout().unwrap();
        assert!(c.has(F_PTO));
        c.handle_timeout(pto, &mut st);
        let probe_at = pto.total_millis();
        assert_eq!(sent_segs(&mut c, probe_at, &mut st), vec![27]);
        sack_ack(&mut c, &[(27, 28), (16, 20)], 15, probe_at + 1, &mut st);
        assert_eq!(c.recovery, Recovery::Sack);
        assert_eq!(sent_segs(&mut c, probe_at + 1, &mut st)[0], 15);
        assert_eq!(st.rto_expiries, 0);
    }

    /// A NewReno connection (ssthresh = FlightSize / 2) with twenty 1000-byte segments in
    /// flight and nothing more queued, SACK on or off.
    fn twenty_in_flight(sack: bool, st: &mut TcpStats) -> Connection {
        let cfg = TcpConfig {
            sack,
            congestion: CongestionAlgorithm::NewReno,
            initial_window_segments: 20,
            ..plain_cfg()
        };
        let opts = TcpOptions {
            mss: Some(1000),
            sack_permitted: sack,
            ..Default::default()
        };
        with_flight(&cfg, opts, 20, st).0
    }

    /// RFC 6937's first example: 20 segments in flight, segment 0 lost, ssthresh 10; the
    /// receiver SACKs 1..=19 one by one, and new data is waiting once recovery starts.
    /// RecoverFS = pipe = 16 segments (20 less 3 SACKed and 1 lost), so PRR sends 10 per 16
    /// delivered: the fast retransmission at once, then new data on about every other ACK,
    /// until pipe is down to ssthresh; then one per ACK. RFC 6675 alone (cwnd = ssthresh)
    /// would send nothing, the retransmission included, for the first 7 ACKs.
    #[test]
    fn prr_spreads_the_reduction_over_the_recovery_round_trip() {
        let mut st = TcpStats::default();
        let mut c = twenty_in_flight(true, &mut st);
        sack_ack(&mut c, &[(1, 2)], 0, 10, &mut st);
        sack_ack(&mut c, &[(1, 3)], 0, 11, &mut st);
        sack_ack(&mut c, &[(1, 4)], 0, 12, &mut st);
        assert_eq!(c.recovery, Recovery::Sack);
        assert_eq!(c.cc.ssthresh(), 10_000);
        assert_eq!(c.prr.recover_fs, 16_000);
        c.send(&[4u8; 30_000]).unwrap();
        let mut per_ack = vec![sent_segs(&mut c, 12, &mut st)];
        for hi in 5..=20 {
            sack_ack(&mut c, &[(1, hi)], 0, 8 + hi as u64, &mut st);
            per_ack.push(sent_segs(&mut c, 8 + hi as u64, &mut st));
        }
        let none: Vec<u32> = Vec::new();
        assert_eq!(
            per_ack,
            vec![
                vec![0],
                none.clone(),
                none.clone(),
                vec![20],
                vec![21],
                none.clone(),
                vec![22],
                vec![23],
                none.clone(),
                vec![24],
                none.clone(),
                vec![25],
                vec![26],
                none.clone(),
                none.clone(),
                vec![27],
                vec![28],
            ]
        );
        // pipe = the 9 new segments and the retransmission: ssthresh, as recovery ends.
        let mss = c.seg_mss();
        assert_eq!(c.recovery_pipe(mss), 10_000);
        assert_eq!(c.prr.out, 10_000);
        assert_eq!(c.prr.delivered, 17_000);
        sack_ack(&mut c, &[], 20, 30, &mut st);
        assert_eq!(c.recovery, Recovery::None);
        assert!(!c.has(F_PRR));
        assert_eq!(c.cwnd(), 10_000);
    }

    /// RFC 6937's PRR-SSRB case: 20 in flight, segments 0..=11 lost, 12..=19 SACKed one by
    /// one. pipe (5 segments) is already below ssthresh (10) when recovery starts: RFC 6675
    /// would resend 5 segments in one burst; PRR-SSRB catches up like slow start, at most one
    /// MSS beyond what each ACK reports delivered.
    #[test]
    fn prr_ssrb_catches_up_at_most_one_mss_beyond_delivery() {
        let mut st = TcpStats::default();
        let mut c = twenty_in_flight(true, &mut st);
        sack_ack(&mut c, &[(12, 13)], 0, 10, &mut st);
        sack_ack(&mut c, &[(12, 14)], 0, 11, &mut st);
        sack_ack(&mut c, &[(12, 15)], 0, 12, &mut st);
        assert_eq!(c.recovery, Recovery::Sack);
        let mss = c.seg_mss();
        assert_eq!(c.recovery_pipe(mss), 5_000);
        let mut per_ack = vec![sent_segs(&mut c, 12, &mut st)];
        for hi in 16..=20 {
            sack_ack(&mut c, &[(12, hi)], 0, hi as u64, &mut st);
            per_ack.push(sent_segs(&mut c, hi as u64, &mut st));
        }
        assert_eq!(
            per_ack,
            vec![
                vec![0, 1],
                vec![2, 3],
                vec![4, 5],
                vec![6, 7],
                vec![8],
                vec![9]
            ]
        );
        assert_eq!(c.recovery_pipe(mss), 10_000, "pipe reached ssthresh");
        assert_eq!(st.rto_expiries, 0);
    }

    /// NewReno recovery (no SACK) under PRR, DeliveredData estimated as one MSS per duplicate
    /// ACK: the fast retransmission at once, then new data spread over the duplicate ACKs
    /// (RecoverFS = 17 segments: 20 less the 3 duplicate ACKs), instead of nothing until the
    /// inflated window passes the flight (the 8th duplicate ACK) and then one per ACK.
    #[test]
    fn prr_paces_newreno_recovery_by_duplicate_acks() {
        let mut st = TcpStats::default();
        let mut c = twenty_in_flight(false, &mut st);
        let una = sack_seg(0).0;
        let dupack = |c: &mut Connection, now: u64, st: &mut TcpStats| {
            c.handle_segment(
                &seg(TcpFlags::ACK, PEER_ISS + 1, una, 65535, &[]),
                t(now),
                st,
            );
        };
        for now in 10..13 {
            dupack(&mut c, now, &mut st);
        }
        assert_eq!(c.recovery, Recovery::NewReno);
        assert_eq!(c.prr.recover_fs, 17_000);
        c.send(&[4u8; 30_000]).unwrap();
        let mut per_ack = vec![sent_segs(&mut c, 12, &mut st)];
        for now in 13..29 {
            dupack(&mut c, now, &mut st);
            per_ack.push(sent_segs(&mut c, now, &mut st));
        }
        assert_eq!(per_ack[0], vec![0], "fast retransmission at once");
        let sent: Vec<usize> = per_ack.iter().map(Vec::len).collect();
        assert!(sent.iter().all(|&n| n <= 1), "{per_ack:?}");
        // 17 segments reported delivered: ceil(17 * 10 / 17) = 10 sent, no more.
        assert_eq!(sent.iter().sum::<usize>(), 10, "{per_ack:?}");
        assert!(sent[1..8].iter().sum::<usize>() >= 3, "{per_ack:?}");
        // A partial ACK (0..=4 arrived): the next hole goes at once.
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, sack_seg(5).0, 65535, &[]),
            t(30),
            &mut st,
        );
        assert_eq!(sent_segs(&mut c, 30, &mut st)[0], 5);
        let max = c.snd_max.0;
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, max, 65535, &[]),
            t(40),
            &mut st,
        );
        assert_eq!(c.recovery, Recovery::None);
        assert!(!c.has(F_PRR));
    }

    /// BBR keeps its own recovery: PRR never engages.
    #[test]
    fn prr_leaves_bbr_alone() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            sack: true,
            congestion: CongestionAlgorithm::Bbr,
            initial_window_segments: 20,
            ..plain_cfg()
        };
        let opts = TcpOptions {
            mss: Some(1000),
            sack_permitted: true,
            ..Default::default()
        };
        let (mut c, _) = with_flight(&cfg, opts, 20, &mut st);
        for hi in 2..=4 {
            sack_ack(&mut c, &[(1, hi)], 0, 10 + hi as u64, &mut st);
        }
        assert_eq!(c.recovery, Recovery::Sack);
        assert!(!c.has(F_PRR));
    }

    #[test]
    fn rto_forgets_retransmissions() {
        let mut st = TcpStats::default();
        let mut c = sack_flight(&mut st);
        recovering_with_new_data(&mut c, &mut st);
        let sb = c.scoreboard.as_deref().unwrap();
        assert_eq!(sb.high_rxt(c.snd_una), sack_seg(1));
        assert!(sb.watching());
        // The RTO: go-back-N from SND.UNA, SACKed data skipped, nothing retransmitted before
        // counts any more.
        let rto = c.poll_timeout().unwrap();
        c.handle_timeout(rto, &mut st);
        assert_eq!(st.rto_expiries, 1);
        let sb = c.scoreboard.as_deref().unwrap();
        assert_eq!(sb.high_rxt(c.snd_una), c.snd_una);
        assert!(!sb.watching());
        let now = rto.total_millis();
        assert_eq!(sent_segs(&mut c, now, &mut st), vec![0]);
        // 0 arrives; 14..=22 never did: go-back-N resends them, 14 first.
        sack_ack(&mut c, &[], 14, now + 1, &mut st);
        assert_eq!(sent_segs(&mut c, now + 1, &mut st), vec![14, 15, 16]);
        assert_eq!(st.lost_retransmissions, 0);
    }

    #[test]
    fn held_back_data_is_sent_once_unchanged() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        c.set_nodelay(true);
        let msg: Vec<u8> = (0..1200u32).map(|i| i as u8).collect();
        c.send(&msg).unwrap();
        assert!(c.data_ready(t(2)));
        // Admission holds the data for a long time; the peer sends meanwhile.
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 1, 65535, b"ping"),
            t(3),
            &mut st,
        );
        let ctl: Vec<_> = {
            let mut v = Vec::new();
            let mut buf = [0u8; 1600];
            while let Some(n) = c.poll_control(t(3), &mut buf, &mut st) {
                v.push(buf[..n].to_vec());
            }
            v
        };
        assert_eq!(ctl.len(), 1, "the ACK bypasses the held data");
        assert!(c.data_ready(t(500)));
        assert_eq!(c.poll_timeout(), None, "no RTO for data never sent");
        let mut got = Vec::new();
        let mut buf = [0u8; 1600];
        while let Some(n) = c.poll_data(t(500), &mut buf, &mut st) {
            let r = parse(&c, &buf[..n]);
            assert_eq!(r.seq.0, OUR_ISS + 1 + got.len() as u32);
            got.extend_from_slice(r.payload);
        }
        assert!(got == msg);
        assert!(!c.data_ready(t(500)));
        assert_eq!(st.retransmitted_segments, 0);
    }

    #[test]
    fn close_with_unread_data_resets() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 1, 65535, b"unread"),
            t(2),
            &mut st,
        );
        c.close(t(3));
        let out = drain(&mut c, t(3), &mut st);
        let r = parse(&c, out.last().unwrap());
        assert!(r.flags.rst());
        assert!(c.is_closed());
        assert_eq!(st.resets_sent, 1);
    }

    #[test]
    fn keepalive_probes_then_timeout() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        c.set_keepalive(Some((Duration::from_secs(10), Duration::from_secs(1), 2)));
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 1, 65535, &[]),
            t(0),
            &mut st,
        );
        assert_eq!(c.poll_timeout(), Some(t(10_000)));
        c.handle_timeout(t(10_000), &mut st);
        let out = drain(&mut c, t(10_000), &mut st);
        assert_eq!(parse(&c, &out[0]).seq.0, OUR_ISS);
        c.handle_timeout(t(11_000), &mut st);
        drain(&mut c, t(11_000), &mut st);
        assert_eq!(st.keepalive_probes, 2);
        c.handle_timeout(t(12_000), &mut st);
        assert_eq!(c.close_reason(), CloseReason::Timeout);
        assert_eq!(st.timeouts, 1);
    }

    #[test]
    fn path_mtu_clamps_segment_size() {
        let mut st = TcpStats::default();
        let opts = TcpOptions {
            mss: Some(1460),
            ..Default::default()
        };
        let mut c = passive(&plain_cfg(), opts, &mut st);
        c.set_path_mtu(1000);
        c.send(&[0u8; 2000]).unwrap();
        let out = drain(&mut c, t(2), &mut st);
        assert_eq!(parse(&c, &out[0]).payload.len(), 960);
    }

    #[test]
    fn cookie_connection_is_established() {
        let cfg = TcpConfig::default();
        let mut st = TcpStats::default();
        let mut ack = seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 1, 1000, b"GET /");
        ack.options.timestamps = Some((55, 77));
        let mut c = Connection::from_cookie(
            &cfg,
            B,
            A,
            SeqNumber(OUR_ISS),
            SeqNumber(PEER_ISS),
            1400,
            Some(7),
            true,
            &ack,
            t(0),
        );
        assert_eq!(c.state(), State::Established);
        assert_eq!(c.snd_wnd, 1000 << 7);
        assert_eq!(c.recv_available(), 5);
        assert_eq!(c.smss(), 1388);
        assert_eq!(c.poll_event(), Some(ConnEvent::Connected));
        c.send(b"200").unwrap();
        let out = drain(&mut c, t(1), &mut st);
        let r = parse(&c, out.last().unwrap());
        assert_eq!(r.ack.0, PEER_ISS + 6);
        assert_eq!(r.options.timestamps.unwrap().1, 55);
    }

    #[test]
    fn ack_processed_while_our_window_is_zero() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            recv_buffer: 1000,
            ..plain_cfg()
        };
        let mut c = passive(&cfg, TcpOptions::default(), &mut st);
        let s0 = PEER_ISS + 1;
        c.set_nodelay(true);
        c.send(b"0123456789").unwrap();
        drain(&mut c, t(2), &mut st);
        // The peer fills our buffer (without ACKing our data yet).
        c.handle_segment(
            &seg(TcpFlags::ACK, s0, OUR_ISS + 1, 65535, &[5u8; 500]),
            t(3),
            &mut st,
        );
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 500, OUR_ISS + 1, 65535, &[5u8; 500]),
            t(3),
            &mut st,
        );
        let out = drain(&mut c, t(3), &mut st);
        assert_eq!(parse(&c, out.last().unwrap()).window, 0);
        // More data (unacceptable: zero window) carrying an ACK of our 10 bytes.
        c.handle_segment(
            &seg(TcpFlags::ACK, s0 + 1000, OUR_ISS + 11, 65535, b"more"),
            t(4),
            &mut st,
        );
        assert_eq!(c.send_queued(), 0, "the ACK field must be processed");
        assert_eq!(c.recv_available(), 1000);
        let out = drain(&mut c, t(4), &mut st);
        assert_eq!(parse(&c, &out[0]).ack.0, s0 + 1000);
    }

    #[test]
    fn challenge_acks_are_rate_limited() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        for i in 0..50u32 {
            c.handle_segment(
                &seg(TcpFlags::RST, PEER_ISS + 10 + i, 0, 0, &[]),
                t(1500),
                &mut st,
            );
        }
        assert_eq!(st.challenge_acks, CHALLENGE_ACK_LIMIT as u64);
        c.handle_segment(
            &seg(TcpFlags::RST, PEER_ISS + 10, 0, 0, &[]),
            t(2500),
            &mut st,
        );
        assert_eq!(st.challenge_acks, CHALLENGE_ACK_LIMIT as u64 + 1);
        assert_eq!(c.state(), State::Established);
    }

    #[test]
    fn fin_wait2_timeout_after_close() {
        let mut st = TcpStats::default();
        let mut c = passive(&plain_cfg(), TcpOptions::default(), &mut st);
        c.close(t(2));
        assert_eq!(c.state(), State::FinWait1);
        let out = drain(&mut c, t(2), &mut st);
        assert!(parse(&c, &out[0]).flags.fin());
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, OUR_ISS + 2, 65535, &[]),
            t(3),
            &mut st,
        );
        assert_eq!(c.state(), State::FinWait2);
        assert_eq!(c.poll_timeout(), Some(t(3) + Duration::from_secs(60)));
        c.handle_timeout(t(3) + Duration::from_secs(60), &mut st);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.close_reason(), CloseReason::Timeout);
        let out = drain(&mut c, t(63_003), &mut st);
        assert!(parse(&c, &out[0]).flags.rst());
        assert!(c.is_closed());
    }

    #[test]
    fn syn_received_resends_synack_and_handles_rst() {
        let mut st = TcpStats::default();
        let syn = seg(TcpFlags::SYN, PEER_ISS, 0, 65535, &[]);
        let mut c = Connection::accept_syn(&plain_cfg(), B, A, SeqNumber(OUR_ISS), &syn, t(0));
        assert_eq!(drain(&mut c, t(0), &mut st).len(), 1);
        // The peer retransmits its SYN: our SYN-ACK went missing.
        c.handle_segment(&syn, t(500), &mut st);
        let out = drain(&mut c, t(500), &mut st);
        assert_eq!(parse(&c, &out[0]).flags, TcpFlags::SYN | TcpFlags::ACK);
        // A bad ACK gets a RST; the connection stays.
        c.handle_segment(
            &seg(TcpFlags::ACK, PEER_ISS + 1, 12345, 65535, &[]),
            t(501),
            &mut st,
        );
        let out = drain(&mut c, t(501), &mut st);
        let r = parse(&c, &out[0]);
        assert_eq!((r.flags, r.seq.0), (TcpFlags::RST, 12345));
        assert_eq!(c.state(), State::SynReceived);
        c.handle_segment(
            &seg(TcpFlags::RST, PEER_ISS + 1, 0, 0, &[]),
            t(502),
            &mut st,
        );
        assert_eq!(c.close_reason(), CloseReason::Refused);
        assert!(c.is_closed());
    }

    #[test]
    fn rto_is_three_seconds_after_syn_timeout() {
        let mut st = TcpStats::default();
        let mut a = Connection::connect(&plain_cfg(), B, A, SeqNumber(OUR_ISS), t(0));
        drain(&mut a, t(0), &mut st);
        let retry = a.poll_timeout().expect("SYN timer armed");
        assert!(retry <= t(1000) + Duration::from_millis(250));
        a.handle_timeout(retry, &mut st);
        drain(&mut a, retry, &mut st);
        a.handle_segment(
            &seg(
                TcpFlags::SYN | TcpFlags::ACK,
                PEER_ISS,
                OUR_ISS + 1,
                65535,
                &[],
            ),
            t(1100),
            &mut st,
        );
        assert_eq!(a.state(), State::Established);
        a.send(b"x").unwrap();
        drain(&mut a, t(1200), &mut st);
        assert_eq!(a.poll_timeout(), Some(t(4200)));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Seg {
                flags: u8,
                dseq: i32,
                dack: i32,
                window: u16,
                len: u16,
                ts: Option<(u32, u32)>,
                sack: Vec<(i32, u16)>,
            },
            Send(u16),
            Recv(u16),
            Poll,
            Advance(u16),
            Close,
            Shutdown,
            Mtu(u16),
            DropOoo,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (
                    prop_oneof![4 => any::<u8>().prop_map(|f| 0x10 | (f & 0x09)), 1 => any::<u8>()],
                    -70_000i32..70_000,
                    -70_000i32..70_000,
                    any::<u16>(),
                    0u16..1600,
                    proptest::option::of(any::<(u32, u32)>()),
                    proptest::collection::vec((-5000i32..70_000, 0u16..5000), 0..4),
                )
                    .prop_map(|(flags, dseq, dack, window, len, ts, sack)| Op::Seg {
                        flags,
                        dseq,
                        dack,
                        window,
                        len,
                        ts,
                        sack
                    }),
                2 => (0u16..5000).prop_map(Op::Send),
                1 => (0u16..5000).prop_map(Op::Recv),
                2 => Just(Op::Poll),
                1 => (0u16..5000).prop_map(Op::Advance),
                1 => prop_oneof![Just(Op::Close), Just(Op::Shutdown), Just(Op::DropOoo)],
                1 => (0u16..2000).prop_map(Op::Mtu),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
            /// Arbitrary segments and calls never panic (debug build: overflow checks on) and
            /// keep SND.UNA <= SND.NXT <= SND.MAX.
            #[test]
            fn never_panics(ops in proptest::collection::vec(op(), 1..120), opts in any::<(bool, bool, bool)>()) {
                let mut st = TcpStats::default();
                let cfg = TcpConfig { recv_buffer: 20_000, send_buffer: 30_000, ..TcpConfig::default() };
                let syn_opts = TcpOptions {
                    mss: Some(1000),
                    window_scale: opts.0.then_some(2),
                    sack_permitted: opts.1,
                    timestamps: opts.2.then_some((100, 0)),
                    ..Default::default()
                };
                let mut c = passive(&cfg, syn_opts, &mut st);
                let payload = [0xabu8; 1600];
                let mut now = t(2);
                let mut buf = [0u8; 1600];
                for op in ops {
                    match op {
                        Op::Seg { flags, dseq, dack, window, len, ts, sack } => {
                            let mut r = seg(
                                TcpFlags(flags),
                                (c.rcv_nxt.0 as i64 + dseq as i64) as u32,
                                (c.snd_una.0 as i64 + dack as i64) as u32,
                                window,
                                &payload[..len as usize],
                            );
                            r.options.timestamps = ts;
                            for (l, n) in sack {
                                let left = c.snd_una + (l as u32);
                                r.options.sack.push(left, left + n as u32);
                            }
                            c.handle_segment(&r, now, &mut st);
                        }
                        Op::Send(n) => {
                            let _ = c.send(&payload[..(n as usize).min(1600)]);
                        }
                        Op::Recv(n) => {
                            let mut b = vec![0u8; n as usize];
                            let _ = c.recv(&mut b);
                        }
                        Op::Poll => {
                            loop {
                                let ready = c.control_ready();
                                let got = c.poll_control(now, &mut buf, &mut st).is_some();
                                prop_assert_eq!(ready, got);
                                if !got {
                                    break;
                                }
                            }
                            let mut k = 0;
                            while c.poll_data(now, &mut buf, &mut st).is_some() && k < 100 {
                                k += 1;
                            }
                        }
                        Op::Advance(ms) => {
                            now += Duration::from_millis(ms as u64 * 10);
                            c.handle_timeout(now, &mut st);
                        }
                        Op::Close => c.close(now),
                        Op::Shutdown => c.shutdown_write(now),
                        Op::Mtu(m) => c.set_path_mtu(m),
                        Op::DropOoo => c.drop_ooo(),
                    }
                    prop_assert!(c.snd_una <= c.snd_nxt && c.snd_nxt <= c.snd_max);
                    prop_assert!(c.snd_max.since(c.snd_una) as usize <= c.sendbuf.len() + 1 || c.state == State::Closed);
                    while c.poll_event().is_some() {}
                }
            }
        }
    }

    const STRESS_SEEDS: u64 = 40;

    /// Tiny deterministic PRNG (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    struct Pipe {
        q: Vec<(Instant, u64, Vec<u8>)>,
        seq: u64,
        jitter_us: u64,
        dropped: u64,
    }

    impl Pipe {
        fn push(&mut self, now: Instant, rng: &mut Rng, loss_per_mille: u64, bytes: Vec<u8>) {
            if rng.below(1000) < loss_per_mille {
                self.dropped += 1;
                return;
            }
            // 5 ms +- jitter up to 3 ms: reorders segments.
            let at = now + Duration::from_micros(5_000 + rng.below(self.jitter_us + 1));
            self.seq += 1;
            self.q.push((at, self.seq, bytes));
        }
        fn next_time(&self) -> Option<Instant> {
            self.q.iter().map(|e| e.0).min()
        }
        fn pop_due(&mut self, now: Instant) -> Vec<Vec<u8>> {
            let mut due: Vec<_> = Vec::new();
            let mut i = 0;
            while i < self.q.len() {
                if self.q[i].0 <= now {
                    due.push(self.q.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            due.sort_by_key(|e| (e.0, e.1));
            due.into_iter().map(|e| e.2).collect()
        }
    }

    struct Side {
        c: Connection,
        data: Vec<u8>,
        sent: usize,
        got: Vec<u8>,
        eof: bool,
        closed: bool,
    }

    impl Side {
        fn app(&mut self, now: Instant) {
            if self.sent < self.data.len() {
                if let Ok(n) = self.c.send(&self.data[self.sent..]) {
                    self.sent += n;
                }
            }
            if self.sent == self.data.len() && !self.closed && self.eof {
                self.c.close(now);
                self.closed = true;
            }
            let mut buf = [0u8; 8192];
            while !self.closed {
                match self.c.recv(&mut buf) {
                    Ok(0) | Err(TcpError::NotConnected) => break,
                    Ok(n) => self.got.extend_from_slice(&buf[..n]),
                    Err(TcpError::Finished) => {
                        self.eof = true;
                        break;
                    }
                    Err(e) => panic!(
                        "recv: {e:?} state {:?} reason {:?}",
                        self.c.state(),
                        self.c.close_reason()
                    ),
                }
            }
            if self.sent == self.data.len() && !self.closed && self.eof {
                self.c.close(now);
                self.closed = true;
            }
        }
    }

    struct LoopResult {
        st: TcpStats,
        /// Simulated time when both sides were done.
        elapsed: Duration,
        /// Segments the pipe dropped.
        dropped: u64,
    }

    fn loopback(cfg: &TcpConfig, seed: u64, loss: u64, jitter_us: u64, size: usize) -> LoopResult {
        let mut rng = Rng(seed);
        let mut st = TcpStats::default();
        let mk = |rng: &mut Rng| -> Vec<u8> { (0..size).map(|_| rng.next() as u8).collect() };
        let da = mk(&mut rng);
        let db = mk(&mut rng);
        let mut now = t(0);
        let a = Connection::connect(cfg, A, B, SeqNumber(rng.next() as u32), now);
        let mut sa = Side {
            c: a,
            data: da,
            sent: 0,
            got: Vec::new(),
            eof: false,
            closed: false,
        };
        let mut sb: Option<Side> = None;
        let mut ab = Pipe {
            q: Vec::new(),
            seq: 0,
            dropped: 0,
            jitter_us,
        };
        let mut ba = Pipe {
            q: Vec::new(),
            seq: 0,
            dropped: 0,
            jitter_us,
        };
        let mut buf = [0u8; 1600];
        let biss = SeqNumber(rng.next() as u32);
        // A's first close is a half-close once its data is out; B closes after EOF.
        for _step in 0..2_000_000 {
            sa.app(now);
            if sa.sent == sa.data.len() && !sa.closed && sa.c.state() == State::Established {
                sa.c.shutdown_write(now);
            }
            if let Some(b) = sb.as_mut() {
                b.app(now);
            }
            // Control first, then data; a data segment can make a control segment due (a FIN
            // retransmission after SACK-skipping go-back-N), so loop until both are quiet.
            let mut flush = |c: &mut Connection, p: &mut Pipe, rng: &mut Rng| {
                for _ in 0..1000 {
                    let mut any = false;
                    while let Some(n) = c.poll_control(now, &mut buf, &mut st) {
                        p.push(now, rng, loss, buf[..n].to_vec());
                        any = true;
                    }
                    while let Some(n) = c.poll_data(now, &mut buf, &mut st) {
                        p.push(now, rng, loss, buf[..n].to_vec());
                        any = true;
                    }
                    if !any {
                        break;
                    }
                }
                assert!(!c.control_ready() && !c.data_ready(now));
            };
            flush(&mut sa.c, &mut ab, &mut rng);
            if let Some(b) = sb.as_mut() {
                flush(&mut b.c, &mut ba, &mut rng);
            }
            let done_a = sa.c.is_closed() || sa.c.state() == State::TimeWait;
            let done_b = sb
                .as_ref()
                .is_some_and(|b| b.c.is_closed() || b.c.state() == State::TimeWait);
            if done_a && done_b {
                break;
            }
            let mut next = [
                ab.next_time(),
                ba.next_time(),
                sa.c.poll_timeout(),
                sb.as_ref().and_then(|b| b.c.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("deadlock: nothing scheduled");
            if next < now {
                next = now;
            }
            now = next;
            for s in ab.pop_due(now) {
                let r = TcpRepr::parse(&s, *A.ip(), *B.ip(), ChecksumMode::SOFTWARE).unwrap();
                match sb.as_mut() {
                    Some(b) => b.c.handle_segment(&r, now, &mut st),
                    None if r.flags == TcpFlags::SYN => {
                        let c = Connection::accept_syn(cfg, B, A, biss, &r, now);
                        sb = Some(Side {
                            c,
                            data: db.clone(),
                            sent: 0,
                            got: Vec::new(),
                            eof: false,
                            closed: false,
                        });
                    }
                    None => {}
                }
            }
            for s in ba.pop_due(now) {
                let r = TcpRepr::parse(&s, *B.ip(), *A.ip(), ChecksumMode::SOFTWARE).unwrap();
                sa.c.handle_segment(&r, now, &mut st);
            }
            sa.c.handle_timeout(now, &mut st);
            if let Some(b) = sb.as_mut() {
                b.c.handle_timeout(now, &mut st);
            }
        }
        let sb = sb.expect("B never created");
        assert_eq!(
            sa.got.len(),
            sb.data.len(),
            "A received {} of {}",
            sa.got.len(),
            sb.data.len()
        );
        assert!(sa.got == sb.data, "A's data corrupted");
        assert!(sb.got == sa.data, "B's data corrupted");
        assert!(sa.eof && sb.eof);
        assert!(matches!(sa.c.state(), State::TimeWait | State::Closed));
        assert!(matches!(sb.c.state(), State::TimeWait | State::Closed));
        assert_eq!(
            sa.c.allocated() + sb.c.allocated(),
            0,
            "buffers freed at the end"
        );
        LoopResult {
            st,
            elapsed: now - t(0),
            dropped: ab.dropped + ba.dropped,
        }
    }

    #[test]
    fn loopback_many_seeds_and_configs() {
        for seed in 0..STRESS_SEEDS {
            let cfgs = [
                TcpConfig::default(),
                plain_cfg(),
                TcpConfig {
                    sack: false,
                    recv_buffer: 8 * 1024,
                    send_buffer: 4 * 1024,
                    ..TcpConfig::default()
                },
                TcpConfig {
                    timestamps: false,
                    mss: 536,
                    recv_buffer: 3000,
                    nodelay: true,
                    ..TcpConfig::default()
                },
            ];
            for (i, cfg) in cfgs.iter().enumerate() {
                let loss = [0, 10, 50, 200][(seed as usize + i) % 4];
                let jitter = [0, 3000][(seed as usize / 2) % 2];
                let size = 20_000 + (seed as usize * 7919) % 60_000;
                let r = std::panic::catch_unwind(|| {
                    loopback(cfg, seed * 31 + i as u64, loss, jitter, size)
                });
                assert!(
                    r.is_ok(),
                    "seed {seed} cfg {i} loss {loss} jitter {jitter} size {size}"
                );
            }
        }
    }

    #[test]
    fn loopback_clean_1mb_both_ways() {
        let r = loopback(&TcpConfig::default(), 1, 0, 0, 1 << 20);
        assert_eq!(r.st.retransmitted_segments, 0);
        // 10 ms RTT, 256 KiB windows: slow start then ~25 MB/s; 1 MiB takes well under 0.5 s.
        assert!(r.elapsed < Duration::from_millis(500), "{:?}", r.elapsed);
    }

    #[test]
    fn loopback_lossy_reordering_sack() {
        let r = loopback(&TcpConfig::default(), 7, 20, 3000, 1 << 20);
        println!(
            "sack: {:?} dropped {} elapsed {:?}",
            r.st, r.dropped, r.elapsed
        );
        let st = r.st;
        assert!(st.retransmitted_segments > 0);
        assert!(st.sack_recoveries > 0, "{st:?}");
        assert!(st.ooo_segments > 0);
    }

    #[test]
    fn loopback_lossy_newreno_no_options() {
        let cfg = TcpConfig {
            congestion: crate::tcp::congestion::CongestionAlgorithm::NewReno,
            ..plain_cfg()
        };
        let r = loopback(&cfg, 99, 20, 3000, 1 << 20);
        println!(
            "newreno: {:?} dropped {} elapsed {:?}",
            r.st, r.dropped, r.elapsed
        );
        let st = r.st;
        assert!(st.fast_recoveries > 0, "{st:?}");
    }

    /// Reordering deeper than DupThresh: segment 0 is delayed, 1..=3 arrive first, so SACK
    /// recovery resends 0 and cuts the window. The delayed original arrives (cumulative ACK of
    /// everything), then the resent copy, which the receiver reports with a D-SACK block below
    /// the ACK: every retransmission of the episode was a duplicate, so the cut is undone.
    /// Without the D-SACK (a genuine loss: the resent copy was the one that arrived) it stays.
    #[test]
    fn dsack_for_every_retransmission_undoes_fast_recovery() {
        for congestion in [CongestionAlgorithm::NewReno, CongestionAlgorithm::Cubic] {
            for spurious in [true, false] {
                let mut st = TcpStats::default();
                let cfg = TcpConfig {
                    sack: true,
                    congestion,
                    ..plain_cfg()
                };
                let opts = TcpOptions {
                    mss: Some(1000),
                    sack_permitted: true,
                    ..Default::default()
                };
                let (mut c, _) = with_flight(&cfg, opts, 10, &mut st);
                let (cwnd0, ssthresh0) = (c.cwnd(), c.cc.ssthresh());
                for (hi, now) in [(2, 10), (3, 11), (4, 12)] {
                    sack_ack(&mut c, &[(1, hi)], 0, now, &mut st);
                }
                assert_eq!(c.recovery, Recovery::Sack);
                assert_eq!(sent_ranges(&mut c, 12, &mut st), vec![(0, 1000)]);
                sack_ack(&mut c, &[(1, 10)], 0, 13, &mut st);
                assert!(sent_ranges(&mut c, 13, &mut st).is_empty());
                // Segment 0 arrives (the original if spurious, else the retransmission).
                sack_ack(&mut c, &[], 10, 14, &mut st);
                assert_eq!(c.recovery, Recovery::None);
                let cut = c.cwnd();
                assert!(cut < cwnd0, "{congestion}: cwnd {cut} not cut from {cwnd0}");
                if spurious {
                    // The retransmission arrives as a duplicate: D-SACK [0, 1000) below ACK.
                    sack_ack(&mut c, &[(0, 1)], 10, 15, &mut st);
                    assert_eq!(st.dsack_blocks_received, 1);
                    assert_eq!(st.undos_recovery, 1, "{congestion}");
                    assert_eq!(c.cwnd(), cwnd0, "{congestion}: cwnd restored");
                    assert_eq!(
                        c.cc.ssthresh(),
                        ssthresh0,
                        "{congestion}: ssthresh restored"
                    );
                } else {
                    sack_ack(&mut c, &[], 10, 15, &mut st);
                    assert_eq!(st.undos_recovery, 0, "{congestion}");
                    assert_eq!(c.cwnd(), cut, "{congestion}: the cut stays");
                    assert!(c.cc.ssthresh() < ssthresh0);
                }
            }
        }
    }

    /// A D-SACK above SND.UNA (the first block inside the second) reports a copy the network
    /// made of data not yet cumulatively acknowledged; it does not pay for the episode's
    /// retransmission, so the cut stays (Linux counts only D-SACKs at or below SND.UNA).
    #[test]
    fn dsack_above_snd_una_does_not_undo() {
        let mut st = TcpStats::default();
        let cfg = TcpConfig {
            sack: true,
            ..plain_cfg()
        };
        let opts = TcpOptions {
            mss: Some(1000),
            sack_permitted: true,
            ..Default::default()
        };
        let (mut c, _) = with_flight(&cfg, opts, 10, &mut st);
        let cwnd0 = c.cwnd();
        for (hi, now) in [(2, 10), (3, 11), (4, 12)] {
            sack_ack(&mut c, &[(1, hi)], 0, now, &mut st);
        }
        assert_eq!(sent_ranges(&mut c, 12, &mut st), vec![(0, 1000)]);
        // Segment 5 arrives twice (duplicated by the network): D-SACK [5, 6) inside [1, 10).
        sack_ack(&mut c, &[(5, 6), (1, 10)], 0, 13, &mut st);
        assert_eq!(st.dsack_blocks_received, 1);
        // The resent segment 0 arrives: everything is acknowledged and recovery ends.
        sack_ack(&mut c, &[], 10, 14, &mut st);
        assert_eq!(c.recovery, Recovery::None);
        assert_eq!(st.undos_recovery, 0);
        assert!(c.cwnd() < cwnd0);
    }

    /// A D-SACK for only some of the episode's retransmissions undoes nothing (RFC 3708: all
    /// of them must be reported), nor does one for data below the episode's start.
    #[test]
    fn dsack_for_part_of_the_episode_keeps_the_cut() {
        let mut st = TcpStats::default();
        let mut c = sack_flight(&mut st);
        let cwnd0 = c.cwnd();
        // Segments 0 and 2 resent in one episode.
        for (blocks, now) in [
            (&[(1, 2), (3, 4)][..], 10),
            (&[(1, 2), (3, 5)][..], 11),
            (&[(1, 2), (3, 6)][..], 12),
        ] {
            sack_ack(&mut c, blocks, 0, now, &mut st);
        }
        assert_eq!(c.recovery, Recovery::Sack);
        let sent = sent_ranges(&mut c, 12, &mut st);
        assert!(sent.starts_with(&[(0, 1000), (2000, 1000)]), "{sent:?}");
        sack_ack(&mut c, &[(1, 2), (3, 10)], 0, 13, &mut st);
        sent_ranges(&mut c, 13, &mut st);
        sack_ack(&mut c, &[], 10, 14, &mut st);
        let cut = c.cwnd();
        assert!(cut < cwnd0);
        // Only segment 2's retransmission is reported duplicate.
        sack_ack(&mut c, &[(2, 3)], 10, 15, &mut st);
        assert_eq!(st.dsack_blocks_received, 1);
        assert_eq!(st.undos_recovery, 0);
        assert_eq!(c.cwnd(), cut);
    }

    /// Eifel detection after a retransmission timeout (RFC 3522 / RFC 4015, F-RTO's goal): the
    /// first ACK after the timeout echoes the TSval of the original transmission, so the
    /// timeout was spurious (a delay spike): cwnd and ssthresh are restored and the rest of
    /// the flight is not resent go-back-N; new data goes instead. If the ACK echoes the
    /// retransmission's TSval (a genuine loss), the loss window stays and go-back-N goes on.
    #[test]
    fn spurious_rto_detected_by_timestamps_is_undone_without_go_back_n() {
        for congestion in [CongestionAlgorithm::NewReno, CongestionAlgorithm::Cubic] {
            for spurious in [true, false] {
                let mut st = TcpStats::default();
                let cfg = TcpConfig {
                    timestamps: true,
                    tail_loss_probe: false,
                    congestion,
                    ..plain_cfg()
                };
                let opts = TcpOptions {
                    mss: Some(1000),
                    timestamps: Some((100, 0)),
                    ..Default::default()
                };
                let (mut c, flight) = with_flight(&cfg, opts, 10, &mut st);
                let mss = c.smss() as u32;
                let una = OUR_ISS + 1;
                let orig_tsval = parse(&c, &flight[0]).options.timestamps.unwrap().0;
                let (cwnd0, ssthresh0) = (c.cwnd(), c.cc.ssthresh());
                let rto = c.poll_timeout().expect("RTO armed");
                c.handle_timeout(rto, &mut st);
                assert_eq!(c.cwnd(), mss, "loss window");
                let out = drain(&mut c, rto, &mut st);
                assert_eq!(out.len(), 1);
                let r = parse(&c, &out[0]);
                assert_eq!(r.seq.0, una);
                let rtx_tsval = r.options.timestamps.unwrap().0;
                assert_ne!(rtx_tsval, orig_tsval);
                // More data queued: with go-back-N stopped it is what goes next.
                c.send(&vec![4u8; 4 * mss as usize]).unwrap();
                let echo = if spurious { orig_tsval } else { rtx_tsval };
                let mut a = seg(TcpFlags::ACK, PEER_ISS + 1, una + 2 * mss, 65535, &[]);
                a.options.timestamps = Some((200, echo));
                let now = rto + Duration::from_millis(5);
                c.handle_segment(&a, now, &mut st);
                let sent: Vec<u32> = drain(&mut c, now, &mut st)
                    .iter()
                    .map(|s| parse(&c, s).seq.0 - una)
                    .collect();
                if spurious {
                    assert_eq!(st.undos_rto, 1, "{congestion}");
                    assert!(
                        c.cwnd() >= cwnd0,
                        "{congestion}: cwnd {} restored",
                        c.cwnd()
                    );
                    assert_eq!(c.cc.ssthresh(), ssthresh0, "{congestion}");
                    assert!(!sent.is_empty());
                    assert!(
                        sent.iter().all(|&o| o >= 10 * mss),
                        "{congestion}: new data only, no go-back-N: {sent:?}"
                    );
                    assert_eq!(st.retransmitted_segments, 1);
                } else {
                    assert_eq!(st.undos_rto, 0, "{congestion}");
                    assert!(c.cwnd() < 4 * mss, "{congestion}: cwnd {}", c.cwnd());
                    assert!(c.cc.ssthresh() < ssthresh0);
                    assert_eq!(sent.first(), Some(&(2 * mss)), "go-back-N: {sent:?}");
                }
            }
        }
    }

    /// Eifel detection in fast recovery (timestamps, no SACK): the ACK ending recovery echoes
    /// the original's TSval, so the fast retransmission was spurious (reordering) and the cut
    /// is undone; echoing the retransmission's TSval keeps it.
    #[test]
    fn fast_recovery_undone_by_timestamps() {
        for spurious in [true, false] {
            let mut st = TcpStats::default();
            let cfg = TcpConfig {
                timestamps: true,
                congestion: CongestionAlgorithm::NewReno,
                ..plain_cfg()
            };
            let opts = TcpOptions {
                mss: Some(1000),
                timestamps: Some((100, 0)),
                ..Default::default()
            };
            let (mut c, flight) = with_flight(&cfg, opts, 10, &mut st);
            let una = OUR_ISS + 1;
            let orig_tsval = parse(&c, &flight[0]).options.timestamps.unwrap().0;
            let cwnd0 = c.cwnd();
            for i in 0..3u64 {
                let mut d = seg(TcpFlags::ACK, PEER_ISS + 1, una, 65535, &[]);
                d.options.timestamps = Some((101, orig_tsval.wrapping_sub(1)));
                c.handle_segment(&d, t(50 + i), &mut st);
            }
            assert_eq!(c.recovery, Recovery::NewReno);
            let out = drain(&mut c, t(60), &mut st);
            let rtx_tsval = parse(&c, &out[0]).options.timestamps.unwrap().0;
            assert_ne!(rtx_tsval, orig_tsval);
            let mss = c.smss() as u32;
            let mut a = seg(TcpFlags::ACK, PEER_ISS + 1, una + 10 * mss, 65535, &[]);
            a.options.timestamps = Some((102, if spurious { orig_tsval } else { rtx_tsval }));
            c.handle_segment(&a, t(70), &mut st);
            assert_eq!(c.recovery, Recovery::None, "{st:?} una {:?}", c.snd_una);
            if spurious {
                assert_eq!(st.undos_recovery, 1);
                assert!(c.cwnd() >= cwnd0, "cwnd {} restored to {cwnd0}", c.cwnd());
            } else {
                assert_eq!(st.undos_recovery, 0);
                assert!(c.cwnd() < cwnd0);
            }
        }
    }
}
