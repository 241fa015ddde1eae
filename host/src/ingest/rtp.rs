//! RTP payload formats for H.264 (RFC 6184) and H.265 (RFC 7798), depacketized into access
//! units of NAL units. Framing only: a NAL unit's bytes are never interpreted here beyond the
//! header bits the payload formats define (the type that says "aggregate" or "fragment", and
//! the header a fragmented unit gets back). Parameter sets, slice headers and the decode are
//! the component's work.
//!
//! An access unit is the packets of one RTP timestamp; it ends at the marker bit or when the
//! timestamp changes. A lost packet (a gap in sequence numbers, reported by the RTSP client),
//! a fragment that does not follow its start, or a malformed aggregate marks the access unit
//! `damaged`: the NAL units that arrived whole are kept, the cut one is dropped, and the
//! component never decodes it.

/// The video codecs an RTSP camera can send that livesnap captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// H.264, RFC 6184.
    H264,
    /// H.265, RFC 7798.
    H265,
}

/// One depacketized access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The RTP timestamp, extended past its 32-bit wrap (90 kHz for video).
    pub timestamp: i64,
    /// Its NAL units, without framing, in arrival order.
    pub nal_units: Vec<Vec<u8>>,
    /// Part of it was lost or malformed: never render it.
    pub damaged: bool,
}

/// RFC 6184 NAL unit types of the payload structures.
mod h264 {
    pub const STAP_A: u8 = 24;
    pub const FU_A: u8 = 28;
}

/// RFC 7798 NAL unit types of the payload structures.
mod h265 {
    pub const AP: u8 = 48;
    pub const FU: u8 = 49;
}

/// A fragmented NAL unit being joined.
#[derive(Debug)]
struct Fragment {
    nal: Vec<u8>,
}

/// Depacketizes one RTP stream.
#[derive(Debug)]
pub struct Depacketizer {
    codec: Codec,
    /// Largest access unit, bytes (the ingest's `max_tag_bytes`).
    max_bytes: usize,
    current: Option<AccessUnit>,
    bytes: usize,
    fragment: Option<Fragment>,
    /// Access units finished so far: the first one of a connection may begin mid-frame.
    finished: u64,
    /// A packet was seen: a gap before the first one is not a loss (a client joining a live
    /// stream starts where it is; the RTSP server's RTP-Info may be older).
    started: bool,
    /// Payload structures seen that livesnap does not take (STAP-B, MTAP, FU-B, PACI):
    /// (type, count), for one log line per cause.
    pub unsupported: Vec<(u8, u64)>,
}

impl Depacketizer {
    /// A depacketizer for `codec` whose access units stay under `max_bytes`.
    pub fn new(codec: Codec, max_bytes: usize) -> Self {
        Depacketizer {
            codec,
            max_bytes,
            current: None,
            bytes: 0,
            fragment: None,
            finished: 0,
            started: false,
            unsupported: Vec::new(),
        }
    }

    /// Take one RTP packet: its extended `timestamp`, `marker` bit, the number of packets
    /// `lost` just before it, and its `payload`. Returns the access units it completes (at most
    /// two: the previous one, ended by a new timestamp, and this one, ended by its marker).
    pub fn push(
        &mut self,
        timestamp: i64,
        marker: bool,
        lost: u16,
        payload: &[u8],
    ) -> Vec<AccessUnit> {
        let mut done = Vec::new();
        if self
            .current
            .as_ref()
            .is_some_and(|au| au.timestamp != timestamp)
        {
            done.extend(self.finish());
        }
        let au = self.current.get_or_insert_with(|| AccessUnit {
            timestamp,
            nal_units: Vec::new(),
            damaged: false,
        });
        let first_packet = !std::mem::replace(&mut self.started, true);
        if lost > 0 && !first_packet {
            au.damaged = true;
            self.fragment = None;
        }
        if let Err(()) = self.payload(payload) {
            self.damage();
        }
        if marker {
            done.extend(self.finish());
        }
        done
    }

    /// The access unit in progress, ended (by the end of the stream).
    pub fn finish(&mut self) -> Option<AccessUnit> {
        let mut au = self.current.take()?;
        if self.fragment.take().is_some() {
            // A fragment without its end: cut.
            au.damaged = true;
        }
        self.bytes = 0;
        self.finished += 1;
        if self.finished == 1 && au.damaged {
            // The connection joined the stream inside this frame: nothing was lost, the frame
            // simply began before we did. Dropped without a word.
            return None;
        }
        (!au.nal_units.is_empty() || au.damaged).then_some(au)
    }

    fn damage(&mut self) {
        if let Some(au) = &mut self.current {
            au.damaged = true;
        }
        self.fragment = None;
    }

    fn add(&mut self, nal: Vec<u8>) -> Result<(), ()> {
        if nal.is_empty() {
            return Err(());
        }
        self.bytes = self.bytes.saturating_add(nal.len() + 4);
        let au = self.current.as_mut().ok_or(())?;
        if self.bytes > self.max_bytes {
            au.nal_units.clear();
            return Err(());
        }
        au.nal_units.push(nal);
        Ok(())
    }

