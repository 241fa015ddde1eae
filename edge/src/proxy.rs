//! The `wasi:http/proxy` handler: one incoming request is one viewer and one capture session.
//!
//! Order of work: check the path and settings (400/500/502 before anything is fetched), fetch
//! the origin, check that its answer starts as FLV (502 otherwise, nothing stored), then answer
//! 200 and copy the origin's body to the client as it arrives, feeding each complete tag to the
//! session. A due I-frame is rendered, PUT and called back between two body chunks — the viewer's
//! bytes are delayed by that much, never altered. Failures of storage or callbacks are reported
//! (status-4 callback, log line) and never end the viewer's stream.

use crate::settings::{CallbackSettings, EdgeSettings, S3Settings, SettingsError};
use crate::sigv4::{Signer, amz_date, encode_path, sha256_hex};
use crate::{callback_signature, parse_path};
use livesnap_guest::capture::{Action, Outcome, Session, SessionInfo, Shot};
use livesnap_guest::demux::{FlvPushParser, Tag};
use livesnap_guest::error::{ErrorCode, Failure};
use livesnap_guest::shot;
use std::collections::BTreeMap;
use std::io::Write as _;
use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, RequestOptions, ResponseOutparam, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

/// Largest FLV tag accepted from the origin (as `livesnap serve`'s default `max_tag_bytes`).
const MAX_TAG_BYTES: usize = 16 << 20;
/// Bytes asked of the origin per read.
const READ_CHUNK: u64 = 64 << 10;
/// Attempts per callback (the first and two retries), and the pause before each retry.
const CALLBACK_ATTEMPTS: u32 = 3;
const CALLBACK_BACKOFF_MS: u64 = 250;
/// Attempts per upload; only connect errors, timeouts and 5xx are retried.
const UPLOAD_ATTEMPTS: u32 = 2;
const NS_PER_MS: u64 = 1_000_000;

struct Edge;

wasip2::http::proxy::export!(Edge);

impl wasip2::exports::http::incoming_handler::Guest for Edge {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        match Proxied::open(&request) {
            Ok(proxied) => proxied.run(response_out),
            Err((status, why)) => {
                eprintln!("livesnap-edge: {status} {why}");
                respond_text(response_out, status, &why);
            }
        }
    }
}

/// An accepted request: the origin's answer (FLV so far) and the session fed from it.
struct Proxied {
    settings: EdgeSettings,
    session: Session,
    label: String,
    origin_body: IncomingBody,
    origin_stream: InputStream,
    content_type: Vec<u8>,
    /// Bytes read from the origin, not yet sent to the client.
    first_bytes: Vec<u8>,
    /// Tags completed by `first_bytes`.
    first_tags: Vec<Tag>,
    parser: FlvPushParser,
    /// Repeated problems, logged once per cause with a count at the end.
    problems: BTreeMap<String, u64>,
    stored: u64,
    failed: u64,
}

impl Proxied {
    /// Check the request and settings, fetch the origin and read up to its FLV header.
    fn open(request: &IncomingRequest) -> Result<Proxied, (u16, String)> {
        if !matches!(request.method(), Method::Get) {
            return Err((405, "only GET is proxied".into()));
        }
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (app, stream) = parse_path(&path_with_query).map_err(|why| (400, why))?;
        let settings = EdgeSettings::from_vars(|name| std::env::var(name).ok()).map_err(|e| {
            let status = if e == SettingsError::NoOrigin {
                502
            } else {
                500
            };
            (status, e.to_string())
        })?;
        let info = SessionInfo {
            app: app.clone(),
            stream: stream.clone(),
            push_start_ms: now_ms(),
            session_id: wasip2::random::random::get_random_u64() as u32,
        };
        let label = format!(
            "{app}/{stream} session {}-{}",
            info.push_start_ms, info.session_id
        );
        let session = Session::new(info, settings.capture.clone())
            .map_err(|f| (500, format!("invalid capture settings: {}", f.message)))?;

        let query = path_with_query
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        let origin_path = format!("{}/{app}/{stream}.flv{query}", settings.origin.path);
        let origin_url = settings.origin.to_url(&format!("/{app}/{stream}.flv"));
        let response = send(
            Method::Get,
            settings.origin.https,
            &settings.origin.authority,
            &origin_path,
            &[],
            None,
            Timeouts::STREAM,
        )
        .map_err(|why| (502, format!("origin {origin_url} unreachable: {why}")))?;
        let status = response.status();
        if status != 200 {
            return Err((502, format!("origin {origin_url} answered {status}")));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .into_iter()
            .next()
            .unwrap_or_else(|| b"video/x-flv".to_vec());
        let origin_body = response
            .consume()
            .map_err(|()| (502, "origin body unavailable".to_string()))?;
        let origin_stream = origin_body
            .stream()
            .map_err(|()| (502, "origin body unavailable".to_string()))?;
        let mut parser = FlvPushParser::new(MAX_TAG_BYTES);
        let mut first_bytes = Vec::new();
        let mut first_tags = Vec::new();
        while !parser.header_seen() {
            let chunk = match origin_stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => chunk,
                Err(StreamError::Closed) => {
                    return Err((
                        502,
                        format!("origin {origin_url} ended before an FLV header"),
                    ));
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err((
                        502,
                        format!("reading origin {origin_url}: {}", e.to_debug_string()),
                    ));
                }
            };
            first_tags.extend(
                parser
                    .push(&chunk)
                    .map_err(|e| (502, format!("origin {origin_url} did not answer FLV: {e}")))?,
            );
            first_bytes.extend_from_slice(&chunk);
        }
        Ok(Proxied {
            settings,
            session,
            label,
            origin_body,
            origin_stream,
            content_type,
            first_bytes,
            first_tags,
            parser,
            problems: BTreeMap::new(),
            stored: 0,
            failed: 0,
        })
    }

