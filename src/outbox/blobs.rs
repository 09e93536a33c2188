//! Blobs: files kept by the SHA-256 of their bytes (email attachments, large bodies), written
//! synced through a shard's writer before the caller is answered, so a message that refers to
//! one never outlives it. A message holds a reference (`Changes::ref_blob`, in the message's own
//! write); a blob no message refers to is removed by [`Outbox::sweep_blobs`] once it is older
//! than a grace period (time for the upload's message to be sent). The same bytes uploaded twice
//! are stored once.

use super::keys::*;
use super::*;
use sha2::{Digest as _, Sha256};

/// The SHA-256 of a blob's bytes: its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(data: &[u8]) -> Digest {
        Digest(Sha256::digest(data).into())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for Digest {
    type Err = ();
    /// 64 lowercase or uppercase hex digits.
    fn from_str(s: &str) -> Result<Digest, ()> {
        let mut d = [0u8; 32];
        hex::decode_to_slice(s, &mut d).map_err(|_| ())?;
        Ok(Digest(d))
    }
}

/// Stored value: written-at (ms, big-endian) ‖ the bytes.
const HEADER: usize = 8;

impl Outbox {
    /// Store `data` (synced) and return its digest; already stored: nothing is written.
    pub async fn put_blob(&self, data: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(data);
        if self.blob_exists(&digest).unwrap_or(false) {
            return Ok(digest);
        }
        let mut value = Vec::with_capacity(HEADER + data.len());
        value.extend_from_slice(&crate::model::now_ms().to_be_bytes());
        value.extend_from_slice(data);
        let shard = (digest.0[0] as usize % self.shards().len()) as u32;
        self.write(shard, Changes(vec![Op::put(Cf::Blobs, digest.0, value)]), vec![], 0)
            .await?;
        Ok(digest)
    }

    fn blob_exists(&self, digest: &Digest) -> Result<bool, OutboxError> {
        let db = self.db()?;
        let found = db.get_pinned_cf(cf_of(&db, CF_BLOBS)?, digest.0)?.is_some();
        Ok(found)
    }

    /// A blob's bytes.
    pub fn get_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, OutboxError> {
        let db = self.db()?;
        let v = db.get_pinned_cf(cf_of(&db, CF_BLOBS)?, digest.0)?;
        let bytes = v.filter(|v| v.len() >= HEADER).map(|v| v[HEADER..].to_vec());
        Ok(bytes)
    }

    /// How many messages refer to a blob.
    pub fn blob_refs(&self, digest: &Digest) -> Result<usize, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_BLOB_REFS)?;
        let mut n = 0;
        for kv in db.iterator_cf(cf, IteratorMode::From(&digest.0, IterDir::Forward)) {
            if !kv?.0.starts_with(&digest.0) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Remove the blobs that no message refers to and that were written before `before`;
    /// returns how many.
    pub async fn sweep_blobs(&self, before: Millis) -> Result<usize, OutboxError> {
        let mut gone = Vec::new();
        {
            let db = self.db()?;
            let cf = cf_of(&db, CF_BLOBS)?;
            for kv in db.iterator_cf(cf, IteratorMode::Start) {
                let (k, v) = kv?;
                let Ok(digest) = <[u8; 32]>::try_from(&k[..]) else { continue };
                let written = v.get(..HEADER).and_then(|h| h.try_into().ok()).map(i64::from_be_bytes).unwrap_or(0);
                if written < before && self.blob_refs(&Digest(digest))? == 0 {
                    gone.push(Op::delete(Cf::Blobs, digest));
                }
            }
        }
        let n = gone.len();
        if n > 0 {
            self.write(0, Changes(gone), vec![], 0).await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IdGen;

    fn open() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::OutboxConfig { path: dir.path().to_path_buf(), shards: 2, ..Default::default() };
        let ob = Outbox::open(&cfg).unwrap();
        (dir, ob)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stored_once_by_content_and_kept_while_referred_to() {
        let (dir, ob) = open();
        let pdf = b"%PDF-1.7 not really".to_vec();
        let d = ob.put_blob(&pdf).await.unwrap();
        assert_eq!(d.to_string().len(), 64);
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d));
        assert_eq!(ob.put_blob(&pdf).await.unwrap(), d, "the same bytes, the same name");
        assert_eq!(ob.get_blob(&d).unwrap().as_deref(), Some(&pdf[..]));
        assert!(ob.get_blob(&Digest::of(b"other")).unwrap().is_none());

        let ids = IdGen::default();
        let (a, b) = (ids.next(), ids.next());
        let mut c = Changes::new();
        c.ref_blob(&d, a);
        c.ref_blob(&d, b);
        ob.write(0, c, vec![], 0).await.unwrap();
        assert_eq!(ob.blob_refs(&d).unwrap(), 2);
        let later = crate::model::now_ms() + 1;
        assert_eq!(ob.sweep_blobs(later).await.unwrap(), 0, "referred to: kept");
        let mut c = Changes::new();
        c.unref_blob(&d, a);
        ob.write(0, c, vec![], 0).await.unwrap();
        assert_eq!(ob.sweep_blobs(later).await.unwrap(), 0, "one reference left");
        let mut c = Changes::new();
        c.unref_blob(&d, b);
        ob.write(0, c, vec![], 0).await.unwrap();
        assert_eq!(ob.sweep_blobs(crate::model::now_ms() - 60_000).await.unwrap(), 0, "within the grace period: kept");
        assert_eq!(ob.sweep_blobs(later).await.unwrap(), 1);
        assert!(ob.get_blob(&d).unwrap().is_none());

        // Synced before the answer: a blob put survives a reopen.
        let d2 = ob.put_blob(b"survives").await.unwrap();
        drop(ob);
        let cfg = crate::config::OutboxConfig { path: dir.path().to_path_buf(), shards: 2, ..Default::default() };
        let ob = Outbox::open(&cfg).unwrap();
        assert_eq!(ob.get_blob(&d2).unwrap().as_deref(), Some(&b"survives"[..]));
    }
}
