//! TX admission driven by the real interface under faults: every policy, random ring sizes and
//! line rates, many concurrent connections carrying data both ways over lossy, reordering,
//! duplicating links. Bursts get cut by control segments (retransmissions, ACKs, FINs), by the
//! ring limit and by connections that finish mid-burst; through all of it every stream must
//! arrive byte-exact, every connection must close, and the admission's idea of ring occupancy
//! must equal the ring's.

use std::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;
use saps_fairness::{Admission, AdmissionConfig, Policy};
use saps_stack::iface::Interface;
use saps_stack::sim::{LinkConfig, Simulator};
use saps_stack::simhost::{host_config, App, BulkSender, SimHost, Sink, Transfer, TxRingConfig};
use saps_stack::{Duration, Instant};

type Host = SimHost<Admission>;

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 7000;

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Off),
        Just(Policy::Paper),
        Just(Policy::Adaptive)
    ]
}

fn link() -> impl Strategy<Value = LinkConfig> {
    (0u64..5, 0.0f64..0.03, 0.0f64..0.03, 0.0f64..0.02).prop_map(|(ms, loss, reorder, dup)| {
        LinkConfig {
            delay: Duration::from_millis(ms),
            loss,
            reorder,
            duplicate: dup,
            ..LinkConfig::default()
        }
    })
}

/// Server (node 0): a sink replying `down` bytes per connection, behind `policy` and a TX ring of
/// `ring` slots at `rate_bps`. Client (node 1): `conns` connections sending `up` bytes each.
#[allow(clippy::too_many_arguments)]
fn network(
    seed: u64,
    policy: Policy,
    ring: u32,
    rate_bps: u64,
    conns: usize,
    up: u64,
    down: u64,
    links: (LinkConfig, LinkConfig),
) -> Simulator<Host> {
    let mut sim = Simulator::new(seed);
    let mut adm = AdmissionConfig::new(policy, ring);
    adm.line_rate_bps = Some(rate_bps);
    let mut sink = Sink::new(PORT);
    sink.reply_bytes = down;
    let mut sc = host_config(1, SERVER_IP);
    sc.seed ^= seed;
    let server = SimHost::with_interface(
        Interface::with_egress(sc, Admission::new(adm), Instant::ZERO),
        vec![App::Sink(sink)],
    )
    .with_tx_ring(TxRingConfig::new(ring as usize, rate_bps));
    let mut snd = BulkSender::new(SocketAddrV4::new(SERVER_IP, PORT), up);
    snd.connections = conns;
    let mut cc = host_config(2, CLIENT_IP);
    cc.seed ^= seed.rotate_left(17);
    let client = SimHost::with_interface(
        Interface::with_egress(
            cc,
            Admission::new(AdmissionConfig::new(Policy::Off, 1 << 20)),
            Instant::ZERO,
        ),
        vec![App::BulkSender(snd)],
    );
    let s = sim.add_node(server);
    let c = sim.add_node(client);
    sim.connect(s, c, links.0, links.1);
    sim
}

fn sink(sim: &Simulator<Host>) -> &Sink {
    match &sim.node(0).apps[0] {
        App::Sink(s) => s,
        _ => unreachable!("node 0 runs the sink"),
    }
}

fn sender(sim: &Simulator<Host>) -> &BulkSender {
    match &sim.node(1).apps[0] {
        App::BulkSender(b) => b,
        _ => unreachable!("node 1 runs the sender"),
    }
}

fn all_done(sim: &Simulator<Host>) -> bool {
    let (s, k) = (sender(sim), sink(sim));
    s.all_complete()
        && k.transfers.len() == s.transfers.len()
        && k.transfers.iter().all(Transfer::complete)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_policy_delivers_byte_exact_under_faults(
        seed in any::<u64>(),
        policy in policy(),
        ring in 8u32..1024,
        rate_mbps in 10u64..1000,
        conns in 1usize..16,
        up in 0u64..40_000,
        down in 0u64..400_000,
        fwd in link(),
        bwd in link(),
    ) {
        let mut sim = network(seed, policy, ring, rate_mbps * 1_000_000, conns, up, down, (fwd, bwd));
        let deadline = Instant::from_millis(600_000);
        sim.run_while(deadline, |s| !all_done(s));
        prop_assert!(all_done(&sim), "{policy:?}: not done at {:?}", sim.now());
        let (s, k) = (sender(&sim), sink(&sim));
        for kt in &k.transfers {
            let st = s.transfers.iter().find(|t| t.local == kt.remote).expect("known peer");
            st.check_delivered_to(kt).map_err(|e| TestCaseError::fail(format!("{policy:?} up: {e}")))?;
            kt.check_delivered_to(st).map_err(|e| TestCaseError::fail(format!("{policy:?} down: {e}")))?;
        }
        let later = sim.now() + Duration::from_secs(300);
        sim.run_until(later);
        prop_assert!(
            sim.node(0).only_closed_or_time_wait() && sim.node(1).only_closed_or_time_wait(),
            "server {} client {}", sim.node(0).states_summary(), sim.node(1).states_summary()
        );
        // The admission's occupancy is the ring's, and the ring never held more than its slots.
        let server = sim.node(0);
        let tx = server.tx_ring().expect("the server has a TX ring");
        prop_assert!(tx.stats().max_frames <= ring as usize);
        let adm = server.iface.egress();
        prop_assert_eq!(adm.ring_packets() as usize, tx.frames());
        prop_assert_eq!(adm.ring_bytes(), tx.bytes());
    }
}
