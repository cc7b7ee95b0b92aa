//! `saps-pktgen`: run the SAPS paper's load-test scenarios against saps and a Linux NAT baseline.
//!
//! ```text
//! saps-pktgen list
//! saps-pktgen run fairness --quick --out /tmp/pktgen --targets saps_off,saps_adaptive,linux_nat
//! ```
//! Needs root (network namespaces). Ctrl-C stops the run and tears the testbed down.
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use saps_pktgen::generators::Cancel;
use saps_pktgen::scenario::{self, RunOptions, Scenario, TargetKind};
use saps_pktgen::testbed;

/// How long the runner gets to unwind after Ctrl-C before the testbeds are torn down from here.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// After Ctrl-C the runner stops at its next check and drops its testbed. If it is stuck (a
/// testbed still starting, a socket call waiting out its timeout), tear every testbed down
/// from a watcher thread after a grace period and exit 130, so Ctrl-C never leaves
/// namespaces or a saps process behind.
fn force_teardown_after_interrupt(cancel: Cancel) {
    std::thread::spawn(move || {
        while !cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("saps-pktgen: interrupted, tearing down");
        std::thread::sleep(INTERRUPT_GRACE);
        let n = testbed::teardown_all();
        eprintln!("saps-pktgen: forced teardown of {n} testbed(s)");
        std::process::exit(130);
    });
}

#[derive(Parser)]
#[command(
    name = "saps-pktgen",
    version,
    about = "Load-test scenarios: saps vs a Linux NAT baseline"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the built-in scenarios.
    List,
    /// Run a scenario (a built-in name or a path to a scenario TOML file).
    Run {
        /// Scenario name (see `list`) or file.
        scenario: String,
        /// Run the `[quick]` variant (CI-sized, under a minute).
        #[arg(long)]
        quick: bool,
        /// Output directory for the report and plots.
        #[arg(long, default_value = "pktgen-out")]
        out: PathBuf,
        /// Targets to run, comma separated (saps_off, saps_paper, saps_adaptive, linux_nat);
        /// default: the scenario's list.
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// The saps binary (default: `saps` next to this binary).
        #[arg(long)]
        saps: Option<PathBuf>,
    },
}

/// `saps` in the same directory as this executable (both are bins of the workspace, built into
/// the same target directory).
fn default_saps() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let p = exe.with_file_name("saps");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "saps binary not found at {}: build it with `cargo build -p saps` (same profile as \
             saps-pktgen) or pass --saps PATH",
            p.display()
        ))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::List => {
            for (name, text) in scenario::BUILTIN {
                match Scenario::parse(text, false) {
                    Ok(s) => println!("{name:<12} {:<14} {}", s.paper, s.description),
                    Err(e) => println!("{name:<12} INVALID: {e}"),
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Run {
            scenario,
            quick,
            out,
            targets,
            saps,
        } => {
            let sc = match Scenario::load(&scenario, quick) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("saps-pktgen: {e}");
                    return ExitCode::from(2);
                }
            };
            let targets = if targets.is_empty() {
                None
            } else {
                let mut v = Vec::new();
                for t in &targets {
                    match TargetKind::parse(t) {
                        Some(k) => v.push(k),
                        None => {
                            eprintln!("saps-pktgen: --targets: unknown target `{t}` (saps_off, saps_paper, saps_adaptive, linux_nat)");
                            return ExitCode::from(2);
                        }
                    }
                }
                Some(v)
            };
            let saps = match saps.map(Ok).unwrap_or_else(default_saps) {
                Ok(p) if p.is_file() => p,
                Ok(p) => {
                    eprintln!("saps-pktgen: --saps {}: no such file", p.display());
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("saps-pktgen: {e}");
                    return ExitCode::from(2);
                }
            };
            if saps::os::geteuid() != 0 {
                eprintln!("saps-pktgen: needs root (it creates network namespaces)");
                return ExitCode::from(2);
            }
            let cancel = Cancel::new();
            if let Err(e) = saps::runtime::shutdown_on_signals(cancel.flag()) {
                eprintln!("saps-pktgen: signal handlers: {e}");
                return ExitCode::FAILURE;
            }
            // Testbeds of runs that were SIGKILLed (their process is gone) are removed first.
            for ns in testbed::remove_stale() {
                eprintln!("saps-pktgen: removed stale namespace {ns}");
            }
            force_teardown_after_interrupt(cancel.clone());
            let t0 = Instant::now();
            let progress = |line: &str| eprintln!("[{:6.1}s] {line}", t0.elapsed().as_secs_f64());
            let opts = RunOptions {
                targets,
                saps_binary: saps,
                out_dir: out,
                cancel,
                progress: &progress,
            };
            match scenario::run(&sc, &opts) {
                Ok(r) => {
                    println!("{}", r.report_path.display());
                    if r.targets.iter().any(|t| !t.errors.is_empty()) {
                        eprintln!("saps-pktgen: some targets reported errors (see the report)");
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    eprintln!("saps-pktgen: interrupted; testbed torn down");
                    ExitCode::from(130)
                }
                Err(e) => {
                    eprintln!("saps-pktgen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