    fn note_unsupported(&mut self, unit_type: u8) {
        match self.unsupported.iter_mut().find(|(t, _)| *t == unit_type) {
            Some((_, n)) => *n += 1,
            None => self.unsupported.push((unit_type, 1)),
        }
    }

    fn payload(&mut self, payload: &[u8]) -> Result<(), ()> {
        match self.codec {
            Codec::H264 => self.h264(payload),
            Codec::H265 => self.h265(payload),
        }
    }

    fn h264(&mut self, payload: &[u8]) -> Result<(), ()> {
        let &header = payload.first().ok_or(())?;
        if header & 0x80 != 0 {
            return Err(());
        }
        match header & 0x1f {
            0 => Err(()),
            1..=23 => {
                self.no_open_fragment()?;
                self.add(payload.to_vec())
            }
            h264::STAP_A => {
                self.no_open_fragment()?;
                self.aggregate(payload.get(1..).ok_or(())?)
            }
            h264::FU_A => {
                let &fu = payload.get(1).ok_or(())?;
                let first = (header & 0xe0) | (fu & 0x1f);
                self.fragment_part(fu & 0x80 != 0, fu & 0x40 != 0, &[first], &payload[2..])
            }
            other => {
                self.note_unsupported(other);
                Err(())
            }
        }
    }

    fn h265(&mut self, payload: &[u8]) -> Result<(), ()> {
        let (&b0, &b1) = (payload.first().ok_or(())?, payload.get(1).ok_or(())?);
        if b0 & 0x80 != 0 {
            return Err(());
        }
        match (b0 >> 1) & 0x3f {
            h265::AP => {
                self.no_open_fragment()?;
                self.aggregate(&payload[2..])
            }
            h265::FU => {
                let &fu = payload.get(2).ok_or(())?;
                let header = [(b0 & 0x81) | ((fu & 0x3f) << 1), b1];
                self.fragment_part(fu & 0x80 != 0, fu & 0x40 != 0, &header, &payload[3..])
            }
            0..=47 => {
                self.no_open_fragment()?;
                self.add(payload.to_vec())
            }
            other => {
                self.note_unsupported(other);
                Err(())
            }
        }
    }

    /// A new unit while a fragment is open: the fragment lost its end.
    fn no_open_fragment(&mut self) -> Result<(), ()> {
        if self.fragment.take().is_some()
            && let Some(au) = &mut self.current
        {
            au.damaged = true;
        }
        Ok(())
    }

    /// STAP-A / AP body: (16-bit size, NAL unit)*.
    fn aggregate(&mut self, mut rest: &[u8]) -> Result<(), ()> {
        if rest.is_empty() {
            return Err(());
        }
        while !rest.is_empty() {
            let (size, after) = rest.split_at_checked(2).ok_or(())?;
            let len = usize::from(u16::from_be_bytes([size[0], size[1]]));
            let (nal, after) = after.split_at_checked(len).ok_or(())?;
            self.add(nal.to_vec())?;
            rest = after;
        }
        Ok(())
    }

