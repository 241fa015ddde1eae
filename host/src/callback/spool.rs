//! The durable spool: every callback is committed to an embedded database (redb, crash-safe,
//! fsync on commit) before `enqueue` returns, and removed only once it is delivered or final.
//! A process killed at any moment restarts with exactly the entries that were not yet removed.
//!
//! Layout: `{spool_dir}/spool.redb`, one table of entries keyed by a monotonic id (the order
//! callbacks were enqueued in, which is their delivery order per ordering key) and one counter.
//! The directory is created private (mode 0700): entries hold their target's signing secret.

use anyhow::Context;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// id → JSON of an [`Entry`].
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("callbacks");
/// `"next_id"` → the id the next entry gets. Ids are never reused, even once the table empties.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_ID: &str = "next_id";

/// The database's page cache: the spool holds small entries, 1 GiB (redb's default) is overkill.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// One spooled callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Delivery order is kept among entries with the same key (a stream).
    pub ordering_key: String,
    /// Where to POST.
    pub url: String,
    /// HMAC secret to sign with, if the target has one.
    #[serde(default)]
    pub secret: Option<String>,
    /// The callback JSON body, sent byte for byte.
    pub body: String,
    /// When it was enqueued, Unix ms; its age decides expiry.
    pub enqueued_ms: u64,
    /// In cluster mode, the JetStream message id (`Nats-Msg-Id`): a publish that is retried
    /// (its ack was lost, or it went through the local spool) is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
}

/// What [`Spool::load`] found in a slot: an entry, or bytes it could not read.
pub type Loaded = (u64, Result<Entry, String>);

/// The on-disk queue. All methods block (disk I/O, fsync): call them from a blocking context.
pub struct Spool {
    db: Database,
    path: PathBuf,
}

impl Spool {
    /// Open (create) the spool in `dir`. Fails if another process has it open.
    pub fn open(dir: &Path) -> anyhow::Result<Spool> {
        create_private_dir(dir)?;
        let path = dir.join("spool.redb");
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                    "callback spool {} is in use by another livesnap process (give each process \
                     its own spool directory)",
                    path.display()
                ),
                e => anyhow::Error::new(e)
                    .context(format!("opening callback spool {}", path.display())),
            })?;
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Spool { db, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, in id order.
    pub fn load(&self) -> anyhow::Result<Vec<Loaded>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (id, bytes) = row?;
            let entry = serde_json::from_slice(bytes.value())
                .map_err(|e| format!("unreadable spool entry ({e}): {}", redacted(bytes.value())));
            out.push((id.value(), entry));
        }
        Ok(out)
    }

    /// Commit `entry` durably (fsync) and return its id, higher than every earlier one.
    pub fn append(&self, entry: &Entry) -> anyhow::Result<u64> {
        let ids = self.append_batch(std::slice::from_ref(entry))?;
        ids.first()
            .copied()
            .context("an append of one entry returns one id")
    }

    /// Commit `entries` durably in one transaction (one fsync for all: group commit) and return
    /// their ids, consecutive and higher than every earlier one, in the order given.
    pub fn append_batch<E: std::borrow::Borrow<Entry>>(
        &self,
        entries: &[E],
    ) -> anyhow::Result<Vec<u64>> {
        let txn = self.db.begin_write()?;
        let mut ids = Vec::with_capacity(entries.len());
        {
            let mut meta = txn.open_table(META)?;
            let mut table = txn.open_table(ENTRIES)?;
            let mut id = meta.get(NEXT_ID)?.map(|v| v.value()).unwrap_or(0);
            for entry in entries {
                let bytes = serde_json::to_vec(entry.borrow())?;
                table.insert(id, bytes.as_slice())?;
                ids.push(id);
                id += 1;
            }
            meta.insert(NEXT_ID, id)?;
        }
        txn.commit()
            .with_context(|| format!("committing to callback spool {}", self.path.display()))?;
        Ok(ids)
    }

    /// Remove entry `id` (delivered or final). Not fsync'd on its own: it becomes durable with
    /// the next append. A crash before that brings the entry back and it is delivered again —
    /// a duplicate, which at-least-once delivery allows (receivers dedupe on `taskid`) — and
    /// in exchange a delivery costs no fsync.
    pub fn remove(&self, id: u64) -> anyhow::Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        txn.open_table(ENTRIES)?.remove(id)?;
        txn.commit()
            .with_context(|| format!("committing to callback spool {}", self.path.display()))?;
        Ok(())
    }
}

/// The text of an unreadable entry without its signing secret, for the dead-letter file.
fn redacted(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut value) => {
            if let Some(obj) = value.as_object_mut() {
                obj.remove("secret");
            }
            value.to_string()
        }
        // Not JSON at all: nothing recognisable as a secret field, keep the text.
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating callback spool directory {}", dir.display()))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating callback spool directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, n: u32) -> Entry {
        Entry {
            ordering_key: key.into(),
            url: "http://127.0.0.1:9/cb".into(),
            secret: Some("s".into()),
            body: format!("{{\"n\":{n}}}"),
            enqueued_ms: 1_700_000_000_000 + u64::from(n),
            msg_id: None,
        }
    }

    #[test]
    fn a_batch_commits_consecutive_ids_in_the_order_given() {
        let dir = std::env::temp_dir().join(format!("livesnap-spool-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spool = Spool::open(&dir).unwrap();
        assert_eq!(spool.append(&entry("a", 0)).unwrap(), 0);
        let batch = [entry("a", 1), entry("b", 2), entry("a", 3)];
        assert_eq!(spool.append_batch(&batch).unwrap(), [1, 2, 3]);
        assert_eq!(spool.append(&entry("b", 4)).unwrap(), 4);
        drop(spool);
        let spool = Spool::open(&dir).unwrap();
        let loaded: Vec<u64> = spool
            .load()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(loaded, [0, 1, 2, 3, 4]);
        let (_, third) = &spool.load().unwrap()[3];
        assert_eq!(third.as_ref().unwrap(), &entry("a", 3));
        drop(spool);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entries_survive_reopening_in_order_and_ids_are_never_reused() {
        let dir = std::env::temp_dir().join(format!("livesnap-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spool = Spool::open(&dir).unwrap();
        let ids: Vec<u64> = (0..4)
            .map(|n| {
                spool
                    .append(&entry(if n % 2 == 0 { "a" } else { "b" }, n))
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        spool.remove(1).unwrap();
        // A second handle on the same spool is refused while the first is open.
        let busy = Spool::open(&dir).err().unwrap().to_string();
        assert!(
            busy.contains("in use by another livesnap process"),
            "{busy}"
        );
        drop(spool);

        let spool = Spool::open(&dir).unwrap();
        let loaded: Vec<(u64, Entry)> = spool
            .load()
            .unwrap()
            .into_iter()
            .map(|(id, e)| (id, e.unwrap()))
            .collect();
        assert_eq!(
            loaded,
            [(0, entry("a", 0)), (2, entry("a", 2)), (3, entry("b", 3))]
        );
        for (id, _) in &loaded {
            spool.remove(*id).unwrap();
        }
        assert!(spool.load().unwrap().is_empty());
        assert_eq!(spool.append(&entry("a", 9)).unwrap(), 4);
        drop(spool);
        let text = redacted(br#"{"url":"http://h","secret":"s3cr3t","body":7}"#);
        assert!(
            !text.contains("s3cr3t") && text.contains(r#""url":"http://h""#),
            "{text}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
