//! saps-fairness: per-flow TX admission, the central mechanism of the SAPS paper.
//!
//! A host that terminates many connections fills its NIC's TX ring; every connection then sees the
//! ring as extra round-trip time and short transfers crawl. [`Admission`] implements the stack's
//! [`EgressScheduler`] seam: it bounds what sits in the ring and decides which held-back flow may
//! put its next data segment in when there is room. Refusing is free: the stack builds a segment
//! only after its flow is admitted, so a held-back flow keeps its data in its send queue.
//!
//! Three policies ([`Policy`]):
//! - `off`: no limit, first come first served, an admitted flow sends up to [`OFF_BURST_BYTES`]
//!   in a row (one 64 KB GSO burst, what a kernel without TSQ/BQL/fq puts into its FIFO qdisc
//!   per push: the baseline that shows the problem).
//! - `paper`: a fixed limit on packets in the ring; held-back flows wait in a round-robin queue and
//!   a flow that has put `burst` packets in a row goes to the back (the paper's starvation rule).
//! - `adaptive` (default): a byte limit that follows the drain rate (grows when the ring ran empty
//!   while flows waited, shrinks slowly when it never drained below a slack, never above the
//!   configured latency worth of bytes), deficit round robin with a byte quantum, and flows that
//!   were idle served first for their first quantum (new/sparse flows before bulk flows).
//!
//! Mechanism: one engine for all three. Every flow has a preallocated 16-byte [`FlowId`]-indexed
//! record with a deficit and an intrusive link; two lists of flows hold everything that is or
//! recently was backlogged: `new` (FIFO, `adaptive` only) and `old` (circular). `dequeue_burst` serves
//! the head of `new`, else the head of `old`, granting as many segments as its deficit pays for in
//! full-size frames (the stack sends them without asking again while `burst_room` says they fit;
//! `on_burst_segment` only counts them into the ring); `on_burst_end` charges the burst's cost
//! (bytes for `adaptive` and `off`, one `max_frame` per packet for `paper`) and ends the turn of a flow whose
//! deficit ran out with a fresh quantum: in `old` that is just moving the circular list's head on
//! by one, a flow from `new` moves to the tail of `old`. A flow that ran out of data stays listed
//! until it reaches the head again (then it moves from `new` to `old`, or leaves `old`), so a flow
//! cannot regain new-flow priority by pausing for a moment. Every call is O(1) except the lazy
//! clean-up in `dequeue`, which is amortised O(1) (each listed entry is dropped at most twice per
//! enqueue). No call allocates except `enqueue` of a flow id above every id seen so far (the slab
//! grows; [`AdmissionConfig::flows_hint`] preallocates). The wait histogram records one wait per
//! turn: from the flow having data (or its previous turn ending) to its turn's first segment.
//!
//! Occupancy is what the stack believes is in the ring: admitted + bypassed (control segments) -
//! completed. [`Admission::resync`] lets the caller replace it with the port's own count.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use saps_stack::egress::{EgressScheduler, FlowId};
use saps_stack::{Duration, Instant};

mod histogram;
pub use histogram::{WaitHistogram, WAIT_BUCKETS};

/// The admission policy.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// No limit, FIFO; an admitted flow sends up to [`OFF_BURST_BYTES`] in a row, then goes
    /// behind the flows that waited meanwhile.
    Off,
    /// Fixed packet limit, round robin with a burst of `paper_burst` packets per turn.
    Paper,
    /// Adaptive byte limit, deficit round robin, new flows first.
    #[default]
    Adaptive,
}

/// The error of [`Policy::from_name`]: the name is not one of `off`, `paper`, `adaptive`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UnknownPolicy;

impl Policy {
    /// The policy called `name` in configuration files.
    pub fn from_name(name: &str) -> Result<Self, UnknownPolicy> {
        match name {
            "off" => Ok(Policy::Off),
            "paper" => Ok(Policy::Paper),
            "adaptive" => Ok(Policy::Adaptive),
            _ => Err(UnknownPolicy),
        }
    }

    /// The configuration name of the policy.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Off => "off",
            Policy::Paper => "paper",
            Policy::Adaptive => "adaptive",
        }
    }
}

