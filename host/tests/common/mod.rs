//! Helpers shared by the storage and callback tests: fixtures, temporary directories, a scripted
//! HTTP receiver and an in-process S3 server, each on 127.0.0.1:0 with a runtime of its own.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of these helpers"
)]

pub mod live;
pub mod nats;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Width and height of a JPEG, decoded in full (a damaged picture fails the test).
pub fn jpeg_size(jpeg: &[u8]) -> (usize, usize) {
    let mut decoder = zune_jpeg::JpegDecoder::new(std::io::Cursor::new(jpeg));
    decoder.decode().expect("a decodable JPEG");
    decoder.dimensions().expect("JPEG dimensions")
}

/// Whether an FLV tag is a video keyframe's coded picture (not a sequence header).
pub fn is_keyframe(tag: &livesnap::ingest::flv::Tag) -> bool {
    tag.tag_type == 9
        && tag.body.first().is_some_and(|b| b >> 4 == 1)
        && tag.body.get(1) == Some(&1)
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// Every tag of fixture `name`.
pub fn fixture_tags(name: &str) -> Vec<livesnap::ingest::flv::Tag> {
    let data = std::fs::read(fixture(name)).unwrap();
    let mut r = livesnap::ingest::flv::FlvReader::new(&data[..], 1 << 24).unwrap();
    let mut tags = Vec::new();
    while let Some(t) = r.next_tag().unwrap() {
        tags.push(t);
    }
    tags
}

/// An AVC video tag body with every NAL unit kept but the last (the slice) cut to 20 bytes:
/// its header still says I, its data does not decode.
pub fn cut_slice_data(body: &[u8]) -> Vec<u8> {
    let mut nals = Vec::new();
    let mut at = 5;
    while at + 4 <= body.len() {
        let len = u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        nals.push(&body[at + 4..at + 4 + len]);
        at += 4 + len;
    }
    let mut out = body[..5].to_vec();
    let last = nals.len() - 1;
    for (i, nal) in nals.iter().enumerate() {
        let nal = if i == last { &nal[..20] } else { nal };
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// A fresh, empty directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("livesnap-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn livesnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_livesnap"))
        .args(args)
        .env_remove("LIVESNAP_CALLBACK_SECRET")
        .output()
        .expect("the livesnap binary runs")
}

/// Every file below `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `"taskid"` of a callback body.
pub fn taskid(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["taskid"].as_str().unwrap().to_owned()
}

/// `(stream part, seq)` of a task id `{App}/{Stream}/{start}-{session}/{seq}`.
pub fn stream_and_seq(taskid: &str) -> (String, u32) {
    let (rest, seq) = taskid.rsplit_once('/').unwrap();
    (rest.to_owned(), seq.parse().unwrap())
}

/// Recompute the signature independently of livesnap's own code and check it and the
/// timestamp's freshness (5 minutes), as a receiver would.
pub fn check_signature(secret: &str, req: &Request) {
    let ts = req
        .header("x-livesnap-timestamp")
        .expect("timestamp header");
    let sig = req
        .header("x-livesnap-signature")
        .expect("signature header");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", req.body).as_bytes());
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(sig, expected, "signature of {}", req.body);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ts: u64 = ts.parse().unwrap();
    assert!(now.abs_diff(ts) <= 300, "stale timestamp {ts} (now {now})");
    assert_eq!(req.header("content-type"), Some("application/json"));
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// What the receiver does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this status.
    Status(u16),
    /// Say nothing for this long, then close (the client times out first).
    Hang(Duration),
    /// Close the connection without an answer.
    Drop,
}

type Script = dyn Fn(&Request, u32) -> Reply + Send + Sync;

/// A raw HTTP/1.1 receiver whose answers follow a script `(request, attempt number of its
/// taskid starting at 1) -> Reply`. Raw TCP so it can hang or drop connections.
pub struct Receiver {
    pub url: String,
    pub log: Arc<Mutex<Vec<(Request, Reply)>>>,
    script: Arc<Mutex<Arc<Script>>>,
    rt: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start(script: impl Fn(&Request, u32) -> Reply + Send + Sync + 'static) -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<Arc<Script>>> = Arc::new(Mutex::new(Arc::new(script)));
        let attempts = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
        let (log2, script2) = (log.clone(), script.clone());
        rt.spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (log, script, attempts) = (log2.clone(), script2.clone(), attempts.clone());
                tokio::spawn(serve_connection(sock, log, script, attempts));
            }
        });
        Receiver {
            url,
            log,
            script,
            rt,
        }
    }

    /// Change the script (e.g. bring a "down" receiver up).
    pub fn set_script(&self, script: impl Fn(&Request, u32) -> Reply + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Request> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, reply)| matches!(reply, Reply::Status(200..=299)))
            .map(|(req, _)| req.clone())
            .collect()
    }

    /// Every request received.
    pub fn all(&self) -> Vec<(Request, Reply)> {
        self.log.lock().unwrap().clone()
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.handle()
    }
}

async fn serve_connection(
    mut sock: TcpStream,
    log: Arc<Mutex<Vec<(Request, Reply)>>>,
    script: Arc<Mutex<Arc<Script>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut sock, &mut buf).await {
        let key = serde_json::from_str::<serde_json::Value>(&req.body)
            .ok()
            .and_then(|v| v["taskid"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let attempt = {
            let mut attempts = attempts.lock().unwrap();
            let n = attempts.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        let script = script.lock().unwrap().clone();
        let reply = script(&req, attempt);
        log.lock().unwrap().push((req, reply));
        match reply {
            Reply::Status(status) => {
                let head = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
                );
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
            }
            Reply::Hang(how_long) => {
                tokio::time::sleep(how_long).await;
                return;
            }
            Reply::Drop => return,
        }
    }
}

/// Read one request (headers + content-length body); `None` at EOF or on garbage.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + len {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[header_end..header_end + len]).into_owned();
    buf.drain(..header_end + len);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// An S3 server (s3s-fs, checking SigV4 signatures) on 127.0.0.1:0, storing under `root`.
pub struct S3Server {
    pub endpoint: String,
    pub root: PathBuf,
    rt: tokio::runtime::Runtime,
}

pub const S3_ACCESS_KEY: &str = "AKIDLIVESNAPTEST";
pub const S3_SECRET_KEY: &str = "livesnap-test-secret";

impl S3Server {
    /// Serve `root` (its subdirectories are the buckets) with one access key.
    pub fn start(root: &Path) -> S3Server {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::server::conn::auto::Builder as ConnBuilder;
        use s3s::auth::SimpleAuth;
        use s3s::service::S3ServiceBuilder;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fs = s3s_fs::FileSystem::new(root).unwrap();
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(S3_ACCESS_KEY, S3_SECRET_KEY));
        let service = builder.build();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            while let Ok((sock, _)) = listener.accept().await {
                let conn = http
                    .serve_connection(TokioIo::new(sock), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        S3Server {
            endpoint,
            root: root.to_path_buf(),
            rt,
        }
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}
