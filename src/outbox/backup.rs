//! Backups of the outbox: a consistent copy taken while the gateway runs (RocksDB's
//! checkpoint: memtables flushed, SST files hard-linked where the backup is on the same
//! filesystem, copied otherwise), and its restore into a data directory with no store yet.
//! Blobs live in the store, so a backup holds every attachment too; what connectors keep
//! beside the store (a modem bank's daily counts) is not in it.

use super::{db_path, Outbox, OutboxError};
use std::path::Path;

/// What `backup.json` in a backup says.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub created_at: String,
    pub version: String,
    pub bytes: u64,
}

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} is not a Postern backup (no backup.json)")]
    NotABackup(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    Store(#[from] OutboxError),
}

fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

impl Outbox {
    /// Write a backup into `dir` (made here; it must not exist).
    pub fn backup(&self, dir: &Path) -> Result<Manifest, BackupError> {
        if dir.exists() {
            return Err(BackupError::Exists(dir.display().to_string()));
        }
        let io = |e| BackupError::Io(dir.display().to_string(), e);
        std::fs::create_dir_all(dir).map_err(io)?;
        let db = self.db()?;
        let cp = rocksdb::checkpoint::Checkpoint::new(&db).map_err(OutboxError::Read)?;
        let store = db_path(dir);
        cp.create_checkpoint(&store).map_err(OutboxError::Read)?;
        let manifest = Manifest {
            created_at: crate::time::rfc3339(crate::model::now_ms()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            bytes: bytes_in(&store),
        };
        let text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        std::fs::write(dir.join("backup.json"), text).map_err(io)?;
        Ok(manifest)
    }
}

/// Copy the backup in `from` into `data_dir`, which must hold no store (the gateway stopped).
pub fn restore(from: &Path, data_dir: &Path) -> Result<Manifest, BackupError> {
    let manifest: Manifest = std::fs::read(from.join("backup.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| BackupError::NotABackup(from.display().to_string()))?;
    let target = db_path(data_dir);
    if target.exists() {
        return Err(BackupError::Exists(target.display().to_string()));
    }
    let io = |p: &Path, e| BackupError::Io(p.display().to_string(), e);
    // Copied into a side directory, then renamed: a restore cut short leaves no half store.
    let part = data_dir.join("outbox.restoring");
    let _ = std::fs::remove_dir_all(&part);
    std::fs::create_dir_all(&part).map_err(|e| io(&part, e))?;
    for entry in std::fs::read_dir(db_path(from)).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        std::fs::copy(entry.path(), part.join(entry.file_name())).map_err(|e| io(&entry.path(), e))?;
    }
    std::fs::rename(&part, &target).map_err(|e| io(&target, e))?;
    Ok(manifest)
}
