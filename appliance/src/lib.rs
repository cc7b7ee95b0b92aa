//! saps: the appliance around the sans-IO stack.
//!
//! - [`app`]: `saps run`: ports, stacks, services, telemetry and data-plane threads wired.
//! - [`control`]: commands from the control thread to the data plane (crossbeam channels).
//! - [`config`]: the TOML configuration, its validation and the environment checks.
//! - [`cli`]: the `saps` command line (clap) and the `check-config` command.
//! - [`port`]: port backends (AF_PACKET, TAP, in-memory) behind one trait, line-rate emulation
//!   and fault injection.
//! - [`os`]: the one module that talks to the kernel directly (`unsafe` is allowed only there).
//! - [`runtime`]: the pinned poll loops that drive ports, the stack and the services.
//! - [`services`]: the built-in services (echo, discard, source, http, udp_echo).
//! - [`telemetry`]: metrics snapshots published by the data plane and the control thread's
//!   HTTP endpoint (`/metrics` in Prometheus text format, `/healthz`).
//! - [`topology`]: throwaway network namespaces and veth pairs (demo and tests).
//! - [`demo`]: `saps demo`.
//! - [`bench`](mod@bench): `saps bench`, the appliance against Linux's TCP in one run.
//! - [`linux_servers`]: Linux servers with the built-in services' protocols (bench baselines).
//! - [`bench_dpdk`]: `saps bench-dpdk`, the dpdk backend against dpdk-testpmd and af_packet.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod bench;
pub mod bench_dpdk;
pub mod cli;
pub mod config;
pub mod control;
pub mod demo;
pub mod linux_servers;
pub mod os;
pub mod port;
pub mod runtime;
pub mod services;
pub mod telemetry;
pub mod topology;
