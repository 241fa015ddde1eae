//! Callback delivery that loses nothing: every callback body is committed to an on-disk spool
//! ([`spool`]) before [`Callbacks::enqueue`] returns, then POSTed in the background, signed
//! ([`sign`]), and retried with exponential backoff and jitter ([`deliver`]) until the receiver
//! takes it (2xx), refuses it for good (other 4xx, 3xx), or it grows older than `max_age_s`.
//!
//! Guarantees:
//! - at least once: an entry leaves the spool only after a 2xx or a final outcome, so a crash
//!   (even `kill -9`) between the two re-sends it on the next start — receivers dedupe on `taskid`;
//! - in order per ordering key (a stream): one lane per key sends its head and nothing behind it
//!   until the head is delivered or final; a stuck head blocks only its own lane;
//! - nothing silently dropped: expired and refused entries are appended to the dead-letter file
//!   (one JSON object per line, fsync'd) and counted ([`Callbacks::dead_lettered`],
//!   [`Callbacks::rejected`]).

pub mod deliver;
pub mod sign;
pub mod spool;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use spool::{Entry, Spool};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

/// The `[delivery]` table: how callbacks are spooled and retried. Every key has a default.
///
/// ```toml
/// [delivery]
/// spool_dir = "/var/lib/livesnap/spool"
/// max_age_s = 86400
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Directory of the spool database (`spool.redb`) and, by default, the dead-letter file.
    /// Default: `$XDG_STATE_HOME/livesnap/spool`, else `$HOME/.local/state/livesnap/spool`,
    /// else `./livesnap-spool`. One process at a time may use a spool.
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    /// Where undeliverable callbacks go, one JSON object per line. Default:
    /// `{spool_dir}/dead-letters.jsonl`.
    #[serde(default)]
    pub dead_letter_file: Option<PathBuf>,
    /// Retry a callback until it is this old (seconds since it was enqueued), then dead-letter it.
    /// Default 86400 (24 h); at least 1.
    #[serde(default = "default_max_age_s")]
    pub max_age_s: u64,
    /// Timeout of one POST (connect + answer), ms. Default 10000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Wait before the first retry, ms; doubles with each retry, with jitter. Default 1000.
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// Longest wait between two retries, ms. Default 300000 (5 min).
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Most POSTs in flight at once across all streams. Default 64.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_max_age_s() -> u64 {
    24 * 60 * 60
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_backoff_base_ms() -> u64 {
    1_000
}
fn default_backoff_max_ms() -> u64 {
    300_000
}
fn default_max_in_flight() -> usize {
    64
}

/// `$XDG_STATE_HOME/livesnap/spool`, else `$HOME/.local/state/livesnap/spool`, else
/// `./livesnap-spool`.
pub fn default_spool_dir() -> PathBuf {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(state) = non_empty("XDG_STATE_HOME") {
        state.join("livesnap/spool")
    } else if let Some(home) = non_empty("HOME") {
        home.join(".local/state/livesnap/spool")
    } else {
        PathBuf::from("livesnap-spool")
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            spool_dir: default_spool_dir(),
            dead_letter_file: None,
            max_age_s: default_max_age_s(),
            request_timeout_ms: default_request_timeout_ms(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

impl DeliveryConfig {
    /// Check the numbers; names the key and the allowed range.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_age_s == 0 {
            anyhow::bail!("delivery.max_age_s must be at least 1 (default 86400)");
        }
        if self.request_timeout_ms == 0 {
            anyhow::bail!("delivery.request_timeout_ms must be at least 1 (default 10000)");
        }
        if self.backoff_base_ms == 0 || self.backoff_max_ms < self.backoff_base_ms {
            anyhow::bail!(
                "delivery.backoff_base_ms must be at least 1 and at most delivery.backoff_max_ms \
                 (got {} and {})",
                self.backoff_base_ms,
                self.backoff_max_ms
            );
        }
        if self.max_in_flight == 0 {
            anyhow::bail!("delivery.max_in_flight must be at least 1 (default 64)");
        }
        Ok(())
    }

    /// The dead-letter file this configuration uses.
    pub fn dead_letter_path(&self) -> PathBuf {
        self.dead_letter_file
            .clone()
            .unwrap_or_else(|| self.spool_dir.join("dead-letters.jsonl"))
    }
}

/// Where callbacks of a tenant go.
#[derive(Clone)]
pub struct Target {
    /// The receiver's URL (`http://` or `https://`).
    pub url: String,
    /// HMAC-SHA256 secret; without one, requests carry the timestamp header but no signature.
    pub secret: Option<String>,
}

/// The secret never reaches a log line through `{:?}`.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Where an entry came from, and what finishing it means.
pub enum Ticket {
    /// A row of the local spool (its id): removed once delivered or final.
    Spool(u64),
    /// A message of a JetStream consumer (cluster mode): acknowledged once delivered or final.
    Jet(Box<crate::cluster::Held>),
}

impl Ticket {
    /// The spool id, or the JetStream stream sequence, for log lines.
    fn id(&self) -> u64 {
        match self {
            Ticket::Spool(id) => *id,
            Ticket::Jet(held) => held.seq(),
        }
    }
}

/// What a lane does with its entries: POST them to the receiver, or (local spool entries in
/// cluster mode) forward them to JetStream, whose consumers POST them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Route {
    Post,
    Forward,
}

/// One ordering key's entries, head first.
type Lane = VecDeque<(Arc<Ticket>, Arc<Entry>)>;

/// Handle on the spool and its delivery tasks: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Callbacks {
    inner: Arc<Inner>,
}

