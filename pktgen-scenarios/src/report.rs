//! Reports: one Markdown file per run, with SVG plots drawn like the paper's figures
//! (time/sequence traces of the foreground transfer, per-stream throughput over time, Jain's
//! index over time, bandwidth against transfer size).
//!
//! The SVG is written by hand rather than with a plotting crate: the plots are four kinds of
//! x/y chart with lines or dots, which take ~150 lines here, while plotters (even SVG-only)
//! adds a dependency tree and build time to every CI run on a 2-core machine. Text in the SVGs
//! uses the viewer's default sans-serif font, so no font files are needed.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::analysis;
use crate::delay_router::{Direction, SegmentRecord};
use crate::generators::SweepPoint;
use crate::scenario::{Outcome, RunResult, Summary, TargetKind, TargetRun, Workload};

/// Colours per target, stable across plots (off red, paper orange, adaptive green, NAT blue).
fn color(t: TargetKind) -> &'static str {
    match t {
        TargetKind::SapsOff => "#d62728",
        TargetKind::SapsPaper => "#ff7f0e",
        TargetKind::SapsAdaptive => "#2ca02c",
        TargetKind::LinuxNat => "#1f77b4",
    }
}

const STREAM_COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn mbps(bps: f64) -> String {
    format!("{:.1}", bps / 1e6)
}

/// One progress-line summary of a target's headline numbers (empty when there are none).
pub fn summary_line(s: &Summary) -> String {
    let mut out = String::new();
    if let Some(f) = s.fct {
        let _ = write!(out, ", foreground FCT {}", ms(f));
    }
    if let Some(h) = s.handshake {
        let _ = write!(out, ", handshake {}", ms(h));
    }
    if let Some(j) = s.jain_min {
        let _ = write!(out, ", Jain min {j:.3}");
    }
    if let Some(g) = s.goodput_bps {
        let _ = write!(out, ", goodput {} Mb/s", mbps(g));
    }
    if let Some(r) = s.rtt {
        let _ = write!(out, ", RTT avg {} us p99 {} us", us(r.mean), us(r.p99));
    }
    out
}

/// Write `report.md` and the plots of `r` into `dir`; returns the report's path.
pub fn write(r: &RunResult, dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = &r.scenario.name;
    let mut plots: Vec<(String, String)> = Vec::new(); // (file name, svg)
    let mut md = String::new();
    let sc = &r.scenario;
    let _ = writeln!(
        md,
        "# saps-pktgen: {name}{} (paper {})\n",
        if sc.quick { " --quick" } else { "" },
        sc.paper
    );
    let _ = writeln!(md, "{}\n", sc.description);
    let t = &sc.testbed;
    let queue = match t.tx_ring {
        None => "saps: line-rate emulation, TX ring 1024 slots; Linux NAT: tbf, 1000-packet queue"
            .to_string(),
        Some(q) => {
            format!(
                "saps: line-rate emulation, TX ring {q} slots; Linux NAT: tbf, {q}-packet queue"
            )
        }
    };
    let _ = writeln!(
        md,
        "Testbed: delay router {} ms each way, bottleneck {} Mb/s ({queue}), router loss {}{}. \
         Run took {:.1} s.\n",
        t.one_way_delay_ms,
        t.rate_mbps,
        t.loss,
        match t.loss_to_server {
            Some(l) => format!(" towards the client, {l} towards the target"),
            None => String::new(),
        } + &match &t.linux_congestion {
            Some(cc) => format!("; Linux servers' congestion control {cc}"),
            None => String::new(),
        } + &match &t.saps_congestion {
            Some(cc) => format!("; saps's congestion control {cc} (`[tcp] congestion`)"),
            None => String::new(),
        },
        r.elapsed.as_secs_f64()
    );
    let _ = writeln!(md, "Workload: `{:?}`\n", sc.workload);

    match &sc.workload {
        Workload::PingPong { .. } => ping_pong_section(r, &mut md),
        Workload::SizeSweep { .. } if !sc.sack.is_empty() => sack_section(r, &mut md),
        Workload::SizeSweep { .. } => sweep_section(r, &mut md, &mut plots),
        Workload::Foreground { .. } => foreground_section(r, &mut md, &mut plots),
        Workload::Fairness { .. } => fairness_section(r, &mut md, &mut plots),
        Workload::Services { .. } => services_section(r, &mut md),
    }
    // The issue's cross-target checks compare one run per target; SACK variants are compared
    // within each target instead (above).
    if sc.sack.is_empty() {
        checks_section(r, &mut md);
    }

    let _ = writeln!(
        md,
        "\n## Runs\n\nDelay router counters per direction (to server / to client): frames forwarded, \
         dropped (configured loss), queue drops, RX ring drops, worst lateness against the \
         configured delay.\n\n| target | wall time | errors | forwarded | dropped | queue drops | ring drops | late max |\n|---|---|---|---|---|---|---|---|"
    );
    for t in &r.targets {
        let errors = if t.errors.is_empty() {
            "none".to_string()
        } else {
            t.errors.join("; ").replace('|', "/")
        };
        let _ = write!(
            md,
            "| {} | {:.1} s | {errors} |",
            t.label(),
            t.elapsed.as_secs_f64()
        );
        match &t.router {
            Some(rs) => {
                let (a, b) = (&rs.to_server, &rs.to_client);
                let _ = writeln!(
                    md,
                    " {} / {} | {} / {} | {} / {} | {} / {} | {} / {} |",
                    a.forwarded,
                    b.forwarded,
                    a.dropped,
                    b.dropped,
                    a.queue_drops,
                    b.queue_drops,
                    a.rx_ring_drops,
                    b.rx_ring_drops,
                    ms(a.late_max),
                    ms(b.late_max)
                );
            }
            None => {
                let _ = writeln!(md, " – | – | – | – | – |");
            }
        }
        if let Some(m) = &t.saps_metrics {
            let file = format!("{name}-{}-metrics.txt", t.label().replace([' ', '='], "-"));
            std::fs::write(dir.join(&file), m)?;
        }
    }
    for (file, svg) in &plots {
        std::fs::write(dir.join(file), svg)?;
    }
    let path = dir.join(format!("{name}.md"));
    std::fs::write(&path, md)?;
    Ok(path)
}

