//! Deterministic network simulation: test the stack end to end without the OS.
//!
//! A [`Simulator`] holds nodes (anything implementing [`SimNode`]) joined by point-to-point
//! links. Each direction of a link has its own [`LinkConfig`]: propagation delay, jitter, a
//! transmit rate with a drop-tail queue, and random loss, reordering, duplication and
//! corruption drawn from a seeded PRNG ([`SimRng`]). Time is virtual and jumps from event to
//! event, so a simulated minute takes as long as its events take to process, and the same seed
//! always gives the same run.
//!
//! Model of one direction of a link, for a frame sent at `now`:
//! 1. With a rate, the frame joins the transmitter queue unless `queue_limit_packets` frames are
//!    already there (drop-tail, counted as a queue drop); it leaves after every earlier frame
//!    plus its own serialization time `bits / rate`. Without a rate it leaves at once.
//! 2. It is lost with probability `loss` (after occupying the queue, like loss on the wire).
//! 3. It arrives `delay + U[0, jitter]` after leaving. Jitter never reorders: a frame arrives no
//!    earlier than the previous one on the same direction. With probability `reorder` a frame
//!    instead gets `reorder_delay` extra and is exempt from that rule, so later frames overtake
//!    it.
//! 4. With probability `duplicate` a second copy is delivered (with its own jitter), and each
//!    copy has a single random bit flipped with probability `corrupt`.
//!
//! Nodes with several links: by default a node's frame goes out on every link attached to it
//! (a hub); a node that wants to choose overrides [`SimNode::poll_transmit_on`] and
//! [`SimNode::handle_frame_on`], where ports are numbered in the order `connect` attached links
//! to that node.
//!
//! ```
//! use saps_stack::sim::{Direction, LinkConfig, SimNode, Simulator};
//! use saps_stack::time::{Duration, Instant};
//!
//! /// Sends one frame at start, records when frames arrive.
//! struct Ping { sent: bool, got: Vec<Instant> }
//! impl SimNode for Ping {
//!     fn handle_frame(&mut self, now: Instant, _frame: &[u8]) { self.got.push(now) }
//!     fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<usize> {
//!         if self.sent { return None }
//!         self.sent = true;
//!         buf[..4].copy_from_slice(b"ping");
//!         Some(4)
//!     }
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//!     fn handle_timeout(&mut self, _now: Instant) {}
//! }
//!
//! let mut sim = Simulator::new(42);
//! let a = sim.add_node(Ping { sent: false, got: vec![] });
//! let b = sim.add_node(Ping { sent: true, got: vec![] });
//! let wan = LinkConfig { delay: Duration::from_millis(10), rate_bps: Some(1_000_000), ..Default::default() };
//! let link = sim.connect(a, b, wan, wan);
//! sim.run_until(Instant::from_millis(100));
//! // 32 bits at 1 Mb/s = 32 us of serialization, then 10 ms of propagation.
//! assert_eq!(sim.node(b).got, vec![Instant::from_micros(10_032)]);
//! assert_eq!(sim.link_stats(link, Direction::Forward).delivered, 1);
//! ```

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::time::{Duration, Instant};

/// Something that sits at a node of the simulated network, e.g. the stack's interface.
pub trait SimNode {
    /// A frame arrived.
    fn handle_frame(&mut self, now: Instant, frame: &[u8]);
    /// Writes the next frame to send into `buf` and returns its length, or `None`.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize>;
    /// When the node next wants [`Self::handle_timeout`], if ever.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The time returned by [`Self::poll_timeout`] has come.
    fn handle_timeout(&mut self, now: Instant);

    /// A frame arrived on `port`. The default ignores the port.
    fn handle_frame_on(&mut self, now: Instant, port: usize, frame: &[u8]) {
        let _ = port;
        self.handle_frame(now, frame)
    }

    /// Like [`Self::poll_transmit`], also naming the port to send on (`None`: every port).
    /// The default sends on every port.
    fn poll_transmit_on(&mut self, now: Instant, buf: &mut [u8]) -> Option<(usize, Option<usize>)> {
        self.poll_transmit(now, buf).map(|n| (n, None))
    }

    /// A frame this node sent on `port` has left the transmitter (its last bit is on the wire):
    /// the simulated NIC's transmit completion. Immediate on links without a rate.
    fn handle_tx_complete(&mut self, now: Instant, port: usize) {
        let _ = (now, port);
    }
}

/// Boxed nodes, so one simulation can mix node types (`Simulator<Box<dyn SimNode>>`).
impl<T: SimNode + ?Sized> SimNode for Box<T> {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        (**self).handle_frame(now, frame)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        (**self).poll_transmit(now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now)
    }
    fn handle_frame_on(&mut self, now: Instant, port: usize, frame: &[u8]) {
        (**self).handle_frame_on(now, port, frame)
    }
    fn poll_transmit_on(&mut self, now: Instant, buf: &mut [u8]) -> Option<(usize, Option<usize>)> {
        (**self).poll_transmit_on(now, buf)
    }
    fn handle_tx_complete(&mut self, now: Instant, port: usize) {
        (**self).handle_tx_complete(now, port)
    }
}