struct Inner {
    spool: Arc<Spool>,
    dead_letters: DeadLetters,
    client: reqwest::Client,
    max_age: Duration,
    backoff_base: Duration,
    backoff_max: Duration,
    in_flight: Semaphore,
    /// Pending entries per route and ordering key; a key is present exactly while its lane
    /// task runs.
    lanes: Mutex<HashMap<(Route, String), Lane>>,
    /// In cluster mode, where spooled entries go (JetStream) instead of the receiver.
    forward: Option<crate::cluster::Forwarder>,
    /// Entries of the local spool not yet delivered, forwarded or final.
    spooled: AtomicU64,
    /// Spooled entries handed to JetStream (cluster mode).
    forwarded: AtomicU64,
    /// Group commit of enqueues: one spool transaction (one fsync) for every enqueue waiting
    /// while the previous one committed. The committing thread also queues the batch on its
    /// lanes, in id order, before the next batch may commit, so spool order and lane order agree.
    commits: GroupCommit,
    /// Spooled entries not yet delivered or final.
    depth: watch::Sender<u64>,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    rejected: AtomicU64,
    /// Entries found in the spool at open (left by an earlier run).
    resumed: AtomicU64,
    runtime: tokio::runtime::Handle,
}

impl Callbacks {
    /// Open (create) the durable spool, resume anything pending from a previous run, and start
    /// delivery tasks on the current tokio runtime.
    pub async fn open(cfg: &DeliveryConfig) -> anyhow::Result<Callbacks> {
        Self::open_with(cfg, None).await
    }

    /// [`Callbacks::open`] for cluster mode: spooled entries (those JetStream did not take in
    /// time, see [`crate::cluster`]) are forwarded to JetStream, in order per ordering key,
    /// instead of being POSTed; entries of JetStream consumers are POSTed
    /// ([`Callbacks::push_jet`]).
    pub async fn open_forwarding(
        cfg: &DeliveryConfig,
        forward: crate::cluster::Forwarder,
    ) -> anyhow::Result<Callbacks> {
        Self::open_with(cfg, Some(forward)).await
    }