/// `off`: bytes a flow may put into the ring in a row before the flows that waited get a turn:
/// one 64 KB TSO/GSO burst, the unit a kernel without TSQ hands its FIFO qdisc per push.
///
/// Without such a bound a flow whose window is larger than the ring (no loss ever shrinks it,
/// since the ring back-pressures instead of dropping) would hold the head forever and a new
/// connection would never send a byte, which is not what a kernel does either.
pub const OFF_BURST_BYTES: u32 = 64 * 1024;

/// Configuration of an [`Admission`] controller.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Which policy.
    pub policy: Policy,
    /// TX ring capacity in packets: no policy except `off` puts more packets in the ring.
    pub ring_capacity: u32,
    /// Largest frame the stack emits (MTU + Ethernet header), in bytes. The byte limit admits a
    /// segment only if one frame of this size still fits, so occupancy never exceeds the limit.
    pub max_frame: u32,
    /// `paper`: the fixed limit on packets in the ring.
    pub paper_limit: u32,
    /// `paper`: packets a flow may put in a row before it goes to the back.
    pub paper_burst: u32,
    /// `adaptive`: bytes a flow may send per round-robin turn (at least `max_frame`; default
    /// four frames: a rotation per four packets keeps the per-packet cost low, and fairness over
    /// any window longer than one round is the same).
    pub quantum: u32,
    /// `adaptive`: bytes a flow that was idle may send before bulk flows get a turn (its first
    /// window), served ahead of them.
    pub initial_quantum: u32,
    /// `adaptive`: the limit never exceeds this much time worth of bytes at the drain rate.
    pub max_latency: Duration,
    /// `adaptive`: the limit never goes below this (at least two frames so the ring stays busy).
    pub min_limit: u32,
    /// `adaptive`: the limit at start.
    pub initial_limit: u32,
    /// `adaptive`: occupancy the ring may keep without the limit being shrunk.
    pub slack: u32,
    /// `adaptive`: the ring must stay above `slack` for this long before the limit shrinks.
    pub shrink_interval: Duration,
    /// `adaptive`: the port's line rate in bits per second if known (seeds the drain rate).
    pub line_rate_bps: Option<u64>,
    /// Flow records to preallocate (flow ids are dense slab indices).
    pub flows_hint: usize,
}

impl AdmissionConfig {
    /// Defaults for `policy` on a port whose TX ring holds `ring_capacity` packets.
    pub fn new(policy: Policy, ring_capacity: u32) -> Self {
        let max_frame = 1518;
        AdmissionConfig {
            policy,
            ring_capacity: ring_capacity.max(1),
            max_frame,
            paper_limit: 64,
            paper_burst: 4,
            quantum: 4 * max_frame,
            initial_quantum: 10 * max_frame,
            max_latency: Duration::from_millis(5),
            min_limit: 2 * max_frame,
            initial_limit: 8 * max_frame,
            slack: 2 * max_frame,
            shrink_interval: Duration::from_millis(10),
            line_rate_bps: None,
            flows_hint: 1024,
        }
    }
}

/// Counters of an [`Admission`] controller (cumulative unless noted).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Segments admitted into the ring.
    pub admissions: u64,
    /// Times `dequeue` refused because the ring was at its limit while flows waited.
    pub hold_backs: u64,
    /// Completions that left the ring empty while flows waited (line rate lost to the limit).
    pub ring_empty_while_waiting: u64,
    /// Packets reported completed.
    pub completed_packets: u64,
    /// Bytes reported completed.
    pub completed_bytes: u64,
    /// Control segments that bypassed admission.
    pub bypassed_packets: u64,
    /// Times the adaptive limit grew.
    pub limit_grows: u64,
    /// Times the adaptive limit shrank.
    pub limit_shrinks: u64,
    /// Now: packets in the ring.
    pub ring_packets: u64,
    /// Now: bytes in the ring.
    pub ring_bytes: u64,
    /// Now: the limit in packets (`u64::MAX` if none).
    pub limit_packets: u64,
    /// Now: the limit in bytes (`u64::MAX` if none).
    pub limit_bytes: u64,
    /// Now: flows waiting to be admitted.
    pub flows_waiting: u64,
    /// Now: the drain-rate estimate in bytes per second (0 until measured).
    pub drain_rate: u64,
}

