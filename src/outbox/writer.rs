//! The per-shard writer thread: coalesces many write requests into one RocksDB `WriteBatch` and
//! one WAL sync (group commit), and only then acknowledges each of them.

use super::keys::ALL_CFS;
use super::shard::ShardState;
use crate::config::Durability;
use crate::hub::message::Message;
use crate::metrics as m;
use rocksdb::{WriteBatch, WriteOptions, DB};
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
}

/// Which column family an operation touches (indices into `ALL_CFS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Msg = 0,
    Due = 1,
    Remote = 2,
    Events = 3,
    Parts = 4,
}

/// One key operation.
#[derive(Debug)]
pub enum Op {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
}

/// A set of operations committed atomically, acknowledged after the sync.
pub struct WriteReq {
    pub ops: Vec<Op>,
    /// New messages due now: claimed before the commit (so the scanner cannot take them too)
    /// and put on the ready queue after it.
    pub enqueue: Vec<Message>,
    /// Messages in `ops`; used for the group-commit size metric.
    pub messages: usize,
    /// Must be on disk before `done` (new messages, receipts acked to a peer, cancels). Writes
    /// that only record a delivery attempt's outcome may ride the next sync instead: losing one
    /// to a power cut means that message is sent again, never lost; the writer syncs them
    /// within [`RELAXED_SYNC`] anyway.
    pub sync: bool,
    /// Rewrites stored messages (the state actor's turns): keeps its order relative to the other
    /// ordered requests of a group, so a later turn's value of a message always wins.
    pub ordered: bool,
    pub done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// Longest time a relaxed write stays unsynced when nothing else forces a sync.
pub const RELAXED_SYNC: std::time::Duration = std::time::Duration::from_millis(2);

pub(super) fn run(
    db: Arc<DB>,
    rx: crossbeam_channel::Receiver<WriteReq>,
    shard: Arc<ShardState>,
    durability: Durability,
    max_messages: usize,
) {
    let mut synced = WriteOptions::default();
    synced.set_sync(durability == Durability::Fsync);
    let relaxed = WriteOptions::default();
    let mut dirty = false;
    let label = shard.label.clone();
    let commit_seconds = metrics::histogram!(m::OUTBOX_COMMIT_SECONDS, m::L_SHARD => label.clone());
    let commit_size = metrics::histogram!(m::OUTBOX_COMMIT_BATCH_SIZE, m::L_SHARD => label.clone());
    let mut pending: Vec<WriteReq> = Vec::with_capacity(256);
    loop {
        let first = match rx.recv_timeout(RELAXED_SYNC) {
            Ok(r) => r,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if dirty {
                    if let Err(e) = db.flush_wal(true) {
                        tracing::error!(shard = %label, error = %e, "WAL sync failed");
                    }
                    dirty = false;
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                if dirty {
                    let _ = db.flush_wal(true);
                }
                break;
            }
        };
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
        let fsync = durability == Durability::Fsync;
        if fsync && pending.iter().any(|r| !r.sync) && pending.iter().any(|r| r.sync) {
            let (relaxed_reqs, synced_reqs) = split_group(pending.drain(..));
            commit(&db, &shard, relaxed_reqs, &relaxed, &commit_seconds, &commit_size);
            // the synced write below puts the relaxed one on disk too
            dirty = false;
            commit(&db, &shard, synced_reqs, &synced, &commit_seconds, &commit_size);
        } else {
            let sync = fsync && pending.iter().any(|r| r.sync);
            dirty = fsync && !sync;
            let group = std::mem::take(&mut pending);
            commit(&db, &shard, group, if sync { &synced } else { &relaxed }, &commit_seconds, &commit_size);
        }
    }
}

/// Split a group into the writes that go first without a sync and those written (and synced)
/// after them. Relaxed writes (outcomes) go first so they do not wait for the sync of the rest.
/// Unordered writes never share keys with others (new messages, MO parts); an ordered one (a
/// state actor's turn) that follows a synced ordered one stays behind it, in the synced write.
fn split_group(group: impl Iterator<Item = WriteReq>) -> (Vec<WriteReq>, Vec<WriteReq>) {
    let mut behind_synced = false;
    group.partition(|r| {
        behind_synced |= r.sync && r.ordered;
        !r.sync && !(r.ordered && behind_synced)
    })
}

/// Write one group in one batch, then answer each request.
fn commit(db: &DB, shard: &ShardState, mut group: Vec<WriteReq>, opts: &WriteOptions, commit_seconds: &metrics::Histogram, commit_size: &metrics::Histogram) {
    let mut batch = WriteBatch::default();
    let mut resolved = true;
    let mut messages = 0;
    for req in &group {
        messages += req.messages;
        for op in &req.ops {
            let cf_name = match op {
                Op::Put(cf, ..) | Op::Delete(cf, _) => ALL_CFS[*cf as usize],
            };
            let Some(cf) = db.cf_handle(cf_name) else {
                resolved = false;
                continue;
            };
            match op {
                Op::Put(_, k, v) => batch.put_cf(cf, k, v),
                Op::Delete(_, k) => batch.delete_cf(cf, k),
            }
        }
    }
    // Claim before the commit so a concurrent scan cannot dispatch these messages too.
    let claimed: Vec<_> = group.iter().flat_map(|r| r.enqueue.iter().map(|m| m.id)).collect();
    shard.claim(&claimed);
    let started = Instant::now();
    let result = if resolved { db.write_opt(batch, opts).map_err(|e| StoreError::Write(e.to_string())) } else { Err(StoreError::Write("missing column family".into())) };
    commit_seconds.record(started.elapsed().as_secs_f64());
    commit_size.record(messages as f64);
    match &result {
        Ok(()) => {
            let ready: Vec<Message> = group.iter_mut().flat_map(|r| r.enqueue.drain(..)).collect();
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
        Err(e) => {
            tracing::error!(shard = %shard.label, error = %e, "outbox commit failed");
            shard.unclaim(&claimed);
        }
    }
    for req in group {
        if let Some(done) = req.done {
            let _ = done.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(sync: bool, ordered: bool, tag: u8) -> WriteReq {
        WriteReq { ops: vec![Op::Put(Cf::Msg, vec![1], vec![tag])], enqueue: Vec::new(), messages: 1, sync, ordered, done: None }
    }

    fn tags(v: &[WriteReq]) -> Vec<u8> {
        v.iter()
            .map(|r| match &r.ops[0] {
                Op::Put(_, _, v) => v[0],
                Op::Delete(..) => 0,
            })
            .collect()
    }

    #[test]
    fn relaxed_writes_go_first_unless_an_ordered_one_follows_a_synced_turn() {
        // accept (synced), outcome turn (relaxed, ordered), MO part (synced), receipt turn
        // (synced, ordered), next turn (relaxed, ordered), another accept.
        let group = vec![req(true, false, 1), req(false, true, 2), req(true, false, 3), req(true, true, 4), req(false, true, 5), req(true, false, 6)];
        let (relaxed, synced) = split_group(group.into_iter());
        assert_eq!(tags(&relaxed), [2]);
        assert_eq!(tags(&synced), [1, 3, 4, 5, 6], "turn 5 stays behind turn 4");
        let (relaxed, synced) = split_group(vec![req(false, true, 1), req(false, false, 2), req(true, false, 3)].into_iter());
        assert_eq!((tags(&relaxed), tags(&synced)), (vec![1, 2], vec![3]));
    }
}
