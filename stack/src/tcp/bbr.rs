//! BBR v1 congestion control, as Linux's mainline `tcp_bbr` and
//! draft-cardwell-iccrg-bbr-congestion-control-00 describe it.
//!
//! BBR builds a model of the path from delivery-rate samples ([`RateSample`]): the bottleneck
//! bandwidth (a windowed maximum over 10 round trips) and the round-trip propagation time (a
//! windowed minimum over 10 s). It paces at `pacing_gain * bw` and caps the data in flight at
//! `cwnd_gain * bw * min_rtt`, moving through Startup, Drain, ProbeBW (the eight-phase gain
//! cycle) and ProbeRTT. Loss does not shrink the model: like v1 it only modulates cwnd during
//! recovery (packet conservation for one round, then the pre-recovery window is restored), so
//! under random loss the goodput is bounded by loss recovery, not by a congestion response.
//!
//! All the per-ACK work is in [`CongestionControl::on_rate_sample`]; `on_ack` does nothing.
//! Sizes are in bytes, rates in bytes per second, time only from the `now` arguments.
//!
//! Deliberately left out, and why:
//! - BBRv2/v3's loss and ECN bounds (`inflight_hi` / `inflight_lo`): they make the sender react
//!   to loss rate, the opposite of what this stack needs BBR for (goodput under random loss).
//! - Linux's long-term bandwidth ("policer") detection (`lt_bw`): it triggers only at loss rates
//!   above 20 %, costs state, and is a heuristic outside the draft's core algorithm.
//! - Linux's ACK-aggregation cwnd allowance (`extra_acked`) and TSO autosizing: the send
//!   quantum is fixed at one MSS, so the quantization allowance is a flat `3 * MSS` (Linux adds
//!   `3 * tso_segs_goal`, plus 2 segments in the 1.25 phase, which is kept); the cwnd gain of 2
//!   already covers delayed ACKs.
//! - `is_ack_delayed` filtering of min-RTT samples: the rate samples do not carry it.
//!
//! Adaptations to this stack's hooks (deviations from Linux are noted where they happen):
//! - Linux marks the socket application-limited during ProbeRTT so that the low-rate samples of
//!   that phase cannot lower the bandwidth estimate; the connection does not know about
//!   ProbeRTT, so BBR keeps the mark itself (`app_limited_until`) and treats every sample of a
//!   segment sent before the mark was passed as application-limited.
//! - Linux ends the RTO "Loss" state when everything outstanding at the RTO is acknowledged and
//!   then restores the saved cwnd; here that point is `delivered + bytes_in_flight` at
//!   [`CongestionControl::on_rto`] (or an explicit `on_recovery_exit`, whichever comes first).
//! - A fast-recovery episode that starts within one round of the previous one's end does not
//!   cut cwnd or start a new packet-conservation round (the cwnd is still saved). Linux gets
//!   this when one ACK ends recovery and starts the next; with the separate exit/entry hooks
//!   here, back-to-back episodes (the normal case under ~1 % random loss at a large BDP) would
//!   otherwise conserve packets forever, freezing inflight at whatever the pacing margin, the
//!   0.75 phase or ProbeRTT left and ratcheting the bandwidth estimate down (a 20 % goodput loss
//!   and a collapse after ProbeRTT in the test driver).
//! - The handshake RTT is not seen unless the connection passes it to
//!   [`Bbr::set_handshake_rtt`]; until an RTT is known the initial pacing rate assumes 1 ms.
//! - As in Linux (and the draft), Startup grows cwnd by the delivered bytes only while it is
//!   below the target (or inside the first window), and every ACK's newly lost bytes are taken
//!   off cwnd before it grows again.
//! - ProbeBW starts at a pseudo-random phase other than the 0.75 one, as Linux does, but the
//!   randomness is a hash of the entry time and the delivered byte count (deterministic for a
//!   given input, different across connections), since the constructor takes no seed.

use crate::tcp::congestion::CongestionControl;
use crate::tcp::rate::RateSample;
use crate::time::{Duration, Instant};

/// Startup's pacing and cwnd gain, `2 / ln 2`: the smallest gain that doubles the sending rate
/// every round trip.
pub const HIGH_GAIN: f64 = 2.0 / core::f64::consts::LN_2;
/// Drain's pacing gain, the inverse of [`HIGH_GAIN`]: drains Startup's queue in one round.
pub const DRAIN_GAIN: f64 = 1.0 / HIGH_GAIN;
/// ProbeBW's cwnd gain: room for delayed and stretched ACKs.
pub const CWND_GAIN: f64 = 2.0;
/// ProbeBW's pacing-gain cycle: probe up, drain the probe's queue, cruise for six phases.
pub const PACING_GAIN_CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Window of the maximum-bandwidth filter, in round trips (Linux: gain cycle + 2).
pub const BW_FILTER_ROUNDS: usize = 10;
/// Window of the min-RTT filter; ProbeRTT runs when it expires without a lower sample.
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// Time ProbeRTT holds the window at [`MIN_CWND_SEGMENTS`] (at least one round as well).
pub const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// Pacing is this fraction of `gain * bw` (Linux's 1 % `bbr_pacing_margin_percent`), so the
/// bottleneck queue drains slowly even at gain 1.
const PACING_MARGIN: f64 = 0.99;
/// Startup ends after this many rounds without [`FULL_BW_GROWTH`] bandwidth growth.
const FULL_BW_ROUNDS: u8 = 3;
/// Growth (×1.25, as 5/4) that counts as "still growing" in Startup.
const FULL_BW_GROWTH_NUM: u128 = 5;
const FULL_BW_GROWTH_DEN: u128 = 4;
/// The smallest cwnd outside recovery, and ProbeRTT's window, in segments.
pub const MIN_CWND_SEGMENTS: u32 = 4;
/// Send-quantum allowance added to the cwnd target, in segments (Linux: 3 TSO bursts).
const QUANTUM_SEGMENTS: u32 = 3;

/// Which phase of its state machine BBR is in.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BbrState {
    /// Doubling the sending rate each round until the bandwidth stops growing.
    Startup,
    /// Draining the queue Startup built, until inflight is down to one BDP.
    Drain,
    /// Steady state: cycling the pacing gain around 1 to probe for more bandwidth.
    ProbeBw,
    /// Window cut to 4 segments for a moment to measure the propagation RTT again.
    ProbeRtt,
}

/// The connection's loss-recovery state as BBR tracks it (Linux's `prev_ca_state`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Recovery {
    /// Not recovering.
    Open,
    /// Fast recovery (duplicate ACKs / SACK).
    Fast,
    /// After a retransmission timeout, until the data outstanding at the RTO is delivered.
    Loss,
}

