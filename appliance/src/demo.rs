//! `saps demo`: the main job on the embedded default.
//!
//! Builds a throwaway topology (two network namespaces joined by a veth pair), starts the
//! appliance on the `af_packet` backend in one of them, drives it from the other with Linux
//! clients (ping, curl) and the project's own generator (kernel sockets), prints a short report
//! and removes everything it created, also on Ctrl-C or failure.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::services::{fill_pattern, PATTERN};
use crate::telemetry::sample_sum;
use crate::topology::{Netns, VethPair};

/// Options of `saps demo`.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Seconds each bulk phase runs.
    pub seconds: u64,
    /// Emulated line rate for the appliance's port (e.g. "1gbit"); `None` = as fast as the veth.
    pub line_rate: Option<String>,
    /// Keep the topology and appliance running until Ctrl-C (to poke at it by hand).
    pub keep: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seconds: 3,
            line_rate: None,
            keep: false,
        }
    }
}

const APPLIANCE_IP: &str = "10.77.0.2";
const CLIENT_IP: &str = "10.77.0.1";
const TELEMETRY: &str = "127.0.0.1:9100";

/// Kills the appliance process on drop (before the namespaces go away).
struct ApplianceProcess(Child);

impl Drop for ApplianceProcess {
    fn drop(&mut self) {
        crate::topology::stop_child(&mut self.0, Duration::from_secs(3));
    }
}

