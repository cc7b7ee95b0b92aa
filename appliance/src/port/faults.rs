//! Fault injection on the appliance's side of the wire: loss, duplication and reordering of
//! received and transmitted frames, so interoperability with Linux can be tested under loss
//! without netem (which this kernel lacks). For tests and experiments only; off by default.

use saps_stack::Instant;

use super::{Completions, Port, PortCounters, PortError, TxRingStatus};

/// Probabilities of each fault, per frame and direction.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Frames dropped.
    pub loss: f64,
    /// Frames delivered twice.
    pub duplicate: f64,
    /// Frames held back and delivered after the next one.
    pub reorder: f64,
    /// PRNG seed (runs are reproducible for a given frame sequence).
    pub seed: u64,
}

impl FaultConfig {
    /// Whether any fault is configured.
    pub fn is_active(&self) -> bool {
        self.loss > 0.0 || self.duplicate > 0.0 || self.reorder > 0.0
    }
}

/// Counters of what was injected.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Frames dropped.
    pub dropped: u64,
    /// Frames duplicated.
    pub duplicated: u64,
    /// Frames reordered.
    pub reordered: u64,
}

/// Longest time a reordered frame is held when no other frame follows it.
pub const REORDER_HOLD: saps_stack::Duration = saps_stack::Duration::from_millis(1);

/// A port wrapper that injects faults in both directions.
pub struct Faults<P: Port> {
    inner: P,
    cfg: FaultConfig,
    rng: u64,
    /// A received frame held back to be delivered after the next one (or after
    /// [`REORDER_HOLD`], so an idle link never keeps it forever).
    rx_held: Option<(Vec<u8>, Instant)>,
    /// A transmitted frame held back to be sent after the next one (or after [`REORDER_HOLD`]).
    tx_held: Option<(Vec<u8>, Instant)>,
    scratch: Vec<u8>,
    rx_scratch: Vec<Vec<u8>>,
    counters: FaultCounters,
}

impl<P: Port> Faults<P> {
    /// Wrap `inner`.
    pub fn new(inner: P, cfg: FaultConfig) -> Self {
        let slot = inner.mtu() + super::FRAME_OVERHEAD;
        Faults {
            inner,
            rng: cfg.seed ^ 0x9E37_79B9_7F4A_7C15,
            cfg,
            rx_held: None,
            tx_held: None,
            scratch: vec![0; slot],
            rx_scratch: Vec::new(),
            counters: FaultCounters::default(),
        }
    }

    /// What was injected so far.
    pub fn fault_counters(&self) -> FaultCounters {
        self.counters
    }

    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn send_raw(&mut self, now: Instant, frame: &[u8]) -> Result<usize, PortError> {
        self.inner.tx_frame(now, &mut |buf: &mut [u8]| {
            let n = frame.len().min(buf.len());
            buf[..n].copy_from_slice(&frame[..n]);
            n
        })
    }
}

impl<P: Port> Port for Faults<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn rx_burst(&mut self, now: Instant, max: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        // Collect first (the inner view is only valid during its callback), then deliver with
        // faults applied. The copies only happen when fault injection is on.
        let mut frames = std::mem::take(&mut self.rx_scratch);
        let mut used = 0;
        let n = self.inner.rx_burst(now, max, &mut |frame| {
            if frames.len() <= used {
                frames.push(Vec::new());
            }
            frames[used].clear();
            frames[used].extend_from_slice(frame);
            used += 1;
        });
        let mut delivered = 0;
        for slot in frames.iter_mut().take(used) {
            let frame = std::mem::take(slot);
            if self.chance(self.cfg.loss) {
                self.counters.dropped += 1;
            } else if self.rx_held.is_none() && self.chance(self.cfg.reorder) {
                self.counters.reordered += 1;
                self.rx_held = Some((frame.clone(), now));
            } else {
                f(&frame);
                delivered += 1;
                if self.chance(self.cfg.duplicate) {
                    self.counters.duplicated += 1;
                    f(&frame);
                    delivered += 1;
                }
                if let Some((held, _)) = self.rx_held.take() {
                    f(&held);
                    delivered += 1;
                }
            }
            *slot = frame;
        }
        self.rx_scratch = frames;
        if self
            .rx_held
            .as_ref()
            .is_some_and(|(_, at)| now.saturating_since(*at) >= REORDER_HOLD)
        {
            if let Some((held, _)) = self.rx_held.take() {
                f(&held);
                delivered += 1;
            }
        }
        // Frames taken from the device, or more if duplicates were delivered: a burst that
        // lost or held back frames still came back full, and the caller reads on.
        n.max(delivered)
    }

    fn tx_free(&mut self, now: Instant) -> usize {
        // Keep room for a duplicate and a held frame.
        self.inner.tx_free(now).saturating_sub(2)
    }

    fn tx_frame(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, PortError> {
        if self.inner.tx_free(now) < 3 {
            return Err(PortError::TxFull);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let len = fill(&mut scratch);
        let result = if len == 0 {
            Ok(0)
        } else if len > scratch.len() || len < super::MIN_FRAME_LEN {
            Err(PortError::BadLength)
        } else if self.chance(self.cfg.loss) {
            self.counters.dropped += 1;
            Ok(len)
        } else if self.tx_held.is_none() && self.chance(self.cfg.reorder) {
            self.counters.reordered += 1;
            self.tx_held = Some((scratch[..len].to_vec(), now));
            Ok(len)
        } else {
            let r = self.send_raw(now, &scratch[..len]);
            if r.is_ok() && self.chance(self.cfg.duplicate) {
                self.counters.duplicated += 1;
                let _ = self.send_raw(now, &scratch[..len]);
            }
            if let Some((held, _)) = self.tx_held.take() {
                let _ = self.send_raw(now, &held);
            }
            r
        };
        self.scratch = scratch;
        result
    }

    fn tx_flush(&mut self, now: Instant) -> usize {
        if self
            .tx_held
            .as_ref()
            .is_some_and(|(_, at)| now.saturating_since(*at) >= REORDER_HOLD)
        {
            if let Some((held, _)) = self.tx_held.take() {
                let _ = self.send_raw(now, &held);
            }
        }
        self.inner.tx_flush(now)
    }
    fn take_completions(&mut self, now: Instant) -> Completions {
        self.inner.take_completions(now)
    }
    fn tx_ring(&self) -> TxRingStatus {
        self.inner.tx_ring()
    }
    fn link_up(&self) -> bool {
        self.inner.link_up()
    }
    fn counters(&self) -> PortCounters {
        self.inner.counters()
    }
}