    async fn open_with(
        cfg: &DeliveryConfig,
        forward: Option<crate::cluster::Forwarder>,
    ) -> anyhow::Result<Callbacks> {
        cfg.validate()?;
        let dir = cfg.spool_dir.clone();
        let (spool, loaded) = tokio::task::spawn_blocking(move || {
            let spool = Spool::open(&dir)?;
            let loaded = spool.load()?;
            anyhow::Ok((spool, loaded))
        })
        .await
        .context("the spool-opening task failed")??;
        let inner = Arc::new(Inner {
            spool: Arc::new(spool),
            dead_letters: DeadLetters::new(cfg.dead_letter_path()),
            client: deliver::client(Duration::from_millis(cfg.request_timeout_ms))?,
            max_age: Duration::from_secs(cfg.max_age_s),
            backoff_base: Duration::from_millis(cfg.backoff_base_ms),
            backoff_max: Duration::from_millis(cfg.backoff_max_ms),
            in_flight: Semaphore::new(cfg.max_in_flight),
            lanes: Mutex::new(HashMap::new()),
            forward,
            spooled: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            commits: GroupCommit::default(),
            depth: watch::Sender::new(0),
            delivered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
        });
        let callbacks = Callbacks { inner };
        let mut resumed = 0u64;
        for (id, entry) in loaded {
            match entry {
                Ok(entry) => {
                    resumed += 1;
                    callbacks.push(Ticket::Spool(id), Arc::new(entry));
                }
                Err(why) => callbacks.discard_unreadable(id, why).await,
            }
        }
        callbacks.inner.resumed.store(resumed, Ordering::Relaxed);
        if resumed > 0 {
            tracing::info!(
                resumed,
                spool = %callbacks.inner.spool.path().display(),
                "resuming callbacks spooled by an earlier run"
            );
        }
        Ok(callbacks)
    }

    /// Durably spool `body` for `target` (committed with fsync) before returning; delivery
    /// happens in the background, in order per `ordering_key` (a stream), at least once.
    pub async fn enqueue(
        &self,
        target: &Target,
        ordering_key: &str,
        body: String,
    ) -> anyhow::Result<()> {
        self.enqueue_entry(entry_for(target, ordering_key, body, None))
            .await
    }

