//! `livesnap serve` configuration: one TOML file into [`Config`], every key documented in README
//! ("Service configuration"). Unknown keys and out-of-range values are refused with the file, line
//! and key, before anything starts.

use crate::callback::DeliveryConfig;
use crate::storage::StorageConfig;
use anyhow::{Context, bail};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The whole service configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen addresses.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where pictures are stored (`kind = "fs"` by default).
    #[serde(default)]
    pub storage: Option<StorageConfig>,
    /// Callback delivery: spool directory, retries.
    #[serde(default)]
    pub callbacks: Option<DeliveryConfig>,
    /// Sandbox and capacity limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Tenants, one per RTMP app.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    /// HTTP-FLV sources to pull.
    #[serde(default, rename = "pull")]
    pub pulls: Vec<PullConfig>,
    /// Cluster mode on NATS JetStream (README "Running a cluster"); absent: one node alone.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// RTMP listen address.
    #[serde(default = "default_rtmp")]
    pub rtmp: SocketAddr,
    /// HTTP listen address (health, metrics, latest pictures).
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// Base URL under which clients reach the HTTP server, for `alterurl`; defaults to
    /// `http://{http}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Opens the wall page (`/wall?token=…`) and the session files behind it; at least 16
    /// characters. Without it there is no wall.
    #[serde(default)]
    pub admin_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            rtmp: default_rtmp(),
            http: default_http(),
            public_url: None,
            admin_token: None,
        }
    }
}

fn default_rtmp() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1935))
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[limits]`: every cap has a safe default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Render workers (decoders running at once); default: the number of cores.
    pub render_workers: usize,
    /// Captures waiting for a render worker before new ones fail with `LimitExceeded`.
    pub render_queue: usize,
    /// Live streams at once, all tenants together; more publishes are refused.
    pub max_streams: usize,
    /// Live streams at once per tenant.
    pub max_streams_per_tenant: usize,
    /// Linear memory cap of a stream's capture instance, MiB.
    pub capture_memory_mib: usize,
    /// Linear memory cap of a render instance, MiB.
    pub render_memory_mib: usize,
    /// Longest one render may take, ms; beyond it the capture fails with `Timeout`.
    pub render_deadline_ms: u64,
    /// Largest FLV tag accepted from a pull source, bytes.
    pub max_tag_bytes: usize,
    /// Longest shutdown waits for in-flight captures and callback delivery, seconds.
    pub shutdown_grace_s: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            render_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            render_queue: 64,
            max_streams: 1000,
            max_streams_per_tenant: 1000,
            capture_memory_mib: 16,
            render_memory_mib: 256,
            render_deadline_ms: 10_000,
            max_tag_bytes: crate::ingest::flv::DEFAULT_MAX_TAG_BYTES,
            shutdown_grace_s: 30,
        }
    }
}

impl LimitsConfig {
    /// The wasmtime limits these settings give.
    pub fn runtime_limits(&self) -> crate::runtime::Limits {
        crate::runtime::Limits {
            capture_memory_bytes: self.capture_memory_mib << 20,
            render_memory_bytes: self.render_memory_mib << 20,
            render_deadline: Duration::from_millis(self.render_deadline_ms),
            // Every live stream holds one capture instance; a few spare slots absorb races.
            pooled_capture_instances: Some(
                u32::try_from(self.max_streams.saturating_add(16)).unwrap_or(u32::MAX),
            ),
            ..crate::runtime::Limits::default()
        }
    }
}

/// Shortest `admin_token` accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// One `[[tenant]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// RTMP app: publishes go to `rtmp://HOST:PORT/{app}/{stream}?key=...`.
    pub app: Name,
    /// Tenant's unique name, echoed in callbacks.
    pub uniqname: String,
    /// Publishes without this key are refused.
    pub publish_key: String,
    /// Bucket for the tenant's pictures.
    pub bucket: Name,
    /// Capture interval, seconds (1..=3600, default 20).
    #[serde(default)]
    pub interval_s: IntervalS,
    /// One picture per stream, overwritten, instead of one per capture.
    #[serde(default)]
    pub overwrite: bool,
    /// Scale down so the short side is this many pixels.
    #[serde(default)]
    pub shortside: Option<Shortside>,
    /// JPEG quality step 1..=10.
    #[serde(default)]
    pub quality: Option<Quality>,
    /// Where callbacks are POSTed.
    #[serde(default)]
    pub callback_url: Option<HttpUrl>,
    /// Signs callbacks and derives the latest-picture token.
    #[serde(default)]
    pub callback_secret: Option<String>,
    /// Write `index.json` into every session folder (README "Session index").
    #[serde(default)]
    pub index: bool,
    /// Refresh a live session's index every this many captures (1..=10000, default 10).
    #[serde(default = "default_index_every")]
    pub index_every: Ranged<1, 10000>,
    /// Send `LiveSnapShotSession` started/ended callbacks.
    #[serde(default)]
    pub session_callbacks: bool,
    /// Build a storyboard (sprite sheets + WebVTT) per session (README "Storyboard").
    #[serde(default)]
    pub storyboard: bool,
    /// Storyboard tile width in pixels (2..=1920, default 160).
    #[serde(default = "default_tile_width")]
    pub storyboard_tile_width: Ranged<2, 1920>,
    /// Tiles per sheet row (1..=100, default 10).
    #[serde(default = "default_grid")]
    pub storyboard_columns: Ranged<1, 100>,
    /// Rows per sheet (1..=100, default 10).
    #[serde(default = "default_grid")]
    pub storyboard_rows: Ranged<1, 100>,
    /// Skip blank pictures (README "Blank and frozen pictures").
    #[serde(default)]
    pub skip_blank: bool,
    /// Skip pictures equal to the previous capture.
    #[serde(default)]
    pub skip_frozen: bool,
    /// Serve `/snapshot/{app}/{stream}.jpg` (README "On-demand snapshot"): the capture instance
    /// keeps the newest I-frame. Default on; needs `callback_secret` (the token's key).
    #[serde(default = "default_true")]
    pub snapshot: bool,
}

