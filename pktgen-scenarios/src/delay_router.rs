//! The delay router: a userspace Ethernet bridge between two interfaces that adds a fixed delay
//! (this kernel has no netem), and optionally jitter, loss, reordering, duplication and a rate
//! limit, and logs every TCP segment it forwards the way the SAPS paper logs at its delay router.
//!
//! It runs on one thread inside the router namespace, on two AF_PACKET TPACKET_V2 ports (the
//! appliance's [`saps::port::af_packet`] backend, promiscuous, qdisc bypassed). Frames are bridged
//! at L2 unchanged, so ARP passes and the client and the target share one subnet.
//!
//! Per direction there is one timing queue: a preallocated ring of frame slots, each with its
//! release time. Release times never decrease within a direction (jitter is clamped so it never
//! reorders), so the queue is a FIFO and every operation is O(1): enqueue at the tail on receive,
//! send from the head while its release time has passed. Impairments, per frame, in this order:
//! - loss: dropped with probability `loss` (towards the target `loss_to_server`, if set);
//! - rate limit (optional): the frame is serialised behind the previous one at `rate_bps`
//!   (frame + 24 bytes of preamble, FCS and gap), then delayed;
//! - delay: `one_way_delay` plus a uniform jitter in `[-jitter, +jitter]`, clamped to keep FIFO;
//! - reordering: with probability `reorder` the frame is held in a one-frame side slot and sent
//!   right after the next frame of its direction (the two swap); if no frame follows before its
//!   release time it leaves on time and does not count as reordered;
//! - duplication: with probability `duplicate` the frame is queued twice.
//!
//! Each direction also counts the SACK options it sees (SYNs offering SACK-permitted, segments
//! carrying SACK blocks), so a run can prove whether SACK was negotiated and used.
//!
//! Timing: the thread sleeps in short steps (20 µs, with the thread's timer slack set to 1 µs)
//! while frames are queued or traffic was seen in the last 2 s, and in 1 ms steps after 2 s of
//! silence, so an idle testbed costs little CPU; the first frame after a long silence can then be
//! up to 1 ms late (warm a path up before measuring it). [`RouterStats`] reports how late frames
//! left (mean and maximum) so every run can check the router kept its promise, and where the
//! time went when it did not: the longest send phase (sending on a veth runs the receiving
//! namespace's stack inside the send call) and the longest sleep overrun (the thread runnable but
//! not running: softirq work or other threads on its core, or the hypervisor). On the shared
//! 2-core machines here the mean lateness is 5-50 µs and the maximum is usually 0.1-2 ms, with
//! rare stalls of 10+ ms under heavy machine load; the thread runs SCHED_FIFO to keep them rare.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use saps::port::af_packet::{AfPacketConfig, AfPacketPort};
use saps::port::Port;
use saps::topology::Netns;

use crate::testbed::Impairments;

/// Which way a frame travels through the router.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client side to the target side.
    ToServer,
    /// From the target side to the client side.
    ToClient,
}

/// One TCP segment the router forwarded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SegmentRecord {
    /// When it was forwarded (handed to the outgoing interface), since the router started.
    pub at: Duration,
    /// Which way it went.
    pub direction: Direction,
    /// Source address and port.
    pub src: SocketAddrV4,
    /// Destination address and port.
    pub dst: SocketAddrV4,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when the ACK flag is set).
    pub ack: u32,
    /// TCP payload length in bytes.
    pub len: u32,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, ...).
    pub flags: u8,
}

/// Counters of one direction.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Frames received from the incoming interface.
    pub received: u64,
    /// Frames handed to the outgoing interface (duplicates included).
    pub forwarded: u64,
    /// Bytes of those frames.
    pub forwarded_bytes: u64,
    /// Frames dropped by the configured loss.
    pub dropped: u64,
    /// Frames dropped because the timing queue was full (rate limit backlog) or too long for a
    /// slot.
    pub queue_drops: u64,
    /// Extra copies sent by the configured duplication.
    pub duplicated: u64,
    /// Frames sent after the frame that followed them (configured reordering).
    pub reordered: u64,
    /// Frames the kernel dropped before the router could read them (RX ring overrun).
    pub rx_ring_drops: u64,
    /// Times the outgoing TX ring was full (the frame waited for the next turn).
    pub tx_full: u64,
    /// Sum over forwarded frames of how late they left after their release time.
    pub late_total: Duration,
    /// The latest any frame left after its release time.
    pub late_max: Duration,
    /// TCP SYNs and SYN-ACKs received that offer SACK (the SACK-permitted option): with SACK
    /// turned off on one end, the other end's SYN may offer it but its answer must not.
    pub sack_permitted_syns: u64,
    /// TCP segments received that carry SACK blocks: none unless SACK was negotiated.
    pub sack_block_segments: u64,
}

impl DirectionStats {
    /// Mean lateness of forwarded frames.
    pub fn late_mean(&self) -> Duration {
        if self.forwarded == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos((self.late_total.as_nanos() / u128::from(self.forwarded)) as u64)
        }
    }
}