    /// Durably spool `entry` (see [`Callbacks::enqueue`]).
    pub async fn enqueue_entry(&self, entry: Entry) -> anyhow::Result<()> {
        let entry = Arc::new(entry);
        // Append and queue in one blocking task: if this future is dropped half-way, an entry
        // that reached the spool is still queued for delivery now, not only after a restart.
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.append_grouped(entry))
            .await
            .context("the spool-writing task failed")?
    }

    /// Spooled callbacks not yet delivered or final (including ones resumed from a previous run).
    pub fn queue_depth(&self) -> u64 {
        *self.inner.depth.borrow()
    }

    /// Entries of the local spool not yet delivered (or, in cluster mode, forwarded) or final.
    pub fn spooled(&self) -> u64 {
        self.inner.spooled.load(Ordering::Relaxed)
    }

    /// Spooled entries handed to JetStream since open (cluster mode).
    pub fn forwarded(&self) -> u64 {
        self.inner.forwarded.load(Ordering::Relaxed)
    }

    /// Whether spooled entries of `ordering_key` wait to be forwarded to JetStream: a new
    /// callback of that key must queue behind them to keep the key's order.
    pub fn forwarding(&self, ordering_key: &str) -> bool {
        lock(&self.inner.lanes).contains_key(&(Route::Forward, ordering_key.to_owned()))
    }

    /// Queue a message of a JetStream consumer for delivery (cluster mode); it is acknowledged
    /// once delivered or final.
    pub fn push_jet(&self, held: crate::cluster::Held, entry: Entry) {
        self.push(Ticket::Jet(Box::new(held)), Arc::new(entry));
    }

    /// Callbacks found in the spool at open, left by an earlier run.
    pub fn resumed(&self) -> u64 {
        self.inner.resumed.load(Ordering::Relaxed)
    }

    /// Callbacks delivered (2xx) since open.
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// Callbacks that expired (older than `max_age_s`) and went to the dead-letter file.
    pub fn dead_lettered(&self) -> u64 {
        self.inner.dead_lettered.load(Ordering::Relaxed)
    }

    /// Callbacks the receiver refused for good (3xx or 4xx other than 408/429) or that could not
    /// be sent at all (unusable URL, unreadable spool entry); also written to the dead-letter file.
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// The spool database file.
    pub fn spool_path(&self) -> &Path {
        self.inner.spool.path()
    }

    /// The dead-letter file.
    pub fn dead_letter_path(&self) -> &Path {
        &self.inner.dead_letters.path
    }

    /// Wait until every spooled callback is delivered or final (`true`), or `timeout` passes
    /// (`false`; what is left stays spooled and keeps being retried).
    pub async fn drain(&self, timeout: Duration) -> bool {
        let mut depth = self.inner.depth.subscribe();
        tokio::time::timeout(timeout, depth.wait_for(|d| *d == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Spool `entry` with whatever other enqueues are waiting (see [`GroupCommit`]); returns once
    /// its batch is committed and queued on the lanes.
    fn append_grouped(&self, entry: Arc<Entry>) -> anyhow::Result<()> {
        let commits = &self.inner.commits;
        let mut state = lock(&commits.state);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push((ticket, entry));
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result.map_err(anyhow::Error::msg);
            }
            if state.committing {
                state = commits
                    .committed
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            // Lead: commit everything waiting, including ours.
            state.committing = true;
            let batch = std::mem::take(&mut state.waiting);
            drop(state);
            let entries: Vec<&Entry> = batch.iter().map(|(_, e)| e.as_ref()).collect();
            let result = self.inner.spool.append_batch(&entries);
            if let Ok(ids) = &result {
                for ((_, entry), id) in batch.iter().zip(ids) {
                    self.push(Ticket::Spool(*id), entry.clone());
                }
            }
            let outcome = result.map(|_| ()).map_err(|e| format!("{e:#}"));
            state = lock(&commits.state);
            for (t, _) in &batch {
                state.done.insert(*t, outcome.clone());
            }
            state.committing = false;
            commits.committed.notify_all();
        }
    }

    /// Queue an entry on its lane, starting the lane's task if it has none.
    fn push(&self, ticket: Ticket, entry: Arc<Entry>) {
        self.inner.depth.send_modify(|d| *d += 1);
        let route = match ticket {
            Ticket::Spool(_) => {
                self.inner.spooled.fetch_add(1, Ordering::Relaxed);
                if self.inner.forward.is_some() {
                    Route::Forward
                } else {
                    Route::Post
                }
            }
            Ticket::Jet(_) => Route::Post,
        };
        let key = (route, entry.ordering_key.clone());
        let ticket = Arc::new(ticket);
        let start = {
            let mut lanes = lock(&self.inner.lanes);
            match lanes.get_mut(&key) {
                Some(lane) => {
                    lane.push_back((ticket, entry));
                    false
                }
                None => {
                    lanes.insert(key.clone(), VecDeque::from([(ticket, entry)]));
                    true
                }
            }
        };
        if start {
            let span = match route {
                Route::Post => tracing::info_span!("callbacks", stream = %key.1),
                Route::Forward => tracing::info_span!("forward", stream = %key.1),
            };
            let inner = self.inner.clone();
            self.inner
                .runtime
                .spawn(run_lane(inner, key).instrument(span));
        }
    }

    /// A spool row that does not parse cannot be sent: dead-letter its raw text.
    async fn discard_unreadable(&self, id: u64, why: String) {
        tracing::error!(id, cause = %why, "unreadable callback spool entry moved to the dead-letter file");
        let record = DeadLetter {
            id,
            reason: "unreadable",
            detail: &why,
            attempts: 0,
            dead_ms: now_ms(),
            entry: None,
        };
        if finish_blocking(&self.inner, id, Some(record)).await {
            self.inner.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A spool entry for `body`, to `target`, in `ordering_key`'s order.
pub fn entry_for(
    target: &Target,
    ordering_key: &str,
    body: String,
    msg_id: Option<String>,
) -> Entry {
    Entry {
        ordering_key: ordering_key.to_owned(),
        url: target.url.clone(),
        secret: target.secret.clone(),
        body,
        enqueued_ms: now_ms(),
        msg_id,
    }
}

/// State of the enqueue group commit.
#[derive(Default)]
struct GroupCommit {
    state: Mutex<GroupState>,
    /// Signalled when a batch is committed.
    committed: std::sync::Condvar,
}

#[derive(Default)]
struct GroupState {
    /// Enqueues waiting for the next commit, by ticket (arrival order).
    waiting: Vec<(u64, Arc<Entry>)>,
    next_ticket: u64,
    /// A thread is committing a batch.
    committing: bool,
    /// Outcomes of committed tickets, taken by their enqueuers.
    done: HashMap<u64, Result<(), String>>,
}

/// Deliver (or forward) the lane's entries one at a time, head first, until the lane is empty.
async fn run_lane(inner: Arc<Inner>, key: (Route, String)) {
    loop {
        let head = {
            let mut lanes = lock(&inner.lanes);
            match lanes.get(&key).and_then(|lane| lane.front().cloned()) {
                Some(head) => head,
                None => {
                    lanes.remove(&key);
                    return;
                }
            }
        };
        let (ticket, entry) = head;
        deliver_one(&inner, &ticket, &entry, key.0).await;
        if matches!(*ticket, Ticket::Spool(_)) {
            inner.spooled.fetch_sub(1, Ordering::Relaxed);
        }
        {
            let mut lanes = lock(&inner.lanes);
            if let Some(lane) = lanes.get_mut(&key) {
                lane.pop_front();
            }
        }
        inner.depth.send_modify(|d| *d = d.saturating_sub(1));
    }
}

/// One try of `entry` on its route.
async fn attempt(inner: &Inner, entry: &Entry, route: Route) -> deliver::Attempt {
    match (route, &inner.forward) {
        (Route::Forward, Some(forward)) => match forward.publish(entry).await {
            Ok(()) => deliver::Attempt::Delivered(0),
            Err(why) => deliver::Attempt::Retry {
                why,
                retry_after: None,
            },
        },
        _ => {
            // The semaphore is never closed, so acquire only fails if it were; then send anyway.
            let _permit = inner.in_flight.acquire().await;
            deliver::attempt(&inner.client, entry).await
        }
    }
}

/// Retry one entry until it is delivered (forwarded), final or expired, then finish it.
async fn deliver_one(inner: &Inner, ticket: &Ticket, entry: &Entry, route: Route) {
    let id = ticket.id();
    let taskid = taskid_of(&entry.body);
    let expires_ms = entry
        .enqueued_ms
        .saturating_add(u64::try_from(inner.max_age.as_millis()).unwrap_or(u64::MAX));
    let mut attempts = 0u32;
    let mut last_error = String::new();
    loop {
        let now = now_ms();
        if now >= expires_ms {
            tracing::error!(
                id, taskid, attempts, url = %entry.url, cause = %last_error,
                "callback expired undelivered: moved to the dead-letter file"
            );
            let record = DeadLetter {
                id,
                reason: "expired",
                detail: &last_error,
                attempts,
                dead_ms: now,
                entry: Some(entry),
            };
            if finish(inner, ticket, Some(record)).await {
                inner.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let result = attempt(inner, entry, route).await;
        attempts += 1;
        match result {
            deliver::Attempt::Delivered(status) => {
                if finish(inner, ticket, None).await {
                    if route == Route::Forward {
                        tracing::debug!(
                            id,
                            taskid,
                            attempts,
                            "spooled callback forwarded to JetStream"
                        );
                        inner.forwarded.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tracing::debug!(id, taskid, status, attempts, "callback delivered");
                        inner.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return;
            }
            deliver::Attempt::Final(why) => {
                tracing::error!(
                    id, taskid, attempts, url = %entry.url, cause = %why,
                    "callback refused by the receiver: moved to the dead-letter file"
                );
                let record = DeadLetter {
                    id,
                    reason: "rejected",
                    detail: &why,
                    attempts,
                    dead_ms: now_ms(),
                    entry: Some(entry),
                };
                if finish(inner, ticket, Some(record)).await {
                    inner.rejected.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            deliver::Attempt::Retry { why, retry_after } => {
                let backoff = deliver::backoff(
                    attempts,
                    inner.backoff_base,
                    inner.backoff_max,
                    &mut rand::rng(),
                );
                let wait = retry_after
                    .map_or(backoff, |asked| asked.min(inner.backoff_max))
                    .min(Duration::from_millis(expires_ms.saturating_sub(now_ms())));
                let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                if route == Route::Forward {
                    tracing::warn!(id, taskid, attempts, cause = %why, retry_in_ms, "spooled callback not forwarded to JetStream, will retry");
                } else {
                    tracing::warn!(id, taskid, attempts, url = %entry.url, cause = %why, retry_in_ms, "callback not delivered, will retry");
                }
                last_error = why;
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Finish an entry: dead-letter it if `dead`, then take it out of the spool, or acknowledge it
/// to JetStream (its dead letter goes to the dead-letter stream, else to the local file).
/// Returns whether it really left.
async fn finish(inner: &Inner, ticket: &Ticket, dead: Option<DeadLetter<'_>>) -> bool {
    let Ticket::Jet(held) = ticket else {
        return finish_blocking(inner, ticket.id(), dead).await;
    };
    if let Some(dead) = dead {
        let line = match serde_json::to_string(&dead) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(seq = held.seq(), cause = %e, "cannot format a dead letter; message left unacknowledged");
                return false;
            }
        };
        let published = match &inner.forward {
            Some(forward) => forward.dead_letter(&line).await,
            None => Err("no JetStream".to_owned()),
        };
        if let Err(why) = published {
            tracing::warn!(seq = held.seq(), cause = %why, "dead letter not taken by JetStream: written to the local dead-letter file");
            let dead_letters = inner.dead_letters.clone();
            let written = tokio::task::spawn_blocking(move || dead_letters.append(&line)).await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::error!(
                    seq = held.seq(),
                    "cannot write a dead letter; message left unacknowledged"
                );
                return false;
            }
        }
    }
    match held.ack().await {
        Ok(()) => true,
        Err(why) => {
            // Not acknowledged: JetStream redelivers it after its ack wait (a duplicate, which
            // at-least-once delivery allows).
            tracing::warn!(seq = held.seq(), cause = %why, "cannot acknowledge a delivered callback to JetStream");
            false
        }
    }
}

/// Write the dead letter (if any), then remove the entry from the spool. Returns whether the
/// entry really left the spool; on a disk error it stays there and is retried by the next run.
async fn finish_blocking(inner: &Inner, id: u64, dead: Option<DeadLetter<'_>>) -> bool {
    let line = match dead.map(|d| serde_json::to_string(&d)).transpose() {
        Ok(line) => line,
        Err(e) => {
            tracing::error!(id, cause = %e, "cannot format a dead letter; entry left in the spool");
            return false;
        }
    };
    let spool = inner.spool.clone();
    let dead_letters = inner.dead_letters.clone();
    let done = tokio::task::spawn_blocking(move || {
        if let Some(line) = line {
            dead_letters.append(&line)?;
        }
        spool.remove(id)
    })
    .await;
    match done {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(id, cause = %format!("{e:#}"), "cannot update the callback spool; the entry will be retried by the next run");
            false
        }
        Err(e) => {
            tracing::error!(id, cause = %e, "the spool-updating task failed");
            false
        }
    }
}

/// One line of the dead-letter file.
#[derive(Serialize)]
struct DeadLetter<'a> {
    /// Spool id.
    id: u64,
    /// `expired`, `rejected` or `unreadable`.
    reason: &'static str,
    /// The last error (expired) or the receiver's answer (rejected).
    detail: &'a str,
    /// POSTs made (in this run).
    attempts: u32,
    /// When it was given up, Unix ms.
    dead_ms: u64,
    /// The callback: ordering key, URL, body, enqueue time (the secret is left out).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "entry_without_secret"
    )]
    entry: Option<&'a Entry>,
}

fn entry_without_secret<S: serde::Serializer>(
    entry: &Option<&Entry>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Public<'a> {
        ordering_key: &'a str,
        url: &'a str,
        enqueued_ms: u64,
        body: &'a str,
    }
    entry
        .map(|e| Public {
            ordering_key: &e.ordering_key,
            url: &e.url,
            enqueued_ms: e.enqueued_ms,
            body: &e.body,
        })
        .serialize(s)
}

/// The append-only dead-letter file.
#[derive(Clone)]
struct DeadLetters {
    path: PathBuf,
    /// One writer at a time, so lines never interleave.
    write: Arc<Mutex<()>>,
}

impl DeadLetters {
    fn new(path: PathBuf) -> Self {
        DeadLetters {
            path,
            write: Arc::new(Mutex::new(())),
        }
    }

    /// Append one line and fsync it (blocking).
    fn append(&self, line: &str) -> anyhow::Result<()> {
        let _one = lock(&self.write);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening dead-letter file {}", self.path.display()))?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing dead-letter file {}", self.path.display()))
    }
}

/// The `taskid` of a callback body, for log lines (bodies are ours: flat JSON objects).
fn taskid_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("taskid").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// Lock a mutex, shrugging off poisoning: the data it guards stays consistent across a panic
/// (whole-value updates only).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
