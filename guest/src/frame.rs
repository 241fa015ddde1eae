//! The container-neutral entry (WIT `session.push-frame`): one coded video frame as a list of NAL
//! units, with its timestamps and the parameter sets signalled outside the bitstream (an RTSP
//! SDP's `sprop-parameter-sets` / `sprop-vps`/`sprop-sps`/`sprop-pps`, a container's sample
//! description). Hosts that depacketize RTP or demux other containers hand frames here; the
//! NAL units themselves are parsed only in the guest, by the same code FLV tags reach.
//!
//! The parameter sets in force are tracked as the stream gives them:
//! - out-of-band sets take effect when they differ from the previous frame's out-of-band sets
//!   (a host may repeat them with every frame at no cost);
//! - in-band sets take effect at the frame that carries them: for each kind (VPS, SPS, PPS) the
//!   frame carries, its sets replace the ones of that kind in force.
//!
//! When the sets in force change, a decoder configuration record (AVC's or HEVC's, ISO/IEC
//! 14496-15) is built from them and parsed as an FLV sequence header would be, so the capture
//! rule, the limits and the render see one kind of configuration whichever entry fed them.

use crate::error::Failure;
use crate::flv::VideoCodec;
use crate::hevc::nal_type;

/// NAL unit types of H.264 parameter sets (ISO/IEC 14496-10 Table 7-1).
const AVC_SPS: u8 = 7;
const AVC_PPS: u8 = 8;

/// Bytes of the length prefix of each NAL unit in the access units and records built here.
pub const LENGTH_SIZE: usize = 4;

/// Parameter sets in one record, at most (the record counts them in 5 bits for AVC SPS, 8 for
/// PPS, 16 for HEVC arrays; more than this is hostile, not a camera).
const MAX_SETS: usize = 31;

/// One coded video frame (WIT `coded-frame`).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// H.264 or H.265.
    pub codec: VideoCodec,
    /// Decode timestamp, ms, 32-bit wrapping: the session clock's input, as an FLV tag's.
    pub dts_ms: u32,
    /// Presentation timestamp, ms.
    pub pts_ms: i64,
    /// Parameter sets signalled outside the bitstream, NAL units without framing.
    pub parameter_sets: &'a [Vec<u8>],
    /// The frame's NAL units without framing (no start code, no length prefix).
    pub nal_units: &'a [Vec<u8>],
    /// The transport lost part of the frame: never decoded; a due I-frame fails.
    pub damaged: bool,
}