/// Counters of the router, per direction.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Client to target.
    pub to_server: DirectionStats,
    /// Target to client.
    pub to_client: DirectionStats,
    /// Segment records discarded because the log was full.
    pub log_dropped: u64,
    /// Whether writing the pcap failed (the router went on without it).
    pub pcap_failed: bool,
    /// The router thread's scheduling: "fifo" (SCHED_FIFO), "nice" (nice -20) or "normal".
    pub scheduling: &'static str,
    /// Where late frames lost their time. The longest receive phase of one turn (reading both
    /// RX rings: includes page faults and the kernel handing frames over).
    pub max_rx_phase: Duration,
    /// The longest send phase of one turn: sending on a veth runs the receiving namespace's
    /// stack (and whatever it sends in turn) inside the send call.
    pub max_tx_phase: Duration,
    /// The most a sleep overran its request while a frame was waiting: time the thread was
    /// runnable but not running (other work on its core, or the hypervisor).
    pub max_sleep_overrun: Duration,
}

impl RouterStats {
    /// The counters of one direction.
    pub fn direction(&self, d: Direction) -> &DirectionStats {
        match d {
            Direction::ToServer => &self.to_server,
            Direction::ToClient => &self.to_client,
        }
    }
}

/// Configuration of a [`DelayRouter`].
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Interface towards the client (frames read here go [`Direction::ToServer`]).
    pub client_if: String,
    /// Interface towards the target.
    pub target_if: String,
    /// Delay added in each direction.
    pub one_way_delay: Duration,
    /// Loss, reordering, duplication and jitter, in each direction.
    pub impairments: Impairments,
    /// Optional rate limit in each direction, bits per second on the wire.
    pub rate_bps: Option<u64>,
    /// Frames each direction's timing queue holds (the rate limiter's backlog bound).
    pub queue_frames: usize,
    /// Record every forwarded TCP segment.
    pub log_segments: bool,
    /// Records the log keeps at most (older ones stay; newer ones are counted as dropped).
    pub log_capacity: usize,
    /// Write every forwarded frame to this pcap file (nanosecond timestamps, Ethernet).
    pub pcap: Option<PathBuf>,
    /// Seed of the impairment random numbers (same seed and traffic = same decisions).
    pub seed: u64,
    /// Run the router thread with SCHED_FIFO priority (else nice -20). The thread sleeps
    /// whenever it has nothing due, and the kernel's RT throttling keeps 5% of each core for
    /// others even under full load.
    pub realtime: bool,
}

impl RouterConfig {
    /// A plain delay between `client_if` and `target_if`: no impairments, no rate limit, no log.
    pub fn new(client_if: &str, target_if: &str, one_way_delay: Duration) -> RouterConfig {
        RouterConfig {
            client_if: client_if.to_string(),
            target_if: target_if.to_string(),
            one_way_delay,
            impairments: Impairments::default(),
            rate_bps: None,
            queue_frames: 8192,
            log_segments: false,
            log_capacity: 1 << 20,
            pcap: None,
            seed: 0x5a95_de1a_7e57_0001,
            realtime: true,
        }
    }
}

/// Bytes per queue slot: a 1500-byte MTU frame plus a VLAN tag fits.
const SLOT: usize = 2048;
/// Frames read per interface per turn.
const RX_BURST: usize = 64;
/// Frames sent per direction per turn. Sending on a veth runs the receiving namespace's whole
/// stack inside the send call, so a bound keeps one direction's burst from delaying the other.
const TX_BURST: usize = 32;
/// Sleep step while traffic is recent.
const BUSY_STEP: Duration = Duration::from_micros(20);
/// Sleep step after [`IDLE_AFTER`] of silence.
const IDLE_STEP: Duration = Duration::from_millis(1);
/// Silence after which the router sleeps in [`IDLE_STEP`]s.
const IDLE_AFTER: Duration = Duration::from_secs(2);
/// How often the thread publishes its counters and log records.
const PUBLISH_EVERY: Duration = Duration::from_millis(2);
/// Per-frame wire overhead for the rate limit: preamble + SFD (8), FCS (4), gap (12), the same
/// count as saps's line-rate port.
const WIRE_OVERHEAD: u64 = saps_stack::WIRE_OVERHEAD_BYTES;

/// State the router thread shares with its handle.
#[derive(Default)]
struct Shared {
    stats: Mutex<RouterStats>,
    log: Mutex<Vec<SegmentRecord>>,
    /// Publications so far: readers wait for two more so everything forwarded before their
    /// call is in what they read.
    generation: AtomicU64,
}

/// A running delay router; stopped (thread joined, pcap flushed) on drop.
pub struct DelayRouter {
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<io::Result<()>>>,
    shared: Arc<Shared>,
    started: Instant,
}

impl std::fmt::Debug for DelayRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayRouter")
            .field("running", &self.join.is_some())
            .finish()
    }
}

