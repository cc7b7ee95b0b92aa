//! Property tests of the admission controller against a model of the stack and the port: flows
//! with send queues of numbered segments, a FIFO TX ring that completes in order, control
//! segments that bypass admission, flows that leave and ids that are reused.

use std::collections::VecDeque;

use proptest::prelude::*;
use saps_fairness::{Admission, AdmissionConfig, Policy};
use saps_stack::egress::{EgressScheduler, FlowId};
use saps_stack::{Duration, Instant};

const MAX_FRAME: usize = 1518;

#[derive(Clone, Debug)]
enum Op {
    /// The flow gets `n` more segments of `size` bytes.
    Data { flow: u8, n: u8, size: u16 },
    /// The stack fills up to `k` TX slots.
    Poll { k: u8 },
    /// The port completes up to `n` frames, `us` microseconds later.
    Complete { n: u8, us: u16 },
    /// A control segment bypasses admission.
    Bypass,
    /// The flow closes (its unsent data is dropped by the stack, not by the scheduler).
    Remove { flow: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..12, 1u8..20, 64u16..=1514).prop_map(|(flow, n, size)| Op::Data { flow, n, size }),
        4 => (1u8..40).prop_map(|k| Op::Poll { k }),
        3 => (1u8..40, 0u16..200).prop_map(|(n, us)| Op::Complete { n, us }),
        1 => Just(Op::Bypass),
        1 => (0u8..12).prop_map(|flow| Op::Remove { flow }),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Off),
        Just(Policy::Paper),
        Just(Policy::Adaptive)
    ]
}

fn config(policy: Policy, limit: u32, burst: u32) -> AdmissionConfig {
    let mut cfg = AdmissionConfig::new(policy, 256);
    cfg.max_frame = MAX_FRAME as u32;
    cfg.paper_limit = limit;
    cfg.paper_burst = burst;
    cfg.initial_limit = limit * 1000;
    cfg.line_rate_bps = Some(1_000_000_000);
    cfg.max_latency = Duration::from_micros(u64::from(limit) * 20);
    cfg.flows_hint = 4;
    cfg
}

/// A burst granted by `dequeue_burst`, as the interface keeps it across TX slots.
#[derive(Copy, Clone, Debug)]
struct Burst {
    flow: FlowId,
    left: u32,
    packets: u32,
    bytes: usize,
}

/// The stack and port side.
struct Model {
    /// Per flow: (next sequence number to queue, queued segments (seq, size)).
    flows: Vec<(u32, VecDeque<(u32, u16)>)>,
    /// Per flow: next sequence number expected at admission (order check).
    next_sent: Vec<u32>,
    /// Per flow: incarnation, so segments of a removed flow are not expected any more.
    ring: VecDeque<usize>,
    now: u64,
    /// Use the batched calls (`dequeue_burst` ...) as the interface does, else the per-segment
    /// pair `dequeue` / `on_transmit`.
    batched: bool,
    burst: Option<Burst>,
}

impl Model {
    fn new(n: usize, batched: bool) -> Self {
        Model {
            flows: vec![(0, VecDeque::new()); n],
            next_sent: vec![0; n],
            ring: VecDeque::new(),
            now: 0,
            batched,
            burst: None,
        }
    }

    /// One TX slot: returns the admitted flow, its segment size and sequence number.
    fn poll_one(&mut self, a: &mut Admission) -> Option<(FlowId, usize, u32)> {
        if self.batched {
            return self.poll_batched(a);
        }
        let now = Instant::from_micros(self.now);
        let flow = a.dequeue(now)?;
        let q = &mut self.flows[flow as usize].1;
        let Some((seq, size)) = q.pop_front() else {
            // Flow removed after it was enqueued: nothing to send.
            a.on_transmit(flow, 0, false, now);
            return Some((flow, 0, u32::MAX));
        };
        let more = !q.is_empty();
        a.on_transmit(flow, size as usize, more, now);
        self.ring.push_back(size as usize);
        Some((flow, size as usize, seq))
    }

    /// One TX slot with the batched calls, the way `Interface::poll_transmit` makes them.
    fn poll_batched(&mut self, a: &mut Admission) -> Option<(FlowId, usize, u32)> {
        let now = Instant::from_micros(self.now);
        let mut b = match self.burst.take() {
            Some(b) if a.burst_room() => b,
            other => {
                if let Some(b) = other {
                    // Ring full mid-burst (control segments took the room): end it.
                    let more = !self.flows[b.flow as usize].1.is_empty();
                    a.on_burst_end(b.flow, b.packets, b.bytes, more, now);
                }
                let (flow, n) = a.dequeue_burst(now)?;
                assert!(n >= 1, "a grant of no segment");
                Burst {
                    flow,
                    left: n,
                    packets: 0,
                    bytes: 0,
                }
            }
        };
        let q = &mut self.flows[b.flow as usize].1;
        let Some((seq, size)) = q.pop_front() else {
            // Flow removed after it was enqueued: nothing to send.
            a.on_burst_end(b.flow, b.packets, b.bytes, false, now);
            return Some((b.flow, 0, u32::MAX));
        };
        let more = !q.is_empty();
        a.on_burst_segment(size as usize);
        self.ring.push_back(size as usize);
        b.left -= 1;
        b.packets += 1;
        b.bytes += size as usize;
        if !more || b.left == 0 {
            a.on_burst_end(b.flow, b.packets, b.bytes, more, now);
        } else {
            self.burst = Some(b);
        }
        Some((b.flow, size as usize, seq))
    }

