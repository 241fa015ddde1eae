//! The one failure type the guest reports: a stable code (the callback's `code`/`errnum`) plus a
//! message saying what was wrong and the value seen.

use std::fmt;

/// Stable error codes of the callback contract (DESIGN.md, "Callback").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The picture could not be decoded (damaged or truncated bitstream).
    DecodeFailed,
    /// Valid H.264 that livesnap does not handle (e.g. 4:4:4 chroma, a non-AVC codec).
    UnsupportedStream,
    /// The object store refused or could not be reached.
    UploadFailed,
    /// The render ran out of its time budget.
    Timeout,
    /// A configured limit was hit (picture size, tag size, memory).
    LimitExceeded,
}

impl ErrorCode {
    /// The `code` string of the callback.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::DecodeFailed => "DecodeFailed",
            ErrorCode::UnsupportedStream => "UnsupportedStream",
            ErrorCode::UploadFailed => "UploadFailed",
            ErrorCode::Timeout => "Timeout",
            ErrorCode::LimitExceeded => "LimitExceeded",
        }
    }

    /// The `errnum` of the callback: stable per code, never 0 (0 means success).
    pub fn errnum(self) -> u32 {
        match self {
            ErrorCode::DecodeFailed => 1001,
            ErrorCode::UnsupportedStream => 1002,
            ErrorCode::UploadFailed => 1003,
            ErrorCode::Timeout => 1004,
            ErrorCode::LimitExceeded => 1005,
        }
    }
}

/// A failure with its code and a lowercase message naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind of failure; decides the callback's `code` and `errnum`.
    pub code: ErrorCode,
    /// What failed and why, e.g. "sps width 9000 px exceeds 8192 px".
    pub message: String,
}

impl Failure {
    /// A failure of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for [`ErrorCode::DecodeFailed`].
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::DecodeFailed, message)
    }

    /// Shorthand for [`ErrorCode::UnsupportedStream`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedStream, message)
    }

    /// Shorthand for [`ErrorCode::LimitExceeded`].
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitExceeded, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Failure {}
