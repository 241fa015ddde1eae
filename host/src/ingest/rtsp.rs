//! RTSP cameras: the RTSP client of Moonfire NVR (`retina`) speaks RTSP — DESCRIBE, SETUP, PLAY,
//! Basic and Digest authentication, keep-alives within the server's session timeout, RTP over
//! TCP (interleaved) or UDP — and hands over raw RTP packets. [`super::rtp`] joins them into
//! access units of NAL units (framing only), and they go to the capture session through the
//! component's container-neutral entry (`push-frame`) with the parameter sets of the SDP. No
//! NAL unit is parsed here: parameter sets, slice types and the decode are the component's.
//!
//! The clock: RTP timestamps (90 kHz, extended past their 32-bit wrap by retina) become
//! milliseconds. RTP carries presentation times only; a stream with B-frames sends them out of
//! decode order, so the decode timestamp given to the session is their running maximum (an
//! I- or P-frame's own time), and a jump back of more than [`DISCONTINUITY_MS`] starts again
//! from the new value (the session's monotone rule then carries the clock on).

use super::rtp::{AccessUnit, Codec, Depacketizer};
use super::{Origin, Publish, Sink, StreamSink};
use crate::config::{PullConfig, RtpTransport, SourceUrl};
use crate::runtime::{Codec as WitCodec, CodedFrame};
use base64::Engine;
use futures::StreamExt;
use retina::client::{
    Credentials, PacketItem, PlayOptions, Session, SessionOptions, SetupOptions, Transport,
};
use std::collections::VecDeque;

/// A backward timestamp jump larger than this is a discontinuity, not B-frame reordering.
pub const DISCONTINUITY_MS: i64 = 10_000;

/// A camera whose video is playing.
pub struct Camera {
    session: retina::client::Session<retina::client::Playing>,
    stream_index: usize,
    codec: Codec,
    clock_rate: i64,
    /// SPS/PPS (VPS/SPS/PPS) from the SDP, handed out with the first frame (the session keeps
    /// out-of-band sets until they change: contract §6a), then empty.
    parameter_sets: Vec<Vec<u8>>,
    depacketizer: Depacketizer,
    /// Running maximum of the presentation times, ms: the decode timestamp.
    dts_ms: Option<i64>,
    ready: VecDeque<CodedFrame>,
    /// The codec and track, for logs: e.g. "h.264 video track 0 of 2".
    pub description: String,
}

