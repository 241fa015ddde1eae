//! One warning per stream session and cause: a stream that sends the same unusable tag
//! hundreds of times (an unsupported codec, a broken encoder) logs it once and counts the rest,
//! so the log stays readable and the count shows up in replay's summary and serve's metrics.

use std::collections::BTreeSet;

/// The causes already logged in one session, and how many events were counted.
#[derive(Debug, Default)]
pub struct WarnOnce {
    seen: BTreeSet<String>,
    /// Events counted (logged or not).
    pub count: u64,
}

/// A cause without its numbers: "nal length 912 runs past … (17 bytes left)" and "nal length
/// 44 …" are one cause; the first one's full text is what gets logged.
fn cause_key(cause: &str) -> String {
    let mut key = String::with_capacity(cause.len());
    let mut in_number = false;
    for c in cause.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                key.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            key.push(c);
        }
    }
    key
}

impl WarnOnce {
    /// Count one event with `cause`; true when this cause was not seen before in the session
    /// (the caller logs it then). At most `MAX_CAUSES` distinct causes are remembered; past
    /// that every event is counted and none logged, so hostile input cannot grow the set.
    pub fn first(&mut self, cause: &str) -> bool {
        const MAX_CAUSES: usize = 64;
        self.count += 1;
        if self.seen.len() >= MAX_CAUSES {
            return false;
        }
        self.seen.insert(cause_key(cause))
    }
}

/// The `errmsg` of a callback body the guest formatted (for logging a refusal's cause).
pub fn errmsg_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errmsg").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "refused".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_cause_with_other_numbers_is_logged_once_and_counted() {
        let mut w = WarnOnce::default();
        assert!(w.first("DecodeFailed: nal length 912 runs past the end (17 bytes left)"));
        assert!(!w.first("DecodeFailed: nal length 44 runs past the end (3 bytes left)"));
        assert!(w.first("UnsupportedStream: av1 video is not supported"));
        assert!(!w.first("UnsupportedStream: av1 video is not supported"));
        assert_eq!(w.count, 4);
        for i in 0..200 {
            w.first(&format!("cause {}", "x".repeat(i)));
        }
        assert_eq!(w.count, 204);
        assert!(w.seen.len() <= 64);
    }
}
