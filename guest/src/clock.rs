//! The session clock (DESIGN.md "Session clock"): milliseconds since the session's first tag of
//! any type, clamped at 0, made monotone over video tags by re-anchoring on backward jumps.

/// Session clock state. Feed every tag's raw timestamp to [`SessionClock::observe`] and every
/// video tag's to [`SessionClock::video`].
#[derive(Debug, Clone, Default)]
pub struct SessionClock {
    /// Raw timestamp of the session's first tag: the clock's zero.
    first_ts: Option<u32>,
    /// Raw timestamp and clock value of the last video tag, once there is one.
    last_video: Option<(u32, u64)>,
    /// Clock value mapped to `anchor_raw`: after a backward jump the new raw value maps to the
    /// last clock value, and time flows from there.
    anchor_clock: u64,
    /// Raw timestamp the clock is measured from (the first tag's, or the last re-anchor's).
    anchor_raw: u32,
}

impl SessionClock {
    /// Note a tag of any type: the first one fixes the clock's zero.
    pub fn observe(&mut self, raw_ts: u32) {
        if self.first_ts.is_none() {
            self.first_ts = Some(raw_ts);
            self.anchor_raw = raw_ts;
        }
    }

    /// Clock value of a video tag with raw timestamp `raw_ts`, in milliseconds. Monotone:
    /// a timestamp below the previous video tag's re-anchors the clock at its last value.
    pub fn video(&mut self, raw_ts: u32) -> u64 {
        self.observe(raw_ts);
        if let Some((last_raw, last_clock)) = self.last_video
            && raw_ts < last_raw
        {
            self.anchor_raw = raw_ts;
            self.anchor_clock = last_clock;
        }
        // Clamped at 0: a video tag stamped before the session's first (audio) tag is at 0.
        let clock = self.anchor_clock + u64::from(raw_ts.saturating_sub(self.anchor_raw));
        let clock = self.last_video.map_or(clock, |(_, last)| clock.max(last));
        self.last_video = Some((raw_ts, clock));
        clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_first_tag_of_any_type() {
        let mut c = SessionClock::default();
        c.observe(300); // audio first
        assert_eq!(c.video(300), 0);
        assert_eq!(c.video(1300), 1000);
    }

    #[test]
    fn video_before_first_tag_is_clamped_to_zero() {
        let mut c = SessionClock::default();
        c.observe(500);
        assert_eq!(c.video(100), 0);
        assert_eq!(c.video(400), 0);
        assert_eq!(c.video(900), 400);
    }

    #[test]
    fn backward_jump_reanchors_at_last_clock() {
        let mut c = SessionClock::default();
        assert_eq!(c.video(10_000), 0);
        assert_eq!(c.video(16_000), 6_000);
        // Encoder restart: raw goes back to 2000 — the clock stays at 6000 then flows.
        assert_eq!(c.video(2_000), 6_000);
        assert_eq!(c.video(2_040), 6_040);
    }

    #[test]
    fn forward_gaps_are_honoured() {
        let mut c = SessionClock::default();
        assert_eq!(c.video(0), 0);
        assert_eq!(c.video(40), 40);
        assert_eq!(c.video(60_040), 60_040);
    }

    #[test]
    fn wraparound_of_32_bit_timestamps_keeps_clock_monotone() {
        let mut c = SessionClock::default();
        assert_eq!(c.video(u32::MAX - 40), 0);
        assert_eq!(c.video(u32::MAX), 40);
        assert_eq!(c.video(0), 40);
        assert_eq!(c.video(40), 80);
    }
}
