//! EAL arguments shared by the DPDK tests: software vdevs only, no hugepages, no PCI, no
//! runtime files (--in-memory is not allowed with --no-huge in 22.11, so --no-shconf; each test file is its own process: the EAL initialises once per process).
#![allow(dead_code)]

pub fn eal_args(vdevs: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--no-pci",
        "--no-telemetry",
        "--log-level=warning",
        "-l",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("--file-prefix=saps-test-{}", std::process::id()));
    for v in vdevs {
        a.push(format!("--vdev={v}"));
    }
    a
}
