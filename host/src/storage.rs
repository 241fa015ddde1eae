//! Object storage: where the JPEGs go. Two backends behind one [`Storage`] handle:
//!
//! - `fs` (default): objects as files at `{root}/{bucket}/{key}`, written to a temporary file and
//!   renamed so a reader never sees half a JPEG (overwrite mode replaces the picture in place);
//! - `s3`: any S3-compatible endpoint through `object_store` (SigV4-signed `PUT`, `Content-Type:
//!   image/jpeg`), path-style and plain-HTTP endpoints allowed, with bounded retries and backoff.
//!
//! Neither backend trusts the key it is given: keys come from the guest, which checks names, but
//! a key that could leave its bucket is refused here as well.

use anyhow::{Context, bail};
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, PutOptions, PutPayload,
    RetryConfig,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fs root when `[storage]` names none.
pub const DEFAULT_FS_ROOT: &str = "livesnap-objects";

/// Which backend a [`StorageConfig`] selects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Files under a root directory.
    #[default]
    Fs,
    /// An S3-compatible object store.
    S3,
}

/// The `[storage]` table. Every key is optional; keys of the other backend are refused.
///
/// ```toml
/// [storage]
/// kind = "s3"
/// endpoint = "http://127.0.0.1:9000"   # omit for AWS itself
/// region = "us-east-1"
/// access_key_id = "AKIA…"              # or AWS_ACCESS_KEY_ID
/// secret_access_key = "…"              # or AWS_SECRET_ACCESS_KEY
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `"fs"` (default) or `"s3"`.
    #[serde(default)]
    pub kind: StorageKind,
    /// fs: the directory objects go under, as `{root}/{bucket}/{key}`. Default
    /// `livesnap-objects` (relative to the working directory); replay's `--out` sets it.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Bucket used when the caller names none (replay without `--bucket`). Both backends.
    #[serde(default)]
    pub bucket: Option<String>,
    /// s3: endpoint URL, e.g. `http://127.0.0.1:9000` (MinIO, s3s, Ceph…). Default: AWS
    /// (`AWS_ENDPOINT_URL`/`AWS_ENDPOINT` if set).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// s3: region (default `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// s3: access key id (default `AWS_ACCESS_KEY_ID`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// s3: secret access key (default `AWS_SECRET_ACCESS_KEY`).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// s3: session token for temporary credentials (default `AWS_SESSION_TOKEN`).
    #[serde(default)]
    pub session_token: Option<String>,
    /// s3: allow a plain `http://` endpoint. Default: true when the endpoint is written with
    /// `http://` (or `AWS_ALLOW_HTTP=true`), else false.
    #[serde(default)]
    pub allow_http: Option<bool>,
    /// s3: virtual-hosted-style requests (`bucket.host/key`) instead of path-style
    /// (`host/bucket/key`). Default false: path-style works with every S3-compatible server.
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// s3: retries of one upload after the first attempt (connect errors, timeouts, 5xx, 408,
    /// 429). Default 3.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// s3: give up retrying an upload this long after its first attempt, ms. Default 30000.
    #[serde(default = "default_retry_timeout_ms")]
    pub retry_timeout_ms: u64,
    /// s3: first backoff between retries, ms; doubles each retry, with jitter. Default 100.
    #[serde(default = "default_s3_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// s3: longest backoff between retries, ms. Default 5000.
    #[serde(default = "default_s3_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// s3: timeout of one HTTP request, ms. Default 30000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// s3: timeout of establishing a connection, ms. Default 5000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_max_retries() -> usize {
    3
}
fn default_retry_timeout_ms() -> u64 {
    30_000
}
fn default_s3_backoff_base_ms() -> u64 {
    100
}
fn default_s3_backoff_max_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: StorageKind::Fs,
            root: None,
            bucket: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            allow_http: None,
            virtual_hosted_style: false,
            max_retries: default_max_retries(),
            retry_timeout_ms: default_retry_timeout_ms(),
            backoff_base_ms: default_s3_backoff_base_ms(),
            backoff_max_ms: default_s3_backoff_max_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
        }
    }
}

