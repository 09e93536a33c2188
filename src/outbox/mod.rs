//! The durable outbox on RocksDB: column families for messages, the due-ordered schedule, the
//! remote-id index and pending callbacks; S shards, each with a group-commit writer thread and
//! an in-memory ready queue. Restart recovery rebuilds the ready queues from the schedule.

pub mod backup;
mod blobs;
mod changes;
pub mod health;
mod keys;
mod hooks;
mod queries;
mod records;
pub mod retry;
pub mod shard;
pub mod store;
pub mod writer;

pub use shard::{Popped, ShardState};
pub use blobs::Digest;
pub use changes::{Changes, EventKey};
pub use writer::{StoreError, TurnFailure};
use writer::{Cf, Op, WriteReq};

use crate::config::OutboxConfig;
use crate::model::{Direction, Message, MessageId, Millis, State};
use keys::*;
use rocksdb::{
    Direction as IterDir, IteratorMode, Options, ReadOptions, DB,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::oneshot;

/// Errors opening or reading the outbox.
#[derive(Debug, Error)]
pub enum OutboxError {
    #[error("cannot open outbox at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rocksdb::Error,
    },
    #[error("outbox read failed: {0}")]
    Read(#[from] rocksdb::Error),
    #[error("outbox has no column family {0}")]
    MissingCf(&'static str),
    #[error("cannot start outbox writer: {0}")]
    Spawn(std::io::Error),
    /// The database is closed for a moment (reopened after a failed write).
    #[error("outbox unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Write(#[from] StoreError),
}

/// What one scan of a shard's schedule found.
pub struct DueScan {
    /// Due, unclaimed, pending messages, in due order.
    pub messages: Vec<Message>,
    /// Due time of the first entry not yet due.
    pub next: Option<Millis>,
    /// More due messages than the limit.
    pub more: bool,
    /// Where the next scan may start: every entry before it was taken or claimed.
    pub resume: Millis,
}

/// Filters for listing messages.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub state: Option<State>,
    pub to: Option<String>,
    pub direction: Option<Direction>,
    pub channel: Option<crate::model::Channel>,
}

/// The outbox: a RocksDB database and its shards.
pub struct Outbox {
    store: Arc<store::Store>,
    /// Whether writes can be taken (see [`health`]).
    pub health: Arc<health::StoreHealth>,
    /// Stops the health watcher.
    watching: Arc<std::sync::atomic::AtomicBool>,
    shards: Vec<Arc<ShardState>>,
    writers: Vec<crossbeam_channel::Sender<WriteReq>>,
    threads: parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>>,
    pub cfg: OutboxConfig,
}

/// A column family of `db`.
fn cf_of<'d>(db: &'d DB, name: &'static str) -> Result<&'d rocksdb::ColumnFamily, OutboxError> {
    db.cf_handle(name).ok_or(OutboxError::MissingCf(name))
}

/// The answer to a turn that could not be queued: not written, the store is closing.
fn closed_turn(req: WriteReq) -> oneshot::Receiver<Result<(), TurnFailure>> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Err(TurnFailure { error: StoreError::Closed, unwritten: Some(Changes(req.ops)) }));
    rx
}

/// Where the RocksDB files of a data directory live.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("outbox")
}

