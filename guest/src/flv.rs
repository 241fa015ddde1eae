//! FLV tag bodies (Adobe FLV spec v10.1, §E.4.2–E.4.3): the audio/video/script tag types and the
//! video tag header with its AVC packet. Only bodies: the host frames tags out of the container.

use crate::error::Failure;

/// FLV tag type of audio data.
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of video data.
pub const TAG_VIDEO: u8 = 9;
/// FLV tag type of script data (onMetaData).
pub const TAG_SCRIPT: u8 = 18;

/// FLV `CodecID` of AVC (H.264).
const CODEC_AVC: u8 = 7;

/// One parsed video tag body, borrowing the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoTag<'a> {
    /// AVCPacketType 0: an AVCDecoderConfigurationRecord.
    SequenceHeader(&'a [u8]),
    /// AVCPacketType 1: one access unit of length-prefixed NAL units.
    Nalu {
        /// The FLV `FrameType` said keyframe (1). A hint only; never trusted for capture.
        keyframe_hint: bool,
        /// CompositionTime (SI24), in milliseconds: pts = tag timestamp + this.
        composition_ms: i32,
        /// The NAL units, AVCC framed.
        data: &'a [u8],
    },
    /// AVCPacketType 2: end of sequence.
    EndOfSequence,
    /// FrameType 5: a video info/command frame with no picture.
    Command,
}

/// Parse a video tag body.
pub fn parse_video(body: &[u8]) -> Result<VideoTag<'_>, Failure> {
    let Some(&first) = body.first() else {
        return Err(Failure::decode("empty video tag"));
    };
    let frame_type = first >> 4;
    let codec_id = first & 0x0f;
    if first & 0x80 != 0 {
        // Enhanced RTMP (IsExHeader): HEVC/AV1/VP9 by FourCC; only AVC is captured.
        return Err(Failure::unsupported(format!(
            "enhanced flv video header (byte 0x{first:02x}) is not supported: only h.264 (avc) is"
        )));
    }
    if frame_type == 5 {
        return Ok(VideoTag::Command);
    }
    if codec_id != CODEC_AVC {
        return Err(Failure::unsupported(format!(
            "flv video codec id {codec_id} is not supported: only 7 (avc) is"
        )));
    }
    let Some(&[packet_type, c0, c1, c2]) = body.get(1..5) else {
        return Err(Failure::decode(format!(
            "avc video tag of {} bytes is shorter than its 5-byte header",
            body.len()
        )));
    };
    let payload = body.get(5..).unwrap_or_default();
    match packet_type {
        0 => Ok(VideoTag::SequenceHeader(payload)),
        1 => {
            // SI24 composition time, sign-extended from 24 bits.
            let raw = (u32::from(c0) << 16) | (u32::from(c1) << 8) | u32::from(c2);
            let composition_ms = ((raw << 8) as i32) >> 8;
            Ok(VideoTag::Nalu {
                keyframe_hint: frame_type == 1,
                composition_ms,
                data: payload,
            })
        }
        2 => Ok(VideoTag::EndOfSequence),
        other => Err(Failure::decode(format!("unknown avc packet type {other}"))),
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
            VideoTag::SequenceHeader(&[1, 2])
        );
        assert_eq!(
            parse_video(&[0x27, 1, 0xff, 0xff, 0xd8, 9]).unwrap(),
            VideoTag::Nalu {
                keyframe_hint: false,
                composition_ms: -40,
                data: &[9]
            }
        );
        assert_eq!(
            parse_video(&[0x17, 1, 0, 0, 80]).unwrap(),
            VideoTag::Nalu {
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
            parse_video(&[0x17, 1, 0]).unwrap_err().code,
            ErrorCode::DecodeFailed
        );
        assert_eq!(parse_video(&[]).unwrap_err().code, ErrorCode::DecodeFailed);
        assert_eq!(
            parse_video(&[0x17, 7, 0, 0, 0]).unwrap_err().code,
            ErrorCode::DecodeFailed
        );
    }
}
