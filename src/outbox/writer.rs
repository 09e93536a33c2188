//! The per-shard writer and syncer threads: the writer coalesces many write requests into one
//! RocksDB `WriteBatch`, the syncer gives every group written meanwhile one WAL sync (group
//! commit); a request that needs the sync is acknowledged only after it.

use super::keys::ALL_CFS;
use super::shard::ShardState;
use crate::config::Durability;
use crate::model::Message;
use crate::metrics as m;
use rocksdb::{WriteBatch, WriteOptions, DB};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use tokio::sync::oneshot;

/// A failed outbox write.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    #[error("outbox write failed: {0}")]
    Write(String),
    #[error("outbox is busy (write queue full)")]
    Busy,
    #[error("outbox is shutting down")]
    Closed,
    /// Refused before anything was written: the store is failing (e.g. a full disk).
    #[error("outbox cannot write (nothing was stored): {0}")]
    Unavailable(String),
}

/// Why a state turn was not committed, and whether its operations were written at all.
#[derive(Debug)]
pub struct TurnFailure {
    pub error: StoreError,
    /// The turn's operations when none of them were written (to be written again, in order,
    /// before any later turn); `None` when they were written but the sync after them failed:
    /// they are readable, and durable once the store has recovered (its recovery flushes them).
    pub unwritten: Option<super::Changes>,
}

/// Where a request's answer goes.
pub enum Done {
    Plain(oneshot::Sender<Result<(), StoreError>>),
    /// A state turn: on failure, its operations come back when they were not written.
    Turn(oneshot::Sender<Result<(), TurnFailure>>),
}

/// Which column family an operation touches (indices into `ALL_CFS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Msg = 0,
    Due = 1,
    Remote = 2,
    Events = 3,
    Parts = 4,
    Blobs = 5,
    BlobRefs = 6,
    Records = 7,
    Hooks = 8,
}

impl Cf {
    /// Keys of the schedule and of the remote-id index are put once and deleted once (a due
    /// key names its due time and message; a carrier does not hand out one id twice), so their
    /// deletes are RocksDB `SingleDelete`s: when the put and the delete meet in a flush or a
    /// compaction both vanish, where a plain delete leaves a tombstone to carry down every level
    /// (each message adds and removes one key in each). Should a key ever be put twice after
    /// all, an older value may come back: a schedule entry whose message is no longer pending
    /// or an index entry of a final message, both of which readers skip.
    pub fn written_once(self) -> bool {
        matches!(self, Cf::Due | Cf::Remote)
    }
}

/// A key, held inline up to 24 bytes (every key but long remote ids and MO part keys): the
/// hot path writes seven keys per message, and a heap allocation for each (freed on the writer
/// thread) cost more than the copy.
pub type Key = smallvec::SmallVec<[u8; 24]>;
/// A value, inline up to 16 bytes (index entries; messages and events spill to the heap,
/// keeping the `Vec` they were encoded into).
pub type Value = smallvec::SmallVec<[u8; 16]>;

/// One key operation.
#[derive(Debug)]
pub enum Op {
    Put(Cf, Key, Value),
    Delete(Cf, Key),
}

impl Op {
    pub fn put(cf: Cf, key: impl AsRef<[u8]>, value: impl Into<Value>) -> Op {
        Op::Put(cf, Key::from_slice(key.as_ref()), value.into())
    }
    pub fn delete(cf: Cf, key: impl AsRef<[u8]>) -> Op {
        Op::Delete(cf, Key::from_slice(key.as_ref()))
    }
}

/// A set of operations committed atomically, acknowledged after the sync.
pub struct WriteReq {
    pub ops: Vec<Op>,
    /// New messages due now: claimed before the commit (so the scanner cannot take them too)
    /// and put on the ready queue after it.
    pub enqueue: Vec<Box<Message>>,
    /// Messages in `ops`; used for the group-commit size metric.
    pub messages: usize,
    /// Must be on disk before `done` (new messages, receipts acked to a peer, cancels). Writes
    /// that only record a delivery attempt's outcome may ride the next sync instead: losing one
    /// to a power cut means that message is sent again, never lost; they are synced within
    /// [`RELAXED_SYNC`] anyway. Every write is readable (and safe from a process crash) once
    /// written; requests are written in the order queued.
    pub sync: bool,
    pub done: Option<Done>,
    /// A state turn's view of the store's failure count (see `StoreHealth::epoch`) when its
    /// actor's pipeline was last known good: if a write has failed since, the turn is refused
    /// unwritten, so that no turn is written after an earlier one of its actor that failed.
    pub epoch: Option<u64>,
}

