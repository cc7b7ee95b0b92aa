//! The egress seam: how data segments are admitted into the port's TX ring.
//!
//! The interface never builds a data segment on its own initiative. Connections that have data
//! allowed by their congestion and receive windows are *enqueued* here; the interface asks
//! [`EgressScheduler::dequeue_burst`] which flow may put its next segments into the ring and how
//! many in a row, builds exactly those segments (one per `poll_transmit` call), and reports the
//! burst with [`EgressScheduler::on_burst_end`] (per segment only the ring accounting of
//! [`EgressScheduler::on_burst_segment`]). A scheduler may keep the per-segment pair
//! [`EgressScheduler::dequeue`] / [`EgressScheduler::on_transmit`]: the burst methods' defaults
//! map onto it with bursts of one. A flow that is not admitted
//! keeps its data in its send queue, so holding a flow back ("not now") and resuming it later can
//! neither lose nor duplicate anything. Pure ACKs and control segments (SYN, FIN, RST) never pass
//! through here: the interface sends them ahead of data.
//!
//! The `fairness` crate implements this trait with a TX-ring bound and round-robin service of
//! held-back flows; [`FifoEgress`] is the plain policy of a kernel without TSQ/BQL.

use std::collections::VecDeque;

use crate::time::Instant;

/// A flow as the scheduler sees it: the interface's connection slot index (dense, reused).
pub type FlowId = u32;

/// Decides which flow's data segment goes into the TX ring next.
pub trait EgressScheduler {
    /// Whether [`dequeue_burst`](Self::dequeue_burst) may grant more than one segment. The
    /// interface keeps burst state across `poll_transmit` calls only when it is `true`, so a
    /// scheduler of single-segment grants pays nothing for the batched seam.
    const BATCHED: bool = false;

    /// `flow` has a data segment ready. Calling it for a flow already waiting changes nothing.
    fn enqueue(&mut self, flow: FlowId, now: Instant);
    /// The flow allowed to put one segment into the ring now, removed from the waiting set until
    /// [`on_transmit`](Self::on_transmit) says it has more. `None` when nothing waits or the ring
    /// is at its limit.
    fn dequeue(&mut self, now: Instant) -> Option<FlowId>;
    /// A segment of `bytes` from the flow last dequeued went into the ring (`bytes == 0`: it had
    /// nothing to send after all). `more`: the flow still has a segment ready.
    fn on_transmit(&mut self, flow: FlowId, bytes: usize, more: bool, now: Instant);
    /// The port reports `packets` / `bytes` that left the TX ring.
    fn on_completion(&mut self, packets: u32, bytes: u64, now: Instant);
    /// Control segments (ACKs, SYN, FIN, RST) that bypassed the scheduler but occupy the ring.
    fn on_bypass(&mut self, bytes: usize, now: Instant);
    /// The flow is gone; forget it.
    fn remove(&mut self, flow: FlowId);
    /// Flows waiting to be admitted.
    fn waiting(&self) -> usize;

    /// Batched admission: the flow allowed to put data segments into the ring now and how many
    /// it may put in a row (at least 1) without being asked again. The interface then sends that
    /// flow's segments across `poll_transmit` calls, checking [`burst_room`](Self::burst_room)
    /// before each segment after the first, reporting each with
    /// [`on_burst_segment`](Self::on_burst_segment), and ends the burst with
    /// [`on_burst_end`](Self::on_burst_end) when the grant is used up, the ring is full, the
    /// flow has nothing more, or its segment cannot be built. The default grants one segment
    /// through [`dequeue`](Self::dequeue), so a scheduler written for the per-segment calls keeps
    /// working unchanged.
    fn dequeue_burst(&mut self, now: Instant) -> Option<(FlowId, u32)> {
        self.dequeue(now).map(|flow| (flow, 1))
    }
    /// Whether one more data segment of the flow in its burst fits into the ring now (control
    /// segments may have taken room since the grant). Only asked inside a burst of more than one.
    fn burst_room(&self) -> bool {
        false
    }
    /// One data segment of `bytes` of the flow in its burst went into the ring: ring accounting
    /// only, no per-flow work. The default does nothing (the default `on_burst_end` reports the
    /// segment through [`on_transmit`](Self::on_transmit)).
    fn on_burst_segment(&mut self, _bytes: usize) {}
    /// The burst of `flow` is over: it put `packets` segments of `bytes` in total into the ring
    /// (already reported one by one with `on_burst_segment`); `more`: it still has a segment
    /// ready. The default, for a burst of at most one segment, is `on_transmit`.
    fn on_burst_end(
        &mut self,
        flow: FlowId,
        _packets: u32,
        bytes: usize,
        more: bool,
        now: Instant,
    ) {
        self.on_transmit(flow, bytes, more, now);
    }

