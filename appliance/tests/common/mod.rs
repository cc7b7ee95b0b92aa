//! Helpers for integration tests that need root: skip-or-fail policy, network namespaces and veth
//! pairs (all through iproute2's `ip`), and running code inside a namespace.
//!
//! Everything created here is removed on drop (RAII), also when a test fails, and carries a name
//! unique to this test process (`saps-<pid>-<n>` for namespaces, `sp<pid><n>a|b` for veths).
#![allow(dead_code)]

pub mod rig;

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::process::Command;

/// The skip-or-fail policy of root tests (shared with the other crates' tests).
pub use saps::topology::require_root;

/// A number unique within this process.
pub fn next_id() -> usize {
    saps::topology::unique_id()
}

/// Runs a command; the error names the command line, its exit status and its stderr.
pub use saps::topology::run;

/// Runs `ip ARGS...`.
pub fn ip(args: &[&str]) -> io::Result<String> {
    run(Command::new("ip").args(args))
}

/// A network namespace that is deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `saps-<pid>-<n>` with its loopback up.
    pub fn new() -> io::Result<Netns> {
        let name = format!("saps-{}-{}", std::process::id(), next_id());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let mut cmd = Command::new("ip");
        cmd.arg("-n").arg(&self.name).args(args);
        run(&mut cmd)
    }

    /// Runs `ip netns exec NAME PROG ARGS...`.
    pub fn exec(&self, prog: &str, args: &[&str]) -> io::Result<String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, prog]).args(args);
        run(&mut cmd)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key_value: &str) -> io::Result<String> {
        self.exec("sysctl", &["-qw", key_value])
    }

    /// Turns checksum and segmentation offloads off on `dev` (the flags of
    /// `saps::topology::Netns::disable_offloads`): a veth otherwise hands an af_packet socket
    /// frames with unfilled checksums and 64 KB GSO super-frames, which no real wire carries.
    pub fn disable_offloads(&self, dev: &str) -> io::Result<String> {
        self.exec(
            "ethtool",
            &[
                "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
            ],
        )
    }

    /// Opens the namespace file (`/var/run/netns/NAME`).
    pub fn file(&self) -> io::Result<File> {
        let path = format!("/var/run/netns/{}", self.name);
        File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("open {path}: {e}")))
    }

    /// Runs `f` on a thread that has entered this namespace; sockets and devices it creates
    /// belong to the namespace for their whole life, whichever thread uses them later.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        run_in_netns(self, f)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Runs `f` on a scoped thread that has entered `ns` (setns on that thread only).
pub fn run_in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let file = ns.file()?;
    std::thread::scope(|s| {
        s.spawn(move || {
            saps::os::enter_netns(&file)?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("thread inside netns panicked"))?
    })
}

/// A veth pair; deleted on drop. Ends live in given namespaces or in the current one.
pub struct VethPair {
    /// Name of end A.
    pub a: String,
    /// Name of end B.
    pub b: String,
    ns_a: Option<String>,
}

impl VethPair {
    /// Creates `sp<pid><n>a` in `ns_a` and `sp<pid><n>b` in `ns_b`, both up, no addresses.
    pub fn new(ns_a: &Netns, ns_b: &Netns) -> io::Result<VethPair> {
        Self::create(Some(ns_a), Some(ns_b))
    }

    /// Like [`VethPair::new`]; `None` puts that end in the test process's current namespace.
    pub fn create(ns_a: Option<&Netns>, ns_b: Option<&Netns>) -> io::Result<VethPair> {
        let base = format!("sp{}{}", std::process::id() % 10_000_000, next_id());
        let (a, b) = (format!("{base}a"), format!("{base}b"));
        let mut args = vec!["link", "add", &a];
        if let Some(ns) = ns_a {
            args.extend(["netns", ns.name()]);
        }
        args.extend(["type", "veth", "peer", "name", &b]);
        if let Some(ns) = ns_b {
            args.extend(["netns", ns.name()]);
        }
        ip(&args)?;
        let pair = VethPair {
            a: a.clone(),
            b: b.clone(),
            ns_a: ns_a.map(|n| n.name().to_string()),
        };
        set_up(ns_a, &a)?;
        set_up(ns_b, &b)?;
        Ok(pair)
    }