impl WriteReq {
    /// A request, and the receiver its answer comes to.
    pub fn new(ops: Vec<Op>, enqueue: Vec<Box<Message>>, messages: usize, sync: bool) -> (WriteReq, oneshot::Receiver<Result<(), StoreError>>) {
        let (tx, rx) = oneshot::channel();
        (WriteReq { ops, enqueue, messages, sync, done: Some(Done::Plain(tx)), epoch: None }, rx)
    }

    /// A state turn's request (see [`TurnFailure`]).
    pub fn turn(ops: Vec<Op>, messages: usize, sync: bool, epoch: u64) -> (WriteReq, oneshot::Receiver<Result<(), TurnFailure>>) {
        let (tx, rx) = oneshot::channel();
        (WriteReq { ops, enqueue: Vec::new(), messages, sync, done: Some(Done::Turn(tx)), epoch: Some(epoch) }, rx)
    }
}

/// Longest time a relaxed write stays unsynced when nothing else forces a sync.
pub const RELAXED_SYNC: std::time::Duration = std::time::Duration::from_millis(2);

/// A written group waiting for the WAL sync before its requests are answered.
struct Unsynced {
    group: Vec<WriteReq>,
    started: Instant,
}

/// What the writer tells the syncer after each write.
enum Written {
    /// Requests to answer after the next sync.
    Acks(Unsynced),
    /// Relaxed writes only: sync within [`RELAXED_SYNC`].
    Dirty,
}