impl DelayRouter {
    /// Start the router on a thread inside `ns`. Returns once both ports are open (errors, like
    /// a missing interface or missing root, are returned here).
    pub fn start(ns: &Netns, cfg: RouterConfig) -> io::Result<DelayRouter> {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<Instant>>();
        let (stop2, shared2) = (stop.clone(), shared.clone());
        let join = ns.spawn(move || {
            let opened = open_ports(&cfg);
            let (a, b) = match opened {
                Ok(p) => p,
                Err(e) => {
                    let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            let pcap = match &cfg.pcap {
                None => None,
                Some(path) => match Pcap::create(path) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                },
            };
            let sched = tune_thread(cfg.realtime);
            if let Ok(mut g) = shared2.stats.lock() {
                g.scheduling = sched;
            }
            let started = Instant::now();
            let _ = ready_tx.send(Ok(started));
            run_loop(a, b, &cfg, pcap, started, &stop2, &shared2)
        })?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(started)) => Ok(DelayRouter {
                stop,
                join: Some(join),
                shared,
                started,
            }),
            Ok(Err(e)) => {
                let _ = join.join();
                Err(io::Error::new(e.kind(), format!("delay router: {e}")))
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                Err(io::Error::other("delay router: the thread did not start"))
            }
        }
    }

    /// When the router started: [`SegmentRecord::at`] counts from here.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// The stop flag: setting it ends the thread within a few milliseconds (for emergency
    /// teardown from another thread; [`DelayRouter::stop`] or drop also joins).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Wait (a few milliseconds) until the thread has published everything it forwarded before
    /// this call; returns at once if the thread is not running.
    fn sync(&self) {
        let running = self.join.as_ref().is_some_and(|j| !j.is_finished())
            && !self.stop.load(Ordering::Relaxed);
        if !running {
            return;
        }
        let target = self.shared.generation.load(Ordering::Acquire) + 2;
        let deadline = Instant::now() + Duration::from_millis(50);
        while self.shared.generation.load(Ordering::Acquire) < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Takes the segment records collected so far: every segment forwarded before the call
    /// (waits up to a few milliseconds for the router thread to hand them over).
    pub fn segment_log(&self) -> Vec<SegmentRecord> {
        self.sync();
        match self.shared.log.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(_) => Vec::new(),
        }
    }

    /// The counters so far, including every frame forwarded before the call (waits up to a few
    /// milliseconds for the router thread).
    pub fn stats(&self) -> RouterStats {
        self.sync();
        self.shared.stats.lock().map(|g| *g).unwrap_or_default()
    }

    /// Stop the thread and wait for it; returns the error that ended it, if any. Idempotent.
    pub fn stop(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.join.take() {
            None => Ok(()),
            Some(j) => j
                .join()
                .map_err(|_| io::Error::other("delay router thread panicked"))?,
        }
    }
}

impl Drop for DelayRouter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn open_ports(cfg: &RouterConfig) -> io::Result<(AfPacketPort, AfPacketPort)> {
    let open = |ifname: &str| {
        let mut c = AfPacketConfig::new(ifname);
        // A bridge must see frames for every MAC.
        c.promisc = Some(true);
        c.rx_frames = 2048;
        c.tx_frames = 1024;
        AfPacketPort::open(&c)
    };
    Ok((open(&cfg.client_if)?, open(&cfg.target_if)?))
}

/// Make this thread's wake-ups punctual: 1 µs timer slack (the default is 50 µs) and, if
/// `realtime`, SCHED_FIFO priority 10 (else nice -20), so a frame's release is not queued behind
/// compilers and load generators on a busy machine. Best effort through procfs and `chrt` /
/// `renice` (no unsafe code here): without them the router is merely later, and says so in
/// [`DirectionStats::late_max`]. Returns the policy obtained: "fifo", "nice" or "normal".
fn tune_thread(realtime: bool) -> &'static str {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return "normal";
    };
    let Some(tid) = link
        .file_name()
        .and_then(|t| t.to_str())
        .map(str::to_string)
    else {
        return "normal";
    };
    let _ = std::fs::write(format!("/proc/{tid}/timerslack_ns"), "1000");
    // A name for top and /proc/PID/task/*/comm.
    let _ = std::fs::write(format!("/proc/{tid}/comm"), "pk-delay-router");
    let ok = |cmd: &mut std::process::Command| {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if realtime && ok(std::process::Command::new("chrt").args(["-f", "-p", "10", &tid])) {
        "fifo"
    } else if ok(std::process::Command::new("renice").args(["-n", "-20", "-p", &tid])) {
        "nice"
    } else {
        "normal"
    }
}

/// A small, fast, seedable generator (SplitMix64); statistical quality is ample for impairments.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (never draws when `p <= 0`, so a clean link costs nothing).
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// Per-frame impairment parameters in nanoseconds.
#[derive(Copy, Clone, Debug)]
struct Params {
    delay_ns: u64,
    jitter_ns: u64,
    loss: f64,
    reorder: f64,
    duplicate: f64,
    rate_bps: Option<u64>,
}

/// The timing queue of one direction.
struct Lane {
    dir: Direction,
    slots: Vec<u8>,
    lens: Vec<u16>,
    due: Vec<u64>,
    head: usize,
    len: usize,
    /// Release time of the last queued frame: later frames never leave before it.
    last_due: u64,
    /// When the rate limiter's emulated wire is free again.
    wire_free: u64,
    held: Vec<u8>,
    held_len: usize,
    held_due: u64,
    has_held: bool,
    stats: DirectionStats,
}

