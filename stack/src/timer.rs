//! A hashed timing wheel for per-connection deadlines.
//!
//! Keys are dense small integers (connection slab indices). Each key has at most one deadline.
//! Per-key state lives in a `Vec` indexed by key and the wheel slots are intrusive doubly-linked
//! lists threaded through it, so scheduling and cancelling are O(1) and allocate only when a key
//! beyond the current capacity appears. Nothing ever scans all connections.
//!
//! Time is cut into ticks of `granularity`. A deadline `d` is due at tick `T = ceil(d / g)`, i.e.
//! at time `T * g`: a timer never fires early and fires at most one granularity late (less than
//! `g` after its deadline when the caller polls at [`TimerWheel::next_deadline`]). Deadlines more
//! than one revolution (`slots * g`) ahead share a slot with nearer ones; each entry keeps its
//! absolute tick, and a slot visit only takes the entries that are due, so far deadlines simply
//! stay until a later revolution.
//!
//! Polling does bounded work per call (see [`TimerWheel::poll_expired`]). Callers drain like this:
//!
//! ```
//! # use saps_stack::timer::TimerWheel;
//! # use saps_stack::time::{Duration, Instant};
//! # let mut wheel = TimerWheel::new(Duration::from_millis(1), 256, 16);
//! # let now = Instant::from_millis(5);
//! loop {
//!     while let Some(key) = wheel.poll_expired(now) {
//!         // handle the timeout of connection `key`
//! #       let _ = key;
//!     }
//!     // `None` may mean "work budget used up": more is due while the lower bound is <= now.
//!     match wheel.next_deadline() {
//!         Some(t) if t <= now => continue,
//!         _ => break,
//!     }
//! }
//! ```
//!
//! `now` must not go backwards between calls.

use crate::time::{Duration, Instant};

/// End of a list.
const NIL: u32 = u32::MAX;
/// Scan state "the slot of `cursor` has not been started".
const START: u32 = u32::MAX - 1;
/// `Entry::slot` of a key that is not scheduled.
const UNSCHEDULED: u32 = u32::MAX;
/// Entries examined plus slots jumped per `poll_expired` call (small under test so the
/// budget-exhausted path is exercised by the model test).
const WORK_PER_POLL: u32 = if cfg!(test) { 8 } else { 64 };

#[derive(Copy, Clone, Debug)]
struct Entry {
    prev: u32,
    next: u32,
    /// Which list holds the key: a wheel slot, `slots` for the due list, or `UNSCHEDULED`.
    slot: u32,
    /// Absolute tick at which the deadline is due.
    tick: u64,
}

const EMPTY: Entry = Entry {
    prev: NIL,
    next: NIL,
    slot: UNSCHEDULED,
    tick: 0,
};

/// A hashed timing wheel: O(1) schedule/cancel, bounded work per poll, one deadline per key.
#[derive(Clone, Debug)]
pub struct TimerWheel {
    granularity_us: u64,
    /// `slots - 1`; the slot count is a power of two.
    mask: u64,
    /// List heads: one per wheel slot, then the due list (keys found or scheduled already due).
    heads: Vec<u32>,
    /// Tail of the due list, so it is served first in, first out.
    due_tail: u32,
    /// Bit per wheel slot, set while the slot's list is non-empty.
    occupied: Vec<u64>,
    /// Bit per word of `occupied`, set while that word is non-zero.
    summary: Vec<u64>,
    entries: Vec<Entry>,
    /// The tick being (or next to be) processed; every tick before it has been swept.
    cursor: u64,
    /// Next entry to examine in the slot of `cursor`, `START` before the sweep of that slot.
    scan: u32,
    len: usize,
}