/// The kind of a parameter set NAL unit, or `None` for any other NAL unit.
fn kind(codec: VideoCodec, nal: &[u8]) -> Option<ParamKind> {
    let first = *nal.first()?;
    match codec {
        VideoCodec::Avc => match first & 0x1f {
            AVC_SPS => Some(ParamKind::Sps),
            AVC_PPS => Some(ParamKind::Pps),
            _ => None,
        },
        VideoCodec::Hevc => match (first >> 1) & 0x3f {
            nal_type::VPS => Some(ParamKind::Vps),
            nal_type::SPS => Some(ParamKind::Sps),
            nal_type::PPS => Some(ParamKind::Pps),
            _ => None,
        },
        VideoCodec::Av1 | VideoCodec::Vp9 => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamKind {
    Vps,
    Sps,
    Pps,
}

/// The parameter sets in force for a frame-fed session.
#[derive(Debug, Default)]
pub struct ParamTracker {
    codec: Option<VideoCodec>,
    /// The out-of-band sets of the previous frame, as given.
    out_of_band: Vec<Vec<u8>>,
    vps: Vec<Vec<u8>>,
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
}

impl ParamTracker {
    /// Take in `frame`'s parameter sets. Returns the new decoder configuration record when the
    /// sets in force changed and form a usable one (an SPS and a PPS, and for HEVC a VPS), else
    /// `None` (nothing changed, or not enough yet).
    pub fn update(&mut self, frame: &Frame<'_>) -> Result<Option<Vec<u8>>, Failure> {
        let mut changed = false;
        if self.codec != Some(frame.codec) {
            *self = ParamTracker {
                codec: Some(frame.codec),
                ..ParamTracker::default()
            };
        }
        if !frame.parameter_sets.is_empty() && frame.parameter_sets != self.out_of_band.as_slice() {
            self.out_of_band = frame.parameter_sets.to_vec();
            changed |= self.take(frame.codec, frame.parameter_sets)?;
        }
        changed |= self.take(frame.codec, frame.nal_units)?;
        if !changed || self.sps.is_empty() || self.pps.is_empty() {
            return Ok(None);
        }
        Ok(match frame.codec {
            VideoCodec::Avc => Some(avc_record(&self.sps, &self.pps)),
            VideoCodec::Hevc if !self.vps.is_empty() => {
                Some(hevc_record(&self.vps, &self.sps, &self.pps))
            }
            _ => None,
        })
    }

    /// Replace, kind by kind, the sets in force with the ones among `nals`; true on a change.
    fn take(&mut self, codec: VideoCodec, nals: &[Vec<u8>]) -> Result<bool, Failure> {
        let mut found: [Vec<Vec<u8>>; 3] = Default::default();
        for nal in nals {
            let Some(kind) = kind(codec, nal) else {
                continue;
            };
            let slot = &mut found[kind as usize];
            if slot.len() >= MAX_SETS {
                return Err(Failure::limit(format!(
                    "more than {MAX_SETS} parameter sets of one kind in one frame"
                )));
            }
            if nal.len() > usize::from(u16::MAX) {
                return Err(Failure::limit(format!(
                    "parameter set of {} bytes exceeds {} bytes",
                    nal.len(),
                    u16::MAX
                )));
            }
            if !slot.contains(nal) {
                slot.push(nal.clone());
            }
        }
        let mut changed = false;
        let [vps, sps, pps] = found;
        for (given, in_force) in [
            (vps, &mut self.vps),
            (sps, &mut self.sps),
            (pps, &mut self.pps),
        ] {
            if !given.is_empty() && given != *in_force {
                *in_force = given;
                changed = true;
            }
        }
        Ok(changed)
    }
}

/// Frame `nals` as one access unit with 4-byte big-endian length prefixes (AVCC framing, as FLV
/// carries them). A zero-length NAL unit or one of 4 GiB or more is an error.
pub fn access_unit(nals: &[Vec<u8>]) -> Result<Vec<u8>, Failure> {
    let total = nals.iter().map(|n| n.len() + LENGTH_SIZE).sum();
    let mut au = Vec::with_capacity(total);
    for nal in nals {
        if nal.is_empty() {
            return Err(Failure::decode("zero-length nal unit in frame"));
        }
        let len = u32::try_from(nal.len())
            .map_err(|_| Failure::limit(format!("nal unit of {} bytes", nal.len())))?;
        au.extend_from_slice(&len.to_be_bytes());
        au.extend_from_slice(nal);
    }
    Ok(au)
}

fn push_sets(record: &mut Vec<u8>, sets: &[Vec<u8>]) {
    for set in sets {
        // `take` bounds every set to u16::MAX bytes.
        let len = u16::try_from(set.len()).unwrap_or(u16::MAX);
        record.extend_from_slice(&len.to_be_bytes());
        record.extend_from_slice(set);
    }
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1.2) of `sps` and `pps`, 4-byte
/// NAL lengths; profile, compatibility and level from the first SPS.
pub fn avc_record(sps: &[Vec<u8>], pps: &[Vec<u8>]) -> Vec<u8> {
    let first = sps.first().map(Vec::as_slice).unwrap_or_default();
    let byte = |i: usize| first.get(i).copied().unwrap_or(0);
    let mut record = vec![1, byte(1), byte(2), byte(3), 0xfc | (LENGTH_SIZE as u8 - 1)];
    // `take` bounds each kind to MAX_SETS (31): the 5-bit count holds it.
    record.push(0xe0 | (sps.len().min(MAX_SETS) as u8));
    push_sets(&mut record, sps);
    record.push(pps.len().min(MAX_SETS) as u8);
    push_sets(&mut record, pps);
    record
}

/// The first `n` RBSP bytes of a NAL unit's payload (emulation prevention bytes removed).
fn rbsp_prefix(payload: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut zeros = 0;
    for &b in payload {
        if out.len() == n {
            break;
        }
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out.resize(n, 0);
    out
}

/// An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1.2) of `vps`, `sps` and `pps`,
/// 4-byte NAL lengths; the general profile, tier and level copied from the first SPS's
/// `profile_tier_level` (§7.3.3), the other header fields left at "unknown".
pub fn hevc_record(vps: &[Vec<u8>], sps: &[Vec<u8>], pps: &[Vec<u8>]) -> Vec<u8> {
    let first = sps.first().map(Vec::as_slice).unwrap_or_default();
    // After the 2-byte NAL header: sps_video_parameter_set_id (4), sps_max_sub_layers_minus1
    // (3), sps_temporal_id_nesting_flag (1), then general profile_space..level_idc (12 bytes).
    let rbsp = rbsp_prefix(first.get(2..).unwrap_or_default(), 13);
    let mut record = vec![1];
    record.extend_from_slice(rbsp.get(1..13).unwrap_or(&[0; 12]));
    record.extend_from_slice(&[
        0xf0,
        0x00, // min_spatial_segmentation_idc 0
        0xfc, // parallelismType unknown
        0xfd, // chroma_format_idc 1 (informative: the SPS decides)
        0xf8, // bit depths: informative, the SPS decides
        0xf8,
        0x00,
        0x00,                           // avgFrameRate unknown
        0x0c | (LENGTH_SIZE as u8 - 1), // constantFrameRate 0, 1 temporal layer, nested
    ]);
    let arrays = [
        (nal_type::VPS, vps),
        (nal_type::SPS, sps),
        (nal_type::PPS, pps),
    ];
    record.push(arrays.len() as u8);
    for (unit_type, sets) in arrays {
        // array_completeness 1: the sets in force are all there is.
        record.push(0x80 | unit_type);
        record.extend_from_slice(&(sets.len().min(MAX_SETS) as u16).to_be_bytes());
        push_sets(&mut record, sets);
    }
    record
}

/// A [`Frame`] that owns its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    /// See [`Frame::codec`].
    pub codec: VideoCodec,
    /// See [`Frame::dts_ms`].
    pub dts_ms: u32,
    /// See [`Frame::pts_ms`].
    pub pts_ms: i64,
    /// See [`Frame::parameter_sets`].
    pub parameter_sets: Vec<Vec<u8>>,
    /// See [`Frame::nal_units`].
    pub nal_units: Vec<Vec<u8>>,
    /// See [`Frame::damaged`].
    pub damaged: bool,
}

impl OwnedFrame {
    /// Borrow it as a [`Frame`].
    pub fn as_frame(&self) -> Frame<'_> {
        Frame {
            codec: self.codec,
            dts_ms: self.dts_ms,
            pts_ms: self.pts_ms,
            parameter_sets: &self.parameter_sets,
            nal_units: &self.nal_units,
            damaged: self.damaged,
        }
    }
}

/// How [`FlvToFrames`] hands a sequence header's parameter sets on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetDelivery {
    /// Out of band with every frame (an RTSP host repeating its SDP's sets).
    EveryFrame,
    /// Out of band with the first frame after each sequence header only.
    OnChange,
    /// In band: prepended to the first frame's NAL units after each sequence header.
    InBand,
}