fn default_true() -> bool {
    true
}

fn default_index_every() -> Ranged<1, 10000> {
    Ranged(10)
}

fn default_tile_width() -> Ranged<2, 1920> {
    Ranged(160)
}

fn default_grid() -> Ranged<1, 100> {
    Ranged(10)
}

impl TenantConfig {
    /// The tenant's optional session features.
    pub fn features(&self) -> crate::features::Features {
        crate::features::Features {
            index: self.index,
            index_every: self.index_every.0,
            session_callbacks: self.session_callbacks,
            skip_blank: self.skip_blank,
            skip_frozen: self.skip_frozen,
            storyboard: self
                .storyboard
                .then_some(crate::runtime::StoryboardSettings {
                    tile_width_px: self.storyboard_tile_width.0,
                    columns: self.storyboard_columns.0,
                    rows: self.storyboard_rows.0,
                }),
        }
    }
}

/// An integer setting within `LO..=HI`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranged<const LO: u32, const HI: u32>(pub u32);

impl<'de, const LO: u32, const HI: u32> Deserialize<'de> for Ranged<LO, HI> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        match u32::try_from(v) {
            Ok(v) if (LO..=HI).contains(&v) => Ok(Ranged(v)),
            _ => Err(serde::de::Error::custom(format!(
                "must be {LO}..={HI}, got {v}"
            ))),
        }
    }
}

/// One `[[pull]]`: an HTTP-FLV source or an RTSP camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// `http(s)://` URL of an FLV stream, or `rtsp://[user:password@]host[:port]/path`.
    pub url: SourceUrl,
    /// The tenant's app.
    pub app: Name,
    /// Stream name.
    pub stream: Name,
    /// RTSP only: how RTP arrives, `tcp` (interleaved on the RTSP connection, the default) or
    /// `udp`.
    #[serde(default)]
    pub transport: Option<RtpTransport>,
}

/// How an RTSP camera sends RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RtpTransport {
    /// Interleaved on the RTSP TCP connection.
    #[default]
    Tcp,
    /// RTP and RTCP over UDP.
    Udp,
}

