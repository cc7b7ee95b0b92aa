//! The `saps` binary: parses the command line and dispatches (see [`saps::cli`]).
use std::process::ExitCode;

use clap::Parser;
use saps::cli::{self, BenchArgs, Cli, Command, DemoArgs, EXIT_CONFIG, EXIT_FAILURE, EXIT_OK};
use saps::config::Config;

fn main() -> ExitCode {
    // An operator sees one line, never a backtrace, even if something is badly wrong.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        cli::print_error(&format!("internal error{at}: {msg}; please report this"));
    }));

    let args = Cli::parse();
    let code = match args.command {
        Command::CheckConfig(c) => {
            cli::init_logging(args.log_level.as_deref(), "warn");
            match cli::check_config(&c) {
                Ok(line) => {
                    println!("{line}");
                    EXIT_OK
                }
                Err(e) => {
                    cli::print_error(&e);
                    EXIT_CONFIG
                }
            }
        }
        Command::Run(r) => match cli::load_for_run(&r) {
            Err(e) => {
                cli::init_logging(args.log_level.as_deref(), "info");
                cli::print_error(&e);
                EXIT_CONFIG
            }
            Ok(cfg) => {
                // The config's [log] level applies unless --log-level or RUST_LOG says otherwise.
                cli::init_logging(args.log_level.as_deref(), &cfg.log.level);
                match run_appliance(cfg) {
                    Ok(()) => EXIT_OK,
                    Err(e) => {
                        cli::print_error(&e);
                        EXIT_FAILURE
                    }
                }
            }
        },
        Command::Hugepages(h) => {
            cli::init_logging(args.log_level.as_deref(), "warn");
            match cli::hugepages(&h) {
                Ok(text) => {
                    println!("{}", text.trim_end());
                    EXIT_OK
                }
                Err(e) => {
                    cli::print_error(&e);
                    EXIT_FAILURE
                }
            }
        }
        Command::Demo(d) => {
            cli::init_logging(args.log_level.as_deref(), "info");
            match run_demo(&d) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    cli::print_error(&e);
                    EXIT_FAILURE
                }
            }
        }
        Command::Bench(b) => {
            cli::init_logging(args.log_level.as_deref(), "warn");
            match run_bench(&b) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    cli::print_error(&e);
                    EXIT_FAILURE
                }
            }
        }
        Command::BenchDpdk(b) => {
            cli::init_logging(args.log_level.as_deref(), "warn");
            match saps::bench_dpdk::run(&b.options()) {
                Ok(report) if b.json => {
                    println!("{}", report.json());
                    EXIT_OK
                }
                Ok(report) => {
                    print!("{}", report.table());
                    EXIT_OK
                }
                Err(e) => {
                    cli::print_error(&e);
                    EXIT_FAILURE
                }
            }
        }
    };
    ExitCode::from(code)
}

/// Runs the appliance until SIGINT/SIGTERM.
fn run_appliance(cfg: Config) -> Result<(), String> {
    saps::app::run(cfg)
}

/// Runs the demo.
fn run_demo(args: &DemoArgs) -> Result<(), String> {
    saps::demo::run(&args.options())
}

/// Runs the benchmark and prints its table (or JSON).
fn run_bench(args: &BenchArgs) -> Result<(), String> {
    let report = saps::bench::run(&args.options())?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
