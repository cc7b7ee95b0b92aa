//! A test rig: the appliance (`saps run` on af_packet) in one namespace, Linux clients in another,
//! joined by a veth pair. Everything is removed on drop.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use saps::topology::{Netns, VethPair};

/// The appliance's address in every rig.
pub const APPLIANCE_IP: &str = "10.78.0.2";
/// The client namespace's address.
pub const CLIENT_IP: &str = "10.78.0.1";
/// Telemetry address inside the appliance's namespace.
pub const TELEMETRY: &str = "127.0.0.1:9100";

/// The running rig.
pub struct Rig {
    pub gw: Netns,
    pub cl: Netns,
    pub veth: VethPair,
    child: Option<Child>,
    pub config_path: std::path::PathBuf,
    pub log_path: std::path::PathBuf,
}

/// Services every rig binds: the same set as the demo.
pub const SERVICES: &str = saps::demo::ALL_SERVICES;

impl Rig {
    /// Start the appliance with `port_extra` appended to its `[[port]]` table and `extra`
    /// appended to the config.
    pub fn start(port_extra: &str, extra: &str) -> io::Result<Rig> {
        let gw = Netns::new("saps-t-gw")?;
        let cl = Netns::new("saps-t-cl")?;
        let veth = VethPair::new(&gw, &cl)?;
        cl.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{CLIENT_IP}/24"),
            "dev",
            &veth.b,
        ])?;
        let config = format!(
            "[[port]]\nname = \"ext\"\nbackend = \"af_packet\"\niface = \"{}\"\nipv4 = \"{APPLIANCE_IP}/24\"\n{port_extra}\n{SERVICES}\n[telemetry]\nlisten = \"{TELEMETRY}\"\n{extra}\n",
            veth.a
        );
        let id = format!("{}-{}", std::process::id(), saps::topology::unique_id());
        let config_path = std::env::temp_dir().join(format!("saps-test-{id}.toml"));
        let log_path = std::env::temp_dir().join(format!("saps-test-{id}.log"));
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(&log_path)?;
        let child = gw
            .command(env!("CARGO_BIN_EXE_saps"))
            .args(["run", "--config"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        let mut rig = Rig {
            gw,
            cl,
            veth,
            child: Some(child),
            config_path,
            log_path,
        };
        rig.wait_healthy()?;
        Ok(rig)
    }

    fn wait_healthy(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    return Err(io::Error::other(format!(
                        "appliance exited early ({status}): {}",
                        self.log()
                    )));
                }
            }
            if self
                .gw
                .exec(&[
                    "curl",
                    "-sf",
                    "--max-time",
                    "1",
                    &format!("http://{TELEMETRY}/healthz"),
                ])
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "appliance not healthy after 20 s: {}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The appliance's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Scrape /metrics from inside the appliance's namespace. The data plane publishes every
    /// 100 ms, so this waits a little first: counters then include everything that just happened.
    pub fn metrics(&self) -> String {
        std::thread::sleep(Duration::from_millis(250));
        self.gw
            .exec(&[
                "curl",
                "-s",
                "--max-time",
                "2",
                &format!("http://{TELEMETRY}/metrics"),
            ])
            .unwrap_or_default()
    }

    /// The appliance's `/connections` table (one line per TCP connection).
    pub fn connections(&self) -> String {
        self.gw
            .exec(&[
                "curl",
                "-s",
                "--max-time",
                "3",
                &format!("http://{TELEMETRY}/connections"),
            ])
            .unwrap_or_default()
    }

    /// Run a client command in the client namespace.
    pub fn client(&self, args: &[&str]) -> io::Result<String> {
        self.cl.exec(args)
    }

    /// Run `f` in the client namespace (kernel sockets there) and return its result.
    pub fn in_client<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        self.cl
            .spawn(f)?
            .join()
            .map_err(|_| io::Error::other("client thread panicked"))?
    }

    /// Stop the appliance and return whether it exited cleanly (SIGTERM handled).
    pub fn stop(&mut self) -> io::Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(true);
        };
        Ok(saps::topology::stop_child(
            &mut child,
            Duration::from_secs(5),
        ))
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_file(&self.config_path);
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        } else {
            eprintln!("appliance log kept at {}", self.log_path.display());
        }
    }
}

/// Sum of every sample of metric `name` (any labels) in a Prometheus text scrape.
pub fn metric(text: &str, name: &str) -> f64 {
    saps::telemetry::sample_sum(text, name, &[])
}

/// The value of one labelled sample, e.g. `metric_labelled(t, "saps_stack_drops_total", "reason=\"paws\"")`.
pub fn metric_labelled(text: &str, name: &str, label: &str) -> f64 {
    saps::telemetry::sample_sum(text, name, &[label])
}

/// Connect from the current (client-namespace) thread.
pub fn connect(port: u16) -> io::Result<TcpStream> {
    let addr: SocketAddr = format!("{APPLIANCE_IP}:{port}")
        .parse()
        .map_err(io::Error::other)?;
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    Ok(s)
}

/// A cheap, position-dependent checksum of a stream (FNV-1a over 64-bit words and the tail).
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHash(pub u64, pub u64);

impl StreamHash {
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        let mut h = if self.1 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in data {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
        self.1 += data.len() as u64;
    }
}

/// Write `total` pattern bytes to `w` (in 64 KiB chunks), hashing them.
pub fn write_pattern(w: &mut impl Write, total: usize, seed: u8) -> io::Result<StreamHash> {
    let mut hash = StreamHash::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    while sent < total {
        let n = chunk.len().min(total - sent);
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            let p = sent + i;
            *b = (p as u8).wrapping_mul(31).wrapping_add(seed) ^ (p >> 16) as u8;
        }
        w.write_all(&chunk[..n])?;
        hash.update(&chunk[..n]);
        sent += n;
    }
    Ok(hash)
}

/// Read `r` to EOF, hashing it.
pub fn read_hash(r: &mut impl Read) -> io::Result<StreamHash> {
    let mut hash = StreamHash::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(hash);
        }
        hash.update(&buf[..n]);
    }
}