/// The writer thread: takes requests in order, writes each group with one `WriteBatch` and no
/// sync, and hands the groups that need one to the syncer. It never waits for the disk, so
/// writes that may ride a later sync (outcomes of attempts) are not held up by the fsync of
/// the accepted messages before them, and the next group is written while the last one syncs.
pub(super) fn run(
    db: Arc<super::store::Store>,
    rx: crossbeam_channel::Receiver<WriteReq>,
    shard: Arc<ShardState>,
    durability: Durability,
    max_messages: usize,
    health: Arc<super::health::StoreHealth>,
) {
    let opts = WriteOptions::default();
    let label = shard.label.clone();
    let commit_seconds = metrics::histogram!(m::OUTBOX_COMMIT_SECONDS, m::L_SHARD => label.clone());
    let commit_size = metrics::histogram!(m::OUTBOX_COMMIT_BATCH_SIZE, m::L_SHARD => label.clone());
    let fsync = durability == Durability::Fsync;
    // Raised while a sync runs; `idle` says when it ends.
    let syncing = Arc::new(AtomicBool::new(false));
    let (idle_tx, idle) = crossbeam_channel::bounded::<()>(1);
    let syncer = fsync.then(|| {
        let (tx, srx) = crossbeam_channel::unbounded::<Written>();
        let (db, shard, commit_seconds, syncing, health) = (db.clone(), shard.clone(), commit_seconds.clone(), syncing.clone(), health.clone());
        let t = std::thread::Builder::new()
            .name(format!("outbox-s{}", shard.index))
            .spawn(move || sync_loop(&db, &shard, srx, &commit_seconds, &syncing, &idle_tx, &health));
        match t {
            Ok(t) => Some((tx, t)),
            Err(e) => {
                tracing::error!(shard = %label, error = %e, "cannot start the WAL sync thread: syncing in the writer");
                None
            }
        }
    }).flatten();
    let mut pending: Vec<WriteReq> = Vec::with_capacity(256);
    while let Ok(first) = rx.recv() {
        let mut messages = first.messages;
        pending.push(first);
        while messages < max_messages {
            match rx.try_recv() {
                Ok(r) => {
                    messages += r.messages;
                    pending.push(r);
                }
                Err(_) => break,
            }
        }
        // Only writes that wait for a sync, and one is running: they cannot be answered before
        // the next one anyway, so gather more until it ends (or a write that should not wait
        // comes): one larger write instead of many small ones, the same sync.
        if syncer.is_some() {
            while idle.try_recv().is_ok() {}
            while messages < max_messages && syncing.load(Ordering::Acquire) && pending.iter().all(|r| r.sync) {
                crossbeam_channel::select! {
                    recv(rx) -> r => match r {
                        Ok(r) => {
                            messages += r.messages;
                            pending.push(r);
                        }
                        Err(_) => break,
                    },
                    recv(idle) -> _ => break,
                }
            }
        }
        let mut group = std::mem::take(&mut pending);
        // Turns queued before a write failed are not written after it (see `WriteReq::epoch`).
        let failures = health.epoch();
        if group.iter().any(|r| r.epoch.is_some_and(|e| e < failures)) {
            let (stale, rest): (Vec<WriteReq>, Vec<WriteReq>) = group.into_iter().partition(|r| r.epoch.is_some_and(|e| e < failures));
            let e = StoreError::Unavailable(health.error().unwrap_or_else(|| "an earlier write failed".into()));
            answer(&shard, stale, Err(e), false);
            group = rest;
            if group.is_empty() {
                continue;
            }
        }
        let needs_sync = fsync && group.iter().any(|r| r.sync);
        let started = Instant::now();
        // Claimed before the write, so a concurrent scan cannot dispatch them too.
        shard.claim(&enqueued(&group));
        let result = db.db().and_then(|db| write(&db, &group, &opts));
        commit_size.record(messages as f64);
        match (result, &syncer) {
            (Ok(()), Some((tx, _))) if needs_sync => {
                // The writes that need the sync are answered (and their new messages queued)
                // by the syncer, after it; the others now.
                let (synced, relaxed): (Vec<WriteReq>, Vec<WriteReq>) = group.into_iter().partition(|r| r.sync);
                let _ = tx.send(Written::Acks(Unsynced { group: synced, started }));
                if !relaxed.is_empty() {
                    answer(&shard, relaxed, Ok(()), true);
                }
            }
            (Ok(()), Some((tx, _))) => {
                // (a syncer runs only under fsync)
                commit_seconds.record(started.elapsed().as_secs_f64());
                let _ = tx.send(Written::Dirty);
                answer(&shard, group, Ok(()), true);
            }
            (Ok(()), None) => {
                let result = if fsync { db.db().and_then(|db| db.flush_wal(true).map_err(|e| StoreError::Write(e.to_string()))) } else { Ok(()) };
                if let Err(e) = &result {
                    health.failed(&e.to_string());
                }
                commit_seconds.record(started.elapsed().as_secs_f64());
                answer(&shard, group, result, true);
            }
            (Err(e), _) => {
                tracing::error!(shard = %label, error = %e, "outbox commit failed");
                health.failed(&e.to_string());
                answer(&shard, group, Err(e), false);
            }
        }
    }
    if let Some((tx, t)) = syncer {
        drop(tx);
        let _ = t.join();
    }
}

