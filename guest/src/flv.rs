//! FLV tag bodies (Adobe FLV spec v10.1, §E.4.2–E.4.3): the audio/video/script tag types and the
//! video tag header with its AVC packet. Only bodies: the host frames tags out of the container.

use crate::amf;
use crate::error::Failure;

/// FLV tag type of audio data.
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of video data.
pub const TAG_VIDEO: u8 = 9;
/// FLV tag type of script data (onMetaData).
pub const TAG_SCRIPT: u8 = 18;

/// FLV `CodecID` of AVC (H.264).
const CODEC_AVC: u8 = 7;
/// FLV `CodecID` 12: HEVC in AVC's tag layout, the pre-standard extension Chinese CDNs send.
const CODEC_HEVC_LEGACY: u8 = 12;

/// A video codec as the FLV tag names it (legacy CodecID or Enhanced RTMP FourCC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 (CodecID 7, FourCC `avc1`).
    Avc,
    /// H.265 (CodecID 12, FourCC `hvc1`).
    Hevc,
    /// AV1 (FourCC `av01`): recognised, not decoded.
    Av1,
    /// VP9 (FourCC `vp09`): recognised, not decoded.
    Vp9,
}

impl VideoCodec {
    /// Lowercase name for messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Avc => "h.264 (avc)",
            VideoCodec::Hevc => "h.265 (hevc)",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp9 => "vp9",
        }
    }

    /// True for the codecs livesnap parses and decodes.
    pub fn is_decoded(self) -> bool {
        matches!(self, VideoCodec::Avc | VideoCodec::Hevc)
    }
}

/// Enhanced RTMP v1 `VideoPacketType` values (the low nibble of the first byte).
mod packet_type {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const CODED_FRAMES_X: u8 = 3;
    pub const METADATA: u8 = 4;
    pub const MPEG2TS_SEQUENCE_START: u8 = 5;
    pub const MULTITRACK: u8 = 6;
    pub const MOD_EX: u8 = 7;
}

/// One parsed video tag body, borrowing the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoTag<'a> {
    /// AVCPacketType 0 / SequenceStart: the decoder configuration record (AVC's or HEVC's;
    /// for AV1/VP9 their own, unused).
    SequenceHeader {
        /// Which codec's record.
        codec: VideoCodec,
        /// The record bytes.
        record: &'a [u8],
    },
    /// AVCPacketType 1 / CodedFrames / CodedFramesX: one access unit.
    Nalu {
        /// The codec of the frame.
        codec: VideoCodec,
        /// The FLV `FrameType` said keyframe (1). A hint only; never trusted for capture of a
        /// codec livesnap parses; the only hint for AV1/VP9.
        keyframe_hint: bool,
        /// CompositionTime (SI24), in milliseconds: pts = tag timestamp + this (0 for
        /// CodedFramesX).
        composition_ms: i32,
        /// The NAL units, length-prefixed (for AV1/VP9: their own framing, unused).
        data: &'a [u8],
    },
    /// AVCPacketType 2 / SequenceEnd.
    EndOfSequence,
    /// FrameType 5: a video info/command frame with no picture.
    Command,
    /// Enhanced RTMP Metadata or MPEG2TSSequenceStart: nothing to capture. A `colorInfo`
    /// Metadata packet carries the stream's colour description, used where the SPS VUI is
    /// silent; other names (and MPEG2TSSequenceStart) carry none.
    Metadata {
        /// The `colorInfo.colorConfig` of a `colorInfo` packet.
        color: Option<ColorConfig>,
    },
}

/// The colour description of an Enhanced RTMP `Metadata` packet (`colorInfo.colorConfig`):
/// ITU-T H.273 code points (1 BT.709, 2 unspecified, 9 BT.2020, 16 PQ, 18 HLG, …). A member
/// that is absent or not an integer in 0..=255 is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ColorConfig {
    /// `bitDepth`.
    pub bit_depth: Option<u8>,
    /// `colorPrimaries`.
    pub color_primaries: Option<u8>,
    /// `transferCharacteristics`.
    pub transfer_characteristics: Option<u8>,
    /// `matrixCoefficients`.
    pub matrix_coefficients: Option<u8>,
}

/// H.273's "unspecified" code point, for primaries, transfer and matrix alike.
pub const UNSPECIFIED: u8 = 2;