/// One direction of a link.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per frame (without reordering).
    pub jitter: Duration,
    /// Transmit rate in bits per second; `None` is infinitely fast (no queue).
    pub rate_bps: Option<u64>,
    /// Transmitter queue size in frames, including the one being sent; 0 = unlimited.
    pub queue_limit_packets: usize,
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is held back by `reorder_delay` so that later frames overtake it.
    pub reorder: f64,
    /// The extra delay of a reordered frame.
    pub reorder_delay: Duration,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Probability a delivered frame has one random bit flipped.
    pub corrupt: f64,
}

impl Default for LinkConfig {
    /// An ideal link: no delay, no rate limit, no impairments (reorder delay 1 ms, queue 1000).
    fn default() -> Self {
        LinkConfig {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_bps: None,
            queue_limit_packets: 1000,
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(1),
            duplicate: 0.0,
            corrupt: 0.0,
        }
    }
}

impl LinkConfig {
    /// A perfect link with propagation delay `delay`.
    pub fn with_delay(delay: Duration) -> LinkConfig {
        LinkConfig {
            delay,
            ..LinkConfig::default()
        }
    }
}

/// Counters of one direction of a link.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames handed to the link by the sender.
    pub offered: u64,
    /// Bytes handed to the link by the sender.
    pub offered_bytes: u64,
    /// Frames delivered to the receiver (duplicates included).
    pub delivered: u64,
    /// Bytes delivered to the receiver.
    pub delivered_bytes: u64,
    /// Frames lost at random.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Copies delivered with a flipped bit.
    pub corrupted: u64,
    /// Frames dropped because the transmitter queue was full.
    pub queue_drops: u64,
    /// Frames reordered (given the extra delay).
    pub reordered: u64,
}

/// Which direction of a link: `Forward` is from the first node given to `connect`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From `a` to `b` of `connect(a, b, ..)`.
    Forward,
    /// From `b` to `a`.
    Backward,
}

/// What happened to a frame, for the trace hook.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TraceKind {
    /// Handed to the link.
    Sent,
    /// Dropped at the full transmitter queue.
    QueueDrop,
    /// Lost at random.
    Lost,
    /// An extra copy was made.
    Duplicated,
    /// A copy got a flipped bit.
    Corrupted,
    /// Held back to be reordered.
    Reordered,
    /// Delivered to the receiver.
    Delivered,
}

/// One trace record.
#[derive(Copy, Clone, Debug)]
pub struct TraceEvent<'a> {
    /// When.
    pub time: Instant,
    /// The link index returned by `connect`.
    pub link: usize,
    /// Direction on that link.
    pub direction: Direction,
    /// Sending node.
    pub from: usize,
    /// Receiving node.
    pub to: usize,
    /// What happened.
    pub kind: TraceKind,
    /// The frame (after corruption, for `Corrupted` and `Delivered`).
    pub frame: &'a [u8],
}

