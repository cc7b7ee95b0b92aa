//! The appliance on `backend = "dpdk"` over DPDK's `net_af_packet` vdev on a veth, served to
//! Linux clients in another namespace: ping, curl, echo byte-exact, bulk download. Needs root and
//! the `dpdk` feature (`cargo test -p saps --features dpdk --test dpdk_backend`). Each test runs
//! its own `saps run` process, so the once-per-process EAL is no obstacle.
#![cfg(feature = "dpdk")]

mod common;

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::require_root;
use common::rig::{connect, APPLIANCE_IP, CLIENT_IP, SERVICES, TELEMETRY};
use saps::topology::{Netns, VethPair};

/// `saps run` on a dpdk port in one namespace, clients in another (like common::rig::Rig).
struct DpdkRig {
    gw: Netns,
    cl: Netns,
    _veth: VethPair,
    child: Option<Child>,
    config_path: std::path::PathBuf,
    log_path: std::path::PathBuf,
}

impl DpdkRig {
    fn start(eal_args: &str) -> DpdkRig {
        let gw = Netns::new("saps-d-gw").unwrap();
        let cl = Netns::new("saps-d-cl").unwrap();
        let veth = VethPair::new(&gw, &cl).unwrap();
        cl.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{CLIENT_IP}/24"),
            "dev",
            &veth.b,
        ])
        .unwrap();
        // The vdev needs the interface up; af_packet's PMD does not raise it.
        gw.exec(&["ip", "link", "set", &veth.a, "up"]).unwrap();
        let config = format!(
            "[[port]]\nname = \"ext\"\nbackend = \"dpdk\"\niface = \"net_af_packet0,iface={}\"\nipv4 = \"{APPLIANCE_IP}/24\"\ntx_ring = 512\nrx_ring = 512\neal_args = {eal_args}\n{SERVICES}\n[telemetry]\nlisten = \"{TELEMETRY}\"\n",
            veth.a
        );
        let id = format!("{}-{}", std::process::id(), saps::topology::unique_id());
        let config_path = std::env::temp_dir().join(format!("saps-dpdk-{id}.toml"));
        let log_path = std::env::temp_dir().join(format!("saps-dpdk-{id}.log"));
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(&log_path).unwrap();
        let child = gw
            .command(env!("CARGO_BIN_EXE_saps"))
            .args(["run", "--config"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut rig = DpdkRig {
            gw,
            cl,
            _veth: veth,
            child: Some(child),
            config_path,
            log_path,
        };
        rig.wait_healthy();
        rig
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("appliance exited early ({status}): {}", self.log());
            }
            let url = format!("http://{TELEMETRY}/healthz");
            if self
                .gw
                .exec(&["curl", "-sf", "--max-time", "1", &url])
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "appliance not healthy after 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        saps::topology::stop_child(&mut child, Duration::from_secs(10))
    }
}