impl TimerWheel {
    /// A wheel of `slots` (rounded up to a power of two, at least 64) slots of `granularity`
    /// (at least 1 µs), with room for keys below `capacity_hint` before any allocation.
    pub fn new(granularity: Duration, slots: usize, capacity_hint: usize) -> TimerWheel {
        let slots = slots.max(64).next_power_of_two();
        let words = slots / 64;
        TimerWheel {
            granularity_us: granularity.total_micros().max(1),
            mask: slots as u64 - 1,
            heads: vec![NIL; slots + 1],
            due_tail: NIL,
            occupied: vec![0; words],
            summary: vec![0; words.div_ceil(64)],
            entries: vec![EMPTY; capacity_hint],
            cursor: 0,
            scan: START,
            len: 0,
        }
    }

    /// Number of keys with a deadline.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tick length.
    pub fn granularity(&self) -> Duration {
        Duration::from_micros(self.granularity_us)
    }

    /// Whether `key` currently has a deadline.
    pub fn is_scheduled(&self, key: u32) -> bool {
        self.entries
            .get(key as usize)
            .is_some_and(|e| e.slot != UNSCHEDULED)
    }

    /// The time at which `key` will be due (its deadline rounded up to the granularity).
    pub fn due_time(&self, key: u32) -> Option<Instant> {
        let e = self.entries.get(key as usize)?;
        (e.slot != UNSCHEDULED).then(|| self.tick_start(e.tick))
    }

    fn due_slot(&self) -> u32 {
        (self.mask + 1) as u32
    }

    fn tick_start(&self, tick: u64) -> Instant {
        Instant::from_micros(tick.saturating_mul(self.granularity_us))
    }

    /// Sets the deadline of `key`, replacing any earlier one. Keys must be below `u32::MAX - 1`
    /// (larger ones are ignored); a key beyond the capacity grows the per-key table once.
    pub fn schedule(&mut self, key: u32, deadline: Instant) {
        if key >= START {
            debug_assert!(false, "timer key {key} out of range");
            return;
        }
        if key as usize >= self.entries.len() {
            let want = (key as usize + 1).max(self.entries.len() * 2);
            self.entries.resize(want, EMPTY);
        }
        let tick = deadline.total_micros().div_ceil(self.granularity_us);
        let e = self.entries[key as usize];
        if e.slot != UNSCHEDULED && e.tick == tick {
            // Same tick as before (the common case: a connection re-arms its timer after every
            // segment): the entry already sits where it belongs, in its slot or the due list.
            return;
        }
        self.unlink(key);
        self.entries[key as usize].tick = tick;
        // Already due (the sweep has passed its tick, or is inside it): straight to the due list,
        // because the sweep will not come back to that slot for this tick.
        let swept = tick < self.cursor || (tick == self.cursor && self.scan != START);
        if swept {
            self.push_due(key);
        } else {
            self.push_slot(key, (tick & self.mask) as u32);
        }
        self.len += 1;
    }

    /// Makes `key` due no later than `deadline`: schedules it when it has no deadline or a later
    /// one, and leaves an earlier one in place. For lazy callers whose deadlines mostly move
    /// later (a retransmission timer pushed back by every segment): the early expiry finds
    /// nothing to do and re-arms, once per timer period instead of a wheel move per segment.
    #[inline]
    pub fn schedule_no_later(&mut self, key: u32, deadline: Instant) {
        if let Some(e) = self.entries.get(key as usize) {
            if e.slot != UNSCHEDULED
                && e.tick <= deadline.total_micros().div_ceil(self.granularity_us)
            {
                return;
            }
        }
        self.schedule(key, deadline);
    }

    /// Removes the deadline of `key`, if any.
    pub fn cancel(&mut self, key: u32) {
        if (key as usize) < self.entries.len() {
            self.unlink(key);
        }
    }