/// The trace hook's type.
pub type TraceHook = Box<dyn FnMut(&TraceEvent<'_>)>;

/// xoshiro256** seeded through SplitMix64: small, fast and reproducible.
#[derive(Clone, Debug)]
pub struct SimRng {
    s: [u64; 4],
}

impl SimRng {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn new(seed: u64) -> SimRng {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        SimRng {
            s: [next(), next(), next(), next()],
        }
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)` (0 when `n == 0`), without modulo bias worth mentioning (128-bit
    /// multiply-shift).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`. Draws nothing when `p <= 0`, so an unused impairment does not
    /// shift the random sequence of the others.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

/// One direction of a link.
struct Channel {
    cfg: LinkConfig,
    from: usize,
    from_port: usize,
    to: usize,
    to_port: usize,
    stats: LinkStats,
    /// Nanosecond times at which queued frames finish serialization (the queue occupancy).
    finishing: VecDeque<u64>,
    busy_until_ns: u64,
    /// Arrival time of the last in-order frame (jitter must not reorder).
    last_arrival: Instant,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum EventKind {
    Deliver { channel: u32, buf: u32 },
    TxDone { channel: u32 },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Event {
    time: Instant,
    seq: u64,
    kind: EventKind,
}

impl Ord for Event {
    /// Reversed, so `BinaryHeap` pops the earliest; ties go in scheduling order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// How many timeouts one node may ask for at the same instant before the simulator declares it
/// stuck (a node whose `poll_timeout` stays in the past would otherwise spin forever).
const MAX_SAME_INSTANT_TIMEOUTS: u32 = 1_000_000;

/// The simulated network.
pub struct Simulator<N: SimNode> {
    now: Instant,
    rng: SimRng,
    nodes: Vec<N>,
    /// Per node: its ports' outgoing channel indices.
    ports: Vec<Vec<usize>>,
    dirty: Vec<bool>,
    channels: Vec<Channel>,
    events: BinaryHeap<Event>,
    seq: u64,
    bufs: Vec<Vec<u8>>,
    free_bufs: Vec<u32>,
    scratch: Vec<u8>,
    trace: Option<TraceHook>,
    unroutable: u64,
    stuck: (usize, Instant, u32),
}

impl<N: SimNode> Simulator<N> {
    /// An empty network at time zero whose randomness is all drawn from `seed`. Frames up to
    /// 65536 bytes can be sent.
    pub fn new(seed: u64) -> Simulator<N> {
        Simulator {
            now: Instant::ZERO,
            rng: SimRng::new(seed),
            nodes: Vec::new(),
            ports: Vec::new(),
            dirty: Vec::new(),
            channels: Vec::new(),
            events: BinaryHeap::new(),
            seq: 0,
            bufs: Vec::new(),
            free_bufs: Vec::new(),
            scratch: vec![0; 65_536],
            trace: None,
            unroutable: 0,
            stuck: (usize::MAX, Instant::ZERO, 0),
        }
    }

    /// Starts the clock at `now` instead of zero (only before anything has run).
    pub fn set_start_time(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Adds a node and returns its index.
    pub fn add_node(&mut self, node: N) -> usize {
        self.nodes.push(node);
        self.ports.push(Vec::new());
        self.dirty.push(true);
        self.nodes.len() - 1
    }

    /// Joins nodes `a` and `b` (each gets a new port) and returns the link index. `forward`
    /// shapes frames from `a` to `b`, `backward` those from `b` to `a`.
    ///
    /// # Panics
    /// If `a` or `b` is not a node index (a test-setup error).
    pub fn connect(
        &mut self,
        a: usize,
        b: usize,
        forward: LinkConfig,
        backward: LinkConfig,
    ) -> usize {
        assert!(
            a < self.nodes.len() && b < self.nodes.len(),
            "connect: no such node"
        );
        let link = self.channels.len() / 2;
        let a_port = self.ports[a].len();
        let b_port = self.ports[b].len() + usize::from(a == b);
        for (cfg, from, from_port, to, to_port) in [
            (forward, a, a_port, b, b_port),
            (backward, b, b_port, a, a_port),
        ] {
            self.channels.push(Channel {
                cfg,
                from,
                from_port,
                to,
                to_port,
                stats: LinkStats::default(),
                finishing: VecDeque::with_capacity(cfg.queue_limit_packets.min(4096)),
                busy_until_ns: 0,
                last_arrival: Instant::ZERO,
            });
        }
        self.ports[a].push(2 * link);
        self.ports[b].push(2 * link + 1);
        link
    }

    /// Changes a link's configuration from now on (frames already in flight are unaffected).
    pub fn set_link(&mut self, link: usize, forward: LinkConfig, backward: LinkConfig) {
        self.channels[2 * link].cfg = forward;
        self.channels[2 * link + 1].cfg = backward;
    }

    /// The counters of one direction of a link.
    pub fn link_stats(&self, link: usize, direction: Direction) -> &LinkStats {
        &self.channels[Self::channel_index(link, direction)].stats
    }

    /// Frames currently in the transmitter queue of one direction of a link.
    pub fn queue_len(&self, link: usize, direction: Direction) -> usize {
        let now_ns = self.now.total_micros().saturating_mul(1000);
        self.channels[Self::channel_index(link, direction)]
            .finishing
            .iter()
            .filter(|&&f| f > now_ns)
            .count()
    }

    fn channel_index(link: usize, direction: Direction) -> usize {
        2 * link + usize::from(direction == Direction::Backward)
    }

    /// Frames a node sent to a port it does not have (or sent with no link attached).
    pub fn unroutable(&self) -> u64 {
        self.unroutable
    }

    /// Installs a hook called for every frame event (see [`TraceKind`]).
    pub fn set_trace(&mut self, hook: TraceHook) {
        self.trace = Some(hook);
    }

    /// Removes the trace hook.
    pub fn clear_trace(&mut self) {
        self.trace = None;
    }

    /// The current simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &N {
        &self.nodes[i]
    }

    /// Node `i`, mutably; it will be polled for frames to send at the next step.
    pub fn node_mut(&mut self, i: usize) -> &mut N {
        self.dirty[i] = true;
        &mut self.nodes[i]
    }

    /// The simulator's random generator (e.g. for test traffic drawn from the same seed).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// Frames in flight plus pending transmit completions.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Runs every event and timeout up to and including `deadline`, then sets the clock to it.
    pub fn run_until(&mut self, deadline: Instant) {
        while self.step(deadline) {}
    }

    /// Runs like [`Self::run_until`] but stops as soon as `cond` is false (checked before each
    /// step). Returns `true` if it stopped because of `cond`, `false` at the deadline.
    pub fn run_while(&mut self, deadline: Instant, mut cond: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if !cond(self) {
                return true;
            }
            if !self.step(deadline) {
                return !cond(self);
            }
        }
    }

    /// Processes one event or timeout at or before `deadline`; false when there is none.
    fn step(&mut self, deadline: Instant) -> bool {
        self.flush_dirty();
        let ev_t = self.events.peek().map(|e| e.time);
        let mut timer: Option<(Instant, usize)> = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(t) = n.poll_timeout() {
                if timer.is_none_or(|(bt, _)| t < bt) {
                    timer = Some((t, i));
                }
            }
        }
        let next = match (ev_t, timer) {
            (Some(e), Some((t, _))) => e.min(t),
            (Some(e), None) => e,
            (None, Some((t, _))) => t,
            (None, None) => {
                self.now = self.now.max(deadline);
                return false;
            }
        };
        if next > deadline {
            self.now = self.now.max(deadline);
            return false;
        }
        self.now = self.now.max(next);
        // Frames first at equal times: a timer and an arriving ACK at the same instant see the
        // ACK first, as a poll loop that reads the NIC before checking timers would.
        if ev_t == Some(next) {
            if let Some(ev) = self.events.pop() {
                self.process(ev);
            }
        } else if let Some((t, i)) = timer {
            self.note_timeout(i, t);
            self.nodes[i].handle_timeout(self.now);
            self.dirty[i] = true;
        }
        true
    }

    fn note_timeout(&mut self, node: usize, at: Instant) {
        if self.stuck.0 == node && self.stuck.1 == at {
            self.stuck.2 += 1;
            assert!(
                self.stuck.2 < MAX_SAME_INSTANT_TIMEOUTS,
                "sim: node {node} keeps asking for a timeout at {at:?} (now {:?})",
                self.now
            );
        } else {
            self.stuck = (node, at, 0);
        }
    }

    fn process(&mut self, ev: Event) {
        match ev.kind {
            EventKind::Deliver { channel, buf } => {
                let ch = &mut self.channels[channel as usize];
                let frame = &self.bufs[buf as usize];
                ch.stats.delivered += 1;
                ch.stats.delivered_bytes += frame.len() as u64;
                let (to, to_port) = (ch.to, ch.to_port);
                Self::emit(
                    &mut self.trace,
                    &self.channels,
                    channel as usize,
                    self.now,
                    TraceKind::Delivered,
                    frame,
                );
                self.nodes[to].handle_frame_on(self.now, to_port, frame);
                self.dirty[to] = true;
                self.free_bufs.push(buf);
            }
            EventKind::TxDone { channel } => {
                let ch = &self.channels[channel as usize];
                let (from, port) = (ch.from, ch.from_port);
                self.nodes[from].handle_tx_complete(self.now, port);
                self.dirty[from] = true;
            }
        }
    }

    fn emit(
        trace: &mut Option<TraceHook>,
        channels: &[Channel],
        channel: usize,
        time: Instant,
        kind: TraceKind,
        frame: &[u8],
    ) {
        if let Some(hook) = trace {
            let ch = &channels[channel];
            hook(&TraceEvent {
                time,
                link: channel / 2,
                direction: if channel.is_multiple_of(2) {
                    Direction::Forward
                } else {
                    Direction::Backward
                },
                from: ch.from,
                to: ch.to,
                kind,
                frame,
            });
        }
    }

    /// Lets every node that may have something to send send it.
    fn flush_dirty(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.dirty[i] {
                continue;
            }
            self.dirty[i] = false;
            let mut scratch = core::mem::take(&mut self.scratch);
            while let Some((len, port)) = self.nodes[i].poll_transmit_on(self.now, &mut scratch) {
                let frame = &scratch[..len.min(scratch.len())];
                match port {
                    Some(p) => match self.ports[i].get(p) {
                        Some(&ch) => self.send(ch, frame),
                        None => self.unroutable += 1,
                    },
                    None if self.ports[i].is_empty() => self.unroutable += 1,
                    None => {
                        for p in 0..self.ports[i].len() {
                            self.send(self.ports[i][p], frame);
                        }
                    }
                }
            }
            self.scratch = scratch;
        }
    }

    fn schedule(&mut self, time: Instant, kind: EventKind) {
        self.seq += 1;
        self.events.push(Event {
            time,
            seq: self.seq,
            kind,
        });
    }

    fn alloc_buf(&mut self, frame: &[u8]) -> u32 {
        match self.free_bufs.pop() {
            Some(i) => {
                let b = &mut self.bufs[i as usize];
                b.clear();
                b.extend_from_slice(frame);
                i
            }
            None => {
                self.bufs.push(frame.to_vec());
                (self.bufs.len() - 1) as u32
            }
        }
    }

    /// Puts `frame` on channel `ci` at the current time.
    fn send(&mut self, ci: usize, frame: &[u8]) {
        let now = self.now;
        let cfg = self.channels[ci].cfg;
        {
            let st = &mut self.channels[ci].stats;
            st.offered += 1;
            st.offered_bytes += frame.len() as u64;
        }
        Self::emit(
            &mut self.trace,
            &self.channels,
            ci,
            now,
            TraceKind::Sent,
            frame,
        );

        // 1. Transmitter queue and serialization.
        let depart = match cfg.rate_bps.filter(|&r| r > 0) {
            Some(rate) => {
                let now_ns = now.total_micros().saturating_mul(1000);
                let ch = &mut self.channels[ci];
                while ch.finishing.front().is_some_and(|&f| f <= now_ns) {
                    ch.finishing.pop_front();
                }
                if cfg.queue_limit_packets != 0 && ch.finishing.len() >= cfg.queue_limit_packets {
                    ch.stats.queue_drops += 1;
                    Self::emit(
                        &mut self.trace,
                        &self.channels,
                        ci,
                        now,
                        TraceKind::QueueDrop,
                        frame,
                    );
                    return;
                }
                let bits = frame.len() as u128 * 8;
                let ser_ns = (bits * 1_000_000_000).div_ceil(u128::from(rate));
                let start = now_ns.max(ch.busy_until_ns);
                let finish = start.saturating_add(ser_ns.min(u128::from(u64::MAX)) as u64);
                ch.busy_until_ns = finish;
                ch.finishing.push_back(finish);
                let depart = Instant::from_micros(finish.div_ceil(1000));
                self.schedule(depart, EventKind::TxDone { channel: ci as u32 });
                depart
            }
            None => {
                let (from, port) = (self.channels[ci].from, self.channels[ci].from_port);
                self.nodes[from].handle_tx_complete(now, port);
                now
            }
        };

        // 2. Loss.
        if self.rng.chance(cfg.loss) {
            self.channels[ci].stats.lost += 1;
            Self::emit(
                &mut self.trace,
                &self.channels,
                ci,
                now,
                TraceKind::Lost,
                frame,
            );
            return;
        }

        // 3, 4. Delay, jitter, reordering, duplication, corruption.
        let copies = if self.rng.chance(cfg.duplicate) { 2 } else { 1 };
        for copy in 0..copies {
            let jitter = Duration::from_micros(self.rng.below(cfg.jitter.total_micros() + 1));
            let mut arrival = depart + cfg.delay + jitter;
            if self.rng.chance(cfg.reorder) {
                arrival += cfg.reorder_delay;
                self.channels[ci].stats.reordered += 1;
                Self::emit(
                    &mut self.trace,
                    &self.channels,
                    ci,
                    now,
                    TraceKind::Reordered,
                    frame,
                );
            } else {
                let ch = &mut self.channels[ci];
                arrival = arrival.max(ch.last_arrival);
                ch.last_arrival = arrival;
            }
            if copy == 1 {
                self.channels[ci].stats.duplicated += 1;
                Self::emit(
                    &mut self.trace,
                    &self.channels,
                    ci,
                    now,
                    TraceKind::Duplicated,
                    frame,
                );
            }
            let buf = self.alloc_buf(frame);
            if !frame.is_empty() && self.rng.chance(cfg.corrupt) {
                let bit = self.rng.below(frame.len() as u64 * 8) as usize;
                self.bufs[buf as usize][bit / 8] ^= 1 << (bit % 8);
                self.channels[ci].stats.corrupted += 1;
                let b = &self.bufs[buf as usize];
                Self::emit(
                    &mut self.trace,
                    &self.channels,
                    ci,
                    now,
                    TraceKind::Corrupted,
                    b,
                );
            }
            self.schedule(
                arrival,
                EventKind::Deliver {
                    channel: ci as u32,
                    buf,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Sends `count` frames of `size` bytes every `interval` (all at once when zero), each
    /// starting with its 8-byte sequence number; records what comes back.
    #[derive(Default)]
    struct Source {
        count: u64,
        size: usize,
        interval: Duration,
        sent: u64,
        next_send: Instant,
        received: Vec<(Instant, Vec<u8>)>,
        tx_done: u64,
    }

    impl Source {
        fn new(count: u64, size: usize, interval: Duration) -> Source {
            Source {
                count,
                size,
                interval,
                ..Source::default()
            }
        }
    }

    /// Sends every frame it receives back; counts what it got.
    #[derive(Default)]
    struct Echo {
        queue: VecDeque<Vec<u8>>,
        received: Vec<(Instant, Vec<u8>)>,
        echo: bool,
    }

    enum TestNode {
        Source(Source),
        Echo(Echo),
    }

    impl TestNode {
        fn source(&self) -> &Source {
            match self {
                TestNode::Source(s) => s,
                TestNode::Echo(_) => panic!("not a source"),
            }
        }
        fn echo(&self) -> &Echo {
            match self {
                TestNode::Echo(e) => e,
                TestNode::Source(_) => panic!("not an echo"),
            }
        }
    }

    impl SimNode for TestNode {
        fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
            match self {
                TestNode::Source(s) => s.received.push((now, frame.to_vec())),
                TestNode::Echo(e) => {
                    e.received.push((now, frame.to_vec()));
                    if e.echo {
                        e.queue.push_back(frame.to_vec());
                    }
                }
            }
        }

        fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
            match self {
                TestNode::Source(s) => {
                    if s.sent < s.count && now >= s.next_send {
                        buf[..s.size].fill(0xa5);
                        buf[..8].copy_from_slice(&s.sent.to_be_bytes());
                        s.sent += 1;
                        s.next_send = now + s.interval;
                        Some(s.size)
                    } else {
                        None
                    }
                }
                TestNode::Echo(e) => {
                    let f = e.queue.pop_front()?;
                    buf[..f.len()].copy_from_slice(&f);
                    Some(f.len())
                }
            }
        }

        fn poll_timeout(&self) -> Option<Instant> {
            match self {
                TestNode::Source(s) if s.sent < s.count && s.sent > 0 => Some(s.next_send),
                _ => None,
            }
        }

        fn handle_timeout(&mut self, _now: Instant) {}

        fn handle_tx_complete(&mut self, _now: Instant, _port: usize) {
            if let TestNode::Source(s) = self {
                s.tx_done += 1;
            }
        }
    }

    fn seq_of(frame: &[u8]) -> u64 {
        u64::from_be_bytes(frame[..8].try_into().unwrap())
    }

    fn pair(
        seed: u64,
        src: Source,
        fwd: LinkConfig,
        bwd: LinkConfig,
        echo: bool,
    ) -> Simulator<TestNode> {
        let mut sim = Simulator::new(seed);
        let a = sim.add_node(TestNode::Source(src));
        let b = sim.add_node(TestNode::Echo(Echo {
            echo,
            ..Echo::default()
        }));
        sim.connect(a, b, fwd, bwd);
        sim
    }

    #[test]
    fn delay_is_respected_exactly() {
        let d = Duration::from_micros(5_123);
        let src = Source::new(3, 64, Duration::from_millis(1));
        let mut sim = pair(
            1,
            src,
            LinkConfig::with_delay(d),
            LinkConfig::with_delay(d),
            true,
        );
        sim.run_until(Instant::from_millis(100));
        let s = sim.node(0).source();
        let times: Vec<u64> = s.received.iter().map(|(t, _)| t.total_micros()).collect();
        assert_eq!(times, vec![10_246, 11_246, 12_246]);
        let e = sim.node(1).echo();
        assert_eq!(e.received[0].0, Instant::from_micros(5_123));
        assert_eq!(sim.now(), Instant::from_millis(100));
        assert_eq!(sim.link_stats(0, Direction::Forward).delivered, 3);
        assert_eq!(sim.link_stats(0, Direction::Backward).delivered, 3);
        assert_eq!(s.tx_done, 3);
    }

    #[test]
    fn rate_limit_sets_throughput_and_queue_drops_the_tail() {
        // 1250 frames of 1000 bytes at 10 Mb/s: 800 us each, 1.0 s for all of them.
        let fwd = LinkConfig {
            delay: Duration::from_millis(2),
            rate_bps: Some(10_000_000),
            queue_limit_packets: 0,
            ..LinkConfig::default()
        };
        let mut sim = pair(
            2,
            Source::new(1250, 1000, Duration::ZERO),
            fwd,
            LinkConfig::default(),
            false,
        );
        sim.run_until(Instant::from_millis(500));
        // Half-way: 625 frames serialized by 500 ms, minus the 2 ms still propagating.
        let half = sim.node(1).echo().received.len();
        assert_eq!(half, (498_000 / 800) as usize);
        sim.run_until(Instant::from_secs_f(3));
        let e = sim.node(1).echo();
        assert_eq!(e.received.len(), 1250);
        assert_eq!(
            e.received.last().unwrap().0,
            Instant::from_micros(1_002_000)
        );
        assert_eq!(e.received[0].0, Instant::from_micros(2_800));
        // Transmit completions arrive as frames leave, not when they are queued.
        assert_eq!(sim.node(0).source().tx_done, 1250);

        // The same burst into a 100-frame drop-tail queue.
        let fwd = LinkConfig {
            queue_limit_packets: 100,
            ..fwd
        };
        let mut sim = pair(
            2,
            Source::new(1250, 1000, Duration::ZERO),
            fwd,
            LinkConfig::default(),
            false,
        );
        sim.run_until(Instant::from_secs_f(3));
        let st = sim.link_stats(0, Direction::Forward);
        assert_eq!((st.delivered, st.queue_drops), (100, 1150));
        assert_eq!(st.delivered_bytes, 100_000);
    }

    #[test]
    fn paced_sender_below_rate_builds_no_queue() {
        let fwd = LinkConfig {
            rate_bps: Some(8_000_000), // 1000 bytes = 1 ms
            queue_limit_packets: 2,
            ..LinkConfig::default()
        };
        let mut sim = pair(
            3,
            Source::new(50, 1000, Duration::from_millis(1)),
            fwd,
            LinkConfig::default(),
            false,
        );
        sim.run_until(Instant::from_millis(200));
        let st = sim.link_stats(0, Direction::Forward);
        assert_eq!((st.delivered, st.queue_drops), (50, 0));
        assert_eq!(sim.queue_len(0, Direction::Forward), 0);
    }

    #[test]
    fn loss_rate_is_near_configured() {
        let fwd = LinkConfig {
            loss: 0.1,
            ..LinkConfig::default()
        };
        let n = 100_000;
        let mut sim = pair(
            4,
            Source::new(n, 16, Duration::from_micros(10)),
            fwd,
            LinkConfig::default(),
            false,
        );
        sim.run_until(Instant::from_secs_f(2));
        let st = *sim.link_stats(0, Direction::Forward);
        assert_eq!(st.offered, n);
        assert_eq!(st.lost + st.delivered, n);
        // Binomial(100000, 0.1): sd = 95; allow 5 sd.
        assert!((st.lost as i64 - 10_000).abs() < 475, "{}", st.lost);
        assert_eq!(sim.node(1).echo().received.len() as u64, st.delivered);
    }

    #[test]
    fn duplication_and_corruption_do_what_they_say() {
        let fwd = LinkConfig {
            duplicate: 0.2,
            corrupt: 0.1,
            ..LinkConfig::default()
        };
        let n = 20_000;
        let mut sim = pair(
            5,
            Source::new(n, 64, Duration::from_micros(10)),
            fwd,
            LinkConfig::default(),
            false,
        );
        sim.run_until(Instant::from_secs_f(1));
        let st = *sim.link_stats(0, Direction::Forward);
        assert_eq!(st.delivered, n + st.duplicated);
        assert!(
            (st.duplicated as i64 - 4_000).abs() < 300,
            "{}",
            st.duplicated
        );
        let expect_corrupt = (st.delivered as f64 * 0.1) as i64;
        assert!(
            (st.corrupted as i64 - expect_corrupt).abs() < 250,
            "{}",
            st.corrupted
        );
        // A corrupted frame differs from the sent one in exactly one bit.
        let mut flipped = 0;
        for (_, f) in &sim.node(1).echo().received {
            let bits_in_payload: u32 = f[8..].iter().map(|b| (b ^ 0xa5).count_ones()).sum();
            if bits_in_payload > 0 {
                assert_eq!(bits_in_payload, 1);
                flipped += 1;
            }
        }
        // 56 of 64 bytes are checked: 7/8 of the corruptions land there.
        assert!(flipped > 0 && flipped <= st.corrupted);
    }

    #[test]
    fn reordering_reorders_and_jitter_alone_does_not() {
        let run = |reorder: f64| {
            let fwd = LinkConfig {
                delay: Duration::from_millis(1),
                jitter: Duration::from_micros(500),
                reorder,
                reorder_delay: Duration::from_micros(300),
                ..LinkConfig::default()
            };
            let mut sim = pair(
                6,
                Source::new(2_000, 64, Duration::from_micros(100)),
                fwd,
                LinkConfig::default(),
                false,
            );
            sim.run_until(Instant::from_secs_f(1));
            let seqs: Vec<u64> = sim
                .node(1)
                .echo()
                .received
                .iter()
                .map(|(_, f)| seq_of(f))
                .collect();
            assert_eq!(seqs.len(), 2_000);
            let inversions = seqs.windows(2).filter(|w| w[1] < w[0]).count();
            (inversions, sim.link_stats(0, Direction::Forward).reordered)
        };
        assert_eq!(run(0.0), (0, 0));
        let (inv, reordered) = run(0.05);
        assert!(inv > 50, "{inv} inversions");
        assert!((reordered as i64 - 100).abs() < 50, "{reordered}");
    }

    fn traced_run(seed: u64) -> Vec<(u64, usize, TraceKind, u64)> {
        let cfg = LinkConfig {
            delay: Duration::from_millis(3),
            jitter: Duration::from_millis(1),
            rate_bps: Some(50_000_000),
            queue_limit_packets: 20,
            loss: 0.02,
            reorder: 0.02,
            duplicate: 0.02,
            corrupt: 0.02,
            ..LinkConfig::default()
        };
        let mut sim = pair(
            seed,
            Source::new(3_000, 700, Duration::from_micros(50)),
            cfg,
            cfg,
            true,
        );
        let log = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&log);
        sim.set_trace(Box::new(move |ev: &TraceEvent<'_>| {
            let digest = ev
                .frame
                .iter()
                .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            sink.borrow_mut().push((
                ev.time.total_micros(),
                ev.link * 2 + (ev.direction == Direction::Backward) as usize,
                ev.kind,
                digest,
            ));
        }));
        sim.run_until(Instant::from_secs_f(1));
        let v = log.borrow().clone();
        v
    }

    #[test]
    fn same_seed_same_trace() {
        let a = traced_run(99);
        let b = traced_run(99);
        assert!(a.len() > 6_000);
        assert_eq!(a, b);
        // Every kind of event occurred, and another seed gives another run.
        for k in [
            TraceKind::Lost,
            TraceKind::QueueDrop,
            TraceKind::Duplicated,
            TraceKind::Corrupted,
            TraceKind::Reordered,
        ] {
            assert!(a.iter().any(|e| e.2 == k), "{k:?}");
        }
        assert_ne!(a, traced_run(100));
    }

    #[test]
    fn buffers_are_recycled() {
        let mut sim = pair(
            7,
            Source::new(10_000, 100, Duration::from_micros(10)),
            LinkConfig::with_delay(Duration::from_micros(35)),
            LinkConfig::default(),
            false,
        );
        sim.run_until(Instant::from_secs_f(1));
        // At most 4 frames are ever in flight at once (35 us delay, one every 10 us).
        assert!(sim.bufs.len() <= 5, "{}", sim.bufs.len());
        assert_eq!(sim.node(1).echo().received.len(), 10_000);
    }

    #[test]
    fn run_while_stops_on_condition_and_ports_route() {
        let mut sim = pair(
            8,
            Source::new(100, 64, Duration::from_millis(1)),
            LinkConfig::with_delay(Duration::from_millis(1)),
            LinkConfig::default(),
            true,
        );
        let stopped = sim.run_while(Instant::from_secs_f(10), |s| {
            s.node(1).echo().received.len() < 10
        });
        assert!(stopped);
        assert_eq!(sim.node(1).echo().received.len(), 10);
        assert!(sim.now() < Instant::from_millis(20));
        // A hub node with two links sends on both.
        let mut sim: Simulator<TestNode> = Simulator::new(9);
        let s = sim.add_node(TestNode::Source(Source::new(1, 64, Duration::ZERO)));
        let e1 = sim.add_node(TestNode::Echo(Echo::default()));
        let e2 = sim.add_node(TestNode::Echo(Echo::default()));
        sim.connect(s, e1, LinkConfig::default(), LinkConfig::default());
        sim.connect(s, e2, LinkConfig::default(), LinkConfig::default());
        sim.run_until(Instant::from_millis(1));
        assert_eq!(sim.node(e1).echo().received.len(), 1);
        assert_eq!(sim.node(e2).echo().received.len(), 1);
    }

    #[test]
    fn boxed_nodes_mix_and_unconnected_frames_are_counted() {
        let mut sim: Simulator<Box<dyn SimNode>> = Simulator::new(10);
        let a = sim.add_node(Box::new(TestNode::Source(Source::new(
            2,
            64,
            Duration::ZERO,
        ))));
        let b = sim.add_node(Box::new(TestNode::Echo(Echo {
            echo: true,
            ..Echo::default()
        })));
        let lonely = sim.add_node(Box::new(TestNode::Source(Source::new(
            3,
            64,
            Duration::ZERO,
        ))));
        sim.connect(
            a,
            b,
            LinkConfig::with_delay(Duration::from_millis(1)),
            LinkConfig::default(),
        );
        sim.run_until(Instant::from_millis(5));
        assert_eq!(sim.link_stats(0, Direction::Backward).delivered, 2);
        assert_eq!(sim.unroutable(), 3);
        let _ = lonely;
    }

    impl Instant {
        fn from_secs_f(s: u64) -> Instant {
            Instant::from_millis(s * 1000)
        }
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut r = SimRng::new(1);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            buckets[r.below(10) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (9_500..10_500).contains(&b)),
            "{buckets:?}"
        );
        let mean: f64 = (0..100_000).map(|_| r.next_f64()).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.005);
        assert_ne!(SimRng::new(1).next_u64(), SimRng::new(2).next_u64());
    }
}
