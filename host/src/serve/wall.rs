//! The wall page (README "The wall"): every live stream at once for a person at a desk. `/wall`
//! is one self-contained page (no external assets) that reads `/wall.json` every 2 s and each
//! stream's `/latest` picture with `If-None-Match`; names reach the page only as JSON and are
//! put in the DOM as text, never as markup.

use crate::serve::session::{ServeCtx, latest_token};
use serde::Serialize;

/// The page.
pub const WALL_HTML: &str = include_str!("wall.html");

/// How many failed attempts in a row earn a stream the "failing" badge.
pub const FAILING_AFTER: u64 = 1;

/// One live stream as the page shows it.
#[derive(Debug, Serialize)]
pub struct WallStream {
    /// RTMP app.
    pub app: String,
    /// Stream name.
    pub stream: String,
    /// The tenant's uniqname.
    pub tenant: String,
    /// "h264", "hevc", or null before the first attempt.
    pub codec: Option<&'static str>,
    /// Size of the newest stored picture.
    pub width: Option<u32>,
    /// See `width`.
    pub height: Option<u32>,
    /// Unix ms of the push start.
    pub started_ms: u64,
    /// Captures stored.
    pub stored: u64,
    /// Attempts failed or refused.
    pub failed: u64,
    /// Failed attempts since the last stored one.
    pub failing: u64,
    /// The badge: the newest attempts failed.
    pub badge: bool,
    /// Unix ms of the newest attempt's outcome.
    pub last_attempt_ms: Option<u64>,
    /// The newest failure.
    pub last_error: Option<String>,
    /// `/latest` URL with its token, when the tenant has a secret.
    pub latest: Option<String>,
    /// `/snapshot` URL with its token, when the tenant has snapshots.
    pub snapshot: Option<String>,
    /// The storyboard sheet being filled, when the session has one.
    pub storyboard: Option<String>,
}

/// `/wall.json`.
#[derive(Debug, Serialize)]
pub struct Wall {
    /// The server's clock, Unix ms (ages on the page are computed against it).
    pub now_ms: u64,
    /// Live streams by tenant, then stream name.
    pub streams: Vec<WallStream>,
}

/// What `/wall.json` answers; `admin_token` is the token the page was opened with, for the
/// storyboard links.
pub fn wall(ctx: &ServeCtx, admin_token: &str) -> Wall {
    let live: Vec<(String, crate::serve::session::LiveStream)> = match ctx.live.lock() {
        Ok(live) => live.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Err(_) => Vec::new(),
    };
    let base = &ctx.public_url;
    let mut streams: Vec<WallStream> = live
        .into_iter()
        .filter_map(|(name, entry)| {
            let (app, stream) = name.split_once('/')?;
            let tenant = ctx.config.tenant(app)?;
            let token = tenant
                .callback_secret
                .as_deref()
                .map(|secret| latest_token(secret, app, stream));
            let stats = entry.stats;
            Some(WallStream {
                app: app.to_owned(),
                stream: stream.to_owned(),
                tenant: tenant.uniqname.clone(),
                codec: stats.codec,
                width: stats.size.map(|s| s.0),
                height: stats.size.map(|s| s.1),
                started_ms: stats.started_ms,
                stored: stats.stored,
                failed: stats.failed,
                failing: stats.failing,
                badge: stats.failing >= FAILING_AFTER,
                last_attempt_ms: stats.last_attempt_ms,
                last_error: stats.last_error,
                latest: token
                    .as_ref()
                    .map(|t| format!("{base}/latest/{app}/{stream}.jpg?token={t}")),
                snapshot: token
                    .as_ref()
                    .filter(|_| entry.snapshots.is_some())
                    .map(|t| format!("{base}/snapshot/{app}/{stream}.jpg?token={t}")),
                storyboard: stats.sheet.map(|n| {
                    format!(
                        "{base}/session/{app}/{stream}/storyboard-{n}.jpg?token={}",
                        url_escape(admin_token)
                    )
                }),
            })
        })
        .collect();
    streams.sort_by(|a, b| (&a.tenant, &a.stream).cmp(&(&b.tenant, &b.stream)));
    Wall {
        now_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        streams,
    }
}

/// Percent-encode everything but unreserved characters (RFC 3986 §2.3).
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The session files the wall links to: `index.json`, `storyboard.vtt`, `storyboard-{n}.jpg`.
pub fn is_session_file(file: &str) -> bool {
    file == "index.json"
        || file == "storyboard.vtt"
        || file
            .strip_prefix("storyboard-")
            .and_then(|f| f.strip_suffix(".jpg"))
            .is_some_and(|n| {
                !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit())
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_session_documents_are_served() {
        for ok in [
            "index.json",
            "storyboard.vtt",
            "storyboard-1.jpg",
            "storyboard-12.jpg",
        ] {
            assert!(is_session_file(ok), "{ok}");
        }
        for bad in [
            "storyboard-.jpg",
            "storyboard-1x.jpg",
            "../index.json",
            "1700000000.jpg",
            "storyboard-1.jpg/",
            "index.json.bak",
        ] {
            assert!(!is_session_file(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_are_escaped_in_links() {
        assert_eq!(url_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(url_escape("Az09-._~"), "Az09-._~");
    }
}
