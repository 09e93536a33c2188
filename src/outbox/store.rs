//! The RocksDB database behind the outbox, held so that it can be closed and opened again in
//! place. After a failed WAL write (a full disk) RocksDB refuses every write until it resumes;
//! it resumes on its own only while the error stays a "hard" one, and a WAL sync that meets the
//! failed log writer (our group-commit syncer can hardly avoid one) makes it fatal: from then on
//! only a reopen clears it. So the health watcher (see [`super::health`]) reopens the database
//! when its probe fails and there is room to do so: every write that reached the WAL file is
//! read back from it, and nothing else in the process changes (shards, claims, ready queues).
//! While it is closed, reads and writes get [`StoreError::Unavailable`].

use super::keys::ALL_CFS;
use super::writer::StoreError;
use parking_lot::RwLock;
use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Room needed on the volume for a reopen beyond the WAL it reads back (flushed to tables).
const REOPEN_HEADROOM: u64 = 16 << 20;

/// How long a reopen waits for readers and writers to let go of the old database.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// The database, or nothing while it is being (or could not be) opened again.
pub struct Store {
    path: PathBuf,
    opts: Options,
    cur: RwLock<Option<Arc<DB>>>,
}

impl Store {
    /// Open the database at `path` with its column families.
    pub fn open(path: &Path, opts: Options) -> Result<Store, rocksdb::Error> {
        let db = open_db(path, &opts)?;
        Ok(Store { path: path.to_path_buf(), opts, cur: RwLock::new(Some(Arc::new(db))) })
    }

    /// The open database.
    pub fn db(&self) -> Result<Arc<DB>, StoreError> {
        self.cur.read().clone().ok_or_else(|| StoreError::Unavailable("the outbox database is being reopened".into()))
    }

    /// Close the database (after everyone has let go of it) and open it again. While it is
    /// closed, `db()` fails; if the open fails, it stays closed until the next call.
    pub fn reopen(&self) -> Result<(), String> {
        let mut cur = self.cur.write();
        if let Some(mut old) = cur.take() {
            let since = Instant::now();
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if since.elapsed() < RELEASE_WAIT => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(still) => {
                        *cur = Some(still);
                        return Err("the outbox database is still in use; not reopened".into());
                    }
                }
            }
        }
        let db = open_db(&self.path, &self.opts).map_err(|e| e.to_string())?;
        *cur = Some(Arc::new(db));
        Ok(())
    }

    /// One recovery attempt of the health watcher: the probe; if it fails, a reopen of the
    /// database when the volume has room for it (RocksDB may never resume on its own, see
    /// the module doc), and the probe again.
    pub fn recover(&self) -> Result<(), String> {
        let Err(e) = self.probe() else { return Ok(()) };
        self.room_to_reopen().map_err(|room| format!("{e} (waiting for space: {room})"))?;
        tracing::warn!(error = %e, "outbox reopening its database");
        self.reopen().map_err(|r| format!("{e}; reopen failed: {r}"))?;
        self.probe()
    }

    /// One recovery attempt: a small synced write, which succeeds once RocksDB has resumed from
    /// its background error (it does so on its own for a full disk, when its free-space check
    /// passes), then a flush of every memtable, so that writes whose WAL sync failed are durable
    /// before anyone is told they are committed.
    fn probe(&self) -> Result<(), String> {
        let db = self.db().map_err(|e| e.to_string())?;
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        let now = crate::model::now_ms().to_be_bytes();
        db.put_opt(b"postern:health-probe", now, &opts).map_err(|e| e.to_string())?;
        db.flush().map_err(|e| e.to_string())?;
        for name in ALL_CFS {
            if let Some(cf) = db.cf_handle(name) {
                db.flush_cf(cf).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Whether the volume has room for a reopen: the WAL files it reads back, and some headroom.
    /// `Err` says how much is free and needed.
    pub fn room_to_reopen(&self) -> Result<(), String> {
        let wal: u64 = std::fs::read_dir(&self.path)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let need = wal + REOPEN_HEADROOM;
        match free_space(&self.path) {
            Some(free) if free >= need => Ok(()),
            Some(free) => Err(format!("{free} bytes free, {need} needed to reopen")),
            None => Ok(()), // cannot tell: try
        }
    }
}

fn open_db(path: &Path, opts: &Options) -> Result<DB, rocksdb::Error> {
    let cfs = ALL_CFS.iter().map(|n| ColumnFamilyDescriptor::new(*n, opts.clone()));
    DB::open_cf_descriptors(opts, path, cfs)
}

/// Bytes available to us on the volume holding `path`.
fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (r == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopens_in_place_keeping_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let s = Store::open(dir.path(), opts).unwrap();
        s.db().unwrap().put(b"k", b"v").unwrap();
        s.reopen().unwrap();
        assert_eq!(s.db().unwrap().get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(s.room_to_reopen().is_ok());
        // A reader holding the old database: the reopen waits for it.
        let held = s.db().unwrap();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                drop(held);
            });
            s.reopen().unwrap();
        });
        assert_eq!(s.db().unwrap().get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