    /// Answer 200 and stream the origin's body to the client until either side ends.
    fn run(mut self, response_out: ResponseOutparam) {
        let headers = Fields::new();
        let _ = headers.append("content-type", &self.content_type);
        let _ = headers.append("cache-control", b"no-cache");
        let response = OutgoingResponse::new(headers);
        let Ok(client_body) = response.body() else {
            return;
        };
        ResponseOutparam::set(response_out, Ok(response));
        let Ok(mut client) = client_body.write() else {
            return;
        };
        eprintln!("livesnap-edge: {}: streaming", self.label);

        let mut chunk = std::mem::take(&mut self.first_bytes);
        let mut tags = std::mem::take(&mut self.first_tags);
        let mut viewer_left = false;
        let mut end = "origin ended".to_string();
        loop {
            if client
                .write_all(&chunk)
                .and_then(|()| std::io::Write::flush(&mut client))
                .is_err()
            {
                viewer_left = true;
                end = "viewer disconnected".into();
                break;
            }
            for tag in tags.drain(..) {
                self.on_tag(&tag);
            }
            chunk = match self.origin_stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => chunk,
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    end = format!("origin failed: {}", e.to_debug_string());
                    break;
                }
            };
            if cfg!(feature = "passthrough") {
                continue;
            }
            match self.parser.push(&chunk) {
                Ok(new) => tags = new,
                Err(e) => {
                    // Still pass the bytes on: the proxy never alters what the viewer gets.
                    self.problem(format!("origin stream unusable for capture: {e}"));
                    tags = Vec::new();
                }
            }
        }
        drop(client);
        if !viewer_left {
            let _ = OutgoingBody::finish(client_body, None);
        }
        drop(self.origin_stream);
        let _ = IncomingBody::finish(self.origin_body);
        let problems: Vec<String> = self
            .problems
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(cause, n)| format!("{cause} (x{n})"))
            .collect();
        eprintln!(
            "livesnap-edge: {}: {end}: {} captures stored, {} failed{}",
            self.label,
            self.stored,
            self.failed,
            if problems.is_empty() {
                String::new()
            } else {
                format!("; repeated: {}", problems.join("; "))
            }
        );
    }

    fn on_tag(&mut self, tag: &Tag) {
        if cfg!(feature = "passthrough") {
            return;
        }
        let body = match self
            .session
            .push_tag(tag.tag_type, tag.timestamp_ms, &tag.body)
        {
            Ok(Action::None) => return,
            Ok(Action::Refused(body)) => {
                self.failed += 1;
                body
            }
            Ok(Action::Capture(shot)) => {
                let outcome = self.store(&shot);
                match &outcome {
                    Outcome::Stored(..) => self.stored += 1,
                    Outcome::Failed(f) => {
                        self.failed += 1;
                        self.problem(format!(
                            "capture failed: {}: {}",
                            f.code.as_str(),
                            f.message
                        ));
                    }
                }
                match self.session.complete(shot.seq, outcome) {
                    Ok(body) => body,
                    Err(f) => {
                        self.problem(format!("no callback for shot {}: {}", shot.seq, f.message));
                        return;
                    }
                }
            }
            Err(f) => {
                self.problem(format!("tag skipped: {}: {}", f.code.as_str(), f.message));
                return;
            }
        };
        if let Some(callback) = &self.settings.callback
            && let Err(why) = post_callback(callback, &body)
        {
            self.problem(format!("callback not delivered: {why}"));
        }
    }

    /// Render and upload one shot; every failure becomes its outcome.
    fn store(&mut self, shot: &Shot) -> Outcome {
        let rendered = shot::render(
            shot.codec,
            &shot.config,
            &shot.access_unit,
            shot.color.as_ref(),
            shot.shortside_px,
            shot.jpeg_quality,
        );
        let picture = match rendered {
            Ok(picture) => picture,
            Err(failure) => return Outcome::Failed(failure),
        };
        match put_object(&self.settings.s3, &shot.key, &picture.jpeg) {
            Ok(()) => {
                eprintln!("livesnap-edge: {}: stored {}", self.label, shot.key);
                Outcome::Stored(picture.width, picture.height)
            }
            Err(why) => Outcome::Failed(Failure::new(
                ErrorCode::UploadFailed,
                format!(
                    "uploading {}/{} failed: {why}",
                    self.settings.s3.bucket, shot.key
                ),
            )),
        }
    }

    /// Log a problem the first time its cause is seen; count the repeats.
    fn problem(&mut self, cause: String) {
        let count = self.problems.entry(cause.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            eprintln!("livesnap-edge: {}: {cause}", self.label);
        }
    }
}