const NIL: u32 = u32::MAX;
const LIST_NONE: u8 = 0;
const LIST_NEW: u8 = 1;
const LIST_OLD: u8 = 2;

/// Per-flow record (16 bytes, preallocated, indexed by flow id).
#[derive(Copy, Clone, Debug)]
struct Flow {
    /// Next flow in the same list (`old` is circular: its tail links to its head).
    next: u32,
    /// Remaining credit of this turn (bytes or packets).
    deficit: i32,
    /// When its wait for a turn began (microseconds, wrapping: waits of over 71 minutes alias),
    /// for the wait histogram.
    since: u32,
    /// Which list it is in.
    list: u8,
    /// `READY`: has a segment ready; `| UNTIMED`: its wait since `since` is not recorded yet.
    ready: u8,
}

const IDLE: Flow = Flow {
    next: NIL,
    deficit: 0,
    since: 0,
    list: LIST_NONE,
    ready: 0,
};

/// `Flow::ready` bits.
const READY: u8 = 1;
const UNTIMED: u8 = 2;

/// `now` as the flow record keeps it.
#[inline(always)]
fn micros32(now: Instant) -> u32 {
    now.total_micros() as u32
}

/// Drain-rate samples are taken over at least this much busy time.
const RATE_WINDOW_US: u64 = 500;

/// Per-port TX admission controller. See the crate docs.
#[derive(Clone, Debug)]
pub struct Admission {
    cfg: AdmissionConfig,
    flows: Vec<Flow>,
    /// FIFO of flows served first (`NIL` when empty).
    new_head: u32,
    new_tail: u32,
    /// Circular list of the other flows: a turn ends with `old_tail = old_head` (one store).
    old_head: u32,
    old_tail: u32,
    /// The flow `dequeue` looks at first: `new_head`, or `old_head` when `new` is empty (kept
    /// up to date by every list change, so the hot path reads one field).
    head: u32,
    /// The flow `dequeue` admitted and whose `on_transmit` is pending.
    in_service: u32,
    waiting: u32,
    /// Cost of a segment = max(bytes, cost_floor): bytes (adaptive, off; at least 1, so a flow
    /// cannot spin at the head with empty segments) or one `max_frame` per packet (paper, whose
    /// quantum is `paper_burst` frames).
    cost_floor: i32,
    quantum: i32,
    initial_quantum: i32,
    /// New flows go to the `new` list (adaptive) or straight to `old`.
    new_list: u8,
    occ_packets: u32,
    occ_bytes: u64,
    limit_packets: u32,
    limit_bytes: u64,
    /// Admit only while `occ_bytes <= byte_threshold` (= limit - max_frame).
    byte_threshold: u64,
    /// Drain-rate estimator (adaptive).
    busy: bool,
    busy_mark: u64,
    acc_bytes: u64,
    acc_us: u64,
    rate: u64,
    /// Largest limit allowed now (latency bound at the drain rate, and the ring).
    cap: u64,
    /// Shrink interval bookkeeping (adaptive).
    interval_start: u64,
    min_occ: u64,
    stats: AdmissionStats,
    waits: WaitHistogram,
}