    /// Moves end `dev` (one of `a`, `b`) from the current namespace into `ns` and brings it up.
    pub fn move_to(&mut self, dev: &str, ns: &Netns) -> io::Result<()> {
        ip(&["link", "set", dev, "netns", ns.name()])?;
        if dev == self.a {
            self.ns_a = Some(ns.name().to_string());
        }
        set_up(Some(ns), dev)?;
        Ok(())
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both; if the namespace is gone already, so is the pair.
        let _ = match &self.ns_a {
            Some(ns) => ip(&["-n", ns, "link", "del", &self.a]),
            None => ip(&["link", "del", &self.a]),
        };
    }
}

/// Brings `dev` up in `ns` (or in the current namespace).
pub fn set_up(ns: Option<&Netns>, dev: &str) -> io::Result<String> {
    match ns {
        Some(ns) => ns.ip(&["link", "set", dev, "up"]),
        None => ip(&["link", "set", dev, "up"]),
    }
}

/// Adds `cidr` (e.g. `10.0.0.2/24`) to `dev` in `ns`.
pub fn add_addr(ns: &Netns, dev: &str, cidr: &str) -> io::Result<String> {
    ns.ip(&["addr", "add", cidr, "dev", dev])
}

/// The address a port's own stack uses in a [`KernelTopology`] (nothing in the kernel has it).
pub const PORT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The kernel's address on its end of a [`KernelTopology`].
pub const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Prefix length of the [`KernelTopology`] subnet.
pub const PREFIX_LEN: u8 = 24;

/// A port under test facing the Linux kernel: two namespaces joined by a veth pair. `veth.a`
/// lives in `ns_port` without an address (an af_packet port opened on it owns the wire);
/// `veth.b` lives in `ns_kernel` with [`KERNEL_ADDR`], so the kernel's own ARP, ICMP and TCP
/// answer there. IPv6 is off in both namespaces and offloads are off on both ends, so every
/// frame on the wire is a complete frame with real checksums.
pub struct KernelTopology {
    // Drop order: the veth first, then the namespaces.
    /// The pair: `a` in `ns_port`, `b` in `ns_kernel`.
    pub veth: VethPair,
    /// Where the port under test opens `veth.a`.
    pub ns_port: Netns,
    /// Where the kernel's stack owns `veth.b`.
    pub ns_kernel: Netns,
}

/// Builds a [`KernelTopology`]; panics with the failing command if the environment cannot.
pub fn kernel_topology() -> KernelTopology {
    let ns_port = Netns::new().expect("create port netns");
    let ns_kernel = Netns::new().expect("create kernel netns");
    for ns in [&ns_port, &ns_kernel] {
        // Keep IPv6 autoconfiguration chatter off the wire.
        ns.sysctl("net.ipv6.conf.all.disable_ipv6=1")
            .expect("sysctl");
        ns.sysctl("net.ipv6.conf.default.disable_ipv6=1")
            .expect("sysctl");
    }
    let veth = VethPair::new(&ns_port, &ns_kernel).expect("create veth pair");
    ns_port
        .disable_offloads(&veth.a)
        .expect("offloads off on the port end");
    ns_kernel
        .disable_offloads(&veth.b)
        .expect("offloads off on the kernel end");
    add_addr(&ns_kernel, &veth.b, &format!("{KERNEL_ADDR}/{PREFIX_LEN}"))
        .expect("address on kernel end");
    KernelTopology {
        veth,
        ns_port,
        ns_kernel,
    }
}

/// Polls `cond` every millisecond until it returns `Some` or `timeout_ms` passes.
pub fn wait_for<T>(timeout_ms: u64, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if start.elapsed().as_millis() as u64 > timeout_ms {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
