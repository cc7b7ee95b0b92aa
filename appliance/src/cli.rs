//! The `saps` command line.
//!
//! ```text
//! saps [--log-level LEVEL] run --config FILE
//! saps [--log-level LEVEL] check-config FILE [--no-env]
//! saps [--log-level LEVEL] demo
//! saps [--log-level LEVEL] bench [--seconds N] [--line-rate RATE] [--json]
//! saps [--log-level LEVEL] bench-dpdk [--seconds N] [--runs N] [--quick] [--json]
//! saps hugepages status | reserve --size 2M --count N [--mount DIR]
//! ```
//!
//! Errors print as one line, `error: <key>: <what and how to fix>`, on stderr. Exit codes:
//! [`EXIT_OK`], [`EXIT_FAILURE`] (runtime failure), [`EXIT_CONFIG`] (bad configuration or
//! usage; clap's own usage errors exit 2 too).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

/// Success.
pub const EXIT_OK: u8 = 0;
/// The appliance failed while running.
pub const EXIT_FAILURE: u8 = 1;
/// The configuration (or the command line) is invalid.
pub const EXIT_CONFIG: u8 = 2;

/// saps: a userspace TCP/IP appliance that owns one public address, with per-flow TX admission.
#[derive(Debug, Parser)]
#[command(name = "saps", version)]
pub struct Cli {
    /// Log filter for messages on stderr: error, warn, info, debug, trace, or a filter such as
    /// "saps=debug,info". Overrides RUST_LOG, which overrides the config's `[log] level`.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance with a configuration file.
    ///
    /// Loads and validates the file, checks the environment (interfaces, cores, the telemetry
    /// address), then starts the data plane on the configured ports and serves telemetry until
    /// interrupted.
    Run(RunArgs),
    /// Validate a configuration file and exit.
    ///
    /// Checks TOML syntax, unknown keys, values and references between sections, then (unless
    /// --no-env) that interfaces and cores exist and the telemetry address can be bound. Prints
    /// "ok: N ports, M services" and exits 0, or prints one "error: ..." line naming the key and
    /// the fix and exits 2.
    CheckConfig(CheckConfigArgs),
    /// Run the demonstration: saps on af_packet in throwaway namespaces, driven by Linux clients.
    ///
    /// Needs root (it builds two network namespaces joined by a veth pair) but no NIC, DPDK or
    /// hugepages; ping, curl and the project's own generators drive the appliance and a report
    /// is printed. Everything it creates is removed at the end, also on Ctrl-C.
    Demo(DemoArgs),
    /// Benchmark the appliance against the Linux kernel's TCP in one run (needs root, wrk).
    ///
    /// Builds a client namespace linked to the appliance (af_packet) and to a Linux server,
    /// measures HTTP requests/s (wrk, keep-alive) and bulk goodput against both, prints a table
    /// with the ratios, then checks the line-rate emulation with one bulk download.
    Bench(BenchArgs),
    /// Benchmark the dpdk backend against dpdk-testpmd and the af_packet backend (needs root,
    /// the dpdk feature and dpdk-testpmd).
    ///
    /// Builds a client and a server namespace joined by a veth; measures the UDP echo rate
    /// (64-byte frames) of the appliance on `net_af_packet` against `dpdk-testpmd
    /// --forward-mode=macswap` on the same vdev with the same generator, then the bulk-TCP goodput
    /// of the dpdk and af_packet backends; prints both ratios.
    BenchDpdk(BenchDpdkArgs),
    /// Inspect or reserve hugepages for the DPDK backend.
    #[command(subcommand)]
    Hugepages(HugepagesCommand),
}

/// `saps hugepages ...`.
#[derive(Debug, Subcommand)]
pub enum HugepagesCommand {
    /// Print hugepage counts per size and NUMA node, hugetlbfs mounts and the EAL memory flags
    /// saps would use.
    Status,
    /// Reserve hugepages of one size (root), check the kernel granted them, and optionally mount
    /// hugetlbfs.
    Reserve(ReserveArgs),
}

/// `saps hugepages reserve`.
#[derive(Debug, Args)]
pub struct ReserveArgs {
    /// Page size, e.g. "2M" or "1G".
    #[arg(long, default_value = "2M")]
    pub size: String,
    /// Number of pages the pool of that size should hold.
    #[arg(long)]
    pub count: u64,
    /// Also mount hugetlbfs of that size here (e.g. /dev/hugepages).
    #[arg(long, value_name = "DIR")]
    pub mount: Option<PathBuf>,
}