/// The protocol of a pull source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// HTTP-FLV.
    HttpFlv,
    /// RTSP.
    Rtsp,
}

/// A pull source URL. It may carry credentials (`user:password@`): everything that shows it —
/// `Display`, `Debug`, logs, errors, metrics, pages — shows [`SourceUrl::redacted`], never the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUrl {
    url: reqwest::Url,
}

impl SourceUrl {
    /// Parse `s`: `http://`, `https://` or `rtsp://` with a host. Errors never repeat the
    /// password.
    pub fn parse(s: &str) -> Result<SourceUrl, String> {
        let shown = redact(s);
        let url = reqwest::Url::parse(s).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
        match url.scheme() {
            "http" | "https" | "rtsp" => {}
            "rtsps" => {
                return Err(format!(
                    "{shown:?}: rtsps:// (RTSP over TLS) is not supported: the RTSP client \
                     (retina 0.4) has no TLS; use rtsp:// on a trusted network"
                ));
            }
            other => {
                return Err(format!(
                    "{shown:?} is not an http://, https:// or rtsp:// URL (scheme {other:?})"
                ));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{shown:?} has no host"));
        }
        Ok(SourceUrl { url })
    }

    /// HTTP-FLV or RTSP.
    pub fn kind(&self) -> SourceKind {
        match self.url.scheme() {
            "rtsp" => SourceKind::Rtsp,
            _ => SourceKind::HttpFlv,
        }
    }

    /// The URL with its credentials, for connecting only.
    pub fn secret(&self) -> &reqwest::Url {
        &self.url
    }

    /// The URL without credentials: `scheme://host[:port]/path?query`.
    pub fn without_credentials(&self) -> reqwest::Url {
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url
    }

    /// The user name and password, if the URL has them (percent-decoded).
    pub fn credentials(&self) -> Option<(String, String)> {
        (!self.url.username().is_empty() || self.url.password().is_some()).then(|| {
            (
                percent_decode(self.url.username()),
                percent_decode(self.url.password().unwrap_or_default()),
            )
        })
    }

    /// The URL as it may be shown: a user name and password become `***@`.
    pub fn redacted(&self) -> String {
        redact(self.url.as_str())
    }
}

/// Percent-decoding of URL userinfo (RFC 3986 §2.1); invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` with the userinfo of its authority (anything before the last `@` of the authority)
/// replaced by `***`; works on strings that do not parse as URLs too.
pub fn redact(s: &str) -> String {
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, s),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

impl std::fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceUrl({:?})", self.redacted())
    }
}

impl<'de> Deserialize<'de> for SourceUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SourceUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An app, stream or bucket name: `[A-Za-z0-9_.-]{1,128}`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(pub String);

/// True when `s` is a valid app/stream/bucket name (DESIGN.md "Object keys").
pub fn is_valid_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && s != "."
        && s != ".."
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !is_valid_name(&s) {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a valid name: use 1 to 128 of A-Z a-z 0-9 _ . - (not . or ..)"
            )));
        }
        Ok(Name(s))
    }
}

/// Capture interval in seconds, 1..=3600.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalS(pub u32);

impl Default for IntervalS {
    fn default() -> Self {
        IntervalS(20)
    }
}

impl<'de> Deserialize<'de> for IntervalS {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        match u32::try_from(v) {
            Ok(v @ 1..=3600) => Ok(IntervalS(v)),
            _ => Err(serde::de::Error::custom(format!(
                "interval_s must be 1..=3600 seconds, got {v}"
            ))),
        }
    }
}

/// JPEG quality step 1..=10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quality(pub u8);

impl<'de> Deserialize<'de> for Quality {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        match u8::try_from(v) {
            Ok(v @ 1..=10) => Ok(Quality(v)),
            _ => Err(serde::de::Error::custom(format!(
                "quality must be 1..=10, got {v}"
            ))),
        }
    }
}

/// Short side in pixels, 1..=8192.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortside(pub u32);