/// BBR v1 (see the module documentation). All sizes in bytes, rates in bytes per second.
#[derive(Clone, Debug, PartialEq)]
pub struct Bbr {
    mss: u32,
    /// As configured; 0 means the RFC 6928 default, recomputed when the MSS changes.
    iw_config: u32,
    cwnd: u32,
    /// cwnd saved on entering recovery, an RTO or ProbeRTT, restored when they end.
    prior_cwnd: u32,
    /// Current pacing rate, bytes per second (never 0).
    pacing_rate: u64,
    /// Maximum delivery rate of each of the last [`BW_FILTER_ROUNDS`] rounds, indexed by
    /// `round % BW_FILTER_ROUNDS`. Stale slots are only cleared when a sample is accepted, so
    /// (as Linux's minmax filter) only new measurements can make the estimate expire.
    bw_slots: [u64; BW_FILTER_ROUNDS],
    /// Round of the last accepted bandwidth sample.
    bw_round: u64,
    /// Round trips counted so far.
    round_count: u64,
    /// A round ends when a segment sent at or after this delivered count is delivered.
    next_round_delivered: u64,
    /// The connection's total delivered bytes, from the latest sample.
    delivered: u64,
    /// Bandwidth at the last Startup round that still grew by 25 %.
    full_bw: u64,
    /// Minimum RTT in microseconds; `u64::MAX` until the first sample.
    min_rtt_us: u64,
    /// When `min_rtt_us` was last set.
    min_rtt_stamp: Instant,
    /// Start of the current ProbeBW phase.
    cycle_stamp: Instant,
    /// End of ProbeRTT's 200 ms at the small window, once the window got there.
    probe_rtt_done_stamp: Instant,
    /// Segments sent before the delivered count passes this are treated as app-limited (the
    /// ProbeRTT mark; 0 = none).
    app_limited_until: u64,
    /// After an RTO, the delivered count at which all data outstanding at the RTO is in.
    loss_exit_delivered: u64,
    /// `round_count` when the last recovery ended (`u64::MAX`: none yet).
    recovery_exit_round: u64,
    state: BbrState,
    recovery: Recovery,
    /// Index into [`PACING_GAIN_CYCLE`].
    cycle_idx: u8,
    /// Startup rounds without 25 % growth.
    full_bw_cnt: u8,
    /// The latest valid sample started a new round.
    round_start: bool,
    /// Startup found the bottleneck bandwidth (never reset).
    full_pipe: bool,
    /// In the first round of fast recovery: cwnd = max(cwnd, inflight + acked).
    packet_conservation: bool,
    /// `on_congestion_event` was called; the next sample starts packet conservation.
    entering_recovery: bool,
    /// Restarting after idle: ProbeRTT is not entered until data is delivered again.
    idle_restart: bool,
    /// ProbeRTT's `probe_rtt_done_stamp` is set.
    probe_rtt_timing: bool,
    /// A full round passed in ProbeRTT at the small window.
    probe_rtt_round_done: bool,
    /// An RTT sample was seen (the initial pacing rate was recomputed from it).
    has_seen_rtt: bool,
}

/// The effective initial window: `initial_window_bytes`, or the RFC 6928 value
/// `min(10*MSS, max(2*MSS, 14600))` when it is 0. Never below one MSS.
fn initial_window(mss: u32, initial_window_bytes: u32) -> u32 {
    if initial_window_bytes == 0 {
        mss.saturating_mul(10)
            .min(mss.saturating_mul(2).max(14_600))
    } else {
        initial_window_bytes.max(mss)
    }
}

/// `bw * gain` less the pacing margin, in bytes per second, at least 1.
fn pacing_rate_for(bw: f64, gain: f64) -> u64 {
    // `as` saturates (and maps NaN to 0), so no input can panic here.
    ((bw * gain * PACING_MARGIN) as u64).max(1)
}

