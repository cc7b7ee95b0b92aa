//! Structured fuzz harnesses for saps-stack, shared by the libFuzzer targets in `fuzz_targets/`,
//! the seed generator (`examples/gen_seeds.rs`) and the replay tests (`tests/seeds.rs`).
//!
//! Inputs are decoded with [`Reader`], a byte cursor that yields zeros once the input is used up,
//! so every byte string is a valid program and the fuzzer's mutations stay meaningful. Each
//! harness has a matching encoder so seed inputs are written as readable scenarios.
#![forbid(unsafe_code)]

pub mod iface_frames;
pub mod tcp_connection;

/// Whether `SAPS_FUZZ_TRACE` is set: the harnesses then print every step and output segment
/// (for reading a crash reproducer: `SAPS_FUZZ_TRACE=1 target/.../tcp_connection crash-file`).
pub fn tracing() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("SAPS_FUZZ_TRACE").is_some())
}

/// `eprintln!` when tracing.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::tracing() {
            eprintln!($($arg)*);
        }
    };
}

/// A cursor over fuzzer input; reads past the end return zero.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// Little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` raw bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }
}

/// The encoder matching [`Reader`].
#[derive(Default)]
pub struct Writer {
    /// Bytes written so far.
    pub out: Vec<u8>,
}

impl Writer {
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }
    /// Little-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }
}

/// Content of the peer's byte stream at sequence number `seq`: data depends only on its
/// position, so whatever the receiver reassembles can be checked byte for byte.
pub fn peer_byte(seq: u32) -> u8 {
    let x = seq.wrapping_mul(0x9E37_79B1);
    (x >> 24) as u8 ^ (seq as u8)
}

/// Content of the application's byte stream at offset `off` (what `send` was given).
pub fn app_byte(off: u32) -> u8 {
    let x = off.wrapping_mul(0x85EB_CA77).wrapping_add(0x1234_5678);
    (x >> 24) as u8
}
