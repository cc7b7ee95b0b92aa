//! Inspect, reserve and mount Linux hugepages, and choose DPDK's EAL memory flags.
//!
//! - Reading: [`Status::read`] gathers `/proc/meminfo`, the per-size counts under
//!   `/sys/kernel/mm/hugepages/`, the per-NUMA-node counts under `/sys/devices/system/node/` and
//!   the hugetlbfs mounts in `/proc/mounts`. The parsers take text ([`parse_meminfo`],
//!   [`parse_mounts`], [`parse_size`]) so they are tested on fixtures.
//! - Changing (root): [`reserve`] writes `nr_hugepages` and re-reads what the kernel granted
//!   (it may grant fewer when memory is fragmented); [`mount`] mounts hugetlbfs.
//! - Choosing: [`eal_memory_args`] turns a [`Status`] into EAL flags: free pages on a mount ->
//!   `--huge-dir`; free pages but no mount -> `--in-memory`; none -> `--no-huge -m N` with a
//!   warning (tests only). [`file_prefix`] is unique per instance.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Errors: one line each, naming what failed and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The hugepage lines of `/proc/meminfo`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `HugePages_Total` (default size).
    pub total: u64,
    /// `HugePages_Free`.
    pub free: u64,
    /// `HugePages_Rsvd`.
    pub reserved: u64,
    /// `HugePages_Surp`.
    pub surplus: u64,
    /// `Hugepagesize` in kB (the default size).
    pub default_size_kb: u64,
    /// `Hugetlb` in kB (all sizes).
    pub hugetlb_kb: u64,
}

/// Parses `/proc/meminfo` text; missing lines stay 0.
pub fn parse_meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let v = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match key.trim() {
            "HugePages_Total" => m.total = v,
            "HugePages_Free" => m.free = v,
            "HugePages_Rsvd" => m.reserved = v,
            "HugePages_Surp" => m.surplus = v,
            "Hugepagesize" => m.default_size_kb = v,
            "Hugetlb" => m.hugetlb_kb = v,
            _ => {}
        }
    }
    m
}

/// Parses a page size like `2M`, `2MB`, `1G`, `2048kB`, `hugepages-2048kB` into kB.
pub fn parse_size(s: &str) -> Result<u64, Error> {
    let t = s.trim();
    let t = t.strip_prefix("hugepages-").unwrap_or(t);
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let n: u64 = num.parse().map_err(|_| {
        Error(format!(
            "{s:?} is not a page size; write it like \"2M\" or \"1G\""
        ))
    })?;
    let mult = match unit.trim_end_matches('b').trim_end_matches('i') {
        "k" => 1,
        "m" => 1024,
        "g" => 1024 * 1024,
        _ => {
            return Err(Error(format!(
                "{s:?} has an unknown unit; write the page size like \"2M\" or \"1G\""
            )))
        }
    };
    n.checked_mul(mult)
        .filter(|&kb| kb > 0)
        .ok_or_else(|| Error(format!("{s:?} is not a valid page size")))
}

/// `2048` -> `"2M"`, `1048576` -> `"1G"`.
pub fn format_size(kb: u64) -> String {
    if kb >= 1024 * 1024 && kb.is_multiple_of(1024 * 1024) {
        format!("{}G", kb / (1024 * 1024))
    } else if kb >= 1024 && kb.is_multiple_of(1024) {
        format!("{}M", kb / 1024)
    } else {
        format!("{kb}k")
    }
}

/// A hugetlbfs mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Mount point.
    pub path: PathBuf,
    /// Page size from the `pagesize=` option in kB, `None` for the default size.
    pub size_kb: Option<u64>,
}

/// The hugetlbfs mounts in `/proc/mounts` text.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_dev, path, fstype, opts) = (f.next()?, f.next()?, f.next()?, f.next()?);
            if fstype != "hugetlbfs" {
                return None;
            }
            let size_kb = opts
                .split(',')
                .find_map(|o| o.strip_prefix("pagesize="))
                .and_then(|s| parse_size(s).ok());
            Some(Mount {
                path: PathBuf::from(unescape_mount(path)),
                size_kb,
            })
        })
        .collect()
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Counts of one page size on one NUMA node.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeCounts {
    /// NUMA node number.
    pub node: u32,
    /// Pages reserved on the node.
    pub total: u64,
    /// Free pages on the node.
    pub free: u64,
    /// Surplus pages on the node.
    pub surplus: u64,
}