    /// Whether `flow` could put a data segment into the ring right now, outside its turn. The
    /// interface asks this before sending a pure ACK: if the flow has data and may send, the ACK
    /// rides on the data segment instead of costing a frame of its own. The default, `false`,
    /// keeps ACKs independent of admission; a scheduler without limits returns `true`.
    fn may_send_now(&self, _flow: FlowId, _now: Instant) -> bool {
        false
    }
}

/// First come, first served, no limit: a flow that is admitted keeps sending until it has
/// nothing left, as a kernel without TSQ, BQL or fq behaves. The baseline of the SAPS paper.
#[derive(Debug, Default)]
pub struct FifoEgress {
    queue: VecDeque<FlowId>,
    /// Membership bit per flow id, so enqueue is idempotent in O(1).
    queued: Vec<bool>,
    /// How many entries of `queued` are set: `waiting` is asked on every `poll_transmit`, and
    /// counting the flags would cost one step per connection slot.
    waiting: usize,
}

impl FifoEgress {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self::default()
    }

    fn mark(&mut self, flow: FlowId, on: bool) -> bool {
        let i = flow as usize;
        if i >= self.queued.len() {
            self.queued.resize(i + 1, false);
        }
        let was = std::mem::replace(&mut self.queued[i], on);
        if was != on {
            if on {
                self.waiting += 1;
            } else {
                self.waiting -= 1;
            }
        }
        was
    }
}

impl EgressScheduler for FifoEgress {
    fn enqueue(&mut self, flow: FlowId, _now: Instant) {
        if !self.mark(flow, true) {
            self.queue.push_back(flow);
        }
    }

    fn dequeue(&mut self, _now: Instant) -> Option<FlowId> {
        while let Some(flow) = self.queue.pop_front() {
            // A removed flow leaves a stale entry behind; skip it.
            if self.mark(flow, false) {
                return Some(flow);
            }
        }
        None
    }

    fn on_transmit(&mut self, flow: FlowId, _bytes: usize, more: bool, _now: Instant) {
        if more && !self.mark(flow, true) {
            // Keep the same flow at the head: it bursts its whole window, like a kernel would.
            self.queue.push_front(flow);
        }
    }

    fn on_completion(&mut self, _packets: u32, _bytes: u64, _now: Instant) {}

    fn on_bypass(&mut self, _bytes: usize, _now: Instant) {}

    fn remove(&mut self, flow: FlowId) {
        if let Some(bit) = self.queued.get_mut(flow as usize) {
            if std::mem::replace(bit, false) {
                self.waiting -= 1;
            }
        }
    }

    fn waiting(&self) -> usize {
        debug_assert_eq!(self.waiting, self.queued.iter().filter(|b| **b).count());
        self.waiting
    }

    fn may_send_now(&self, _flow: FlowId, _now: Instant) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_keeps_a_flow_at_the_head_until_it_has_nothing_left() {
        let mut fifo = FifoEgress::new();
        let now = Instant::ZERO;
        fifo.enqueue(1, now);
        fifo.enqueue(2, now);
        fifo.enqueue(1, now);
        assert_eq!(fifo.waiting(), 2);
        assert_eq!(fifo.dequeue(now), Some(1));
        fifo.on_transmit(1, 1500, true, now);
        assert_eq!(fifo.dequeue(now), Some(1));
        fifo.on_transmit(1, 1500, false, now);
        assert_eq!(fifo.dequeue(now), Some(2));
        fifo.on_transmit(2, 1500, false, now);
        assert_eq!(fifo.dequeue(now), None);
    }

    #[test]
    fn default_burst_methods_are_the_per_segment_calls() {
        let mut fifo = FifoEgress::new();
        let now = Instant::ZERO;
        fifo.enqueue(1, now);
        fifo.enqueue(2, now);
        assert_eq!(fifo.dequeue_burst(now), Some((1, 1)));
        assert!(!fifo.burst_room());
        fifo.on_burst_segment(1500);
        fifo.on_burst_end(1, 1, 1500, true, now);
        // `more` kept flow 1 at the head, as `on_transmit` does.
        assert_eq!(fifo.dequeue_burst(now), Some((1, 1)));
        fifo.on_burst_end(1, 1, 1500, false, now);
        assert_eq!(fifo.dequeue_burst(now), Some((2, 1)));
        fifo.on_burst_end(2, 1, 1500, false, now);
        assert_eq!(fifo.dequeue_burst(now), None);
    }

    #[test]
    fn removed_flows_are_skipped() {
        let mut fifo = FifoEgress::new();
        let now = Instant::ZERO;
        fifo.enqueue(3, now);
        fifo.enqueue(4, now);
        fifo.remove(3);
        fifo.remove(3);
        assert_eq!(fifo.waiting(), 1);
        assert_eq!(fifo.dequeue(now), Some(4));
        assert_eq!(fifo.waiting(), 0);
        assert_eq!(fifo.dequeue(now), None);
        // Re-enqueueing a removed id works (slot reuse).
        fifo.enqueue(3, now);
        assert_eq!(fifo.dequeue(now), Some(3));
    }
}