    /// Returns one key whose deadline is `<= now` and unschedules it, or `None`.
    ///
    /// Work per call is bounded (a few dozen list entries or slot jumps). `None` therefore means
    /// either "nothing is due" or "budget used up"; in the second case [`Self::next_deadline`]
    /// is `<= now`, so callers loop until `next_deadline()` is `None` or later than `now` (see the
    /// module documentation).
    pub fn poll_expired(&mut self, now: Instant) -> Option<u32> {
        let now_tick = now.total_micros() / self.granularity_us;
        let slots = self.mask + 1;
        let mut budget = WORK_PER_POLL;
        loop {
            let head = self.heads[self.due_slot() as usize];
            if head != NIL {
                self.unlink(head);
                return Some(head);
            }
            if budget == 0 {
                return None;
            }
            if self.scan == NIL {
                // The slot of `cursor` is finished.
                self.scan = START;
                self.cursor += 1;
            }
            if self.scan == START {
                if self.cursor > now_tick {
                    return None;
                }
                // After a long gap one revolution covers every slot: start it so that it ends at
                // `now_tick`. Entries older than the new cursor are due and taken on the way.
                if now_tick - self.cursor >= slots {
                    self.cursor = now_tick - slots + 1;
                }
                budget -= 1;
                match self.next_occupied_distance(self.cursor) {
                    Some(d) if self.cursor + d <= now_tick => {
                        self.cursor += d;
                        self.scan = self.heads[(self.cursor & self.mask) as usize];
                    }
                    _ => {
                        // Nothing occupied up to `now_tick`: every tick through it is swept.
                        self.cursor = now_tick + 1;
                        return None;
                    }
                }
            }
            while self.scan != NIL && budget > 0 {
                let key = self.scan;
                let e = self.entries[key as usize];
                self.scan = e.next;
                budget -= 1;
                if e.tick <= now_tick {
                    self.unlink(key);
                    return Some(key);
                }
            }
        }
    }