/// Counts of one page size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SizeStatus {
    /// Page size in kB.
    pub size_kb: u64,
    /// `nr_hugepages`: pages reserved.
    pub total: u64,
    /// `free_hugepages`.
    pub free: u64,
    /// `resv_hugepages`: promised to a mapping but not yet faulted in.
    pub reserved: u64,
    /// `surplus_hugepages`.
    pub surplus: u64,
    /// Per NUMA node (empty on kernels without NUMA sysfs).
    pub nodes: Vec<NodeCounts>,
}

impl SizeStatus {
    /// Pages a new user can get: free minus reserved-for-others.
    pub fn usable(&self) -> u64 {
        self.free.saturating_sub(self.reserved)
    }
}

/// Everything known about hugepages on this machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// `/proc/meminfo`.
    pub meminfo: MemInfo,
    /// Per size, ascending.
    pub sizes: Vec<SizeStatus>,
    /// hugetlbfs mounts.
    pub mounts: Vec<Mount>,
}

fn read_count(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Default locations.
pub const PROC_MEMINFO: &str = "/proc/meminfo";
/// Per-size counts.
pub const SYS_HUGEPAGES: &str = "/sys/kernel/mm/hugepages";
/// NUMA nodes.
pub const SYS_NODES: &str = "/sys/devices/system/node";
/// Mount table.
pub const PROC_MOUNTS: &str = "/proc/mounts";

impl Status {
    /// Reads the live system.
    pub fn read() -> Status {
        let meminfo = fs::read_to_string(PROC_MEMINFO).unwrap_or_default();
        let mounts = fs::read_to_string(PROC_MOUNTS).unwrap_or_default();
        Status::read_from(
            &meminfo,
            Path::new(SYS_HUGEPAGES),
            Path::new(SYS_NODES),
            &mounts,
        )
    }

    /// Builds a status from meminfo and mounts text and two sysfs directories (fixtures in
    /// tests). Missing files count as 0.
    pub fn read_from(
        meminfo: &str,
        sys_hugepages: &Path,
        sys_nodes: &Path,
        mounts: &str,
    ) -> Status {
        let mut sizes = Vec::new();
        for e in fs::read_dir(sys_hugepages).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(size_kb) = parse_size(&name) else {
                continue;
            };
            let d = e.path();
            let mut s = SizeStatus {
                size_kb,
                total: read_count(&d.join("nr_hugepages")),
                free: read_count(&d.join("free_hugepages")),
                reserved: read_count(&d.join("resv_hugepages")),
                surplus: read_count(&d.join("surplus_hugepages")),
                nodes: Vec::new(),
            };
            for n in fs::read_dir(sys_nodes).into_iter().flatten().flatten() {
                let nname = n.file_name().to_string_lossy().into_owned();
                let Some(node) = nname.strip_prefix("node").and_then(|x| x.parse().ok()) else {
                    continue;
                };
                let nd = n.path().join("hugepages").join(&name);
                if !nd.is_dir() {
                    continue;
                }
                s.nodes.push(NodeCounts {
                    node,
                    total: read_count(&nd.join("nr_hugepages")),
                    free: read_count(&nd.join("free_hugepages")),
                    surplus: read_count(&nd.join("surplus_hugepages")),
                });
            }
            s.nodes.sort_by_key(|n| n.node);
            sizes.push(s);
        }
        sizes.sort_by_key(|s| s.size_kb);
        let meminfo = parse_meminfo(meminfo);
        let mut mounts = parse_mounts(mounts);
        for m in &mut mounts {
            m.size_kb = m
                .size_kb
                .or(Some(meminfo.default_size_kb).filter(|&k| k > 0));
        }
        Status {
            meminfo,
            sizes,
            mounts,
        }
    }

    /// The counts of one size.
    pub fn size(&self, size_kb: u64) -> Option<&SizeStatus> {
        self.sizes.iter().find(|s| s.size_kb == size_kb)
    }

    /// A human-readable report (for `saps hugepages status`).
    pub fn report(&self) -> String {
        let mut out = String::new();
        if self.sizes.is_empty() {
            out.push_str("no hugepage sizes in sysfs (kernel without hugetlbfs?)\n");
        }
        for s in &self.sizes {
            out.push_str(&format!(
                "{:>4}: total {} free {} reserved {} surplus {}",
                format_size(s.size_kb),
                s.total,
                s.free,
                s.reserved,
                s.surplus
            ));
            let mounted: Vec<String> = self
                .mounts
                .iter()
                .filter(|m| m.size_kb == Some(s.size_kb))
                .map(|m| m.path.display().to_string())
                .collect();
            if mounted.is_empty() {
                out.push_str(", not mounted\n");
            } else {
                out.push_str(&format!(", mounted at {}\n", mounted.join(" ")));
            }
            for n in &s.nodes {
                out.push_str(&format!(
                    "      node{}: total {} free {} surplus {}\n",
                    n.node, n.total, n.free, n.surplus
                ));
            }
        }
        out.push_str(&format!(
            "meminfo: default size {}, HugePages_Total {} Free {} Rsvd {} Surp {}, Hugetlb {} kB\n",
            format_size(self.meminfo.default_size_kb),
            self.meminfo.total,
            self.meminfo.free,
            self.meminfo.reserved,
            self.meminfo.surplus,
            self.meminfo.hugetlb_kb
        ));
        let plan = eal_memory_args(self, 256, 0);
        out.push_str(&format!("EAL memory flags: {}\n", plan.args.join(" ")));
        if let Some(w) = plan.warning {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

/// What [`reserve`] got.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Page size in kB.
    pub size_kb: u64,
    /// Pages asked for.
    pub requested: u64,
    /// Pages the kernel reports after the write.
    pub granted: u64,
}

/// Sets the number of reserved pages of `size_kb` to `count` under `sys_hugepages` (normally
/// [`SYS_HUGEPAGES`]; root only) and re-reads what the kernel granted. Granting fewer is an
/// error that says how many it got.
pub fn reserve_in(sys_hugepages: &Path, size_kb: u64, count: u64) -> Result<Reservation, Error> {
    let dir = sys_hugepages.join(format!("hugepages-{size_kb}kB"));
    if !dir.is_dir() {
        return Err(Error(format!(
            "this kernel has no {} hugepages ({} missing); try --size 2M",
            format_size(size_kb),
            dir.display()
        )));
    }
    let f = dir.join("nr_hugepages");
    fs::write(&f, format!("{count}\n")).map_err(|e| {
        Error(format!(
            "writing {}: {e}; reserving hugepages needs root",
            f.display()
        ))
    })?;
    let granted = read_count(&f);
    let r = Reservation {
        size_kb,
        requested: count,
        granted,
    };
    if granted < count {
        return Err(Error(format!(
            "asked for {count} pages of {} but the kernel granted {granted} (memory too fragmented or too small); free memory or reserve at boot (hugepages= kernel parameter)",
            format_size(size_kb)
        )));
    }
    Ok(r)
}

/// [`reserve_in`] on the live sysfs.
pub fn reserve(size_kb: u64, count: u64) -> Result<Reservation, Error> {
    reserve_in(Path::new(SYS_HUGEPAGES), size_kb, count)
}

/// Mounts hugetlbfs of `size_kb` pages at `path` (created if missing) unless a hugetlbfs of that
/// size is already mounted there. Uses mount(8). Root only.
pub fn mount(path: &Path, size_kb: u64) -> Result<(), Error> {
    let status = Status::read();
    if status
        .mounts
        .iter()
        .any(|m| m.path == path && m.size_kb == Some(size_kb))
    {
        return Ok(());
    }
    fs::create_dir_all(path).map_err(|e| Error(format!("creating {}: {e}", path.display())))?;
    let out = std::process::Command::new("mount")
        .args(["-t", "hugetlbfs", "-o"])
        .arg(format!("pagesize={}", format_size(size_kb)))
        .arg("nodev")
        .arg(path)
        .output()
        .map_err(|e| Error(format!("running mount: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error(format!(
            "mounting hugetlbfs at {}: {}",
            path.display(),
            err.split_whitespace().collect::<Vec<_>>().join(" ")
        )));
    }
    Ok(())
}

/// How the EAL will get its memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MemoryMode {
    /// Hugepages from a hugetlbfs mount (`--huge-dir`).
    HugeDir,
    /// Hugepages without a mount (`--in-memory`, memfd-backed).
    InMemory,
    /// Ordinary pages (`--no-huge`): tests and software vdevs only.
    NoHuge,
}

