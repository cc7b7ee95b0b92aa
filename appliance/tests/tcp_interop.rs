//! The saps TCP stack against the Linux kernel's TCP as the peer: large transfers both ways,
//! under injected loss, reordering and duplication, window scaling, SACK, many connections, resets
//! and zero windows. Needs root (CI runs it as root).

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::require_root;
use common::rig::{self, metric, metric_labelled, read_hash, write_pattern, Rig, APPLIANCE_IP};

/// `total` bytes through echo, written and read concurrently by kernel sockets; returns seconds.
fn echo_transfer(rig: &Rig, total: usize) -> f64 {
    let (sent, got, secs) = rig
        .in_client(move || {
            let t0 = Instant::now();
            let s = rig::connect(7)?;
            let mut w = s.try_clone()?;
            let writer = std::thread::spawn(move || {
                let h = write_pattern(&mut w, total, 11);
                w.shutdown(Shutdown::Write).ok();
                h
            });
            let mut r = s;
            let got = read_hash(&mut r)?;
            let sent = writer
                .join()
                .map_err(|_| std::io::Error::other("writer panicked"))??;
            Ok((sent, got, t0.elapsed().as_secs_f64()))
        })
        .unwrap_or_else(|e| panic!("echo transfer: {e}\n{}", rig.log()));
    assert_eq!(sent.1, total as u64);
    assert_eq!(sent, got, "echoed stream differs from what was sent");
    secs
}

#[test]
fn hundred_megabytes_each_way_byte_exact() {
    if !require_root("hundred_megabytes_each_way_byte_exact") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let secs = echo_transfer(&rig, 100 * 1000 * 1000);
    eprintln!("100 MB each way through echo in {secs:.2} s");
}

#[test]
fn hundred_megabytes_each_way_under_loss_reordering_and_duplication() {
    if !require_root("hundred_megabytes_each_way_under_loss_reordering_and_duplication") {
        return;
    }
    let rig = Rig::start(
        "faults = { loss = 0.02, reorder = 0.01, duplicate = 0.01, seed = 7 }",
        "",
    )
    .expect("rig");
    let before = rig.metrics();
    let secs = echo_transfer(&rig, 100 * 1000 * 1000);
    let after = rig.metrics();
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    let retrans = delta("saps_tcp_retransmitted_segments_total");
    let sack_recoveries = delta("saps_tcp_sack_recoveries_total");
    let sack_sent = delta("saps_tcp_sack_blocks_sent_total");
    let sack_received = delta("saps_tcp_sack_blocks_received_total");
    let rtos = delta("saps_tcp_rto_expiries_total");
    eprintln!(
        "100 MB each way under 2% loss in {secs:.2} s: {retrans} retransmits, {sack_recoveries} SACK recoveries, {rtos} RTOs, {sack_sent} SACK blocks sent"
    );
    assert!(retrans > 0.0, "no retransmissions under 2% loss?");
    assert!(sack_recoveries > 0.0, "SACK was not used in recovery");
    assert!(sack_sent > 0.0, "no SACK blocks sent for out-of-order data");
    assert!(
        sack_received > 0.0,
        "Linux sent no SACK blocks: SACK not negotiated"
    );
}

/// The same transfer with the appliance on BBR: the paced, rate-sampled send path against
/// Linux under loss, reordering and duplication. Every byte comes back, SACK does the repairs,
/// and the connection table shows the pacing rate while it runs.
#[test]
fn bbr_hundred_megabytes_each_way_under_loss_reordering_and_duplication() {
    if !require_root("bbr_hundred_megabytes_each_way_under_loss_reordering_and_duplication") {
        return;
    }
    let rig = Rig::start(
        "faults = { loss = 0.02, reorder = 0.01, duplicate = 0.01, seed = 7 }",
        "[tcp]\ncongestion = \"bbr\"",
    )
    .expect("rig");
    let before = rig.metrics();
    // Watch the connection table while the transfer runs.
    let (paced, done) = (AtomicBool::new(false), AtomicBool::new(false));
    let secs = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Relaxed) && !paced.load(Relaxed) {
                if rig.connections().contains("pacing:") {
                    paced.store(true, Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let secs = echo_transfer(&rig, 100 * 1000 * 1000);
        done.store(true, Relaxed);
        secs
    });
    let after = rig.metrics();
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    let retrans = delta("saps_tcp_retransmitted_segments_total");
    let sack_recoveries = delta("saps_tcp_sack_recoveries_total");
    let rtos = delta("saps_tcp_rto_expiries_total");
    eprintln!(
        "BBR: 100 MB each way under 2% loss in {secs:.2} s: {retrans} retransmits, {sack_recoveries} SACK recoveries, {rtos} RTOs"
    );
    assert!(
        paced.into_inner(),
        "no connection showed a pacing rate:\n{}",
        rig.log()
    );
    assert!(retrans > 0.0, "no retransmissions under 2% loss?");
    assert!(sack_recoveries > 0.0, "SACK was not used in recovery");
}

/// `ss -tino` output for connections to the appliance, from the client namespace (iproute2 6.1
/// prints the `ts` and `sack` flags only with `-o`).
fn ss(rig: &Rig) -> String {
    rig.client(&["ss", "-tino", "dst", APPLIANCE_IP])
        .unwrap_or_default()
}