/// Secrets never reach a log line through `{:?}`.
impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("StorageConfig")
            .field("kind", &self.kind)
            .field("root", &self.root)
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("max_retries", &self.max_retries)
            .field("retry_timeout_ms", &self.retry_timeout_ms)
            .field("backoff_base_ms", &self.backoff_base_ms)
            .field("backoff_max_ms", &self.backoff_max_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .finish()
    }
}

impl StorageConfig {
    /// Check the table: required keys present, no key of the other backend, sane numbers.
    pub fn validate(&self) -> anyhow::Result<()> {
        match self.kind {
            StorageKind::Fs => {
                let s3_keys = [
                    ("endpoint", self.endpoint.is_some()),
                    ("region", self.region.is_some()),
                    ("access_key_id", self.access_key_id.is_some()),
                    ("secret_access_key", self.secret_access_key.is_some()),
                    ("session_token", self.session_token.is_some()),
                    ("allow_http", self.allow_http.is_some()),
                    ("virtual_hosted_style", self.virtual_hosted_style),
                ];
                if let Some((key, _)) = s3_keys.iter().find(|(_, set)| *set) {
                    bail!("storage.{key} applies to kind = \"s3\" only, but kind is \"fs\"");
                }
            }
            StorageKind::S3 => {
                if self.root.is_some() {
                    bail!("storage.root applies to kind = \"fs\" only, but kind is \"s3\"");
                }
                if let Some(endpoint) = &self.endpoint
                    && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                {
                    bail!("storage.endpoint {endpoint:?} must start with http:// or https://");
                }
            }
        }
        if let Some(bucket) = &self.bucket {
            check_bucket(bucket)?;
        }
        if self.backoff_base_ms == 0 || self.backoff_max_ms < self.backoff_base_ms {
            bail!(
                "storage.backoff_base_ms must be at least 1 and at most storage.backoff_max_ms \
                 (got {} and {})",
                self.backoff_base_ms,
                self.backoff_max_ms
            );
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            bail!("storage.request_timeout_ms and storage.connect_timeout_ms must be at least 1");
        }
        Ok(())
    }
}

/// A bucket name must be one path segment: no `/`, not `.` or `..`, not empty.
fn check_bucket(bucket: &str) -> anyhow::Result<()> {
    let safe = !bucket.is_empty()
        && bucket != "."
        && bucket != ".."
        && !bucket.contains(['/', '\\', '\0']);
    if !safe {
        bail!("refusing bucket {bucket:?}: it must be one name without '/', '.' or '..'");
    }
    Ok(())
}

/// Where objects go: a cheap, cloneable handle (`Send + Sync`).
#[derive(Debug, Clone)]
pub enum Storage {
    /// Files under a root directory.
    Fs(FsStorage),
    /// An S3-compatible object store.
    S3(S3Storage),
}

