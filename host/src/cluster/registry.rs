//! The cluster-wide live registry: one KV entry per live stream in the bucket `livesnap_live`,
//! key `s.{app}.{stream}` (each name encoded: `[A-Za-z0-9_-]` kept, every other byte `=XX`),
//! value `{node, boot, session_id, push_start_ms}`.
//!
//! - Created atomically on publish (KV `create`): a second publish of a live name on any node
//!   is refused as [`Refusal::AlreadyLive`], the same log line as on one node.
//! - An entry lives as long as its node's lease (`live.{node}` in `livesnap_nodes`, refreshed
//!   every `lease_s / 3`, holding the node process's boot id): entries are not refreshed one by
//!   one, so a node's coordination cost does not grow with its streams. An entry whose node's
//!   lease is gone (or names another boot of the node) is stale: a publish of that name takes it
//!   over by compare-and-set, the tenant count skips it, and a sweep on every node deletes it.
//!   Deleted on unpublish (only if still its own revision).
//! - Every node follows the bucket and the leases with two KV watches ([`LiveView`]); counting
//!   and the overwrite check read that view instead of asking JetStream.
//! - `max_streams_per_tenant`: after creating its entry at revision R, a publish waits until
//!   its view has seen R and counts the tenant's live entries of lower revision (created
//!   earlier). A publish that finds the cap full withdraws and is refused; two racing publishes
//!   on two nodes are ordered by the bucket's sequence, so they cannot both take the last place.
//! - A node whose lease lapsed (NATS away longer than `lease_s`) and whose entries were swept
//!   registers them again when it is back, or logs that the name was taken meanwhile.
//! - If JetStream does not answer within `publish_timeout_ms`, the publish is admitted on the
//!   node's own checks (logged once): a streaming service keeps taking streams while its
//!   coordination store is away, rather than refusing every publisher.

use super::Cluster;
use crate::callback::lock;
use crate::ingest::Refusal;
use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What a live entry holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveValue {
    /// Node the stream is live on.
    pub node: String,
    /// That node's process id: an entry of an earlier run of the node is stale.
    pub boot: String,
    /// The session id.
    pub session_id: u32,
    /// Unix ms of the push start.
    pub push_start_ms: u64,
}

/// The KV key of `app/stream`.
pub fn live_key(app: &str, stream: &str) -> String {
    format!("s.{}.{}", encode(app), encode(stream))
}

/// `[A-Za-z0-9_-]` kept, every other byte as `=XX` (upper-case hex): a valid KV key token
/// (no dots, no wildcards) that maps back to exactly one name.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// One entry as the view last saw it.
#[derive(Debug, Clone)]
struct Seen {
    value: LiveValue,
    revision: u64,
}

/// An entry this node wrote for one of its sessions.
struct Own {
    value: bytes::Bytes,
    revision: u64,
}

/// This node's view of the registry and of the node leases, kept current by two KV watches
/// (rebuilt from the buckets' last values when a watch restarts).
pub struct LiveView {
    node: String,
    boot: String,
    lease: Duration,
    entries: Mutex<BTreeMap<String, Seen>>,
    /// Node → (boot id of its last lease, when this node saw that lease written).
    leases: Mutex<HashMap<String, (String, Instant)>>,
    /// The highest registry revision seen: every entry written before it is in `entries`.
    seen: watch::Sender<u64>,
    /// The highest lease-bucket revision seen.
    seen_leases: watch::Sender<u64>,
    /// The revision of this node's first lease write (0 until written).
    first_lease: watch::Sender<u64>,
    /// Entries of this node's sessions, by key.
    own: Mutex<HashMap<String, Own>>,
    /// Keys whose loss (taken after a lapsed lease) was logged.
    lost: Mutex<HashSet<String>>,
    /// Entries of ended sessions whose delete failed: `(key, revision)`, retried by the sweep.
    orphans: Mutex<Vec<(String, u64)>>,
}

impl LiveView {
    pub(super) fn new(node: &str, boot: &str, lease: Duration) -> LiveView {
        LiveView {
            node: node.to_owned(),
            boot: boot.to_owned(),
            lease,
            entries: Mutex::default(),
            leases: Mutex::default(),
            seen: watch::Sender::new(0),
            seen_leases: watch::Sender::new(0),
            first_lease: watch::Sender::new(0),
            own: Mutex::default(),
            lost: Mutex::default(),
            orphans: Mutex::default(),
        }
    }

    /// Whether `value`'s node holds a lease of the same boot (as far as this view knows).
    fn alive(&self, value: &LiveValue) -> bool {
        if value.node == self.node {
            return value.boot == self.boot;
        }
        lock(&self.leases)
            .get(&value.node)
            .is_some_and(|(boot, at)| *boot == value.boot && at.elapsed() < self.lease)
    }

