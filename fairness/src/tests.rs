use super::*;

const T0: Instant = Instant::ZERO;

fn at(us: u64) -> Instant {
    Instant::from_micros(us)
}

/// Admit one segment of `bytes`; the flow keeps `more` data. Returns the admitted flow.
fn admit(a: &mut Admission, bytes: usize, more: bool, now: Instant) -> Option<FlowId> {
    let f = a.dequeue(now)?;
    a.on_transmit(f, bytes, more, now);
    Some(f)
}

#[test]
fn policy_names_round_trip() {
    for p in [Policy::Off, Policy::Paper, Policy::Adaptive] {
        assert_eq!(Policy::from_name(p.name()), Ok(p));
    }
    assert_eq!(Policy::from_name("fast"), Err(UnknownPolicy));
    assert!(Admission::from_name("bogus", 1024).is_err());
    assert_eq!(Policy::default(), Policy::Adaptive);
}

#[test]
fn off_is_fifo_in_bursts_without_a_limit() {
    let mut a = Admission::from_name("off", 1024).unwrap();
    a.enqueue(1, T0);
    a.enqueue(2, T0);
    a.enqueue(1, T0);
    assert_eq!(a.waiting(), 2);
    // Flow 1 keeps the head for one 64 KB burst (44 frames of 1514 bytes: the 44th overdraws).
    let burst = OFF_BURST_BYTES.div_ceil(1514) as usize;
    for _ in 0..burst {
        assert_eq!(admit(&mut a, 1514, true, T0), Some(1));
    }
    // Then flow 2, which waited, gets its burst; then flow 1 again. No limit, ever.
    for _ in 0..burst {
        assert_eq!(admit(&mut a, 1514, true, T0), Some(2));
    }
    for _ in 0..5000 {
        let f = admit(&mut a, 1514, true, T0).unwrap();
        assert!(f == 1 || f == 2);
    }
    assert_eq!(a.ring_packets() as usize, 2 * burst + 5000);
    assert_eq!(a.stats().hold_backs, 0);
    // A flow alone keeps sending.
    let mut b = Admission::from_name("off", 1024).unwrap();
    b.enqueue(7, T0);
    for _ in 0..5000 {
        assert_eq!(admit(&mut b, 1514, true, T0), Some(7));
    }
    assert_eq!(admit(&mut b, 1514, false, T0), Some(7));
    assert_eq!(b.dequeue(T0), None);
}

#[test]
fn paper_limits_packets_and_rotates_after_a_burst() {
    let mut cfg = AdmissionConfig::new(Policy::Paper, 1024);
    cfg.paper_limit = 6;
    cfg.paper_burst = 2;
    let mut a = Admission::new(cfg);
    a.enqueue(1, T0);
    a.enqueue(2, T0);
    let order: Vec<_> = (0..6)
        .map(|_| admit(&mut a, 1000, true, T0).unwrap())
        .collect();
    assert_eq!(order, [1, 1, 2, 2, 1, 1]);
    // At the limit: held back, nothing lost.
    assert_eq!(a.dequeue(T0), None);
    assert_eq!(a.stats().hold_backs, 1);
    assert_eq!(a.waiting(), 2);
    a.on_completion(3, 3000, at(10));
    let order: Vec<_> = (0..3)
        .map(|_| admit(&mut a, 1000, true, at(10)).unwrap())
        .collect();
    assert_eq!(order, [2, 2, 1]);
    assert_eq!(a.dequeue(at(10)), None);
    assert_eq!(a.ring_packets(), 6);
}

#[test]
fn paper_limit_is_bounded_by_the_ring() {
    let mut cfg = AdmissionConfig::new(Policy::Paper, 8);
    cfg.paper_limit = 100;
    let a = Admission::new(cfg);
    assert_eq!(a.limit_packets(), 8);
}

