//! The callback body (DESIGN.md "Callback"): one flat JSON object per capture attempt, fields in
//! the contract's order, optional fields omitted when not configured.

use crate::error::Failure;
use serde::Serialize;

/// `status` of a stored picture.
pub const STATUS_OK: u32 = 3;
/// `status` of a failed attempt.
pub const STATUS_FAILED: u32 = 4;

/// One callback. Field order is the wire order (serde keeps declaration order).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Callback {
    /// 3 = success, 4 = failure.
    pub status: u32,
    /// `{App}/{StreamName}/{push_start_ms}-{session_id}/{seq}`.
    pub taskid: String,
    /// Short human sentence.
    pub desc: String,
    /// The object key (also on failure: where it would have gone).
    pub keys: String,
    /// "OK" or a stable error code.
    pub code: &'static str,
    /// Always "LiveSnapShotCallBack".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// 0 on success, else the code's number.
    pub errnum: u32,
    /// "" on success, else what failed and why.
    pub errmsg: String,
    /// The tenant.
    pub uniqname: String,
    /// StreamName.
    pub stream_name: String,
    /// UnixTimestamp, seconds.
    pub timestamp: u64,
    /// Bucket name.
    pub bucket: String,
    /// Stored JPEG width (0 when nothing was decoded).
    pub width: u32,
    /// Stored JPEG height (0 when nothing was decoded).
    pub height: u32,
    /// Only when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortside: Option<u32>,
    /// Only when configured (1..=10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// The key when stored, "" otherwise.
    pub dstpath: String,
    /// Only on failure, when the host serves the latest picture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alterurl: Option<String>,
}

/// The fields a callback shares with its shot, whatever the outcome.
#[derive(Debug, Clone)]
pub struct CallbackContext<'a> {
    /// Task id.
    pub taskid: String,
    /// Object key.
    pub key: &'a str,
    /// Tenant.
    pub uniqname: &'a str,
    /// StreamName.
    pub stream_name: &'a str,
    /// UnixTimestamp.
    pub timestamp: u64,
    /// Bucket.
    pub bucket: &'a str,
    /// Configured shortside.
    pub shortside: Option<u32>,
    /// Configured quality step.
    pub quality: Option<u8>,
    /// Where the host serves the latest picture, if it does.
    pub alterurl: Option<&'a str>,
}

impl Callback {
    /// A status-3 callback for a picture of `width`×`height` stored at the context's key.
    pub fn stored(ctx: CallbackContext<'_>, width: u32, height: u32) -> Callback {
        Callback {
            status: STATUS_OK,
            desc: format!("snapshot stored ({width}x{height})"),
            code: "OK",
            errnum: 0,
            errmsg: String::new(),
            width,
            height,
            dstpath: ctx.key.to_owned(),
            alterurl: None,
            ..Self::common(ctx)
        }
    }

    /// A status-4 callback for `failure`.
    pub fn failed(ctx: CallbackContext<'_>, failure: &Failure) -> Callback {
        let alterurl = ctx.alterurl.map(str::to_owned);
        Callback {
            status: STATUS_FAILED,
            desc: format!("snapshot failed: {}", describe(failure)),
            code: failure.code.as_str(),
            errnum: failure.code.errnum(),
            errmsg: failure.message.clone(),
            width: 0,
            height: 0,
            dstpath: String::new(),
            alterurl,
            ..Self::common(ctx)
        }
    }

    fn common(ctx: CallbackContext<'_>) -> Callback {
        Callback {
            status: 0,
            taskid: ctx.taskid,
            desc: String::new(),
            keys: ctx.key.to_owned(),
            code: "",
            kind: "LiveSnapShotCallBack",
            errnum: 0,
            errmsg: String::new(),
            uniqname: ctx.uniqname.to_owned(),
            stream_name: ctx.stream_name.to_owned(),
            timestamp: ctx.timestamp,
            bucket: ctx.bucket.to_owned(),
            width: 0,
            height: 0,
            shortside: ctx.shortside,
            quality: ctx.quality,
            dstpath: String::new(),
            alterurl: None,
        }
    }

    /// The JSON body, compact, fields in contract order.
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn describe(failure: &Failure) -> &'static str {
    use crate::error::ErrorCode::*;
    match failure.code {
        DecodeFailed => "the I-frame could not be decoded",
        UnsupportedStream => "the stream uses a format livesnap does not support",
        UploadFailed => "the picture could not be stored",
        Timeout => "rendering the picture took too long",
        LimitExceeded => "the stream exceeds a configured limit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn ctx(
        shortside: Option<u32>,
        quality: Option<u8>,
        alterurl: Option<&str>,
    ) -> CallbackContext<'_> {
        CallbackContext {
            taskid: "live/cam/1000-7/1".into(),
            key: "record/live/cam/picture/1000-7/cam-1.jpg",
            uniqname: "acme",
            stream_name: "cam",
            timestamp: 1,
            bucket: "shots",
            shortside,
            quality,
            alterurl,
        }
    }

    #[test]
    fn success_body_has_exact_field_order() {
        let body = Callback::stored(ctx(None, None, Some("http://x/latest")), 640, 360).to_json();
        assert_eq!(
            body,
            r#"{"status":3,"taskid":"live/cam/1000-7/1","desc":"snapshot stored (640x360)","keys":"record/live/cam/picture/1000-7/cam-1.jpg","code":"OK","type":"LiveSnapShotCallBack","errnum":0,"errmsg":"","uniqname":"acme","stream_name":"cam","timestamp":1,"bucket":"shots","width":640,"height":360,"dstpath":"record/live/cam/picture/1000-7/cam-1.jpg"}"#
        );
    }

    #[test]
    fn failure_body_sets_code_errnum_and_alterurl() {
        let f = Failure::decode("slice data truncated");
        let body = Callback::failed(ctx(Some(360), Some(8), Some("http://x/latest")), &f).to_json();
        assert_eq!(
            body,
            r#"{"status":4,"taskid":"live/cam/1000-7/1","desc":"snapshot failed: the I-frame could not be decoded","keys":"record/live/cam/picture/1000-7/cam-1.jpg","code":"DecodeFailed","type":"LiveSnapShotCallBack","errnum":1001,"errmsg":"slice data truncated","uniqname":"acme","stream_name":"cam","timestamp":1,"bucket":"shots","width":0,"height":0,"shortside":360,"quality":8,"dstpath":"","alterurl":"http://x/latest"}"#
        );
        let body = Callback::failed(
            ctx(None, None, None),
            &Failure::new(ErrorCode::UploadFailed, "x"),
        )
        .to_json();
        assert!(!body.contains("alterurl") && body.contains(r#""errnum":1003"#));
    }
}