impl Lane {
    fn new(dir: Direction, cap: usize) -> Lane {
        let cap = cap.max(16);
        Lane {
            dir,
            slots: vec![0; cap * SLOT],
            lens: vec![0; cap],
            due: vec![0; cap],
            head: 0,
            len: 0,
            last_due: 0,
            wire_free: 0,
            held: vec![0; SLOT],
            held_len: 0,
            held_due: 0,
            has_held: false,
            stats: DirectionStats::default(),
        }
    }

    fn cap(&self) -> usize {
        self.lens.len()
    }

    /// Queue `frame` to leave at `due` (or right after the last queued frame, if later).
    fn push(&mut self, frame: &[u8], due: u64) {
        if self.len == self.cap() || frame.len() > SLOT {
            self.stats.queue_drops += 1;
            return;
        }
        let i = (self.head + self.len) % self.cap();
        self.slots[i * SLOT..i * SLOT + frame.len()].copy_from_slice(frame);
        self.lens[i] = frame.len() as u16;
        let due = due.max(self.last_due);
        self.due[i] = due;
        self.last_due = due;
        self.len += 1;
    }

    /// Moves the held frame into the queue (it leaves at its own time or after the last frame).
    fn release_held(&mut self) {
        if self.has_held {
            self.has_held = false;
            let n = self.held_len;
            let held = std::mem::take(&mut self.held);
            self.push(&held[..n], self.held_due);
            self.held = held;
        }
    }

    /// A frame arrived at `now` (ns since start).
    fn receive(&mut self, frame: &[u8], now: u64, p: &Params, rng: &mut Rng) {
        self.stats.received += 1;
        let sack = sack_options(frame);
        self.stats.sack_permitted_syns += u64::from(sack.permitted_syn);
        self.stats.sack_block_segments += u64::from(sack.blocks);
        if rng.chance(p.loss) {
            self.stats.dropped += 1;
            return;
        }
        let mut t = now;
        if let Some(rate) = p.rate_bps {
            let bits = (frame.len() as u64 + WIRE_OVERHEAD) * 8;
            let ser = (u128::from(bits) * 1_000_000_000 / u128::from(rate.max(1))) as u64;
            t = t.max(self.wire_free) + ser;
            self.wire_free = t;
        }
        t += p.delay_ns;
        if p.jitter_ns > 0 {
            let j = (rng.unit() * (2 * p.jitter_ns) as f64) as u64;
            t = (t + j).saturating_sub(p.jitter_ns).max(now);
        }
        if !self.has_held && frame.len() <= SLOT && rng.chance(p.reorder) {
            self.held[..frame.len()].copy_from_slice(frame);
            self.held_len = frame.len();
            self.held_due = t;
            self.has_held = true;
            return;
        }
        self.push(frame, t);
        if self.has_held {
            // The held frame goes right behind this one: the two swap.
            self.stats.reordered += 1;
            self.release_held();
        }
        if rng.chance(p.duplicate) {
            self.stats.duplicated += 1;
            self.push(frame, t);
        }
    }

    /// The next time something in this lane needs attention.
    fn next_due(&self) -> Option<u64> {
        let q = (self.len > 0).then(|| self.due[self.head]);
        let h = self.has_held.then_some(self.held_due);
        match (q, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends every frame whose time has come to `out`. Returns the number sent.
    fn send_due(&mut self, now_ns: u64, out: &mut AfPacketPort, sink: &mut Sink<'_>) -> usize {
        if self.has_held && self.held_due <= now_ns {
            self.release_held();
        }
        let ts = saps_stack::Instant::from_micros(now_ns / 1000);
        let mut sent = 0;
        while self.len > 0 && self.due[self.head] <= now_ns && sent < TX_BURST {
            let i = self.head;
            let n = self.lens[i] as usize;
            let frame = &self.slots[i * SLOT..i * SLOT + n];
            let r = out.tx_frame(ts, &mut |buf: &mut [u8]| {
                if n > buf.len() {
                    return usize::MAX; // rejected as BadLength below
                }
                buf[..n].copy_from_slice(frame);
                n
            });
            match r {
                Ok(_) => {
                    let late = now_ns - self.due[i];
                    self.stats.forwarded += 1;
                    self.stats.forwarded_bytes += n as u64;
                    self.stats.late_total += Duration::from_nanos(late);
                    self.stats.late_max = self.stats.late_max.max(Duration::from_nanos(late));
                    sink.frame(self.dir, now_ns, frame);
                    sent += 1;
                }
                Err(saps::port::PortError::TxFull) => {
                    self.stats.tx_full += 1;
                    break;
                }
                Err(saps::port::PortError::BadLength) => self.stats.queue_drops += 1,
            }
            self.head = (self.head + 1) % self.cap();
            self.len -= 1;
        }
        if sent > 0 {
            out.tx_flush(ts);
        }
        sent
    }
}

/// Where forwarded frames are recorded: the segment log and the pcap.
struct Sink<'a> {
    log: Option<&'a mut Vec<SegmentRecord>>,
    pcap: Option<&'a mut Pcap>,
}

impl Sink<'_> {
    fn frame(&mut self, dir: Direction, now_ns: u64, frame: &[u8]) {
        if let Some(log) = self.log.as_deref_mut() {
            if let Some(rec) = parse_tcp(frame, dir, Duration::from_nanos(now_ns)) {
                log.push(rec);
            }
        }
        if let Some(p) = self.pcap.as_deref_mut() {
            p.write(now_ns, frame);
        }
    }
}