impl<'de> Deserialize<'de> for Shortside {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        match u32::try_from(v) {
            Ok(v @ 1..=8192) => Ok(Shortside(v)),
            _ => Err(serde::de::Error::custom(format!(
                "shortside must be 1..=8192 pixels, got {v}"
            ))),
        }
    }
}

/// An `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub String);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"));
        match rest {
            Some(rest)
                if !rest.is_empty()
                    && !rest.starts_with('/')
                    && reqwest::Url::parse(&s).is_ok() =>
            {
                Ok(HttpUrl(s))
            }
            _ => Err(serde::de::Error::custom(format!(
                "{s:?} is not an http:// or https:// URL"
            ))),
        }
    }
}

impl Config {
    /// Read and check `path`. Errors name the file, the line and the key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and check config `text` read from `origin` (a file name, for messages).
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, col, key) = match e.span() {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    (line, col, key_on_line(text, line))
                }
                None => (0, 0, String::new()),
            };
            let key = if key.is_empty() {
                String::new()
            } else {
                format!(" (key `{key}`)")
            };
            anyhow::anyhow!("invalid config {origin}:{line}:{col}{key}: {}", e.message())
        })?;
        config.validate(text, origin)?;
        Ok(config)
    }

    /// Cross-field checks that serde cannot make.
    fn validate(&self, text: &str, origin: &str) -> anyhow::Result<()> {
        let at = |needle: &str| {
            let line = text
                .lines()
                .position(|l| l.contains(needle))
                .map_or(0, |i| i + 1);
            format!("{origin}:{line}")
        };
        for (i, t) in self.tenants.iter().enumerate() {
            if self.tenants[..i].iter().any(|o| o.app == t.app) {
                bail!(
                    "invalid config {} (key `app`): two tenants use app {:?}",
                    at(&format!("\"{}\"", t.app.0)),
                    t.app.0
                );
            }
            if t.publish_key.is_empty() {
                bail!(
                    "invalid config {} (key `publish_key`): tenant {:?} has an empty publish_key",
                    at("publish_key"),
                    t.app.0
                );
            }
            if t.storyboard
                && t.storyboard_tile_width.0 * t.storyboard_columns.0
                    > crate::features::MAX_SHEET_SIDE_PX
            {
                bail!(
                    "invalid config {} (key `storyboard_columns`): {} columns of {} px exceed \
                     the {} px sheet limit",
                    at("storyboard"),
                    t.storyboard_columns.0,
                    t.storyboard_tile_width.0,
                    crate::features::MAX_SHEET_SIDE_PX
                );
            }
            if t.callback_secret.as_deref() == Some("") {
                bail!(
                    "invalid config {} (key `callback_secret`): empty secret",
                    at("callback_secret")
                );
            }
        }
        for (i, p) in self.pulls.iter().enumerate() {
            // Lines are found by the redacted URL's host and path, never by the password.
            let shown = p.url.redacted();
            let needle = p.url.without_credentials();
            let line = at(needle.host_str().unwrap_or_default());
            if !self.tenants.iter().any(|t| t.app == p.app) {
                bail!(
                    "invalid config {line} (key `app`): pull {shown:?} names app {:?}, which no [[tenant]] has",
                    p.app.0
                );
            }
            if self.pulls[..i]
                .iter()
                .any(|o| o.app == p.app && o.stream == p.stream)
            {
                bail!(
                    "invalid config {line} (key `stream`): two pulls feed {}/{}",
                    p.app.0,
                    p.stream.0
                );
            }
            if p.transport.is_some() && p.url.kind() != SourceKind::Rtsp {
                bail!(
                    "invalid config {line} (key `transport`): pull {shown:?} is not rtsp://; \
                     `transport` is for RTSP cameras only"
                );
            }
        }
        if let Some(token) = &self.server.admin_token
            && token.chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            bail!(
                "invalid config {} (key `admin_token`): {} characters is too short to guess                  safely: use at least {MIN_ADMIN_TOKEN_CHARS}",
                at("admin_token"),
                token.chars().count()
            );
        }
        if let Some(cluster) = &self.cluster
            && let Err((key, why)) = cluster.validate()
        {
            let line = text
                .lines()
                .enumerate()
                .skip_while(|(_, l)| l.trim() != "[cluster]")
                .find(|(_, l)| l.trim_start().starts_with(key))
                .map_or_else(|| at("[cluster]"), |(i, _)| format!("{origin}:{}", i + 1));
            bail!("invalid config {line} (key `cluster.{key}`): {why}");
        }
        let l = &self.limits;
        for (key, value) in [
            ("render_workers", l.render_workers),
            ("render_queue", l.render_queue),
            ("max_streams", l.max_streams),
            ("max_streams_per_tenant", l.max_streams_per_tenant),
            ("capture_memory_mib", l.capture_memory_mib),
            ("render_memory_mib", l.render_memory_mib),
            ("max_tag_bytes", l.max_tag_bytes),
        ] {
            if value == 0 {
                bail!(
                    "invalid config {} (key `{key}`): must be at least 1",
                    at(key)
                );
            }
        }
        Ok(())
    }

    /// The tenant owning `app`.
    pub fn tenant(&self, app: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.app.0 == app)
    }
}

