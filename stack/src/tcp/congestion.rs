//! Congestion control behind a trait: NewReno (RFC 5681/6582), CUBIC (RFC 9438) and BBR (the
//! model-based one, in [`crate::tcp::bbr`]).
//!
//! All quantities are in bytes. The connection calls these hooks; the algorithm only keeps
//! `cwnd` and `ssthresh` (plus its own state). [`Congestion`] is the enum the connection stores, so
//! there is no dynamic dispatch, and no allocation for the loss-based algorithms (BBR's larger
//! state is boxed once per connection, so the others do not pay for its size).
//!
//! Notes for the caller:
//! - Growth in `on_ack` is not gated on the window being fully used: a connection held back by
//!   the application or by TX admission should only report ACKs while it was cwnd-limited (or
//!   accept that cwnd keeps growing, as RFC 5681 itself allows). `bytes_in_flight` is used only
//!   to compute ssthresh on congestion events and RTOs.
//! - During fast recovery both algorithms keep `cwnd == ssthresh`; inflation by duplicate ACKs
//!   or the RFC 6675 pipe is the connection's business, and `on_recovery_exit` sets
//!   `cwnd = ssthresh` (the RFC 6582 deflation).
//! - `initial_window_bytes == 0` selects the RFC 6928 initial window for the current MSS.
//! - Time comes only from the `now` arguments; no clock is read.

use crate::tcp::bbr::Bbr;
use crate::tcp::rate::RateSample;
use crate::time::{Duration, Instant};

/// The hooks a congestion-control algorithm implements.
pub trait CongestionControl {
    /// Congestion window in bytes.
    fn cwnd(&self) -> u32;
    /// Slow-start threshold in bytes.
    fn ssthresh(&self) -> u32;
    /// New data was cumulatively acknowledged outside loss recovery. `rtt` is a fresh sample
    /// when one was taken (Karn's rule already applied by the caller).
    fn on_ack(
        &mut self,
        now: Instant,
        acked_bytes: u32,
        rtt: Option<Duration>,
        bytes_in_flight: u32,
    );
    /// Loss detected by duplicate ACKs or SACK: entering fast recovery.
    fn on_congestion_event(&mut self, now: Instant, bytes_in_flight: u32);
    /// Fast recovery ended (the recovery point was acknowledged).
    fn on_recovery_exit(&mut self, now: Instant);
    /// The retransmission timer expired.
    fn on_rto(&mut self, now: Instant, bytes_in_flight: u32);
    /// The retransmission timer expired again before anything sent since the last timeout was
    /// acknowledged. RFC 5681 section 3.1 holds ssthresh constant then: the flight after a
    /// go-back-N restart is a segment or two, and halving it again would leave ssthresh at
    /// 2 SMSS for the rest of the connection. Only the loss window is applied again.
    fn on_repeated_rto(&mut self, now: Instant);
    /// The connection was idle longer than an RTO (RFC 5681 section 4.1 restart window).
    fn on_idle_restart(&mut self, now: Instant);
    /// The last congestion event or first RTO was found spurious (Eifel detection with
    /// timestamps, RFC 3522, or every retransmission of the episode D-SACKed, RFC 3708): undo
    /// its reduction (RFC 4015's response, Linux's `tcp_undo_cwnd_reduction`). The loss-based
    /// algorithms restore the state they saved when the event began, never lowering cwnd or
    /// ssthresh below what they are now. Called at most once per event, outside the fast path.
    fn on_spurious_congestion_event(&mut self, now: Instant);
    /// Every ACK that delivered data (cumulatively or by SACK), in and out of loss recovery,
    /// with its delivery-rate sample. Model-based algorithms (BBR) do their work here; the
    /// loss-based ones ignore it. Called after `on_ack` / `on_recovery_exit` for the same ACK.
    fn on_rate_sample(&mut self, _now: Instant, _rs: &RateSample) {}
    /// The rate at which the connection should pace its segments, in bytes per second, or
    /// `None` to send as fast as the window allows (the loss-based algorithms).
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
    /// Whether the connection must keep per-segment send records and report
    /// [`CongestionControl::on_rate_sample`] (costs a little per segment, so only when used).
    fn wants_rate_samples(&self) -> bool {
        false
    }
}

/// Which algorithm a connection uses. Parsed from configuration as `"newreno"`, `"cubic"` or
/// `"bbr"`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum CongestionAlgorithm {
    /// RFC 5681 / RFC 6582 NewReno with appropriate byte counting (RFC 3465, L = 2).
    NewReno,
    /// RFC 9438 CUBIC (the default, as in Linux).
    #[default]
    Cubic,
    /// BBR v1 (Linux's `tcp_bbr`): model-based, paced, not backing off on random loss.
    Bbr,
}

impl CongestionAlgorithm {
    /// The configuration name: `"newreno"`, `"cubic"` or `"bbr"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CongestionAlgorithm::NewReno => "newreno",
            CongestionAlgorithm::Cubic => "cubic",
            CongestionAlgorithm::Bbr => "bbr",
        }
    }
}

impl core::fmt::Display for CongestionAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given to [`CongestionAlgorithm::from_str`](core::str::FromStr) is not an algorithm.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UnknownAlgorithm;

impl core::fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(
            "unknown congestion control algorithm (expected \"newreno\", \"cubic\" or \"bbr\")",
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl core::str::FromStr for CongestionAlgorithm {
    type Err = UnknownAlgorithm;
    /// Case-insensitive; `"reno"` is accepted as an alias of `"newreno"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("newreno") || s.eq_ignore_ascii_case("reno") {
            Ok(CongestionAlgorithm::NewReno)
        } else if s.eq_ignore_ascii_case("cubic") {
            Ok(CongestionAlgorithm::Cubic)
        } else if s.eq_ignore_ascii_case("bbr") {
            Ok(CongestionAlgorithm::Bbr)
        } else {
            Err(UnknownAlgorithm)
        }
    }
}

