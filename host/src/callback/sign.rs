//! Callback signatures (DESIGN.md "Callback"). Each POST carries
//!
//! ```text
//! X-Livesnap-Timestamp: <unix seconds when this attempt was sent>
//! X-Livesnap-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//! ```
//!
//! The timestamp is the send time of each attempt, not the capture time, so a receiver can reject
//! stale (replayed) requests however long a callback waited in the spool.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header carrying the Unix time (seconds) the request was signed.
pub const TIMESTAMP_HEADER: &str = "X-Livesnap-Timestamp";
/// Header carrying `v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Livesnap-Signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length (RFC 2104 §2)"),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Livesnap-Signature` value for `body` sent at `timestamp_s`: `v1=<64 hex digits>`.
pub fn signature(secret: &[u8], timestamp_s: u64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp_s.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1={}", hex::encode(tag))
}

/// Why [`verify`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is not a Unix time in seconds.
    #[error("bad timestamp header {0:?}")]
    BadTimestamp(String),
    /// The timestamp is further than the tolerance from now.
    #[error("stale timestamp: {age_s} s away from now, more than {tolerance_s} s")]
    Stale {
        /// |now - timestamp|, seconds.
        age_s: u64,
        /// The tolerance used.
        tolerance_s: u64,
    },
    /// No `v1=` signature in the header, or not hex.
    #[error("bad signature header {0:?}")]
    BadSignature(String),
    /// The signature does not match the body.
    #[error("signature mismatch")]
    Mismatch,
}

/// Check a received callback the way a receiver should: the timestamp is within `tolerance_s` of
/// `now_s` and the signature matches `body` (compared in constant time). Several comma-separated
/// `v1=` values are accepted, any one matching (room for secret rotation).
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_s: u64,
    tolerance_s: u64,
) -> Result<(), VerifyError> {
    let timestamp_s: u64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp_header.to_owned()))?;
    let age_s = now_s.abs_diff(timestamp_s);
    if age_s > tolerance_s {
        return Err(VerifyError::Stale { age_s, tolerance_s });
    }
    let mut any = false;
    for part in signature_header.split(',').map(str::trim) {
        let Some(hex_tag) = part.strip_prefix("v1=") else {
            continue;
        };
        let tag = hex::decode(hex_tag)
            .map_err(|_| VerifyError::BadSignature(signature_header.to_owned()))?;
        any = true;
        if mac(secret, timestamp_header.trim(), body)
            .verify_slice(&tag)
            .is_ok()
        {
            return Ok(());
        }
    }
    if any {
        Err(VerifyError::Mismatch)
    } else {
        Err(VerifyError::BadSignature(signature_header.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"status":3,"taskid":"live/cam/1700000000000-7/1"}"#;

    #[test]
    fn signature_matches_a_fixed_vector() {
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec_test",
        //   b"1700000000." + BODY, hashlib.sha256).hexdigest())'
        assert_eq!(
            signature(b"whsec_test", 1_700_000_000, BODY.as_bytes()),
            "v1=a8c2ba6cbed70c452b1749dc8c092b33bac94aa1abcea069b091e8a3929c026a"
        );
    }

    #[test]
    fn verify_accepts_fresh_and_refuses_stale_tampered_or_malformed() {
        let sig = signature(b"s", 1000, BODY.as_bytes());
        assert_eq!(
            verify(b"s", "1000", &sig, BODY.as_bytes(), 1100, 300),
            Ok(())
        );
        assert_eq!(
            verify(
                b"s",
                "1000",
                &format!("v1=00, {sig}"),
                BODY.as_bytes(),
                1000,
                300
            ),
            Ok(())
        );
        assert_eq!(
            verify(b"s", "1000", &sig, BODY.as_bytes(), 1301, 300),
            Err(VerifyError::Stale {
                age_s: 301,
                tolerance_s: 300
            })
        );
        assert_eq!(
            verify(b"s", "1001", &sig, BODY.as_bytes(), 1000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"other", "1000", &sig, BODY.as_bytes(), 1000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"s", "1000", &sig, b"{}", 1000, 300),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify(b"s", "soon", &sig, BODY.as_bytes(), 1000, 300),
            Err(VerifyError::BadTimestamp(_))
        ));
        assert!(matches!(
            verify(b"s", "1000", "sha256=abc", BODY.as_bytes(), 1000, 300),
            Err(VerifyError::BadSignature(_))
        ));
        assert!(matches!(
            verify(b"s", "1000", "v1=zz", BODY.as_bytes(), 1000, 300),
            Err(VerifyError::BadSignature(_))
        ));
    }
}