/// Request timeouts, ms.
#[derive(Clone, Copy)]
struct Timeouts {
    connect_ms: u64,
    first_byte_ms: u64,
    between_bytes_ms: u64,
}

impl Timeouts {
    /// The origin: a live stream may pause, but 10 s of silence ends it (as `serve`'s pulls).
    const STREAM: Timeouts = Timeouts {
        connect_ms: 5_000,
        first_byte_ms: 10_000,
        between_bytes_ms: 10_000,
    };
    /// Uploads and callbacks: short, since the viewer's stream waits for them.
    const SIDE: Timeouts = Timeouts {
        connect_ms: 2_000,
        first_byte_ms: 5_000,
        between_bytes_ms: 5_000,
    };
}

/// Send a request and wait for its response head. `body` is written after the request starts.
fn send(
    method: Method,
    https: bool,
    authority: &str,
    path_with_query: &str,
    headers: &[(&str, Vec<u8>)],
    body: Option<&[u8]>,
    timeouts: Timeouts,
) -> Result<IncomingResponse, String> {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value)
            .map_err(|e| format!("header {name}: {e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    let scheme = if https { Scheme::Https } else { Scheme::Http };
    request
        .set_method(&method)
        .and_then(|()| request.set_scheme(Some(&scheme)))
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some(path_with_query)))
        .map_err(|()| format!("invalid request to {authority}{path_with_query}"))?;
    let outgoing_body = request
        .body()
        .map_err(|()| "request body unavailable".to_string())?;
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(timeouts.connect_ms * NS_PER_MS));
    let _ = options.set_first_byte_timeout(Some(timeouts.first_byte_ms * NS_PER_MS));
    let _ = options.set_between_bytes_timeout(Some(timeouts.between_bytes_ms * NS_PER_MS));
    let future = outgoing_handler::handle(request, Some(options)).map_err(|e| format!("{e:?}"))?;
    {
        let mut stream = outgoing_body
            .write()
            .map_err(|()| "request body unavailable".to_string())?;
        if let Some(body) = body {
            stream
                .write_all(body)
                .and_then(|()| std::io::Write::flush(&mut stream))
                .map_err(|e| format!("sending the body: {e}"))?;
        }
    }
    OutgoingBody::finish(outgoing_body, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        Some(Err(())) | None => Err("no response".into()),
    }
}

/// Read and drop a response body (so the connection can be reused), up to 64 KiB; returns it
/// as text for error messages.
fn drain(response: IncomingResponse) -> String {
    let Ok(body) = response.consume() else {
        return String::new();
    };
    let mut text = Vec::new();
    if let Ok(stream) = body.stream() {
        while let Ok(chunk) = stream.blocking_read(READ_CHUNK) {
            if text.len() < 64 << 10 {
                text.extend_from_slice(&chunk);
            }
        }
    }
    let _ = IncomingBody::finish(body);
    String::from_utf8_lossy(&text).chars().take(300).collect()
}