/// The effective initial window: `initial_window_bytes`, or the RFC 6928 value
/// `min(10*MSS, max(2*MSS, 14600))` when it is 0. Never below one MSS.
fn effective_iw(mss: u32, initial_window_bytes: u32) -> u32 {
    if initial_window_bytes == 0 {
        mss.saturating_mul(10)
            .min((mss.saturating_mul(2)).max(14_600))
    } else {
        initial_window_bytes.max(mss)
    }
}

/// Slow start with appropriate byte counting (RFC 3465, L = 2): grow by the bytes acknowledged,
/// at most 2*MSS per ACK, and not past ssthresh (the rest of the ACK is not carried over into
/// congestion avoidance, which costs at most a fraction of one MSS of growth).
fn slow_start(cwnd: u32, ssthresh: u32, acked: u32, mss: u32) -> u32 {
    let grown = cwnd.saturating_add(acked.min(mss.saturating_mul(2)));
    grown.min(ssthresh.max(cwnd))
}

/// NewReno (RFC 5681 with the RFC 6582 recovery done by the connection). All sizes in bytes.
///
/// During fast recovery this keeps `cwnd = ssthresh`; any window inflation by duplicate ACKs or
/// the RFC 6675 pipe is the connection's business, and on exit `cwnd` is set to `ssthresh`
/// (the deflation of RFC 6582).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NewReno {
    mss: u32,
    /// As configured; 0 means the RFC 6928 default, recomputed when the MSS changes.
    iw_config: u32,
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged in congestion avoidance since cwnd last grew (RFC 3465 byte counting).
    bytes_acked: u32,
    /// cwnd and ssthresh before the last congestion event or first RTO, for an undo.
    prior_cwnd: u32,
    prior_ssthresh: u32,
}

impl NewReno {
    /// A fresh sender: `cwnd` = initial window, `ssthresh` arbitrarily high (RFC 5681 3.1).
    /// `initial_window_bytes == 0` selects the RFC 6928 initial window for `mss`.
    pub fn new(mss: u32, initial_window_bytes: u32) -> NewReno {
        let mss = mss.max(1);
        NewReno {
            mss,
            iw_config: initial_window_bytes,
            cwnd: effective_iw(mss, initial_window_bytes),
            ssthresh: u32::MAX,
            bytes_acked: 0,
            prior_cwnd: 0,
            prior_ssthresh: 0,
        }
    }

    /// The sender MSS changed (after the handshake or by PMTU discovery). An untouched initial
    /// window is recomputed for the new MSS; an established window is kept.
    pub fn set_mss(&mut self, mss: u32) {
        let mss = mss.max(1);
        if self.cwnd == effective_iw(self.mss, self.iw_config) && self.ssthresh == u32::MAX {
            self.cwnd = effective_iw(mss, self.iw_config);
        }
        self.mss = mss;
        self.cwnd = self.cwnd.max(mss);
    }

    /// The MSS the window arithmetic uses.
    pub fn mss(&self) -> u32 {
        self.mss
    }

    fn reduce(&mut self, bytes_in_flight: u32) {
        self.prior_cwnd = self.cwnd;
        self.prior_ssthresh = self.ssthresh;
        self.ssthresh = (bytes_in_flight / 2).max(self.mss.saturating_mul(2));
        self.bytes_acked = 0;
    }
}

impl CongestionControl for NewReno {
    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, _now: Instant, acked_bytes: u32, _rtt: Option<Duration>, _flight: u32) {
        if self.cwnd < self.ssthresh {
            self.cwnd = slow_start(self.cwnd, self.ssthresh, acked_bytes, self.mss);
            return;
        }
        // Congestion avoidance: one MSS per cwnd's worth of acknowledged bytes, which is the
        // per-ACK `MSS*MSS/cwnd` of RFC 5681 accumulated exactly in bytes.
        self.bytes_acked = self.bytes_acked.saturating_add(acked_bytes);
        if self.bytes_acked >= self.cwnd {
            self.bytes_acked -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, bytes_in_flight: u32) {
        self.reduce(bytes_in_flight);
        self.cwnd = self.ssthresh;
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }

    fn on_rto(&mut self, _now: Instant, bytes_in_flight: u32) {
        self.reduce(bytes_in_flight);
        // Loss window (RFC 5681 section 3.1): one segment.
        self.cwnd = self.mss;
    }

    fn on_repeated_rto(&mut self, _now: Instant) {
        self.cwnd = self.mss;
        self.bytes_acked = 0;
    }

    fn on_idle_restart(&mut self, _now: Instant) {
        self.cwnd = self.cwnd.min(effective_iw(self.mss, self.iw_config));
        self.bytes_acked = 0;
    }

    #[cold]
    #[inline(never)]
    fn on_spurious_congestion_event(&mut self, _now: Instant) {
        self.cwnd = self.cwnd.max(self.prior_cwnd);
        self.ssthresh = self.ssthresh.max(self.prior_ssthresh);
        self.bytes_acked = 0;
    }
}

/// CUBIC's aggressiveness constant C, in segments per second cubed (RFC 9438 section 4.1).
pub const CUBIC_C: f64 = 0.4;
/// CUBIC's multiplicative decrease factor beta_cubic (RFC 9438 section 4.6).
pub const CUBIC_BETA: f64 = 0.7;
/// The Reno-friendly additive increase `alpha_cubic = 3*(1-beta)/(1+beta)` = 9/17 with beta = 0.7.
pub const CUBIC_ALPHA: f64 = 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA);