/// EAL memory flags chosen by [`eal_memory_args`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The mode.
    pub mode: MemoryMode,
    /// Flags to pass to the EAL.
    pub args: Vec<String>,
    /// Something the operator should know (printed as a warning).
    pub warning: Option<String>,
}

/// Chooses EAL memory flags. `fallback_mb` is the `-m` size without hugepages; `need_mb` is the
/// memory the caller needs from hugepages (0 = any amount). If hugepages are reserved but fewer
/// than `need_mb` are free, the plan falls back to `--no-huge` with a warning that says how to
/// reserve more.
pub fn eal_memory_args(status: &Status, fallback_mb: u64, need_mb: u64) -> MemoryPlan {
    let need_kb = need_mb * 1024;
    let enough = |s: &SizeStatus| s.usable() > 0 && s.usable() * s.size_kb >= need_kb;
    // 1. A mounted size with enough free pages: normal mode on that mount.
    for s in status.sizes.iter().filter(|s| enough(s)) {
        if let Some(m) = status.mounts.iter().find(|m| m.size_kb == Some(s.size_kb)) {
            return MemoryPlan {
                mode: MemoryMode::HugeDir,
                args: vec!["--huge-dir".into(), m.path.display().to_string()],
                warning: None,
            };
        }
    }
    // 2. Free pages without a mount: in-memory mode needs no hugetlbfs mount.
    if status.sizes.iter().any(enough) {
        return MemoryPlan {
            mode: MemoryMode::InMemory,
            args: vec!["--in-memory".into()],
            warning: None,
        };
    }
    let free_mb: u64 = status
        .sizes
        .iter()
        .map(|s| s.usable() * s.size_kb / 1024)
        .sum();
    let why = if free_mb > 0 {
        format!("only {free_mb} MB of hugepages free, {need_mb} MB needed")
    } else {
        "no free hugepages".to_string()
    };
    MemoryPlan {
        mode: MemoryMode::NoHuge,
        args: vec!["--no-huge".into(), "-m".into(), fallback_mb.to_string()],
        warning: Some(format!(
            "{why}: running DPDK with --no-huge (fine for tests and virtual devices, not for real NICs); reserve some with `saps hugepages reserve --size 2M --count 512`"
        )),
    }
}