/// What a frame-fed host pushes for one FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A tag that carries no coded frame (audio, script data, metadata, end of sequence, a
    /// codec the frame entry does not take, a body that does not parse): pushed as a tag.
    Tag {
        /// FLV tag type.
        tag_type: u8,
        /// Tag timestamp, ms.
        timestamp_ms: u32,
        /// Tag body.
        body: Vec<u8>,
    },
    /// A coded frame for `push-frame`.
    Frame(OwnedFrame),
    /// A sequence header, taken in: nothing to push.
    Nothing,
}

/// Turns an FLV stream into the frames a depacketizing host would push: the reference that an
/// FLV stream pushed as tags and the same frames pushed through the frame entry agree (tests,
/// fuzz seeds). Sequence headers become parameter sets delivered as [`SetDelivery`] says.
#[derive(Debug)]
pub struct FlvToFrames {
    delivery: SetDelivery,
    /// Codec, parameter sets and NAL length size of the last sequence header.
    sets: Option<(VideoCodec, Vec<Vec<u8>>, usize)>,
    /// The sets have not been handed on since their sequence header.
    fresh: bool,
}

impl FlvToFrames {
    /// A converter delivering parameter sets as `delivery` says.
    pub fn new(delivery: SetDelivery) -> Self {
        FlvToFrames {
            delivery,
            sets: None,
            fresh: false,
        }
    }