    /// One FU-A / FU packet: `start`/`end` bits, the NAL `header` it restores, its `body`.
    fn fragment_part(
        &mut self,
        start: bool,
        end: bool,
        header: &[u8],
        body: &[u8],
    ) -> Result<(), ()> {
        if start {
            self.no_open_fragment()?;
            if end {
                // Start and end in one fragment is not allowed (RFC 6184 §5.8).
                return Err(());
            }
            let mut nal = Vec::with_capacity(header.len() + body.len() * 4);
            nal.extend_from_slice(header);
            nal.extend_from_slice(body);
            self.fragment = Some(Fragment { nal });
            return Ok(());
        }
        let Some(fragment) = &mut self.fragment else {
            // A middle or end without its start (the start was lost).
            return Err(());
        };
        if fragment.nal.len().saturating_add(body.len()) > self.max_bytes {
            return Err(());
        }
        fragment.nal.extend_from_slice(body);
        if end && let Some(fragment) = self.fragment.take() {
            self.add(fragment.nal)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn units(aus: &[AccessUnit]) -> Vec<(i64, Vec<Vec<u8>>, bool)> {
        aus.iter()
            .map(|a| (a.timestamp, a.nal_units.clone(), a.damaged))
            .collect()
    }

    #[test]
    fn h264_single_stap_a_and_fu_a_make_one_access_unit() {
        let mut d = Depacketizer::new(Codec::H264, MAX);
        // STAP-A with SPS and PPS, then an IDR in three FU-A fragments, marker on the last.
        let stap = [24, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3];
        assert!(d.push(900, false, 0, &stap).is_empty());
        assert!(d.push(900, false, 0, &[0x7c, 0x85, 0xa, 0xb]).is_empty());
        assert!(d.push(900, false, 0, &[0x7c, 0x05, 0xc]).is_empty());
        let done = d.push(900, true, 0, &[0x7c, 0x45, 0xd]);
        assert_eq!(
            units(&done),
            vec![(
                900,
                vec![
                    vec![0x67, 1, 2],
                    vec![0x68, 3],
                    vec![0x65, 0xa, 0xb, 0xc, 0xd]
                ],
                false
            )]
        );
        // A single NAL unit without a marker ends when the timestamp moves on.
        assert!(d.push(3900, false, 0, &[0x41, 9]).is_empty());
        let done = d.push(6900, true, 0, &[0x41, 8]);
        assert_eq!(
            units(&done),
            vec![
                (3900, vec![vec![0x41, 9]], false),
                (6900, vec![vec![0x41, 8]], false)
            ]
        );
    }

    #[test]
    fn a_lost_fragment_damages_the_access_unit_and_drops_the_cut_unit() {
        let mut d = Depacketizer::new(Codec::H264, MAX);
        d.push(-3000, true, 0, &[0x41, 0]); // a whole first frame
        d.push(0, false, 0, &[0x06, 1]); // SEI arrives whole
        d.push(0, false, 0, &[0x7c, 0x85, 0xa]);
        // The middle fragment was lost: the client reports one packet lost before the end.
        let done = d.push(0, true, 1, &[0x7c, 0x45, 0xd]);
        assert_eq!(units(&done), vec![(0, vec![vec![0x06, 1]], true)]);
        // The next access unit is whole again.
        let done = d.push(3000, true, 0, &[0x41, 1]);
        assert_eq!(units(&done), vec![(3000, vec![vec![0x41, 1]], false)]);
    }

    #[test]
    fn joining_mid_frame_is_not_a_loss() {
        let mut d = Depacketizer::new(Codec::H264, MAX);
        // The first packet: a gap before it and a fragment without its start.
        assert!(d.push(0, true, 40, &[0x7c, 0x45, 0xd]).is_empty());
        let done = d.push(3000, true, 0, &[0x41, 1]);
        assert_eq!(units(&done), vec![(3000, vec![vec![0x41, 1]], false)]);
    }

    #[test]
    fn a_fragment_without_its_end_is_cut() {
        let mut d = Depacketizer::new(Codec::H264, MAX);
        d.push(-3000, true, 0, &[0x41, 0]);
        d.push(0, false, 0, &[0x7c, 0x85, 0xa]);
        let done = d.push(3000, true, 0, &[0x41, 1]);
        assert_eq!(
            units(&done),
            vec![(0, vec![], true), (3000, vec![vec![0x41, 1]], false)]
        );
    }

    #[test]
    fn h265_ap_and_fu_restore_the_two_byte_header() {
        let mut d = Depacketizer::new(Codec::H265, MAX);
        // AP (type 48) with VPS (32) and SPS (33).
        let ap = [96, 1, 0, 3, 64, 1, 7, 0, 3, 66, 1, 8];
        d.push(0, false, 0, &ap);
        // FU (type 49) of an IDR_W_RADL (19): start, end.
        d.push(0, false, 0, &[98, 1, 0x80 | 19, 0xaa]);
        let done = d.push(0, true, 0, &[98, 1, 0x40 | 19, 0xbb]);
        assert_eq!(
            units(&done),
            vec![(
                0,
                vec![vec![64, 1, 7], vec![66, 1, 8], vec![38, 1, 0xaa, 0xbb]],
                false
            )]
        );
    }

    #[test]
    fn malformed_packets_damage_without_panicking() {
        for codec in [Codec::H264, Codec::H265] {
            let mut d = Depacketizer::new(codec, 64);
            let whole: &[u8] = match codec {
                Codec::H264 => &[0x41, 0],
                Codec::H265 => &[2, 1, 0],
            };
            assert_eq!(d.push(-3000, true, 0, whole).len(), 1, "{codec:?}");
            for payload in [
                &[][..],
                &[0x80],
                &[24, 0, 9, 1],
                &[96, 1, 0],
                &[28],
                &[98, 1],
                &[25, 1, 2],
                &[0x7c, 0xc5, 1],
            ] {
                d.push(0, false, 0, payload);
            }
            let done = d.push(0, true, 0, &[0x41; 100]);
            assert_eq!(done.len(), 1, "{codec:?}");
            assert!(done[0].damaged, "{codec:?}");
        }
    }

    #[test]
    fn access_units_stay_under_the_limit() {
        let mut d = Depacketizer::new(Codec::H264, 100);
        d.push(-3000, true, 0, &[0x41, 0]);
        d.push(0, false, 0, &[0x7c, 0x85]);
        let mut middle = vec![0u8; 32];
        middle[..2].copy_from_slice(&[0x7c, 0x05]);
        for _ in 0..10 {
            d.push(0, false, 0, &middle);
        }
        let done = d.push(0, true, 0, &[0x7c, 0x45, 1]);
        assert_eq!(units(&done), vec![(0, vec![], true)]);
    }
}