/// `saps hugepages`: the text to print, or a one-line error.
pub fn hugepages(cmd: &HugepagesCommand) -> Result<String, String> {
    match cmd {
        HugepagesCommand::Status => Ok(hugepages::Status::read().report()),
        HugepagesCommand::Reserve(r) => {
            let size_kb = hugepages::parse_size(&r.size).map_err(|e| format!("--size: {e}"))?;
            let got = hugepages::reserve(size_kb, r.count).map_err(|e| e.to_string())?;
            let mut out = format!(
                "reserved {} pages of {}",
                got.granted,
                hugepages::format_size(size_kb)
            );
            if let Some(dir) = &r.mount {
                hugepages::mount(dir, size_kb).map_err(|e| e.to_string())?;
                out.push_str(&format!(", hugetlbfs mounted at {}", dir.display()));
            }
            Ok(out)
        }
    }
}

/// `saps run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML); see docs/operations.md and examples/.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

/// `saps check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Configuration file (TOML) to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Check syntax and values only; skip the checks that depend on this machine
    /// (interfaces, cores, binding the telemetry address).
    #[arg(long)]
    pub no_env: bool,
}

/// `saps demo`: build a throwaway namespace topology, run the appliance on af_packet, drive it
/// with Linux clients and the built-in generator, print a report, and clean up.
#[derive(Debug, Args, Default)]
pub struct DemoArgs {
    /// Seconds the parallel bulk-download phase runs.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Emulate this line rate on the appliance's port (e.g. "200mbit", "1gbit").
    #[arg(long)]
    pub line_rate: Option<String>,
    /// Keep the topology and the appliance running until Ctrl-C after the report.
    #[arg(long)]
    pub keep: bool,
}

impl DemoArgs {
    /// The demo's options.
    pub fn options(&self) -> crate::demo::DemoOptions {
        crate::demo::DemoOptions {
            seconds: self.seconds,
            line_rate: self.line_rate.clone(),
            keep: self.keep,
        }
    }
}

/// `saps bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seconds each measurement phase runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Line rate for the emulation check (e.g. "200mbit"); "off" skips the check.
    #[arg(long, default_value = "200mbit")]
    pub line_rate: String,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Do not pin the client to core 0 and the server side to core 1.
    #[arg(long)]
    pub no_pin: bool,
    /// Leave each namespace's kernel receive work on the core that sent the frame (the veth
    /// default) instead of steering it (RPS) to the receiving side's own core.
    #[arg(long)]
    pub no_steer: bool,
    /// Print the results as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The appliance's TCP send and receive buffer (e.g. "4MiB"); default: its config default.
    #[arg(long, value_name = "SIZE")]
    pub tcp_buffer: Option<String>,
}

impl BenchArgs {
    /// The benchmark's options.
    pub fn options(&self) -> crate::bench::BenchOptions {
        crate::bench::BenchOptions {
            seconds: self.seconds,
            line_rate: (self.line_rate != "off").then(|| self.line_rate.clone()),
            connections: self.connections,
            pin: !self.no_pin,
            tcp_buffer: self.tcp_buffer.clone(),
            steer_receive: !self.no_steer,
        }
    }
}

/// `saps bench-dpdk`.
#[derive(Debug, Args)]
pub struct BenchDpdkArgs {
    /// Seconds each measurement phase runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Measurement runs (each: appliance and testpmd UDP, dpdk and af_packet bulk).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// RX and TX ring size of the server's port (also the vdev's kernel ring, `framecnt`).
    #[arg(long, default_value_t = crate::config::defaults::RX_RING)]
    pub ring: u32,
    /// One short run (1 s phases) for tests: overrides --seconds and --runs.
    #[arg(long)]
    pub quick: bool,
    /// Skip the bulk-TCP phase.
    #[arg(long)]
    pub no_bulk: bool,
    /// Do not pin the client to core 0 and the server to core 1.
    #[arg(long)]
    pub no_pin: bool,
    /// Print the results as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl BenchDpdkArgs {
    /// The benchmark's options.
    pub fn options(&self) -> crate::bench_dpdk::DpdkBenchOptions {
        let mut o = if self.quick {
            crate::bench_dpdk::DpdkBenchOptions::quick()
        } else {
            crate::bench_dpdk::DpdkBenchOptions {
                seconds: self.seconds,
                runs: self.runs,
                ..Default::default()
            }
        };
        o.ring = self.ring;
        o.bulk = !self.no_bulk;
        o.pin = !self.no_pin;
        o
    }
}

