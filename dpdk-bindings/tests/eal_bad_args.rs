//! EAL initialisation failure is an error value with DPDK's reason, not a panic or an exit.
#![cfg(feature = "dpdk")]

use dpdk_bindings::Eal;

#[test]
fn eal_init_with_an_unknown_vdev_fails_cleanly() {
    let e = Eal::init([
        "--no-huge",
        "-m",
        "64",
        "--no-shconf",
        "--no-pci",
        "--no-telemetry",
        "--log-level=error",
        "--vdev=net_doesnotexist0",
    ])
    .unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("rte_eal_init: "), "{s}");
    assert!(!s.contains('\n'), "{s}");
    assert!(e.code > 0, "{e:?}");
}