/// Run the demo. Errors are one line, ready to print after `error: `.
pub fn run(opts: &DemoOptions) -> Result<(), String> {
    crate::topology::check_root_and_programs(
        "saps demo",
        &[
            ("ip", "iproute2"),
            ("ethtool", "ethtool"),
            ("ping", "iputils-ping"),
            ("curl", "curl"),
        ],
    )?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let _ = crate::runtime::shutdown_on_signals(interrupted.clone());

    println!("saps demo: building a throwaway topology (2 namespaces, 1 veth pair)");
    // Namespaces a killed earlier run left behind (Ctrl-C skips the clean-up of `Drop`).
    crate::topology::remove_stale("saps-");
    let gw = Netns::new("saps-demo-gw").map_err(|e| e.to_string())?;
    let cl = Netns::new("saps-demo-cl").map_err(|e| e.to_string())?;
    let veth = VethPair::new(&gw, &cl).map_err(|e| e.to_string())?;
    cl.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{CLIENT_IP}/24"),
        "dev",
        &veth.b,
    ])
    .map_err(|e| e.to_string())?;

    let config = demo_config(&veth.a, opts.line_rate.as_deref());
    let config_path = std::env::temp_dir().join(format!("saps-demo-{}.toml", std::process::id()));
    std::fs::write(&config_path, &config).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let log_path = std::env::temp_dir().join(format!("saps-demo-{}.log", std::process::id()));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let child = gw
        .command(exe.to_str().unwrap_or("saps"))
        .args(["run", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("starting the appliance: {e}"))?;
    let appliance = ApplianceProcess(child);
    println!(
        "saps demo: appliance on af_packet {} ({APPLIANCE_IP}/24) in namespace {}, log {}",
        veth.a,
        gw.name(),
        log_path.display()
    );

    let result = drive(opts, &gw, &cl, &interrupted);
    if opts.keep && result.is_ok() {
        println!("saps demo: running until Ctrl-C (try: ip netns exec {} curl http://{APPLIANCE_IP}/bytes/1000)", cl.name());
        while !interrupted.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    drop(appliance);
    drop(veth);
    drop(cl);
    drop(gw);
    let _ = std::fs::remove_file(&config_path);
    if result.is_ok() {
        let _ = std::fs::remove_file(&log_path);
    }
    println!("saps demo: topology removed");
    result
}

/// Every built-in service on its well-known port: what the demo and the integration tests bind.
pub const ALL_SERVICES: &str = r#"
[[service]]
kind = "echo"
port = 7

[[service]]
kind = "discard"
port = 9

[[service]]
kind = "source"
port = 19

[[service]]
kind = "http"
port = 80

[[service]]
kind = "udp_echo"
port = 7
"#;

fn demo_config(iface: &str, line_rate: Option<&str>) -> String {
    let rate = line_rate
        .map(|r| format!("line_rate = \"{r}\"\n"))
        .unwrap_or_default();
    format!(
        "# Written by `saps demo`.\n[[port]]\nname = \"ext\"\nbackend = \"af_packet\"\niface = \"{iface}\"\nipv4 = \"{APPLIANCE_IP}/24\"\n{rate}{ALL_SERVICES}\n[telemetry]\nlisten = \"{TELEMETRY}\"\n"
    )
}

fn check(interrupted: &AtomicBool) -> Result<(), String> {
    if interrupted.load(Ordering::Relaxed) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

fn scrape(gw: &Netns) -> Option<String> {
    gw.exec(&[
        "curl",
        "-s",
        "--max-time",
        "2",
        &format!("http://{TELEMETRY}/metrics"),
    ])
    .ok()
}

fn drive(
    opts: &DemoOptions,
    gw: &Netns,
    cl: &Netns,
    interrupted: &AtomicBool,
) -> Result<(), String> {
    // Wait for the appliance: telemetry answers and the address answers ping.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        check(interrupted)?;
        if gw
            .exec(&[
                "curl",
                "-sf",
                "--max-time",
                "1",
                &format!("http://{TELEMETRY}/healthz"),
            ])
            .is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("the appliance did not become healthy within 15 s (see its log)".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = scrape(gw).unwrap_or_default();
    let mut report = Vec::new();

    // 1. ping: ARP + ICMP echo.
    check(interrupted)?;
    let ping = cl
        .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", APPLIANCE_IP])
        .map_err(|e| format!("ping failed: {e}"))?;
    let rtt = ping
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    report.push(format!(
        "ping (ARP + ICMP echo)      3/3 replies, rtt min/avg/max/mdev {rtt}"
    ));

    // 2. curl over http.
    check(interrupted)?;
    let size = 50_000_000u64;
    let out = cl
        .exec(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "60",
            "-w",
            "%{http_code} %{size_download} %{speed_download}",
            &format!("http://{APPLIANCE_IP}/bytes/{size}"),
        ])
        .map_err(|e| format!("curl failed: {e}"))?;
    let fields: Vec<&str> = out.split_whitespace().collect();
    if fields.first() != Some(&"200") || fields.get(1) != Some(&size.to_string().as_str()) {
        return Err(format!("curl got an unexpected answer: {out}"));
    }
    let speed: f64 = fields.get(2).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    report.push(format!(
        "curl GET /bytes/{size}      200, {size} bytes at {:.0} Mb/s",
        speed * 8.0 / 1e6
    ));

    // 3. The project's generator, from the client namespace with kernel sockets.
    check(interrupted)?;
    let seconds = opts.seconds.max(1);
    let generator = cl
        .spawn(move || generator(seconds))
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|_| "the generator thread panicked".to_string())?
        .map_err(|e| format!("generator: {e}"))?;
    report.extend(generator);

    let after = scrape(gw).unwrap_or_default();
    let tx = sample_sum(&after, "saps_port_tx_bytes_total", &[])
        - sample_sum(&before, "saps_port_tx_bytes_total", &[]);
    let rx = sample_sum(&after, "saps_port_rx_bytes_total", &[])
        - sample_sum(&before, "saps_port_rx_bytes_total", &[]);
    report.push(format!(
        "telemetry                   /metrics on {TELEMETRY} in namespace {}: port moved {:.1} MB out, {:.1} MB in during the run",
        gw.name(),
        tx / 1e6,
        rx / 1e6
    ));

    println!("\nsaps demo report\n----------------");
    for line in &report {
        // Lines are "label<2+ spaces>text": align the text column.
        match line.split_once("  ") {
            Some((label, text)) => println!("  {label:<28}{}", text.trim_start()),
            None => println!("  {line}"),
        }
    }
    println!();
    Ok(())
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let addr: SocketAddr = format!("{APPLIANCE_IP}:{port}")
        .parse()
        .map_err(io::Error::other)?;
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// Echo round trips, byte-exact echo, three parallel bulk downloads, UDP echo.
fn generator(seconds: u64) -> io::Result<Vec<String>> {
    let mut report = Vec::new();

    // Ping-pong RTT, 4-byte messages (the SAPS paper's Table 3 measurement).
    let mut s = connect(7)?;
    s.set_nodelay(true)?;
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)
        .map_err(io::Error::other)?;
    let mut buf = [0u8; 4];
    for i in 0..2000u32 {
        let t0 = Instant::now();
        s.write_all(&i.to_be_bytes())?;
        s.read_exact(&mut buf)?;
        if buf != i.to_be_bytes() {
            return Err(io::Error::other("echo returned different bytes"));
        }
        let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
    }
    drop(s);
    report.push(format!(
        "echo 4-byte ping-pong       2000 rounds, RTT p50 {} us, p99 {} us, max {} us",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max()
    ));

    // 10 MB through echo, compared byte for byte.
    let total = 10 * 1024 * 1024;
    let s = connect(7)?;
    let mut writer = s.try_clone()?;
    let send = std::thread::spawn(move || -> io::Result<()> {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            fill_pattern(&mut chunk[..n], sent);
            writer.write_all(&chunk[..n])?;
            sent += n;
        }
        writer.shutdown(Shutdown::Write)
    });
    let t0 = Instant::now();
    let mut reader = s;
    let mut got = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut expect = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        fill_pattern(&mut expect[..n], got);
        if chunk[..n] != expect[..n] {
            return Err(io::Error::other(format!(
                "echo corrupted data at byte {got}"
            )));
        }
        got += n;
    }
    send.join()
        .map_err(|_| io::Error::other("echo writer panicked"))??;
    if got != total {
        return Err(io::Error::other(format!(
            "echo returned {got} of {total} bytes"
        )));
    }
    report.push(format!(
        "echo 10 MiB byte-exact      ok in {:.2} s",
        t0.elapsed().as_secs_f64()
    ));

    // Three parallel bulk downloads from `source`: throughput and per-flow shares.
    let stop = Arc::new(AtomicBool::new(false));
    let mut flows = Vec::new();
    for _ in 0..3 {
        let stop = stop.clone();
        flows.push(std::thread::spawn(move || -> io::Result<u64> {
            let mut s = connect(19)?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut expect = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                fill_pattern(&mut expect[..n], (got % PATTERN.len() as u64) as usize);
                if buf[..n] != expect[..n] {
                    return Err(io::Error::other("source sent unexpected bytes"));
                }
                got += n as u64;
            }
            Ok(got)
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut bytes = Vec::new();
    for f in flows {
        bytes.push(
            f.join()
                .map_err(|_| io::Error::other("bulk flow panicked"))??,
        );
    }
    let sum: u64 = bytes.iter().sum();
    let squares: f64 = bytes.iter().map(|&b| (b as f64).powi(2)).sum();
    let jain = if squares > 0.0 {
        (sum as f64).powi(2) / (bytes.len() as f64 * squares)
    } else {
        0.0
    };
    let shares: Vec<String> = bytes
        .iter()
        .map(|&b| format!("{:.0}%", 100.0 * b as f64 / sum.max(1) as f64))
        .collect();
    report.push(format!(
        "3 bulk downloads ({seconds} s)    {:.0} Mb/s total, shares {}, Jain's index {:.3}",
        sum as f64 * 8.0 / seconds as f64 / 1e6,
        shares.join(" / "),
        jain
    ));

    // UDP echo.
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let target: SocketAddr = format!("{APPLIANCE_IP}:7")
        .parse()
        .map_err(io::Error::other)?;
    let mut answered = 0;
    let mut b = [0u8; 64];
    for i in 0..100u32 {
        sock.send_to(&i.to_be_bytes(), target)?;
        if let Ok((n, _)) = sock.recv_from(&mut b) {
            if b[..n] == i.to_be_bytes() {
                answered += 1;
            }
        }
    }
    report.push(format!(
        "udp echo                    {answered}/100 datagrams echoed"
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_is_valid_and_binds_every_service() {
        let cfg = crate::config::Config::from_toml_str(&demo_config("veth0", Some("200mbit")))
            .expect("demo config validates");
        assert_eq!(cfg.services.len(), 5);
        assert_eq!(cfg.ports[0].line_rate_bps, Some(200_000_000));
        let plain = crate::config::Config::from_toml_str(&demo_config("veth0", None)).unwrap();
        assert_eq!(plain.ports[0].line_rate_bps, None);
    }
}