impl Storage {
    /// Build the backend `cfg` selects, after [`StorageConfig::validate`]. Does no I/O: a wrong
    /// endpoint or credential shows up at the first [`Storage::put`].
    pub fn from_config(cfg: &StorageConfig) -> anyhow::Result<Storage> {
        cfg.validate()?;
        match cfg.kind {
            StorageKind::Fs => Ok(Storage::Fs(FsStorage::new(
                cfg.root
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_FS_ROOT)),
            ))),
            StorageKind::S3 => Ok(Storage::S3(S3Storage::new(cfg)?)),
        }
    }

    /// Store one JPEG (`Content-Type: image/jpeg`) at `key` of `bucket`. S3 uploads retry with
    /// backoff a bounded number of times inside; the error text names the object and the cause.
    pub async fn put(&self, bucket: &str, key: &str, jpeg: Bytes) -> anyhow::Result<()> {
        match self {
            Storage::Fs(fs) => {
                let fs = fs.clone();
                let (bucket, key) = (bucket.to_owned(), key.to_owned());
                tokio::task::spawn_blocking(move || fs.put(&bucket, &key, &jpeg))
                    .await
                    .context("the file-writing task failed")?
            }
            Storage::S3(s3) => s3.put(bucket, key, jpeg).await,
        }
    }

    /// Read the object at `key` of `bucket` (the wall page's session files). `Ok(None)` when
    /// there is no such object.
    pub async fn get(&self, bucket: &str, key: &str) -> anyhow::Result<Option<Bytes>> {
        match self {
            Storage::Fs(fs) => {
                let path = fs.path_of(bucket, key)?;
                match tokio::fs::read(&path).await {
                    Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
                }
            }
            Storage::S3(s3) => s3.get(bucket, key).await,
        }
    }

    /// Where an object is, for messages: a file path or an `s3://bucket/key` URL.
    pub fn describe(&self, bucket: &str, key: &str) -> String {
        match self {
            Storage::Fs(fs) => fs.root.join(bucket).join(key).display().to_string(),
            Storage::S3(_) => format!("s3://{bucket}/{key}"),
        }
    }
}

/// The `Content-Type` of an object by its key's extension: pictures and sheets are JPEG, the
/// session index JSON, the storyboard WebVTT.
pub fn content_type(key: &str) -> &'static str {
    if key.ends_with(".json") {
        "application/json"
    } else if key.ends_with(".vtt") {
        "text/vtt; charset=utf-8"
    } else {
        "image/jpeg"
    }
}

/// Objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Storage rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStorage { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file an object lives in. Refuses a bucket or key that could leave the root: keys come
    /// from the guest, which checks names, but the host does not take that on trust.
    pub fn path_of(&self, bucket: &str, key: &str) -> anyhow::Result<PathBuf> {
        let mut path = self.root.clone();
        for (what, value) in [("bucket", bucket), ("key", key)] {
            // Check the text, not `Path::components`, which silently drops `.` segments.
            let safe = !value.contains('\0')
                && !value.contains('\\')
                && value
                    .split('/')
                    .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
            if !safe {
                bail!(
                    "refusing {what} {value:?}: it must be a relative path without '.' or '..' parts"
                );
            }
            path.push(value);
        }
        Ok(path)
    }

    /// Store `bytes` as object `key` of `bucket` (blocking). The object is durable when this
    /// returns — data synced, then renamed into place, then the directory synced — because the
    /// callback that follows tells the customer it exists: a crash never leaves a callback
    /// pointing at a missing or empty file, and readers never see a partial one.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path_of(bucket, key)?;
        let dir = path
            .parent()
            .context("object path has no parent directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // A temporary name of its own: two writers of one key (overwrite mode, a reconnect)
        // never share a half-written file; the last rename wins whole.
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".{:016x}.part", rand::random::<u64>()));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            // Leave no temporary file behind: its random name would never be reused.
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", path.display()));
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
        Ok(())
    }
}