impl Camera {
    /// Connect to `url`, pick its first H.264 or H.265 video track and PLAY it over
    /// `transport`. Errors say why, without the password: 401 (wrong credentials), 404, no
    /// usable video track (MJPEG, audio only).
    pub async fn connect(
        url: &SourceUrl,
        transport: RtpTransport,
        max_frame_bytes: usize,
    ) -> anyhow::Result<Camera> {
        let creds = url
            .credentials()
            .map(|(username, password)| Credentials { username, password });
        let options = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("livesnap/{}", env!("CARGO_PKG_VERSION")));
        let mut session = Session::describe(url.without_credentials(), options)
            .await
            .map_err(|e| anyhow::anyhow!("DESCRIBE {url}: {}", scrub(&e.to_string(), url)))?;
        let tracks: Vec<String> = session
            .streams()
            .iter()
            .map(|s| format!("{} {}", s.media(), s.encoding_name()))
            .collect();
        let (stream_index, codec) = session
            .streams()
            .iter()
            .enumerate()
            .find_map(|(i, s)| {
                if s.media() != "video" {
                    return None;
                }
                match s.encoding_name().to_ascii_lowercase().as_str() {
                    "h264" => Some((i, Codec::H264)),
                    "h265" => Some((i, Codec::H265)),
                    _ => None,
                }
            })
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{url} has no h.264 or h.265 video track (it offers: {}): livesnap \
                     captures h.264 and h.265 cameras",
                    if tracks.is_empty() {
                        "nothing".to_owned()
                    } else {
                        tracks.join(", ")
                    }
                )
            })?;
        let stream = &session.streams()[stream_index];
        let clock_rate = i64::from(stream.clock_rate_hz().max(1));
        let payload_type = stream.rtp_payload_type();
        let parameter_sets = sdp_parameter_sets(session.sdp(), stream_index, payload_type, codec);
        let description = format!(
            "{} video track {stream_index} of {} ({} sdp parameter sets)",
            match codec {
                Codec::H264 => "h.264",
                Codec::H265 => "h.265",
            },
            tracks.len(),
            parameter_sets.len()
        );
        let transport = match transport {
            RtpTransport::Tcp => Transport::Tcp(Default::default()),
            RtpTransport::Udp => Transport::Udp(Default::default()),
        };
        session
            .setup(stream_index, SetupOptions::default().transport(transport))
            .await
            .map_err(|e| anyhow::anyhow!("SETUP {url}: {}", scrub(&e.to_string(), url)))?;
        let session = session
            .play(PlayOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("PLAY {url}: {}", scrub(&e.to_string(), url)))?;
        Ok(Camera {
            session,
            stream_index,
            codec,
            clock_rate,
            parameter_sets,
            depacketizer: Depacketizer::new(codec, max_frame_bytes),
            dts_ms: None,
            ready: VecDeque::new(),
            description,
        })
    }

    /// The next video frame; `None` when the camera ends the stream.
    pub async fn next_frame(&mut self) -> anyhow::Result<Option<CodedFrame>> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            let Some(item) = self.session.next().await else {
                let last = self.depacketizer.finish();
                self.queue(last);
                return Ok(self.ready.pop_front());
            };
            let item = item.map_err(|e| {
                let text = e.to_string();
                anyhow::anyhow!("rtsp stream: {}", text.lines().next().unwrap_or_default())
            })?;
            match item {
                PacketItem::Rtp(packet) if packet.stream_id() == self.stream_index => {
                    let units = self.depacketizer.push(
                        packet.timestamp().elapsed(),
                        packet.mark(),
                        packet.loss(),
                        packet.payload(),
                    );
                    for au in units {
                        self.queue(Some(au));
                    }
                }
                _ => {}
            }
        }
    }

    /// Payload structures the camera sent that livesnap does not take (interleaved-mode
    /// STAP-B/MTAP/FU-B, PACI), with counts.
    pub fn unsupported_payloads(&self) -> &[(u8, u64)] {
        &self.depacketizer.unsupported
    }

    fn queue(&mut self, au: Option<AccessUnit>) {
        let Some(au) = au else {
            return;
        };
        let pts_ms = (au.timestamp * 1000).div_euclid(self.clock_rate);
        let dts_ms = match self.dts_ms {
            Some(last) if pts_ms >= last - DISCONTINUITY_MS => last.max(pts_ms),
            _ => pts_ms,
        };
        self.dts_ms = Some(dts_ms);
        self.ready.push_back(CodedFrame {
            codec: match self.codec {
                Codec::H264 => WitCodec::Avc,
                Codec::H265 => WitCodec::Hevc,
            },
            // The session clock's input is 32-bit milliseconds that wrap, as FLV's.
            dts_ms: dts_ms.rem_euclid(1 << 32) as u32,
            pts_ms,
            parameter_sets: std::mem::take(&mut self.parameter_sets),
            nal_units: au.nal_units,
            damaged: au.damaged,
        });
    }
}

/// No RTP for this long and the camera is dropped (then reconnected).
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Pull the camera of `pull` into `sink` until `shutdown`: connect, PLAY, push every frame
/// into a session of `pull.app`/`pull.stream`, and reconnect with the HTTP-FLV pulls' backoff.
/// Each (re)connect is a new session. A cause of failure (401, 404, no usable video track,
/// the camera unreachable) is logged once at `warn` while it repeats, then at `debug`.
pub async fn run<S: Sink>(
    sink: std::sync::Arc<S>,
    pull: PullConfig,
    shutdown: tokio_util::sync::CancellationToken,
) {
    super::pull::reconnecting(&pull.url, "camera pull", &shutdown, || {
        pull_once(&*sink, &pull, &shutdown)
    })
    .await;
}

