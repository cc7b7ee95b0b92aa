//! Mbuf allocation and freeing: pool counts return to full (no leaks), data room and lengths.
#![cfg(feature = "dpdk")]

mod common;

use dpdk_bindings::{Eal, Mempool, SocketId};

#[test]
fn mbufs_alloc_free_and_pool_returns_to_full() {
    let eal = Eal::init(common::eal_args(&[])).expect("EAL init");
    let pool = Mempool::new(
        &eal,
        "t_mbuf",
        255,
        0,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .expect("pool");
    assert_eq!(
        (pool.capacity(), pool.available(), pool.in_use()),
        (255, 255, 0)
    );

    let mut m = pool.alloc().expect("one mbuf");
    assert_eq!(m.len(), 0);
    assert!(m.room_mut().len() >= 2048, "{}", m.room_mut().len());
    m.room_mut()[..4].copy_from_slice(b"saps");
    m.set_len(60);
    assert_eq!(m.len(), 60);
    assert_eq!(m.pkt_len(), 60);
    assert_eq!(m.segments(), 1);
    assert_eq!(&m.data()[..4], b"saps");
    // set_len clamps to the room instead of overrunning it.
    m.set_len(1 << 20);
    assert_eq!(m.len(), m.room_mut().len());
    assert_eq!(pool.in_use(), 1);
    drop(m);
    assert_eq!(pool.in_use(), 0);

    // Bulk: all or nothing.
    let mut v = Vec::with_capacity(300);
    assert!(pool.alloc_bulk(200, &mut v));
    assert_eq!(v.len(), 200);
    assert_eq!(pool.available(), 55);
    assert!(!pool.alloc_bulk(56, &mut v), "only 55 left");
    assert_eq!(v.len(), 200);
    assert!(pool.alloc_bulk(55, &mut v));
    assert!(pool.alloc().is_none(), "pool exhausted");

    // into_raw + from_raw round trip keeps ownership single.
    let raw = v.pop().unwrap().into_raw();
    assert_eq!(pool.in_use(), 255);
    // SAFETY: `raw` came from into_raw just above and nobody else owns it.
    drop(unsafe { dpdk_bindings::Mbuf::from_raw(raw) });
    v.clear();
    assert_eq!((pool.available(), pool.in_use()), (255, 0));
}
