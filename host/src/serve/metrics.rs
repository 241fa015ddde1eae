//! Service counters, rendered in the Prometheus text format (version 0.0.4) by `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Error codes a capture can end with, in callback spelling; index 0 is success.
pub const CODES: [&str; 6] = [
    "OK",
    "DecodeFailed",
    "UnsupportedStream",
    "UploadFailed",
    "Timeout",
    "LimitExceeded",
];

/// Upper bounds of the latency histograms, seconds.
const BUCKETS_S: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A Prometheus histogram of durations over [`BUCKETS_S`].
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; 10],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        // Count first, then buckets from the widest down: a scrape, which reads the buckets
        // upwards and the count last, never sees a bucket above a wider one or above the count.
        self.count.fetch_add(1, Ordering::SeqCst);
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS_S).rev() {
            if s <= bound {
                bucket.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, n) in BUCKETS_S.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", load(n));
        }
        let count = load(&self.count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", load(&self.sum_us) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// One capture latency kept for a load test: the shot's codec (`None`: a refused attempt) and
/// the latency in µs.
pub type LatencySample = (Option<crate::runtime::Codec>, u32);

/// Counters shared by every stream.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sessions started (publishes accepted, pulls connected).
    pub sessions_started: AtomicU64,
    /// Publishes refused (bad key, unknown app, invalid name, already live, over a limit).
    pub publishes_refused: AtomicU64,
    /// Streams ended by a trap or an ingest error.
    pub streams_failed: AtomicU64,
    /// Tags the guest could not use (malformed, unsupported), skipped.
    pub tags_skipped: AtomicU64,
    /// On-demand snapshots rendered (one per I-frame and size, however many asked).
    pub snapshot_renders: AtomicU64,
    /// On-demand snapshot requests answered with a picture.
    pub snapshots_served: AtomicU64,
    /// On-demand snapshot requests refused with 429 (render queue full, too many sizes).
    pub snapshots_busy: AtomicU64,
    /// Capture attempts by outcome code (index into [`CODES`]).
    captures: [AtomicU64; 6],
    /// Shots withdrawn as blank, and as frozen.
    skipped: [AtomicU64; 2],
    /// Shot to JPEG, render-queue wait included.
    render: Histogram,
    /// I-frame arrival to its callback being queued.
    capture_latency: Histogram,
    /// Every capture latency in µs with its codec, kept only when a load test asks for exact
    /// percentiles.
    latency_samples: std::sync::Mutex<Option<Vec<LatencySample>>>,
}

