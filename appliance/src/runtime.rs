//! The poll-mode runtime: one data-plane thread per configured core, each running a loop that
//! never blocks: receive burst -> stack -> services -> timers -> completions -> transmit.
//!
//! The stack is sans-IO; this is where its `now` comes from (a monotonic clock read once per turn)
//! and where its frames meet a port.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use saps_fairness::{Admission, AdmissionConfig, Policy};
use saps_stack::iface::{Interface, InterfaceConfig};
use saps_stack::Instant;

use crate::port::{Port, PortError};
use crate::services::{ServiceKind, Services};

/// Frames received per burst (the default of `port.rx_burst`).
pub const RX_BURST: usize = 32;
/// Frames transmitted at the end of a turn at most, so one busy port cannot starve RX (a turn
/// that reads several bursts also sends up to half a burst after each but the last).
pub const TX_BUDGET: usize = 256;
/// Frames received per turn at most, in bursts, while bursts come back full. As many as a turn
/// may transmit: the ACKs that a turn's data segments provoke arrive at up to half that rate,
/// and with one burst per turn they overflowed the RX ring (and with them a SYN or a datagram).
pub const RX_BUDGET: usize = TX_BUDGET;
/// Timer expirations handled per turn at most.
pub const TIMER_BUDGET: usize = 1024;

/// A monotonic clock turned into the stack's `Instant` (microseconds since start).
#[derive(Copy, Clone, Debug)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        Clock {
            origin: std::time::Instant::now(),
        }
    }

    /// The current time for the stack.
    #[inline]
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }
}

/// How the loop behaves when there is nothing to do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Spin forever (dedicated cores: lowest latency).
    Busy,
    /// Spin, then sleep briefly after many idle turns while no TX ring holds frames (shared
    /// machines, tests, demos).
    Adaptive,
}

/// Everything one port needs in the data plane.
pub struct PortContext {
    /// Configured port name.
    pub name: String,
    /// The device.
    pub port: Box<dyn Port>,
    /// The stack instance on this port; its data segments pass TX admission (saps-fairness).
    pub iface: Interface<Admission>,
    /// Built-in services bound on it.
    pub services: Services,
    /// Frames the stack produced that the port rejected as malformed (a bug if ever non-zero).
    pub tx_bad_length: u64,
    /// Frames asked of the port per receive burst (`port.rx_burst`).
    pub rx_burst: usize,
}

impl PortContext {
    /// Build the stack for `port` with the default (adaptive) TX admission and bind `services`.
    pub fn new(
        name: String,
        port: Box<dyn Port>,
        iface_cfg: InterfaceConfig,
        services: &[(ServiceKind, u16)],
        now: Instant,
    ) -> Result<Self, String> {
        let admission = admission_config(
            port.as_ref(),
            Policy::Adaptive,
            None,
            std::time::Duration::from_millis(crate::config::defaults::ADMISSION_LATENCY_MS),
        );
        Self::with_admission(name, port, iface_cfg, admission, services, now)
    }

    /// Build the stack for `port` with TX admission `admission` and bind `services` on it.
    pub fn with_admission(
        name: String,
        port: Box<dyn Port>,
        iface_cfg: InterfaceConfig,
        admission: AdmissionConfig,
        services: &[(ServiceKind, u16)],
        now: Instant,
    ) -> Result<Self, String> {
        let mut iface = Interface::with_egress(iface_cfg, Admission::new(admission), now);
        let mut bound = Services::new();
        for &(kind, l4port) in services {
            bound
                .add(&mut iface, kind, l4port)
                .map_err(|e| format!("service {} on port {l4port}: {e}", kind.as_str()))?;
        }
        Ok(PortContext {
            name,
            port,
            iface,
            services: bound,
            tx_bad_length: 0,
            rx_burst: RX_BURST,
        })
    }