/// CUBIC (RFC 9438) with fast convergence and the Reno-friendly region. All sizes in bytes; the
/// cubic function itself is evaluated in segments and seconds as in the RFC. Time comes only
/// from the `now` arguments and RTT only from the samples passed to `on_ack` (their minimum is
/// used, as Linux does, so queueing delay does not speed the function up).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Cubic {
    mss: u32,
    /// As configured; 0 means the RFC 6928 default.
    iw_config: u32,
    cwnd: u32,
    ssthresh: u32,
    /// Window (bytes) at the last congestion event, after fast convergence; 0 before any.
    w_max: u32,
    /// cwnd just before the last reduction (RFC 9438 `cwnd_prior`); 0 before any.
    cwnd_prior: u32,
    /// K of the current epoch, in microseconds.
    k_micros: u32,
    /// Smallest RTT sample seen, microseconds; `u32::MAX` when none yet.
    min_rtt_micros: u32,
    /// Remainder of the fractional per-ACK increase `(target - cwnd) * acked / cwnd`.
    cwnd_acc: u32,
    /// Reno-friendly window estimate W_est, in bytes.
    w_est: f64,
    /// Start of the current congestion-avoidance epoch; `None` until the first ACK in it.
    epoch_start: Option<Instant>,
    /// ssthresh, W_max and cwnd_prior before the last congestion event or first RTO, for an
    /// undo (RFC 9438 section 4.9); cwnd before it is `cwnd_prior`. K and the epoch are not
    /// saved: the epoch restarts from the restored cwnd with the restored W_max, which is the
    /// same cubic curve shifted in time (K is recomputed so that it passes through cwnd).
    prior: [u32; 3],
}

impl Cubic {
    /// A fresh sender: `cwnd` = initial window, `ssthresh` arbitrarily high, no W_max yet.
    /// `initial_window_bytes == 0` selects the RFC 6928 initial window for `mss`.
    pub fn new(mss: u32, initial_window_bytes: u32) -> Cubic {
        let mss = mss.max(1);
        Cubic {
            mss,
            iw_config: initial_window_bytes,
            cwnd: effective_iw(mss, initial_window_bytes),
            ssthresh: u32::MAX,
            w_max: 0,
            cwnd_prior: 0,
            k_micros: 0,
            min_rtt_micros: u32::MAX,
            cwnd_acc: 0,
            w_est: 0.0,
            epoch_start: None,
            prior: [0; 3],
        }
    }

    /// The sender MSS changed. An untouched initial window is recomputed for the new MSS.
    pub fn set_mss(&mut self, mss: u32) {
        let mss = mss.max(1);
        if self.cwnd == effective_iw(self.mss, self.iw_config) && self.ssthresh == u32::MAX {
            self.cwnd = effective_iw(mss, self.iw_config);
        }
        self.mss = mss;
        self.cwnd = self.cwnd.max(mss);
        // K depends on the MSS (W is in segments): start a new epoch on the next ACK.
        self.epoch_start = None;
    }

    /// The MSS the window arithmetic uses.
    pub fn mss(&self) -> u32 {
        self.mss
    }

    /// W_max in bytes (0 before the first congestion event).
    pub fn w_max(&self) -> u32 {
        self.w_max
    }

    /// K of the current congestion-avoidance epoch (zero when none has started).
    pub fn k(&self) -> Duration {
        Duration::from_micros(u64::from(self.k_micros))
    }

    /// The minimum RTT seen so far, if any sample was taken.
    pub fn min_rtt(&self) -> Option<Duration> {
        (self.min_rtt_micros != u32::MAX)
            .then(|| Duration::from_micros(u64::from(self.min_rtt_micros)))
    }

    /// The Reno-friendly estimate W_est in bytes (meaningful in congestion avoidance).
    pub fn w_est(&self) -> u32 {
        self.w_est as u32
    }

    /// W_cubic(t) of RFC 9438 equation 1, in bytes, for `t` seconds into the epoch.
    fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k_micros as f64 / 1e6;
        let w = self.w_max as f64 + CUBIC_C * d * d * d * self.mss as f64;
        w.max(0.0)
    }

    /// Starts a congestion-avoidance epoch at `now` with `cwnd_epoch = cwnd`.
    fn start_epoch(&mut self, now: Instant) {
        self.epoch_start = Some(now);
        self.cwnd_acc = 0;
        self.w_est = self.cwnd as f64;
        if self.w_max <= self.cwnd {
            // No congestion seen above this window (e.g. slow start ended without loss, or
            // overshot W_max after an RTO): the plateau is here and growth is convex from now.
            self.w_max = self.cwnd;
            self.k_micros = 0;
        } else {
            let segs = (self.w_max - self.cwnd) as f64 / self.mss as f64;
            let k = (segs / CUBIC_C).cbrt();
            self.k_micros = (k * 1e6).min(u32::MAX as f64) as u32;
        }
    }

    /// W_max / cwnd_prior / ssthresh update shared by congestion events and RTOs.
    fn reduce(&mut self, bytes_in_flight: u32) {
        self.prior = [self.ssthresh, self.w_max, self.cwnd_prior];
        self.epoch_start = None;
        self.cwnd_prior = self.cwnd;
        // Fast convergence (RFC 9438 4.7): a window that stopped short of the last W_max
        // suggests a new flow arrived; release bandwidth by lowering the plateau further.
        self.w_max = if self.cwnd < self.w_max {
            (u64::from(self.cwnd) * 17 / 20) as u32 // cwnd * (1 + beta) / 2
        } else {
            self.cwnd
        };
        let ss = (u64::from(bytes_in_flight) * 7 / 10) as u32; // flight_size * beta_cubic
        self.ssthresh = ss.max(self.mss.saturating_mul(2));
    }
}