impl Admission {
    /// A controller with `cfg`.
    pub fn new(cfg: AdmissionConfig) -> Self {
        let mut cfg = cfg;
        cfg.ring_capacity = cfg.ring_capacity.max(1);
        // A frame is at most 64 KiB (the largest IPv4 packet plus headers); larger values would
        // only overflow the deficit arithmetic below.
        cfg.max_frame = cfg.max_frame.clamp(64, 65_535 + 18);
        cfg.quantum = cfg.quantum.clamp(cfg.max_frame, i32::MAX as u32 / 4);
        cfg.initial_quantum = cfg.initial_quantum.clamp(cfg.quantum, i32::MAX as u32 / 4);
        cfg.min_limit = cfg.min_limit.max(2 * cfg.max_frame);
        cfg.paper_limit = cfg.paper_limit.clamp(1, cfg.ring_capacity);
        cfg.paper_burst = cfg
            .paper_burst
            .clamp(1, i32::MAX as u32 / 4 / cfg.max_frame);
        let ring_bytes = u64::from(cfg.ring_capacity) * u64::from(cfg.max_frame);
        let (cost_floor, quantum, initial_quantum, new_list) = match cfg.policy {
            // Bytes against a 64 KB burst; no new-flow list: FIFO in bursts.
            Policy::Off => (1, OFF_BURST_BYTES as i32, OFF_BURST_BYTES as i32, LIST_OLD),
            Policy::Paper => {
                let burst = (cfg.paper_burst * cfg.max_frame) as i32;
                (cfg.max_frame as i32, burst, burst, LIST_OLD)
            }
            Policy::Adaptive => (1, cfg.quantum as i32, cfg.initial_quantum as i32, LIST_NEW),
        };
        let mut a = Admission {
            cfg,
            flows: vec![IDLE; cfg.flows_hint],
            new_head: NIL,
            new_tail: NIL,
            old_head: NIL,
            old_tail: NIL,
            head: NIL,
            in_service: NIL,
            waiting: 0,
            cost_floor,
            quantum,
            initial_quantum,
            new_list,
            occ_packets: 0,
            occ_bytes: 0,
            limit_packets: u32::MAX,
            limit_bytes: u64::MAX,
            byte_threshold: u64::MAX,
            busy: false,
            busy_mark: 0,
            acc_bytes: 0,
            acc_us: 0,
            rate: 0,
            cap: ring_bytes.max(u64::from(cfg.min_limit)),
            interval_start: 0,
            min_occ: u64::MAX,
            stats: AdmissionStats::default(),
            waits: WaitHistogram::new(),
        };
        match cfg.policy {
            Policy::Off => {}
            Policy::Paper => a.limit_packets = cfg.paper_limit,
            Policy::Adaptive => {
                a.limit_packets = cfg.ring_capacity;
                if let Some(bps) = cfg.line_rate_bps {
                    a.rate = bps / 8;
                    a.update_cap();
                }
                a.set_limit(u64::from(cfg.initial_limit));
            }
        }
        a
    }

    /// A controller for the policy called `name` ("off", "paper", "adaptive") with defaults.
    pub fn from_name(name: &str, ring_capacity: u32) -> Result<Self, UnknownPolicy> {
        Ok(Self::new(AdmissionConfig::new(
            Policy::from_name(name)?,
            ring_capacity,
        )))
    }