#[test]
fn control_segments_occupy_the_ring() {
    let mut cfg = AdmissionConfig::new(Policy::Paper, 1024);
    cfg.paper_limit = 2;
    let mut a = Admission::new(cfg);
    a.on_bypass(60, T0);
    a.on_bypass(60, T0);
    a.enqueue(7, T0);
    assert_eq!(a.dequeue(T0), None);
    a.on_completion(1, 60, at(1));
    assert_eq!(admit(&mut a, 1500, false, at(1)), Some(7));
    assert_eq!(a.stats().bypassed_packets, 2);
    assert_eq!(a.ring_bytes(), 1560);
}

/// `adaptive` with a limit that never binds and one frame per turn, so the order of service is
/// exact.
fn adaptive_one_frame_turns() -> Admission {
    let mut cfg = AdmissionConfig::new(Policy::Adaptive, 1024);
    cfg.initial_limit = 1_000_000;
    cfg.line_rate_bps = Some(100_000_000_000);
    cfg.quantum = cfg.max_frame;
    Admission::new(cfg)
}

#[test]
fn adaptive_serves_a_new_flow_before_bulk_flows() {
    let mut a = adaptive_one_frame_turns();
    // Two bulk flows that have used up their first quantum.
    a.enqueue(1, T0);
    a.enqueue(2, T0);
    for _ in 0..40 {
        admit(&mut a, 1514, true, T0).unwrap();
    }
    // A new flow arrives: its first window (initial quantum = 10 frames) goes out at once.
    a.enqueue(3, T0);
    let next: Vec<_> = (0..10)
        .map(|_| admit(&mut a, 1514, true, T0).unwrap())
        .collect();
    assert_eq!(next, [3; 10]);
    // Then it takes its turn among the bulk flows.
    let mut seen = [0u32; 4];
    for _ in 0..30 {
        seen[admit(&mut a, 1514, true, T0).unwrap() as usize] += 1;
    }
    assert_eq!(&seen[1..], &[10, 10, 10]);
}

#[test]
fn adaptive_paused_new_flow_does_not_keep_priority() {
    let mut a = adaptive_one_frame_turns();
    // Flow 1 uses up its initial quantum (10 * 1518 bytes: 11 frames of 1514) and turns bulk.
    a.enqueue(1, T0);
    for _ in 0..11 {
        assert_eq!(admit(&mut a, 1514, true, T0), Some(1));
    }
    // Flow 2 is new, sends one segment and pauses (cwnd).
    a.enqueue(2, T0);
    assert_eq!(admit(&mut a, 1514, false, T0), Some(2));
    // The paused new flow moves behind the bulk flow rather than out of the lists.
    assert_eq!(admit(&mut a, 1514, true, T0), Some(1));
    // It has data again, and a brand-new flow 3 arrives: 3 is served first (new list), 2 waits
    // as a bulk flow would.
    a.enqueue(2, T0);
    a.enqueue(3, T0);
    let order: Vec<_> = (0..12)
        .map(|_| admit(&mut a, 1514, true, T0).unwrap())
        .collect();
    assert_eq!(order[..11], [3; 11]);
    assert_eq!(order[11], 2);
}

#[test]
fn adaptive_byte_limit_holds_and_grows_when_the_ring_runs_dry() {
    let mut cfg = AdmissionConfig::new(Policy::Adaptive, 1024);
    cfg.line_rate_bps = Some(1_000_000_000); // 125 KB per ms
    cfg.initial_limit = 4 * 1518;
    let mut a = Admission::new(cfg);
    assert_eq!(a.limit_bytes(), 4 * 1518);
    a.enqueue(1, T0);
    let mut n = 0;
    while admit(&mut a, 1514, true, T0).is_some() {
        n += 1;
    }
    // A fifth frame of up to 1518 bytes could exceed 4 * 1518: refused.
    assert_eq!(n, 4);
    assert!(a.ring_bytes() <= a.limit_bytes());
    // Everything drained while flow 1 waited: lost line rate, the limit grows.
    a.on_completion(4, 4 * 1514, at(50));
    let s = a.stats();
    assert_eq!(s.ring_empty_while_waiting, 1);
    assert_eq!(s.limit_grows, 1);
    assert_eq!(a.limit_bytes(), 4 * 1518 + 4 * 1514);
}

