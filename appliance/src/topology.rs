//! Throwaway network topologies for the demo and the integration tests: network namespaces and
//! veth pairs made with iproute2, removed on drop (also when a test fails or the demo is
//! interrupted), with names unique to the process so parallel runs never collide.

use std::fs::File;
use std::io;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A number unique within this process, for names.
pub fn unique_id() -> usize {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Run a command and return its stdout; the error names the command, its status and stderr.
pub fn run(cmd: &mut Command) -> io::Result<String> {
    let line = format!("{cmd:?}");
    let out: Output = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{line}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{line} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Stop a child process: SIGTERM, wait up to `grace` for it to exit, then SIGKILL. Returns
/// whether it exited on its own with success (a clean shutdown).
pub fn stop_child(child: &mut std::process::Child, grace: std::time::Duration) -> bool {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Env var that turns a root-test skip into a failure (set by `scripts/test` and CI, which run as
/// root).
pub const REQUIRE_ROOT_ENV: &str = "SAPS_REQUIRE_ROOT_TESTS";

/// For tests that need root (namespaces, raw sockets): true if the test may run. When not root
/// it prints `SKIPPED (needs root): <name>` loudly and returns false, unless
/// `SAPS_REQUIRE_ROOT_TESTS=1`, in which case it panics: in CI a skipped root test is a failure.
pub fn require_root(test_name: &str) -> bool {
    use std::io::Write as _;
    if crate::os::geteuid() == 0 {
        return true;
    }
    if std::env::var(REQUIRE_ROOT_ENV).as_deref() == Ok("1") {
        panic!("{test_name} needs root but {REQUIRE_ROOT_ENV}=1 forbids skipping it");
    }
    // Written to the stderr handle directly: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        io::stderr(),
        "\n******** SKIPPED (needs root): {test_name} ********\n"
    );
    false
}

/// The environment a namespace-building command (`saps demo`, `saps bench`, ...) needs: root, and
/// each `(program, Debian package)` on the PATH. The error is one line naming the fix.
pub fn check_root_and_programs(command: &str, programs: &[(&str, &str)]) -> Result<(), String> {
    if crate::os::geteuid() != 0 {
        return Err(format!(
            "{command} builds network namespaces and needs root; run it with sudo (or as root)"
        ));
    }
    for (program, package) in programs {
        if !have_program(program) {
            return Err(format!(
                "`{program}` not found; install it with: apt-get install -y {package}"
            ));
        }
    }
    Ok(())
}

/// Whether a program is on the PATH.
pub fn have_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// A network namespace, deleted (with every interface in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create a namespace named `<prefix>-<pid>-<n>` with its loopback up.
    pub fn new(prefix: &str) -> io::Result<Netns> {
        let name = format!("{prefix}-{}-{}", std::process::id(), unique_id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Run `args` inside the namespace and return stdout.
    pub fn exec(&self, args: &[&str]) -> io::Result<String> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| io::Error::other("empty command"))?;
        run(self.command(program).args(rest))
    }

    /// Turn off checksum and segmentation offloads on `dev`, so frames on the wire are complete
    /// (a veth otherwise hands AF_PACKET frames with unfilled checksums and 64 KB GSO packets).
    pub fn disable_offloads(&self, dev: &str) -> io::Result<()> {
        self.exec(&[
            "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro",
            "off",
        ])
        .map(|_| ())
    }

    /// Steer the receive processing of frames arriving on `dev` to `core` (RPS on its one
    /// receive queue). A veth otherwise runs the receiver's whole stack in softirq on the core
    /// that sent the frame, so one "machine" of the topology would do another's kernel work.
    pub fn steer_receive_to_core(&self, dev: &str, core: usize) -> io::Result<()> {
        let mask = format!("{:x}", 1u64 << core.min(63));
        let path = format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus");
        // `ip netns exec` mounts the namespace's own /sys, where `dev` is visible.
        self.exec(&["sh", "-c", &format!("echo {mask} > {path}")])
            .map(|_| ())
    }

    /// Run `f` on a new thread that has entered this namespace; sockets it opens live there.
    pub fn spawn<T, F>(&self, f: F) -> io::Result<std::thread::JoinHandle<io::Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let file = File::open(format!("/var/run/netns/{}", self.name))?;
        Ok(std::thread::spawn(move || {
            crate::os::enter_netns(&file)?;
            f()
        }))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove_namespace(&self.name);
    }
}

/// SIGKILL every process still inside namespace `name` (never this one), then delete it; true if
/// it was deleted. Deleting a namespace only removes its name: a process inside (an orphaned
/// `saps run`, a client) would keep it, and its CPU, alive.
pub fn remove_namespace(name: &str) -> bool {
    if let Ok(pids) = run(Command::new("ip").args(["netns", "pids", name])) {
        let me = std::process::id();
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .filter(|&p| p != me)
        {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
        }
    }
    run(Command::new("ip").args(["netns", "del", name])).is_ok()
}

/// The namespaces in `ip netns list` output whose name starts with `prefix` and ends in
/// `-<pid>-<n>` ([`Netns::new`]'s names) of a process that no longer exists: what a run killed
/// with SIGKILL (or a crash) leaves behind.
pub fn stale_namespaces(list: &str, prefix: &str) -> Vec<String> {
    let mut stale = Vec::new();
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if !name.starts_with(prefix) {
            continue;
        }
        let mut fields = name.rsplit('-');
        let (n, pid) = (fields.next(), fields.next());
        let pid = pid.and_then(|p| p.parse::<u32>().ok());
        if let (Some(pid), true) = (pid, n.is_some_and(|n| n.parse::<u64>().is_ok())) {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                stale.push(name.to_string());
            }
        }
    }
    stale
}

