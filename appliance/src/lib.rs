//! saps: the appliance around the sans-IO stack — configuration, the command line, telemetry,
//! and (from other modules) the OS interface and the ports that move frames.
//!
//! - [`config`]: the TOML configuration, its validation and the environment checks.
//! - [`cli`]: the `saps` command line (clap) and the `check-config` command.
//! - [`telemetry`]: metrics snapshots published by the data plane and the control thread's
//!   HTTP endpoint (`/metrics` in Prometheus text format, `/healthz`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod telemetry;
