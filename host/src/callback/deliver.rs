//! One delivery attempt (a signed POST) and what to do after it: delivered, retry later, or final.
//! Retried: connect errors, timeouts, dropped connections, 5xx, 408, 429. Final: every other
//! non-2xx status, redirects included (they are not followed: a POST must not turn into a GET).

use super::sign::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use super::spool::Entry;
use rand::Rng;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much of a response body is read (and quoted in logs); the rest is dropped.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of it goes into a log line or dead-letter reason.
const QUOTED_RESPONSE_CHARS: usize = 200;

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx answer.
    Delivered(u16),
    /// Worth retrying; `retry_after` when the receiver asked for a delay.
    Retry {
        /// What went wrong.
        why: String,
        /// The receiver's `Retry-After`, in seconds form only.
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (the receiver refused it, or the URL is unusable).
    Final(String),
}

/// What to do after an HTTP status.
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Delivered,
        408 | 429 | 500..=599 => StatusClass::Retry,
        _ => StatusClass::Final,
    }
}

/// See [`classify_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// Done.
    Delivered,
    /// Try again later.
    Retry,
    /// Give up.
    Final,
}

/// The HTTP client callbacks use: per-request timeout, no redirects, no proxy for loopback.
pub fn client(request_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("livesnap/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// POST `entry` once, signed with the current time.
pub async fn attempt(client: &reqwest::Client, entry: &Entry) -> Attempt {
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut request = client
        .post(&entry.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, now_s.to_string());
    if let Some(secret) = &entry.secret {
        request = request.header(
            SIGNATURE_HEADER,
            signature(secret.as_bytes(), now_s, entry.body.as_bytes()),
        );
    }
    let mut response = match request.body(entry.body.clone()).send().await {
        Ok(response) => response,
        Err(e) if e.is_builder() => return Attempt::Final(format!("unusable callback URL: {e}")),
        Err(e) => {
            return Attempt::Retry {
                why: error_chain(&e),
                retry_after: None,
            };
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            // The status is what counts: a 2xx whose body breaks off was still accepted.
            Err(_) => break,
        }
    }
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .take(QUOTED_RESPONSE_CHARS)
        .collect();
    let why = if text.trim().is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", text.trim())
    };
    match classify_status(status) {
        StatusClass::Delivered => Attempt::Delivered(status),
        StatusClass::Retry => Attempt::Retry { why, retry_after },
        StatusClass::Final => Attempt::Final(why),
    }
}

/// `error: cause: cause`, so "connection refused" or "operation timed out" is visible.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The wait before retry number `retry` (1 = the first retry): exponential from `base`, capped
/// at `max`, with "equal jitter" — a random point in the upper half — so receivers coming back
/// up are not hit by every stream at once, while the wait still grows.
pub fn backoff(retry: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = base
        .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(30)))
        .min(max);
    let half = exp / 2;
    half + rng.random_range(Duration::ZERO..=exp - half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_documented() {
        for s in [200, 201, 204, 299] {
            assert_eq!(classify_status(s), StatusClass::Delivered, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify_status(s), StatusClass::Retry, "{s}");
        }
        for s in [301, 302, 307, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(classify_status(s), StatusClass::Final, "{s}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mut rng = rand::rng();
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for _ in 0..200 {
            for (retry, full_ms) in [(1, 100), (2, 200), (3, 400), (6, 3200), (7, 5000)] {
                let d = backoff(retry, base, max, &mut rng);
                let full = Duration::from_millis(full_ms);
                assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
            }
            assert!(backoff(u32::MAX, base, max, &mut rng) <= max);
            assert!(backoff(0, base, max, &mut rng) <= base);
        }
        // The jitter actually varies.
        let samples: std::collections::HashSet<Duration> =
            (0..50).map(|_| backoff(5, base, max, &mut rng)).collect();
        assert!(samples.len() > 10);
    }
}
