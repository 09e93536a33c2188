//! The outbox's read side beyond the hot path: remote-id lookups, held MO parts, the API's
//! message listing, and the callback events that are due.

use super::keys::*;
use super::*;

impl Outbox {
    /// The message a connector's remote id belongs to.
    pub fn lookup_remote(
        &self,
        connector: &str,
        remote_id: &str,
    ) -> Result<Option<(MessageId, u16)>, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_REMOTE)?;
        let found = db.get_pinned_cf(cf, remote_key(connector, remote_id))?.and_then(|v| parse_remote_value(&v));
        Ok(found)
    }

    /// Held MO parts of `connector` (values as stored).
    pub fn held_parts(&self, connector: &str) -> Result<Vec<Vec<u8>>, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_PARTS)?;
        let prefix = remote_key(connector, "");
        let mut out = Vec::new();
        for kv in db.iterator_cf(cf, IteratorMode::From(&prefix, IterDir::Forward)) {
            let (k, v) = kv?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(v.to_vec());
        }
        Ok(out)
    }

    /// Remote ids of `connector` still waiting for a receipt.
    pub fn outstanding_remote_ids(&self, connector: &str) -> Result<Vec<String>, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_REMOTE)?;
        let prefix = remote_key(connector, "");
        let mut out = Vec::new();
        for kv in db.iterator_cf(cf, IteratorMode::From(&prefix, IterDir::Forward))
        {
            let (k, _) = kv?;
            let Some(rid) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            out.push(String::from_utf8_lossy(rid).into_owned());
        }
        Ok(out)
    }

    /// Newest first, starting below `cursor`. Examines at most `scan_limit` records; returns the
    /// matches and the cursor to continue from (None at the end).
    pub fn list(
        &self,
        filter: &ListFilter,
        cursor: Option<MessageId>,
        limit: usize,
        scan_limit: usize,
    ) -> Result<(Vec<Message>, Option<MessageId>), OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_MSG)?;
        let start = cursor.map(|c| MessageId(c.0.saturating_sub(1)).to_be_bytes());
        let mode = match &start {
            Some(k) if cursor.map(|c| c.0) != Some(0) => IteratorMode::From(k, IterDir::Reverse),
            Some(_) => return Ok((vec![], None)),
            None => IteratorMode::End,
        };
        let mut out = Vec::new();
        let mut last;
        for (scanned, kv) in db.iterator_cf(cf, mode).enumerate() {
            let (k, v) = kv?;
            let id = MessageId::from_be_slice(&k);
            last = id;
            if scanned >= scan_limit {
                return Ok((out, last));
            }
            let Ok(m) = Message::decode(&v) else { continue };
            if filter.state.is_some_and(|s| s != m.delivery.state)
                || filter.direction.is_some_and(|d| d != m.direction)
                || filter.channel.is_some_and(|c| c != m.envelope.channel)
                || filter.to.as_ref().is_some_and(|t| t.as_str() != m.envelope.to.as_str())
            {
                continue;
            }
            out.push(m);
            if out.len() >= limit {
                return Ok((out, last));
            }
        }
        Ok((out, None))
    }

    /// Pending callback events due at or before `now`: (key, value).
    ///
    /// `from` (a key, inclusive) skips what lies before it: the events below it were sent and
    /// deleted, and a scan from the start would step over every one of their tombstones until
    /// RocksDB compacts them (at thousands of callbacks a second, most of a core).
    pub fn due_events(
        &self,
        from: Option<&[u8]>,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_EVENTS)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(event_upto(now).to_vec());
        let mut out = Vec::new();
        for kv in db.iterator_cf_opt(cf, ro, events_from(from))
            .take(limit)
        {
            let (k, v) = kv?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Due time of the earliest pending event at or after `from` (see [`Outbox::due_events`]).
    pub fn next_event_at(&self, from: Option<&[u8]>) -> Result<Option<Millis>, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_EVENTS)?;
        let mut it = db.iterator_cf(cf, events_from(from));
        Ok(match it.next() {
            Some(kv) => parse_event_key(&kv?.0).map(|(t, _)| t),
            None => None,
        })
    }
}

/// Where a scan of the events column family starts: at `from` (inclusive), else the first key.
fn events_from(from: Option<&[u8]>) -> IteratorMode<'_> {
    match from {
        Some(k) => IteratorMode::From(k, IterDir::Forward),
        None => IteratorMode::Start,
    }
}