#[test]
fn options_negotiated_with_linux_window_scaling_and_timestamps() {
    if !require_root("options_negotiated_with_linux_window_scaling_and_timestamps") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    // Hold an upload to discard open while ss looks at it.
    let handle = rig
        .cl
        .spawn(|| {
            let mut s = rig::connect(9)?;
            write_pattern(&mut s, 20_000_000, 1)?;
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let info = ss(&rig);
    let ours = rig.connections();
    handle.join().unwrap().unwrap();
    // Our side: the connection to discard, established, with every option negotiated.
    let row = ours
        .lines()
        .find(|l| l.contains(&format!("{APPLIANCE_IP}:9 ")))
        .unwrap_or_else(|| panic!("connection missing from /connections:\n{ours}"));
    assert!(row.contains(" established "), "{row}");
    assert!(
        row.contains("ts,sack,wscale:"),
        "options not negotiated: {row}"
    );
    // The kernel's view: timestamps and SACK on, and an MSS of 1448 (1460 minus the 12-byte
    // timestamp option). SACK's use in recovery is asserted by the loss test.
    let flags: Vec<&str> = info.split_whitespace().collect();
    assert!(flags.contains(&"ts"), "timestamps not negotiated:\n{info}");
    assert!(flags.contains(&"sack"), "SACK not negotiated:\n{info}");
    assert!(
        info.contains(" mss:1448 "),
        "timestamps not negotiated:\n{info}"
    );
    let wscale = info
        .split_whitespace()
        .find_map(|w| w.strip_prefix("wscale:"))
        .unwrap_or_else(|| panic!("no window scaling:\n{info}"));
    let (snd, _rcv) = wscale.split_once(',').unwrap();
    assert!(
        snd.parse::<u8>().unwrap() > 0,
        "peer's window scale is 0:\n{info}"
    );
    let snd_wnd: u64 = info
        .split_whitespace()
        .find_map(|w| w.strip_prefix("snd_wnd:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no snd_wnd in ss output:\n{info}"));
    assert!(
        snd_wnd > 65_535,
        "our advertised window never exceeded 64 KB: {snd_wnd}\n{info}"
    );
}

#[test]
fn thousand_concurrent_connections_served_and_closed() {
    if !require_root("thousand_concurrent_connections_served_and_closed") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let ok = rig
        .in_client(|| {
            let mut conns = Vec::new();
            for i in 0..1000u32 {
                let mut s = rig::connect(7)?;
                s.write_all(&i.to_be_bytes())?;
                conns.push(s);
            }
            let mut ok = 0;
            for (i, s) in conns.iter_mut().enumerate() {
                let mut b = [0u8; 4];
                s.read_exact(&mut b)?;
                if b == (i as u32).to_be_bytes() {
                    ok += 1;
                }
            }
            for s in &conns {
                s.shutdown(Shutdown::Write)?;
            }
            for s in conns.iter_mut() {
                let mut rest = Vec::new();
                s.read_to_end(&mut rest)?;
            }
            Ok(ok)
        })
        .unwrap_or_else(|e| panic!("1000 connections: {e}\n{}", rig.log()));
    assert_eq!(ok, 1000);
    // Every connection ends: the appliance closes passively, so nothing lingers in TIME_WAIT.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = rig.metrics();
        let open: f64 = [
            "established",
            "close_wait",
            "last_ack",
            "fin_wait1",
            "fin_wait2",
            "syn_received",
        ]
        .iter()
        .map(|s| metric_labelled(&m, "saps_tcp_connections", &format!("state=\"{s}\"")))
        .sum();
        if open == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections still open:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn reset_from_linux_mid_transfer_frees_the_connection() {
    if !require_root("reset_from_linux_mid_transfer_frees_the_connection") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let before = rig.metrics();
    rig.in_client(|| {
        let mut s = rig::connect(19)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        while got < 5_000_000 {
            got += s.read(&mut buf)?;
        }
        // SO_LINGER 0 turns close into an abortive RST.
        socket_linger_zero(&s);
        drop(s);
        Ok(())
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = rig.metrics();
        let established = metric_labelled(&m, "saps_tcp_connections", "state=\"established\"");
        let resets = metric(&m, "saps_tcp_resets_received_total")
            - metric(&before, "saps_tcp_resets_received_total");
        if established == 0.0 && resets >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connection not reset: {established} established, {resets} resets"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn socket_linger_zero(s: &std::net::TcpStream) {
    // std has no SO_LINGER setter on stable; use the appliance's OS module, which has one.
    saps::os::set_linger_zero(s).expect("SO_LINGER");
}

#[test]
fn linux_peer_that_stops_reading_gets_persist_probes_then_resumes() {
    if !require_root("linux_peer_that_stops_reading_gets_persist_probes_then_resumes") {
        return;
    }
    let rig = Rig::start("", "").expect("rig");
    let before = rig.metrics();
    let got = rig
        .in_client(|| {
            let mut s = rig::connect(19)?;
            // Small receive buffer so the window closes quickly; then do not read for a while.
            std::thread::sleep(Duration::from_secs(4));
            let mut buf = vec![0u8; 256 * 1024];
            let mut expect = vec![0u8; 256 * 1024];
            let mut got = 0usize;
            while got < 20_000_000 {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::Error::other("closed"));
                }
                saps::services::fill_pattern(&mut expect[..n], got);
                if buf[..n] != expect[..n] {
                    return Err(std::io::Error::other(format!("mismatch at {got}")));
                }
                got += n;
            }
            Ok(got)
        })
        .unwrap_or_else(|e| panic!("zero-window test: {e}\n{}", rig.log()));
    assert!(got >= 20_000_000);
    let after = rig.metrics();
    let probes = metric(&after, "saps_tcp_window_probes_total")
        - metric(&before, "saps_tcp_window_probes_total");
    assert!(
        probes >= 1.0,
        "no zero-window probes were sent while the peer did not read"
    );
}