/// A cheap, well-mixed 64-bit hash (the splitmix64 finalizer), for the ProbeBW start phase.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Bbr {
    /// A fresh sender in Startup: `cwnd` = initial window, pacing at `HIGH_GAIN * cwnd / 1 ms`
    /// until an RTT is measured. `initial_window_bytes == 0` selects RFC 6928's IW for `mss`.
    pub fn new(mss: u32, initial_window_bytes: u32) -> Bbr {
        let mss = mss.max(1);
        let cwnd = initial_window(mss, initial_window_bytes);
        Bbr {
            mss,
            iw_config: initial_window_bytes,
            cwnd,
            prior_cwnd: 0,
            pacing_rate: Self::initial_pacing_rate(cwnd, 1_000),
            bw_slots: [0; BW_FILTER_ROUNDS],
            bw_round: 0,
            round_count: 0,
            next_round_delivered: 0,
            delivered: 0,
            full_bw: 0,
            min_rtt_us: u64::MAX,
            min_rtt_stamp: Instant::ZERO,
            cycle_stamp: Instant::ZERO,
            probe_rtt_done_stamp: Instant::ZERO,
            app_limited_until: 0,
            loss_exit_delivered: 0,
            recovery_exit_round: u64::MAX,
            state: BbrState::Startup,
            recovery: Recovery::Open,
            cycle_idx: 0,
            full_bw_cnt: 0,
            round_start: false,
            full_pipe: false,
            packet_conservation: false,
            entering_recovery: false,
            idle_restart: false,
            probe_rtt_timing: false,
            probe_rtt_round_done: false,
            has_seen_rtt: false,
        }
    }

    /// The sender MSS changed (after the handshake or by PMTU discovery). An untouched initial
    /// window (nothing delivered yet) is recomputed for the new MSS, with its pacing rate.
    pub fn set_mss(&mut self, mss: u32) {
        let mss = mss.max(1);
        let untouched = self.delivered == 0
            && self.state == BbrState::Startup
            && self.recovery == Recovery::Open
            && self.cwnd == initial_window(self.mss, self.iw_config);
        self.mss = mss;
        if untouched {
            self.cwnd = initial_window(mss, self.iw_config);
            let rtt = if self.min_rtt_us == u64::MAX {
                1_000
            } else {
                self.min_rtt_us
            };
            self.pacing_rate = Self::initial_pacing_rate(self.cwnd, rtt);
        }
        self.clamp_cwnd();
    }

    /// Seeds the model with the handshake's RTT, as Linux's `bbr_init` does with `srtt` and
    /// `tcp_min_rtt`: min_rtt and the initial pacing rate `HIGH_GAIN * cwnd / rtt` come from
    /// it instead of the 1 ms guess. Optional; ignored once an RTT sample was seen.
    pub fn set_handshake_rtt(&mut self, now: Instant, rtt: Duration) {
        if self.has_seen_rtt || self.min_rtt_us != u64::MAX {
            return;
        }
        let us = rtt.total_micros().min(u64::MAX - 1);
        self.min_rtt_us = us;
        self.min_rtt_stamp = now;
        self.has_seen_rtt = true;
        self.pacing_rate = Self::initial_pacing_rate(self.cwnd, us);
    }

    /// The MSS the window arithmetic uses.
    pub fn mss(&self) -> u32 {
        self.mss
    }

    /// The state-machine phase.
    pub fn state(&self) -> BbrState {
        self.state
    }

    /// The bottleneck-bandwidth estimate (windowed maximum delivery rate), bytes per second;
    /// 0 before the first valid sample.
    pub fn bandwidth(&self) -> u64 {
        self.bw_slots.iter().copied().max().unwrap_or(0)
    }

    /// The round-trip propagation time estimate, once an RTT was sampled.
    pub fn min_rtt(&self) -> Option<Duration> {
        (self.min_rtt_us != u64::MAX).then(|| Duration::from_micros(self.min_rtt_us))
    }

    /// Whether Startup found the pipe full (stays true for the connection's life).
    pub fn full_pipe(&self) -> bool {
        self.full_pipe
    }

    /// Round trips counted so far (one per delivered flight).
    pub fn round_count(&self) -> u64 {
        self.round_count
    }

    /// The current pacing gain (state and ProbeBW phase).
    pub fn pacing_gain(&self) -> f64 {
        match self.state {
            BbrState::Startup => HIGH_GAIN,
            BbrState::Drain => DRAIN_GAIN,
            BbrState::ProbeBw => PACING_GAIN_CYCLE[usize::from(self.cycle_idx) % 8],
            BbrState::ProbeRtt => 1.0,
        }
    }

    /// The current cwnd gain.
    pub fn cwnd_gain(&self) -> f64 {
        match self.state {
            // Drain keeps Startup's window so that only pacing drains the queue.
            BbrState::Startup | BbrState::Drain => HIGH_GAIN,
            BbrState::ProbeBw => CWND_GAIN,
            BbrState::ProbeRtt => 1.0,
        }
    }

    /// The ProbeBW phase, an index into [`PACING_GAIN_CYCLE`].
    pub fn cycle_index(&self) -> u8 {
        self.cycle_idx
    }

    /// The estimated bandwidth-delay product `bw * min_rtt`, bytes (the initial window until
    /// an RTT is known).
    pub fn bdp(&self) -> u32 {
        self.bdp_with_gain(self.bandwidth(), 1.0)
    }

    fn initial_pacing_rate(cwnd: u32, rtt_us: u64) -> u64 {
        let bw = f64::from(cwnd) * 1e6 / rtt_us.max(1) as f64;
        pacing_rate_for(bw, HIGH_GAIN)
    }

    fn min_cwnd(&self) -> u32 {
        self.mss.saturating_mul(MIN_CWND_SEGMENTS)
    }

    /// `gain * bw * min_rtt`, rounded up; the initial window while no RTT is known.
    fn bdp_with_gain(&self, bw: u64, gain: f64) -> u32 {
        if self.min_rtt_us == u64::MAX {
            return initial_window(self.mss, self.iw_config);
        }
        let bdp = bw as f64 * self.min_rtt_us as f64 / 1e6 * gain;
        bdp.ceil() as u32 // saturating
    }

    /// The inflight `gain` asks for: the BDP plus the send-quantum allowance (Linux's
    /// `bbr_inflight` with `bbr_quantization_budget`).
    fn inflight_target(&self, bw: u64, gain: f64) -> u32 {
        let mut segs = QUANTUM_SEGMENTS;
        if self.state == BbrState::ProbeBw && self.cycle_idx == 0 {
            // Room for the probe's extra packets (Linux: +2 in the 1.25 phase).
            segs += 2;
        }
        self.bdp_with_gain(bw, gain)
            .saturating_add(self.mss.saturating_mul(segs))
    }

    /// Feeds an accepted sample to the max filter at the current round.
    fn bw_filter_update(&mut self, bw: u64) {
        let round = self.round_count;
        let gap = round.saturating_sub(self.bw_round);
        if gap >= BW_FILTER_ROUNDS as u64 {
            self.bw_slots = [0; BW_FILTER_ROUNDS];
        } else {
            // Clear the slots of the rounds skipped since the last update (bounded by 10).
            for r in self.bw_round + 1..=round {
                self.bw_slots[(r % BW_FILTER_ROUNDS as u64) as usize] = 0;
            }
        }
        self.bw_round = self.bw_round.max(round);
        let slot = &mut self.bw_slots[(round % BW_FILTER_ROUNDS as u64) as usize];
        *slot = (*slot).max(bw);
    }

    /// Round counting and the bandwidth filter (Linux `bbr_update_bw`).
    fn update_bw(&mut self, rs: &RateSample, app_limited: bool) {
        self.round_start = false;
        let Some(bw) = rs.rate_bytes_per_sec() else {
            return;
        };
        if rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = rs.delivered_total;
            self.round_count = self.round_count.saturating_add(1);
            self.round_start = true;
            self.packet_conservation = false;
        }
        // An app-limited sample is a lower bound of the path's rate: it may raise the
        // estimate, never lower it.
        if !app_limited || bw >= self.bandwidth() {
            self.bw_filter_update(bw);
        }
    }

    /// Moves to the next ProbeBW phase.
    fn advance_cycle_phase(&mut self, now: Instant) {
        self.cycle_idx = (self.cycle_idx + 1) % PACING_GAIN_CYCLE.len() as u8;
        self.cycle_stamp = now;
    }

    fn is_next_cycle_phase(&self, now: Instant, rs: &RateSample) -> bool {
        let min_rtt = if self.min_rtt_us == u64::MAX {
            0
        } else {
            self.min_rtt_us
        };
        let full_length = now.saturating_since(self.cycle_stamp).total_micros() > min_rtt;
        let gain = self.pacing_gain();
        if gain == 1.0 {
            return full_length;
        }
        // Inflight before this ACK (Linux uses `prior_in_flight`).
        let prior_inflight =
            u64::from(rs.bytes_in_flight) + u64::from(rs.newly_acked) + u64::from(rs.newly_lost);
        let bw = self.bandwidth();
        if gain > 1.0 {
            // Probe until the extra inflight is really in the network (or it caused loss).
            full_length
                && (rs.newly_lost > 0
                    || prior_inflight >= u64::from(self.inflight_target(bw, gain)))
        } else {
            // Drain phase: done early once the queue is gone.
            full_length || prior_inflight <= u64::from(self.inflight_target(bw, 1.0))
        }
    }

    /// Startup's exit test: three rounds without 25 % bandwidth growth.
    fn check_full_pipe(&mut self, app_limited: bool) {
        if self.full_pipe || !self.round_start || app_limited {
            return;
        }
        let bw = self.bandwidth();
        if u128::from(bw) * FULL_BW_GROWTH_DEN >= u128::from(self.full_bw) * FULL_BW_GROWTH_NUM {
            self.full_bw = bw;
            self.full_bw_cnt = 0;
            return;
        }
        self.full_bw_cnt = self.full_bw_cnt.saturating_add(1);
        self.full_pipe = self.full_bw_cnt >= FULL_BW_ROUNDS;
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.state = BbrState::ProbeBw;
        // Linux: cycle_idx = CYCLE_LEN - 1 - random(0..7), then advance: any phase but 1 (the
        // 0.75 one), so flows sharing a bottleneck do not probe in lockstep.
        let r = (mix64(now.total_micros() ^ self.delivered.rotate_left(32)) % 7) as u8;
        self.cycle_idx = PACING_GAIN_CYCLE.len() as u8 - 1 - r;
        self.advance_cycle_phase(now);
    }

    fn check_drain(&mut self, now: Instant, rs: &RateSample) {
        if self.state == BbrState::Startup && self.full_pipe {
            self.state = BbrState::Drain;
        }
        if self.state == BbrState::Drain
            && rs.bytes_in_flight <= self.inflight_target(self.bandwidth(), 1.0)
        {
            self.enter_probe_bw(now);
        }
    }

    /// Remembers a cwnd worth restoring after recovery, an RTO or ProbeRTT.
    fn save_cwnd(&mut self) {
        if self.recovery == Recovery::Open && self.state != BbrState::ProbeRtt {
            self.prior_cwnd = self.cwnd;
        } else {
            // Recovery or ProbeRTT have cut cwnd temporarily: keep the larger one.
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        }
    }

    /// Back to Startup if the pipe was never found full, else to ProbeBW.
    fn reset_mode(&mut self, now: Instant) {
        if self.full_pipe {
            self.enter_probe_bw(now);
        } else {
            self.state = BbrState::Startup;
        }
    }

    fn check_probe_rtt_done(&mut self, now: Instant) {
        if !self.probe_rtt_timing || now <= self.probe_rtt_done_stamp {
            return;
        }
        // The next ProbeRTT is due MIN_RTT_WINDOW from now even if no lower RTT was seen.
        self.min_rtt_stamp = now;
        self.probe_rtt_timing = false;
        self.cwnd = self.cwnd.max(self.prior_cwnd);
        self.reset_mode(now);
    }

    /// The min-RTT filter and ProbeRTT (Linux `bbr_update_min_rtt`).
    fn update_min_rtt(&mut self, now: Instant, rs: &RateSample) {
        let expired = self.min_rtt_us != u64::MAX
            && now.saturating_since(self.min_rtt_stamp) > MIN_RTT_WINDOW;
        if let Some(rtt) = rs.rtt {
            let us = rtt.total_micros().min(u64::MAX - 1);
            if us < self.min_rtt_us || expired {
                self.min_rtt_us = us;
                self.min_rtt_stamp = now;
            }
        }
        if expired && !self.idle_restart && self.state != BbrState::ProbeRtt {
            self.save_cwnd();
            self.state = BbrState::ProbeRtt;
            self.probe_rtt_timing = false;
        }
        if self.state == BbrState::ProbeRtt {
            // The low-rate samples of ProbeRTT (and of its last flight) must not lower the
            // bandwidth estimate (Linux marks the socket app-limited here).
            self.app_limited_until = rs
                .delivered_total
                .saturating_add(u64::from(rs.bytes_in_flight))
                .max(1);
            if !self.probe_rtt_timing && rs.bytes_in_flight <= self.min_cwnd() {
                // At the small window: hold it for max(200 ms, one round).
                self.probe_rtt_done_stamp = now + PROBE_RTT_DURATION;
                self.probe_rtt_timing = true;
                self.probe_rtt_round_done = false;
                self.next_round_delivered = rs.delivered_total;
            } else if self.probe_rtt_timing {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done {
                    self.check_probe_rtt_done(now);
                }
            }
        }
        if rs.delivered > 0 {
            self.idle_restart = false;
        }
    }

    fn set_pacing_rate(&mut self, bw: u64, gain: f64) {
        let rate = pacing_rate_for(bw as f64, gain);
        // In Startup the rate only rises: an early low sample must not slow the ramp-up.
        if self.full_pipe || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    /// The bounds every cwnd change ends with: ProbeRTT's cap, and never below one MSS.
    fn clamp_cwnd(&mut self) {
        if self.state == BbrState::ProbeRtt {
            self.cwnd = self.cwnd.min(self.min_cwnd());
        }
        self.cwnd = self.cwnd.max(self.mss);
    }

    /// cwnd (Linux `bbr_set_cwnd` with `bbr_set_cwnd_to_recover_or_restore`).
    fn set_cwnd(&mut self, rs: &RateSample) {
        let acked = rs.newly_acked;
        if acked > 0 {
            let mut cwnd = self.cwnd;
            if rs.newly_lost > 0 {
                cwnd = cwnd.saturating_sub(rs.newly_lost).max(self.mss);
            }
            let inflight_plus_acked = rs.bytes_in_flight.saturating_add(acked);
            if self.entering_recovery {
                // First ACK of fast recovery: packet conservation for one round, which starts
                // now (segments sent from here on end it).
                self.entering_recovery = false;
                self.packet_conservation = true;
                self.next_round_delivered = rs.delivered_total;
                cwnd = inflight_plus_acked;
            } else if self.recovery == Recovery::Loss && self.delivered >= self.loss_exit_delivered
            {
                // Everything outstanding at the RTO is delivered: restore the saved window.
                self.recovery = Recovery::Open;
                self.recovery_exit_round = self.round_count;
                cwnd = cwnd.max(self.prior_cwnd);
            }
            if self.packet_conservation {
                cwnd = cwnd.max(inflight_plus_acked);
            } else {
                let bw = self.bandwidth();
                let target = self.inflight_target(bw, self.cwnd_gain());
                if self.full_pipe {
                    cwnd = cwnd.saturating_add(acked).min(target);
                } else if cwnd < target
                    || self.delivered < u64::from(initial_window(self.mss, self.iw_config))
                {
                    // Startup: grow by what was delivered (doubling per round), while below
                    // the target or still inside the first window.
                    cwnd = cwnd.saturating_add(acked);
                }
                cwnd = cwnd.max(self.min_cwnd());
            }
            self.cwnd = cwnd;
        }
        self.clamp_cwnd();
    }
}