    /// The configuration (after clamping to sane values).
    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.cfg.policy
    }

    /// Counters and current values.
    pub fn stats(&self) -> AdmissionStats {
        let mut s = self.stats;
        s.ring_packets = u64::from(self.occ_packets);
        s.ring_bytes = self.occ_bytes;
        s.limit_packets = if self.limit_packets == u32::MAX {
            u64::MAX
        } else {
            u64::from(self.limit_packets)
        };
        s.limit_bytes = self.limit_bytes;
        s.flows_waiting = self.waiting() as u64;
        s.drain_rate = self.rate;
        s
    }

    /// Admission waits, one per turn: the time from a flow having a segment ready (or its
    /// previous turn ending while it still had data) to the first segment of its turn.
    pub fn wait_histogram(&self) -> &WaitHistogram {
        &self.waits
    }

    /// Packets the controller believes are in the ring.
    pub fn ring_packets(&self) -> u32 {
        self.occ_packets
    }

    /// Bytes the controller believes are in the ring.
    pub fn ring_bytes(&self) -> u64 {
        self.occ_bytes
    }

    /// The current byte limit (`u64::MAX` when there is none).
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// The current packet limit (`u32::MAX` when there is none).
    pub fn limit_packets(&self) -> u32 {
        self.limit_packets
    }

    /// Replace the occupancy with the port's own count (frames written but not completed), in
    /// case completions were lost or a written frame was rejected.
    pub fn resync(&mut self, packets: u32, bytes: u64, _now: Instant) {
        self.occ_packets = packets;
        self.occ_bytes = bytes;
        if packets == 0 && self.waiting() == 0 {
            self.busy = false;
        }
    }

    fn set_limit(&mut self, bytes: u64) {
        let limit = bytes.clamp(u64::from(self.cfg.min_limit), self.cap);
        self.limit_bytes = limit;
        self.byte_threshold = limit - u64::from(self.cfg.max_frame);
    }

    /// Recompute the largest allowed limit from the drain rate.
    fn update_cap(&mut self) {
        let ring_bytes = u64::from(self.cfg.ring_capacity) * u64::from(self.cfg.max_frame);
        // A configured line rate is what the ring drains at whenever it holds frames; the measured
        // rate is lower when the ring sat empty inside a busy period (the caller was descheduled),
        // and a cap from it would shrink the limit exactly when the ring needs more.
        let line_rate = self.cfg.line_rate_bps.map_or(0, |bps| bps / 8);
        let latency = self
            .rate
            .max(line_rate)
            .saturating_mul(self.cfg.max_latency.total_micros())
            / 1_000_000;
        self.cap = latency.min(ring_bytes).max(u64::from(self.cfg.min_limit));
    }

    #[inline]
    fn grow_slab(&mut self, flow: FlowId) {
        if flow as usize >= self.flows.len() {
            self.flows.resize(flow as usize + 1, IDLE);
        }
    }

    /// Append `flow` to `list` (`LIST_NEW` or `LIST_OLD`).
    #[inline]
    fn push_tail(&mut self, list: u8, flow: u32) {
        if list == LIST_NEW {
            let tail = self.new_tail;
            let f = &mut self.flows[flow as usize];
            f.next = NIL;
            f.list = LIST_NEW;
            match self.flows.get_mut(tail as usize) {
                Some(t) => t.next = flow,
                None => self.new_head = flow,
            }
            self.new_tail = flow;
        } else {
            let (head, tail) = (self.old_head, self.old_tail);
            let f = &mut self.flows[flow as usize];
            f.list = LIST_OLD;
            if tail == NIL {
                f.next = flow;
                self.old_head = flow;
            } else {
                f.next = head;
                self.flows[tail as usize].next = flow;
            }
            self.old_tail = flow;
        }
        self.refresh_head();
    }

    #[inline(always)]
    fn refresh_head(&mut self) {
        self.head = if self.new_head != NIL {
            self.new_head
        } else {
            self.old_head
        };
    }

    /// Unlink `flow`, the head of `list` (which must be non-empty).
    #[inline]
    fn pop_head(&mut self, list: u8, flow: u32) {
        let next = self.flows[flow as usize].next;
        if list == LIST_NEW {
            self.new_head = next;
            if next == NIL {
                self.new_tail = NIL;
            }
        } else if flow == self.old_tail {
            self.old_head = NIL;
            self.old_tail = NIL;
        } else {
            let tail = self.old_tail;
            self.flows[tail as usize].next = next;
            self.old_head = next;
        }
        self.refresh_head();
    }

    /// Close the service of the in-service flow as if it had sent nothing and has nothing more.
    fn abandon_service(&mut self, now: Instant) {
        if self.in_service != NIL {
            let flow = self.in_service;
            self.on_transmit(flow, 0, false, now);
        }
    }

    fn adapt(&mut self, bytes: u64, now: u64, starved: bool) {
        // Drain rate: bytes completed per microsecond between completions of one busy period (an
        // idle ring says nothing). The first completion of a period only starts the clock: when
        // its frames started is not known, and tracking it would cost every admission a branch.
        if !self.busy {
            self.busy = true;
            self.busy_mark = now;
        } else {
            self.acc_bytes += bytes;
            self.acc_us += now.saturating_sub(self.busy_mark);
            self.busy_mark = now;
            if self.acc_us >= RATE_WINDOW_US {
                let sample = self.acc_bytes.saturating_mul(1_000_000) / self.acc_us;
                self.rate = if self.rate == 0 {
                    sample
                } else {
                    (3 * self.rate + sample) / 4
                };
                self.acc_bytes = 0;
                self.acc_us = 0;
                self.update_cap();
                if self.limit_bytes > self.cap {
                    self.set_limit(self.cap);
                }
            }
        }
        if self.occ_packets == 0 && !starved {
            // Idle: nothing in the ring and nothing waiting. (A ring that ran dry while flows
            // waited is refilled at once, so its busy period goes on.)
            self.busy = false;
        }
        if starved {
            // The ring ran dry while flows waited: the limit cost line rate. Grow by what
            // drained since the last report (at least a frame), so it roughly doubles per miss.
            let grow = bytes.max(u64::from(self.cfg.max_frame));
            if self.limit_bytes < self.cap {
                self.set_limit(self.limit_bytes.saturating_add(grow));
                self.stats.limit_grows += 1;
            }
            self.interval_start = now;
            self.min_occ = u64::MAX;
            return;
        }
        self.min_occ = self.min_occ.min(self.occ_bytes);
        if now.saturating_sub(self.interval_start) >= self.cfg.shrink_interval.total_micros() {
            let slack = u64::from(self.cfg.slack);
            if self.min_occ != u64::MAX && self.min_occ > slack {
                // Never drained below the slack for a whole interval: that much was queue, not
                // buffer. Give back half of the excess.
                let excess = (self.min_occ - slack) / 2;
                let before = self.limit_bytes;
                self.set_limit(self.limit_bytes.saturating_sub(excess));
                if self.limit_bytes < before {
                    self.stats.limit_shrinks += 1;
                }
            }
            self.interval_start = now;
            self.min_occ = u64::MAX;
        }
    }

    #[inline(always)]
    fn occupy(&mut self, bytes: usize) {
        self.occ_packets += 1;
        self.occ_bytes += bytes as u64;
    }
}

