//! livesnap-edge: the livesnap capture logic inside a `wasi:http/proxy` component, for edge hosts
//! (`wasmtime serve`, and hosts sharing its model: Fastly Compute, Spin, wasmCloud).
//!
//! `GET /{app}/{stream}.flv` fetches `{LIVESNAP_ORIGIN}/{app}/{stream}.flv` and streams the body
//! to the client byte for byte while feeding its tags to a capture session (the guest library's
//! [`livesnap_guest::capture::Session`]); due I-frames are rendered here, PUT to an S3-compatible
//! store (SigV4) and announced with the signed callback JSON `livesnap serve` sends.
//!
//! The I/O is in `proxy` (wasm32 only, over WASI 0.2 HTTP, clocks, random and environment);
//! everything it decides with — settings, request paths, SigV4, signatures — is pure and tested
//! natively. A proxy has no durable spool: callbacks are retried a few times within the request's
//! life, then dropped with a log line.

pub mod settings;
pub mod sigv4;

#[cfg(target_arch = "wasm32")]
#[allow(
    unsafe_code,
    reason = "wasip2's export! expands to the canonical ABI's unsafe exports"
)]
mod proxy;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length (RFC 2104 §2)"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The callback's `X-Livesnap-Signature` value for `body` sent at `timestamp_s`:
/// `v1=hex(HMAC-SHA256(secret, "{timestamp_s}.{body}"))`, as `livesnap serve` signs.
pub fn callback_signature(secret: &[u8], timestamp_s: u64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp_s}.").into_bytes();
    signed.extend_from_slice(body);
    format!("v1={}", hex::encode(hmac_sha256(secret, &signed)))
}

/// `(app, stream)` of a proxied path `/{app}/{stream}.flv` (a query is ignored), checked like a
/// publish: `[A-Za-z0-9_.-]{1,128}`, not `.`/`..`. The error is the 400 answer's text.
pub fn parse_path(path_with_query: &str) -> Result<(String, String), String> {
    let path = path_with_query.split('?').next().unwrap_or_default();
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} must be /{{app}}/{{stream}}.flv"));
    };
    let Some((app, file)) = rest.split_once('/') else {
        return Err(format!("path {path:?} must be /{{app}}/{{stream}}.flv"));
    };
    let Some(stream) = file.strip_suffix(".flv") else {
        return Err(format!("path {path:?} must end in .flv"));
    };
    for (what, value) in [("app", app), ("stream", stream)] {
        livesnap_guest::naming::Name::parse(what, value).map_err(|f| f.message)?;
    }
    Ok((app.to_owned(), stream.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_signature_matches_the_serve_vector() {
        // The vector of host/src/callback/sign.rs: the same receiver verifies both.
        let body = r#"{"status":3,"taskid":"live/cam/1700000000000-7/1"}"#;
        assert_eq!(
            callback_signature(b"whsec_test", 1_700_000_000, body.as_bytes()),
            "v1=a8c2ba6cbed70c452b1749dc8c092b33bac94aa1abcea069b091e8a3929c026a"
        );
    }

    #[test]
    fn paths_name_an_app_and_a_stream_or_are_refused() {
        assert_eq!(
            parse_path("/live/cam-1.flv?token=x"),
            Ok(("live".into(), "cam-1".into()))
        );
        for bad in [
            "/live/cam1",
            "/live.flv",
            "/../x.flv",
            "/live/../x.flv",
            "/live/a%2Fb.flv",
            "live/cam.flv",
            "/live/.flv",
            "/live/sub/cam.flv",
        ] {
            assert!(parse_path(bad).is_err(), "{bad} accepted");
        }
    }
}
