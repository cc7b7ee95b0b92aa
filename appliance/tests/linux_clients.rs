//! The appliance on af_packet, driven by real Linux clients from another network namespace:
//! ping, curl, wget, socat, ab, and kernel sockets. Needs root (CI runs it as root; elsewhere it
//! prints SKIPPED loudly).

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::require_root;
use common::rig::{self, metric, read_hash, write_pattern, Rig, APPLIANCE_IP};

#[test]
fn ping_answers_arp_and_icmp_echo() {
    if !require_root("ping_answers_arp_and_icmp_echo") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let out = rig
        .client(&["ping", "-c", "3", "-i", "0.2", "-W", "2", APPLIANCE_IP])
        .unwrap_or_else(|e| panic!("ping failed: {e}\n{}", rig.log()));
    assert!(out.contains("3 received"), "{out}");
    // The kernel learned our MAC through ARP.
    let neigh = rig.client(&["ip", "neigh", "show", APPLIANCE_IP]).unwrap();
    assert!(neigh.contains("lladdr"), "no ARP entry: {neigh}");
}

#[test]
fn curl_and_wget_download_exact_sizes_over_http() {
    if !require_root("curl_and_wget_download_exact_sizes_over_http") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let before = rig.metrics();
    for size in [0u64, 1, 1460, 100_000, 5_000_000] {
        let out = rig
            .client(&[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "--max-time",
                "30",
                "-w",
                "%{http_code} %{size_download}",
                &format!("http://{APPLIANCE_IP}/bytes/{size}"),
            ])
            .unwrap_or_else(|e| panic!("curl {size}: {e}\n{}", rig.log()));
        assert_eq!(out.trim(), format!("200 {size}"));
    }
    let out = rig
        .client(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{APPLIANCE_IP}/missing"),
        ])
        .unwrap();
    assert_eq!(out.trim(), "404");
    // wget with its own HTTP/1.1 client.
    let out = rig
        .client(&[
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{APPLIANCE_IP}/bytes/4096"),
        ])
        .unwrap_or_else(|e| panic!("wget: {e}"));
    assert_eq!(out.len(), 4096);
    let after = rig.metrics();
    let moved =
        metric(&after, "saps_port_tx_bytes_total") - metric(&before, "saps_port_tx_bytes_total");
    assert!(
        moved >= 5_100_000.0,
        "telemetry shows only {moved} bytes sent"
    );
}

#[test]
fn echo_returns_10_mib_byte_exact_through_socat_and_kernel_sockets() {
    if !require_root("echo_returns_10_mib_byte_exact_through_socat_and_kernel_sockets") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    // socat: a file through echo and back.
    let dir = std::env::temp_dir();
    let input = dir.join(format!("saps-echo-in-{}", std::process::id()));
    let output = dir.join(format!("saps-echo-out-{}", std::process::id()));
    let mut data = vec![0u8; 10 * 1024 * 1024];
    let mut x = 0x1234_5678u32;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(&input, &data).unwrap();
    // socat bidirectional with the file as stdin, the echo written to another file.
    rig.client(&[
        "sh",
        "-c",
        &format!(
            "socat -t 10 -T 30 - TCP:{APPLIANCE_IP}:7 < {} > {}",
            input.display(),
            output.display()
        ),
    ])
    .unwrap_or_else(|e| panic!("socat: {e}\n{}", rig.log()));
    let echoed = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    assert_eq!(echoed.len(), data.len(), "echo returned a different length");
    assert!(echoed == data, "echo returned different bytes");

    // Kernel sockets: writer and reader concurrently, hashed.
    let same = rig
        .in_client(|| echo_through_kernel_sockets(10 * 1024 * 1024, 7))
        .unwrap_or_else(|e| panic!("echo via kernel sockets: {e}\n{}", rig.log()));
    assert!(same, "echo via kernel sockets returned different bytes");
}