fn ping_pong_section(r: &RunResult, md: &mut String) {
    let added = Duration::from_secs_f64(r.scenario.testbed.one_way_delay_ms * 2.0 / 1000.0);
    let extra = if added.is_zero() {
        String::new()
    } else {
        format!(" avg above the added {} |", ms(added))
    };
    let _ = writeln!(
        md,
        "## 4-byte round trips (µs)\n\n| target | count | min | avg | p50 | p99 | max |{extra}\n|---|---|---|---|---|---|---|{}",
        if added.is_zero() { "" } else { "---|" }
    );
    for t in &r.targets {
        if let Some(l) = t.summary().rtt {
            let _ = write!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                t.target,
                l.count,
                us(l.min),
                us(l.mean),
                us(l.p50),
                us(l.p99),
                us(l.max),
            );
            if !added.is_zero() {
                let _ = write!(md, " {} |", us(l.mean.saturating_sub(added)));
            }
            let _ = writeln!(md);
        }
    }
    let _ = writeln!(
        md,
        "| paper SAPS (no added delay, 5 runs) | | 165 | 217.6 | | | 243 |\n| paper NAT (no added delay, 5 runs) | | 210 | 255.6 | | | 334 |"
    );
}

/// Goodputs of the repetitions of one size, in bits/s.
fn goodputs(p: &SweepPoint) -> Vec<f64> {
    p.transfer
        .iter()
        .map(|d| analysis::bps(p.size, *d))
        .collect()
}