#[test]
fn adaptive_limit_never_exceeds_the_latency_bound() {
    let mut cfg = AdmissionConfig::new(Policy::Adaptive, 1024);
    cfg.line_rate_bps = Some(1_000_000_000);
    cfg.max_latency = Duration::from_micros(200); // 25 KB at 1 Gb/s
    let mut a = Admission::new(cfg);
    a.enqueue(1, T0);
    let mut now = 0;
    for _ in 0..100 {
        let mut sent = 0u64;
        let mut pkts = 0;
        while admit(&mut a, 1514, true, at(now)).is_some() {
            sent += 1514;
            pkts += 1;
        }
        now += sent * 8 / 1000; // drains at 1 Gb/s
        a.on_completion(pkts, sent, at(now));
    }
    assert!(a.stats().limit_grows > 0);
    // 25 KB at the measured rate (the test's clock rounds down, so slightly above 1 Gb/s).
    assert!(
        (24_500..=25_500).contains(&a.limit_bytes()),
        "{}",
        a.limit_bytes()
    );
    let rate = a.stats().drain_rate;
    assert!((120_000_000..=130_000_000).contains(&rate), "{rate}");
}

#[test]
fn adaptive_learns_the_drain_rate_and_caps_the_limit() {
    let mut cfg = AdmissionConfig::new(Policy::Adaptive, 4096);
    cfg.max_latency = Duration::from_millis(1);
    let mut a = Admission::new(cfg);
    a.enqueue(1, T0);
    // A 100 Mb/s link: 12.5 KB per ms, so the limit may not exceed 12.5 KB.
    let mut now = 0;
    for _ in 0..2000 {
        let mut sent = 0u64;
        let mut pkts = 0;
        while admit(&mut a, 1514, true, at(now)).is_some() {
            sent += 1514;
            pkts += 1;
        }
        if pkts == 0 {
            // Complete one packet at a time at 100 Mb/s.
            now += 1514 * 8 / 100;
            a.on_completion(1, 1514, at(now));
            continue;
        }
        now += sent * 8 / 100;
        a.on_completion(pkts, sent, at(now));
    }
    let s = a.stats();
    assert!((11_000_000..=13_000_000).contains(&s.drain_rate), "{s:?}");
    assert!(a.limit_bytes() <= 13_000, "{s:?}");
    assert!(a.limit_bytes() >= 2 * 1518);
}

#[test]
fn a_late_caller_does_not_pull_the_cap_below_the_line_rate() {
    let mut cfg = AdmissionConfig::new(Policy::Adaptive, 1024);
    cfg.line_rate_bps = Some(100_000_000);
    cfg.max_latency = Duration::from_millis(1);
    let mut a = Admission::new(cfg);
    a.enqueue(1, T0);
    // Each turn the caller fills the ring to the limit and comes back only after twice the time
    // the ring takes to drain (descheduled): the ring sits empty half the time while the flow
    // waits, so the measured drain rate is half the line rate.
    let mut now = 0;
    for _ in 0..2000 {
        let (mut sent, mut pkts) = (0u64, 0);
        while admit(&mut a, 1514, true, at(now)).is_some() {
            sent += 1514;
            pkts += 1;
        }
        now += 2 * sent * 8 / 100;
        a.on_completion(pkts, sent, at(now));
    }
    let s = a.stats();
    assert!(
        (40_000_000 / 8..=60_000_000 / 8).contains(&s.drain_rate),
        "{s:?}"
    );
    // The limit grows to what 1 ms at the configured 100 Mb/s holds (12.5 KB), not to 1 ms at
    // the measured 50 Mb/s.
    assert!(a.limit_bytes() >= 12_000, "{s:?}");
    assert!(a.limit_bytes() <= 12_500 + 1518, "{s:?}");
}

