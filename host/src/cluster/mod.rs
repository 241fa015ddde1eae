//! Cluster mode: several `livesnap serve` nodes on one NATS JetStream cluster (`[cluster]` in the
//! service config). Without the table nothing here runs and the embedded spool works as before.
//!
//! - **Callbacks in JetStream.** A callback counts as queued once the stream
//!   `LIVESNAP_CALLBACKS` (file storage, `replicas` copies) acknowledged it, on the subject
//!   `livesnap.cb.{node}`. Each node drains its own subject through a durable pull consumer
//!   `cb-{node}` into the same lanes as the embedded spool (per-stream order, retries, backoff,
//!   signing, `max_age`), acknowledging a message once it is delivered or final; messages it
//!   holds are kept from redelivery by progress acks. Dead letters go to `LIVESNAP_DEAD`
//!   (`livesnap.dead.{node}`), else to the local dead-letter file.
//! - **Leases.** A node puts `live.{node}` in the KV bucket `livesnap_nodes` every
//!   `lease_s / 3`; entries expire after `lease_s`. A node whose lease expired is taken over:
//!   the first node to create `claim.{node}` drains `cb-{node}` through its own lanes (messages
//!   the dead node held come back after their ack wait, `lease_s`) and drops the claim once the
//!   consumer is empty. A restarted node waits for the claim to go before it drains again.
//! - **Local fallback.** A publish not acknowledged within `publish_timeout_ms` goes to the local
//!   redb spool, whose lanes forward it to JetStream once it answers again (a key with spooled
//!   entries keeps spooling, so its order holds; `Nats-Msg-Id` dedupes a publish whose ack was
//!   lost). Nothing is lost either way.
//! - **Live registry** ([`registry`]): one publisher per stream name cluster-wide and
//!   `max_streams_per_tenant` across nodes, in the KV bucket `livesnap_live`.

pub mod registry;

use crate::callback::Callbacks;
use crate::callback::spool::Entry;
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, kv, stream};
use futures::StreamExt;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The callbacks stream and its subjects.
pub const CALLBACK_STREAM: &str = "LIVESNAP_CALLBACKS";
/// The dead-letter stream.
pub const DEAD_STREAM: &str = "LIVESNAP_DEAD";
/// Node leases and takeover claims.
pub const NODES_BUCKET: &str = "livesnap_nodes";
/// The cluster-wide live registry.
pub const LIVE_BUCKET: &str = "livesnap_live";

/// The `[cluster]` table.
///
/// ```toml
/// [cluster]
/// nats = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]
/// node = "a"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://` or `tls://`); the client connects to one and fails over.
    pub nats: Vec<String>,
    /// This node's name, unique in the cluster: `[A-Za-z0-9_-]`, 1 to 64 characters.
    pub node: String,
    /// Lease of a node and of its live streams, seconds (2..=3600, default 10): a node that
    /// stops refreshing is taken over this long after its last refresh.
    #[serde(default = "default_lease_s")]
    pub lease_s: u64,
    /// Copies of the callback stream and KV buckets (1..=5, default 3: a 3-server cluster
    /// keeps working with one server down).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How long a publish waits for JetStream's ack before the callback goes to the local
    /// spool, ms (default 2000).
    #[serde(default = "default_publish_timeout_ms")]
    pub publish_timeout_ms: u64,
    /// A NATS credentials file (JWT + nkey seed).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// User name (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    /// Password (with `user`).
    #[serde(default)]
    pub password: Option<String>,
    /// An authentication token.
    #[serde(default)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the servers' certificates.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate (with `tls_key_file`), for servers that verify clients.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Refuse servers that do not speak TLS (default false).
    #[serde(default)]
    pub tls_required: bool,
}

fn default_lease_s() -> u64 {
    10
}
fn default_replicas() -> usize {
    3
}
fn default_publish_timeout_ms() -> u64 {
    2000
}