/// A `--file-prefix` value unique to this process and call, so several instances (and tests)
/// do not share EAL runtime files.
pub fn file_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "saps{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16307740 kB\n\
MemFree:         1234567 kB\n\
HugePages_Total:     512\n\
HugePages_Free:      500\n\
HugePages_Rsvd:        4\n\
HugePages_Surp:        0\n\
Hugepagesize:       2048 kB\n\
Hugetlb:         1048576 kB\n";

    const MOUNTS: &str = "sysfs /sys sysfs rw,nosuid 0 0\n\
hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n\
nodev /mnt/huge\\0401g hugetlbfs rw,relatime,pagesize=1024M 0 0\n\
none /mnt/plain hugetlbfs rw,relatime 0 0\n\
tmpfs /tmp tmpfs rw 0 0\n";

    struct Fixture(PathBuf);
    impl Fixture {
        fn new() -> Fixture {
            let d = std::env::temp_dir().join(format!("hugepages-test-{}", file_prefix()));
            let _ = fs::remove_dir_all(&d);
            Fixture(d)
        }
        fn write(&self, rel: &str, v: &str) {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, v).unwrap();
        }
    }
    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn meminfo_parses_hugepage_lines() {
        let m = parse_meminfo(MEMINFO);
        assert_eq!(
            m,
            MemInfo {
                total: 512,
                free: 500,
                reserved: 4,
                surplus: 0,
                default_size_kb: 2048,
                hugetlb_kb: 1048576
            }
        );
        assert_eq!(
            parse_meminfo("garbage\n:\nHugePages_Total: x\n"),
            MemInfo::default()
        );
    }

    #[test]
    fn sizes_parse_and_format() {
        assert_eq!(parse_size("2M"), Ok(2048));
        assert_eq!(parse_size("2MB"), Ok(2048));
        assert_eq!(parse_size("1G"), Ok(1048576));
        assert_eq!(parse_size("1GiB"), Ok(1048576));
        assert_eq!(parse_size("hugepages-2048kB"), Ok(2048));
        assert_eq!(parse_size("1024M"), Ok(1048576));
        for bad in ["", "M", "2X", "0M", "99999999999999999999G", "-2M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(2048), "2M");
        assert_eq!(format_size(1048576), "1G");
        assert_eq!(format_size(64), "64k");
    }

    #[test]
    fn mounts_only_hugetlbfs_with_sizes() {
        let m = parse_mounts(MOUNTS);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].path, PathBuf::from("/dev/hugepages"));
        assert_eq!(m[0].size_kb, Some(2048));
        assert_eq!(m[1].path, PathBuf::from("/mnt/huge 1g"));
        assert_eq!(m[1].size_kb, Some(1048576));
        assert_eq!(m[2].size_kb, None);
        assert!(parse_mounts("short line\n").is_empty());
    }

    fn fixture_status(free_2m: u64, mounts: &str) -> (Fixture, Status) {
        let f = Fixture::new();
        f.write("hp/hugepages-2048kB/nr_hugepages", "512\n");
        f.write(
            "hp/hugepages-2048kB/free_hugepages",
            &format!("{free_2m}\n"),
        );
        f.write("hp/hugepages-2048kB/resv_hugepages", "4\n");
        f.write("hp/hugepages-2048kB/surplus_hugepages", "0\n");
        f.write("hp/hugepages-1048576kB/nr_hugepages", "0\n");
        f.write("hp/hugepages-1048576kB/free_hugepages", "0\n");
        f.write("hp/not-a-size/nr_hugepages", "7\n");
        f.write(
            "nodes/node0/hugepages/hugepages-2048kB/nr_hugepages",
            "256\n",
        );
        f.write(
            "nodes/node0/hugepages/hugepages-2048kB/free_hugepages",
            "250\n",
        );
        f.write(
            "nodes/node1/hugepages/hugepages-2048kB/nr_hugepages",
            "256\n",
        );
        f.write(
            "nodes/node1/hugepages/hugepages-2048kB/free_hugepages",
            "250\n",
        );
        f.write("nodes/possible", "0-1\n");
        let s = Status::read_from(MEMINFO, &f.0.join("hp"), &f.0.join("nodes"), mounts);
        (f, s)
    }

    #[test]
    fn status_reads_sizes_and_nodes() {
        let (_f, s) = fixture_status(500, MOUNTS);
        assert_eq!(s.sizes.len(), 2);
        let two = s.size(2048).unwrap();
        assert_eq!((two.total, two.free, two.reserved), (512, 500, 4));
        assert_eq!(two.usable(), 496);
        assert_eq!(two.nodes.len(), 2);
        assert_eq!(two.nodes[1].node, 1);
        assert_eq!(two.nodes[1].free, 250);
        assert_eq!(s.size(1048576).unwrap().nodes.len(), 0);
        // The mount without pagesize= takes the default size.
        assert_eq!(s.mounts[2].size_kb, Some(2048));
        let r = s.report();
        assert!(r.contains("2M: total 512 free 500"), "{r}");
        assert!(r.contains("node1: total 256 free 250"), "{r}");
        assert!(r.contains("--huge-dir /dev/hugepages"), "{r}");
    }

    #[test]
    fn plan_prefers_mounted_then_in_memory_then_no_huge() {
        let (_f, s) = fixture_status(500, MOUNTS);
        let p = eal_memory_args(&s, 256, 512);
        assert_eq!(p.mode, MemoryMode::HugeDir);
        assert_eq!(p.args, vec!["--huge-dir", "/dev/hugepages"]);
        assert!(p.warning.is_none());

        let (_f, s) = fixture_status(500, "tmpfs /tmp tmpfs rw 0 0\n");
        let p = eal_memory_args(&s, 256, 512);
        assert_eq!(p.mode, MemoryMode::InMemory);
        assert_eq!(p.args, vec!["--in-memory"]);

        // 496 usable pages = 992 MB: not enough for 2048 MB.
        let p = eal_memory_args(&s, 256, 2048);
        assert_eq!(p.mode, MemoryMode::NoHuge);
        assert_eq!(p.args, vec!["--no-huge", "-m", "256"]);
        let w = p.warning.unwrap();
        assert!(w.contains("only 992 MB"), "{w}");

        let (_f, s) = fixture_status(0, MOUNTS);
        let p = eal_memory_args(&s, 128, 0);
        assert_eq!(p.mode, MemoryMode::NoHuge);
        assert!(p.warning.unwrap().starts_with("no free hugepages"));
        assert_eq!(
            eal_memory_args(&Status::default(), 64, 0).mode,
            MemoryMode::NoHuge
        );
    }

    #[test]
    fn reserve_checks_what_was_granted() {
        let f = Fixture::new();
        f.write("hp/hugepages-2048kB/nr_hugepages", "0\n");
        let r = reserve_in(&f.0.join("hp"), 2048, 16).unwrap();
        assert_eq!(r.granted, 16);
        assert_eq!(
            fs::read_to_string(f.0.join("hp/hugepages-2048kB/nr_hugepages")).unwrap(),
            "16\n"
        );
        let e = reserve_in(&f.0.join("hp"), 1048576, 1).unwrap_err();
        assert!(e.0.contains("no 1G hugepages"), "{e}");
    }

    #[test]
    fn file_prefixes_are_unique() {
        assert_ne!(file_prefix(), file_prefix());
        assert!(file_prefix().starts_with("saps"));
    }
}