    /// One turn of the poll loop. Returns true if anything happened.
    pub fn turn(&mut self, now: Instant) -> bool {
        let burst = self.rx_burst.clamp(1, RX_BUDGET);
        let mut received = 0;
        let mut sent = 0;
        while received < RX_BUDGET {
            let want = burst.min(RX_BUDGET - received);
            let iface = &mut self.iface;
            let got = self
                .port
                .rx_burst(now, want, &mut |frame| iface.handle_frame(now, frame));
            received += got;
            if got < want || received >= RX_BUDGET {
                break;
            }
            // Another burst follows: let this one's ACKs out first (control segments leave
            // before data), so a sender sees an ACK per burst, not one stretch ACK per turn.
            // Half a burst of frames keeps the loop reading faster than it makes ACKs.
            sent += self.transmit(now, (burst / 2).max(1));
            self.port.tx_flush(now);
        }
        let iface = &mut self.iface;
        self.services.poll(iface, now);
        let mut timers = 0;
        if iface.poll_timeout().is_some_and(|t| t <= now) {
            timers = iface.handle_timeouts(now, TIMER_BUDGET);
            self.services.poll(iface, now);
        }
        let done = self.port.take_completions(now);
        if done.packets > 0 {
            iface.handle_tx_completions(now, done.packets as u32, done.bytes);
        }
        // The port's count is the truth (a rejected frame never completes).
        let ring = self.port.tx_ring();
        iface
            .egress_mut()
            .resync(ring.packets as u32, ring.bytes, now);
        sent += self.transmit(now, TX_BUDGET);
        let flushed = self.port.tx_flush(now);
        received > 0 || sent > 0 || flushed > 0 || timers > 0 || done.packets > 0
    }

    /// Up to `budget` frames from the stack into the TX ring (not yet flushed to the device).
    fn transmit(&mut self, now: Instant, budget: usize) -> usize {
        let (sent, rejected) = transmit(self.port.as_mut(), &mut self.iface, now, budget);
        if rejected.is_some() {
            self.tx_bad_length += 1;
        }
        sent
    }
}

/// Up to `budget` frames from `iface` into `port`'s TX ring (not flushed): the frames written,
/// and the error if the port rejected one (a frame the stack built wrong), which ends the pass.
/// A full ring ends it too, as normal.
pub fn transmit<E: saps_stack::EgressScheduler>(
    port: &mut dyn Port,
    iface: &mut Interface<E>,
    now: Instant,
    budget: usize,
) -> (usize, Option<PortError>) {
    let mut sent = 0;
    while sent < budget {
        let mut produced = false;
        let result = port.tx_frame(now, &mut |buf: &mut [u8]| {
            let len = iface.poll_transmit(now, buf).unwrap_or(0);
            produced = len > 0;
            len
        });
        match result {
            Ok(_) if produced => sent += 1,
            Ok(_) | Err(PortError::TxFull) => break,
            Err(e) => return (sent, Some(e)),
        }
    }
    (sent, None)
}

/// TX admission for `port`: `policy` with the port's ring size and frame size, and the line rate
/// when known (it seeds the adaptive limit's drain rate).
pub fn admission_config(
    port: &dyn Port,
    policy: Policy,
    line_rate_bps: Option<u64>,
    max_latency: std::time::Duration,
) -> AdmissionConfig {
    let ring = port.tx_ring();
    let mut cfg = AdmissionConfig::new(policy, ring.capacity.min(u32::MAX as usize) as u32);
    cfg.max_frame = (port.mtu() + crate::port::FRAME_OVERHEAD).min(65_535) as u32;
    cfg.quantum = 4 * cfg.max_frame;
    cfg.initial_quantum = 10 * cfg.max_frame;
    cfg.min_limit = 2 * cfg.max_frame;
    cfg.initial_limit = 8 * cfg.max_frame;
    cfg.slack = 2 * cfg.max_frame;
    cfg.line_rate_bps = line_rate_bps;
    cfg.max_latency = saps_stack::Duration::from_micros(max_latency.as_micros() as u64);
    cfg
}

/// Idle turns the adaptive loop keeps spinning while a TX ring still holds frames (a few
/// milliseconds; a line-rate port releases a frame, which counts as work, far sooner).
const DRAIN_SPIN_TURNS: u32 = 100_000;