impl Outbox {
    /// Open (or create) the outbox, start the shard writers and count what is pending.
    pub fn open(cfg: &OutboxConfig) -> Result<Outbox, OutboxError> {
        let path = db_path(&cfg.path);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        opts.set_max_background_jobs(2);
        // Each message is written about three times within a second (accepted, submitted,
        // final): large memtables let a flush keep only the last version instead of compacting
        // them all. Bounded in total by the db-wide write buffer size.
        opts.set_write_buffer_size(128 << 20);
        opts.set_max_write_buffer_number(4);
        opts.set_db_write_buffer_size(512 << 20);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_enable_pipelined_write(true);
        // Memtable inserts start from the last insert's place in the skip list and climb only
        // as far as needed ("insert with hint"; without a hint extractor RocksDB starts again
        // from the top unless the key goes right after the last one). Writes come in runs of
        // nearby keys (a batch's new ids, a turn's updates in id order), so most inserts cost
        // a few comparisons instead of ~20. One hint per first key byte: the prefix only
        // chooses which remembered place to start from. Not in the C API: set by name.
        let opts = opts
            .get_options_from_string("memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.1")
            .map_err(|source| OutboxError::Open { path: path.clone(), source })?;
        let db = Arc::new(store::Store::open(&path, opts).map_err(|source| OutboxError::Open { path: path.clone(), source })?);
        let health = Arc::new(health::StoreHealth::default());
        let mut shards = Vec::new();
        let mut writers = Vec::new();
        let mut threads = Vec::new();
        for i in 0..cfg.effective_shards() {
            let state = Arc::new(ShardState::new(i, cfg.ready_queue));
            let (tx, rx) = crossbeam_channel::bounded(16_384);
            let (db2, st2, dur, max, h2) = (
                db.clone(),
                state.clone(),
                cfg.durability,
                cfg.group_commit_max,
                health.clone(),
            );
            let t = std::thread::Builder::new()
                .name(format!("outbox-w{i}"))
                .spawn(move || writer::run(db2, rx, st2, dur, max, h2))
                .map_err(OutboxError::Spawn)?;
            shards.push(state);
            writers.push(tx);
            threads.push(t);
        }
        let watching = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (db, health, stop) = (db.clone(), health.clone(), watching.clone());
            let t = std::thread::Builder::new()
                .name("outbox-health".into())
                .spawn(move || health::watch(&health, &stop, || db.recover()))
                .map_err(OutboxError::Spawn)?;
            threads.push(t);
        }
        let ob = Outbox {
            store: db,
            health,
            watching,
            shards,
            writers,
            threads: parking_lot::Mutex::new(threads),
            cfg: cfg.clone(),
        };
        ob.rekey_due()?;
        ob.count_pending()?;
        Ok(ob)
    }

    /// The open database (see [`store`]).
    fn db(&self) -> Result<Arc<DB>, OutboxError> {
        self.store.db().map_err(|e| OutboxError::Unavailable(e.to_string()))
    }

    /// Schedule entries written under another shard count (the setting changed) move to the
    /// shard their message belongs to now, so none is orphaned.
    fn rekey_due(&self) -> Result<(), OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_DUE)?;
        let n = self.shards.len() as u32;
        let mut batch = rocksdb::WriteBatch::default();
        let mut moved = 0u64;
        for kv in db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = kv?;
            let Some((shard, due, id)) = parse_due_key(&k) else { continue };
            let want = id.shard(n);
            if shard != want {
                batch.single_delete_cf(cf, &k);
                batch.put_cf(cf, due_key(want, due, id), &v);
                moved += 1;
            }
        }
        if moved > 0 {
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(batch, &opts)?;
            tracing::info!(moved, shards = n, "schedule re-keyed for a new shard count");
        }
        Ok(())
    }

    /// Count each shard's schedule entries (recovery: all of them resume).
    fn count_pending(&self) -> Result<(), OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_DUE)?;
        for s in &self.shards {
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(due_prefix(s.index + 1).to_vec());
            let it = db.iterator_cf_opt(
                cf,
                ro,
                IteratorMode::From(&due_prefix(s.index), IterDir::Forward),
            );
            let mut n = 0i64;
            for kv in it {
                kv?;
                n += 1;
            }
            s.depth.store(n, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// The largest message id stored, so new ids are above it after a restart.
    pub fn max_id(&self) -> Result<Option<MessageId>, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_MSG)?;
        let mut it = db.iterator_cf(cf, IteratorMode::End);
        match it.next() {
            Some(kv) => Ok(MessageId::from_be_slice(&kv?.0)),
            None => Ok(None),
        }
    }

    pub fn shards(&self) -> &[Arc<ShardState>] {
        &self.shards
    }

    pub fn shard_of(&self, id: MessageId) -> &Arc<ShardState> {
        &self.shards[id.shard(self.shards.len() as u32) as usize]
    }

    /// Messages waiting in all shards.
    pub fn depth(&self) -> i64 {
        self.shards
            .iter()
            .map(|s| s.depth.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Queue a write on shard `shard`'s writer; the receiver resolves after the commit. While
    /// the store cannot write, refused at once with [`StoreError::Unavailable`]: nothing of it
    /// is stored.
    pub fn submit(
        &self,
        shard: u32,
        changes: Changes,
        enqueue: Vec<Box<Message>>,
        messages: usize,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        if let Some(e) = self.health.error() {
            return Err(StoreError::Unavailable(e));
        }
        let (req, rx) = WriteReq::new(changes.0, enqueue, messages, true);
        let w = self.writers.get(shard as usize).ok_or(StoreError::Closed)?;
        w.try_send(req).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => StoreError::Busy,
            crossbeam_channel::TrySendError::Disconnected(_) => StoreError::Closed,
        })?;
        Ok(rx)
    }

    /// Queue one turn of a shard's state actor (written after the turns queued before it). A
    /// full queue is waited out, never refused: the turn's changes are already applied in
    /// memory. `epoch` is the actor's [`health::StoreHealth::epoch`] (see `WriteReq::epoch`).
    pub async fn submit_turn(
        &self,
        shard: u32,
        changes: Changes,
        messages: usize,
        sync: bool,
        epoch: u64,
    ) -> oneshot::Receiver<Result<(), TurnFailure>> {
        let (mut req, rx) = WriteReq::turn(changes.0, messages, sync, epoch);
        let Some(w) = self.writers.get(shard as usize) else {
            return closed_turn(req);
        };
        loop {
            match w.try_send(req) {
                Ok(()) => return rx,
                Err(crossbeam_channel::TrySendError::Full(r)) => {
                    req = r;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err(crossbeam_channel::TrySendError::Disconnected(r)) => return closed_turn(r),
            }
        }
    }

    /// Write and wait for the commit.
    pub async fn write(
        &self,
        shard: u32,
        changes: Changes,
        enqueue: Vec<Box<Message>>,
        messages: usize,
    ) -> Result<(), StoreError> {
        let rx = self.submit(shard, changes, enqueue, messages)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Read one message.
    pub fn get(&self, id: MessageId) -> Result<Option<Message>, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_MSG)?;
        let found = match db.get_pinned_cf(cf, msg_key(id))? {
            None => None,
            Some(v) => match Message::decode(&v) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!(%id, error = %e, "undecodable message in outbox");
                    None
                }
            },
        };
        Ok(found)
    }

    /// Messages of `shard` due at or before `now` that are not claimed, at most `limit`, and
    /// the due time of the first later entry.
    pub fn scan_due(
        &self,
        shard: &ShardState,
        from: Millis,
        now: Millis,
        limit: usize,
    ) -> Result<DueScan, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_DUE)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(due_prefix(shard.index + 1).to_vec());
        let start = due_from(shard.index, from);
        let it = db.iterator_cf_opt(cf, ro, IteratorMode::From(&start, IterDir::Forward));
        let upto = due_upto(shard.index, now);
        let mut scan = DueScan { messages: Vec::new(), next: None, more: false, resume: now };
        let mut due: Vec<(MessageId, Box<[u8]>)> = Vec::new();
        for kv in it {
            let (k, _) = kv?;
            if k.as_ref() >= upto.as_slice() {
                scan.next = parse_due_key(&k).map(|(_, t, _)| t);
                break;
            }
            let Some((_, t, id)) = parse_due_key(&k) else {
                continue;
            };
            if shard.is_claimed(id) {
                continue;
            }
            if due.len() >= limit {
                scan.more = true;
                scan.resume = t;
                break;
            }
            due.push((id, k));
        }
        // One batched read of the messages, in key order.
        let mut by_key: Vec<usize> = (0..due.len()).collect();
        by_key.sort_unstable_by_key(|&i| due[i].0);
        let keys: Vec<[u8; 8]> = by_key.iter().map(|&i| msg_key(due[i].0)).collect();
        let mut found: Vec<Option<Message>> = (0..due.len()).map(|_| None).collect();
        for (&i, value) in by_key.iter().zip(db.batched_multi_get_cf(cf_of(&db, CF_MSG)?, &keys, true)) {
            found[i] = match value? {
                None => None,
                Some(v) => Message::decode(&v)
                    .map_err(|e| tracing::error!(id = %due[i].0, error = %e, "undecodable message in outbox"))
                    .ok(),
            };
        }
        // Entries whose message has moved on (left behind, or the delete that went with that
        // raced this read) or is missing: dropped, in one write, so no later scan finds them.
        let mut stale = Vec::new();
        for ((id, k), m) in due.into_iter().zip(found) {
            match m {
                Some(m) if m.delivery.state.is_pending() => scan.messages.push(m),
                m => {
                    if m.is_none() {
                        tracing::warn!(%id, "schedule entry without message; removing");
                    }
                    stale.push(Op::delete(Cf::Due, &k));
                }
            }
        }
        if !stale.is_empty() {
            let _ = self.submit(shard.index, Changes(stale), vec![], 0);
        }
        Ok(scan)
    }
}