/// Writes `total` pattern bytes to echo while reading the echo back on another thread, both
/// hashed; true if what came back is what went out. Runs in the client namespace.
fn echo_through_kernel_sockets(total: usize, seed: u8) -> std::io::Result<bool> {
    let s = rig::connect(7)?;
    let mut w = s.try_clone()?;
    let writer = std::thread::spawn(move || {
        let h = write_pattern(&mut w, total, seed);
        w.shutdown(Shutdown::Write).ok();
        h
    });
    let mut r = s;
    let got = read_hash(&mut r)?;
    let sent = writer
        .join()
        .map_err(|_| std::io::Error::other("writer"))??;
    Ok(sent == got)
}

#[test]
fn bulk_download_from_source_and_upload_to_discard() {
    if !require_root("bulk_download_from_source_and_upload_to_discard") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let before = rig.metrics();
    let (down, up) = rig
        .in_client(|| {
            let down = download_checked_from_source(50_000_000)?;
            let mut d = rig::connect(9)?;
            let t0 = Instant::now();
            write_pattern(&mut d, 50_000_000, 3)?;
            d.shutdown(Shutdown::Write)?;
            let mut rest = Vec::new();
            d.read_to_end(&mut rest)?;
            let up = 50_000_000f64 / t0.elapsed().as_secs_f64();
            Ok((down, up))
        })
        .unwrap_or_else(|e| panic!("bulk: {e}\n{}", rig.log()));
    eprintln!(
        "bulk: download {:.0} Mb/s, upload {:.0} Mb/s",
        down * 8e-6,
        up * 8e-6
    );
    let after = rig.metrics();
    let rx =
        metric(&after, "saps_port_rx_bytes_total") - metric(&before, "saps_port_rx_bytes_total");
    let tx =
        metric(&after, "saps_port_tx_bytes_total") - metric(&before, "saps_port_tx_bytes_total");
    assert!(rx >= 50_000_000.0, "rx bytes in telemetry: {rx}");
    assert!(tx >= 50_000_000.0, "tx bytes in telemetry: {tx}");
}

/// Sends `count` datagrams of varied sizes to UDP echo and counts the exact echoes. Runs in the
/// client namespace.
fn udp_echo_round_trips(count: u32) -> std::io::Result<u32> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut ok = 0;
    let mut buf = [0u8; 2048];
    for i in 0..count {
        let msg = vec![(i % 251) as u8; 1 + (i as usize * 7) % 1400];
        sock.send_to(&msg, format!("{APPLIANCE_IP}:7"))?;
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if buf[..n] == msg[..] {
                ok += 1;
            }
        }
    }
    Ok(ok)
}

/// Reads `total` bytes from the `source` service (port 19), checking every byte against the
/// pattern; returns bytes per second. Runs in the client namespace.
fn download_checked_from_source(total: usize) -> std::io::Result<f64> {
    let mut s = rig::connect(19)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut expect = vec![0u8; buf.len()];
    let mut got = 0usize;
    let t0 = Instant::now();
    while got < total {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("source closed early"));
        }
        saps::services::fill_pattern(&mut expect[..n], got);
        if buf[..n] != expect[..n] {
            return Err(std::io::Error::other(format!(
                "source byte mismatch at {got}"
            )));
        }
        got += n;
    }
    Ok(got as f64 / t0.elapsed().as_secs_f64())
}