impl ClusterConfig {
    /// Check names and ranges: the key at fault and what is wrong.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.nats.is_empty() {
            return Err(("nats", "list at least one server URL".into()));
        }
        for url in &self.nats {
            let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|s| url.starts_with(s));
            if !scheme_ok || url.parse::<async_nats::ServerAddr>().is_err() {
                return Err(("nats", format!("{url:?} is not a nats:// or tls:// URL")));
            }
        }
        if !valid_node(&self.node) {
            return Err((
                "node",
                format!("{:?}: use 1 to 64 of A-Z a-z 0-9 _ -", self.node),
            ));
        }
        if !(2..=3600).contains(&self.lease_s) {
            return Err((
                "lease_s",
                format!("must be 2..=3600 (default 10), got {}", self.lease_s),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err((
                "replicas",
                format!("must be 1..=5 (default 3), got {}", self.replicas),
            ));
        }
        if self.publish_timeout_ms == 0 {
            return Err((
                "publish_timeout_ms",
                "must be at least 1 (default 2000)".into(),
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(("user", "user and password go together".into()));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err((
                "tls_cert_file",
                "tls_cert_file and tls_key_file go together".into(),
            ));
        }
        Ok(())
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_s)
    }
}

/// A node name as `[cluster] node` allows it.
pub fn valid_node(node: &str) -> bool {
    (1..=64).contains(&node.len())
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The connection and what it opened: streams and buckets exist once this is built.
pub struct Connection {
    cfg: ClusterConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    nodes: kv::Store,
    live: kv::Store,
    /// The callbacks stream (consumers, their info).
    callbacks_stream: stream::Stream,
    /// Random id of this process, so a restarted node recognises its own stale entries.
    boot: String,
}

/// Connect to NATS and make sure the streams and buckets exist (created with this node's
/// `replicas` if missing; existing ones are used as they are).
pub async fn connect(cfg: &ClusterConfig) -> anyhow::Result<Connection> {
    cfg.validate()
        .map_err(|(key, why)| anyhow::anyhow!("cluster.{key}: {why}"))?;
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("livesnap-{}", cfg.node))
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_millis(
            cfg.publish_timeout_ms.max(1000),
        )))
        .max_reconnects(None);
    if let Some(file) = &cfg.credentials_file {
        options = options
            .credentials_file(file)
            .await
            .with_context(|| format!("reading cluster.credentials_file {}", file.display()))?;
    }
    if let (Some(user), Some(password)) = (&cfg.user, &cfg.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &cfg.token {
        options = options.token(token.clone());
    }
    if let Some(ca) = &cfg.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&cfg.tls_cert_file, &cfg.tls_key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    options = options.require_tls(cfg.tls_required);
    let addrs: Vec<async_nats::ServerAddr> = cfg
        .nats
        .iter()
        .map(|u| u.parse())
        .collect::<Result<_, _>>()
        .context("cluster.nats")?;
    let client = options
        .connect(addrs)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", cfg.nats.join(", ")))?;
    let js = jetstream::new(client.clone());
    // Setup may wait for a cluster that is still forming (a leader just elected, peers
    // catching up): a longer timeout, and retries for up to a minute.
    let mut admin = jetstream::new(client.clone());
    admin.set_timeout(Duration::from_secs(10));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match setup(&admin, cfg).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(cause = %format!("{e:#}"), "JetStream not ready; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
    let nodes = js.get_key_value(NODES_BUCKET).await?;
    let live = js.get_key_value(LIVE_BUCKET).await?;
    let callbacks_stream = js.get_stream(CALLBACK_STREAM).await?;
    Ok(Connection {
        cfg: cfg.clone(),
        client,
        js,
        nodes,
        live,
        callbacks_stream,
        boot: format!("{:016x}", rand::random::<u64>()),
    })
}

/// Create the streams and buckets if missing (existing ones are used as they are).
async fn setup(js: &jetstream::Context, cfg: &ClusterConfig) -> anyhow::Result<()> {
    let replicas = cfg.replicas;
    for (name, subjects) in [
        (CALLBACK_STREAM, "livesnap.cb.*"),
        (DEAD_STREAM, "livesnap.dead.*"),
    ] {
        js.get_or_create_stream(stream::Config {
            name: name.to_owned(),
            subjects: vec![subjects.to_owned()],
            retention: if name == CALLBACK_STREAM {
                stream::RetentionPolicy::WorkQueue
            } else {
                stream::RetentionPolicy::Limits
            },
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot open JetStream stream {name}"))?;
    }
    // Leases expire; live entries live as long as their node's lease (see [`registry`]).
    open_bucket(js, NODES_BUCKET, cfg, cfg.lease()).await?;
    open_bucket(js, LIVE_BUCKET, cfg, Duration::ZERO).await?;
    Ok(())
}

/// Open (create) a KV bucket whose entries expire `max_age` after their last write (zero:
/// never); an existing bucket with another `max_age` is updated to it. The
/// bucket's stream is made here, as a KV bucket's stream is laid out (`KV_{bucket}`, subjects
/// `$KV.{bucket}.>`, one message per key, rollups, direct gets), so it works with every server
/// from 2.9 on.
async fn open_bucket(
    js: &jetstream::Context,
    name: &str,
    cfg: &ClusterConfig,
    max_age: Duration,
) -> anyhow::Result<()> {
    let stream = js
        .get_or_create_stream(stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            duplicate_window: cfg.lease(),
            storage: stream::StorageType::File,
            num_replicas: cfg.replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot open JetStream KV bucket {name}"))?;
    let config = &stream.cached_info().config;
    if config.max_age != max_age {
        js.update_stream(stream::Config {
            max_age,
            ..config.clone()
        })
        .await
        .with_context(|| format!("cannot update the max_age of JetStream KV bucket {name}"))?;
    }
    Ok(())
}

impl Connection {
    /// What the local spool forwards through.
    pub fn forwarder(&self) -> Forwarder {
        Forwarder {
            js: self.js.clone(),
            subject: format!("livesnap.cb.{}", self.cfg.node),
            dead_subject: format!("livesnap.dead.{}", self.cfg.node),
            timeout: Duration::from_millis(self.cfg.publish_timeout_ms),
        }
    }
}

/// Publishes callbacks (and dead letters) to JetStream, waiting for the stream's ack.
#[derive(Clone)]
pub struct Forwarder {
    js: jetstream::Context,
    subject: String,
    dead_subject: String,
    timeout: Duration,
}

impl Forwarder {
    /// Publish `entry` on this node's subject; `Ok` once JetStream stored it.
    pub async fn publish(&self, entry: &Entry) -> Result<(), String> {
        let payload = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = &entry.msg_id {
            headers.insert("Nats-Msg-Id", id.as_str());
        }
        self.publish_raw(self.subject.clone(), headers, payload)
            .await
    }

    /// Publish one dead-letter line to the dead-letter stream.
    pub async fn dead_letter(&self, line: &str) -> Result<(), String> {
        self.publish_raw(
            self.dead_subject.clone(),
            async_nats::HeaderMap::new(),
            line.as_bytes().to_vec(),
        )
        .await
    }

    async fn publish_raw(
        &self,
        subject: String,
        headers: async_nats::HeaderMap,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        let publish = async {
            let ack = self
                .js
                .publish_with_headers(subject, headers, payload.into())
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map(|_| ()).map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "JetStream did not acknowledge within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

/// A JetStream message a node holds in its lanes until it is delivered or final. Dropping it
/// forgets it (a message not acknowledged by then is redelivered after its ack wait).
pub struct Held {
    consumer: Arc<str>,
    seq: u64,
    reply: async_nats::Subject,
    client: async_nats::Client,
    holding: Arc<Holding>,
}

impl Held {
    /// The message's stream sequence.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Acknowledge: the callback is delivered or final, JetStream may drop it.
    pub async fn ack(&self) -> Result<(), String> {
        self.client
            .publish(self.reply.clone(), "+ACK".into())
            .await
            .map_err(|e| e.to_string())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.holding.release(&self.consumer, self.seq);
    }
}

/// Messages held in lanes, by (consumer, stream sequence) → reply subject: a redelivery of a
/// message already held is ignored, and every held message gets a progress ack now and then.
#[derive(Default)]
struct Holding {
    held: Mutex<HashMap<(Arc<str>, u64), async_nats::Subject>>,
}

impl Holding {
    fn hold(&self, consumer: &Arc<str>, seq: u64, reply: async_nats::Subject) -> bool {
        let mut held = crate::callback::lock(&self.held);
        if held.contains_key(&(consumer.clone(), seq)) {
            return false;
        }
        held.insert((consumer.clone(), seq), reply);
        true
    }

    fn release(&self, consumer: &Arc<str>, seq: u64) {
        crate::callback::lock(&self.held).remove(&(consumer.clone(), seq));
    }

    fn count(&self, consumer: &str) -> usize {
        crate::callback::lock(&self.held)
            .keys()
            .filter(|(c, _)| &**c == consumer)
            .count()
    }

    fn replies(&self) -> Vec<async_nats::Subject> {
        crate::callback::lock(&self.held)
            .values()
            .cloned()
            .collect()
    }
}

/// Cluster gauges for `/metrics`.
#[derive(Default)]
pub struct ClusterStats {
    /// Messages of this node's consumer not yet acknowledged (pending + held), last polled.
    pub jetstream_pending: AtomicU64,
    /// Messages received with a delivery count above one.
    pub redeliveries: AtomicU64,
    /// Dead nodes' consumers this node took over.
    pub takeovers: AtomicU64,
    /// Publishes JetStream did not acknowledge in time (the callback went to the local spool).
    pub fallbacks: AtomicU64,
}

/// A running cluster node: publishes callbacks, drains consumers, keeps leases.
pub struct Cluster {
    conn: Connection,
    callbacks: Callbacks,
    forwarder: Forwarder,
    holding: Arc<Holding>,
    /// The live registry and node leases as this node follows them.
    view: Arc<registry::LiveView>,
    /// Counters for `/metrics`.
    pub stats: ClusterStats,
    /// Nodes whose consumer this node drains now.
    draining: Mutex<HashSet<String>>,
    stop: CancellationToken,
    warnings: Mutex<crate::warn_once::WarnOnce>,
}

impl Cluster {
    /// Start the node's tasks on the current runtime: its lease, its consumer (once no other
    /// node holds a claim on it), progress acks and takeovers. `callbacks` must have been
    /// opened with [`Connection::forwarder`].
    pub fn start(conn: Connection, callbacks: Callbacks) -> Arc<Cluster> {
        let forwarder = conn.forwarder();
        let view = Arc::new(registry::LiveView::new(
            &conn.cfg.node,
            &conn.boot,
            conn.cfg.lease(),
        ));
        let cluster = Arc::new(Cluster {
            view,
            conn,
            callbacks,
            forwarder,
            holding: Arc::default(),
            stats: ClusterStats::default(),
            draining: Mutex::default(),
            stop: CancellationToken::new(),
            warnings: Mutex::default(),
        });
        let node = cluster.node().to_owned();
        let span = tracing::info_span!("cluster", node = %node);
        tokio::spawn(cluster.clone().run().instrument(span.clone()));
        for watched in [registry::Watched::Entries, registry::Watched::Leases] {
            tokio::spawn(registry::follow(cluster.clone(), watched).instrument(span.clone()));
        }
        cluster
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.conn.cfg.node
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.conn.cfg
    }

    /// The live registry of this cluster.
    pub fn registry(&self) -> registry::Registry<'_> {
        registry::Registry::new(self)
    }

    /// Stop the background tasks (messages held stay unacknowledged and are redelivered).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Queue a callback: published to JetStream (done once acknowledged), or, when JetStream
    /// does not acknowledge in time or the key already has spooled entries, spooled locally and
    /// forwarded later.
    pub async fn enqueue(
        &self,
        target: &crate::callback::Target,
        ordering_key: &str,
        body: String,
    ) -> anyhow::Result<()> {
        let msg_id = format!("{}-{:032x}", self.node(), rand::random::<u128>());
        let entry = crate::callback::entry_for(target, ordering_key, body, Some(msg_id));
        if !self.callbacks.forwarding(ordering_key) {
            match self.forwarder.publish(&entry).await {
                Ok(()) => return Ok(()),
                Err(why) => {
                    self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                    self.warn_once(
                        "fallback",
                        &why,
                        "JetStream did not take a callback: it goes to the local spool and is forwarded when JetStream is back (further cases counted in livesnap_cluster_fallbacks_total)",
                    );
                }
            }
        }
        self.callbacks.enqueue_entry(entry).await
    }

    fn warn_once(&self, what: &str, cause: &str, message: &'static str) {
        let first = crate::callback::lock(&self.warnings).first(&format!("{what}: {cause}"));
        if first {
            tracing::warn!(%cause, "{message}");
        }
    }

    async fn run(self: Arc<Self>) {
        let lease = self.conn.cfg.lease();
        let tick = lease / 3;
        // Lease first, so no other node takes this one over while it starts.
        self.refresh_lease().await;
        let me = self.node().to_owned();
        tokio::spawn({
            let this = self.clone();
            async move { this.drain_own(me).await }.in_current_span()
        });
        tokio::spawn({
            let this = self.clone();
            async move { this.progress_acks().await }.in_current_span()
        });
        let mut lease_timer = tokio::time::interval(tick);
        let mut takeover_timer = tokio::time::interval(lease / 2);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = lease_timer.tick() => self.refresh_lease().await,
                _ = takeover_timer.tick() => {
                    self.look_for_dead_nodes().await;
                    self.registry().sweep().await;
                }
            }
        }
    }

    async fn refresh_lease(&self) {
        let key = format!("live.{}", self.node());
        let put = self.conn.nodes.put(&key, self.conn.boot.clone().into());
        match tokio::time::timeout(self.conn.cfg.lease() / 3, put).await {
            Ok(Ok(revision)) => self.view.lease_written(revision),
            Ok(Err(e)) => {
                self.warn_once("lease", &e.to_string(), "cannot refresh this node's lease")
            }
            Err(_) => self.warn_once("lease", "timeout", "cannot refresh this node's lease"),
        }
        if let Ok(info) = self.consumer_info(self.node()).await {
            self.stats.jetstream_pending.store(
                info.num_pending + info.num_ack_pending as u64,
                Ordering::Relaxed,
            );
        }
    }

    async fn consumer_info(&self, node: &str) -> anyhow::Result<consumer::Info> {
        Ok(self
            .conn
            .callbacks_stream
            .consumer_info(consumer_name(node))
            .await?)
    }

    /// Drain this node's own consumer, once no other node holds a claim on it.
    async fn drain_own(self: Arc<Self>, me: String) {
        let claim = format!("claim.{me}");
        let mut said = false;
        loop {
            match self.conn.nodes.get(&claim).await {
                Ok(None) => break,
                Ok(Some(by)) => {
                    if !said {
                        tracing::info!(by = %String::from_utf8_lossy(&by), "another node is delivering this node's earlier callbacks; waiting for it to finish");
                        said = true;
                    }
                }
                Err(e) => self.warn_once("claim", &e.to_string(), "cannot read takeover claims"),
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        self.consume(me, false).await;
    }

    /// Every held message gets a progress ack a few times per ack wait, so JetStream does not
    /// redeliver what a node is still retrying.
    async fn progress_acks(self: Arc<Self>) {
        let mut timer = tokio::time::interval(self.conn.cfg.lease() / 3);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = timer.tick() => {}
            }
            for reply in self.holding.replies() {
                let _ = self.conn.client.publish(reply, "+WPI".into()).await;
            }
        }
    }

    /// Pull `node`'s consumer into this node's lanes. With `until_empty` (a takeover), return
    /// once the consumer has nothing pending and nothing is held.
    async fn consume(&self, node: String, until_empty: bool) {
        let name: Arc<str> = consumer_name(&node).into();
        let consumer = loop {
            match self.consumer_of(&node).await {
                Ok(consumer) => break consumer,
                Err(e) => {
                    self.warn_once(
                        "consumer",
                        &format!("{e:#}"),
                        "cannot open a callback consumer; retrying",
                    );
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let batch = consumer
                .fetch()
                .max_messages(256)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            let mut messages = match batch {
                Ok(messages) => messages,
                Err(e) => {
                    self.warn_once(
                        "fetch",
                        &e.to_string(),
                        "cannot fetch callbacks from JetStream; retrying",
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut got = 0usize;
            while let Some(message) = messages.next().await {
                let Ok(message) = message else {
                    break;
                };
                got += 1;
                self.take(&name, message).await;
            }
            if until_empty && got == 0 && self.holding.count(&name) == 0 {
                match self.consumer_info(&node).await {
                    Ok(info) if info.num_pending == 0 && info.num_ack_pending == 0 => return,
                    _ => {}
                }
            }
        }
    }

    /// One fetched message into the lanes (or ignored: a redelivery of one held already).
    async fn take(&self, name: &Arc<str>, message: jetstream::Message) {
        let (seq, delivered) = match message.info() {
            Ok(info) => (info.stream_sequence, info.delivered),
            Err(_) => return,
        };
        if delivered > 1 {
            self.stats.redeliveries.fetch_add(1, Ordering::Relaxed);
        }
        let Some(reply) = message.reply.clone() else {
            return;
        };
        if !self.holding.hold(name, seq, reply.clone()) {
            return;
        }
        let held = Held {
            consumer: name.clone(),
            seq,
            reply,
            client: self.conn.client.clone(),
            holding: self.holding.clone(),
        };
        match serde_json::from_slice::<Entry>(&message.payload) {
            Ok(entry) => self.callbacks.push_jet(held, entry),
            Err(e) => {
                // Not ours or damaged: nothing can be delivered; keep it in the dead-letter stream.
                tracing::error!(seq, cause = %e, "unreadable callback message moved to the dead-letter stream");
                let line = serde_json::json!({
                    "seq": seq,
                    "reason": "unreadable",
                    "detail": e.to_string(),
                    "payload": String::from_utf8_lossy(&message.payload),
                })
                .to_string();
                if self.forwarder.dead_letter(&line).await.is_ok() {
                    let _ = held.ack().await;
                }
            }
        }
    }

    async fn consumer_of(&self, node: &str) -> anyhow::Result<consumer::PullConsumer> {
        let name = consumer_name(node);
        Ok(self
            .conn
            .callbacks_stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: format!("livesnap.cb.{node}"),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.conn.cfg.lease(),
                    max_deliver: -1,
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await?)
    }

    /// Take over the consumers of nodes whose lease expired.
    async fn look_for_dead_nodes(self: &Arc<Self>) {
        let mut names = self.conn.callbacks_stream.consumer_names();
        let mut nodes = Vec::new();
        while let Some(Ok(name)) = names.next().await {
            if let Some(node) = name.strip_prefix("cb-")
                && node != self.node()
                && valid_node(node)
            {
                nodes.push(node.to_owned());
            }
        }
        for node in nodes {
            if crate::callback::lock(&self.draining).contains(&node) {
                continue;
            }
            match self.conn.nodes.get(format!("live.{node}")).await {
                Ok(None) => {}
                _ => continue,
            }
            // Worth a claim only if it has something.
            match self.consumer_info(&node).await {
                Ok(info) if info.num_pending > 0 || info.num_ack_pending > 0 => {}
                _ => continue,
            }
            let claim = format!("claim.{node}");
            if self
                .conn
                .nodes
                .create(&claim, self.node().to_owned().into())
                .await
                .is_err()
            {
                continue;
            }
            self.stats.takeovers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(dead = %node, "node's lease expired: delivering its pending callbacks");
            crate::callback::lock(&self.draining).insert(node.clone());
            let this = self.clone();
            tokio::spawn(
                async move {
                    this.take_over(node).await;
                }
                .in_current_span(),
            );
        }
    }

    /// Drain a dead node's consumer while keeping the claim alive, then drop the claim.
    async fn take_over(self: Arc<Self>, node: String) {
        let claim = format!("claim.{node}");
        let keep_claim = {
            let this = self.clone();
            let claim = claim.clone();
            tokio::spawn(async move {
                let mut timer = tokio::time::interval(this.conn.cfg.lease() / 3);
                loop {
                    timer.tick().await;
                    let _ = this
                        .conn
                        .nodes
                        .put(&claim, this.node().to_owned().into())
                        .await;
                }
            })
        };
        self.consume(node.clone(), true).await;
        keep_claim.abort();
        let _ = self.conn.nodes.delete(&claim).await;
        crate::callback::lock(&self.draining).remove(&node);
        tracing::info!(dead = %node, "delivered the pending callbacks of a node whose lease expired");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The durable consumer draining `node`'s callbacks.
fn consumer_name(node: &str) -> String {
    format!("cb-{node}")
}

impl Cluster {
    /// The cluster gauges in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, kind, help, value) in [
            (
                "livesnap_cluster_jetstream_pending",
                "gauge",
                "Callbacks in this node's JetStream consumer not yet acknowledged.",
                load(&self.stats.jetstream_pending),
            ),
            (
                "livesnap_cluster_redeliveries_total",
                "counter",
                "Callback messages JetStream delivered more than once to this node.",
                load(&self.stats.redeliveries),
            ),
            (
                "livesnap_cluster_lease_takeovers_total",
                "counter",
                "Consumers of nodes whose lease expired that this node took over.",
                load(&self.stats.takeovers),
            ),
            (
                "livesnap_cluster_fallbacks_total",
                "counter",
                "Callbacks JetStream did not acknowledge in time, spooled locally.",
                load(&self.stats.fallbacks),
            ),
            (
                "livesnap_cluster_fallback_spool_depth",
                "gauge",
                "Callbacks in the local spool waiting to be forwarded to JetStream.",
                self.callbacks.spooled(),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out
    }
}