    /// `us` later the port reports up to `n` of the oldest frames in the ring sent.
    fn complete(&mut self, a: &mut Admission, n: u8, us: u16) {
        self.now += u64::from(us);
        let (mut packets, mut bytes) = (0, 0);
        for _ in 0..n {
            let Some(s) = self.ring.pop_front() else {
                break;
            };
            packets += 1;
            bytes += s as u64;
        }
        a.on_completion(packets, bytes, Instant::from_micros(self.now));
    }

    /// A 60-byte control segment bypasses admission into the ring.
    fn bypass(&mut self, a: &mut Admission, now: Instant) {
        a.on_bypass(60, now);
        self.ring.push_back(60);
    }

    /// The stack frees `flow`: a burst of it ends silently (the scheduler forgets it in
    /// `remove`).
    fn remove(&mut self, a: &mut Admission, flow: FlowId) {
        if self.burst.is_some_and(|b| b.flow == flow) {
            self.burst = None;
        }
        a.remove(flow);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Occupancy never exceeds the limit at admission; nothing is lost, duplicated or
    /// reordered within a flow; the scheduler's ring and waiting counts match the model.
    #[test]
    fn limit_holds_and_nothing_is_lost_or_reordered(
        pol in policy(),
        limit in 2u32..40,
        burst in 1u32..8,
        batched in any::<bool>(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let mut a = Admission::new(config(pol, limit, burst));
        let mut m = Model::new(12, batched);
        let check_slot = |a: &Admission, m: &mut Model, flow: FlowId, size: usize, seq: u32| {
            if size == 0 {
                return Ok(());
            }
            prop_assert_eq!(seq, m.next_sent[flow as usize], "flow {} out of order", flow);
            m.next_sent[flow as usize] += 1;
            match pol {
                Policy::Paper => prop_assert!(a.ring_packets() <= limit.min(256)),
                Policy::Adaptive => {
                    prop_assert!(a.ring_bytes() <= a.limit_bytes());
                    prop_assert!(a.ring_packets() <= 256);
                }
                Policy::Off => {}
            }
            Ok(())
        };
        for op in ops {
            let now = Instant::from_micros(m.now);
            match op {
                Op::Data { flow, n, size } => {
                    let f = &mut m.flows[flow as usize];
                    for _ in 0..n {
                        f.1.push_back((f.0, size));
                        f.0 += 1;
                    }
                    a.enqueue(u32::from(flow), now);
                }
                Op::Poll { k } => {
                    for _ in 0..k {
                        let Some((flow, size, seq)) = m.poll_one(&mut a) else { break };
                        check_slot(&a, &mut m, flow, size, seq)?;
                    }
                }
                Op::Complete { n, us } => m.complete(&mut a, n, us),
                Op::Bypass => m.bypass(&mut a, now),
                Op::Remove { flow } => {
                    let f = &mut m.flows[flow as usize];
                    // The stack drops the flow's unsent data; its id may come back later.
                    m.next_sent[flow as usize] += f.1.len() as u32;
                    f.1.clear();
                    m.remove(&mut a, u32::from(flow));
                }
            }
            prop_assert_eq!(a.ring_packets() as usize, m.ring.len());
            let backlogged = m.flows.iter().filter(|f| !f.1.is_empty()).count();
            prop_assert_eq!(a.waiting(), backlogged);
        }
        // Drain: everything still queued goes out exactly once, in order.
        let mut guard = 0;
        loop {
            let s = m.ring.iter().sum::<usize>() as u64;
            a.on_completion(m.ring.len() as u32, s, Instant::from_micros(m.now));
            m.ring.clear();
            m.now += 100;
            let mut any = false;
            while let Some((flow, size, seq)) = m.poll_one(&mut a) {
                check_slot(&a, &mut m, flow, size, seq)?;
                any = true;
            }
            if !any {
                break;
            }
            guard += 1;
            prop_assert!(guard < 100_000);
        }
        for (i, f) in m.flows.iter().enumerate() {
            prop_assert!(f.1.is_empty(), "flow {} kept {} segments", i, f.1.len());
            prop_assert_eq!(m.next_sent[i], f.0);
        }
        prop_assert_eq!(a.waiting(), 0);
    }

    /// No starvation: while a flow waits, the other flows are admitted at most a bound that
    /// depends only on the number of flows and the quantum (bytes for `adaptive`, packets for
    /// `paper`), whatever the arrival pattern.
    #[test]
    fn waits_are_bounded_by_flows_and_quantum(
        paper in any::<bool>(),
        burst in 1u32..8,
        batched in any::<bool>(),
        ops in prop::collection::vec(op(), 1..400),
    ) {
        let pol = if paper { Policy::Paper } else { Policy::Adaptive };
        let cfg = config(pol, 16, burst);
        let mut a = Admission::new(cfg);
        let n_flows = 12u64;
        let bound = if paper {
            (n_flows - 1) * u64::from(burst)
        } else {
            let (iq, mf) = (u64::from(a.config().initial_quantum), MAX_FRAME as u64);
            (n_flows - 1) * 2 * (iq + mf)
        };
        let mut m = Model::new(12, batched);
        // Per flow: service to others since it became ready (None: not waiting).
        let mut others: Vec<Option<u64>> = vec![None; 12];
        for op in ops {
            let now = Instant::from_micros(m.now);
            match op {
                Op::Data { flow, n, size } => {
                    let f = &mut m.flows[flow as usize];
                    for _ in 0..n {
                        f.1.push_back((f.0, size));
                        f.0 += 1;
                    }
                    a.enqueue(u32::from(flow), now);
                    others[flow as usize].get_or_insert(0);
                }
                Op::Poll { k } => {
                    for _ in 0..k {
                        let Some((flow, size, _)) = m.poll_one(&mut a) else { break };
                        if size == 0 {
                            continue;
                        }
                        let cost = if paper { 1 } else { size as u64 };
                        for (i, w) in others.iter_mut().enumerate() {
                            if i == flow as usize {
                                *w = if m.flows[i].1.is_empty() { None } else { Some(0) };
                            } else if let Some(w) = w {
                                *w += cost;
                                prop_assert!(*w <= bound, "flow {} waited {} > {}", i, *w, bound);
                            }
                        }
                    }
                }
                Op::Complete { n, us } => m.complete(&mut a, n, us),
                Op::Bypass => m.bypass(&mut a, now),
                Op::Remove { flow } => {
                    m.flows[flow as usize].1.clear();
                    others[flow as usize] = None;
                    m.remove(&mut a, u32::from(flow));
                }
            }
        }
    }

    /// Equal demand: every flow always has data. Over every window of 100 quanta per flow the
    /// shares stay within 5% of equal (bytes for `adaptive`, packets for `paper`), with each
    /// flow using its own segment size.
    #[test]
    fn equal_demand_gets_equal_shares(
        paper in any::<bool>(),
        sizes in prop::collection::vec(200u16..=1514, 2..9),
        burst in 1u32..8,
        batched in any::<bool>(),
        completions in prop::collection::vec(1u32..12, 1..64),
    ) {
        let pol = if paper { Policy::Paper } else { Policy::Adaptive };
        let mut a = Admission::new(config(pol, 16, burst));
        let n = sizes.len();
        let now = Instant::ZERO;
        for f in 0..n {
            a.enqueue(f as u32, now);
        }
        let quantum = if paper { u64::from(burst) } else { u64::from(a.config().quantum) };
        let window = 100 * quantum * n as u64;
        let mut trace: Vec<(usize, u64)> = Vec::new();
        let mut ring: VecDeque<u64> = VecDeque::new();
        let mut c = completions.iter().cycle();
        while trace.iter().map(|t| t.1).sum::<u64>() < 3 * window {
            if batched {
                while let Some((f, n)) = a.dequeue_burst(now) {
                    let size = u64::from(sizes[f as usize]);
                    let mut sent = 0;
                    loop {
                        a.on_burst_segment(size as usize);
                        ring.push_back(size);
                        trace.push((f as usize, if paper { 1 } else { size }));
                        sent += 1;
                        if sent == n || !a.burst_room() {
                            break;
                        }
                    }
                    a.on_burst_end(f, sent, sent as usize * size as usize, true, now);
                }
            } else {
                while let Some(f) = a.dequeue(now) {
                    let size = u64::from(sizes[f as usize]);
                    a.on_transmit(f, size as usize, true, now);
                    ring.push_back(size);
                    trace.push((f as usize, if paper { 1 } else { size }));
                }
            }
            let k = (*c.next().unwrap()).min(ring.len() as u32);
            let bytes: u64 = ring.drain(..k as usize).sum();
            a.on_completion(k, bytes, now);
        }
        // Skip the first round (new flows start with the initial quantum), then slide a window
        // over every admission.
        let start = trace.len() / 10;
        let mut j = start;
        let mut acc = vec![0u64; n];
        let mut total = 0u64;
        for i in start..trace.len() {
            while j < trace.len() && total < window {
                acc[trace[j].0] += trace[j].1;
                total += trace[j].1;
                j += 1;
            }
            if total < window {
                break;
            }
            let mean = total as f64 / n as f64;
            for (f, got) in acc.iter().enumerate() {
                let dev = (*got as f64 - mean).abs() / mean;
                prop_assert!(dev <= 0.05, "flow {} share off by {:.3} in window at {}", f, dev, i);
            }
            acc[trace[i].0] -= trace[i].1;
            total -= trace[i].1;
        }
    }
}