/// 1-based line and column of byte offset `pos`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The key assigned on 1-based `line`, if the line is `key = value`.
fn key_on_line(text: &str, line: usize) -> String {
    text.lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
rtmp = "127.0.0.1:1935"
http = "127.0.0.1:8080"

[[tenant]]
app = "live"
uniqname = "acme"
publish_key = "change-me"
bucket = "shots"
interval_s = 10
shortside = 360
quality = 8
callback_url = "http://127.0.0.1:9000/cb"
callback_secret = "s3cret"

[[pull]]
url = "http://127.0.0.1:8081/live/cam1.flv"
app = "live"
stream = "cam1"
"#;

    #[test]
    fn the_readme_example_parses() {
        let c = Config::parse(GOOD, "livesnap.toml").unwrap();
        assert_eq!(c.tenants[0].interval_s, IntervalS(10));
        assert_eq!(c.tenants[0].quality, Some(Quality(8)));
        assert_eq!(c.pulls[0].stream, Name("cam1".into()));
        assert!(c.tenant("live").is_some() && c.tenant("other").is_none());
    }

    #[test]
    fn rtsp_pulls_parse_and_never_show_their_password() {
        let text = GOOD.replace(
            "url = \"http://127.0.0.1:8081/live/cam1.flv\"",
            "url = \"rtsp://admin:p%40ss-word@127.0.0.1:8554/cam\"\ntransport = \"udp\"",
        );
        let c = Config::parse(&text, "livesnap.toml").unwrap();
        let url = &c.pulls[0].url;
        assert_eq!(url.kind(), SourceKind::Rtsp);
        assert_eq!(c.pulls[0].transport, Some(RtpTransport::Udp));
        assert_eq!(
            url.credentials(),
            Some(("admin".into(), "p@ss-word".into()))
        );
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            format!("{:?}", c.pulls[0]),
        ] {
            assert!(
                !shown.contains("p%40ss") && !shown.contains("admin"),
                "{shown}"
            );
            assert!(shown.contains("rtsp://***@127.0.0.1:8554/cam"), "{shown}");
        }
        assert_eq!(
            url.without_credentials().as_str(),
            "rtsp://127.0.0.1:8554/cam"
        );
        // Errors about the pull show the redacted URL.
        let orphan = text.replace("app = \"live\"\nstream", "app = \"other\"\nstream");
        let err = format!("{:#}", Config::parse(&orphan, "x.toml").unwrap_err());
        assert!(err.contains("***@") && !err.contains("ss-word"), "{err}");
        // A bad URL is refused without echoing its password.
        for bad in [
            "rtsps://u:secretpw@h/x",
            "ftp://u:secretpw@h/x",
            "rtsp://u:secretpw@/x",
        ] {
            let text = GOOD.replace("http://127.0.0.1:8081/live/cam1.flv", bad);
            let err = format!("{:#}", Config::parse(&text, "x.toml").unwrap_err());
            assert!(
                !err.contains("secretpw") && err.contains("key `url`"),
                "{err}"
            );
        }
        // `transport` is for RTSP only.
        let text = GOOD.replace(
            "stream = \"cam1\"",
            "stream = \"cam1\"\ntransport = \"tcp\"",
        );
        let err = format!("{:#}", Config::parse(&text, "x.toml").unwrap_err());
        assert!(err.contains("key `transport`"), "{err}");
    }

    #[test]
    fn redact_hides_any_userinfo() {
        assert_eq!(redact("rtsp://a:b@h:1/p?q=1"), "rtsp://***@h:1/p?q=1");
        assert_eq!(redact("rtsp://a@b@h/p@x"), "rtsp://***@h/p@x");
        assert_eq!(redact("http://h/p"), "http://h/p");
        assert_eq!(redact("u:p@h"), "***@h");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (
                "interval_s = 10",
                "interval_s = 0",
                ":11:",
                "interval_s",
                "1..=3600",
            ),
            ("quality = 8", "quality = 11", ":13:", "quality", "1..=10"),
            (
                "bucket = \"shots\"",
                "bucket = \"../x\"",
                ":10:",
                "bucket",
                "not a valid name",
            ),
            (
                "shortside = 360",
                "shortside = 360\nshort_side = 1",
                ":13:",
                "short_side",
                "unknown field",
            ),
            (
                "callback_url = \"http://127.0.0.1:9000/cb\"",
                "callback_url = \"ftp://x\"",
                ":14:",
                "callback_url",
                "not an http",
            ),
            (
                "stream = \"cam1\"",
                "stream = \"a/b\"",
                ":20:",
                "stream",
                "not a valid name",
            ),
        ];
        for (from, to, line, key, what) in cases {
            let text = GOOD.replace(from, to);
            let err = format!("{:#}", Config::parse(&text, "livesnap.toml").unwrap_err());
            assert!(err.contains(&format!("livesnap.toml{line}")), "{to}: {err}");
            assert!(
                err.contains(&format!("`{key}`")) && err.contains(what),
                "{to}: {err}"
            );
        }
    }

    #[test]
    fn names_that_could_escape_their_prefix_are_refused() {
        let long = "a".repeat(129);
        for bad in [
            "..",
            ".",
            "%2e%2e",
            "a/b",
            "..\\x",
            "a\\u0000b",
            "",
            " a",
            &long,
        ] {
            for key in [
                "app = \"live\"\nuniqname",
                "bucket = \"shots\"",
                "stream = \"cam1\"",
            ] {
                let (name, rest) = key.split_once(" = ").unwrap();
                let replaced = format!(
                    "{name} = \"{bad}\"{}",
                    rest.split_once('"').unwrap().1.split_once('"').unwrap().1
                );
                let text = GOOD.replacen(key, &replaced, 1);
                assert_ne!(text, GOOD);
                let err = format!("{:#}", Config::parse(&text, "f.toml").unwrap_err());
                assert!(
                    err.contains("not a valid name") || err.contains("invalid"),
                    "{name} = {bad:?}: {err}"
                );
            }
        }
        assert!(
            is_valid_name(&"a".repeat(128)) && is_valid_name("cam_1.hd-2") && is_valid_name("...")
        );
    }

    #[test]
    fn cross_field_errors_are_refused() {
        let dup = format!(
            "{GOOD}\n[[tenant]]\napp = \"live\"\nuniqname = \"b\"\npublish_key = \"k\"\nbucket = \"b\"\n"
        );
        assert!(
            format!("{:#}", Config::parse(&dup, "f").unwrap_err()).contains("two tenants use app")
        );
        let orphan = GOOD.replace("app = \"live\"\nstream", "app = \"nope\"\nstream");
        assert!(
            format!("{:#}", Config::parse(&orphan, "f").unwrap_err())
                .contains("which no [[tenant]] has")
        );
        let zero = format!("{GOOD}\n[limits]\nrender_workers = 0\n");
        assert!(format!("{:#}", Config::parse(&zero, "f").unwrap_err()).contains("render_workers"));
    }
}