impl ColorConfig {
    /// `vui`, or where the VUI leaves a value unspecified, this description's.
    pub fn fill(vui: u8, stream: Option<u8>) -> u8 {
        match stream {
            Some(code) if vui == UNSPECIFIED => code,
            _ => vui,
        }
    }
}

/// Parse an Enhanced RTMP `Metadata` payload: AMF0 name, then its value. `colorInfo` gives its
/// `colorConfig`; any other name gives `None` (nothing livesnap uses). A malformed `colorInfo`
/// is an error naming the fault.
pub fn parse_metadata(payload: &[u8]) -> Result<Option<ColorConfig>, Failure> {
    let mut r = amf::Reader::new(payload);
    let name = r
        .value()
        .map_err(|e| Failure::decode(format!("enhanced rtmp metadata name: {}", e.message)))?;
    if name != amf::Value::String("colorInfo".into()) {
        return Ok(None);
    }
    let info = r
        .value()
        .map_err(|e| Failure::decode(format!("enhanced rtmp colorInfo: {}", e.message)))?;
    let Some(config) = info.get("colorConfig") else {
        return Ok(Some(ColorConfig::default()));
    };
    let code = |name: &str| {
        config
            .get(name)
            .and_then(amf::Value::number)
            .filter(|n| n.fract() == 0.0 && (0.0..=255.0).contains(n))
            .map(|n| n as u8)
    };
    Ok(Some(ColorConfig {
        bit_depth: code("bitDepth"),
        color_primaries: code("colorPrimaries"),
        transfer_characteristics: code("transferCharacteristics"),
        matrix_coefficients: code("matrixCoefficients"),
    }))
}

/// SI24 composition time, sign-extended from 24 bits.
fn si24(c: [u8; 3]) -> i32 {
    let raw = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
    ((raw << 8) as i32) >> 8
}

/// Parse a video tag body: legacy (FLV spec §E.4.3.1, CodecID 7 or 12) or Enhanced RTMP v1
/// (`IsExHeader`, FourCC, PacketType).
pub fn parse_video(body: &[u8]) -> Result<VideoTag<'_>, Failure> {
    let Some(&first) = body.first() else {
        return Err(Failure::decode("empty video tag"));
    };
    if first & 0x80 != 0 {
        return parse_enhanced(body, first);
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0f;
    if frame_type == 5 {
        return Ok(VideoTag::Command);
    }
    let codec = match codec_id {
        CODEC_AVC => VideoCodec::Avc,
        CODEC_HEVC_LEGACY => VideoCodec::Hevc,
        other => {
            return Err(Failure::unsupported(format!(
                "flv video codec id {other} is not supported: only 7 (avc), 12 (hevc) and \
                 enhanced rtmp avc1/hvc1 are"
            )));
        }
    };
    let Some(&[packet_type, c0, c1, c2]) = body.get(1..5) else {
        return Err(Failure::decode(format!(
            "{} video tag of {} bytes is shorter than its 5-byte header",
            codec.name(),
            body.len()
        )));
    };
    let payload = body.get(5..).unwrap_or_default();
    match packet_type {
        0 => Ok(VideoTag::SequenceHeader {
            codec,
            record: payload,
        }),
        1 => Ok(VideoTag::Nalu {
            codec,
            keyframe_hint: frame_type == 1,
            composition_ms: si24([c0, c1, c2]),
            data: payload,
        }),
        2 => Ok(VideoTag::EndOfSequence),
        other => Err(Failure::decode(format!("unknown avc packet type {other}"))),
    }
}