impl CongestionControl for Cubic {
    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, now: Instant, acked_bytes: u32, rtt: Option<Duration>, _flight: u32) {
        if let Some(rtt) = rtt {
            let us = rtt.total_micros().min(u64::from(u32::MAX - 1)) as u32;
            self.min_rtt_micros = self.min_rtt_micros.min(us);
        }
        if acked_bytes == 0 {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = slow_start(self.cwnd, self.ssthresh, acked_bytes, self.mss);
            return;
        }
        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                self.start_epoch(now);
                now
            }
        };
        let t = now.saturating_since(epoch).total_micros() as f64 / 1e6;
        let cwnd = self.cwnd as f64;

        // Reno-friendly estimate (RFC 9438 4.3): alpha_cubic until W_est reaches cwnd_prior,
        // then Reno's 1 segment per RTT.
        let alpha = if self.w_est >= self.cwnd_prior as f64 {
            1.0
        } else {
            CUBIC_ALPHA
        };
        self.w_est += alpha * acked_bytes as f64 * self.mss as f64 / cwnd;

        if self.w_cubic(t) < self.w_est {
            // Reno-friendly region: cwnd follows W_est (never shrinks in congestion avoidance).
            let est = self.w_est.min(u32::MAX as f64) as u32;
            if est > self.cwnd {
                self.cwnd = est;
                self.cwnd_acc = 0;
            }
            return;
        }

        // Concave / convex regions (RFC 9438 4.4, 4.5): aim at W_cubic one RTT ahead, clamped
        // to [cwnd, 1.5 cwnd], and close (target - cwnd)/cwnd of the gap per acked segment.
        let rtt_s = if self.min_rtt_micros == u32::MAX {
            0.0
        } else {
            self.min_rtt_micros as f64 / 1e6
        };
        let target = self.w_cubic(t + rtt_s).min(cwnd * 1.5).max(cwnd) as u64;
        let gap = target - u64::from(self.cwnd);
        let acc =
            u64::from(self.cwnd_acc).saturating_add(gap.saturating_mul(u64::from(acked_bytes)));
        let old = u64::from(self.cwnd);
        self.cwnd = (old + acc / old).min(u64::from(u32::MAX)) as u32;
        self.cwnd_acc = (acc % old) as u32;
    }

    fn on_congestion_event(&mut self, _now: Instant, bytes_in_flight: u32) {
        self.reduce(bytes_in_flight);
        self.cwnd = self.ssthresh;
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        self.cwnd = self.ssthresh;
        // The epoch (time origin of W_cubic) starts with the first ACK after recovery.
        self.epoch_start = None;
    }

    fn on_rto(&mut self, _now: Instant, bytes_in_flight: u32) {
        // RFC 9438 4.8: Reno's loss window, but ssthresh (and W_max) as for a congestion event.
        self.reduce(bytes_in_flight);
        self.cwnd = self.mss;
    }

    fn on_repeated_rto(&mut self, _now: Instant) {
        // ssthresh, W_max and cwnd_prior stay as the first timeout set them.
        self.cwnd = self.mss;
        self.epoch_start = None;
    }

    fn on_idle_restart(&mut self, _now: Instant) {
        self.cwnd = self.cwnd.min(effective_iw(self.mss, self.iw_config));
        // Idle time must not count as growth time.
        self.epoch_start = None;
    }

    /// RFC 9438 section 4.9: cwnd, ssthresh, W_max and cwnd_prior as saved at the event. A new
    /// epoch starts with the next ACK; `start_epoch` then derives K from the restored W_max and
    /// cwnd, so the window follows the curve it was on (shifted by the episode's duration).
    #[cold]
    #[inline(never)]
    fn on_spurious_congestion_event(&mut self, _now: Instant) {
        let [ssthresh, w_max, cwnd_prior] = self.prior;
        if self.cwnd_prior == 0 {
            return; // no event yet
        }
        self.cwnd = self.cwnd.max(self.cwnd_prior);
        self.ssthresh = self.ssthresh.max(ssthresh);
        self.w_max = w_max;
        self.cwnd_prior = cwnd_prior;
        self.epoch_start = None;
        self.cwnd_acc = 0;
    }
}

/// The congestion controller a connection stores: an enum, so no dynamic dispatch.
#[derive(Clone, Debug, PartialEq)]
pub enum Congestion {
    /// NewReno.
    NewReno(NewReno),
    /// CUBIC.
    Cubic(Cubic),
    /// BBR, boxed: its model is several times the size of the others.
    Bbr(Box<Bbr>),
}

impl Congestion {
    /// A fresh controller of the chosen kind. `initial_window_bytes == 0` selects RFC 6928's IW.
    pub fn new(algorithm: CongestionAlgorithm, mss: u32, initial_window_bytes: u32) -> Congestion {
        match algorithm {
            CongestionAlgorithm::NewReno => {
                Congestion::NewReno(NewReno::new(mss, initial_window_bytes))
            }
            CongestionAlgorithm::Cubic => Congestion::Cubic(Cubic::new(mss, initial_window_bytes)),
            CongestionAlgorithm::Bbr => {
                Congestion::Bbr(Box::new(Bbr::new(mss, initial_window_bytes)))
            }
        }
    }

    /// Start over with a fresh controller of the same kind (the handshake fixed the MSS),
    /// reusing BBR's allocation.
    pub fn restart(&mut self, mss: u32, initial_window_bytes: u32) {
        match self {
            Congestion::Bbr(b) => **b = Bbr::new(mss, initial_window_bytes),
            _ => *self = Congestion::new(self.algorithm(), mss, initial_window_bytes),
        }
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> CongestionAlgorithm {
        match self {
            Congestion::NewReno(_) => CongestionAlgorithm::NewReno,
            Congestion::Cubic(_) => CongestionAlgorithm::Cubic,
            Congestion::Bbr(_) => CongestionAlgorithm::Bbr,
        }
    }

    /// The sender MSS changed (see [`NewReno::set_mss`], [`Cubic::set_mss`]).
    pub fn set_mss(&mut self, mss: u32) {
        match self {
            Congestion::NewReno(c) => c.set_mss(mss),
            Congestion::Cubic(c) => c.set_mss(mss),
            Congestion::Bbr(c) => c.set_mss(mss),
        }
    }
}

impl CongestionControl for Congestion {
    fn cwnd(&self) -> u32 {
        match self {
            Congestion::NewReno(c) => c.cwnd(),
            Congestion::Cubic(c) => c.cwnd(),
            Congestion::Bbr(c) => c.cwnd(),
        }
    }

    fn ssthresh(&self) -> u32 {
        match self {
            Congestion::NewReno(c) => c.ssthresh(),
            Congestion::Cubic(c) => c.ssthresh(),
            Congestion::Bbr(c) => c.ssthresh(),
        }
    }

    fn on_ack(
        &mut self,
        now: Instant,
        acked_bytes: u32,
        rtt: Option<Duration>,
        bytes_in_flight: u32,
    ) {
        match self {
            Congestion::NewReno(c) => c.on_ack(now, acked_bytes, rtt, bytes_in_flight),
            Congestion::Cubic(c) => c.on_ack(now, acked_bytes, rtt, bytes_in_flight),
            Congestion::Bbr(c) => c.on_ack(now, acked_bytes, rtt, bytes_in_flight),
        }
    }