async fn pull_once<S: Sink>(
    sink: &S,
    pull: &PullConfig,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let transport = pull.transport.unwrap_or_default();
    let mut camera = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        camera = tokio::time::timeout(
            std::time::Duration::from_secs(15),
            Camera::connect(&pull.url, transport, sink.max_tag_bytes()),
        ) => camera.map_err(|_| anyhow::anyhow!("{}: no answer to DESCRIBE/SETUP/PLAY within 15 s", pull.url))??,
    };
    let mut session = sink
        .open(Publish {
            app: &pull.app.0,
            stream: &pull.stream.0,
            origin: Origin::Pull,
        })
        .await
        .map_err(|why| anyhow::anyhow!("session refused: {why}"))?;
    tracing::info!(url = %pull.url, stream = %session.name(), track = %camera.description, "camera playing");
    let mut logged_unsupported = 0;
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => {
                session.end("shutdown");
                return Ok(());
            }
            frame = tokio::time::timeout(IDLE_TIMEOUT, camera.next_frame()) => frame,
        };
        let frame = match frame {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => {
                session.end("source ended");
                return Ok(());
            }
            Ok(Err(e)) => {
                session.end("source failed");
                return Err(e);
            }
            Err(_) => {
                session.end("source idle");
                anyhow::bail!("{}: no video for {} s", pull.url, IDLE_TIMEOUT.as_secs());
            }
        };
        if camera.unsupported_payloads().len() > logged_unsupported {
            logged_unsupported = camera.unsupported_payloads().len();
            tracing::warn!(url = %pull.url, payloads = ?camera.unsupported_payloads(), "camera sends rtp payload structures livesnap does not take (interleaved mode); their frames are dropped");
        }
        session.push_frame(&frame)?;
    }
}

/// `text` with the URL's password removed, should a library message repeat it, and cut to its
/// first line: retina appends the connection's addresses and times on further lines, which
/// would make every repeat of one cause look new.
fn scrub(text: &str, url: &SourceUrl) -> String {
    let text = text.lines().next().unwrap_or_default();
    match url.credentials() {
        Some((_, password)) if !password.is_empty() => text.replace(&password, "***"),
        _ => text.to_owned(),
    }
}

/// The parameter sets the SDP signals for media section `index` (payload type
/// `payload_type`): H.264 `sprop-parameter-sets` (RFC 6184 §8.1), H.265 `sprop-vps`,
/// `sprop-sps`, `sprop-pps` (RFC 7798 §7.1), base64-decoded, in that order. The SDP is
/// untrusted text: anything that does not decode is left out (the camera may still send the
/// sets in band).
pub fn sdp_parameter_sets(
    sdp: &[u8],
    index: usize,
    payload_type: u8,
    codec: Codec,
) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(sdp);
    let mut section = None::<usize>;
    let mut params = Vec::new();
    let prefix = format!("a=fmtp:{payload_type} ");
    for line in text.lines().map(str::trim) {
        if line.starts_with("m=") {
            section = Some(section.map_or(0, |s| s + 1));
            continue;
        }
        if section != Some(index) {
            continue;
        }
        if let Some(fmtp) = line.strip_prefix(&prefix) {
            params.extend(
                fmtp.split(';')
                    .filter_map(|p| p.trim().split_once('='))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())),
            );
        }
    }
    let keys: &[&str] = match codec {
        Codec::H264 => &["sprop-parameter-sets"],
        Codec::H265 => &["sprop-vps", "sprop-sps", "sprop-pps"],
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    keys.iter()
        .flat_map(|key| {
            params
                .iter()
                .filter(move |(k, _)| k == key)
                .flat_map(|(_, v)| v.split(','))
        })
        .filter_map(|set| b64.decode(set.trim()).ok())
        .filter(|set| !set.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_sets_come_from_the_right_section_and_payload_type() {
        let sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n\
            m=audio 0 RTP/AVP 97\r\na=fmtp:97 sprop-parameter-sets=AAAA\r\n\
            m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
            a=fmtp:96 packetization-mode=1;profile-level-id=42C01E;sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==\r\n\
            a=fmtp:98 sprop-parameter-sets=AQID\r\n";
        let sets = sdp_parameter_sets(sdp, 1, 96, Codec::H264);
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0][0], 0x67);
        assert_eq!(sets[1], vec![0x68, 0xcb, 0x8c, 0xb2]);
        assert!(sdp_parameter_sets(sdp, 0, 96, Codec::H264).is_empty());
    }

    #[test]
    fn sdp_h265_sets_are_vps_sps_pps_and_garbage_is_skipped() {
        let sdp =
            b"m=video 0 RTP/AVP 96\na=fmtp:96 sprop-pps=RAHA; sprop-sps=QgE=,!!!; sprop-vps=QAE=\n";
        let sets = sdp_parameter_sets(sdp, 0, 96, Codec::H265);
        assert_eq!(
            sets,
            vec![vec![0x40, 1], vec![0x42, 1], vec![0x44, 1, 0xc0]]
        );
        assert!(sdp_parameter_sets(b"\xff\xfe garbage", 0, 96, Codec::H265).is_empty());
    }
}