/// Enhanced RTMP v1: `IsExHeader`(1) `FrameType`(3) `PacketType`(4), FourCC, then per type.
fn parse_enhanced(body: &[u8], first: u8) -> Result<VideoTag<'_>, Failure> {
    let frame_type = (first >> 4) & 0x07;
    let packet = first & 0x0f;
    if packet == packet_type::MULTITRACK || packet == packet_type::MOD_EX {
        let what = if packet == packet_type::MULTITRACK {
            "multitrack"
        } else {
            "modex"
        };
        return Err(Failure::unsupported(format!(
            "enhanced rtmp v2 {what} video packets are not supported: send one video track \
             (enhanced rtmp v1)"
        )));
    }
    let Some(fourcc) = body.get(1..5) else {
        return Err(Failure::decode(format!(
            "enhanced video tag of {} bytes is shorter than its 5-byte header",
            body.len()
        )));
    };
    let codec = match fourcc {
        b"avc1" => VideoCodec::Avc,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" => VideoCodec::Av1,
        b"vp09" => VideoCodec::Vp9,
        other => {
            let printable: String = other
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() {
                        char::from(b)
                    } else {
                        '?'
                    }
                })
                .collect();
            return Err(Failure::unsupported(format!(
                "enhanced rtmp video fourcc '{printable}' is not supported: only avc1 and hvc1 \
                 are decoded (av01, vp09 recognised)"
            )));
        }
    };
    let payload = body.get(5..).unwrap_or_default();
    if frame_type == 5 && packet != packet_type::METADATA {
        return Ok(VideoTag::Command);
    }
    match packet {
        packet_type::SEQUENCE_START => Ok(VideoTag::SequenceHeader {
            codec,
            record: payload,
        }),
        packet_type::CODED_FRAMES => {
            // Only AVC and HEVC carry an SI24 CompositionTime in CodedFrames (E-RTMP v1).
            let (cts, data) = match payload {
                _ if !codec.is_decoded() => (0, payload),
                [c0, c1, c2, rest @ ..] => (si24([*c0, *c1, *c2]), rest),
                _ => {
                    return Err(Failure::decode(format!(
                        "enhanced {} coded frames tag of {} bytes has no composition time",
                        codec.name(),
                        body.len()
                    )));
                }
            };
            Ok(VideoTag::Nalu {
                codec,
                keyframe_hint: frame_type == 1,
                composition_ms: cts,
                data,
            })
        }
        packet_type::CODED_FRAMES_X => Ok(VideoTag::Nalu {
            codec,
            keyframe_hint: frame_type == 1,
            composition_ms: 0,
            data: payload,
        }),
        packet_type::SEQUENCE_END => Ok(VideoTag::EndOfSequence),
        packet_type::METADATA => Ok(VideoTag::Metadata {
            color: parse_metadata(payload)?,
        }),
        packet_type::MPEG2TS_SEQUENCE_START => Ok(VideoTag::Metadata { color: None }),
        other => Err(Failure::decode(format!(
            "enhanced rtmp video packet type {other} is reserved"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn parses_sequence_header_and_nalu_with_negative_composition_time() {
        assert_eq!(
            parse_video(&[0x17, 0, 0, 0, 0, 1, 2]).unwrap(),
            VideoTag::SequenceHeader {
                codec: VideoCodec::Avc,
                record: &[1, 2]
            }
        );
        assert_eq!(
            parse_video(&[0x27, 1, 0xff, 0xff, 0xd8, 9]).unwrap(),
            VideoTag::Nalu {
                codec: VideoCodec::Avc,
                keyframe_hint: false,
                composition_ms: -40,
                data: &[9]
            }
        );
        assert_eq!(
            parse_video(&[0x17, 1, 0, 0, 80]).unwrap(),
            VideoTag::Nalu {
                codec: VideoCodec::Avc,
                keyframe_hint: true,
                composition_ms: 80,
                data: &[]
            }
        );
        assert_eq!(
            parse_video(&[0x17, 2, 0, 0, 0]).unwrap(),
            VideoTag::EndOfSequence
        );
    }

    #[test]
    fn color_info_metadata_packet() {
        // What ffmpeg 9 writes for hevc_hdr10.flv (BT.2020, PQ): name, then
        // {colorConfig: {transferCharacteristics, matrixCoefficients, colorPrimaries}}.
        let ffmpeg = hex(
            "d468766331020009636f6c6f72496e666f03000b636f6c6f72436f6e666967030017\
            7472616e7366657243686172616374657269737469637300403000000000000000126d6174726978\
            436f656666696369656e7473004022000000000000000e636f6c6f725072696d617269657300402200\
            0000000000000009000009",
        );
        let hdr10 = ColorConfig {
            bit_depth: None,
            color_primaries: Some(9),
            transfer_characteristics: Some(16),
            matrix_coefficients: Some(9),
        };
        assert_eq!(
            parse_video(&ffmpeg).unwrap(),
            VideoTag::Metadata { color: Some(hdr10) }
        );
        // bitDepth read; out-of-range, fractional and non-number members are unknown; other
        // members and a missing colorConfig are fine.
        use crate::amf::tests::{number, object, string};
        let mut body = b"\x94hvc1".to_vec();
        body.extend(string("colorInfo"));
        body.extend(object(&[
            ("hdrCll", object(&[("maxFall", number(400.0))])),
            (
                "colorConfig",
                object(&[
                    ("bitDepth", number(10.0)),
                    ("colorPrimaries", number(256.0)),
                    ("transferCharacteristics", number(18.5)),
                    ("matrixCoefficients", string("9")),
                ]),
            ),
        ]));
        let expected = ColorConfig {
            bit_depth: Some(10),
            ..ColorConfig::default()
        };
        assert_eq!(
            parse_video(&body).unwrap(),
            VideoTag::Metadata {
                color: Some(expected)
            }
        );
        let mut other = b"\x94hvc1".to_vec();
        other.extend(string("somethingElse"));
        other.push(0x05);
        assert_eq!(
            parse_video(&other).unwrap(),
            VideoTag::Metadata { color: None }
        );
        // Every cut of ffmpeg's packet is an error or no colour, never a panic.
        for cut in 5..ffmpeg.len() {
            match parse_video(&ffmpeg[..cut]) {
                Err(e) => assert!(e.message.starts_with("enhanced rtmp"), "{}", e.message),
                Ok(tag) => panic!("cut at {cut} parsed as {tag:?}"),
            }
        }
        assert_eq!(ColorConfig::fill(2, Some(16)), 16);
        assert_eq!(ColorConfig::fill(1, Some(16)), 1);
        assert_eq!(ColorConfig::fill(2, None), 2);
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn refuses_other_codecs_and_short_bodies() {
        assert_eq!(
            parse_video(&[0x12, 0]).unwrap_err().code,
            ErrorCode::UnsupportedStream
        );
        assert_eq!(
            parse_video(&[0x90, 0, 0, 0, 0]).unwrap_err().code,
            ErrorCode::UnsupportedStream
        );
        assert_eq!(
            parse_video(&[0x96, b'h', b'v', b'c', b'1'])
                .unwrap_err()
                .code,
            ErrorCode::UnsupportedStream
        );
        assert_eq!(
            parse_video(&[0x17, 1, 0]).unwrap_err().code,
            ErrorCode::DecodeFailed
        );
        assert_eq!(parse_video(&[]).unwrap_err().code, ErrorCode::DecodeFailed);
        assert_eq!(
            parse_video(&[0x17, 7, 0, 0, 0]).unwrap_err().code,
            ErrorCode::DecodeFailed
        );
    }

    #[test]
    fn parses_enhanced_rtmp_v1_and_legacy_hevc() {
        assert_eq!(
            parse_video(b"\x90hvc1\x01\x02").unwrap(),
            VideoTag::SequenceHeader {
                codec: VideoCodec::Hevc,
                record: &[1, 2]
            }
        );
        assert_eq!(
            parse_video(b"\x91hvc1\xff\xff\xd8\x09").unwrap(),
            VideoTag::Nalu {
                codec: VideoCodec::Hevc,
                keyframe_hint: true,
                composition_ms: -40,
                data: &[9]
            }
        );
        assert_eq!(
            parse_video(b"\xa3hvc1\x07").unwrap(),
            VideoTag::Nalu {
                codec: VideoCodec::Hevc,
                keyframe_hint: false,
                composition_ms: 0,
                data: &[7]
            }
        );
        assert_eq!(
            parse_video(b"\x91av01\x12").unwrap(),
            VideoTag::Nalu {
                codec: VideoCodec::Av1,
                keyframe_hint: true,
                composition_ms: 0,
                data: &[0x12]
            }
        );
        assert_eq!(parse_video(b"\x92avc1").unwrap(), VideoTag::EndOfSequence);
        assert_eq!(
            parse_video(b"\x95hvc1").unwrap(),
            VideoTag::Metadata { color: None }
        );
        assert_eq!(
            parse_video(&[0x1c, 1, 0, 0, 40, 5]).unwrap(),
            VideoTag::Nalu {
                codec: VideoCodec::Hevc,
                keyframe_hint: true,
                composition_ms: 40,
                data: &[5]
            }
        );
        assert_eq!(
            parse_video(b"\x91hvc1\x00").unwrap_err().code,
            ErrorCode::DecodeFailed
        );
        let fourcc = parse_video(b"\x91xyz\x01").unwrap_err();
        assert_eq!(fourcc.code, ErrorCode::UnsupportedStream);
        assert!(fourcc.message.contains("'xyz?'"), "{fourcc}");
        for short in [&b"\x91"[..], b"\x91hv", b"\x9f"] {
            assert!(parse_video(short).is_err());
        }
    }
}