#[test]
fn adaptive_shrinks_when_the_ring_never_drains() {
    let mut cfg = AdmissionConfig::new(Policy::Adaptive, 1024);
    cfg.line_rate_bps = Some(10_000_000_000);
    cfg.initial_limit = 60 * 1518;
    let mut a = Admission::new(cfg);
    let start = a.limit_bytes();
    a.enqueue(1, T0);
    // Completions trickle in one packet at a time and the ring stays nearly full: the limit
    // is far above what keeps the ring busy.
    let mut now = 0;
    for _ in 0..5000 {
        while admit(&mut a, 1514, true, at(now)).is_some() {}
        now += 12;
        a.on_completion(1, 1514, at(now));
    }
    let s = a.stats();
    assert!(s.limit_shrinks > 0, "{s:?}");
    assert!(a.limit_bytes() < start / 2, "{s:?}");
    assert!(a.limit_bytes() >= 2 * 1518);
    assert_eq!(s.ring_empty_while_waiting, 0);
}

#[test]
fn remove_forgets_a_flow_and_its_id_can_be_reused() {
    let mut a = Admission::from_name("adaptive", 1024).unwrap();
    a.enqueue(5, T0);
    a.enqueue(6, T0);
    a.remove(5);
    assert_eq!(a.waiting(), 1);
    assert_eq!(admit(&mut a, 1000, false, T0), Some(6));
    assert_eq!(a.dequeue(T0), None);
    a.enqueue(5, T0);
    assert_eq!(admit(&mut a, 1000, false, T0), Some(5));
    assert_eq!(a.waiting(), 0);
    // Removing the flow in service: the late on_transmit still accounts the bytes.
    a.enqueue(9, T0);
    assert_eq!(a.dequeue(T0), Some(9));
    a.remove(9);
    a.on_transmit(9, 700, false, T0);
    assert_eq!(a.ring_bytes(), 2700);
    assert_eq!(a.waiting(), 0);
}

#[test]
fn enqueue_grows_the_slab_for_high_ids() {
    let mut cfg = AdmissionConfig::new(Policy::Adaptive, 1024);
    cfg.flows_hint = 0;
    let mut a = Admission::new(cfg);
    a.enqueue(100_000, T0);
    assert_eq!(admit(&mut a, 100, false, T0), Some(100_000));
}

#[test]
fn dequeue_without_on_transmit_closes_the_previous_service() {
    let mut a = Admission::from_name("paper", 1024).unwrap();
    a.enqueue(1, T0);
    a.enqueue(2, T0);
    assert_eq!(a.dequeue(T0), Some(1));
    // The caller never reported flow 1; it is treated as having had nothing to send.
    assert_eq!(a.dequeue(T0), Some(2));
    a.on_transmit(2, 100, false, T0);
    assert_eq!(a.dequeue(T0), None);
    assert_eq!(a.waiting(), 0);
}

#[test]
fn waits_are_recorded_once_per_turn() {
    // paper: 4 packets per turn.
    let mut a = Admission::from_name("paper", 1024).unwrap();
    a.enqueue(1, at(100));
    // Flow 1's turn: it waited 250 us for the first segment; the other three are the same turn.
    assert_eq!(admit(&mut a, 100, true, at(350)), Some(1));
    a.enqueue(2, at(350));
    for _ in 0..3 {
        assert_eq!(admit(&mut a, 100, true, at(350)), Some(1));
    }
    assert_eq!(a.wait_histogram().count(), 1);
    // Flow 2 arrived at 350 and is served at 400 (50 us); flow 1 waits from the end of its
    // turn (350) to 500 (150 us).
    for _ in 0..4 {
        assert_eq!(admit(&mut a, 100, true, at(400)), Some(2));
    }
    assert_eq!(admit(&mut a, 100, false, at(500)), Some(1));
    let h = a.wait_histogram();
    assert_eq!(h.count(), 3);
    assert_eq!(h.sum_micros(), 250 + 50 + 150);
    assert_eq!(h.max_micros(), 256);
    // A flow that paused (still at the head with credit left) and has data again waits anew.
    a.enqueue(1, at(600));
    assert_eq!(admit(&mut a, 100, false, at(610)), Some(1));
    assert_eq!(a.wait_histogram().count(), 4);
    assert_eq!(a.wait_histogram().sum_micros(), 450 + 10);
}