    /// The earliest time at which a key becomes due, or a lower bound of it; `None` when empty.
    /// A value `<= now` after `poll_expired(now)` returned `None` means more work is pending.
    /// Cost: a few bitmap words.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        let head = self.heads[self.due_slot() as usize];
        if head != NIL {
            let tick = self.entries[head as usize].tick.min(self.cursor);
            return Some(self.tick_start(tick));
        }
        if self.scan != START {
            // Inside (or just finished) the sweep of `cursor`'s slot.
            return Some(self.tick_start(self.cursor));
        }
        let d = self.next_occupied_distance(self.cursor)?;
        Some(self.tick_start(self.cursor + d))
    }

    /// Circular distance from the slot of `tick` to the next non-empty slot (0 if that slot).
    fn next_occupied_distance(&self, tick: u64) -> Option<u64> {
        let slots = self.mask + 1;
        let s = (tick & self.mask) as usize;
        let found = self.find_set_from(s).or_else(|| self.find_set_from(0))? as u64;
        Some((found + slots - s as u64) & self.mask)
    }

    /// Index of the first occupied slot `>= pos`, without wrapping.
    fn find_set_from(&self, pos: usize) -> Option<usize> {
        let w = pos / 64;
        let bits = self.occupied[w] & (!0u64 << (pos % 64));
        if bits != 0 {
            return Some(w * 64 + bits.trailing_zeros() as usize);
        }
        // Then whole words, located through the summary bitmap.
        let first = w + 1;
        let mut sw = first / 64;
        let mut sbits = *self.summary.get(sw)? & (!0u64 << (first % 64));
        loop {
            if sbits != 0 {
                let word = sw * 64 + sbits.trailing_zeros() as usize;
                let b = self.occupied[word];
                return Some(word * 64 + b.trailing_zeros() as usize);
            }
            sw += 1;
            sbits = *self.summary.get(sw)?;
        }
    }

    fn set_occupied(&mut self, slot: usize, on: bool) {
        let w = slot / 64;
        if on {
            self.occupied[w] |= 1 << (slot % 64);
            self.summary[w / 64] |= 1 << (w % 64);
        } else {
            self.occupied[w] &= !(1 << (slot % 64));
            if self.occupied[w] == 0 {
                self.summary[w / 64] &= !(1 << (w % 64));
            }
        }
    }

    /// Pushes `key` at the head of wheel slot `slot`.
    fn push_slot(&mut self, key: u32, slot: u32) {
        let head = self.heads[slot as usize];
        self.entries[key as usize].prev = NIL;
        self.entries[key as usize].next = head;
        self.entries[key as usize].slot = slot;
        if head != NIL {
            self.entries[head as usize].prev = key;
        } else {
            self.set_occupied(slot as usize, true);
        }
        self.heads[slot as usize] = key;
    }

    /// Appends `key` to the due list.
    fn push_due(&mut self, key: u32) {
        let slot = self.due_slot();
        let tail = self.due_tail;
        self.entries[key as usize].prev = tail;
        self.entries[key as usize].next = NIL;
        self.entries[key as usize].slot = slot;
        if tail == NIL {
            self.heads[slot as usize] = key;
        } else {
            self.entries[tail as usize].next = key;
        }
        self.due_tail = key;
    }

    /// Removes `key` from whatever list holds it (no-op when unscheduled).
    fn unlink(&mut self, key: u32) {
        let e = self.entries[key as usize];
        if e.slot == UNSCHEDULED {
            return;
        }
        if self.scan == key {
            self.scan = e.next;
        }
        if e.prev == NIL {
            self.heads[e.slot as usize] = e.next;
        } else {
            self.entries[e.prev as usize].next = e.next;
        }
        if e.next != NIL {
            self.entries[e.next as usize].prev = e.prev;
        }
        if e.slot == self.due_slot() {
            if self.due_tail == key {
                self.due_tail = e.prev;
            }
        } else if self.heads[e.slot as usize] == NIL {
            self.set_occupied(e.slot as usize, false);
        }
        self.entries[key as usize] = EMPTY;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const G: Duration = Duration::from_millis(1);

    /// Drains everything due at `now`, following the documented caller loop.
    fn drain(w: &mut TimerWheel, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        loop {
            while let Some(k) = w.poll_expired(now) {
                out.push(k);
            }
            match w.next_deadline() {
                Some(t) if t <= now => continue,
                _ => break,
            }
        }
        out
    }

    #[test]
    fn schedule_no_later_only_moves_a_deadline_earlier() {
        let mut w = TimerWheel::new(G, 64, 4);
        w.schedule_no_later(1, Instant::from_millis(10));
        assert_eq!(w.due_time(1), Some(Instant::from_millis(10)));
        w.schedule_no_later(1, Instant::from_millis(30));
        assert_eq!(w.due_time(1), Some(Instant::from_millis(10)), "later: kept");
        w.schedule_no_later(1, Instant::from_micros(4_500));
        assert_eq!(
            w.due_time(1),
            Some(Instant::from_millis(5)),
            "earlier: moved"
        );
        assert_eq!(drain(&mut w, Instant::from_millis(4)), Vec::<u32>::new());
        assert_eq!(drain(&mut w, Instant::from_millis(5)), vec![1]);
        assert!(!w.is_scheduled(1));
        w.schedule_no_later(1, Instant::from_millis(30));
        assert_eq!(
            w.due_time(1),
            Some(Instant::from_millis(30)),
            "unscheduled: set"
        );
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn fires_at_deadline_rounded_up_never_early() {
        let mut w = TimerWheel::new(G, 64, 4);
        w.schedule(1, Instant::from_micros(2_500));
        assert_eq!(w.len(), 1);
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(3)));
        assert_eq!(
            drain(&mut w, Instant::from_micros(2_999)),
            Vec::<u32>::new()
        );
        assert_eq!(drain(&mut w, Instant::from_millis(3)), vec![1]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn reschedule_replaces_and_cancel_removes() {
        let mut w = TimerWheel::new(G, 64, 4);
        w.schedule(0, Instant::from_millis(5));
        w.schedule(0, Instant::from_millis(9));
        assert_eq!(w.len(), 1);
        assert_eq!(w.due_time(0), Some(Instant::from_millis(9)));
        assert!(drain(&mut w, Instant::from_millis(8)).is_empty());
        w.schedule(2, Instant::from_millis(10));
        w.cancel(0);
        w.cancel(0);
        w.cancel(77); // never seen: no-op
        assert!(!w.is_scheduled(0));
        assert_eq!(drain(&mut w, Instant::from_millis(20)), vec![2]);
    }

    #[test]
    fn deadlines_several_revolutions_ahead_fire_on_time() {
        let mut w = TimerWheel::new(G, 64, 4);
        // 64 ms per revolution; 1000 ms is ~15.6 revolutions, and shares its slot with 40 ms.
        w.schedule(3, Instant::from_millis(1_000));
        w.schedule(4, Instant::from_millis(1_000 - 15 * 64));
        let mut now = Instant::ZERO;
        let mut fired = Vec::new();
        // Walk time like a caller: jump to the next lower bound each time.
        while let Some(t) = w.next_deadline() {
            now = t.max(now);
            for k in drain(&mut w, now) {
                fired.push((k, now));
            }
            if fired.len() == 2 {
                break;
            }
            now += Duration::from_micros(1);
        }
        assert_eq!(
            fired,
            vec![
                (4, Instant::from_millis(40)),
                (3, Instant::from_millis(1_000))
            ]
        );
    }

    #[test]
    fn past_deadlines_fire_on_next_poll_and_long_gaps_catch_up() {
        let mut w = TimerWheel::new(G, 64, 0);
        assert!(drain(&mut w, Instant::from_millis(100_000)).is_empty());
        w.schedule(5, Instant::from_millis(1_000)); // long past
        w.schedule(6, Instant::from_millis(100_000)); // this very tick
        let mut got = drain(&mut w, Instant::from_millis(100_000));
        got.sort_unstable();
        assert_eq!(got, vec![5, 6]);
        // Many timers spread over a long time, then one big jump: all fire, in bounded calls.
        for k in 0..1_000u32 {
            w.schedule(
                k,
                Instant::from_millis(100_000) + Duration::from_micros(u64::from(k) * 7_919),
            );
        }
        // Five times as many not yet due, which the sweep has to step over.
        for k in 1_000..6_000u32 {
            w.schedule(k, Instant::from_millis(300_000 + u64::from(k)));
        }
        let mut nones = 0;
        let mut got = Vec::new();
        let now = Instant::from_millis(200_000);
        loop {
            match w.poll_expired(now) {
                Some(k) => got.push(k),
                None => match w.next_deadline() {
                    Some(t) if t <= now => nones += 1,
                    _ => break,
                },
            }
        }
        got.sort_unstable();
        assert_eq!(got, (0..1_000).collect::<Vec<_>>());
        assert_eq!(w.len(), 5_000);
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(200_001)));
        // The sweep was spread over several calls rather than done in one.
        assert!(nones > 0);
    }

    #[test]
    fn bounded_work_when_skipping_many_future_entries() {
        // 500 entries in one slot, all a revolution ahead: a poll examines at most the budget.
        let mut w = TimerWheel::new(G, 64, 600);
        for k in 0..500 {
            w.schedule(k, Instant::from_millis(64 + 5));
        }
        w.schedule(500, Instant::from_millis(5));
        let got = drain(&mut w, Instant::from_millis(5));
        assert_eq!(got, vec![500]);
        assert_eq!(w.len(), 500);
        assert_eq!(w.poll_expired(Instant::from_millis(6)), None);
        assert_eq!(drain(&mut w, Instant::from_millis(69)).len(), 500);
    }

    #[test]
    fn no_allocation_once_capacity_reached() {
        let mut w = TimerWheel::new(G, 256, 128);
        let cap = w.entries.capacity();
        for round in 0..10u64 {
            for k in 0..128u32 {
                w.schedule(k, Instant::from_millis(round * 300 + u64::from(k)));
            }
            drain(&mut w, Instant::from_millis(round * 300 + 400));
        }
        assert_eq!(w.entries.capacity(), cap);
    }

    #[test]
    fn bitmap_search_spans_words() {
        let mut w = TimerWheel::new(G, 8192, 4);
        w.schedule(1, Instant::from_millis(5_000));
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(5_000)));
        // A revolution later, in slot 6000: reported first as a lower bound at 6000 ms.
        w.schedule(2, Instant::from_millis(8_192 + 6_000));
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(5_000)));
        assert_eq!(drain(&mut w, Instant::from_millis(5_000)), vec![1]);
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(6_000)));
        assert!(drain(&mut w, Instant::from_millis(6_000)).is_empty());
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(14_192)));
        assert!(drain(&mut w, Instant::from_millis(14_191)).is_empty());
        assert_eq!(drain(&mut w, Instant::from_millis(14_192)), vec![2]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Key, offset, and whether the offset is into the past.
        Schedule(u32, u64, bool),
        Cancel(u32),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..40, 0u64..400_000).prop_map(|(k, d)| Op::Schedule(k, d, false)),
            1 => (0u32..40, 0u64..3_000_000).prop_map(|(k, d)| Op::Schedule(k, d, false)),
            1 => (0u32..40, 0u64..10_000).prop_map(|(k, d)| Op::Schedule(k, d, true)),
            2 => (0u32..40).prop_map(Op::Cancel),
            3 => (0u64..100_000).prop_map(Op::Advance),
            1 => (0u64..5_000_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_reference_model(
            gran in 1u64..3_000,
            slots in prop_oneof![1usize..300, 4_000usize..9_000],
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let g = gran;
            let mut w = TimerWheel::new(Duration::from_micros(g), slots, 8);
            // key -> (deadline, time it was scheduled)
            let mut model: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Schedule(k, d, past) => {
                        let deadline = if past { now.saturating_sub(d) } else { now + d };
                        w.schedule(k, Instant::from_micros(deadline));
                        model.insert(k, (deadline, now));
                    }
                    Op::Cancel(k) => {
                        w.cancel(k);
                        model.remove(&k);
                    }
                    Op::Advance(dt) => {
                        let target = now + dt;
                        // Wake at every deadline the wheel reports, like the event loop does.
                        loop {
                            let wake = match w.next_deadline() {
                                Some(t) if t.total_micros() <= target => t.total_micros().max(now),
                                _ => target,
                            };
                            now = wake;
                            for k in drain(&mut w, Instant::from_micros(now)) {
                                let d = model.remove(&k);
                                prop_assert!(d.is_some(), "key {} fired but not scheduled", k);
                                let (d, at) = d.unwrap();
                                prop_assert!(d <= now, "key {} early: deadline {} now {}", k, d, now);
                                // Late by less than a tick (counted from when it was scheduled,
                                // for deadlines already past then).
                                let late = now - d.max(at);
                                prop_assert!(late < g, "key {} late: deadline {} now {} g {}", k, d, now, g);
                            }
                            // Everything due by its rounded-up tick has fired.
                            for (k, (d, _)) in &model {
                                prop_assert!(d.div_ceil(g) * g > now, "key {} missed: {} at {}", k, d, now);
                            }
                            if now >= target {
                                break;
                            }
                            // Lower bound: never later than the earliest due time.
                            if let Some(min_due) = model.values().map(|(d, _)| d.div_ceil(g) * g).min() {
                                let nd = w.next_deadline().map(|t| t.total_micros());
                                prop_assert!(nd.is_some_and(|nd| nd <= min_due));
                            }
                            if w.next_deadline().is_none_or(|t| t.total_micros() > target) {
                                now = target;
                                for k in drain(&mut w, Instant::from_micros(now)) {
                                    prop_assert!(false, "unexpected key {} at {}", k, now);
                                }
                                break;
                            }
                        }
                    }
                }
                prop_assert_eq!(w.len(), model.len());
            }
        }
    }
}