impl Drop for Outbox {
    /// Close cleanly: end the writer threads (they drain their queues first) before RocksDB is
    /// closed, so no thread touches the database while it shuts down.
    fn drop(&mut self) {
        self.watching.store(true, std::sync::atomic::Ordering::Release);
        self.writers.clear();
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
        if let Ok(db) = self.db() {
            let _ = db.flush_wal(true);
        }
    }
}

impl Outbox {
    /// Flush the WAL to disk (used on shutdown; with `durability = "fsync"` it is already).
    pub fn flush(&self) -> Result<(), OutboxError> {
        self.db()?.flush_wal(true)?;
        Ok(())
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Coding;
    use crate::model::{Address, Body, Channel, Content, Envelope, IdGen, Sms};

    fn queued(id: MessageId, due: Millis) -> Message {
        let sms = Sms { body: Body::Text("hi".into()), udh: None, coding: Coding::Gsm7, segments: 1 };
        let env = Envelope::new(Channel::Sms, Address::sms("+447400123123"), Content::Sms(sms), due + 60_000);
        Message::new(id, Direction::Outbound, env, State::Queued, due, due)
    }

    /// An outbox of one shard with a ready queue of 16, in a temporary directory.
    fn one_shard() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = OutboxConfig { path: dir.path().to_path_buf(), shards: 1, ready_queue: 16, ..Default::default() };
        let ob = Outbox::open(&cfg).unwrap();
        (dir, ob)
    }

