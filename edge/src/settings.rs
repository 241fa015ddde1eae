//! The proxy's settings, read from the environment (`wasmtime serve --env NAME=VALUE`), exactly
//! these names:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LIVESNAP_ORIGIN` | required | origin base URL; `GET /{app}/{stream}.flv` fetches `{origin}/{app}/{stream}.flv` |
//! | `LIVESNAP_S3_ENDPOINT` | required | S3-compatible endpoint; objects are PUT path-style to `{endpoint}/{bucket}/{key}` |
//! | `LIVESNAP_S3_BUCKET` | required | bucket, `[A-Za-z0-9_.-]{1,128}` |
//! | `LIVESNAP_S3_REGION` | `us-east-1` | SigV4 region |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` | none | SigV4 credentials; without both, PUTs are unsigned |
//! | `LIVESNAP_CALLBACK_URL` | none | callbacks are POSTed here; without it none are sent |
//! | `LIVESNAP_CALLBACK_SECRET` | none | signs callbacks (`X-Livesnap-Signature`) |
//! | `LIVESNAP_INTERVAL_S` | 20 | capture interval, 1..=3600 s |
//! | `LIVESNAP_UNIQNAME` | `edge` | tenant name echoed in callbacks |
//! | `LIVESNAP_OVERWRITE` | `false` | `true`: one object per stream, overwritten |
//! | `LIVESNAP_SHORTSIDE` | none | scale down so the short side is N px |
//! | `LIVESNAP_QUALITY` | none | JPEG quality step 1..=10 (JPEG 10×N; default JPEG 80) |

use livesnap_guest::capture::{MAX_INTERVAL_S, Settings};
use livesnap_guest::naming::{KeyMode, Name};

/// An `http://` or `https://` URL split the way WASI HTTP requests want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `true` for `https`.
    pub https: bool,
    /// `host[:port]`.
    pub authority: String,
    /// Path prefix without a trailing `/` (`""` for the root).
    pub path: String,
}

impl BaseUrl {
    /// Parse `value` of the variable `name`: scheme, authority, optional path; no query, no
    /// fragment, no user info.
    pub fn parse(name: &str, value: &str) -> Result<BaseUrl, String> {
        let (https, rest) = if let Some(rest) = value.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = value.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(format!(
                "{name} {value:?} must start with http:// or https://"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let bad_authority = authority.is_empty()
            || !authority
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if bad_authority {
            return Err(format!("{name} {value:?} has no valid host[:port]"));
        }
        if path.contains(['?', '#']) || path.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(format!(
                "{name} {value:?} must be a base URL without query or fragment"
            ));
        }
        Ok(BaseUrl {
            https,
            authority: authority.to_owned(),
            path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The URL as text.
    pub fn to_url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}{path}", self.authority, self.path)
    }
}

/// S3 target and credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Endpoint (path-style requests).
    pub endpoint: BaseUrl,
    /// Bucket.
    pub bucket: String,
    /// Region for SigV4.
    pub region: String,
    /// `(access key id, secret access key)`; `None`: unsigned requests.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.credentials.as_ref().map(|(id, _)| id.as_str()),
            )
            .finish_non_exhaustive()
    }
}

/// Where callbacks go.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackSettings {
    /// Receiver URL (the full URL, path and query included).
    pub url: BaseUrl,
    /// Path and query to POST to (from the URL).
    pub path_with_query: String,
    /// Signing secret.
    pub secret: Option<String>,
}

impl std::fmt::Debug for CallbackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSettings")
            .field("url", &self.url)
            .field("path_with_query", &self.path_with_query)
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

/// Everything the proxy needs, checked.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Origin base URL.
    pub origin: BaseUrl,
    /// Object store.
    pub s3: S3Settings,
    /// Callback receiver, if any.
    pub callback: Option<CallbackSettings>,
    /// Capture settings for each proxied stream's session.
    pub capture: Settings,
}