fn median_f(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// SACK on vs off per target: goodput per variant (median, min, max over the repetitions),
/// the evidence that the variant was what it claims (SYN-ACKs offering SACK, ACKs carrying
/// SACK blocks, saps's SACK recoveries), and the on/off ratio of the medians per target.
fn sack_section(r: &RunResult, md: &mut String) {
    let _ = writeln!(
        md,
        "## SACK vs no SACK: goodput per download (Mb/s)\n\n\
         Goodput = bytes / (request sent .. last byte read), one fresh connection per download. \
         Evidence columns, from the delay router: SYN-ACKs towards the client that offer SACK, \
         and client ACKs that carry SACK blocks; from the sender's own counters (saps's /metrics, \
         the Linux servers' /proc/net/netstat TCPSackRecovery / TCPRenoRecovery / TCPTimeouts and \
         /proc/net/snmp RetransSegs): loss recoveries driven by SACK / by duplicate ACKs \
         (NewReno) / retransmission timeouts, and retransmitted segments; for Linux also the \
         servers' `net.ipv4.tcp_sack` and `net.ipv4.tcp_congestion_control` read back. The \
         sender's retransmission timeouts are also read after each download, so the last column \
         says which downloads had them.\n\n\
         | run | size (bytes) | downloads | median | min | max | frames lost (data) | SYN-ACKs offering SACK | ACKs with SACK blocks | sender recoveries SACK / NewReno / RTO; retransmits | Linux tcp_sack (congestion control) | every download, in order | sender RTOs per download, in order |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for t in &r.targets {
        let Some(Outcome::Sweep(points)) = &t.outcome else {
            continue;
        };
        for (point_index, p) in points.iter().enumerate() {
            let g = goodputs(p);
            let min = g.iter().copied().fold(f64::INFINITY, f64::min);
            let max = g.iter().copied().fold(0.0, f64::max);
            let (lost, offers, blocks) = match &t.router {
                Some(rs) => (
                    rs.to_client.dropped.to_string(),
                    rs.to_client.sack_permitted_syns.to_string(),
                    rs.to_server.sack_block_segments.to_string(),
                ),
                None => ("–".into(), "–".into(), "–".into()),
            };
            let c = |n: &str| t.saps_counter(&format!("saps_tcp_{n}_total"));
            let l = |n: &str| t.linux_counter(n);
            let recoveries = match (
                c("sack_recoveries"),
                c("fast_recoveries"),
                c("rto_expiries"),
                c("retransmitted_segments"),
            ) {
                (Some(a), Some(b), Some(d), Some(e)) => format!("{a} / {b} / {d}; {e}"),
                _ => match (
                    l("TCPSackRecovery"),
                    l("TCPRenoRecovery"),
                    l("TCPTimeouts"),
                    l("RetransSegs"),
                ) {
                    (Some(a), Some(b), Some(d), Some(e)) => format!("{a} / {b} / {d}; {e}"),
                    _ => "–".into(),
                },
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {lost} | {offers} | {blocks} | {recoveries} | {} | {} | {} |",
                t.label(),
                p.size,
                g.len(),
                median_f(&g).map(mbps).unwrap_or_else(|| "–".into()),
                if g.is_empty() {
                    "–".into()
                } else {
                    mbps(min)
                },
                if g.is_empty() {
                    "–".into()
                } else {
                    mbps(max)
                },
                match (t.linux_tcp_sack, &t.linux_congestion) {
                    (Some(v), Some(cc)) => format!("{} ({cc})", u8::from(v)),
                    (Some(v), None) => u8::from(v).to_string(),
                    _ => "–".into(),
                },
                g.iter().map(|b| mbps(*b)).collect::<Vec<_>>().join(" "),
                match t.timeouts_per_download.get(point_index) {
                    Some(v) if !v.is_empty() => v
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => "–".into(),
                },
            );
        }
    }
    let _ = writeln!(
        md,
        "\n### SACK gain per stack (median with SACK / median without)\n\n| target | size (bytes) | SACK on | SACK off | ratio |\n|---|---|---|---|---|"
    );
    let mut seen = Vec::new();
    for t in &r.targets {
        if seen.contains(&t.target) {
            continue;
        }
        seen.push(t.target);
        let median_of = |sack: bool| -> Vec<(u64, f64)> {
            match r
                .variant(t.target, Some(sack))
                .and_then(|v| v.outcome.as_ref())
            {
                Some(Outcome::Sweep(points)) => points
                    .iter()
                    .filter_map(|p| median_f(&goodputs(p)).map(|m| (p.size, m)))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let (on, off) = (median_of(true), median_of(false));
        for (size, a) in &on {
            if let Some((_, b)) = off.iter().find(|(s, _)| s == size) {
                let _ = writeln!(
                    md,
                    "| {} | {size} | {} | {} | {} |",
                    t.target,
                    mbps(*a),
                    mbps(*b),
                    if *b > 0.0 {
                        format!("{:.2}", a / b)
                    } else {
                        "–".into()
                    }
                );
            }
        }
    }
}

fn sweep_section(r: &RunResult, md: &mut String, plots: &mut Vec<(String, String)>) {
    let Workload::SizeSweep { sizes, .. } = &r.scenario.workload else {
        return;
    };
    let _ = write!(
        md,
        "## Bandwidth against transfer size (Mb/s, median)\n\n| size (bytes) |"
    );
    for t in &r.targets {
        let _ = write!(md, " {} |", t.target);
    }
    let _ = write!(md, "\n|---|");
    for _ in &r.targets {
        let _ = write!(md, "---|");
    }
    let _ = writeln!(md);
    let mut series = Vec::new();
    for t in &r.targets {
        let mut pts = Vec::new();
        if let Some(Outcome::Sweep(points)) = &t.outcome {
            for p in points {
                if let Some(d) = analysis::median(&p.transfer) {
                    pts.push((p.size as f64, analysis::bps(p.size, d) / 1e6));
                }
            }
        }
        series.push(Series {
            label: t.target.to_string(),
            color: color(t.target),
            points: pts,
            dots: true,
            line: true,
        });
    }
    for (i, size) in sizes.iter().enumerate() {
        let _ = write!(md, "| {size} |");
        for s in &series {
            match s.points.iter().find(|p| p.0 == *size as f64) {
                Some(p) => {
                    let _ = write!(md, " {:.1} |", p.1);
                }
                None => {
                    let _ = write!(md, " – |");
                }
            }
        }
        let _ = i;
        let _ = writeln!(md);
    }
    let file = format!("{}-by-size.svg", r.scenario.name);
    let svg = chart(&Chart {
        title: "Bandwidth against transfer size (Figure 7)",
        x_label: "transfer size (bytes, log scale)",
        y_label: "Mb/s",
        log_x: true,
        series: &series,
    });
    let _ = writeln!(md, "\n![bandwidth]({file})");
    plots.push((file, svg));
}

fn foreground_section(r: &RunResult, md: &mut String, plots: &mut Vec<(String, String)>) {
    let _ = writeln!(
        md,
        "## 100 KB foreground transfer under two background streams\n\n\
         FCT = connect to last byte; handshake = connect() call to established (the delay a new \
         connection observes through the queue).\n\n\
         | target | transfers | FCT median | FCT min | FCT max | handshake median | background goodput (Mb/s) |\n|---|---|---|---|---|---|---|"
    );
    let mut traces = Vec::new();
    for t in &r.targets {
        let Some(Outcome::Foreground(f)) = &t.outcome else {
            continue;
        };
        let s = t.summary();
        let fcts: Vec<Duration> = f.foreground.iter().filter_map(|x| x.completion()).collect();
        let bg: f64 = f.background.iter().map(|b| b.goodput_bps()).sum();
        let _ = writeln!(
            md,
            "| {} | {}/{} | {} | {} | {} | {} | {} |",
            t.target,
            fcts.len(),
            f.foreground.len(),
            s.fct.map(ms).unwrap_or_else(|| "–".into()),
            fcts.iter()
                .min()
                .copied()
                .map(ms)
                .unwrap_or_else(|| "–".into()),
            fcts.iter()
                .max()
                .copied()
                .map(ms)
                .unwrap_or_else(|| "–".into()),
            s.handshake.map(ms).unwrap_or_else(|| "–".into()),
            mbps(bg)
        );
        if let Some(series) = trace_series(&f.trace, color(t.target)) {
            traces.push((t.target, series));
        }
    }
    let _ = writeln!(
        md,
        "| paper SAPS (limit on) | | | | | 2.5 ms observed delay | |\n| paper NAT | | | | | 6 ms observed delay | |\n| paper SAPS (limit off) | | 2.5x NAT | | | 20 ms observed delay | |"
    );
    if !traces.is_empty() {
        let _ = writeln!(
            md,
            "\nTime/sequence traces of the first foreground transfer, as the delay router saw it \
             (dots: data segments towards the client; grey line: the client's ACKs)."
        );
    }
    for (target, series) in traces {
        let file = format!("{}-{target}-trace.svg", r.scenario.name);
        let title = format!("100 KB foreground transfer, {target}: time/sequence (Figures 8-9)");
        let svg = chart(&Chart {
            title: &title,
            x_label: "ms since the client's SYN",
            y_label: "sequence (KB)",
            log_x: false,
            series: &series,
        });
        let _ = writeln!(md, "\n![{target} time/sequence trace]({file})");
        plots.push((file, svg));
    }
}

/// A time/sequence trace of one connection: data segments towards the client as dots and the
/// client's cumulative ACKs as a line; time from the connection's first segment (the SYN),
/// sequence relative to the target's ISN + 1, in KB. `None` if there are no data segments.
fn trace_series(trace: &[SegmentRecord], color: &'static str) -> Option<Vec<Series>> {
    let t0 = trace.first()?.at;
    let data: Vec<&SegmentRecord> = trace
        .iter()
        .filter(|s| s.direction == Direction::ToClient && s.len > 0)
        .collect();
    let isn = trace
        .iter()
        .find(|s| s.direction == Direction::ToClient && s.flags & 0x02 != 0)
        .map(|s| s.seq.wrapping_add(1));
    let base = isn.or_else(|| data.first().map(|s| s.seq))?;
    let rel = |seq: u32| f64::from(seq.wrapping_sub(base)) / 1024.0;
    let at = |s: &SegmentRecord| (s.at.saturating_sub(t0)).as_secs_f64() * 1e3;
    if data.is_empty() {
        return None;
    }
    let acks: Vec<(f64, f64)> = trace
        .iter()
        .filter(|s| s.direction == Direction::ToServer && s.flags & 0x10 != 0)
        // Only ACKs inside the data's sequence range (the handshake ACK is at 0 too).
        .filter(|s| s.ack.wrapping_sub(base) <= 1 << 30)
        .map(|s| (at(s), rel(s.ack)))
        .collect();
    Some(vec![
        Series {
            label: "data".into(),
            color,
            points: data.iter().map(|s| (at(s), rel(s.seq))).collect(),
            dots: true,
            line: false,
        },
        Series {
            label: "client ACK".into(),
            color: "#888888",
            points: acks,
            dots: false,
            line: true,
        },
    ])
}

fn fairness_section(r: &RunResult, md: &mut String, plots: &mut Vec<(String, String)>) {
    let _ = writeln!(
        md,
        "## Streams started together\n\n| target | aggregate goodput (Mb/s) | Jain min after warm-up | Jain mean | windows | stream completion times |\n|---|---|---|---|---|---|"
    );
    let mut jain_series = Vec::new();
    let mut images = Vec::new();
    for t in &r.targets {
        let Some(Outcome::Fairness(f)) = &t.outcome else {
            continue;
        };
        let s = t.summary();
        let fcts: Vec<String> = f
            .streams
            .iter()
            .map(|x| x.completion().map(ms).unwrap_or_else(|| "failed".into()))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            t.target,
            s.goodput_bps.map(mbps).unwrap_or_else(|| "–".into()),
            s.jain_min
                .map(|j| format!("{j:.3}"))
                .unwrap_or_else(|| "–".into()),
            s.jain_mean
                .map(|j| format!("{j:.3}"))
                .unwrap_or_else(|| "–".into()),
            f.jain.len(),
            fcts.join(", ")
        );
        jain_series.push(Series {
            label: t.target.to_string(),
            color: color(t.target),
            points: f
                .jain
                .iter()
                .map(|(at, j)| (at.as_secs_f64(), *j))
                .collect(),
            dots: true,
            line: true,
        });
        // Per-stream goodput over time (Figures 10-11), one plot per target.
        let streams: Vec<Series> = f
            .streams
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let g = analysis::goodput_series(&st.buckets.bytes, st.buckets.width, f.window);
                Series {
                    label: format!("stream {i}"),
                    color: STREAM_COLORS[i % STREAM_COLORS.len()],
                    points: g
                        .iter()
                        .enumerate()
                        .map(|(k, v)| ((f.window * k as u32).as_secs_f64(), v / 1e6))
                        .collect(),
                    dots: false,
                    line: true,
                }
            })
            .collect();
        let file = format!("{}-{}-throughput.svg", r.scenario.name, t.target);
        let title = format!(
            "Per-stream goodput per {} ms, {} (Figures 10-11)",
            f.window.as_millis(),
            t.target
        );
        plots.push((
            file.clone(),
            chart(&Chart {
                title: &title,
                x_label: "seconds since start",
                y_label: "Mb/s",
                log_x: false,
                series: &streams,
            }),
        ));
        images.push(format!("![{} per-stream goodput]({file})", t.target));
    }
    for i in images {
        let _ = writeln!(md, "\n{i}");
    }
    let _ = writeln!(
        md,
        "\nPaper: with the queue limit, equal shares from the start; without it, unequal; NAT unequal for about 1.6 s until a loss on the fastest stream; all fill 1 Gb/s."
    );
    if !jain_series.is_empty() {
        let file = format!("{}-jain.svg", r.scenario.name);
        plots.push((
            file.clone(),
            chart(&Chart {
                title: "Jain's index per window (Figure 12)",
                x_label: "seconds since start",
                y_label: "Jain's index",
                log_x: false,
                series: &jain_series,
            }),
        ));
        let _ = writeln!(md, "\n![Jain's index]({file})");
    }
}