    /// What to push for the FLV tag (`tag_type`, `timestamp_ms`, `body`).
    pub fn convert(&mut self, tag_type: u8, timestamp_ms: u32, body: &[u8]) -> Input {
        let as_tag = || Input::Tag {
            tag_type,
            timestamp_ms,
            body: body.to_vec(),
        };
        if tag_type != crate::flv::TAG_VIDEO {
            return as_tag();
        }
        match crate::flv::parse_video(body) {
            Ok(crate::flv::VideoTag::SequenceHeader { codec, record }) if codec.is_decoded() => {
                match record_sets(codec, record) {
                    Some((sets, length_size)) => {
                        self.sets = Some((codec, sets, length_size));
                        self.fresh = true;
                        Input::Nothing
                    }
                    None => as_tag(),
                }
            }
            Ok(crate::flv::VideoTag::Nalu {
                codec,
                composition_ms,
                data,
                ..
            }) if codec.is_decoded() => {
                let Some((set_codec, sets, length_size)) = &self.sets else {
                    return as_tag();
                };
                if *set_codec != codec {
                    return as_tag();
                }
                let Some(nals) = crate::avc::NalIter::new(data, *length_size)
                    .map(|n| n.ok().map(<[u8]>::to_vec))
                    .collect::<Option<Vec<_>>>()
                else {
                    return as_tag();
                };
                let fresh = std::mem::take(&mut self.fresh);
                let (parameter_sets, nal_units) = match self.delivery {
                    SetDelivery::EveryFrame => (sets.clone(), nals),
                    SetDelivery::OnChange if fresh => (sets.clone(), nals),
                    SetDelivery::OnChange => (Vec::new(), nals),
                    SetDelivery::InBand if fresh => (Vec::new(), [sets.clone(), nals].concat()),
                    SetDelivery::InBand => (Vec::new(), nals),
                };
                Input::Frame(OwnedFrame {
                    codec,
                    dts_ms: timestamp_ms,
                    pts_ms: i64::from(timestamp_ms) + i64::from(composition_ms),
                    parameter_sets,
                    nal_units,
                    damaged: false,
                })
            }
            _ => as_tag(),
        }
    }
}

