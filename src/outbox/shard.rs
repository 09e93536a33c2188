//! One shard's in-memory state: the ready queue, the set of claimed ids (on the ready queue or
//! being handed to a connector), in-flight ids, cancellations, and wake-up bookkeeping for the
//! schedule scan. The durable truth is in RocksDB; this is what keeps dispatch off the disk.

use crate::model::{Message, MessageId, Millis};
use parking_lot::Mutex;
use foldhash::HashSet;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use tokio::sync::Notify;

#[derive(Default)]
struct Mem {
    ready: VecDeque<Box<Message>>,
    claimed: HashSet<MessageId>,
    inflight: HashSet<MessageId>,
    canceled: HashSet<MessageId>,
}

/// In-memory state of one shard.
pub struct ShardState {
    pub index: u32,
    pub label: String,
    capacity: usize,
    mem: Mutex<Mem>,
    /// Wakes the dispatcher: work on the ready queue, or an earlier due time.
    pub notify: Notify,
    /// The earliest due time the scanner should wake up for.
    wake_at: AtomicI64,
    /// Due messages exist that did not fit the ready queue: scan when there is room.
    overflow: AtomicBool,
    /// Messages waiting in this shard's schedule (queued, scheduled, sending).
    pub depth: AtomicI64,
    /// The earliest due time written to the schedule since the scanner last looked: the scanner
    /// resumes where it stopped (not at the head of the schedule, where the keys of every sent
    /// message lie deleted) unless an entry appeared before that point.
    due_floor: AtomicI64,
}

/// What popping the ready queue found.
pub enum Popped {
    Message(Box<Message>),
    /// It was canceled while on the ready queue; its state is already written.
    Canceled(MessageId),
}

impl ShardState {
    pub fn new(index: u32, capacity: usize) -> Self {
        ShardState {
            index,
            label: index.to_string(),
            capacity,
            mem: Mutex::new(Mem::default()),
            notify: Notify::new(),
            wake_at: AtomicI64::new(0),
            overflow: AtomicBool::new(true), // scan at start: recovery
            depth: AtomicI64::new(0),
            due_floor: AtomicI64::new(i64::MAX),
        }
    }

    /// Claim ids that will be on the ready queue shortly (`push_ready` unclaims those that do
    /// not fit).
    pub fn claim(&self, ids: &[MessageId]) {
        if ids.is_empty() {
            return;
        }
        let mut mem = self.mem.lock();
        for id in ids {
            mem.claimed.insert(*id);
        }
    }

    pub fn unclaim(&self, ids: &[MessageId]) {
        let mut mem = self.mem.lock();
        for id in ids {
            mem.claimed.remove(id);
            mem.inflight.remove(id);
        }
    }

    /// Put committed, claimed messages on the ready queue. Those that do not fit are unclaimed
    /// and left to the scanner.
    pub fn push_ready(&self, msgs: Vec<Box<Message>>) {
        if msgs.is_empty() {
            return;
        }
        let mut mem = self.mem.lock();
        let mut overflowed = false;
        for m in msgs {
            if mem.ready.len() < self.capacity {
                mem.ready.push_back(m);
            } else {
                mem.claimed.remove(&m.id);
                overflowed = true;
            }
        }
        drop(mem);
        if overflowed {
            self.overflow.store(true, Ordering::Release);
        }
        self.notify.notify_one();
    }

    /// Offer a message found by the scanner. False when it is already claimed or the queue is
    /// full.
    pub fn offer_scanned(&self, m: Box<Message>) -> bool {
        let mut mem = self.mem.lock();
        if mem.ready.len() >= self.capacity || mem.claimed.contains(&m.id) {
            return false;
        }
        mem.claimed.insert(m.id);
        mem.ready.push_back(m);
        true
    }

    pub fn is_claimed(&self, id: MessageId) -> bool {
        self.mem.lock().claimed.contains(&id)
    }

    /// Room left on the ready queue.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.mem.lock().ready.len())
    }

    /// Take the next message to dispatch.
    pub fn pop(&self) -> Option<Popped> {
        let mut mem = self.mem.lock();
        let m = mem.ready.pop_front()?;
        if mem.canceled.remove(&m.id) {
            mem.claimed.remove(&m.id);
            return Some(Popped::Canceled(m.id));
        }
        Some(Popped::Message(m))
    }

    /// Mark a claimed message as handed to a connector. False if it was canceled meanwhile.
    pub fn begin_flight(&self, id: MessageId) -> bool {
        let mut mem = self.mem.lock();
        if mem.canceled.remove(&id) {
            mem.claimed.remove(&id);
            return false;
        }
        mem.inflight.insert(id);
        true
    }

    pub fn is_inflight(&self, id: MessageId) -> bool {
        self.mem.lock().inflight.contains(&id)
    }

    /// Try to mark a message canceled before it reaches a connector. `Err(())` if it is in
    /// flight. Returns whether it was claimed (on the ready queue).
    pub fn try_cancel(&self, id: MessageId) -> Result<bool, ()> {
        let mut mem = self.mem.lock();
        if mem.inflight.contains(&id) {
            return Err(());
        }
        let claimed = mem.claimed.contains(&id);
        // Marked even when not claimed: a scan that read the message just before the cancel
        // was committed must not dispatch it.
        mem.canceled.insert(id);
        Ok(claimed)
    }

    /// Undo `try_cancel` (the cancel write failed).
    pub fn uncancel(&self, id: MessageId) {
        self.mem.lock().canceled.remove(&id);
    }

    /// Ask for a scan no later than `t`.
    pub fn wake_by(&self, t: Millis) {
        let prev = self.wake_at.fetch_min(t, Ordering::AcqRel);
        if t < prev {
            self.notify.notify_one();
        }
    }

    pub fn wake_at(&self) -> Millis {
        self.wake_at.load(Ordering::Acquire)
    }

    pub fn set_wake_at(&self, t: Millis) {
        self.wake_at.store(t, Ordering::Release);
    }

    /// A schedule entry due at `t` was committed (and, if it was claimed, unclaimed since).
    pub fn note_due(&self, t: Millis) {
        self.due_floor.fetch_min(t, Ordering::AcqRel);
    }

    /// Take the earliest due time noted since the last call.
    pub fn take_due_floor(&self) -> Millis {
        self.due_floor.swap(i64::MAX, Ordering::AcqRel)
    }

    /// Take the overflow flag.
    pub fn take_overflow(&self) -> bool {
        self.overflow.swap(false, Ordering::AcqRel)
    }

    pub fn set_overflow(&self) {
        self.overflow.store(true, Ordering::Release);
    }
}