fn services_section(r: &RunResult, md: &mut String) {
    let _ = writeln!(
        md,
        "## Services through the testbed\n\n\
         A generator that could not keep up with its requested rate says `behind` (achieved vs \
         requested).\n\n\
         | target | upload (Mb/s) | connections ok/asked | conn/s achieved (asked) | connect p50 / p99 | keep-alive req/s | request p50 / p99 | UDP sent / echoed (loss) | UDP pps achieved (asked) | UDP RTT p50 / p99 |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    );
    let pct = |l: Option<analysis::Latency>| {
        l.map(|l| format!("{} / {}", ms(l.p50), ms(l.p99)))
            .unwrap_or_else(|| "–".into())
    };
    for t in &r.targets {
        let Some(Outcome::Services(sv)) = &t.outcome else {
            continue;
        };
        let c = &sv.connections;
        let k = &sv.keep_alive;
        let u = &sv.udp;
        let behind = |b: bool| if b { " **behind**" } else { "" };
        let _ = writeln!(
            md,
            "| {} | {} | {}/{} | {:.0} ({}){} | {} | {:.0} | {} | {} / {} ({:.2}%) | {:.0} ({}){} | {} |",
            t.target,
            mbps(sv.upload.goodput_bps()),
            c.completed,
            c.requested,
            c.achieved_rate,
            if c.requested_rate > 0.0 {
                format!("{:.0}", c.requested_rate)
            } else {
                "max".into()
            },
            behind(c.fell_behind),
            pct(analysis::latency(&c.connect)),
            k.requests as f64 / k.elapsed.as_secs_f64().max(1e-9),
            pct(analysis::latency(&k.latency)),
            u.sent,
            u.echoed,
            u.loss() * 100.0,
            u.achieved_pps,
            if u.requested_pps > 0.0 {
                format!("{:.0}", u.requested_pps)
            } else {
                "max".into()
            },
            behind(u.fell_behind),
            pct(analysis::latency(&u.rtt)),
        );
    }
}

/// The issue's targets, checked where this run has the numbers.
fn checks_section(r: &RunResult, md: &mut String) {
    let get = |t: TargetKind| r.target(t).map(TargetRun::summary);
    let (off, adaptive, nat) = (
        get(TargetKind::SapsOff),
        get(TargetKind::SapsAdaptive),
        get(TargetKind::LinuxNat),
    );
    let mut rows = Vec::new();
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let secs = |s: &Option<Summary>| s.and_then(|s| s.fct).map(|d| d.as_secs_f64());
    if let Some(x) = ratio(secs(&adaptive), secs(&nat)) {
        rows.push(("foreground FCT adaptive / linux_nat", x, "<= 0.5", x <= 0.5));
    }
    if let Some(x) = ratio(secs(&adaptive), secs(&off)) {
        rows.push(("foreground FCT adaptive / saps_off", x, "<= 0.4", x <= 0.4));
    }
    if let Some(j) = adaptive.and_then(|s| s.jain_min) {
        rows.push(("Jain min after warm-up, adaptive", j, ">= 0.98", j >= 0.98));
    }
    let rtt = |s: &Option<Summary>| s.and_then(|s| s.rtt).map(|l| l.mean.as_secs_f64());
    if let Some(x) = ratio(rtt(&adaptive), rtt(&nat)) {
        rows.push(("mean RTT adaptive / linux_nat", x, "<= 1.0", x <= 1.0));
    }
    let gp = |s: &Option<Summary>| s.and_then(|s| s.goodput_bps);
    if let Some(x) = ratio(gp(&adaptive), gp(&nat)) {
        rows.push(("bulk goodput adaptive / linux_nat", x, ">= 0.9", x >= 0.9));
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Against the issue's targets (full runs; quick runs are indicative)\n\n| measure | value | target | |\n|---|---|---|---|"
    );
    for (what, v, target, ok) in rows {
        let _ = writeln!(
            md,
            "| {what} | {v:.3} | {target} | {} |",
            if ok { "met" } else { "MISSED" }
        );
    }
}

/// One line or dot series of a chart.
struct Series {
    label: String,
    color: &'static str,
    points: Vec<(f64, f64)>,
    dots: bool,
    line: bool,
}

struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    log_x: bool,
    series: &'a [Series],
}