/// A pcap writer (nanosecond format, LINKTYPE_ETHERNET). A write error stops the capture.
struct Pcap {
    out: Option<BufWriter<File>>,
    /// Wall-clock nanoseconds at the router's start.
    epoch_ns: u128,
    failed: bool,
}

impl Pcap {
    fn create(path: &PathBuf) -> io::Result<Pcap> {
        let file = File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("pcap {}: {e}", path.display())))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut head = [0u8; 24];
        head[0..4].copy_from_slice(&0xa1b2_3c4du32.to_le_bytes()); // nanosecond magic
        head[4..6].copy_from_slice(&2u16.to_le_bytes());
        head[6..8].copy_from_slice(&4u16.to_le_bytes());
        head[16..20].copy_from_slice(&65535u32.to_le_bytes()); // snaplen
        head[20..24].copy_from_slice(&1u32.to_le_bytes()); // Ethernet
        out.write_all(&head)?;
        let epoch_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(Pcap {
            out: Some(out),
            epoch_ns,
            failed: false,
        })
    }

    fn write(&mut self, now_ns: u64, frame: &[u8]) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let t = self.epoch_ns + u128::from(now_ns);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((t / 1_000_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((t % 1_000_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        if out
            .write_all(&rec)
            .and_then(|_| out.write_all(frame))
            .is_err()
        {
            self.out = None;
            self.failed = true;
        }
    }

    fn finish(&mut self) {
        if let Some(mut out) = self.out.take() {
            if out.flush().is_err() {
                self.failed = true;
            }
        }
    }
}

/// The IPv4 header and the TCP segment (header and payload) in an Ethernet frame (optionally
/// one VLAN tag), with the TCP header length, if the frame holds a whole, sane TCP header.
fn tcp_segment(frame: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    if ethertype == 0x8100 {
        off += 4;
        ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(off + 2..)?;
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    // Later fragments carry no TCP header.
    let frag_off = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    // A total length beyond the bytes on the wire is a truncated or lying packet: not a
    // segment to log (its length would be made up).
    if ihl < 20 || total < ihl || total > ip.len() || frag_off != 0 {
        return None;
    }
    let tcp = ip.get(ihl..total)?;
    if tcp.len() < 20 {
        return None;
    }
    let doff = usize::from(tcp[12] >> 4) * 4;
    if doff < 20 || doff > tcp.len() {
        return None;
    }
    Some((&ip[..ihl], tcp, doff))
}

/// What a TCP segment says about SACK (RFC 2018) in its options.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SackOptions {
    /// A SYN (or SYN-ACK) with the SACK-permitted option (kind 4).
    pub permitted_syn: bool,
    /// A segment with SACK blocks (kind 5).
    pub blocks: bool,
}

/// The SACK options of the TCP segment in `frame` (none for anything else). Malformed option
/// lists end the scan; they never panic.
pub fn sack_options(frame: &[u8]) -> SackOptions {
    let mut out = SackOptions::default();
    let Some((_, tcp, doff)) = tcp_segment(frame) else {
        return out;
    };
    let syn = tcp[13] & 0x02 != 0;
    let opts = &tcp[20..doff];
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() {
                    break;
                }
                match kind {
                    4 if syn => out.permitted_syn = true,
                    5 => out.blocks = true,
                    _ => {}
                }
                i += len;
            }
        }
    }
    out
}

/// The TCP segment in an Ethernet frame (IPv4, optionally one VLAN tag), if it is one.
pub fn parse_tcp(frame: &[u8], direction: Direction, at: Duration) -> Option<SegmentRecord> {
    let (ip, tcp, doff) = tcp_segment(frame)?;
    let ihl = ip.len();
    let total = ihl + tcp.len();
    let word = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    Some(SegmentRecord {
        at,
        direction,
        src: SocketAddrV4::new(src_ip, u16::from_be_bytes([tcp[0], tcp[1]])),
        dst: SocketAddrV4::new(dst_ip, u16::from_be_bytes([tcp[2], tcp[3]])),
        seq: word(tcp, 4),
        ack: word(tcp, 8),
        len: (total - ihl).saturating_sub(doff) as u32,
        flags: tcp[13],
    })
}