impl EgressScheduler for Admission {
    const BATCHED: bool = true;

    #[inline]
    fn enqueue(&mut self, flow: FlowId, now: Instant) {
        self.grow_slab(flow);
        if flow == self.in_service {
            // on_transmit's `more` will say whether it still has data.
            return;
        }
        let f = &mut self.flows[flow as usize];
        if f.ready != 0 {
            return;
        }
        f.ready = READY | UNTIMED;
        f.since = micros32(now);
        self.waiting += 1;
        if f.list == LIST_NONE {
            f.deficit = self.initial_quantum;
            self.push_tail(self.new_list, flow);
        }
    }

    #[inline]
    fn dequeue(&mut self, now: Instant) -> Option<FlowId> {
        self.dequeue_burst(now).map(|(flow, _)| flow)
    }

    #[inline]
    fn dequeue_burst(&mut self, now: Instant) -> Option<(FlowId, u32)> {
        if self.in_service != NIL {
            self.abandon_service(now);
        }
        if !self.burst_room() {
            if self.waiting > 0 {
                self.stats.hold_backs += 1;
            }
            return None;
        }
        let max_frame = self.cfg.max_frame;
        loop {
            let flow = self.head;
            // Both lists empty (`NIL`): nothing waits.
            let f = self.flows.get_mut(flow as usize)?;
            // The flow stays `ready` and counted in `waiting` while in service; on_burst_end
            // settles both. This keeps the common case (a backlogged flow in its turn: `READY`,
            // one compare) free of bookkeeping. Its wait is recorded once per turn, at the
            // turn's first segment. The grant is what its deficit pays for in full-size frames
            // (at least one): a turn that ends on a smaller remainder gets a second grant, so the
            // turns are exactly those of per-segment service.
            if f.ready != READY {
                if f.ready == 0 {
                    // Not ready: a new flow that paused moves behind the bulk flows; an old one
                    // leaves.
                    let list = if self.new_head != NIL {
                        LIST_NEW
                    } else {
                        LIST_OLD
                    };
                    self.pop_head(list, flow);
                    if list == LIST_NEW {
                        self.push_tail(LIST_OLD, flow);
                    } else {
                        self.flows[flow as usize].list = LIST_NONE;
                    }
                    continue;
                }
                f.ready = READY;
                let waited = micros32(now).wrapping_sub(f.since);
                self.waits.record_u32(waited);
            }
            // The deficit of a listed flow is at least 1 (on_burst_end keeps it so); a deficit
            // of at most one frame (every turn's end with small quanta) needs no division.
            let deficit = f.deficit as u32;
            let grant = if deficit <= max_frame {
                1
            } else {
                (deficit - 1) / max_frame + 1
            };
            self.in_service = flow;
            return Some((flow, grant));
        }
    }