#[test]
fn gso_sends_bulk_as_large_segments_that_arrive_byte_exact() {
    if !require_root("gso_sends_bulk_as_large_segments_that_arrive_byte_exact") {
        return;
    }
    let rig = Rig::start("gso = true\n", "").expect("rig");
    let before = rig.metrics();
    let (down, echo_ok) = rig
        .in_client(|| {
            let down = download_checked_from_source(50_000_000)?;
            // Both directions at once through echo: data segments interleave with ACKs.
            Ok((down, echo_through_kernel_sockets(10 * 1024 * 1024, 9)?))
        })
        .unwrap_or_else(|e| panic!("gso bulk: {e}\n{}", rig.log()));
    assert!(
        echo_ok,
        "echo through the gso path returned different bytes"
    );
    // Frames that do not merge get their checksums completed on the way out: ICMP and UDP too
    // (the kernel drops them on receive otherwise).
    let ping = rig
        .client(&["ping", "-c", "3", "-i", "0.2", "-W", "2", APPLIANCE_IP])
        .unwrap_or_else(|e| panic!("ping through the gso path: {e}\n{}", rig.log()));
    assert!(ping.contains("3 received"), "{ping}");
    let answered = rig.in_client(|| udp_echo_round_trips(100)).unwrap();
    assert!(answered >= 97, "only {answered}/100 datagrams echoed");
    let after = rig.metrics();
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    let merged = delta("saps_port_tx_offload_frames_total");
    let frames = delta("saps_port_tx_packets_total");
    eprintln!(
        "gso: download {:.0} Mb/s, {merged} of {frames} frames sent in large segments",
        down * 8e-6
    );
    // A bulk download is almost all full-size in-sequence segments: most must have merged.
    assert!(merged > frames / 2.0, "{merged} of {frames} frames merged");
    assert_eq!(delta("saps_port_tx_drops_total"), 0.0);
}

#[test]
fn ab_keepalive_for_ten_seconds_has_zero_errors() {
    if !require_root("ab_keepalive_for_ten_seconds_has_zero_errors") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let out = rig
        .client(&[
            "ab",
            "-k",
            "-q",
            "-t",
            "10",
            "-n",
            "10000000",
            "-c",
            "8",
            "-s",
            "10",
            &format!("http://{APPLIANCE_IP}/bytes/100"),
        ])
        .unwrap_or_else(|e| panic!("ab: {e}\n{}", rig.log()));
    let field = |name: &str| -> f64 {
        out.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| {
                l.split_whitespace()
                    .rev()
                    .find_map(|w| w.parse::<f64>().ok())
            })
            .unwrap_or(-1.0)
    };
    let complete = out
        .lines()
        .find(|l| l.starts_with("Complete requests:"))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let failed = out
        .lines()
        .find(|l| l.starts_with("Failed requests:"))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .unwrap_or(-1.0);
    let non2xx = field("Non-2xx responses:");
    eprintln!(
        "ab: {complete} requests, {} req/s",
        field("Requests per second:")
    );
    assert!(complete > 1000.0, "too few requests completed:\n{out}");
    assert_eq!(failed, 0.0, "{out}");
    assert!(non2xx <= 0.0, "{out}");
}

#[test]
fn udp_echo_answers_datagrams() {
    if !require_root("udp_echo_answers_datagrams") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let answered = rig.in_client(|| udp_echo_round_trips(200)).unwrap();
    assert!(answered >= 195, "only {answered}/200 datagrams echoed");
    // A closed UDP port answers ICMP port unreachable: the kernel reports ECONNREFUSED.
    let refused = rig
        .in_client(|| {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
            sock.connect(format!("{APPLIANCE_IP}:9999"))?;
            sock.set_read_timeout(Some(Duration::from_secs(2)))?;
            sock.send(b"x")?;
            let mut b = [0u8; 8];
            Ok(matches!(sock.recv(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused))
        })
        .unwrap();
    assert!(refused, "no ICMP port unreachable for a closed port");
}

#[test]
fn closed_tcp_port_is_refused_with_rst() {
    if !require_root("closed_tcp_port_is_refused_with_rst") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let err = rig
        .in_client(|| Ok(rig::connect(4444).err().map(|e| e.kind())))
        .unwrap();
    assert_eq!(err, Some(std::io::ErrorKind::ConnectionRefused));
}

#[test]
fn appliance_stops_cleanly_on_sigterm() {
    if !require_root("appliance_stops_cleanly_on_sigterm") {
        return;
    }
    let mut rig = Rig::start("", "").expect("rig");
    let mut w = None;
    // Leave a connection open: shutdown must not hang on it.
    if let Ok(s) = rig.in_client(|| rig::connect(7)) {
        w = Some(s);
    }
    assert!(
        rig.stop().unwrap(),
        "appliance did not exit cleanly:\n{}",
        rig.log()
    );
    drop(w.map(|mut s| s.write_all(b"x")));
}