    fn apply_entry(&self, entry: &kv::Entry) {
        let value = (entry.operation == kv::Operation::Put)
            .then(|| serde_json::from_slice::<LiveValue>(&entry.value).ok())
            .flatten();
        {
            let mut entries = lock(&self.entries);
            match value {
                Some(value) => {
                    entries.insert(
                        entry.key.clone(),
                        Seen {
                            value,
                            revision: entry.revision,
                        },
                    );
                }
                None => {
                    entries.remove(&entry.key);
                }
            }
        }
        self.seen
            .send_if_modified(|seen| raise(seen, entry.revision));
    }

    fn apply_lease(&self, entry: &kv::Entry) {
        if let Some(node) = entry.key.strip_prefix("live.") {
            let mut leases = lock(&self.leases);
            if entry.operation == kv::Operation::Put {
                let boot = String::from_utf8_lossy(&entry.value).into_owned();
                leases.insert(node.to_owned(), (boot, Instant::now()));
            } else {
                leases.remove(node);
            }
        }
        self.seen_leases
            .send_if_modified(|seen| raise(seen, entry.revision));
    }

    /// This node wrote its lease at `revision`.
    pub(super) fn lease_written(&self, revision: u64) {
        self.first_lease
            .send_if_modified(|first| *first == 0 && raise(first, revision));
    }

    /// Wait until the view holds every entry up to `revision` and every lease written before
    /// this node's own first lease.
    async fn caught_up(&self, revision: u64) -> anyhow::Result<()> {
        let mut first = self.first_lease.subscribe();
        let first = *first.wait_for(|r| *r > 0).await?;
        self.seen_leases
            .subscribe()
            .wait_for(|r| *r >= first)
            .await?;
        self.seen.subscribe().wait_for(|r| *r >= revision).await?;
        Ok(())
    }

    /// The tenant's live entries created before `revision` (stale ones not counted).
    fn earlier_streams(&self, app: &str, revision: u64) -> usize {
        let prefix = format!("s.{}.", encode(app));
        let entries = lock(&self.entries);
        entries
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .filter(|(_, seen)| seen.revision < revision && self.alive(&seen.value))
            .count()
    }

    /// Entries that look stale in this view, by node: `(key, revision, boot)`.
    fn suspects(&self) -> HashMap<String, Vec<(String, u64, String)>> {
        let mut out: HashMap<String, Vec<_>> = HashMap::new();
        for (key, seen) in lock(&self.entries).iter() {
            if !self.alive(&seen.value) {
                out.entry(seen.value.node.clone()).or_default().push((
                    key.clone(),
                    seen.revision,
                    seen.value.boot.clone(),
                ));
            }
        }
        out
    }
}

/// `*seen = max(*seen, revision)`; whether it grew.
fn raise(seen: &mut u64, revision: u64) -> bool {
    let grew = revision > *seen;
    if grew {
        *seen = revision;
    }
    grew
}

/// What one of a node's two KV watches follows into its [`LiveView`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Watched {
    /// The registry bucket, every key.
    Entries,
    /// The node leases (`live.*` of the nodes bucket).
    Leases,
}

impl LiveView {
    fn apply(&self, watched: Watched, entry: &kv::Entry) {
        match watched {
            Watched::Entries => self.apply_entry(entry),
            Watched::Leases => self.apply_lease(entry),
        }
    }

    /// Forget what a broken watch delivered: a new watch delivers the last values again.
    fn reset(&self, watched: Watched) {
        match watched {
            Watched::Entries => {
                lock(&self.entries).clear();
                self.seen.send_replace(0);
            }
            Watched::Leases => {
                lock(&self.leases).clear();
                self.seen_leases.send_replace(0);
            }
        }
    }
}