/// Run `ports` on the calling thread until `shutdown` is set. `on_tick` is called about every
/// 100 ms with the contexts (telemetry publishing); `commands` are answered one per turn.
pub fn run_loop(
    ports: &mut [PortContext],
    clock: Clock,
    shutdown: &AtomicBool,
    idle: IdlePolicy,
    commands: Option<&crossbeam_channel::Receiver<crate::control::ControlRequest>>,
    on_tick: &mut dyn FnMut(&[PortContext], Instant),
) {
    let tick = saps_stack::Duration::from_millis(100);
    let mut next_tick = clock.now();
    let mut idle_turns: u32 = 0;
    while !shutdown.load(Ordering::Relaxed) {
        let now = clock.now();
        let mut busy = false;
        for ctx in ports.iter_mut() {
            busy |= ctx.turn(now);
        }
        if now >= next_tick {
            on_tick(ports, now);
            next_tick = now + tick;
        }
        if let Some(rx) = commands {
            crate::control::serve_one(rx, ports);
        }
        if busy {
            idle_turns = 0;
            continue;
        }
        idle_turns = idle_turns.saturating_add(1);
        match idle {
            IdlePolicy::Busy => std::hint::spin_loop(),
            IdlePolicy::Adaptive => {
                // Frames still in a TX ring are on their way out (a line-rate port releases them
                // over time): sleeping now would let the ring run dry while admission holds flows
                // back. Sleep only when every ring is empty or its link is down.
                // Bounded: a driver that frees lazily may report frames for as long as no new
                // burst comes, and an idle port must not spin forever.
                let draining = idle_turns < DRAIN_SPIN_TURNS
                    && ports
                        .iter()
                        .any(|c| c.port.tx_ring().packets > 0 && c.port.link_up());
                if idle_turns > 2_000 && !draining {
                    std::thread::sleep(StdDuration::from_micros(50));
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
    // Final publish so the last counters are visible after shutdown.
    on_tick(ports, clock.now());
}

/// Install SIGINT/SIGTERM handlers that set `flag` (clean shutdown of every loop).
pub fn shutdown_on_signals(flag: Arc<AtomicBool>) -> std::io::Result<()> {
    signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, flag)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::memory::{MemoryConfig, MemoryPort};
    use crate::port::send_copy;
    use saps_stack::iface::Ipv4Cidr;
    use saps_stack::wire::ethernet::EthernetAddress;

    /// A context on one end of a memory wire with `queued` frames waiting to be received.
    fn context_with_queued_frames(queued: usize, rx_burst: usize) -> (PortContext, MemoryPort) {
        context_on(queued, rx_burst, |port| Box::new(port))
    }

    /// The same, with the port wrapped by `wrap`.
    fn context_on(
        queued: usize,
        rx_burst: usize,
        wrap: impl FnOnce(MemoryPort) -> Box<dyn Port>,
    ) -> (PortContext, MemoryPort) {
        let cfg = MemoryConfig {
            rx_slots: 1024,
            ..MemoryConfig::default()
        };
        let (port, mut peer) = MemoryPort::pair(cfg);
        let now = Instant::from_millis(1);
        let ic = InterfaceConfig::new(
            EthernetAddress(port.mac()),
            Ipv4Cidr::new([10, 0, 0, 1].into(), 24),
        );
        let mut ctx = PortContext::new("a".into(), wrap(port), ic, &[], now).unwrap();
        ctx.rx_burst = rx_burst;
        // Frames of an unknown EtherType: received, counted and dropped by the stack.
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&ctx.port.mac());
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        for _ in 0..queued {
            send_copy(&mut peer, now, &frame).unwrap();
            peer.tx_flush(now);
        }
        (ctx, peer)
    }

    #[test]
    fn a_turn_receives_bursts_until_one_comes_back_short() {
        let (mut ctx, _peer) = context_with_queued_frames(200, RX_BURST);
        ctx.turn(Instant::from_millis(2));
        assert_eq!(ctx.port.counters().rx_packets, 200);
    }

    #[test]
    fn a_turn_receives_at_most_the_rx_budget() {
        let (mut ctx, _peer) = context_with_queued_frames(RX_BUDGET + 100, 64);
        ctx.turn(Instant::from_millis(2));
        assert_eq!(ctx.port.counters().rx_packets, RX_BUDGET as u64);
        ctx.turn(Instant::from_millis(3));
        assert_eq!(ctx.port.counters().rx_packets, RX_BUDGET as u64 + 100);
    }

    #[test]
    fn frames_lost_to_fault_injection_do_not_end_the_turn_early() {
        use crate::port::faults::{FaultConfig, Faults};
        let faults = FaultConfig {
            loss: 0.5,
            seed: 1,
            ..FaultConfig::default()
        };
        let (mut ctx, _peer) =
            context_on(200, RX_BURST, |port| Box::new(Faults::new(port, faults)));
        ctx.turn(Instant::from_millis(2));
        assert_eq!(ctx.port.counters().rx_packets, 200);
    }
}