#[allow(clippy::too_many_arguments)]
fn run_loop(
    mut a: AfPacketPort,
    mut b: AfPacketPort,
    cfg: &RouterConfig,
    mut pcap: Option<Pcap>,
    started: Instant,
    stop: &AtomicBool,
    shared: &Shared,
) -> io::Result<()> {
    let imp = &cfg.impairments;
    let params = Params {
        delay_ns: cfg.one_way_delay.as_nanos() as u64,
        jitter_ns: imp.jitter.as_nanos() as u64,
        loss: imp.loss,
        reorder: imp.reorder,
        duplicate: imp.duplicate,
        rate_bps: cfg.rate_bps.filter(|r| *r > 0),
    };
    let params_up = Params {
        loss: imp.loss_to_server.unwrap_or(imp.loss),
        ..params
    };
    let mut rng = Rng(cfg.seed);
    let mut up = Lane::new(Direction::ToServer, cfg.queue_frames);
    let mut down = Lane::new(Direction::ToClient, cfg.queue_frames);
    // Flushed at 8192 records; one turn adds at most 2 x TX_BURST, so this never reallocates.
    let mut log: Vec<SegmentRecord> = Vec::with_capacity(if cfg.log_segments { 16384 } else { 0 });
    let mut log_dropped = 0u64;
    let mut last_publish = 0u64;
    let mut last_traffic = 0u64;
    let (mut max_rx, mut max_tx, mut max_overrun) = (0u64, 0u64, 0u64);
    let now_ns = || started.elapsed().as_nanos() as u64;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let now = now_ns();
        let turn_start = now;
        let ts = saps_stack::Instant::from_micros(now / 1000);
        let mut work = a.rx_burst(ts, RX_BURST, &mut |f: &[u8]| {
            up.receive(f, now, &params_up, &mut rng)
        });
        work += b.rx_burst(ts, RX_BURST, &mut |f: &[u8]| {
            down.receive(f, now, &params, &mut rng)
        });
        let now = now_ns();
        max_rx = max_rx.max(now.saturating_sub(turn_start));
        {
            let mut sink = Sink {
                log: cfg.log_segments.then_some(&mut log),
                pcap: pcap.as_mut(),
            };
            work += up.send_due(now, &mut b, &mut sink);
            work += down.send_due(now, &mut a, &mut sink);
        }
        // Frames sent earlier may still sit in a TX ring the kernel has not taken yet.
        a.tx_flush(ts);
        b.tx_flush(ts);
        max_tx = max_tx.max(now_ns().saturating_sub(now));
        if work > 0 {
            last_traffic = now;
        }
        if stopping || now - last_publish >= PUBLISH_EVERY.as_nanos() as u64 || log.len() >= 8192 {
            last_publish = now;
            if !log.is_empty() {
                if let Ok(mut g) = shared.log.lock() {
                    // The shared log is drained by readers; the bound is on records kept.
                    let room = cfg.log_capacity.saturating_sub(g.len());
                    let take = room.min(log.len());
                    g.extend_from_slice(&log[..take]);
                    log_dropped += (log.len() - take) as u64;
                }
                log.clear();
            }
            if let Ok(mut g) = shared.stats.lock() {
                let mut s = RouterStats {
                    to_server: up.stats,
                    to_client: down.stats,
                    log_dropped,
                    pcap_failed: pcap.as_ref().is_some_and(|p| p.failed),
                    scheduling: g.scheduling,
                    max_rx_phase: Duration::from_nanos(max_rx),
                    max_tx_phase: Duration::from_nanos(max_tx),
                    max_sleep_overrun: Duration::from_nanos(max_overrun),
                };
                s.to_server.rx_ring_drops = a.counters().rx_drops;
                s.to_client.rx_ring_drops = b.counters().rx_drops;
                *g = s;
            }
            shared.generation.fetch_add(1, Ordering::Release);
        }
        if stopping {
            break;
        }
        if work == 0 {
            let next = up.next_due().min_opt(down.next_due());
            let step = if next.is_some() || now - last_traffic < IDLE_AFTER.as_nanos() as u64 {
                BUSY_STEP
            } else {
                IDLE_STEP
            };
            let wait = match next {
                Some(t) if t <= now => Duration::ZERO,
                Some(t) => Duration::from_nanos(t - now).min(step),
                None => step,
            };
            if !wait.is_zero() {
                let before = now_ns();
                std::thread::sleep(wait);
                let slept = now_ns().saturating_sub(before);
                if next.is_some() {
                    // Only when a frame was waiting: an idle overrun delays nothing.
                    max_overrun = max_overrun.max(slept.saturating_sub(wait.as_nanos() as u64));
                }
            }
        }
    }
    if let Some(p) = pcap.as_mut() {
        p.finish();
        if p.failed {
            if let Ok(mut g) = shared.stats.lock() {
                g.pcap_failed = true;
            }
        }
    }
    Ok(())
}

/// `Option::min` that treats `None` as "no deadline".
trait MinOpt {
    fn min_opt(self, other: Self) -> Self;
}