impl Drop for DpdkRig {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_file(&self.config_path);
        if std::thread::panicking() {
            eprintln!("appliance log kept at {}", self.log_path.display());
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

fn serve_linux_clients(eal_args: &str) {
    let mut rig = DpdkRig::start(eal_args);
    rig.cl
        .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", APPLIANCE_IP])
        .unwrap_or_else(|e| panic!("ping: {e}\n{}", rig.log()));
    for size in [0usize, 1, 1460, 100_000, 3_000_000] {
        let out = rig
            .cl
            .exec(&[
                "curl",
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                &format!("http://{APPLIANCE_IP}/bytes/{size}"),
            ])
            .unwrap_or_else(|e| panic!("curl {size}: {e}\n{}", rig.log()));
        assert_eq!(out.trim(), size.to_string(), "curl {size}");
    }
    // Echo byte-exact and a bulk download from the source service, with kernel sockets.
    let (echoed, bulk) = rig
        .cl
        .spawn(|| {
            let mut s = connect(7)?;
            let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
            let mut r = s.try_clone()?;
            let reader = std::thread::spawn(move || {
                let mut back = vec![0u8; 2_000_000];
                r.read_exact(&mut back).map(|_| back)
            });
            s.write_all(&data)?;
            let back = reader
                .join()
                .map_err(|_| std::io::Error::other("reader"))??;
            let echoed = back == data;
            let mut src = connect(19)?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut bulk = 0usize;
            while bulk < 20_000_000 {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                bulk += n;
            }
            Ok::<_, std::io::Error>((echoed, bulk))
        })
        .unwrap()
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("client: {e}\n{}", rig.log()));
    assert!(echoed, "echo returned different bytes");
    assert!(bulk >= 20_000_000, "bulk got {bulk}");
    assert!(rig.stop(), "appliance did not exit cleanly: {}", rig.log());
}

#[test]
fn dpdk_af_packet_serves_ping_curl_echo_bulk_without_hugepages() {
    if !require_root("dpdk_af_packet_serves_ping_curl_echo_bulk_without_hugepages") {
        return;
    }
    serve_linux_clients(r#"["--no-huge", "-m", "512", "--no-shconf"]"#);
}

#[test]
fn dpdk_unknown_device_is_a_one_line_error() {
    if !require_root("dpdk_unknown_device_is_a_one_line_error") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("saps-dpdk-bad-{}", std::process::id()));
    std::fs::write(
        &dir,
        "[[port]]\nname = \"ext\"\nbackend = \"dpdk\"\niface = \"net_nosuchpmd0\"\nipv4 = \"10.9.0.2/24\"\neal_args = [\"--no-huge\", \"-m\", \"128\", \"--no-shconf\"]\n[telemetry]\nenabled = false\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_saps"))
        .args(["run", "--config"])
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains("DPDK EAL"), "{line}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
}

/// Puts `nr_hugepages` back to what it was.
struct RestoreHugepages(u64);

impl Drop for RestoreHugepages {
    fn drop(&mut self) {
        let _ = hugepages::reserve(2048, self.0);
    }
}

#[test]
fn dpdk_af_packet_serves_ping_curl_echo_bulk_on_reserved_hugepages() {
    if !require_root("dpdk_af_packet_serves_ping_curl_echo_bulk_on_reserved_hugepages") {
        return;
    }
    let before = hugepages::Status::read();
    let Some(two) = before.size(2048) else {
        panic!("no 2 MB hugepage support in this kernel");
    };
    let _restore = RestoreHugepages(two.total);
    // 256 free 2 MB pages (512 MB) on top of what others use.
    let want = two.total + 256u64.saturating_sub(two.usable());
    hugepages::reserve(2048, want).unwrap_or_else(|e| panic!("reserving hugepages: {e}"));
    let plan = hugepages::eal_memory_args(&hugepages::Status::read(), 256, 256);
    assert_ne!(plan.mode, hugepages::MemoryMode::NoHuge, "{plan:?}");
    // In-memory mode: hugepages without a hugetlbfs mount or runtime files.
    serve_linux_clients(r#"["--in-memory"]"#);
}

/// `saps bench-dpdk --quick --json`: the appliance and testpmd both bounce frames on the same
/// vdev, both backends serve a bulk download, and the report is the JSON it promises.
#[test]
fn dpdk_bench_quick_reports_both_rates() {
    if !require_root("dpdk_bench_quick_reports_both_rates") {
        return;
    }
    if !saps::topology::have_program("dpdk-testpmd") {
        panic!("dpdk-testpmd not found: apt-get install -y dpdk-dev (Debian 12.9+ moved it there from dpdk)");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_saps"))
        .args(["bench-dpdk", "--quick", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench-dpdk failed: {stderr}");
    let json = stdout.trim();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    let value = |key: &str| -> f64 {
        let pat = format!("\"{key}\":");
        let at = json
            .find(&pat)
            .unwrap_or_else(|| panic!("no {key} in {json}"));
        let rest = &json[at + pat.len()..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end]
            .parse()
            .unwrap_or_else(|e| panic!("{key}: {e} in {json}"))
    };
    for key in [
        "saps_pps",
        "testpmd_pps",
        "udp_ratio",
        "bulk_dpdk_mbps",
        "bulk_af_packet_mbps",
    ] {
        assert!(value(key) > 0.0, "{key} is not positive: {json}");
    }
    assert_eq!(value("runs"), 1.0, "{json}");
    let ratio = value("udp_ratio");
    let expect = value("saps_pps") / value("testpmd_pps");
    assert!((ratio - expect).abs() < 0.01, "{json}");
}