/// An S3-compatible store. One `object_store` client per bucket, built on first use and shared
/// by every clone of this handle.
#[derive(Clone)]
pub struct S3Storage {
    /// Everything but the bucket name.
    builder: Arc<AmazonS3Builder>,
    /// Endpoint, for messages (`None`: AWS).
    endpoint: Option<String>,
    clients: Arc<Mutex<HashMap<String, Arc<AmazonS3>>>>,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the builder: it holds the credentials.
        f.debug_struct("S3Storage")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// A store configured from `cfg`, falling back to the `AWS_*` environment variables for
    /// whatever `cfg` leaves out.
    pub fn new(cfg: &StorageConfig) -> anyhow::Result<S3Storage> {
        let mut builder = AmazonS3Builder::from_env();
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &cfg.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &cfg.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &cfg.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &cfg.session_token {
            builder = builder.with_token(token);
        }
        let env_endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok();
        let endpoint = cfg.endpoint.clone().or(env_endpoint);
        let plain_http = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        // These client options replace any read from the environment, so honour AWS_ALLOW_HTTP
        // here.
        let env_allow_http = std::env::var("AWS_ALLOW_HTTP")
            .is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let client = ClientOptions::new()
            .with_timeout(Duration::from_millis(cfg.request_timeout_ms))
            .with_connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .with_allow_http(cfg.allow_http.unwrap_or(plain_http || env_allow_http));
        builder = builder
            .with_client_options(client)
            .with_virtual_hosted_style_request(cfg.virtual_hosted_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(cfg.backoff_base_ms),
                    max_backoff: Duration::from_millis(cfg.backoff_max_ms),
                    base: 2.0,
                },
                max_retries: cfg.max_retries,
                retry_timeout: Duration::from_millis(cfg.retry_timeout_ms),
            });
        // Build once now so a malformed setting is reported at start-up, not at the first upload.
        builder
            .clone()
            .with_bucket_name("livesnap-config-check")
            .build()
            .context("invalid S3 storage settings")?;
        Ok(S3Storage {
            builder: Arc::new(builder),
            endpoint,
            clients: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn client(&self, bucket: &str) -> anyhow::Result<Arc<AmazonS3>> {
        check_bucket(bucket)?;
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| anyhow::anyhow!("S3 client cache poisoned"))?;
        if let Some(client) = clients.get(bucket) {
            return Ok(client.clone());
        }
        let client = Arc::new(
            AmazonS3Builder::clone(&self.builder)
                .with_bucket_name(bucket)
                .build()
                .with_context(|| format!("configuring S3 bucket {bucket:?}"))?,
        );
        clients.insert(bucket.to_owned(), client.clone());
        Ok(client)
    }

    /// Download `s3://{bucket}/{key}`; `Ok(None)` when it does not exist.
    pub async fn get(&self, bucket: &str, key: &str) -> anyhow::Result<Option<Bytes>> {
        use object_store::ObjectStoreExt as _;
        let client = self.client(bucket)?;
        let path = object_store::path::Path::parse(key)
            .with_context(|| format!("refusing key {key:?}"))?;
        match client.get(&path).await {
            Ok(object) => Ok(Some(object.bytes().await.map_err(|e| {
                anyhow::anyhow!("downloading s3://{bucket}/{key}: {}", concise(&e))
            })?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::anyhow!(
                "downloading s3://{bucket}/{key}: {}",
                concise(&e)
            )),
        }
    }

    /// Upload `jpeg` to `s3://{bucket}/{key}` with the key's [`content_type`].
    pub async fn put(&self, bucket: &str, key: &str, jpeg: Bytes) -> anyhow::Result<()> {
        let where_ = match &self.endpoint {
            Some(endpoint) => format!("s3://{bucket}/{key} at {endpoint}"),
            None => format!("s3://{bucket}/{key}"),
        };
        let client = self.client(bucket)?;
        // `Path::parse` refuses empty, `.` and `..` segments, as the fs backend does.
        let path = object_store::path::Path::parse(key)
            .with_context(|| format!("refusing key {key:?}"))?;
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type(key).into());
        let opts = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        client
            .put_opts(&path, PutPayload::from(jpeg), opts)
            .await
            .map_err(|e| anyhow::anyhow!("uploading {where_}: {}", concise(&e)))?;
        Ok(())
    }
}