impl CongestionControl for Bbr {
    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// BBR has no slow-start threshold: `u32::MAX` (Linux reports `TCP_INFINITE_SSTHRESH`).
    fn ssthresh(&self) -> u32 {
        u32::MAX
    }

    /// Nothing: every update happens in [`CongestionControl::on_rate_sample`], which sees every
    /// delivering ACK, in and out of recovery.
    fn on_ack(&mut self, _now: Instant, _acked: u32, _rtt: Option<Duration>, _flight: u32) {}

    fn on_congestion_event(&mut self, _now: Instant, bytes_in_flight: u32) {
        if self.recovery == Recovery::Fast {
            return;
        }
        let continued = self.recovery_exit_round != u64::MAX
            && self.round_count <= self.recovery_exit_round.saturating_add(1);
        self.save_cwnd();
        self.recovery = Recovery::Fast;
        if continued {
            // A new episode within a round of the last one is the same stretch of (random)
            // loss: no new cut or conservation round. Linux gets this when recovery ends and
            // restarts on one ACK; re-arming every round would freeze inflight at whatever the
            // pacing margin or ProbeRTT left and ratchet the model down.
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
            return;
        }
        self.entering_recovery = true;
        // The ACK's own rate sample sets cwnd = inflight + acked; until then, no new data.
        self.cwnd = bytes_in_flight;
        self.clamp_cwnd();
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        if self.recovery != Recovery::Open {
            self.cwnd = self.cwnd.max(self.prior_cwnd);
            self.recovery_exit_round = self.round_count;
        }
        self.recovery = Recovery::Open;
        self.packet_conservation = false;
        self.entering_recovery = false;
        self.clamp_cwnd();
    }

    /// Nothing, and the connection does not call it under BBR: loss does not cut BBR's model
    /// (bandwidth and min-RTT filters), only cwnd for the recovery round or the RTO's loss
    /// window, which BBR ends by its own rules (as `on_recovery_exit` and the loss-exit
    /// point). Undo is for the loss-based algorithms.
    fn on_spurious_congestion_event(&mut self, _now: Instant) {}

    fn on_rto(&mut self, _now: Instant, bytes_in_flight: u32) {
        self.save_cwnd();
        self.recovery = Recovery::Loss;
        self.loss_exit_delivered = self.delivered.saturating_add(u64::from(bytes_in_flight));
        self.packet_conservation = false;
        self.entering_recovery = false;
        // Startup's growth test starts over (Linux resets full_bw on an RTO).
        self.full_bw = 0;
        // The loss window: the connection resends from SND.UNA, cwnd regrows per ACK.
        self.cwnd = self.mss;
    }

    /// Linux's `tcp_enter_loss` again while already in loss: the cwnd saved at the first
    /// timeout and the loss-exit point stay (saving now would save the loss window); the
    /// startup growth test and the loss window start over, as on every `CA_EVENT_LOSS`.
    fn on_repeated_rto(&mut self, _now: Instant) {
        self.recovery = Recovery::Loss;
        self.packet_conservation = false;
        self.entering_recovery = false;
        self.full_bw = 0;
        self.cwnd = self.mss;
    }

    /// Linux's `CA_EVENT_TX_START` after idle: cwnd is kept (pacing bounds the burst); in
    /// ProbeBW pace at the estimated bandwidth (gain 1) until the next sample, and a ProbeRTT
    /// whose time is up ends now.
    fn on_idle_restart(&mut self, now: Instant) {
        self.idle_restart = true;
        match self.state {
            BbrState::ProbeBw => self.set_pacing_rate(self.bandwidth(), 1.0),
            BbrState::ProbeRtt => self.check_probe_rtt_done(now),
            _ => {}
        }
    }