    #[inline(always)]
    fn burst_room(&self) -> bool {
        self.occ_packets < self.limit_packets && self.occ_bytes <= self.byte_threshold
    }

    #[inline(always)]
    fn on_burst_segment(&mut self, bytes: usize) {
        // Ring accounting only; `admissions` is counted per burst, in on_burst_end.
        self.occupy(bytes);
    }

    #[inline]
    fn on_transmit(&mut self, flow: FlowId, bytes: usize, more: bool, now: Instant) {
        if bytes > 0 {
            self.on_burst_segment(bytes);
        }
        self.on_burst_end(flow, u32::from(bytes > 0), bytes, more, now);
    }

    #[inline(always)]
    fn on_burst_end(&mut self, flow: FlowId, packets: u32, bytes: usize, more: bool, now: Instant) {
        self.stats.admissions += u64::from(packets);
        if flow != self.in_service {
            // Not the flow we admitted (a caller error or a flow removed meanwhile): its
            // segments are already accounted; keep the flow's data offered, touch nothing else.
            if more {
                self.enqueue(flow, now);
            }
            return;
        }
        self.in_service = NIL;
        // Per segment max(bytes, cost_floor): the floor is 1 byte or a full frame, never below a
        // segment's size, so the sum is max(total bytes, packets x floor).
        // Bounded so the deficit (at most i32::MAX / 4 before) cannot overflow: cost < 2^28.
        let floor = (packets.clamp(1, 1 << 10) as i32) * self.cost_floor;
        let cost = (bytes.min(1 << 24) as i32).max(floor);
        let quantum = self.quantum;
        let Some(f) = self.flows.get_mut(flow as usize) else {
            return;
        };
        f.deficit -= cost;
        if !more {
            f.ready = 0;
            self.waiting -= 1;
        }
        if f.deficit <= 0 {
            // A burst never overspends by more than one frame (its grant is what the deficit
            // pays for in full frames), so one quantum makes the deficit positive again.
            f.deficit = (f.deficit + quantum).max(1);
            if more {
                // Its wait for the next turn starts now.
                f.ready = READY | UNTIMED;
                f.since = micros32(now);
            }
            if f.list == LIST_OLD {
                // Its turn is over: the circular list moves on by one.
                if self.old_head == flow {
                    let next = f.next;
                    self.old_head = next;
                    self.old_tail = flow;
                    if self.new_head == NIL {
                        self.head = next;
                    }
                }
            } else if f.list == LIST_NEW && self.new_head == flow {
                self.pop_head(LIST_NEW, flow);
                self.push_tail(LIST_OLD, flow);
            }
        }
    }

    fn on_completion(&mut self, packets: u32, bytes: u64, now: Instant) {
        self.occ_packets = self.occ_packets.saturating_sub(packets);
        self.occ_bytes = self.occ_bytes.saturating_sub(bytes);
        self.stats.completed_packets += u64::from(packets);
        self.stats.completed_bytes += bytes;
        let starved = self.occ_packets == 0 && self.waiting() > 0;
        if starved {
            self.stats.ring_empty_while_waiting += 1;
        }
        if self.cfg.policy == Policy::Adaptive {
            self.adapt(bytes, now.total_micros(), starved);
        } else if self.occ_packets == 0 {
            self.busy = false;
        }
    }

    fn on_bypass(&mut self, bytes: usize, _now: Instant) {
        self.stats.bypassed_packets += 1;
        self.occupy(bytes);
    }

    fn remove(&mut self, flow: FlowId) {
        if flow == self.in_service {
            self.in_service = NIL;
        }
        if let Some(f) = self.flows.get_mut(flow as usize) {
            if f.ready != 0 {
                f.ready = 0;
                self.waiting -= 1;
            }
            // The list entry goes when it reaches the head (lazy, O(1)).
        }
    }

    fn waiting(&self) -> usize {
        // The flow in service (in its burst) counts while it has data: it is not done.
        self.waiting as usize
    }
}

#[cfg(test)]
mod tests;