#[test]
fn resync_replaces_the_occupancy() {
    let mut cfg = AdmissionConfig::new(Policy::Paper, 1024);
    cfg.paper_limit = 1;
    let mut a = Admission::new(cfg);
    a.enqueue(1, T0);
    assert_eq!(admit(&mut a, 100, true, T0), Some(1));
    assert_eq!(a.dequeue(T0), None);
    // The port says the frame is gone even though no completion was reported.
    a.resync(0, 0, at(5));
    assert_eq!(admit(&mut a, 100, false, at(5)), Some(1));
}

#[test]
fn bursts_are_what_the_deficit_pays_for_and_stop_at_the_limit() {
    // paper: a burst of `paper_burst` frames per grant, ended by the packet limit.
    let mut cfg = AdmissionConfig::new(Policy::Paper, 1024);
    cfg.paper_limit = 6;
    cfg.paper_burst = 4;
    let mut a = Admission::new(cfg);
    a.enqueue(1, T0);
    a.enqueue(2, T0);
    assert_eq!(a.dequeue_burst(T0), Some((1, 4)));
    for _ in 0..4 {
        assert!(a.burst_room());
        a.on_burst_segment(1000);
    }
    a.on_burst_end(1, 4, 4000, true, T0);
    assert_eq!(a.stats().admissions, 4);
    // Flow 2's turn: granted 4, but only 2 fit under the limit of 6 packets.
    assert_eq!(a.dequeue_burst(T0), Some((2, 4)));
    a.on_burst_segment(1000);
    assert!(a.burst_room());
    a.on_burst_segment(1000);
    assert!(!a.burst_room());
    a.on_burst_end(2, 2, 2000, true, T0);
    assert_eq!(a.ring_packets(), 6);
    assert_eq!(a.dequeue_burst(T0), None);
    // Its turn goes on after completions: 2 frames of its quantum are left.
    a.on_completion(6, 6000, at(100));
    assert_eq!(a.dequeue_burst(at(100)), Some((2, 2)));

    // adaptive: the grant is the deficit in full frames; a remainder gets a grant of its own,
    // so turns are those of per-segment service.
    let mut b = Admission::from_name("adaptive", 1024).unwrap();
    b.enqueue(5, T0);
    let (f, g) = b.dequeue_burst(T0).unwrap();
    assert_eq!((f, g), (5, 10)); // initial quantum: 10 frames
    for _ in 0..g {
        b.on_burst_segment(100);
    }
    b.on_burst_end(5, g, 1000, true, T0);
    // 1000 bytes of 15180 spent: the turn goes on.
    assert_eq!(b.dequeue_burst(T0), Some((5, 10)));
}

#[test]
fn a_flow_removed_mid_burst_is_forgotten_and_its_segments_stay_accounted() {
    let mut a = Admission::from_name("adaptive", 1024).unwrap();
    a.enqueue(3, T0);
    a.enqueue(4, T0);
    let (f, g) = a.dequeue_burst(T0).unwrap();
    assert_eq!(f, 3);
    assert!(g > 2);
    a.on_burst_segment(1514);
    a.on_burst_segment(1514);
    a.remove(3);
    assert_eq!(a.waiting(), 1);
    // A late report of the removed flow's burst changes nothing but the counters.
    a.on_burst_end(3, 2, 3028, false, T0);
    assert_eq!(a.ring_packets(), 2);
    assert_eq!(a.ring_bytes(), 3028);
    assert_eq!(a.dequeue_burst(T0).map(|(f, _)| f), Some(4));
    a.on_burst_end(4, 0, 0, false, T0);
    assert_eq!(a.waiting(), 0);
    assert_eq!(a.dequeue_burst(T0), None);
}