/// "Nice" tick step (1, 2 or 5 times a power of ten) for about `n` ticks over `span`.
fn tick_step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.0}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Draw an x/y chart as a standalone SVG document.
fn chart(c: &Chart<'_>) -> String {
    const W: f64 = 800.0;
    const H: f64 = 480.0;
    const L: f64 = 70.0;
    const R: f64 = 160.0;
    const T: f64 = 40.0;
    const B: f64 = 50.0;
    let tx = |x: f64| if c.log_x { x.max(1e-12).log10() } else { x };
    let pts = c.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x0 = x0.min(tx(x));
        x1 = x1.max(tx(x));
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y1) = (0.0, 1.0, 1.0);
    }
    if c.log_x {
        x0 = x0.floor();
        x1 = x1.ceil().max(x0 + 1.0);
    } else {
        x0 = x0.min(0.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y0 = 0.0;
    let ystep = tick_step(y1.max(1e-9), 5.0);
    let y1 = ((y1 / ystep).ceil() * ystep).max(ystep);
    let px = |x: f64| L + (tx(x) - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - (y - y0) / (y1 - y0) * (H - T - B);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>
"#,
        (W - R + L) / 2.0,
        esc(c.title)
    );
    // Grid and ticks.
    let mut y = y0;
    while y <= y1 + ystep / 2.0 {
        let yy = py(y);
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            yy + 4.0,
            fmt_tick(y)
        );
        y += ystep;
    }
    let xticks: Vec<f64> = if c.log_x {
        (x0 as i32..=x1 as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        let st = tick_step(x1 - x0, 8.0);
        let mut v = Vec::new();
        let mut x = (x0 / st).ceil() * st;
        while x <= x1 + st * 1e-9 {
            v.push(x);
            x += st;
        }
        v
    };
    for x in xticks {
        let xx = px(x);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{T}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            H - B,
            H - B + 16.0,
            fmt_tick(x)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{L}" y="{T}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>
<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        W - L - R,
        H - T - B,
        (W - R + L) / 2.0,
        H - 12.0,
        esc(c.x_label),
        (H - B + T) / 2.0,
        esc(c.y_label)
    );
    for (i, se) in c.series.iter().enumerate() {
        if se.line && se.points.len() > 1 {
            let d: Vec<String> = se
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                se.color,
                d.join(" ")
            );
        }
        if se.dots {
            for &(x, y) in &se.points {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#,
                    px(x),
                    py(y),
                    se.color
                );
            }
            let _ = writeln!(s);
        }
        let ly = T + 16.0 + i as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="14" height="4" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            W - R + 12.0,
            ly - 4.0,
            se.color,
            W - R + 32.0,
            ly,
            esc(&se.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delay_router::RouterStats;
    use crate::generators::{Buckets, BulkMode, StreamResult};
    use crate::scenario::{FairnessRun, ForegroundRun, Scenario, BUILTIN};
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn stream(id: usize, start_ms: u64, end_ms: u64, per_bucket: u64) -> StreamResult {
        let mut b = Buckets::new(Duration::from_millis(10));
        for t in (start_ms..end_ms).step_by(10) {
            b.add(Duration::from_millis(t), per_bucket);
        }
        StreamResult {
            id,
            local_port: 40000 + id as u16,
            mode: BulkMode::Download,
            started: Duration::from_millis(start_ms),
            connected: Some(Duration::from_millis(start_ms + 2)),
            finished: Some(Duration::from_millis(end_ms)),
            bytes: b.total(),
            buckets: b,
            error: None,
        }
    }

    fn target_run(t: TargetKind, outcome: Outcome) -> TargetRun {
        TargetRun {
            target: t,
            sack: None,
            linux_tcp_sack: None,
            linux_congestion: None,
            linux_counters: Vec::new(),
            outcome: Some(outcome),
            errors: Vec::new(),
            elapsed: Duration::from_secs(1),
            router: Some(RouterStats::default()),
            saps_metrics: Some("saps_up 1\n".into()),
            timeouts_per_download: Vec::new(),
        }
    }

    fn scenario(name: &str) -> Scenario {
        let text = BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
        Scenario::parse(text, true).unwrap()
    }

    #[test]
    fn report_names_each_senders_congestion_control() {
        let dir = std::env::temp_dir().join(format!("pktgen-report-cc-{}", std::process::id()));
        let r = RunResult {
            scenario: scenario("sack-bbr"),
            targets: Vec::new(),
            elapsed: Duration::from_secs(1),
            report_path: PathBuf::new(),
        };
        let md = std::fs::read_to_string(write(&r, &dir).unwrap()).unwrap();
        assert!(
            md.contains("; Linux servers' congestion control bbr; saps's congestion control bbr (`[tcp] congestion`)."),
            "{md}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sack_report_has_a_row_per_variant_and_the_ratio_per_target() {
        let dir = std::env::temp_dir().join(format!("pktgen-report-sack-{}", std::process::id()));
        // 2 MB in 1 s and 2 s (16 and 8 Mb/s, median 12) with SACK; 4 s and 2 s without (6).
        let sweep = |secs: &[u64]| {
            Outcome::Sweep(vec![SweepPoint {
                size: 2_000_000,
                transfer: secs.iter().map(|s| Duration::from_secs(*s)).collect(),
                with_connect: Vec::new(),
                error: None,
            }])
        };
        let run = |t: TargetKind, sack: bool, secs: &[u64]| {
            let mut r = target_run(t, sweep(secs));
            r.sack = Some(sack);
            let mut rs = RouterStats::default();
            rs.to_client.dropped = 21;
            rs.to_client.sack_permitted_syns = u64::from(sack) * 3;
            rs.to_server.sack_block_segments = u64::from(sack) * 500;
            r.router = Some(rs);
            if t == TargetKind::LinuxNat {
                r.saps_metrics = None;
                r.linux_tcp_sack = Some(sack);
                r.linux_congestion = Some("cubic".into());
                r.linux_counters = vec![
                    ("RetransSegs".into(), 30),
                    ("TCPSackRecovery".into(), u64::from(sack) * 12),
                    ("TCPRenoRecovery".into(), u64::from(!sack) * 12),
                    ("TCPTimeouts".into(), 2),
                ];
            } else {
                r.saps_metrics = Some(format!(
                    "saps_tcp_sack_recoveries_total {}\nsaps_tcp_fast_recoveries_total {}\n\
                     saps_tcp_rto_expiries_total 1\nsaps_tcp_retransmitted_segments_total 22\n",
                    if sack { 19 } else { 0 },
                    if sack { 0 } else { 19 }
                ));
                // The RTO (saps_tcp_rto_expiries_total 1) was in the second download.
                r.timeouts_per_download = vec![vec![0, 1]];
            }
            r
        };
        let r = RunResult {
            scenario: scenario("sack"),
            targets: vec![
                run(TargetKind::SapsAdaptive, true, &[1, 2]),
                run(TargetKind::SapsAdaptive, false, &[4, 2]),
                run(TargetKind::LinuxNat, true, &[1, 1]),
                run(TargetKind::LinuxNat, false, &[2, 2]),
            ],
            elapsed: Duration::from_secs(3),
            report_path: PathBuf::new(),
        };
        let path = write(&r, &dir).unwrap();
        let md = std::fs::read_to_string(&path).unwrap();
        assert!(
            md.contains("| saps_adaptive sack=on | 2000000 | 2 | 12.0 | 8.0 | 16.0 | 21 | 3 | 500 | 19 / 0 / 1; 22 | – | 16.0 8.0 | 0 1 |"),
            "{md}"
        );
        assert!(
            md.contains("| saps_adaptive sack=off | 2000000 | 2 | 6.0 | 4.0 | 8.0 | 21 | 0 | 0 | 0 / 19 / 1; 22 | – | 4.0 8.0 | 0 1 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| linux_nat sack=off | 2000000 | 2 | 8.0 | 8.0 | 8.0 | 21 | 0 | 0 | 0 / 12 / 2; 30 | 0 (cubic) | 8.0 8.0 | – |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| saps_adaptive | 2000000 | 12.0 | 6.0 | 2.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| linux_nat | 2000000 | 16.0 | 8.0 | 2.00 |"),
            "{md}"
        );
        // Variants compared within a target; no cross-target checks; one metrics file per run.
        assert!(!md.contains("Against the issue's targets"), "{md}");
        assert!(dir
            .join("sack-saps_adaptive-sack-off-metrics.txt")
            .is_file());
        assert!(
            md.contains("| saps_adaptive sack=off | 1.0 s | none |"),
            "{md}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fairness_report_has_a_row_per_target_plots_and_checks() {
        let dir = std::env::temp_dir().join(format!("pktgen-report-{}", std::process::id()));
        let fair = |even: bool| {
            let streams = vec![
                stream(0, 0, 1000, 1000),
                stream(1, 0, 1000, if even { 1000 } else { 100 }),
            ];
            let jain = crate::scenario::fairness_series(
                &streams,
                Duration::from_millis(10),
                Duration::from_millis(100),
            );
            Outcome::Fairness(FairnessRun {
                streams,
                jain,
                window: Duration::from_millis(100),
                warmup: Duration::from_millis(200),
            })
        };
        let r = RunResult {
            scenario: scenario("fairness"),
            targets: vec![
                target_run(TargetKind::SapsOff, fair(false)),
                target_run(TargetKind::SapsAdaptive, fair(true)),
                target_run(TargetKind::LinuxNat, fair(false)),
            ],
            elapsed: Duration::from_secs(3),
            report_path: PathBuf::new(),
        };
        let path = write(&r, &dir).unwrap();
        let md = std::fs::read_to_string(&path).unwrap();
        // Adaptive: equal shares -> 1.000; the others 0.6 (1000 vs 100 per bucket).
        assert!(md.contains("| saps_adaptive | "), "{md}");
        assert!(md.contains("| 1.000 | 1.000 |"), "{md}");
        assert!(
            md.contains("Jain min after warm-up, adaptive | 1.000 | >= 0.98 | met"),
            "{md}"
        );
        for f in [
            "fairness-jain.svg",
            "fairness-saps_off-throughput.svg",
            "fairness-saps_adaptive-throughput.svg",
            "fairness-linux_nat-metrics.txt",
        ] {
            let exists = dir.join(f).exists();
            // Linux NAT has metrics here only because the fake run gave it some.
            assert!(exists, "{f} missing");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn foreground_report_draws_a_trace_from_segments() {
        let dir = std::env::temp_dir().join(format!("pktgen-report-fg-{}", std::process::id()));
        let fg = stream(0, 1000, 1020, 10_240);
        let port = fg.local_port;
        let c = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), port);
        let sv = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
        let mut trace = vec![
            SegmentRecord {
                at: Duration::from_millis(1000),
                direction: Direction::ToServer,
                src: c,
                dst: sv,
                seq: 7,
                ack: 0,
                len: 0,
                flags: 0x02,
            },
            SegmentRecord {
                at: Duration::from_millis(1001),
                direction: Direction::ToClient,
                src: sv,
                dst: c,
                seq: 999,
                ack: 8,
                len: 0,
                flags: 0x12,
            },
        ];
        for k in 0..10u32 {
            trace.push(SegmentRecord {
                at: Duration::from_millis(1003 + u64::from(k)),
                direction: Direction::ToClient,
                src: sv,
                dst: c,
                seq: 1000 + k * 1448,
                ack: 8,
                len: 1448,
                flags: 0x10,
            });
        }
        let run = |fct_ms: u64| {
            let mut f = fg.clone();
            f.finished = Some(Duration::from_millis(1000 + fct_ms));
            Outcome::Foreground(ForegroundRun {
                background: vec![stream(0, 0, 2000, 1000)],
                foreground: vec![f],
                trace: trace.clone(),
                background_trace: Vec::new(),
            })
        };
        let r = RunResult {
            scenario: scenario("foreground"),
            targets: vec![
                target_run(TargetKind::SapsOff, run(400)),
                target_run(TargetKind::SapsAdaptive, run(20)),
                target_run(TargetKind::LinuxNat, run(50)),
            ],
            elapsed: Duration::from_secs(3),
            report_path: PathBuf::new(),
        };
        let md = std::fs::read_to_string(write(&r, &dir).unwrap()).unwrap();
        assert!(
            md.contains("foreground FCT adaptive / linux_nat | 0.400 | <= 0.5 | met"),
            "{md}"
        );
        assert!(
            md.contains("foreground FCT adaptive / saps_off | 0.050 | <= 0.4 | met"),
            "{md}"
        );
        let svg = std::fs::read_to_string(dir.join("foreground-saps_adaptive-trace.svg")).unwrap();
        // Ten data segments as dots.
        assert_eq!(svg.matches("<circle").count(), 10);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tick_steps_are_nice() {
        assert_eq!(tick_step(10.0, 5.0), 2.0);
        assert_eq!(tick_step(1000.0, 5.0), 200.0);
        assert_eq!(tick_step(0.9, 5.0), 0.2);
        assert_eq!(tick_step(0.0, 5.0), 1.0);
    }

    #[test]
    fn chart_is_well_formed_and_places_points_inside() {
        let series = [Series {
            label: "a<b".into(),
            color: "#000",
            points: vec![(0.0, 0.0), (1.0, 10.0), (2.0, 5.0)],
            dots: true,
            line: true,
        }];
        let svg = chart(&Chart {
            title: "t & u",
            x_label: "x",
            y_label: "y",
            log_x: false,
            series: &series,
        });
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a&lt;b") && svg.contains("t &amp; u"));
        assert_eq!(svg.matches("<circle").count(), 3);
        // Every circle lies inside the plot area.
        for c in svg.split("<circle").skip(1) {
            let num = |k: &str| -> f64 {
                let i = c.find(k).unwrap() + k.len();
                c[i..].split('"').next().unwrap().parse().unwrap()
            };
            let (x, y) = (num("cx=\""), num("cy=\""));
            assert!((70.0..=640.0).contains(&x), "{x}");
            assert!((40.0..=430.0).contains(&y), "{y}");
        }
        // An empty chart still renders.
        let svg = chart(&Chart {
            title: "",
            x_label: "",
            y_label: "",
            log_x: true,
            series: &[],
        });
        assert!(svg.contains("</svg>"));
    }
}