/// PUT `jpeg` at `{endpoint}/{bucket}/{key}`, SigV4-signed when credentials are set.
fn put_object(s3: &S3Settings, key: &str, jpeg: &[u8]) -> Result<(), String> {
    let path = encode_path(&format!("{}/{}/{key}", s3.endpoint.path, s3.bucket));
    let payload = sha256_hex(jpeg);
    let mut last = String::new();
    for attempt in 1..=UPLOAD_ATTEMPTS {
        let date = amz_date(wall_clock::now().seconds);
        let mut headers: Vec<(&str, Vec<u8>)> = vec![
            ("content-type", b"image/jpeg".to_vec()),
            ("content-length", jpeg.len().to_string().into_bytes()),
            ("x-amz-content-sha256", payload.clone().into_bytes()),
            ("x-amz-date", date.clone().into_bytes()),
        ];
        if let Some((id, secret)) = &s3.credentials {
            let signer = Signer {
                access_key_id: id,
                secret_access_key: secret,
                region: &s3.region,
                service: "s3",
            };
            let length = jpeg.len().to_string();
            let authorization = signer.authorization(
                "PUT",
                &path,
                "",
                &[
                    ("content-type", "image/jpeg"),
                    ("content-length", &length),
                    ("host", &s3.endpoint.authority),
                    ("x-amz-content-sha256", &payload),
                    ("x-amz-date", &date),
                ],
                &payload,
                &date,
            );
            headers.push(("authorization", authorization.into_bytes()));
        }
        let retryable = match send(
            Method::Put,
            s3.endpoint.https,
            &s3.endpoint.authority,
            &path,
            &headers,
            Some(jpeg),
            Timeouts::SIDE,
        ) {
            Ok(response) => {
                let status = response.status();
                if (200..300).contains(&status) {
                    drain(response);
                    return Ok(());
                }
                last = format!("HTTP {status}: {}", drain(response));
                status >= 500
            }
            Err(why) => {
                last = why;
                true
            }
        };
        if !retryable || attempt == UPLOAD_ATTEMPTS {
            break;
        }
        sleep_ms(CALLBACK_BACKOFF_MS);
    }
    Err(last)
}

/// POST one callback body, signed like `livesnap serve`'s; retried on timeouts, connect errors,
/// 5xx, 408 and 429, up to [`CALLBACK_ATTEMPTS`] within this request's life.
fn post_callback(callback: &CallbackSettings, body: &str) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 1..=CALLBACK_ATTEMPTS {
        let now_s = wall_clock::now().seconds;
        let mut headers: Vec<(&str, Vec<u8>)> = vec![
            ("content-type", b"application/json".to_vec()),
            ("content-length", body.len().to_string().into_bytes()),
            ("x-livesnap-timestamp", now_s.to_string().into_bytes()),
        ];
        if let Some(secret) = &callback.secret {
            headers.push((
                "x-livesnap-signature",
                callback_signature(secret.as_bytes(), now_s, body.as_bytes()).into_bytes(),
            ));
        }
        let retryable = match send(
            Method::Post,
            callback.url.https,
            &callback.url.authority,
            &callback.path_with_query,
            &headers,
            Some(body.as_bytes()),
            Timeouts::SIDE,
        ) {
            Ok(response) => {
                let status = response.status();
                drain(response);
                if (200..300).contains(&status) {
                    return Ok(());
                }
                last = format!("HTTP {status}");
                status >= 500 || status == 408 || status == 429
            }
            Err(why) => {
                last = why;
                true
            }
        };
        if !retryable || attempt == CALLBACK_ATTEMPTS {
            break;
        }
        sleep_ms(CALLBACK_BACKOFF_MS << (attempt - 1));
    }
    Err(format!("{last} after {CALLBACK_ATTEMPTS} attempts at most"))
}

fn respond_text(response_out: ResponseOutparam, status: u16, text: &str) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(mut stream) = body.write() {
        let _ = stream.write_all(format!("{text}\n").as_bytes());
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(body, None);
}

fn now_ms() -> u64 {
    let now = wall_clock::now();
    now.seconds * 1000 + u64::from(now.nanoseconds / 1_000_000)
}

fn sleep_ms(ms: u64) {
    monotonic_clock::subscribe_duration(ms * NS_PER_MS).block();
}