impl Metrics {
    /// Count one capture attempt that ended with callback code `code`.
    pub fn capture(&self, code: &str) {
        if let Some(i) = CODES.iter().position(|c| *c == code) {
            self.captures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count a shot withdrawn by `skip_blank` / `skip_frozen`.
    pub fn skip(&self, reason: crate::runtime::SkipReason) {
        let i = match reason {
            crate::runtime::SkipReason::Blank => 0,
            crate::runtime::SkipReason::Frozen => 1,
        };
        self.skipped[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Shots withdrawn so far as blank and as frozen.
    pub fn skipped(&self) -> (u64, u64) {
        (
            self.skipped[0].load(Ordering::Relaxed),
            self.skipped[1].load(Ordering::Relaxed),
        )
    }

    /// Captures counted with `code` so far.
    pub fn captures(&self, code: &str) -> u64 {
        CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.captures[i].load(Ordering::Relaxed))
    }

    /// Record one render's latency (queue wait included).
    pub fn render_latency(&self, d: Duration) {
        self.render.observe(d);
    }

    /// Record one capture's latency: from its I-frame's arrival to its callback being queued;
    /// `codec` is the shot's (`None` for a refused attempt).
    pub fn capture_latency(&self, d: Duration, codec: Option<crate::runtime::Codec>) {
        self.capture_latency.observe(d);
        if let Ok(mut samples) = self.latency_samples.lock()
            && let Some(samples) = samples.as_mut()
        {
            samples.push((codec, u32::try_from(d.as_micros()).unwrap_or(u32::MAX)));
        }
    }

    /// Start keeping every latency sample (load tests).
    pub fn keep_latency_samples(&self) {
        if let Ok(mut samples) = self.latency_samples.lock() {
            samples.get_or_insert_with(Vec::new);
        }
    }

    /// The latency samples kept so far with their codecs, µs.
    pub fn latency_samples(&self) -> Vec<LatencySample> {
        self.latency_samples
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_default()
    }

    /// The Prometheus text exposition, with the gauges the caller reads at scrape time.
    pub fn render_text(
        &self,
        active_streams: usize,
        callback_queue_depth: u64,
        callbacks_dead_lettered: u64,
        callbacks_rejected: u64,
    ) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let _ = writeln!(
            out,
            "# HELP livesnap_active_streams Live streams being captured."
        );
        let _ = writeln!(out, "# TYPE livesnap_active_streams gauge");
        let _ = writeln!(out, "livesnap_active_streams {active_streams}");
        let _ = writeln!(
            out,
            "# HELP livesnap_sessions_started_total Sessions started (publishes and pulls)."
        );
        let _ = writeln!(out, "# TYPE livesnap_sessions_started_total counter");
        let _ = writeln!(
            out,
            "livesnap_sessions_started_total {}",
            load(&self.sessions_started)
        );
        let _ = writeln!(
            out,
            "# HELP livesnap_publishes_refused_total Publishes refused."
        );
        let _ = writeln!(out, "# TYPE livesnap_publishes_refused_total counter");
        let _ = writeln!(
            out,
            "livesnap_publishes_refused_total {}",
            load(&self.publishes_refused)
        );
        let _ = writeln!(
            out,
            "# HELP livesnap_streams_failed_total Streams ended by a trap or an ingest error."
        );
        let _ = writeln!(out, "# TYPE livesnap_streams_failed_total counter");
        let _ = writeln!(
            out,
            "livesnap_streams_failed_total {}",
            load(&self.streams_failed)
        );
        let _ = writeln!(
            out,
            "# HELP livesnap_tags_skipped_total Tags the capture component could not use (malformed or unsupported); each cause is logged once per session."
        );
        let _ = writeln!(out, "# TYPE livesnap_tags_skipped_total counter");
        let _ = writeln!(
            out,
            "livesnap_tags_skipped_total {}",
            load(&self.tags_skipped)
        );
        let _ = writeln!(
            out,
            "# HELP livesnap_captures_skipped_total Due I-frames not captured because their picture was blank or equal to the previous capture (skip_blank, skip_frozen); no callback."
        );
        let _ = writeln!(out, "# TYPE livesnap_captures_skipped_total counter");
        for (reason, n) in ["blank", "frozen"].iter().zip(&self.skipped) {
            let _ = writeln!(
                out,
                "livesnap_captures_skipped_total{{reason=\"{reason}\"}} {}",
                load(n)
            );
        }
        let _ = writeln!(
            out,
            "# HELP livesnap_captures_total Capture attempts by callback code."
        );
        let _ = writeln!(out, "# TYPE livesnap_captures_total counter");
        for (code, n) in CODES.iter().zip(&self.captures) {
            let _ = writeln!(
                out,
                "livesnap_captures_total{{code=\"{code}\"}} {}",
                load(n)
            );
        }
        self.render.write(
            &mut out,
            "livesnap_render_seconds",
            "Time from a shot to its JPEG, queue included.",
        );
        self.capture_latency.write(
            &mut out,
            "livesnap_capture_latency_seconds",
            "Time from an I-frame's arrival to its callback being queued.",
        );
        for (name, help, counter) in [
            (
                "livesnap_snapshot_renders_total",
                "On-demand snapshots rendered: one per I-frame and size, however many requests share it.",
                &self.snapshot_renders,
            ),
            (
                "livesnap_snapshots_served_total",
                "On-demand snapshot requests answered with a picture.",
                &self.snapshots_served,
            ),
            (
                "livesnap_snapshots_busy_total",
                "On-demand snapshot requests refused with 429 (render queue full or too many sizes of one I-frame).",
                &self.snapshots_busy,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", load(counter));
        }
        let _ = writeln!(
            out,
            "# HELP livesnap_callback_queue_depth Callbacks spooled, not yet delivered or final."
        );
        let _ = writeln!(out, "# TYPE livesnap_callback_queue_depth gauge");
        let _ = writeln!(out, "livesnap_callback_queue_depth {callback_queue_depth}");
        let _ = writeln!(
            out,
            "# HELP livesnap_callbacks_dead_lettered_total Callbacks that expired undelivered."
        );
        let _ = writeln!(out, "# TYPE livesnap_callbacks_dead_lettered_total counter");
        let _ = writeln!(
            out,
            "livesnap_callbacks_dead_lettered_total {callbacks_dead_lettered}"
        );
        let _ = writeln!(
            out,
            "# HELP livesnap_callbacks_rejected_total Callbacks refused for good (3xx/4xx)."
        );
        let _ = writeln!(out, "# TYPE livesnap_callbacks_rejected_total counter");
        let _ = writeln!(
            out,
            "livesnap_callbacks_rejected_total {callbacks_rejected}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_codes_are_labelled() {
        let m = Metrics::default();
        m.render_latency(Duration::from_millis(30));
        m.render_latency(Duration::from_millis(300));
        m.capture("OK");
        m.capture("DecodeFailed");
        m.capture("OK");
        let text = m.render_text(3, 5, 1, 2);
        assert!(text.contains("livesnap_active_streams 3\n"));
        assert!(text.contains("livesnap_captures_total{code=\"OK\"} 2\n"));
        assert!(text.contains("livesnap_captures_total{code=\"DecodeFailed\"} 1\n"));
        assert!(text.contains("livesnap_render_seconds_bucket{le=\"0.025\"} 0\n"));
        assert!(text.contains("livesnap_render_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("livesnap_render_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("livesnap_render_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("livesnap_render_seconds_sum 0.33\n"));
        assert!(text.contains("livesnap_render_seconds_count 2\n"));
        assert!(text.contains("livesnap_capture_latency_seconds_count 0\n"));
        m.capture_latency(Duration::from_millis(1500), None);
        let text = m.render_text(3, 5, 1, 2);
        assert!(text.contains("livesnap_capture_latency_seconds_bucket{le=\"1\"} 0\n"));
        assert!(text.contains("livesnap_capture_latency_seconds_bucket{le=\"2.5\"} 1\n"));
        assert!(text.contains("livesnap_capture_latency_seconds_count 1\n"));
        assert!(text.contains("livesnap_callback_queue_depth 5\n"));
        assert!(text.contains("livesnap_callbacks_rejected_total 2\n"));
    }
}