    /// The writes that store messages and their schedule entries (shard 0).
    fn stored(msgs: &[Message]) -> Changes {
        let mut c = Changes::new();
        for m in msgs {
            c.store(m);
            c.schedule(0, m.delivery.due_at, m.id);
        }
        c
    }

    /// Every column family inserts into its memtable with a hint (see `Outbox::open`): the
    /// setting is in the options RocksDB wrote for each of them.
    #[test]
    fn column_families_insert_with_a_hint() {
        let (dir, _ob) = one_shard();
        let newest = std::fs::read_dir(db_path(dir.path()))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("OPTIONS-")))
            .max()
            .expect("an OPTIONS file");
        let options = std::fs::read_to_string(newest).unwrap();
        let hinted = options
            .lines()
            .filter(|l| l.trim() == "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.1")
            .count();
        assert_eq!(hinted, ALL_CFS.len(), "each of the outbox's column families (not the unused default one)");
    }

    /// A schedule entry whose message is no longer pending (left behind, e.g. by a key put twice
    /// under `SingleDelete`) is skipped and removed by the scan that finds it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stale_schedule_entries_are_removed_by_the_scan() {
        let (_dir, ob) = one_shard();
        let shard = ob.shards()[0].clone();
        let ids = IdGen::default();
        let due = crate::model::now_ms() - 5_000;
        let mut done = queued(ids.next(), due);
        done.delivery.state = State::Delivered;
        let pending = queued(ids.next(), due);
        ob.write(0, stored(&[done.clone(), pending.clone()]), vec![], 2).await.unwrap();
        let now = crate::model::now_ms();
        let first = ob.scan_due(&shard, due, now, 100).unwrap();
        assert_eq!(first.messages.iter().map(|m| m.id).collect::<Vec<_>>(), vec![pending.id]);
        // The removal is queued on the shard's writer; a write behind it is committed after it.
        ob.write(0, Changes::new(), vec![], 0).await.unwrap();
        let db = ob.db().unwrap();
        let cf = cf_of(&db, CF_DUE).unwrap();
        assert!(db.get_cf(cf, due_key(0, due, done.id)).unwrap().is_none(), "stale entry removed");
        assert!(db.get_cf(cf, due_key(0, due, pending.id)).unwrap().is_some(), "pending entry kept");
    }

    /// Committed messages that do not fit the ready queue are left to the scanner; the due time
    /// they were written at is noted, so a scan that had already moved past it goes back for
    /// them instead of leaving them behind its cursor.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_behind_the_scan_cursor_are_noted_and_found() {
        let (_dir, ob) = one_shard();
        let shard = ob.shards()[0].clone();
        assert!(shard.take_due_floor() > 0, "nothing noted before any write");
        let ids = IdGen::default();
        let due = crate::model::now_ms() - 5_000;
        let msgs: Vec<Message> = (0..20).map(|_| queued(ids.next(), due)).collect();
        let ops = stored(&msgs);
        ob.submit(0, ops, msgs.iter().cloned().map(Box::new).collect(), 20).unwrap().await.unwrap().unwrap();
        // 16 went to the ready queue (claimed), 4 did not fit.
        assert_eq!(shard.room(), 0);
        assert_eq!(shard.take_due_floor(), due);
        assert_eq!(shard.take_due_floor(), i64::MAX, "taken once");
        let now = crate::model::now_ms();
        // A cursor past them finds nothing; from the noted floor, the four unclaimed ones.
        let past = ob.scan_due(&shard, now, now, 100).unwrap();
        assert!(past.messages.is_empty());
        let back = ob.scan_due(&shard, due, now, 100).unwrap();
        let found: Vec<MessageId> = back.messages.iter().map(|m| m.id).collect();
        assert_eq!(found, msgs[16..].iter().map(|m| m.id).collect::<Vec<_>>());
        assert_eq!(back.resume, now);
        // With a limit, the scan resumes at the first entry it left.
        let limited = ob.scan_due(&shard, due, now, 2).unwrap();
        assert_eq!(limited.messages.len(), 2);
        assert!(limited.more);
        assert_eq!(limited.resume, due);
    }
}