    fn on_congestion_event(&mut self, now: Instant, bytes_in_flight: u32) {
        match self {
            Congestion::NewReno(c) => c.on_congestion_event(now, bytes_in_flight),
            Congestion::Cubic(c) => c.on_congestion_event(now, bytes_in_flight),
            Congestion::Bbr(c) => c.on_congestion_event(now, bytes_in_flight),
        }
    }

    fn on_recovery_exit(&mut self, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_recovery_exit(now),
            Congestion::Cubic(c) => c.on_recovery_exit(now),
            Congestion::Bbr(c) => c.on_recovery_exit(now),
        }
    }

    fn on_rto(&mut self, now: Instant, bytes_in_flight: u32) {
        match self {
            Congestion::NewReno(c) => c.on_rto(now, bytes_in_flight),
            Congestion::Cubic(c) => c.on_rto(now, bytes_in_flight),
            Congestion::Bbr(c) => c.on_rto(now, bytes_in_flight),
        }
    }

    fn on_repeated_rto(&mut self, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_repeated_rto(now),
            Congestion::Cubic(c) => c.on_repeated_rto(now),
            Congestion::Bbr(c) => c.on_repeated_rto(now),
        }
    }

    fn on_idle_restart(&mut self, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_idle_restart(now),
            Congestion::Cubic(c) => c.on_idle_restart(now),
            Congestion::Bbr(c) => c.on_idle_restart(now),
        }
    }

    fn on_spurious_congestion_event(&mut self, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_spurious_congestion_event(now),
            Congestion::Cubic(c) => c.on_spurious_congestion_event(now),
            Congestion::Bbr(c) => c.on_spurious_congestion_event(now),
        }
    }

    fn on_rate_sample(&mut self, now: Instant, rs: &RateSample) {
        if let Congestion::Bbr(c) = self {
            c.on_rate_sample(now, rs);
        }
    }

    fn pacing_rate(&self) -> Option<u64> {
        match self {
            Congestion::Bbr(c) => c.pacing_rate(),
            _ => None,
        }
    }

    fn wants_rate_samples(&self) -> bool {
        matches!(self, Congestion::Bbr(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;
    const RTT: Duration = Duration::from_millis(100);

    /// One round trip of ACK clocking: the whole window is acknowledged in MSS-sized ACKs spread
    /// evenly over `rtt`, each carrying an RTT sample. Returns the time at the end of the round.
    fn one_rtt<C: CongestionControl>(cc: &mut C, start: Instant, rtt: Duration) -> Instant {
        let acks = (cc.cwnd() / MSS).max(1) as u64;
        let step = rtt.total_micros() / acks;
        for i in 0..acks {
            let now = start + Duration::from_micros(step * (i + 1));
            cc.on_ack(now, MSS, Some(rtt), cc.cwnd());
        }
        start + rtt
    }

    #[test]
    fn algorithm_names_round_trip_and_default_is_cubic() {
        assert_eq!(CongestionAlgorithm::default(), CongestionAlgorithm::Cubic);
        for a in [
            CongestionAlgorithm::NewReno,
            CongestionAlgorithm::Cubic,
            CongestionAlgorithm::Bbr,
        ] {
            assert_eq!(a.as_str().parse::<CongestionAlgorithm>(), Ok(a));
            assert_eq!(Congestion::new(a, MSS, 0).algorithm(), a);
        }
        assert_eq!("CUBIC".parse(), Ok(CongestionAlgorithm::Cubic));
        assert_eq!(
            "vegas".parse::<CongestionAlgorithm>(),
            Err(UnknownAlgorithm)
        );
        // Only BBR asks for rate samples and paces.
        let bbr = Congestion::new(CongestionAlgorithm::Bbr, MSS, 0);
        assert!(bbr.wants_rate_samples() && bbr.pacing_rate().is_some());
        let cubic = Congestion::new(CongestionAlgorithm::Cubic, MSS, 0);
        assert!(!cubic.wants_rate_samples() && cubic.pacing_rate().is_none());
        let c = Congestion::new(CongestionAlgorithm::NewReno, MSS, 0);
        assert_eq!(c.algorithm(), CongestionAlgorithm::NewReno);
    }

    #[test]
    fn default_initial_window_follows_rfc6928_and_tracks_mss() {
        // min(10*1460, max(2*1460, 14600)) = 14600; for 536: min(5360, 14600) = 5360.
        let mut c = Congestion::new(CongestionAlgorithm::Cubic, 1460, 0);
        assert_eq!(c.cwnd(), 14_600);
        c.set_mss(536);
        assert_eq!(c.cwnd(), 5_360);
        assert_eq!(c.ssthresh(), u32::MAX);
        // An explicit IW is kept across MSS changes.
        let mut r = NewReno::new(1460, 4380);
        r.set_mss(1000);
        assert_eq!(r.cwnd(), 4380);
    }

    #[test]
    fn reno_slow_start_doubles_per_rtt() {
        let mut r = NewReno::new(MSS, 10 * MSS);
        let mut now = Instant::ZERO;
        for expect in [20_000, 40_000, 80_000, 160_000] {
            now = one_rtt(&mut r, now, RTT);
            assert_eq!(r.cwnd(), expect);
        }
    }

    #[test]
    fn reno_abc_limits_growth_to_two_mss_per_ack() {
        let mut r = NewReno::new(MSS, 10 * MSS);
        // A stretch ACK of 8 segments grows cwnd by only L*MSS = 2000 (RFC 3465).
        r.on_ack(Instant::ZERO, 8 * MSS, None, 0);
        assert_eq!(r.cwnd(), 12_000);
        r.on_ack(Instant::ZERO, 500, None, 0);
        assert_eq!(r.cwnd(), 12_500);
    }

    #[test]
    fn reno_congestion_avoidance_is_linear() {
        let mut r = NewReno::new(MSS, 10 * MSS);
        r.on_congestion_event(Instant::ZERO, 40_000);
        assert_eq!((r.cwnd(), r.ssthresh()), (20_000, 20_000));
        r.on_recovery_exit(Instant::ZERO);
        let mut now = Instant::ZERO;
        // Exactly one MSS per window of acknowledged bytes.
        for expect in [21_000, 22_000, 23_000, 24_000] {
            now = one_rtt(&mut r, now, RTT);
            assert_eq!(r.cwnd(), expect);
        }
        // 999 bytes short of a window: no growth yet; one more byte: growth.
        r.on_ack(now, 23_999, None, 0);
        assert_eq!(r.cwnd(), 24_000);
        r.on_ack(now, 1, None, 0);
        assert_eq!(r.cwnd(), 25_000);
    }

    #[test]
    fn reno_halves_on_loss_with_two_mss_floor() {
        let mut r = NewReno::new(MSS, 50 * MSS);
        r.on_congestion_event(Instant::ZERO, 50_000);
        assert_eq!((r.cwnd(), r.ssthresh()), (25_000, 25_000));
        r.on_recovery_exit(Instant::ZERO);
        assert_eq!(r.cwnd(), 25_000);
        r.on_congestion_event(Instant::ZERO, 1_000);
        assert_eq!(r.ssthresh(), 2_000);
    }

    #[test]
    fn reno_rto_collapses_to_one_mss_and_slow_starts_to_ssthresh() {
        let mut r = NewReno::new(MSS, 40 * MSS);
        r.on_rto(Instant::ZERO, 40_000);
        assert_eq!((r.cwnd(), r.ssthresh()), (1_000, 20_000));
        let mut now = Instant::ZERO;
        for expect in [2_000, 4_000, 8_000, 16_000, 20_000] {
            now = one_rtt(&mut r, now, RTT);
            assert_eq!(r.cwnd(), expect);
        }
        // Then linear.
        now = one_rtt(&mut r, now, RTT);
        assert_eq!(r.cwnd(), 21_000);
        let _ = now;
    }

    #[test]
    fn idle_restart_caps_at_initial_window() {
        for alg in [CongestionAlgorithm::NewReno, CongestionAlgorithm::Cubic] {
            let mut c = Congestion::new(alg, MSS, 10 * MSS);
            c.on_idle_restart(Instant::ZERO);
            assert_eq!(c.cwnd(), 10_000);
            one_rtt(&mut c, Instant::ZERO, RTT);
            assert_eq!(c.cwnd(), 20_000);
            c.on_idle_restart(Instant::ZERO);
            assert_eq!(c.cwnd(), 10_000);
            c.on_rto(Instant::ZERO, 10_000);
            c.on_idle_restart(Instant::ZERO);
            assert_eq!(c.cwnd(), 1_000);
        }
    }

    /// CUBIC grown to 100 segments by slow start, then one loss with the window in flight.
    fn cubic_after_loss_at_100_segments() -> Cubic {
        let mut c = Cubic::new(MSS, 10 * MSS);
        while c.cwnd() < 100 * MSS {
            c.on_ack(Instant::ZERO, MSS, Some(RTT), c.cwnd());
        }
        assert_eq!(c.cwnd(), 100_000);
        c.on_congestion_event(Instant::from_secs_for_test(9), 100_000);
        c
    }

    impl Instant {
        fn from_secs_for_test(s: u64) -> Instant {
            Instant::from_millis(s * 1000)
        }
    }

    #[test]
    fn cubic_is_small() {
        // 72 since the undo state (RFC 9438 4.9): three u32s saved at each congestion event.
        assert!(
            core::mem::size_of::<Cubic>() <= 72,
            "{}",
            core::mem::size_of::<Cubic>()
        );
        assert!(core::mem::size_of::<Congestion>() <= 72);
    }

    #[test]
    fn cubic_slow_start_matches_reno() {
        let mut c = Cubic::new(MSS, 10 * MSS);
        let mut now = Instant::ZERO;
        for expect in [20_000, 40_000, 80_000] {
            now = one_rtt(&mut c, now, RTT);
            assert_eq!(c.cwnd(), expect);
        }
        assert_eq!(c.min_rtt(), Some(RTT));
    }

    #[test]
    fn cubic_loss_reduces_to_beta_times_w_max() {
        let mut c = cubic_after_loss_at_100_segments();
        assert_eq!(c.w_max(), 100_000);
        assert_eq!((c.cwnd(), c.ssthresh()), (70_000, 70_000));
        c.on_recovery_exit(Instant::from_secs_for_test(10));
        assert_eq!(c.cwnd(), 70_000);
    }

    #[test]
    fn cubic_exact_first_steps_after_recovery() {
        let mut c = cubic_after_loss_at_100_segments();
        let t0 = Instant::from_secs_for_test(10);
        c.on_recovery_exit(t0);
        // First ACK starts the epoch. K = cbrt((100 - 70) / 0.4) = cbrt(75) = 4.217163 s.
        // W_est = 70000 + (9/17) * 1000 * 1000 / 70000 = 70007.56 > W_cubic(0) = 70000, so the
        // Reno-friendly region sets cwnd = 70007.
        c.on_ack(t0, MSS, None, 70_000);
        assert_eq!(c.k(), Duration::from_micros(4_217_163));
        assert_eq!(c.cwnd(), 70_007);
        // One second later: W_est = 70015.1 < W_cubic(1 s) = 86680.8, so the cubic region:
        // target = W_cubic(1 s + 0.1 s) = 100000 + 0.4 * (1.1 - 4.217163)^3 * 1000 = 87884.58,
        // cwnd += (87884 - 70007) * 1000 / 70007 = 255 (remainder 25215).
        c.on_ack(t0 + Duration::from_secs(1), MSS, None, 70_000);
        assert_eq!(c.cwnd(), 70_262);
        assert_eq!(c.w_est(), 70_015);
    }

    #[test]
    fn cubic_target_is_clamped_to_one_and_a_half_cwnd() {
        let mut c = cubic_after_loss_at_100_segments();
        let t0 = Instant::from_secs_for_test(10);
        c.on_recovery_exit(t0);
        c.on_ack(t0, MSS, Some(RTT), 70_000);
        // Far in the convex region W_cubic(60 s) is huge; target = 1.5 * 70007 = 105010.5.
        // Increase = (105010 - 70007) * 70007 / 70007 for a full window of ACKed bytes.
        c.on_ack(t0 + Duration::from_secs(60), 70_007, None, 70_000);
        assert_eq!(c.cwnd(), 105_010);
    }

    #[test]
    fn cubic_concave_back_to_w_max_near_k_then_convex() {
        let mut c = cubic_after_loss_at_100_segments();
        let t0 = Instant::from_secs_for_test(10);
        c.on_recovery_exit(t0);
        let k = 4.217163;
        let mut now = t0;
        let mut samples = Vec::new(); // (seconds since t0, cwnd)
        for _ in 0..80 {
            now = one_rtt(&mut c, now, RTT);
            samples.push(((now - t0).as_secs_f64(), c.cwnd()));
        }
        let at = |s: f64| {
            samples
                .iter()
                .find(|(t, _)| *t >= s - 1e-9)
                .map(|(_, w)| f64::from(*w))
                .unwrap()
        };
        // Concave: the first second gains much more than the second before K.
        let early = at(1.0) - at(0.1);
        let late = at(k - 0.1) - at(k - 1.0);
        assert!(early > 3.0 * late, "early {early} late {late}");
        // Plateau near W_max around K (cwnd runs one RTT ahead of W_cubic(t)).
        let near_k = at(k);
        assert!((near_k - 100_000.0).abs() < 2_000.0, "cwnd at K = {near_k}");
        // Never far above W_max before K.
        assert!(samples
            .iter()
            .filter(|(t, _)| *t < k - 0.2)
            .all(|(_, w)| *w <= 100_500));
        // Convex: growth accelerates after K and leaves W_max behind.
        let g1 = at(k + 1.0) - at(k);
        let g2 = at(k + 2.0) - at(k + 1.0);
        let g3 = at(k + 3.0) - at(k + 2.0);
        assert!(g1 < g2 && g2 < g3, "{g1} {g2} {g3}");
        assert!(at(k + 3.0) > 110_000.0);
        // At least the formula: at K+3 s, W_cubic(t+RTT) = 100 + 0.4 * 3.1^3 = 111.9 segments.
        // By then W_est (9/17 segment per RTT up to cwnd_prior = 100 at ~5.7 s, then 1 per
        // RTT) is ahead, ~116 segments: with 100 ms RTT and 100 segments the Reno-friendly
        // region takes over again, as RFC 9438 intends.
        let w = at(k + 3.0);
        assert!(w > 111_916.0 - 1_000.0 && w < 118_000.0, "{w}");
        assert!(c.w_est() >= c.cwnd() - 1);
    }

    #[test]
    fn cubic_reno_friendly_region_wins_at_small_bdp() {
        // W_max = 10 segments and 1 ms RTT: K = cbrt(3 / 0.4) = 1.957 s, i.e. ~2000 RTTs, while
        // the Reno estimate grows ~1 segment per RTT.
        let mut c = Cubic::new(MSS, 10 * MSS);
        c.on_congestion_event(Instant::ZERO, 10_000);
        assert_eq!((c.cwnd(), c.w_max()), (7_000, 10_000));
        c.on_recovery_exit(Instant::ZERO);
        let rtt = Duration::from_millis(1);
        let mut now = Instant::ZERO;
        for _ in 0..100 {
            now = one_rtt(&mut c, now, rtt);
        }
        // W_cubic(0.1 s) = 10 + 0.4 * (0.1 - 1.957)^3 = 7.44 segments. Reno-friendly: 3 segments
        // at 9/17 per RTT (~6 RTTs), then one per RTT: ~10 + 94 = 104 segments.
        let cubic_only = 10.0 + 0.4 * (0.1f64 - 1.957).powi(3);
        assert!(cubic_only < 7.5);
        assert!(c.cwnd() > 95_000 && c.cwnd() < 110_000, "{}", c.cwnd());
        assert!(c.w_est() >= c.cwnd());
    }

    #[test]
    fn cubic_fast_convergence_lowers_w_max() {
        let mut c = cubic_after_loss_at_100_segments();
        c.on_recovery_exit(Instant::from_secs_for_test(10));
        // A second loss before regaining W_max: W_max = 70000 * (1 + 0.7) / 2 = 59500.
        c.on_congestion_event(Instant::from_secs_for_test(10), 70_000);
        assert_eq!(c.w_max(), 59_500);
        assert_eq!(c.cwnd(), 49_000);
    }

    #[test]
    fn cubic_rto_uses_beta_for_ssthresh_and_one_mss_window() {
        let mut c = cubic_after_loss_at_100_segments();
        c.on_recovery_exit(Instant::from_secs_for_test(10));
        c.on_rto(Instant::from_secs_for_test(11), 60_000);
        assert_eq!((c.cwnd(), c.ssthresh()), (1_000, 42_000));
        c.on_rto(Instant::from_secs_for_test(12), 0);
        assert_eq!(c.ssthresh(), 2_000);
    }

    #[test]
    fn repeated_rto_holds_ssthresh_and_w_max() {
        let mut c = cubic_after_loss_at_100_segments();
        c.on_recovery_exit(Instant::from_secs_for_test(10));
        c.on_rto(Instant::from_secs_for_test(11), 60_000);
        let (ssthresh, w_max) = (c.ssthresh(), c.w_max());
        // After go-back-N only a segment is in flight when the timer fires again.
        c.on_repeated_rto(Instant::from_secs_for_test(12));
        assert_eq!(
            (c.cwnd(), c.ssthresh(), c.w_max()),
            (1_000, ssthresh, w_max)
        );

        let mut r = NewReno::new(MSS, 40 * MSS);
        r.on_rto(Instant::ZERO, 40_000);
        r.on_ack(Instant::ZERO, 1_000, None, 1_000);
        assert_eq!(r.cwnd(), 2_000);
        r.on_repeated_rto(Instant::ZERO);
        assert_eq!((r.cwnd(), r.ssthresh()), (1_000, 20_000));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Ack(u32, u64, Option<u64>, u32),
        Loss(u32),
        Exit,
        Rto(u32),
        Idle,
        Mss(u32),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (any::<u32>(), 0u64..10_000_000, proptest::option::of(0u64..u64::MAX), any::<u32>())
                .prop_map(|(a, dt, r, f)| Op::Ack(a % 200_000 + if a % 97 == 0 { u32::MAX / 2 } else { 0 }, dt, r, f)),
            1 => any::<u32>().prop_map(Op::Loss),
            1 => Just(Op::Exit),
            1 => any::<u32>().prop_map(Op::Rto),
            1 => Just(Op::Idle),
            1 => (0u32..70_000).prop_map(Op::Mss),
        ]
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_keeps_invariants(
            mss in 1u32..70_000,
            iw in 0u32..200_000,
            cubic in proptest::bool::ANY,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let alg = if cubic { CongestionAlgorithm::Cubic } else { CongestionAlgorithm::NewReno };
            let mut c = Congestion::new(alg, mss, iw);
            let mut mss = mss.max(1);
            let mut now = Instant::ZERO;
            let mut in_recovery = false;
            for op in ops {
                let before = c.cwnd();
                match op {
                    Op::Ack(a, dt, rtt, flight) => {
                        now += Duration::from_micros(dt);
                        c.on_ack(now, a, rtt.map(Duration::from_micros), flight);
                        // Acknowledgements never shrink the window.
                        proptest::prop_assert!(c.cwnd() >= before);
                    }
                    Op::Loss(f) => {
                        c.on_congestion_event(now, f);
                        in_recovery = true;
                        proptest::prop_assert!(c.ssthresh() >= 2 * mss.min(u32::MAX / 2));
                    }
                    Op::Exit => {
                        if in_recovery {
                            c.on_recovery_exit(now);
                            proptest::prop_assert_eq!(c.cwnd(), c.ssthresh());
                        }
                        in_recovery = false;
                    }
                    Op::Rto(f) => {
                        c.on_rto(now, f);
                        proptest::prop_assert_eq!(c.cwnd(), mss);
                        in_recovery = false;
                    }
                    Op::Idle => {
                        c.on_idle_restart(now);
                        proptest::prop_assert!(c.cwnd() <= before.max(mss));
                    }
                    Op::Mss(m) => {
                        c.set_mss(m);
                        mss = m.max(1);
                    }
                }
                proptest::prop_assert!(c.cwnd() >= mss, "cwnd {} below mss {}", c.cwnd(), mss);
            }
        }
    }

    #[test]
    fn cubic_without_prior_loss_grows_convex_from_ssthresh() {
        // Slow start capped by ssthresh (after an RTO) overshooting W_max: K = 0, plateau here.
        let mut c = Cubic::new(MSS, 10 * MSS);
        c.on_rto(Instant::ZERO, 40_000); // W_max = 10000, ssthresh = 28000.
        let mut now = Instant::ZERO;
        for _ in 0..10 {
            now = one_rtt(&mut c, now, RTT);
        }
        assert!(c.cwnd() >= 28_000);
        assert_eq!(c.k(), Duration::ZERO);
        let before = c.cwnd();
        for _ in 0..20 {
            now = one_rtt(&mut c, now, RTT);
        }
        assert!(c.cwnd() > before);
    }

    /// RFC 9438 section 4.9: a spurious congestion event is undone to the state saved when it
    /// began (cwnd, ssthresh, W_max, cwnd_prior); the next epoch's K is derived from them, so
    /// the window continues on the curve it was on. NewReno restores cwnd and ssthresh. An
    /// RTO (and a repeated one) is undone to the state before the first timeout.
    #[test]
    fn undo_restores_the_state_before_the_event() {
        let mut c = Cubic::new(MSS, 10 * MSS);
        let mut now = Instant::from_secs_for_test(1);
        // A first event at 40 segments sets W_max; grow to 30 segments below it.
        c.cwnd = 40 * MSS;
        c.on_congestion_event(now, 40 * MSS);
        c.on_recovery_exit(now);
        while c.cwnd() < 34 * MSS {
            now = one_rtt(&mut c, now, RTT);
        }
        let before = c;
        let (cwnd, ssthresh, w_max) = (c.cwnd(), c.ssthresh(), c.w_max());
        assert!(w_max > cwnd, "concave region: W_max {w_max} cwnd {cwnd}");
        c.on_congestion_event(now, cwnd);
        c.on_recovery_exit(now);
        assert!(
            c.cwnd() < cwnd && c.w_max() < w_max,
            "fast convergence lowered W_max"
        );
        c.on_spurious_congestion_event(now);
        assert_eq!((c.cwnd(), c.ssthresh(), c.w_max()), (cwnd, ssthresh, w_max));
        assert_eq!(c.cwnd_prior, before.cwnd_prior);
        // The new epoch aims at the restored W_max from the restored cwnd.
        c.on_ack(now, MSS, Some(RTT), cwnd);
        let segs = f64::from(w_max - cwnd) / f64::from(MSS);
        let k = (segs / CUBIC_C).cbrt();
        assert!((c.k().total_micros() as f64 / 1e6 - k).abs() < 1e-3);
        // RTO then a repeated RTO: undone to before the first.
        c.on_rto(now, c.cwnd());
        c.on_repeated_rto(now);
        c.on_spurious_congestion_event(now);
        assert!(c.cwnd() >= cwnd && c.ssthresh() == ssthresh && c.w_max() == w_max);

        let mut r = NewReno::new(MSS, 10 * MSS);
        let (cwnd, ssthresh) = (r.cwnd(), r.ssthresh());
        r.on_congestion_event(now, cwnd);
        r.on_recovery_exit(now);
        assert!(r.cwnd() < cwnd && r.ssthresh() < ssthresh);
        r.on_spurious_congestion_event(now);
        assert_eq!((r.cwnd(), r.ssthresh()), (cwnd, ssthresh));
        r.on_rto(now, cwnd);
        r.on_repeated_rto(now);
        r.on_spurious_congestion_event(now);
        assert_eq!((r.cwnd(), r.ssthresh()), (cwnd, ssthresh));
    }
}
