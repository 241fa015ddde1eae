//! Names and object keys (DESIGN.md "Object keys"): checked app/stream names, the sequence and
//! overwrite keys, and the callback's task id.

use crate::error::Failure;
use std::fmt;

/// Longest app or stream name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// An app or stream name that is safe inside an object key: `[A-Za-z0-9_.-]{1,128}`, not `.`
/// or `..`. No `/`, no control characters, no percent-escapes: it cannot leave its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Check `value` as the `what` name ("app" or "stream").
    pub fn parse(what: &str, value: &str) -> Result<Name, Failure> {
        if value.is_empty() || value.len() > MAX_NAME_LEN {
            return Err(Failure::limit(format!(
                "{what} name must be 1..={MAX_NAME_LEN} bytes, got {}",
                value.len()
            )));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(Failure::limit(format!(
                "{what} name {value:?} has the character {bad:?}: only A-Z a-z 0-9 _ . - are allowed"
            )));
        }
        if value == "." || value == ".." {
            return Err(Failure::limit(format!(
                "{what} name {value:?} is not allowed"
            )));
        }
        Ok(Name(value.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How captures are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// `record/{App}/{StreamName}/picture/{push_start_ms}-{session_id}/{StreamName}-{UnixTimestamp}.jpg`
    Sequence,
    /// `record/{App}/{StreamName}/picture/{StreamName}.jpg`
    Overwrite,
}

/// Everything that names a session's objects and tasks.
#[derive(Debug, Clone)]
pub struct SessionNames {
    /// Checked app name.
    pub app: Name,
    /// Checked stream name.
    pub stream: Name,
    /// Unix ms when the push started.
    pub push_start_ms: u64,
    /// Random session id.
    pub session_id: u32,
}

impl SessionNames {
    /// Object key of a capture at `unix_timestamp` (seconds).
    pub fn key(&self, mode: KeyMode, unix_timestamp: u64) -> String {
        let (app, stream) = (&self.app, &self.stream);
        match mode {
            KeyMode::Sequence => format!(
                "record/{app}/{stream}/picture/{}-{}/{stream}-{unix_timestamp}.jpg",
                self.push_start_ms, self.session_id
            ),
            KeyMode::Overwrite => format!("record/{app}/{stream}/picture/{stream}.jpg"),
        }
    }

    /// The session folder, ending in `/`: the sequence keys' folder, or in overwrite mode
    /// (which has no folder per session) `record/{App}/{StreamName}/picture/sessions/{push_start_ms}-{session_id}/`.
    pub fn folder(&self, mode: KeyMode) -> String {
        let (app, stream) = (&self.app, &self.stream);
        let session = format!("{}-{}", self.push_start_ms, self.session_id);
        match mode {
            KeyMode::Sequence => format!("record/{app}/{stream}/picture/{session}/"),
            KeyMode::Overwrite => format!("record/{app}/{stream}/picture/sessions/{session}/"),
        }
    }

    /// Task id of attempt `seq`: `{App}/{StreamName}/{push_start_ms}-{session_id}/{seq}`.
    pub fn taskid(&self, seq: u32) -> String {
        format!(
            "{}/{}/{}-{}/{seq}",
            self.app, self.stream, self.push_start_ms, self.session_id
        )
    }

    /// `UnixTimestamp = floor((push_start_ms + clock) / 1000)`, seconds.
    pub fn unix_timestamp(&self, clock_ms: u64) -> u64 {
        self.push_start_ms.saturating_add(clock_ms) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names() -> SessionNames {
        SessionNames {
            app: Name::parse("app", "live").unwrap(),
            stream: Name::parse("stream", "cam-1").unwrap(),
            push_start_ms: 1_700_000_000_123,
            session_id: 42,
        }
    }

    #[test]
    fn keys_follow_the_design() {
        let n = names();
        let ts = n.unix_timestamp(12_000);
        assert_eq!(ts, 1_700_000_012);
        assert_eq!(
            n.key(KeyMode::Sequence, ts),
            "record/live/cam-1/picture/1700000000123-42/cam-1-1700000012.jpg"
        );
        assert_eq!(
            n.key(KeyMode::Overwrite, ts),
            "record/live/cam-1/picture/cam-1.jpg"
        );
        assert_eq!(n.taskid(3), "live/cam-1/1700000000123-42/3");
    }

    #[test]
    fn unix_timestamp_floors() {
        let n = names();
        assert_eq!(n.unix_timestamp(876), 1_700_000_000);
        assert_eq!(n.unix_timestamp(877), 1_700_000_001);
    }

    #[test]
    fn refuses_path_escapes() {
        for bad in [
            "", ".", "..", "a/b", "../x", "%2e%2e", "a\0b", "a b", "é", "a\\b", "x?key=1",
        ] {
            assert!(Name::parse("stream", bad).is_err(), "{bad:?} accepted");
        }
        assert!(Name::parse("stream", &"a".repeat(129)).is_err());
        assert!(Name::parse("stream", &"a".repeat(128)).is_ok());
        for good in ["a", "...", "cam_1.hd-2", "A9"] {
            assert!(Name::parse("stream", good).is_ok(), "{good:?} refused");
        }
    }

    proptest! {
        #[test]
        fn accepted_names_never_leave_their_prefix(s in "\\PC{0,140}") {
            if let Ok(name) = Name::parse("stream", &s) {
                prop_assert!(!name.as_str().contains('/'));
                prop_assert!(name.as_str() != "." && name.as_str() != "..");
                let n = SessionNames { stream: name, ..names() };
                let key = n.key(KeyMode::Sequence, 1);
                prop_assert!(key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
            }
        }
    }
}