/// The syncer thread: syncs the WAL for the groups the writer has written, then answers them
/// (group commit: every group written during one sync waits for the next, one sync for all);
/// relaxed writes are synced within [`RELAXED_SYNC`].
fn sync_loop(
    db: &super::store::Store,
    shard: &ShardState,
    rx: crossbeam_channel::Receiver<Written>,
    commit_seconds: &metrics::Histogram,
    syncing: &AtomicBool,
    idle: &crossbeam_channel::Sender<()>,
    health: &super::health::StoreHealth,
) {
    let mut dirty_since: Option<Instant> = None;
    let mut acks: Vec<Unsynced> = Vec::new();
    loop {
        let got = match dirty_since {
            Some(t) => rx.recv_deadline(t + RELAXED_SYNC),
            None => rx.recv().map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
        };
        let closed = match got {
            Ok(w) => {
                let mut next = Some(w);
                while let Some(w) = next.take().or_else(|| rx.try_recv().ok()) {
                    match w {
                        Written::Acks(u) => acks.push(u),
                        Written::Dirty => {
                            dirty_since.get_or_insert_with(Instant::now);
                        }
                    }
                }
                false
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => false,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => true,
        };
        let due = dirty_since.is_some_and(|t| t.elapsed() >= RELAXED_SYNC);
        if !acks.is_empty() || due || (closed && dirty_since.is_some()) {
            syncing.store(true, Ordering::Release);
            let result = db.db().and_then(|db| db.flush_wal(true).map_err(|e| StoreError::Write(e.to_string())));
            syncing.store(false, Ordering::Release);
            let _ = idle.try_send(());
            if let Err(e) = &result {
                tracing::error!(shard = %shard.label, error = %e, "WAL sync failed");
                health.failed(&e.to_string());
            }
            dirty_since = None;
            for u in acks.drain(..) {
                commit_seconds.record(u.started.elapsed().as_secs_f64());
                answer(shard, u.group, result.clone(), true);
            }
        }
        if closed {
            return;
        }
    }
}

/// The ids of a group's new messages.
fn enqueued(group: &[WriteReq]) -> Vec<crate::model::MessageId> {
    group.iter().flat_map(|r| r.enqueue.iter().map(|m| m.id)).collect()
}

/// Write one group in one batch (no sync).
fn write(db: &DB, group: &[WriteReq], opts: &WriteOptions) -> Result<(), StoreError> {
    let cfs = ALL_CFS.map(|name| db.cf_handle(name));
    // Sized up front: growing the batch copies it each time it doubles.
    let bytes: usize = group
        .iter()
        .flat_map(|r| &r.ops)
        .map(|op| match op {
            Op::Put(_, k, v) => k.len() + v.len() + 12,
            Op::Delete(_, k) => k.len() + 8,
        })
        .sum();
    let mut batch = WriteBatch::with_capacity_bytes(bytes + 64);
    for op in group.iter().flat_map(|r| &r.ops) {
        let (Op::Put(cf, ..) | Op::Delete(cf, _)) = op;
        let Some(cf) = cfs[*cf as usize] else {
            return Err(StoreError::Write("missing column family".into()));
        };
        match op {
            Op::Put(_, k, v) => batch.put_cf(cf, k, v),
            Op::Delete(c, k) if c.written_once() => batch.single_delete_cf(cf, k),
            Op::Delete(_, k) => batch.delete_cf(cf, k),
        }
    }
    db.write_opt(batch, opts).map_err(|e| StoreError::Write(e.to_string()))
}

/// After a group is committed: queue its new messages, note its schedule entries for the
/// scanner; after a failure: release the claims of its new messages (the scanner finds any that
/// were stored after all). Then answer each request; a failed turn gets its operations back
/// when they were not `written`.
fn answer(shard: &ShardState, mut group: Vec<WriteReq>, result: Result<(), StoreError>, written: bool) {
    if result.is_err() {
        shard.unclaim(&enqueued(&group));
    } else {
        let ready: Vec<Box<Message>> = group.iter_mut().flat_map(|r| r.enqueue.drain(..)).collect();
        shard.push_ready(ready);
        // After push_ready: entries it could not queue are unclaimed by then.
        let earliest = group
            .iter()
            .flat_map(|r| &r.ops)
            .filter_map(|op| match op {
                Op::Put(Cf::Due, k, _) => super::keys::parse_due_key(k).map(|(_, t, _)| t),
                _ => None,
            })
            .min();
        if let Some(t) = earliest {
            shard.note_due(t);
        }
    }
    for req in group {
        match req.done {
            Some(Done::Plain(done)) => {
                let _ = done.send(result.clone());
            }
            Some(Done::Turn(done)) => {
                let _ = done.send(result.clone().map_err(|error| TurnFailure { error, unwritten: (!written).then_some(super::Changes(req.ops)) }));
            }
            None => {}
        }
    }
}
