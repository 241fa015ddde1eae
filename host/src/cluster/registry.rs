//! The cluster-wide live registry: one KV entry per live stream in the bucket `livesnap_live`,
//! key `s.{app}.{stream}` (each name encoded: `[A-Za-z0-9_-]` kept, every other byte `=XX`),
//! value `{node, boot, session_id, push_start_ms}`.
//!
//! - Created atomically on publish (KV `create`): a second publish of a live name on any node
//!   is refused as [`Refusal::AlreadyLive`], the same log line as on one node.
//! - Refreshed every `lease_s / 3` while live (a compare-and-set on the revision it wrote);
//!   deleted on unpublish (only if still its own revision); the bucket's `max_age` (`lease_s`)
//!   frees the entries of a node that died.
//! - `max_streams_per_tenant` counts the tenant's entries after creating its own: the streams
//!   that started earlier (push start, then node and session id as tie-breakers) keep their
//!   place, a publish that finds the cap full of earlier ones withdraws and is refused — two
//!   racing publishes on two nodes cannot both take the last place.
//! - If JetStream does not answer within `publish_timeout_ms`, the publish is admitted on the
//!   node's own checks (logged once): a streaming service keeps taking streams while its
//!   coordination store is away, rather than refusing every publisher.

use super::Cluster;
use crate::serve::session::Refusal;
use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// What a live entry holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveValue {
    /// Node the stream is live on.
    pub node: String,
    /// That node's process id (a restarted node frees its own stale entries).
    pub boot: String,
    /// The session id.
    pub session_id: u32,
    /// Unix ms of the push start.
    pub push_start_ms: u64,
}

impl LiveValue {
    /// Cap order: earlier push start first, then node, then session id.
    fn order(&self) -> (u64, &str, u32) {
        (self.push_start_ms, &self.node, self.session_id)
    }
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

/// The registry as seen from one node.
pub struct Registry<'a> {
    cluster: &'a Cluster,
}

/// A live stream's entry, held by its session: refreshed in the background, deleted on drop.
pub struct LiveEntry {
    refresh: tokio::task::JoinHandle<()>,
    live: kv::Store,
    key: String,
    revision: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for LiveEntry {
    fn drop(&mut self) {
        self.refresh.abort();
        let (live, key) = (self.live.clone(), std::mem::take(&mut self.key));
        let revision = self.revision.load(std::sync::atomic::Ordering::Relaxed);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = live.delete_expect_revision(&key, Some(revision)).await {
                    // Someone else's entry by now (ours expired and was taken), or NATS is
                    // away: then the entry expires by itself after lease_s.
                    tracing::debug!(%key, cause = %e, "live entry not deleted");
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
        let created = tokio::time::timeout(timeout, conn.live.create(&key, bytes.clone())).await;
        let revision = match created {
            Ok(Ok(revision)) => revision,
            Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.stale_own_entry(&key).await {
                    Some(revision) => match conn.live.update(&key, bytes.clone(), revision).await {
                        Ok(revision) => revision,
                        Err(_) => return Err(Refusal::AlreadyLive(name)),
                    },
                    None => return Err(Refusal::AlreadyLive(name)),
                }
            }
            Ok(Err(e)) => {
                self.unreachable(&e.to_string());
                return Ok(None);
            }
            Err(_) => {
                self.unreachable("timeout");
                return Ok(None);
            }
        };
        let entry = self.keep(key.clone(), bytes, revision);
        match tokio::time::timeout(timeout, self.earlier_streams(app, &value)).await {
            Ok(Ok(earlier)) if earlier >= max_per_tenant => {
                drop(entry);
                Err(Refusal::TooMany(format!(
                    "app {app:?} has {earlier} live streams in the cluster, the limit \
                     (max_streams_per_tenant)"
                )))
            }
            Ok(Ok(_)) => Ok(Some(entry)),
            Ok(Err(e)) => {
                self.unreachable(&format!("{e:#}"));
                Ok(Some(entry))
            }
            Err(_) => {
                self.unreachable("timeout counting the tenant's streams");
                Ok(Some(entry))
            }
        }
    }

    fn unreachable(&self, cause: &str) {
        self.cluster.warn_once(
            "registry",
            cause,
            "cluster live registry unreachable: publish admitted on this node's own checks",
        );
    }

    /// The revision of `key` if it is an entry this node wrote in an earlier run (killed before
    /// it could delete it): it may be replaced at once instead of waiting for its lease.
    async fn stale_own_entry(&self, key: &str) -> Option<u64> {
        let conn = &self.cluster.conn;
        let entry = conn.live.entry(key).await.ok()??;
        let value: LiveValue = serde_json::from_slice(&entry.value).ok()?;
        (value.node == conn.cfg.node && value.boot != conn.boot).then_some(entry.revision)
    }

    /// How many of the tenant's live entries started before `ours`.
    async fn earlier_streams(&self, app: &str, ours: &LiveValue) -> anyhow::Result<usize> {
        let live = &self.cluster.conn.live;
        let mut watch = live
            .watch_with_history(format!("s.{}.*", encode(app)))
            .await?;
        // The newest value per key: refreshes during the scan deliver a key again.
        let mut newest: std::collections::HashMap<String, Option<LiveValue>> =
            std::collections::HashMap::new();
        while let Some(entry) = watch.next().await {
            let entry = entry?;
            let value = (entry.operation == kv::Operation::Put)
                .then(|| serde_json::from_slice::<LiveValue>(&entry.value).ok())
                .flatten();
            newest.insert(entry.key.clone(), value);
            if entry.delta == 0 {
                break;
            }
        }
        Ok(newest
            .values()
            .flatten()
            .filter(|value| value.order() < ours.order())
            .count())
    }

    /// Refresh the entry every `lease_s / 3` until dropped.
    fn keep(&self, key: String, value: bytes::Bytes, revision: u64) -> LiveEntry {
        let conn = &self.cluster.conn;
        let revision = Arc::new(std::sync::atomic::AtomicU64::new(revision));
        let (live, every) = (conn.live.clone(), conn.cfg.lease() / 3);
        let refresh = tokio::spawn({
            let (live, key, revision) = (live.clone(), key.clone(), revision.clone());
            async move {
                let mut timer = tokio::time::interval(every);
                timer.tick().await;
                let mut warned = false;
                loop {
                    timer.tick().await;
                    let current = revision.load(std::sync::atomic::Ordering::Relaxed);
                    match live.update(&key, value.clone(), current).await {
                        Ok(next) => {
                            revision.store(next, std::sync::atomic::Ordering::Relaxed);
                            warned = false;
                        }
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                            // Our lease lapsed (NATS away longer than lease_s) and the name
                            // was registered again: keep capturing, but say so.
                            tracing::error!(%key, "live entry taken by another publish after this one's lease lapsed");
                            return;
                        }
                        Err(e) => {
                            if !warned {
                                tracing::warn!(%key, cause = %e, "cannot refresh the live entry; retrying");
                                warned = true;
                            }
                        }
                    }
                }
            }
        });
        LiveEntry {
            refresh,
            live,
            key,
            revision,
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

    #[test]
    fn the_cap_order_is_push_start_then_node_then_session() {
        let v = |ms, node: &str, id| LiveValue {
            node: node.into(),
            boot: "x".into(),
            session_id: id,
            push_start_ms: ms,
        };
        assert!(v(1, "b", 9).order() < v(2, "a", 0).order());
        assert!(v(1, "a", 9).order() < v(1, "b", 0).order());
        assert!(v(1, "a", 1).order() < v(1, "a", 2).order());
    }
}