/// `saps check-config`: the line to print on success, or the error.
pub fn check_config(args: &CheckConfigArgs) -> Result<String, ConfigError> {
    let cfg = Config::load(&args.file)?;
    if !args.no_env {
        cfg.check_environment()?;
    }
    Ok(format!(
        "ok: {} port{}, {} service{}",
        cfg.ports.len(),
        if cfg.ports.len() == 1 { "" } else { "s" },
        cfg.services.len(),
        if cfg.services.len() == 1 { "" } else { "s" },
    ))
}

/// Load, validate and check the environment for `saps run`.
pub fn load_for_run(args: &RunArgs) -> Result<Config, ConfigError> {
    let cfg = Config::load(&args.config)?;
    cfg.check_environment()?;
    Ok(cfg)
}

/// Print an error the way every subcommand does: one line on stderr.
pub fn print_error(e: &dyn std::fmt::Display) {
    let msg = e.to_string();
    let one_line: Vec<&str> = msg.split_whitespace().collect();
    eprintln!("error: {}", one_line.join(" "));
}

/// Install the stderr logger. `filter` is a tracing filter; falls back to RUST_LOG, then
/// `default`. Safe to call once; later calls are ignored.
pub fn init_logging(filter: Option<&str>, default: &str) {
    use tracing_subscriber::EnvFilter;
    let env = match filter {
        Some(f) => EnvFilter::try_new(f),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(default)),
    }
    .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_each_subcommand() {
        let c = Cli::try_parse_from(["saps", "--log-level", "debug", "run", "--config", "a.toml"])
            .unwrap();
        assert_eq!(c.log_level.as_deref(), Some("debug"));
        assert!(
            matches!(c.command, Command::Run(RunArgs { ref config }) if config.to_str() == Some("a.toml"))
        );
        let c = Cli::try_parse_from(["saps", "check-config", "b.toml", "--no-env"]).unwrap();
        assert!(matches!(
            c.command,
            Command::CheckConfig(CheckConfigArgs { no_env: true, .. })
        ));
        let c = Cli::try_parse_from(["saps", "demo", "--log-level", "warn"]).unwrap();
        assert!(matches!(c.command, Command::Demo(_)));
        assert_eq!(c.log_level.as_deref(), Some("warn"));
        let c = Cli::try_parse_from(["saps", "bench", "--seconds", "2", "--json"]).unwrap();
        match c.command {
            Command::Bench(b) => {
                let o = b.options();
                assert_eq!(o.seconds, 2);
                assert_eq!(o.line_rate.as_deref(), Some("200mbit"));
                assert!(b.json && o.pin);
            }
            other => panic!("parsed as {other:?}"),
        }
        let c = Cli::try_parse_from(["saps", "bench", "--line-rate", "off", "--no-pin"]).unwrap();
        assert!(
            matches!(c.command, Command::Bench(ref b) if b.options().line_rate.is_none() && !b.options().pin)
        );
        let c = Cli::try_parse_from(["saps", "bench-dpdk", "--quick", "--no-bulk"]).unwrap();
        match c.command {
            Command::BenchDpdk(b) => {
                let o = b.options();
                assert_eq!((o.seconds, o.runs, o.ring), (1, 1, 1024));
                assert!(!o.bulk && o.pin && !b.json);
            }
            other => panic!("parsed as {other:?}"),
        }
        let c =
            Cli::try_parse_from(["saps", "bench-dpdk", "--seconds", "7", "--runs", "2"]).unwrap();
        assert!(
            matches!(c.command, Command::BenchDpdk(ref b) if b.options().seconds == 7 && b.options().runs == 2 && b.options().bulk)
        );
        let c = Cli::try_parse_from(["saps", "hugepages", "reserve", "--count", "8"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Hugepages(HugepagesCommand::Reserve(ReserveArgs { count: 8, ref size, mount: None })) if size == "2M"
        ));
        assert!(Cli::try_parse_from(["saps", "hugepages", "reserve"]).is_err());
        assert!(Cli::try_parse_from(["saps", "run"]).is_err());
        assert!(Cli::try_parse_from(["saps", "frobnicate"]).is_err());
    }
}
