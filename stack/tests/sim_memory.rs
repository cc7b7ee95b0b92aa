//! Memory per idle established connection, measured with a counting global allocator while two
//! whole stacks hold N connections open in the simulation. The target is at most 1 KiB
//! per established connection on the side that holds it (the appliance holds one end of each).
//!
//! This file has a single test on purpose: the allocator counts every thread of the test binary.

mod sim_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use saps_stack::iface::Interface;
use saps_stack::sim::LinkConfig;
use saps_stack::simhost::{Acceptor, App, Opener};
use saps_stack::tcp::{Connection, State};
use saps_stack::time::Duration;
use sim_common::*;

/// Counts the bytes currently allocated through it; everything else is `System`'s.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees carry over; the counter is only bookkeeping and never affects the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc`, upheld by our caller.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc_zeroed`, upheld by our caller.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes through
        // this wrapper), as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::realloc`, upheld by our caller; `ptr` came
        // from `System` through this wrapper.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

const N: usize = 10_000;

#[test]
fn idle_established_connections_cost_at_most_1k_each() {
    let opener = Opener::new(B_IP, PORT, N);
    let ports = opener.ports_needed();
    let link = LinkConfig::with_delay(Duration::from_micros(50));
    let mut sim = pair(
        5,
        vec![App::Opener(opener)],
        vec![App::Acceptor(Acceptor::new(PORT, ports))],
        link,
        link,
        |_| {},
    );
    let established = |s: &saps_stack::sim::Simulator<saps_stack::simhost::SimHost>| {
        let (App::Opener(o), App::Acceptor(a)) = (&s.node(0).apps[0], &s.node(1).apps[0]) else {
            unreachable!()
        };
        (o.established, a.accepted, o.failed + a.closed)
    };
    let deadline = after(&sim, 120);
    sim.run_while(deadline, |s| {
        let (o, a, _) = established(s);
        o < N || a < N
    });
    // Let every delayed ACK and timer settle: the connections are idle from here on.
    let deadline = after(&sim, 5);
    sim.run_until(deadline);
    let (o, a, failed) = established(&sim);
    assert_eq!((o, a, failed), (N, N, 0), "at {:?}", sim.now());
    for node in 0..2 {
        let st = sim.node(node).iface.connection_states();
        assert_eq!(st[State::Established as usize], N as u64, "node {node}");
        assert_eq!(sim.node(node).iface.tcp_connection_count(), N);
    }

    // Bytes held by each interface: swap in a fresh one and see how much dropping the loaded
    // one frees; subtract what a fresh interface (no connections) holds.
    let now = sim.now();
    let mut per_end = [0usize; 2];
    for (node, per) in per_end.iter_mut().enumerate() {
        let cfg = sim.node(node).iface.config().clone();
        let before = live();
        let fresh = Interface::new(cfg, now);
        let empty_bytes = live() - before;
        let loaded = std::mem::replace(&mut sim.node_mut(node).iface, fresh);
        let before = live();
        drop(loaded);
        let loaded_bytes = before - live();
        *per = (loaded_bytes - empty_bytes) / N;
        println!(
            "node {node}: interface with {N} idle established connections holds {loaded_bytes} B \
             (empty: {empty_bytes} B): {} B per connection",
            *per
        );
    }
    println!(
        "size_of::<Connection>() = {} B, size_of::<Option<Connection>>() = {} B",
        std::mem::size_of::<Connection>(),
        std::mem::size_of::<Option<Connection>>()
    );
    // The idle connection keeps no buffers: what it costs is its slab slot plus its share of
    // the flow table, timer wheel and egress bitmap.
    for (node, per) in per_end.iter().enumerate() {
        assert!(
            *per >= std::mem::size_of::<Connection>(),
            "node {node}: {per}"
        );
        assert!(
            *per <= 1024,
            "node {node}: {per} B per idle established connection"
        );
    }
}