    fn on_rate_sample(&mut self, now: Instant, rs: &RateSample) {
        // The mark is never cleared: segments sent after the delivered count passed it have a
        // larger `prior_delivered`, and those sent before it must stay app-limited (Linux marks
        // them at send time).
        let app_limited = rs.is_app_limited
            || (self.app_limited_until != 0 && rs.prior_delivered <= self.app_limited_until);
        self.delivered = self.delivered.max(rs.delivered_total);

        self.update_bw(rs, app_limited);
        if self.state == BbrState::ProbeBw && self.is_next_cycle_phase(now, rs) {
            self.advance_cycle_phase(now);
        }
        self.check_full_pipe(app_limited);
        self.check_drain(now, rs);
        self.update_min_rtt(now, rs);

        if !self.has_seen_rtt {
            if let Some(rtt) = rs.rtt {
                // Linux `bbr_init_pacing_rate_from_rtt`: the first RTT replaces the 1 ms guess.
                self.has_seen_rtt = true;
                self.pacing_rate = Self::initial_pacing_rate(self.cwnd, rtt.total_micros());
            }
        }
        self.set_pacing_rate(self.bandwidth(), self.pacing_gain());
        self.set_cwnd(rs);
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate)
    }

    fn wants_rate_samples(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::congestion::Cubic;
    use std::collections::VecDeque;

    const MSS: u32 = 1_000;
    /// Bottleneck: 10 MB/s, 20 ms base RTT: BDP = 200 kB = 200 segments, 100 us per segment.
    const RATE: u64 = 10_000_000;
    const RTT_US: u64 = 20_000;
    const BDP: u32 = 200_000;

    /// One segment's send record (draft-cheng-iccrg-delivery-rate-estimation).
    struct Seg {
        sent: u64,
        delivered: u64,
        delivered_time: u64,
        first_sent_time: u64,
        app_limited: bool,
        ack_at: u64,
    }

    /// A deterministic sender over a FIFO bottleneck of `RATE` with an unlimited queue and base
    /// RTT `RTT_US`; one ACK per segment; times in microseconds.
    struct Sim {
        now: u64,
        /// Bottleneck rate, bytes/s.
        rate: u64,
        link_free: f64,
        flight: VecDeque<Seg>,
        inflight: u32,
        delivered: u64,
        delivered_time: u64,
        first_sent_time: u64,
        app_limited_mark: u64,
        next_send: f64,
        /// Application-limited sending rate (bytes/s), if any.
        app_rate: Option<u64>,
        app_next: f64,
        /// Bytes the next ACK reports as newly lost.
        pending_lost: u32,
        /// The test script put the sender in loss recovery (no `on_ack` calls then).
        recovering: bool,
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                now: 0,
                rate: RATE,
                link_free: 0.0,
                flight: VecDeque::new(),
                inflight: 0,
                delivered: 0,
                delivered_time: 0,
                first_sent_time: 0,
                app_limited_mark: 0,
                next_send: 0.0,
                app_rate: None,
                app_next: 0.0,
                pending_lost: 0,
                recovering: false,
            }
        }

        fn send<C: CongestionControl>(&mut self, c: &C) {
            let now = self.now;
            if self.inflight == 0 {
                self.first_sent_time = now;
                self.delivered_time = now;
            }
            if let Some(app) = self.app_rate {
                // The application is the bottleneck: every segment is app-limited.
                self.app_limited_mark = (self.delivered + u64::from(self.inflight)).max(1);
                self.app_next = self.app_next.max(now as f64) + f64::from(MSS) * 1e6 / app as f64;
            }
            let service = f64::from(MSS) * 1e6 / self.rate as f64;
            let departure = self.link_free.max(now as f64) + service;
            self.link_free = departure;
            self.flight.push_back(Seg {
                sent: now,
                delivered: self.delivered,
                delivered_time: self.delivered_time,
                first_sent_time: self.first_sent_time,
                app_limited: self.app_limited_mark != 0,
                ack_at: (departure - service).round() as u64 + RTT_US,
            });
            self.inflight += MSS;
            if let Some(rate) = c.pacing_rate() {
                self.next_send =
                    self.next_send.max(now as f64) + f64::from(MSS) * 1e6 / rate as f64;
            }
        }

        fn ack(&mut self) -> RateSample {
            let seg = self.flight.pop_front().unwrap();
            self.inflight -= MSS;
            self.delivered += u64::from(MSS);
            self.delivered_time = self.now;
            self.first_sent_time = seg.sent;
            if self.app_limited_mark != 0 && self.delivered > self.app_limited_mark {
                self.app_limited_mark = 0;
            }
            let send_elapsed = seg.sent - seg.first_sent_time;
            let ack_elapsed = self.now - seg.delivered_time;
            RateSample {
                delivered: self.delivered - seg.delivered,
                interval: Duration::from_micros(send_elapsed.max(ack_elapsed)),
                prior_delivered: seg.delivered,
                delivered_total: self.delivered,
                is_app_limited: seg.app_limited,
                rtt: Some(Duration::from_micros(self.now - seg.sent)),
                newly_acked: MSS,
                newly_lost: core::mem::take(&mut self.pending_lost),
                bytes_in_flight: self.inflight,
            }
        }

        /// Runs until `until` us. `pre` runs before each ACK is processed (it may call loss
        /// hooks and returns bytes to report as lost); `post` sees every sample.
        fn run<C: CongestionControl>(
            &mut self,
            c: &mut C,
            until: u64,
            pre: &mut Pre<C>,
            post: &mut dyn FnMut(&C, Instant, &RateSample),
        ) {
            loop {
                let ack_t = self.flight.front().map(|s| s.ack_at);
                let send_t = (self.inflight + MSS <= c.cwnd()).then(|| {
                    (self.next_send.ceil() as u64)
                        .max(self.app_next.ceil() as u64)
                        .max(self.now)
                });
                let t = match (ack_t, send_t) {
                    (Some(a), Some(s)) => a.min(s),
                    (Some(a), None) => a,
                    (None, Some(s)) => s,
                    (None, None) => unreachable!("cwnd below one segment with nothing in flight"),
                };
                if t > until {
                    self.now = until;
                    return;
                }
                self.now = t;
                let now = Instant::from_micros(t);
                if ack_t == Some(t) {
                    let lost = pre(c, now, self.inflight, &mut self.recovering);
                    self.pending_lost += lost;
                    let rs = self.ack();
                    if !self.recovering {
                        c.on_ack(now, MSS, rs.rtt, self.inflight);
                    }
                    c.on_rate_sample(now, &rs);
                    post(c, now, &rs);
                } else {
                    self.send(c);
                }
            }
        }
    }

    /// Runs before each ACK with the inflight before it; may call the loss hooks (setting the
    /// recovery flag) and returns the bytes the ACK reports newly lost.
    type Pre<'a, C> = dyn FnMut(&mut C, Instant, u32, &mut bool) -> u32 + 'a;

    fn nop_pre<C>() -> impl FnMut(&mut C, Instant, u32, &mut bool) -> u32 {
        |_, _, _, _| 0
    }

    fn nop_post<C>() -> impl FnMut(&C, Instant, &RateSample) {
        |_, _, _| {}
    }

    fn secs(s: f64) -> u64 {
        (s * 1e6) as u64
    }

    /// A BBR sender run for `until` seconds on the default path.
    fn steady(until: f64) -> (Sim, Bbr) {
        let mut sim = Sim::new();
        let mut b = Bbr::new(MSS, 0);
        sim.run(&mut b, secs(until), &mut nop_pre(), &mut nop_post());
        (sim, b)
    }

    fn within(x: f64, target: f64, frac: f64) -> bool {
        (x - target).abs() <= target * frac
    }

    #[test]
    fn bbr_is_small() {
        // Boxed in the connection's congestion enum; 216 bytes on 64-bit targets today.
        let size = core::mem::size_of::<Bbr>();
        assert!(size <= 224, "{size}");
    }

    #[test]
    fn initial_window_and_pacing() {
        let b = Bbr::new(MSS, 0);
        assert_eq!(b.cwnd(), 10_000);
        assert_eq!(b.state(), BbrState::Startup);
        assert_eq!(b.ssthresh(), u32::MAX);
        assert!(b.wants_rate_samples());
        // 2.885 * 10000 B / 1 ms * 0.99 = 28.56 MB/s.
        let rate = b.pacing_rate().unwrap();
        assert!(within(rate as f64, 28_563_000.0, 0.001), "{rate}");
        assert_eq!(Bbr::new(1460, 0).cwnd(), 14_600);
        assert_eq!(Bbr::new(9000, 0).cwnd(), 18_000);
        assert_eq!(Bbr::new(MSS, 500).cwnd(), MSS);
    }

    #[test]
    fn handshake_rtt_seeds_min_rtt_and_pacing() {
        let mut b = Bbr::new(MSS, 0);
        b.set_handshake_rtt(Instant::ZERO, Duration::from_millis(20));
        assert_eq!(b.min_rtt(), Some(Duration::from_millis(20)));
        // 2.885 * 10000 B / 20 ms * 0.99 = 1.428 MB/s.
        let rate = b.pacing_rate().unwrap() as f64;
        assert!(within(rate, 1_428_268.0, 0.001), "{rate}");
        b.set_handshake_rtt(Instant::ZERO, Duration::from_millis(5));
        assert_eq!(b.min_rtt(), Some(Duration::from_millis(20)));
        // A later (lower) sample still wins, and startup proceeds as usual.
        let mut sim = Sim::new();
        sim.run(&mut b, secs(1.0), &mut nop_pre(), &mut nop_post());
        assert_eq!(b.state(), BbrState::ProbeBw);
        assert_eq!(b.min_rtt(), Some(Duration::from_micros(RTT_US)));
    }

    #[test]
    fn set_mss_recomputes_untouched_initial_window_only() {
        let mut b = Bbr::new(536, 0);
        assert_eq!(b.cwnd(), 5_360);
        b.set_mss(1460);
        assert_eq!((b.cwnd(), b.mss()), (14_600, 1460));
        let (_, mut b) = steady(1.0);
        let cwnd = b.cwnd();
        b.set_mss(500);
        assert_eq!(b.cwnd(), cwnd);
    }

    #[test]
    fn startup_finds_the_pipe_then_drains_into_probe_bw() {
        let mut sim = Sim::new();
        let mut b = Bbr::new(MSS, 0);
        let mut full_at_round = None;
        let mut states = Vec::new();
        sim.run(&mut b, secs(1.0), &mut nop_pre(), &mut |b: &Bbr, _, _| {
            if b.full_pipe() && full_at_round.is_none() {
                full_at_round = Some(b.round_count());
            }
            if states.last() != Some(&b.state()) {
                states.push(b.state());
            }
        });
        // ceil(log2(BDP / IW)) = 5 rounds of doubling, then 3 rounds without growth, plus 2:
        // round 1 is the first ACK (a one-segment sample) and a round measures the rate the
        // previous round sent at.
        let rounds = full_at_round.expect("pipe never full");
        let doublings = f64::from(BDP / 10_000).log2().ceil() as u64;
        assert!(
            (doublings + 3..=doublings + 3 + 2).contains(&rounds),
            "full pipe at round {rounds}"
        );
        assert_eq!(
            states,
            [BbrState::Startup, BbrState::Drain, BbrState::ProbeBw]
        );
        let bw = b.bandwidth() as f64;
        assert!(within(bw, RATE as f64, 0.10), "bw {bw}");
        assert_eq!(b.min_rtt(), Some(Duration::from_micros(RTT_US)));
        assert!(within(f64::from(b.bdp()), f64::from(BDP), 0.10));
    }

    #[test]
    fn probe_bw_paces_at_the_bottleneck_rate_with_two_bdp_cwnd() {
        let (mut sim, mut b) = steady(2.0);
        assert_eq!(b.state(), BbrState::ProbeBw);
        let start_delivered = sim.delivered;
        let (mut last_t, mut last_rate) = (secs(2.0), b.pacing_rate().unwrap());
        let mut weighted = 0.0;
        let mut phases = [false; 8];
        let mut cwnds = Vec::new();
        sim.run(&mut b, secs(4.0), &mut nop_pre(), &mut |b: &Bbr, now, _| {
            let t = now.total_micros();
            weighted += last_rate as f64 * (t - last_t) as f64;
            last_t = t;
            last_rate = b.pacing_rate().unwrap();
            phases[usize::from(b.cycle_index())] = true;
            cwnds.push(b.cwnd());
            assert_eq!(b.state(), BbrState::ProbeBw);
        });
        let avg = weighted / (last_t - secs(2.0)) as f64;
        assert!(within(avg, RATE as f64, 0.03), "average pacing {avg}");
        assert!(phases.iter().all(|p| *p), "{phases:?}");
        let goodput = (sim.delivered - start_delivered) as f64 / 2.0;
        assert!(within(goodput, RATE as f64, 0.03), "goodput {goodput}");
        // cwnd = 2 * BDP + 3 MSS (+2 in the probe phase), with BDP = bw * min_rtt.
        let lo = 2 * BDP;
        let hi = 2 * BDP + 2 * BDP / 10 + 5 * MSS;
        assert!(cwnds.iter().all(|c| (lo * 9 / 10..=hi).contains(c)));
        let mean = cwnds.iter().map(|c| f64::from(*c)).sum::<f64>() / cwnds.len() as f64;
        assert!(within(mean, f64::from(2 * BDP + 3 * MSS), 0.05), "{mean}");
    }
    /// A loss event every `period` us from `from` on: `on_congestion_event` (one segment reported
    /// lost), `on_recovery_exit` one RTT later. Records cwnd just before each event.
    fn loss_script<C: CongestionControl>(
        from: u64,
        period: u64,
        before_loss: &mut Vec<u32>,
    ) -> impl FnMut(&mut C, Instant, u32, &mut bool) -> u32 + '_ {
        loss_script_jittered(from, period, 0, before_loss)
    }

    /// As [`loss_script`], with a pseudo-random extra gap in `0..jitter` us between events.
    fn loss_script_jittered<C: CongestionControl>(
        from: u64,
        period: u64,
        jitter: u64,
        before_loss: &mut Vec<u32>,
    ) -> impl FnMut(&mut C, Instant, u32, &mut bool) -> u32 + '_ {
        let mut next_loss = from;
        let mut exit_at = None;
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        move |c: &mut C, now: Instant, inflight: u32, recovering: &mut bool| {
            let t = now.total_micros();
            if let Some(e) = exit_at {
                if t >= e {
                    c.on_recovery_exit(now);
                    *recovering = false;
                    exit_at = None;
                }
                return 0;
            }
            if t >= next_loss {
                before_loss.push(c.cwnd());
                // Inflight after this ACK, without the lost segment.
                c.on_congestion_event(now, inflight.saturating_sub(2 * MSS));
                *recovering = true;
                exit_at = Some(t + RTT_US);
                rng = mix64(rng);
                next_loss = t + period + rng % jitter.max(1);
                return MSS;
            }
            0
        }
    }

    #[test]
    fn random_loss_leaves_the_model_and_the_window_alone() {
        // Reference: no loss, 2 s to 6 s.
        let (mut sim, mut b) = steady(2.0);
        let d0 = sim.delivered;
        let mut cwnds = Vec::new();
        sim.run(&mut b, secs(6.0), &mut nop_pre(), &mut |b: &Bbr, _, _| {
            cwnds.push(f64::from(b.cwnd()))
        });
        let clean_goodput = (sim.delivered - d0) as f64 / 4.0;
        let clean_cwnd = cwnds.iter().sum::<f64>() / cwnds.len() as f64;

        // One loss event every 4 RTTs (80 ms) from 2 s on.
        let mut sim = Sim::new();
        let mut b = Bbr::new(MSS, 0);
        let mut before_loss = Vec::new();
        let mut conservation_ok = true;
        let mut script = loss_script(secs(2.0), 4 * RTT_US, &mut before_loss);
        let mut pre = |b: &mut Bbr, now: Instant, inflight: u32, rec: &mut bool| {
            let was = *rec;
            let lost = script(b, now, inflight, rec);
            if !was && *rec {
                // Entering recovery: cwnd drops to the flight, nothing new may be sent yet.
                conservation_ok &= b.cwnd() == inflight - 2 * MSS;
            }
            lost
        };
        let mut min_bw = u64::MAX;
        let mut d0 = 0;
        sim.run(&mut b, secs(2.0), &mut pre, &mut nop_post());
        d0 += sim.delivered;
        sim.run(&mut b, secs(6.0), &mut pre, &mut |b: &Bbr, _, _| {
            min_bw = min_bw.min(b.bandwidth())
        });
        drop(script);
        assert!(conservation_ok);
        let lossy_goodput = (sim.delivered - d0) as f64 / 4.0;
        assert!(before_loss.len() >= 45, "{}", before_loss.len());
        assert!(within(min_bw as f64, RATE as f64, 0.10), "bw {min_bw}");
        assert!(
            within(lossy_goodput, clean_goodput, 0.05),
            "{lossy_goodput} vs {clean_goodput}"
        );
        let steady = before_loss[5..].iter().map(|c| f64::from(*c)).sum::<f64>()
            / (before_loss.len() - 5) as f64;
        assert!(within(steady, clean_cwnd, 0.10), "{steady} vs {clean_cwnd}");
        assert_eq!(b.state(), BbrState::ProbeBw);

        // Contrast: the same events make CUBIC's window collapse far below the BDP.
        let mut sim = Sim::new();
        let mut c = Cubic::new(MSS, 0);
        let mut before_loss = Vec::new();
        let mut pre = loss_script(secs(2.0), 4 * RTT_US, &mut before_loss);
        sim.run(&mut c, secs(2.0), &mut pre, &mut nop_post());
        let d0 = sim.delivered;
        sim.run(&mut c, secs(6.0), &mut pre, &mut nop_post());
        drop(pre);
        let cubic_goodput = (sim.delivered - d0) as f64 / 4.0;
        let cubic_cwnd = *before_loss.last().unwrap();
        assert!(cubic_cwnd < BDP / 2, "cubic cwnd {cubic_cwnd}");
        assert!(
            cubic_goodput < 0.7 * lossy_goodput,
            "cubic {cubic_goodput} bbr {lossy_goodput}"
        );
    }

    #[test]
    fn follows_the_bottleneck_rate_down_and_up() {
        let (mut sim, mut b) = steady(2.0);
        sim.rate = RATE / 2;
        // cwnd (2 BDP) keeps the old rate's inflight, so rounds stretch to ~80 ms and the old
        // maximum needs ~10 of them to age out; then the queue drains (0.75 phases, 1 % margin).
        let mut max_inflight = 0;
        sim.run(
            &mut b,
            secs(4.0),
            &mut nop_pre(),
            &mut |b: &Bbr, now, rs: &RateSample| {
                let t = now.total_micros();
                if t > secs(3.0) {
                    assert!(within(b.bandwidth() as f64, (RATE / 2) as f64, 0.10));
                }
                if t > secs(3.6) {
                    max_inflight = max_inflight.max(rs.bytes_in_flight);
                }
            },
        );
        assert!(max_inflight < BDP / 2 * 3 / 2, "{max_inflight}");
        sim.rate = RATE;
        let d0 = sim.delivered;
        sim.run(&mut b, secs(6.0), &mut nop_pre(), &mut nop_post());
        // The 1.25 probes find the doubled rate within a few gain cycles.
        assert!(
            within(b.bandwidth() as f64, RATE as f64, 0.10),
            "{}",
            b.bandwidth()
        );
        let goodput = (sim.delivered - d0) as f64 / 2.0;
        assert!(goodput > 0.8 * RATE as f64, "{goodput}");
    }

    #[test]
    fn back_to_back_recoveries_keep_the_goodput() {
        // A new recovery starts right after each one ends (one lost segment per RTT), as with
        // random loss at this BDP: the sender is in recovery almost all the time.
        let mut sim = Sim::new();
        let mut b = Bbr::new(MSS, 0);
        let mut before_loss = Vec::new();
        let mut pre = loss_script(secs(1.0), RTT_US, &mut before_loss);
        sim.run(&mut b, secs(2.0), &mut pre, &mut nop_post());
        let d0 = sim.delivered;
        sim.run(&mut b, secs(6.0), &mut pre, &mut nop_post());
        drop(pre);
        let goodput = (sim.delivered - d0) as f64 / 4.0;
        assert!(before_loss.len() > 200, "{}", before_loss.len());
        assert!(goodput > 0.95 * RATE as f64, "{goodput}");
        assert!(within(b.bandwidth() as f64, RATE as f64, 0.10));
    }

    #[test]
    fn random_loss_episodes_through_probe_rtt_keep_the_goodput() {
        // Loss every ~0.5 RTT (1 % of 200 segments per RTT): each recovery (one RTT) is
        // followed by the next after a random gap, through a ProbeRTT at ~10 s.
        let mut sim = Sim::new();
        let mut b = Bbr::new(MSS, 0);
        let mut before_loss = Vec::new();
        let mut pre = loss_script_jittered(secs(0.5), RTT_US, RTT_US, &mut before_loss);
        sim.run(&mut b, secs(2.0), &mut pre, &mut nop_post());
        let d0 = sim.delivered;
        let mut probe_rtt = false;
        sim.run(&mut b, secs(14.0), &mut pre, &mut |b: &Bbr, _, _| {
            probe_rtt |= b.state() == BbrState::ProbeRtt;
        });
        drop(pre);
        assert!(probe_rtt);
        assert!(before_loss.len() > 300, "{}", before_loss.len());
        let goodput = (sim.delivered - d0) as f64 / 12.0;
        // 0.99 pacing margin and one ProbeRTT (~0.25 s at 4 segments) in 12 s.
        assert!(goodput > 0.95 * RATE as f64, "{goodput}");
        assert!(within(b.bandwidth() as f64, RATE as f64, 0.10));
        assert!(b.cwnd() > 2 * BDP * 9 / 10, "{}", b.cwnd());
    }

    #[test]
    fn app_limited_samples_do_not_lower_the_bandwidth() {
        let (mut sim, mut b) = steady(1.0);
        assert!(within(b.bandwidth() as f64, RATE as f64, 0.10));
        // The application now writes at a tenth of the path rate for 100 rounds.
        sim.app_rate = Some(RATE / 10);
        let mut min_bw = u64::MAX;
        let mut max_sample = 0;
        sim.run(
            &mut b,
            secs(3.0),
            &mut nop_pre(),
            &mut |b: &Bbr, now, rs: &RateSample| {
                min_bw = min_bw.min(b.bandwidth());
                if now.total_micros() > secs(1.2) {
                    assert!(rs.is_app_limited);
                    max_sample = max_sample.max(rs.rate_bytes_per_sec().unwrap());
                }
            },
        );
        assert!(max_sample < RATE / 5, "{max_sample}");
        assert!(within(min_bw as f64, RATE as f64, 0.10), "bw {min_bw}");

        // Direct: a low app-limited sample is ignored, a higher one is taken.
        let bw = b.bandwidth();
        let mut rs = RateSample {
            delivered: 1_000,
            interval: Duration::from_millis(100),
            prior_delivered: sim.delivered,
            delivered_total: sim.delivered + 1_000,
            is_app_limited: true,
            rtt: None,
            newly_acked: 1_000,
            newly_lost: 0,
            bytes_in_flight: 0,
        };
        b.on_rate_sample(Instant::from_micros(secs(3.0)), &rs);
        assert_eq!(b.bandwidth(), bw);
        rs.delivered = bw / 5; // 2 * bw over 100 ms.
        rs.prior_delivered += 1_000;
        rs.delivered_total += 1_000;
        b.on_rate_sample(Instant::from_micros(secs(3.0)), &rs);
        assert_eq!(b.bandwidth(), 2 * bw);
    }

    #[test]
    fn probe_rtt_after_ten_seconds_without_a_lower_rtt() {
        let mut sim = Sim::new();
        let mut b = Bbr::new(MSS, 0);
        let mut entered = None;
        let mut exited = None;
        let mut capped = true;
        let mut min_bw = u64::MAX;
        let mut prior = 0;
        let mut last_cwnd = 0;
        sim.run(
            &mut b,
            secs(12.5),
            &mut nop_pre(),
            &mut |b: &Bbr, now, _| {
                let t = now.total_micros();
                if b.state() == BbrState::ProbeRtt {
                    capped &= b.cwnd() <= MIN_CWND_SEGMENTS * MSS;
                    if entered.is_none() {
                        entered = Some(t);
                        prior = last_cwnd;
                    }
                } else if entered.is_some() && exited.is_none() {
                    exited = Some((t, b.state(), b.cwnd()));
                }
                if t > secs(1.0) {
                    min_bw = min_bw.min(b.bandwidth());
                }
                last_cwnd = b.cwnd();
            },
        );
        // min_rtt was last lowered by the very first ACK (20 ms in).
        let entered = entered.expect("no ProbeRTT");
        assert!((secs(10.02)..secs(10.1)).contains(&entered), "{entered}");
        assert!(capped);
        let (exit_t, state, cwnd) = exited.expect("ProbeRTT never ended");
        assert!(exit_t - entered > 200_000, "{}", exit_t - entered);
        assert!(exit_t - entered < 400_000, "{}", exit_t - entered);
        assert_eq!(state, BbrState::ProbeBw);
        assert!(cwnd >= prior.min(2 * BDP), "{cwnd} {prior}");
        // The low-rate ProbeRTT samples did not lower the model.
        assert!(within(min_bw as f64, RATE as f64, 0.10), "bw {min_bw}");
        assert_eq!(b.min_rtt(), Some(Duration::from_micros(RTT_US)));
        assert_eq!(b.state(), BbrState::ProbeBw);
    }

    #[test]
    fn rto_sets_one_segment_and_regrows_by_acked_bytes() {
        rto_then_regrowth(false);
    }

    #[test]
    fn repeated_rto_keeps_the_window_saved_at_the_first() {
        rto_then_regrowth(true);
    }

    /// An RTO (and, if `repeat`, a second one with only the loss window out) in steady state,
    /// then the flight of the first is delivered: the window saved at the first comes back.
    fn rto_then_regrowth(repeat: bool) {
        let (mut sim, mut b) = steady(2.0);
        let prior = b.cwnd();
        let flight = sim.inflight;
        assert!(flight > 100 * MSS);
        b.on_rto(Instant::from_micros(sim.now), flight);
        assert_eq!(b.cwnd(), MSS);
        if repeat {
            b.on_repeated_rto(Instant::from_micros(sim.now + 200_000));
            assert_eq!(b.cwnd(), MSS);
            assert_eq!(b.prior_cwnd, prior);
        }
        let mut cwnds = Vec::new();
        // The segments in flight at the RTO are still delivered (nothing was really lost).
        sim.run(
            &mut b,
            secs(2.0) + 2 * RTT_US,
            &mut nop_pre(),
            &mut |b: &Bbr, _, _| cwnds.push(b.cwnd()),
        );
        // The first ACK lifts cwnd to the 4-segment floor (as Linux), then +1 MSS per ACK while
        // the RTO's flight drains; then the saved window is back.
        let n = (flight / MSS) as usize;
        for (i, c) in cwnds[..n - 1].iter().enumerate() {
            assert_eq!(*c, MSS * (MIN_CWND_SEGMENTS + i as u32), "ack {i}");
        }
        assert!(cwnds[n - 1] >= prior * 9 / 10, "{} {prior}", cwnds[n - 1]);
        assert!(b.cwnd() >= prior * 9 / 10);
        assert!(within(b.bandwidth() as f64, RATE as f64, 0.10));
    }

    #[test]
    fn recovery_conserves_packets_for_a_round_then_restores() {
        let (sim, mut b) = steady(2.0);
        let prior = b.cwnd();
        let now = Instant::from_micros(sim.now);
        let d = sim.delivered;
        let mut rs = RateSample {
            delivered: 100_000,
            interval: Duration::from_micros(RTT_US),
            prior_delivered: d - 100_000,
            delivered_total: d + 1_000,
            is_app_limited: false,
            rtt: Some(Duration::from_micros(RTT_US)),
            newly_acked: 1_000,
            newly_lost: 1_000,
            bytes_in_flight: 150_000,
        };
        b.on_congestion_event(now, 150_000);
        assert_eq!(b.cwnd(), 150_000);
        b.on_rate_sample(now, &rs);
        assert_eq!(b.cwnd(), 151_000);
        // Conservation: cwnd follows inflight + acked up, never down, within the round.
        rs.prior_delivered = d - 50_000;
        rs.delivered_total += 1_000;
        rs.newly_lost = 0;
        rs.bytes_in_flight = 160_000;
        b.on_rate_sample(now, &rs);
        assert_eq!(b.cwnd(), 161_000);
        rs.delivered_total += 1_000;
        rs.bytes_in_flight = 100_000;
        b.on_rate_sample(now, &rs);
        assert_eq!(b.cwnd(), 161_000);
        // A segment sent after recovery began is delivered: the round ends, normal growth
        // (capped at the 2 BDP target) resumes.
        rs.prior_delivered = d + 1_000;
        rs.delivered_total += 1_000;
        b.on_rate_sample(now, &rs);
        assert_eq!(b.cwnd(), 162_000);
        b.on_recovery_exit(now);
        assert_eq!(b.cwnd(), prior);
        assert!(within(b.bandwidth() as f64, RATE as f64, 0.10));
        // The next episode starts within a round: the same stretch of loss, no new cut.
        b.on_congestion_event(now, 50_000);
        assert_eq!(b.cwnd(), prior);
        rs.delivered_total += 1_000;
        rs.bytes_in_flight = 50_000;
        b.on_rate_sample(now, &rs);
        assert_eq!(b.cwnd(), prior);
        b.on_recovery_exit(now);
        // Two rounds later a new episode conserves packets again.
        for _ in 0..2 {
            rs.prior_delivered = rs.delivered_total;
            rs.delivered_total += 1_000;
            b.on_rate_sample(now, &rs);
        }
        b.on_congestion_event(now, 50_000);
        assert_eq!(b.cwnd(), 50_000);
    }

    #[test]
    fn probe_bw_never_starts_in_the_drain_phase() {
        let mut b = Bbr::new(MSS, 0);
        let mut seen = [false; 8];
        for i in 0..2_000u64 {
            b.delivered = i * 1_448;
            b.enter_probe_bw(Instant::from_micros(i * 7_919));
            seen[usize::from(b.cycle_index())] = true;
        }
        assert_eq!(seen, [true, false, true, true, true, true, true, true]);
    }

    #[test]
    fn idle_restart_paces_at_the_estimate() {
        let (sim, mut b) = steady(2.0);
        b.on_idle_restart(Instant::from_micros(sim.now));
        let rate = b.pacing_rate().unwrap() as f64;
        assert!(within(rate, b.bandwidth() as f64 * 0.99, 0.001), "{rate}");
        assert_eq!(b.cwnd(), steady(2.0).1.cwnd());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Sample(RateSample, u64),
        Loss(u32),
        Exit,
        Rto(u32),
        Idle,
        Mss(u32),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let sample = (
            (any::<u64>(), 0u64..5_000_000, any::<u64>(), any::<u64>()),
            (any::<bool>(), proptest::option::of(0u64..u64::MAX)),
            (any::<u32>(), any::<u32>(), any::<u32>()),
            (0u64..3_000_000, 0u8..4),
        )
            .prop_map(|((d, i, p, t), (a, r), (n, l, f), (dt, shape))| {
                // Mostly plausible magnitudes, sometimes extremes.
                let small = |x: u64| if shape == 0 { x } else { x % 10_000_000 };
                let rs = RateSample {
                    delivered: small(d),
                    interval: Duration::from_micros(i),
                    prior_delivered: small(p),
                    delivered_total: small(t),
                    is_app_limited: a,
                    rtt: r.map(|r| Duration::from_micros(small(r))),
                    newly_acked: if shape == 0 { n } else { n % 200_000 },
                    newly_lost: if shape <= 1 { l } else { l % 3_000 },
                    bytes_in_flight: if shape == 0 { f } else { f % 2_000_000 },
                };
                Op::Sample(rs, dt)
            });
        prop_oneof![
            10 => sample,
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
            mss in 0u32..70_000,
            iw in 0u32..200_000,
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            let mut b = Bbr::new(mss, iw);
            let mut mss = mss.max(1);
            let mut now = Instant::ZERO;
            for op in ops {
                match op {
                    Op::Sample(rs, dt) => {
                        now += Duration::from_micros(dt);
                        b.on_ack(now, rs.newly_acked, rs.rtt, rs.bytes_in_flight);
                        b.on_rate_sample(now, &rs);
                    }
                    Op::Loss(f) => b.on_congestion_event(now, f),
                    Op::Exit => b.on_recovery_exit(now),
                    Op::Rto(f) => {
                        b.on_rto(now, f);
                        proptest::prop_assert_eq!(b.cwnd(), mss);
                    }
                    Op::Idle => b.on_idle_restart(now),
                    Op::Mss(m) => {
                        b.set_mss(m);
                        mss = m.max(1);
                    }
                }
                proptest::prop_assert!(b.cwnd() >= mss, "cwnd {} below mss {}", b.cwnd(), mss);
                proptest::prop_assert!(b.pacing_rate().unwrap_or(0) > 0);
                if b.state() == BbrState::ProbeRtt {
                    proptest::prop_assert!(b.cwnd() <= (MIN_CWND_SEGMENTS * mss).max(mss));
                }
                let g = b.pacing_gain();
                proptest::prop_assert!(g.is_finite() && g > 0.0);
                let _ = (b.bandwidth(), b.min_rtt(), b.bdp(), b.full_pipe());
            }
        }
    }
}
