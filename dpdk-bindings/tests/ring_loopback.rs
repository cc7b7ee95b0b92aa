//! net_ring loopback: a burst sent on the port comes back on its RX queue byte-exact, partial
//! TX bursts keep the unsent mbufs, and every mbuf returns to the pool.
#![cfg(feature = "dpdk")]

mod common;

use dpdk_bindings::{Eal, EthPort, Mempool, PortSetup, SocketId};

#[test]
fn net_ring_loops_a_burst_back() {
    let eal = Eal::init(common::eal_args(&["net_ring0"])).expect("EAL init");
    let id = eal.port_by_name("net_ring0").unwrap();
    let rx_pool = Mempool::new(
        &eal,
        "t_rx",
        1023,
        0,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .unwrap();
    let tx_pool = Mempool::new(
        &eal,
        "t_tx",
        2047,
        0,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .unwrap();
    let setup = PortSetup {
        rx_desc: 256,
        tx_desc: 256,
        promiscuous: true,
    };
    let mut port = EthPort::configure(&eal, id, &setup, &rx_pool).expect("configure");
    port.start().expect("start");
    let mac = port.mac().unwrap();
    assert!(port.link().unwrap().up);

    let mut pending = Vec::with_capacity(64);
    for i in 0..32u8 {
        let mut m = tx_pool.alloc().unwrap();
        let room = m.room_mut();
        room[..6].copy_from_slice(&mac);
        room[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        room[12..14].copy_from_slice(&[0x88, 0xb5]);
        room[14..64].fill(i);
        m.set_len(64 + usize::from(i));
        pending.push(m);
    }
    let sent = port.tx_burst(&mut pending);
    assert_eq!(sent, 32);
    assert!(pending.is_empty());

    let mut got = Vec::new();
    let mut n = 0;
    for _ in 0..100 {
        n += port.rx_burst_with(64, &mut |f| got.push(f.to_vec()));
        if n == 32 {
            break;
        }
    }
    assert_eq!(n, 32);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f.len(), 64 + i);
        assert_eq!(f[20], i as u8);
        assert_eq!(&f[..6], &mac);
    }
    let st = port.stats().unwrap();
    assert_eq!((st.opackets, st.ipackets), (32, 32));
    let xs = port.xstats().unwrap();
    assert!(
        xs.iter().any(|(n, v)| n == "tx_good_packets" && *v == 32),
        "{xs:?}"
    );
    assert_eq!(
        tx_pool.in_use(),
        0,
        "received mbufs went back to their pool"
    );

    // Fill the ring (net_ring's ring holds about 1024): a partial burst keeps the rest.
    let mut big = Vec::with_capacity(2100);
    assert!(tx_pool.alloc_bulk(2000, &mut big));
    for m in big.iter_mut() {
        m.set_len(60);
    }
    let mut taken = 0;
    for _ in 0..4 {
        taken += port.tx_burst(&mut big);
    }
    assert!(taken < 2000 && taken > 0, "taken {taken}");
    assert_eq!(big.len(), 2000 - taken, "unsent mbufs stay with the caller");
    // Drain what the ring took, owned this time.
    let mut rx = Vec::with_capacity(64);
    let mut drained = 0;
    while drained < taken {
        let k = port.rx_burst(64, &mut rx);
        assert!(k > 0);
        drained += k;
        rx.clear();
    }
    drop(big);
    port.stop().unwrap();
    drop(port);
    assert_eq!(tx_pool.in_use(), 0);
    assert_eq!(rx_pool.in_use(), 0);
}