/// Delete the stale namespaces (see [`stale_namespaces`]) starting with `prefix`, killing what
/// still runs inside them. Call it when a demo, bench or load test starts. Returns their names.
pub fn remove_stale(prefix: &str) -> Vec<String> {
    let list = run(Command::new("ip").args(["netns", "list"])).unwrap_or_default();
    stale_namespaces(&list, prefix)
        .into_iter()
        .filter(|name| remove_namespace(name))
        .collect()
}

/// A veth pair with one end in each of two namespaces. Deleting either namespace removes it.
#[derive(Debug)]
pub struct VethPair {
    /// Name of the end in the first namespace.
    pub a: String,
    /// Name of the end in the second namespace.
    pub b: String,
}

impl VethPair {
    /// Create `a` in `ns_a` and `b` in `ns_b`, both up, offloads off on both ends.
    pub fn new(ns_a: &Netns, ns_b: &Netns) -> io::Result<VethPair> {
        let id = format!("{}{}", std::process::id() % 100_000, unique_id());
        let a = format!("sa{id}");
        let b = format!("sb{id}");
        run(Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]))?;
        let pair = VethPair { a, b };
        let setup = (|| {
            run(Command::new("ip").args(["link", "set", &pair.a, "netns", ns_a.name()]))?;
            run(Command::new("ip").args(["link", "set", &pair.b, "netns", ns_b.name()]))?;
            ns_a.exec(&["ip", "link", "set", &pair.a, "up"])?;
            ns_b.exec(&["ip", "link", "set", &pair.b, "up"])?;
            ns_a.disable_offloads(&pair.a)?;
            ns_b.disable_offloads(&pair.b)?;
            Ok::<(), io::Error>(())
        })();
        if let Err(e) = setup {
            let _ = Command::new("ip").args(["link", "del", &pair.a]).output();
            return Err(e);
        }
        Ok(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_namespaces_are_those_of_dead_processes_with_the_prefix() {
        let me = std::process::id();
        // 99999999 is above the largest pid Linux hands out: that process cannot exist.
        let list = format!(
            "saps-demo-gw-99999999-3 (id: 4)\nsaps-bench-cl-{me}-1 (id: 5)\nother-99999999-1\nsaps-x-99999999-y\nsaps-99999999-0"
        );
        assert_eq!(
            stale_namespaces(&list, "saps-"),
            vec![
                "saps-demo-gw-99999999-3".to_string(),
                "saps-99999999-0".to_string()
            ]
        );
        assert!(stale_namespaces(&list, "pk-").is_empty());
    }
}