/// An `object_store` error in one line: its own message and, when that does not already say it,
/// the root cause (e.g. "Connection refused"). Its `Display` repeats the chain, and callers
/// print `{:#}`, so the chain is not kept as sources.
fn concise(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut root: &dyn std::error::Error = e;
    while let Some(source) = root.source() {
        root = source;
    }
    let cause = root.to_string();
    if !text.contains(&cause) {
        text.push_str(": ");
        text.push_str(&cause);
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        let s = FsStorage::new("/srv/shots");
        assert_eq!(
            s.path_of("b", "record/live/x/picture/x.jpg").unwrap(),
            PathBuf::from("/srv/shots/b/record/live/x/picture/x.jpg")
        );
        for (bucket, key) in [
            ("..", "k"),
            ("b", "../k"),
            ("b", "/etc/passwd"),
            ("b", "a/./b"),
            ("", "k"),
            ("b", "a\0"),
        ] {
            assert!(s.path_of(bucket, key).is_err(), "{bucket:?} {key:?}");
        }
    }

    #[test]
    fn put_writes_and_overwrites() {
        let dir = std::env::temp_dir().join(format!("livesnap-fs-{}", std::process::id()));
        let s = FsStorage::new(&dir);
        s.put("b", "a/b.jpg", b"one").unwrap();
        s.put("b", "a/b.jpg", b"two").unwrap();
        assert_eq!(std::fs::read(dir.join("b/a/b.jpg")).unwrap(), b"two");
        let names_in = |d: &str| -> Vec<_> {
            let entries = std::fs::read_dir(dir.join(d)).unwrap();
            entries.map(|e| e.unwrap().file_name()).collect()
        };
        assert_eq!(
            names_in("b/a"),
            ["b.jpg"],
            "no temporary file is left behind"
        );
        // A key whose place is taken by a directory fails, and leaves no temporary file either.
        assert!(s.put("b", "a", b"three").is_err());
        assert_eq!(names_in("b"), ["a"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn parse(toml_text: &str) -> anyhow::Result<StorageConfig> {
        let cfg: StorageConfig = toml::from_str(toml_text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn config_defaults_and_kinds() {
        let fs = parse("root = \"shots\"").unwrap();
        assert_eq!(fs.kind, StorageKind::Fs);
        assert_eq!(fs.max_retries, 3);
        let Storage::Fs(default) = Storage::from_config(&parse("").unwrap()).unwrap() else {
            panic!("the default storage is fs");
        };
        assert_eq!(default.root(), Path::new(DEFAULT_FS_ROOT));
        let s3 = parse(
            "kind = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"eu-west-1\"\n\
             access_key_id = \"AK\"\nsecret_access_key = \"SK\"\nbucket = \"pics\"",
        )
        .unwrap();
        assert_eq!(s3.kind, StorageKind::S3);
        assert!(matches!(Storage::from_config(&s3).unwrap(), Storage::S3(_)));
    }

    #[test]
    fn config_refuses_mixed_unknown_and_missing_keys() {
        for (text, expect) in [
            (
                "root = \"x\"\nendpoint = \"http://h\"",
                "storage.endpoint applies to",
            ),
            ("kind = \"s3\"\nroot = \"x\"", "storage.root applies to"),
            (
                "kind = \"s3\"\nendpoint = \"127.0.0.1:9000\"",
                "must start with http",
            ),
            ("kind = \"s3\"\nbucket = \"..\"", "refusing bucket"),
            ("kind = \"s3\"\nbackoff_base_ms = 0", "backoff_base_ms"),
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(expect), "{text}: {err}");
        }
        let err = toml::from_str::<StorageConfig>("kind = \"s3\"\nbuckets = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `buckets`"), "{err}");
        let err = toml::from_str::<StorageConfig>("kind = \"gcs\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let cfg = StorageConfig {
            kind: StorageKind::S3,
            access_key_id: Some("AK".into()),
            secret_access_key: Some("hunter2".into()),
            session_token: Some("tok".into()),
            ..StorageConfig::default()
        };
        let text = format!("{cfg:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("tok\""),
            "{text}"
        );
        let s3 = Storage::from_config(&cfg).unwrap();
        assert!(!format!("{s3:?}").contains("hunter2"));
    }
}