/// Why the settings are unusable; the proxy answers with it (502 for a missing origin, 500
/// otherwise) before contacting anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsError {
    /// `LIVESNAP_ORIGIN` is not set.
    NoOrigin,
    /// Another setting is missing or invalid.
    Invalid(String),
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingsError::NoOrigin => f.write_str(
                "no origin configured: set LIVESNAP_ORIGIN (e.g. --env LIVESNAP_ORIGIN=http://origin:8080)",
            ),
            SettingsError::Invalid(why) => write!(f, "invalid proxy settings: {why}"),
        }
    }
}

impl EdgeSettings {
    /// Read the settings through `var` (the environment in the component; a map in tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<EdgeSettings, SettingsError> {
        let invalid = SettingsError::Invalid;
        let origin = var("LIVESNAP_ORIGIN")
            .filter(|v| !v.is_empty())
            .ok_or(SettingsError::NoOrigin)?;
        let origin = BaseUrl::parse("LIVESNAP_ORIGIN", &origin).map_err(invalid)?;
        let required = |name: &str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SettingsError::Invalid(format!("{name} is not set")))
        };
        let endpoint = BaseUrl::parse("LIVESNAP_S3_ENDPOINT", &required("LIVESNAP_S3_ENDPOINT")?)
            .map_err(invalid)?;
        let bucket = required("LIVESNAP_S3_BUCKET")?;
        Name::parse("bucket", &bucket)
            .map_err(|f| SettingsError::Invalid(format!("LIVESNAP_S3_BUCKET: {}", f.message)))?;
        let region = var("LIVESNAP_S3_REGION")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        if !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(format!(
                "LIVESNAP_S3_REGION {region:?} is not a region name"
            )));
        }
        let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Some((id, secret)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither".into(),
                ));
            }
        };
        let callback = match var("LIVESNAP_CALLBACK_URL").filter(|v| !v.is_empty()) {
            None => None,
            Some(url) => {
                let (base, query) = match url.split_once('?') {
                    Some((base, query)) => (base.to_owned(), Some(query.to_owned())),
                    None => (url.clone(), None),
                };
                let parsed = BaseUrl::parse("LIVESNAP_CALLBACK_URL", &base).map_err(invalid)?;
                let mut path_with_query = if parsed.path.is_empty() {
                    "/".to_owned()
                } else {
                    parsed.path.clone()
                };
                if base.ends_with('/') && !path_with_query.ends_with('/') {
                    path_with_query.push('/');
                }
                if let Some(q) = query {
                    path_with_query = format!("{path_with_query}?{q}");
                }
                Some(CallbackSettings {
                    url: BaseUrl {
                        path: String::new(),
                        ..parsed
                    },
                    path_with_query,
                    secret: var("LIVESNAP_CALLBACK_SECRET").filter(|v| !v.is_empty()),
                })
            }
        };
        let interval_s = match var("LIVESNAP_INTERVAL_S") {
            None => 20,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_INTERVAL_S).contains(n))
                .ok_or_else(|| {
                    invalid(format!(
                        "LIVESNAP_INTERVAL_S {v:?} must be a whole number of seconds, 1..={MAX_INTERVAL_S}"
                    ))
                })?,
        };
        let overwrite = match var("LIVESNAP_OVERWRITE").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "LIVESNAP_OVERWRITE {other:?} must be true or false"
                )));
            }
        };
        let shortside_px = match var("LIVESNAP_SHORTSIDE") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=8192).contains(n))
                    .ok_or_else(|| {
                        invalid(format!("LIVESNAP_SHORTSIDE {v:?} must be 1..=8192 px"))
                    })?,
            ),
        };
        let quality = match var("LIVESNAP_QUALITY") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|n| (1..=10).contains(n))
                    .ok_or_else(|| invalid(format!("LIVESNAP_QUALITY {v:?} must be 1..=10")))?,
            ),
        };
        let uniqname = var("LIVESNAP_UNIQNAME")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "edge".to_owned());
        Ok(EdgeSettings {
            origin,
            s3: S3Settings {
                endpoint,
                bucket: bucket.clone(),
                region,
                credentials,
            },
            callback,
            capture: Settings {
                interval_s,
                mode: if overwrite {
                    KeyMode::Overwrite
                } else {
                    KeyMode::Sequence
                },
                shortside_px,
                quality,
                bucket,
                uniqname,
                alterurl: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<EdgeSettings, SettingsError> {
        let mut env: HashMap<String, String> = [
            ("LIVESNAP_ORIGIN", "http://127.0.0.1:8081/origin/"),
            ("LIVESNAP_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("LIVESNAP_S3_BUCKET", "shots"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            if v.is_empty() {
                env.remove(*k);
            } else {
                env.insert(k.to_string(), v.to_string());
            }
        }
        EdgeSettings::from_vars(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_documented_table() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s.origin.to_url("/live/a.flv"),
            "http://127.0.0.1:8081/origin/live/a.flv"
        );
        assert_eq!(s.s3.region, "us-east-1");
        assert_eq!(s.s3.credentials, None);
        assert!(s.callback.is_none());
        assert_eq!(s.capture.interval_s, 20);
        assert_eq!(s.capture.mode, KeyMode::Sequence);
        assert_eq!(s.capture.uniqname, "edge");
        assert_eq!((s.capture.shortside_px, s.capture.quality), (None, None));
    }

    #[test]
    fn every_setting_is_read_and_checked() {
        let s = settings(&[
            ("LIVESNAP_S3_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("LIVESNAP_CALLBACK_URL", "http://127.0.0.1:7000/hook?x=1"),
            ("LIVESNAP_CALLBACK_SECRET", "whsec"),
            ("LIVESNAP_INTERVAL_S", "5"),
            ("LIVESNAP_UNIQNAME", "cdn-7"),
            ("LIVESNAP_OVERWRITE", "true"),
            ("LIVESNAP_SHORTSIDE", "360"),
            ("LIVESNAP_QUALITY", "7"),
        ])
        .unwrap();
        assert_eq!(s.s3.region, "eu-west-1");
        assert_eq!(s.s3.credentials, Some(("AKID".into(), "SECRET".into())));
        let cb = s.callback.unwrap();
        assert_eq!(cb.url.authority, "127.0.0.1:7000");
        assert_eq!(cb.path_with_query, "/hook?x=1");
        assert_eq!(cb.secret.as_deref(), Some("whsec"));
        assert_eq!(s.capture.interval_s, 5);
        assert_eq!(s.capture.uniqname, "cdn-7");
        assert_eq!(s.capture.mode, KeyMode::Overwrite);
        assert_eq!(
            (s.capture.shortside_px, s.capture.quality),
            (Some(360), Some(7))
        );
        assert!(!format!("{:?}", s.s3).contains("SECRET"), "secret in Debug");
    }

    #[test]
    fn a_missing_origin_and_bad_values_are_refused_by_name() {
        assert_eq!(
            settings(&[("LIVESNAP_ORIGIN", "")]).unwrap_err(),
            SettingsError::NoOrigin
        );
        for (name, value) in [
            ("LIVESNAP_ORIGIN", "ftp://x"),
            ("LIVESNAP_ORIGIN", "http://"),
            ("LIVESNAP_S3_ENDPOINT", ""),
            ("LIVESNAP_S3_BUCKET", "../x"),
            ("LIVESNAP_S3_REGION", "us east"),
            ("AWS_ACCESS_KEY_ID", "only-the-id"),
            ("LIVESNAP_CALLBACK_URL", "mailto:x"),
            ("LIVESNAP_INTERVAL_S", "0"),
            ("LIVESNAP_INTERVAL_S", "3601"),
            ("LIVESNAP_INTERVAL_S", "1.5"),
            ("LIVESNAP_OVERWRITE", "yes"),
            ("LIVESNAP_SHORTSIDE", "0"),
            ("LIVESNAP_QUALITY", "11"),
        ] {
            match settings(&[(name, value)]) {
                Err(SettingsError::Invalid(why)) => {
                    assert!(why.contains(name), "{name}={value:?}: {why}");
                }
                other => panic!("{name}={value:?} gave {other:?}"),
            }
        }
    }
}