/// Watch what `watched` names (last values first, then every change) into `cluster`'s view
/// until the node stops; a broken watch is reset and watched again.
pub(super) async fn follow(cluster: Arc<Cluster>, watched: Watched) {
    let (bucket, keys, what) = match watched {
        Watched::Entries => (&cluster.conn.live, ">", "registry"),
        Watched::Leases => (&cluster.conn.nodes, "live.*", "leases"),
    };
    let view = &cluster.view;
    loop {
        let watch = tokio::select! {
            _ = cluster.stop.cancelled() => return,
            watch = bucket.watch_with_history(keys) => watch,
        };
        match watch {
            Ok(mut watch) => {
                view.reset(watched);
                loop {
                    let next = tokio::select! {
                        _ = cluster.stop.cancelled() => return,
                        next = watch.next() => next,
                    };
                    match next {
                        Some(Ok(entry)) => view.apply(watched, &entry),
                        Some(Err(e)) => {
                            cluster.warn_once(
                                what,
                                &e.to_string(),
                                "the cluster registry watch broke; watching again",
                            );
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(e) => cluster.warn_once(
                what,
                &e.to_string(),
                "cannot watch the cluster registry; retrying",
            ),
        }
        tokio::select! {
            _ = cluster.stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The registry as seen from one node.
pub struct Registry<'a> {
    cluster: &'a Cluster,
}

/// A live stream's entry, held by its session: deleted on drop.
pub struct LiveEntry {
    view: Arc<LiveView>,
    live: kv::Store,
    key: String,
}

impl Drop for LiveEntry {
    fn drop(&mut self) {
        let key = std::mem::take(&mut self.key);
        let Some(own) = lock(&self.view.own).remove(&key) else {
            return;
        };
        let (live, view) = (self.live.clone(), self.view.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = live.delete_expect_revision(&key, Some(own.revision)).await {
                    // NATS away, or the entry is someone else's by now: the sweep tries again
                    // (an entry left behind would keep the name live while this node lives).
                    tracing::debug!(%key, cause = %e, "live entry not deleted yet");
                    lock(&view.orphans).push((key, own.revision));
                }
            });
        }
    }
}

impl<'a> Registry<'a> {
    pub(super) fn new(cluster: &'a Cluster) -> Self {
        Registry { cluster }
    }

    /// Register `app/stream` as live on this node, or refuse it: live elsewhere (or here), or
    /// the tenant's cluster-wide cap is full. `Ok(None)`: JetStream did not answer, admitted on
    /// this node's own checks.
    pub async fn register(
        &self,
        app: &str,
        stream: &str,
        session_id: u32,
        push_start_ms: u64,
        max_per_tenant: usize,
    ) -> Result<Option<LiveEntry>, Refusal> {
        let conn = &self.cluster.conn;
        let timeout = Duration::from_millis(conn.cfg.publish_timeout_ms);
        let key = live_key(app, stream);
        let name = format!("{app}/{stream}");
        let value = LiveValue {
            node: conn.cfg.node.clone(),
            boot: conn.boot.clone(),
            session_id,
            push_start_ms,
        };
        let bytes: bytes::Bytes = serde_json::to_vec(&value)
            .map_err(|e| Refusal::Runtime(e.to_string()))?
            .into();
        let revision = match tokio::time::timeout(timeout, self.create(&key, &bytes)).await {
            Ok(Ok(Some(revision))) => revision,
            Ok(Ok(None)) => return Err(Refusal::AlreadyLive(name)),
            Ok(Err(e)) => {
                self.unreachable(&format!("{e:#}"));
                return Ok(None);
            }
            Err(_) => {
                self.unreachable("timeout");
                return Ok(None);
            }
        };
        let view = &self.cluster.view;
        lock(&view.own).insert(
            key.clone(),
            Own {
                value: bytes,
                revision,
            },
        );
        let entry = LiveEntry {
            view: view.clone(),
            live: conn.live.clone(),
            key,
        };
        match tokio::time::timeout(timeout, view.caught_up(revision)).await {
            Ok(Ok(())) => {
                let earlier = view.earlier_streams(app, revision);
                if earlier >= max_per_tenant {
                    drop(entry);
                    return Err(Refusal::TooMany(format!(
                        "app {app:?} has {earlier} live streams in the cluster, the limit \
                         (max_streams_per_tenant)"
                    )));
                }
            }
            Ok(Err(e)) => self.unreachable(&format!("{e:#}")),
            Err(_) => self.unreachable("timeout counting the tenant's streams"),
        }
        Ok(Some(entry))
    }

    /// Create `key`, or take it over if the entry there is stale: its revision, `None` if the
    /// name is live.
    async fn create(&self, key: &str, value: &bytes::Bytes) -> anyhow::Result<Option<u64>> {
        let live = &self.cluster.conn.live;
        // Twice at most: an entry deleted between the create and the read is created again.
        for _ in 0..2 {
            match live.create(key, value.clone()).await {
                Ok(revision) => return Ok(Some(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            let Some(there) = live.entry(key).await? else {
                continue;
            };
            let Ok(owner) = serde_json::from_slice::<LiveValue>(&there.value) else {
                // Not an entry of ours: replace it.
                return Ok(live.update(key, value.clone(), there.revision).await.ok());
            };
            if self.lease_of(&owner.node).await?.as_deref() == Some(owner.boot.as_str()) {
                return Ok(None);
            }
            // Stale (its node's lease is gone or is another run's): take it, unless another
            // publish took it first.
            return Ok(live.update(key, value.clone(), there.revision).await.ok());
        }
        Ok(None)
    }

    /// The boot id in `node`'s lease, asked of JetStream (not the view).
    async fn lease_of(&self, node: &str) -> anyhow::Result<Option<String>> {
        let nodes = &self.cluster.conn.nodes;
        Ok(nodes
            .get(format!("live.{node}"))
            .await?
            .map(|boot| String::from_utf8_lossy(&boot).into_owned()))
    }

    fn unreachable(&self, cause: &str) {
        self.cluster.warn_once(
            "registry",
            cause,
            "cluster live registry unreachable: publish admitted on this node's own checks",
        );
    }

    /// Whether `app/stream` is registered to another session than `session_id` of this node:
    /// a publish of the name after this session's. A late render of this session must not
    /// overwrite that session's picture. Asks JetStream (the view if it does not answer).
    pub async fn taken_by_another(&self, app: &str, stream: &str, session_id: u32) -> bool {
        let key = live_key(app, stream);
        let view = &self.cluster.view;
        let ours = |value: &LiveValue| {
            value.node == view.node && value.boot == view.boot && value.session_id == session_id
        };
        let timeout = Duration::from_millis(self.cluster.conn.cfg.publish_timeout_ms);
        match tokio::time::timeout(timeout, self.cluster.conn.live.entry(&key)).await {
            Ok(Ok(there)) => there
                .and_then(|e| serde_json::from_slice::<LiveValue>(&e.value).ok())
                .is_some_and(|value| !ours(&value) && view.alive(&value)),
            _ => lock(&view.entries)
                .get(&key)
                .is_some_and(|seen| !ours(&seen.value) && view.alive(&seen.value)),
        }
    }

    /// Delete the entries whose node's lease is gone (checked with JetStream, node by node),
    /// and register this node's sessions again whose entries were swept while its lease had
    /// lapsed.
    pub(super) async fn sweep(&self) {
        let view = &self.cluster.view;
        let live = &self.cluster.conn.live;
        for (node, entries) in view.suspects() {
            let Ok(lease) = self.lease_of(&node).await else {
                continue;
            };
            for (key, revision, boot) in entries {
                if lease.as_deref() != Some(boot.as_str())
                    && live
                        .delete_expect_revision(&key, Some(revision))
                        .await
                        .is_ok()
                {
                    tracing::info!(%key, %node, "stale live entry removed (its node's lease is gone)");
                }
            }
        }
        let orphans = std::mem::take(&mut *lock(&view.orphans));
        for (key, revision) in orphans {
            match live.entry(&key).await {
                Ok(Some(there)) if there.revision == revision => {
                    if live
                        .delete_expect_revision(&key, Some(revision))
                        .await
                        .is_err()
                    {
                        lock(&view.orphans).push((key, revision));
                    }
                }
                Ok(_) => {}
                Err(_) => lock(&view.orphans).push((key, revision)),
            }
        }
        let seen = *view.seen.borrow();
        let own: Vec<(String, bytes::Bytes, u64)> = lock(&view.own)
            .iter()
            .map(|(k, o)| (k.clone(), o.value.clone(), o.revision))
            .collect();
        for (key, value, revision) in own {
            let there = lock(&view.entries).get(&key).map(|s| s.revision);
            match there {
                Some(r) if r == revision => {}
                None if seen >= revision => match live.create(&key, value).await {
                    Ok(revision) => {
                        tracing::warn!(%key, "live entry registered again after this node's lease lapsed");
                        if let Some(own) = lock(&view.own).get_mut(&key) {
                            own.revision = revision;
                        }
                    }
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => self.lost(&key),
                    Err(_) => {}
                },
                Some(r) if r > revision => self.lost(&key),
                _ => {}
            }
        }
    }

    fn lost(&self, key: &str) {
        let view = &self.cluster.view;
        lock(&view.own).remove(key);
        if lock(&view.lost).insert(key.to_owned()) {
            tracing::error!(%key, "live entry taken by another publish after this node's lease lapsed; the stream keeps capturing here");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_encode_to_one_kv_token_each() {
        assert_eq!(live_key("live", "cam-1_a"), "s.live.cam-1_a");
        assert_eq!(encode("a.b"), "a=2Eb");
        assert_eq!(encode("a=2Eb"), "a=3D2Eb");
        assert_eq!(encode("é*>"), "=C3=A9=2A=3E");
        assert_ne!(encode("a.b"), encode("a=2Eb"));
    }
}
