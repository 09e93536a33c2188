//! Records: the hub's named resources that are not messages (templates now; webhook endpoints,
//! contacts, users later), kept in their own column family as `collection ‖ 0 ‖ id → bytes`,
//! written synced through shard 0's writer, so a record is on disk before the API answers. What
//! a record's bytes mean belongs to its owner; this module only stores, reads and lists them.

use super::keys::*;
use super::*;

impl Outbox {
    /// Store (or replace) a record; synced before it returns.
    pub async fn put_record(&self, collection: &str, id: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let op = Op::put(Cf::Records, record_key(collection, id), value);
        self.write(0, Changes(vec![op]), vec![], 0).await
    }

    /// Remove a record; synced before it returns.
    pub async fn delete_record(&self, collection: &str, id: &str) -> Result<(), StoreError> {
        let op = Op::delete(Cf::Records, record_key(collection, id));
        self.write(0, Changes(vec![op]), vec![], 0).await
    }

    /// One record.
    pub fn get_record(&self, collection: &str, id: &str) -> Result<Option<Vec<u8>>, OutboxError> {
        let db = self.db()?;
        Ok(db.get_cf(cf_of(&db, CF_RECORDS)?, record_key(collection, id))?)
    }

    /// Every record of a collection, in id order.
    pub fn records(&self, collection: &str) -> Result<Vec<(String, Vec<u8>)>, OutboxError> {
        let db = self.db()?;
        let prefix = record_key(collection, "");
        let mut out = Vec::new();
        for kv in db.iterator_cf(cf_of(&db, CF_RECORDS)?, IteratorMode::From(&prefix, IterDir::Forward)) {
            let (k, v) = kv?;
            let Some(id) = k.strip_prefix(&prefix[..]) else { break };
            out.push((String::from_utf8_lossy(id).into_owned(), v.into_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stored_listed_by_collection_and_kept_over_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::OutboxConfig { path: dir.path().to_path_buf(), shards: 2, ..Default::default() };
        let ob = Outbox::open(&cfg).unwrap();
        ob.put_record("templates", "b", b"two".to_vec()).await.unwrap();
        ob.put_record("templates", "a", b"one".to_vec()).await.unwrap();
        ob.put_record("templatesX", "c", b"other collection".to_vec()).await.unwrap();
        ob.put_record("webhooks", "a", b"elsewhere".to_vec()).await.unwrap();
        let list = ob.records("templates").unwrap();
        assert_eq!(list, vec![("a".into(), b"one".to_vec()), ("b".into(), b"two".to_vec())]);
        ob.delete_record("templates", "a").await.unwrap();
        assert_eq!(ob.get_record("templates", "a").unwrap(), None);
        drop(ob);
        let ob = Outbox::open(&cfg).unwrap();
        assert_eq!(ob.get_record("templates", "b").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(ob.records("webhooks").unwrap().len(), 1);
    }
}