impl MinOpt for Option<u64> {
    fn min_opt(self, other: Self) -> Self {
        match (self, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(payload: usize, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + payload];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x45;
        let total = (40 + payload) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let tcp = &mut ip[20..];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        tcp[8..12].copy_from_slice(&2000u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        f
    }

    #[test]
    fn tcp_segments_are_parsed() {
        let f = tcp_frame(100, 0x18);
        let r = parse_tcp(&f, Direction::ToServer, Duration::from_millis(3)).unwrap();
        assert_eq!(r.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(r.dst, "10.0.0.2:80".parse().unwrap());
        assert_eq!((r.seq, r.ack, r.len, r.flags), (1000, 2000, 100, 0x18));
        assert_eq!(r.at, Duration::from_millis(3));
    }

    #[test]
    fn malformed_frames_are_not_segments() {
        let f = tcp_frame(10, 0x10);
        for cut in 0..54 {
            assert!(parse_tcp(&f[..cut], Direction::ToClient, Duration::ZERO).is_none());
        }
        let mut udp = f.clone();
        udp[14 + 9] = 17;
        assert!(parse_tcp(&udp, Direction::ToClient, Duration::ZERO).is_none());
        let mut bad_doff = f.clone();
        bad_doff[14 + 20 + 12] = 2 << 4;
        assert!(parse_tcp(&bad_doff, Direction::ToClient, Duration::ZERO).is_none());
        let mut frag = f;
        frag[14 + 7] = 1;
        assert!(parse_tcp(&frag, Direction::ToClient, Duration::ZERO).is_none());
    }

    /// `tcp_frame` with `opts` (padded to 4 bytes) as the TCP options.
    fn tcp_frame_with_options(flags: u8, opts: &[u8]) -> Vec<u8> {
        let olen = opts.len().div_ceil(4) * 4;
        let mut f = tcp_frame(olen, flags);
        let ip = &mut f[14..];
        ip[20 + 12] = ((20 + olen as u8) / 4) << 4;
        ip[40..40 + opts.len()].copy_from_slice(opts);
        f
    }

    #[test]
    fn sack_options_are_found() {
        // A Linux-like SYN: MSS, SACK-permitted, timestamps, NOP, window scale.
        let syn_opts = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let syn = tcp_frame_with_options(0x02, &syn_opts);
        assert_eq!(
            sack_options(&syn),
            SackOptions {
                permitted_syn: true,
                blocks: false
            }
        );
        let synack = tcp_frame_with_options(0x12, &syn_opts);
        assert!(sack_options(&synack).permitted_syn);
        // Without option 4 (SACK off): nothing.
        let plain = tcp_frame_with_options(0x12, &[2, 4, 5, 0xb4, 1, 3, 3, 7]);
        assert_eq!(sack_options(&plain), SackOptions::default());
        // An ACK with NOP, NOP, one SACK block.
        let ack = tcp_frame_with_options(0x10, &[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(
            sack_options(&ack),
            SackOptions {
                permitted_syn: false,
                blocks: true
            }
        );
        // SACK-permitted on a non-SYN means nothing; an end-of-list stops the scan.
        assert!(!sack_options(&tcp_frame_with_options(0x10, &[4, 2])).permitted_syn);
        assert!(!sack_options(&tcp_frame_with_options(0x10, &[0, 5, 10, 0, 0, 0])).blocks);
        // A length running past the options, or below 2, stops the scan.
        assert!(!sack_options(&tcp_frame_with_options(0x10, &[5, 40, 0, 0])).blocks);
        assert!(!sack_options(&tcp_frame_with_options(0x10, &[3, 1, 5, 10])).blocks);
        // Not TCP at all.
        assert_eq!(sack_options(&[0u8; 10]), SackOptions::default());
    }

    #[test]
    fn sack_options_never_panic_on_mutated_options() {
        let f = tcp_frame_with_options(0x12, &[2, 4, 5, 0xb4, 4, 2, 1, 1, 5, 10, 0, 0, 0, 1]);
        for i in 14 + 20 + 12..f.len() {
            for v in 0..=255u8 {
                let mut g = f.clone();
                g[i] = v;
                for cut in [g.len(), g.len() - 3, 54] {
                    let _ = sack_options(&g[..cut]);
                }
            }
        }
    }

    #[test]
    fn lanes_count_sack_options_before_loss() {
        let mut l = Lane::new(Direction::ToClient, 64);
        let mut rng = Rng(1);
        let mut p = params();
        p.loss = 0.999_999;
        let synack = tcp_frame_with_options(0x12, &[4, 2, 1, 1]);
        let ack = tcp_frame_with_options(0x10, &[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        l.receive(&synack, 0, &p, &mut rng);
        l.receive(&ack, 0, &p, &mut rng);
        l.receive(&tcp_frame(10, 0x10), 0, &p, &mut rng);
        assert_eq!(
            (l.stats.sack_permitted_syns, l.stats.sack_block_segments),
            (1, 1)
        );
        assert_eq!(l.stats.dropped, 3);
    }

    #[test]
    fn parse_tcp_never_panics_on_mutated_frames() {
        // The router parses every frame it forwards: hostile bytes must never panic it. Every
        // header byte of a valid segment set to every value, at every length.
        let f = tcp_frame(16, 0x18);
        for i in 0..54 {
            for v in 0..=255u8 {
                let mut g = f.clone();
                g[i] = v;
                for cut in [g.len(), 53, 34, 14] {
                    let _ = sack_options(&g[..cut]);
                    if let Some(r) = parse_tcp(&g[..cut], Direction::ToServer, Duration::ZERO) {
                        assert!(r.len as usize <= cut, "payload length beyond the frame");
                    }
                }
            }
        }
    }

    fn params() -> Params {
        Params {
            delay_ns: 1_000_000,
            jitter_ns: 0,
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
            rate_bps: None,
        }
    }

    /// Drains a lane's queue (without a port) as (frame first byte, due).
    fn drain(l: &mut Lane) -> Vec<(u8, u64)> {
        let mut out = Vec::new();
        while l.len > 0 {
            let i = l.head;
            out.push((l.slots[i * SLOT], l.due[i]));
            l.head = (l.head + 1) % l.cap();
            l.len -= 1;
        }
        out
    }

    #[test]
    fn delay_and_rate_set_release_times() {
        let mut l = Lane::new(Direction::ToServer, 64);
        let mut rng = Rng(1);
        let mut p = params();
        l.receive(&[1; 100], 0, &p, &mut rng);
        l.receive(&[2; 100], 500, &p, &mut rng);
        assert_eq!(drain(&mut l), vec![(1, 1_000_000), (2, 1_000_500)]);
        // 1 Mb/s: a 101-byte frame (+24) takes 1 ms on the wire; back-to-back frames queue.
        p.rate_bps = Some(1_000_000);
        let mut l = Lane::new(Direction::ToServer, 64);
        l.receive(&[1; 101], 0, &p, &mut rng);
        l.receive(&[2; 101], 0, &p, &mut rng);
        assert_eq!(drain(&mut l), vec![(1, 2_000_000), (2, 3_000_000)]);
    }

    #[test]
    fn jitter_never_reorders() {
        let mut l = Lane::new(Direction::ToServer, 4096);
        let mut rng = Rng(7);
        let mut p = params();
        p.jitter_ns = 500_000;
        for i in 0..2000u64 {
            l.receive(&[(i % 251) as u8; 64], i * 10_000, &p, &mut rng);
        }
        let out = drain(&mut l);
        assert_eq!(out.len(), 2000);
        assert!(out.windows(2).all(|w| w[0].1 <= w[1].1));
        let spread = out
            .iter()
            .enumerate()
            .map(|(i, (_, d))| *d as i64 - i as i64 * 10_000 - 1_000_000)
            .fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        assert!(
            spread.0 >= -500_000 && spread.1 <= 500_000 && spread.1 - spread.0 > 500_000,
            "{spread:?}"
        );
    }

    #[test]
    fn loss_duplication_and_reordering_follow_their_rates() {
        let mut l = Lane::new(Direction::ToServer, 1 << 16);
        let mut rng = Rng(3);
        let mut p = params();
        p.loss = 0.01;
        p.duplicate = 0.02;
        p.reorder = 0.05;
        let n = 50_000u64;
        for i in 0..n {
            l.receive(&[(i % 256) as u8; 64], i * 1000, &p, &mut rng);
        }
        let s = l.stats;
        let rate = |x: u64| x as f64 / n as f64;
        assert!((rate(s.dropped) - 0.01).abs() < 0.002, "{s:?}");
        assert!((rate(s.duplicated) - 0.02).abs() < 0.003, "{s:?}");
        assert!((rate(s.reordered) - 0.05).abs() < 0.006, "{s:?}");
        let out = drain(&mut l);
        assert_eq!(
            out.len() as u64 + u64::from(l.has_held),
            n - s.dropped + s.duplicated
        );
        assert!(out.windows(2).all(|w| w[0].1 <= w[1].1));
        // Reordered frames appear after their successor.
        let swaps = out
            .windows(2)
            .filter(|w| w[1].0 == w[0].0.wrapping_sub(1))
            .count() as u64;
        assert!(swaps >= s.reordered * 9 / 10, "{swaps} vs {s:?}");
    }

    #[test]
    fn a_held_frame_leaves_on_time_without_a_successor() {
        let mut l = Lane::new(Direction::ToServer, 64);
        let mut rng = Rng(5);
        let mut p = params();
        p.reorder = 1.0;
        l.receive(&[9; 64], 0, &p, &mut rng);
        assert!(l.has_held && l.len == 0);
        assert_eq!(l.next_due(), Some(1_000_000));
        l.release_held();
        assert_eq!(drain(&mut l), vec![(9, 1_000_000)]);
        assert_eq!(l.stats.reordered, 0);
    }

    #[test]
    fn mean_lateness() {
        let mut d = DirectionStats::default();
        assert_eq!(d.late_mean(), Duration::ZERO);
        d.forwarded = 4;
        d.late_total = Duration::from_millis(4);
        assert_eq!(d.late_mean(), Duration::from_millis(1));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let mut l = Lane::new(Direction::ToClient, 16);
        let mut rng = Rng(5);
        for _ in 0..20 {
            l.receive(&[1; 64], 0, &params(), &mut rng);
        }
        assert_eq!(l.len, 16);
        assert_eq!(l.stats.queue_drops, 4);
        l.receive(&[1; SLOT + 1], 0, &params(), &mut rng);
        assert_eq!(l.stats.queue_drops, 5);
    }
}