/// The parameter sets and NAL length size of a decoder configuration record.
pub fn record_sets(codec: VideoCodec, record: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    match codec {
        VideoCodec::Avc => {
            let length_size = usize::from(record.get(4)? & 3) + 1;
            let mut sets = Vec::new();
            let mut rest = record.get(5..)?;
            for counted in [0x1f, 0xff] {
                let (&count, after) = rest.split_first()?;
                rest = after;
                for _ in 0..(count & counted) {
                    let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
                    sets.push(rest.get(2..2 + len)?.to_vec());
                    rest = rest.get(2 + len..)?;
                }
            }
            Some((sets, length_size))
        }
        VideoCodec::Hevc => {
            let parsed = crate::hevc::parse_config_record(record).ok()?;
            let sets = parsed.nals.iter().map(|n| n.to_vec()).collect();
            Some((sets, parsed.length_size))
        }
        VideoCodec::Av1 | VideoCodec::Vp9 => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avc::AvcConfig;
    use crate::hevc::{HevcConfig, parse_config_record};

    /// The SPS and PPS of a test stream's AVC record (guest/testdata).
    fn avc_sets() -> (Vec<u8>, Vec<u8>) {
        let record = include_bytes!("../testdata/cabac_64x48.avcc");
        let (sps, rest) = take16(&record[6..]);
        let (pps, _) = take16(&rest[1..]);
        (sps.to_vec(), pps.to_vec())
    }

    fn take16(b: &[u8]) -> (&[u8], &[u8]) {
        let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
        (&b[2..2 + len], &b[2 + len..])
    }

    fn frame<'a>(sets: &'a [Vec<u8>], nals: &'a [Vec<u8>]) -> Frame<'a> {
        Frame {
            codec: VideoCodec::Avc,
            dts_ms: 0,
            pts_ms: 0,
            parameter_sets: sets,
            nal_units: nals,
            damaged: false,
        }
    }

    #[test]
    fn avc_record_round_trips_through_the_capture_parser() {
        let (sps, pps) = avc_sets();
        let record = avc_record(std::slice::from_ref(&sps), &[pps]);
        let config = AvcConfig::parse(&record).expect("a record capture accepts");
        assert!(config.refusal().is_none());
        assert_eq!(&record[1..4], &sps[1..4]);
    }

    #[test]
    fn out_of_band_sets_apply_once_and_in_band_sets_replace_their_kind() {
        let (sps, pps) = avc_sets();
        let mut params = ParamTracker::default();
        let sdp = vec![sps.clone(), pps];
        let slice = vec![vec![0x65, 0x88]];
        assert!(params.update(&frame(&sdp, &slice)).unwrap().is_some());
        // Repeated out-of-band sets change nothing.
        assert_eq!(params.update(&frame(&sdp, &slice)).unwrap(), None);
        // An in-band PPS that differs replaces the PPS only.
        let new_pps = vec![0x68, 0xce, 0x38, 0x80];
        let nals = vec![new_pps.clone(), vec![0x65, 0x88]];
        let record = params.update(&frame(&sdp, &nals)).unwrap().unwrap();
        let parsed = AvcConfig::parse(&record).unwrap();
        assert!(parsed.record().ends_with(&new_pps));
        assert!(parsed.record().windows(sps.len()).any(|w| w == sps));
        // The same out-of-band sets again do not undo the in-band change.
        assert_eq!(params.update(&frame(&sdp, &slice)).unwrap(), None);
    }

    #[test]
    fn no_record_until_both_kinds_are_known() {
        let (sps, pps) = avc_sets();
        let mut params = ParamTracker::default();
        assert_eq!(params.update(&frame(&[], &[sps])).unwrap(), None);
        assert!(params.update(&frame(&[], &[pps])).unwrap().is_some());
    }

    #[test]
    fn hevc_record_carries_the_profile_and_parses() {
        let original = include_bytes!("../testdata/hevc_64x48.hvcc");
        let sets = parse_config_record(original).unwrap().nals;
        let [vps, sps, pps] = [0, 1, 2].map(|i| sets[i].to_vec());
        assert_eq!(nal_kinds(&[&vps, &sps, &pps]), [32, 33, 34]);
        let record = hevc_record(
            std::slice::from_ref(&vps),
            std::slice::from_ref(&sps),
            std::slice::from_ref(&pps),
        );
        let parsed = parse_config_record(&record).unwrap();
        assert_eq!(parsed.profile_idc, original[1] & 0x1f);
        assert_eq!(&record[1..13], &original[1..13], "profile, tier and level");
        assert_eq!(parsed.length_size, 4);
        assert_eq!(parsed.nals, vec![&vps[..], &sps[..], &pps[..]]);
        HevcConfig::parse(&record).expect("a record capture accepts");
    }

    fn nal_kinds(nals: &[&Vec<u8>]) -> Vec<u8> {
        nals.iter().map(|n| (n[0] >> 1) & 0x3f).collect()
    }

    #[test]
    fn hostile_frames_are_errors() {
        assert!(access_unit(&[vec![]]).is_err());
        let many: Vec<Vec<u8>> = (0..40u8).map(|i| vec![0x68, i + 1]).collect();
        assert!(ParamTracker::default().update(&frame(&[], &many)).is_err());
        let mut big = vec![0x67; 70_000];
        big[1] = 0x42;
        assert!(ParamTracker::default().update(&frame(&[], &[big])).is_err());
    }
}
