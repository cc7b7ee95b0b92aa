//! EAL init and teardown, and the once-per-process rule. One process (this test binary).
#![cfg(feature = "dpdk")]

mod common;

use dpdk_bindings::{Eal, Mempool, SocketId};

#[test]
fn eal_init_finds_vdev_then_refuses_second_init_and_cleans_up() {
    let eal = Eal::init(common::eal_args(&["net_ring0"])).expect("EAL init");
    assert_eq!(eal.port_count(), 1);
    let id = eal.port_by_name("net_ring0").expect("net_ring0 probed");
    assert_eq!(id.0, 0);
    let e = eal.port_by_name("net_nonexistent9").unwrap_err();
    assert!(e.to_string().contains("no DPDK port named"), "{e}");
    // A second initialisation in the same process is an error, not UB or a panic.
    let e = Eal::init(common::eal_args(&[])).unwrap_err();
    assert!(e.to_string().contains("once per process"), "{e}");
    // A pool holds the EAL alive; dropping everything runs rte_eal_cleanup once.
    let pool = Mempool::new(
        &eal,
        "t_eal",
        511,
        0,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .expect("pool");
    assert_eq!(pool.capacity(), 511);
    drop(eal);
    assert_eq!(pool.available(), 511);
    drop(pool);
}
