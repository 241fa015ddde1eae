//! On-demand snapshots (README "On-demand snapshot"): the newest I-frame a live stream's capture
//! instance kept, rendered now in the render pool and answered, never stored and never called
//! back. Requests for the same I-frame and size share one render; a new I-frame drops the old
//! renders.

use crate::runtime::{CaptureInstance, ErrorCode, Failure, Shot};
use crate::serve::session::ServeCtx;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Distinct `shortside` values rendered from one I-frame, at most: a client asking for many
/// sizes of one frame would otherwise make as many renders.
pub const MAX_SIZES_PER_IFRAME: usize = 4;

/// A rendered snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The JPEG.
    pub jpeg: Bytes,
    /// The I-frame's number within the session (component `iframe.number`).
    pub number: u64,
    /// The I-frame's session clock, ms.
    pub clock_ms: u64,
    /// JPEG width.
    pub width: u32,
    /// JPEG height.
    pub height: u32,
}

/// Why no snapshot.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SnapshotError {
    /// No I-frame kept yet (or the tenant has snapshots off).
    #[error("no I-frame of this stream yet")]
    NoIframe,
    /// The render queue is full, or this frame has been asked in too many sizes.
    #[error("{0}")]
    Busy(String),
    /// The frame could not be rendered (remembered for this frame: not retried).
    #[error("{}", .0.text())]
    Failed(Failure),
    /// The stream's capture instance is gone, or the render workers stopped.
    #[error("{0}")]
    Unavailable(String),
}

/// One live stream's snapshot source: its capture instance and the renders of its newest
/// I-frame.
pub struct Snapshots {
    capture: Arc<Mutex<CaptureInstance>>,
    shortside: Option<u32>,
    jpeg_quality: u8,
    renders: Mutex<Renders>,
}

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshots")
            .field("shortside", &self.shortside)
            .field("jpeg_quality", &self.jpeg_quality)
            .finish_non_exhaustive()
    }
}

type Render = Arc<OnceCell<Result<Snapshot, Failure>>>;

/// The renders of I-frame `number`, by requested short side.
#[derive(Default)]
struct Renders {
    number: u64,
    sizes: Vec<(Option<u32>, Render)>,
}

impl Snapshots {
    /// A source over `capture` (which must keep its last I-frame), rendering at the tenant's
    /// `shortside` and `jpeg_quality` unless a request asks for another short side.
    pub fn new(
        capture: Arc<Mutex<CaptureInstance>>,
        shortside: Option<u32>,
        jpeg_quality: u8,
    ) -> Snapshots {
        Snapshots {
            capture,
            shortside,
            jpeg_quality,
            renders: Mutex::new(Renders::default()),
        }
    }

    /// The newest I-frame, rendered with `shortside` (or the tenant's).
    pub async fn take(
        &self,
        ctx: &ServeCtx,
        shortside: Option<u32>,
    ) -> Result<Snapshot, SnapshotError> {
        let frame = {
            let mut capture = self
                .capture
                .lock()
                .map_err(|_| SnapshotError::Unavailable("capture instance poisoned".into()))?;
            capture.last_iframe().map_err(|e| {
                SnapshotError::Unavailable(format!("the stream's capture instance failed: {e:#}"))
            })?
        };
        let frame = frame.ok_or(SnapshotError::NoIframe)?;
        let shortside = shortside.or(self.shortside);
        let render = {
            let mut renders = self
                .renders
                .lock()
                .map_err(|_| SnapshotError::Unavailable("snapshot state poisoned".into()))?;
            if renders.number != frame.number {
                renders.number = frame.number;
                renders.sizes.clear();
            }
            match renders.sizes.iter().find(|(s, _)| *s == shortside) {
                Some((_, render)) => render.clone(),
                None if renders.sizes.len() >= MAX_SIZES_PER_IFRAME => {
                    return Err(SnapshotError::Busy(format!(
                        "this I-frame was already asked for in {MAX_SIZES_PER_IFRAME} sizes"
                    )));
                }
                None => {
                    let render = Render::default();
                    renders.sizes.push((shortside, render.clone()));
                    render
                }
            }
        };
        let (number, clock_ms) = (frame.number, frame.clock_ms);
        let result = render
            .get_or_try_init(|| async {
                let shot = Shot {
                    seq: 0,
                    key: String::new(),
                    unix_timestamp: 0,
                    clock_ms: frame.clock_ms,
                    pts_ms: frame.pts_ms,
                    codec: frame.codec,
                    config: frame.config,
                    access_unit: frame.access_unit,
                    shortside_px: shortside,
                    jpeg_quality: self.jpeg_quality,
                    color: frame.color,
                };
                // A full queue is not remembered: the next request tries again.
                let rx = ctx.pool.submit(shot).map_err(|f| match f.code {
                    ErrorCode::LimitExceeded => SnapshotError::Busy(f.message),
                    _ => SnapshotError::Unavailable(f.message),
                })?;
                ctx.metrics.snapshot_renders.fetch_add(1, Ordering::Relaxed);
                let picture = rx
                    .await
                    .map_err(|_| SnapshotError::Unavailable("render worker stopped".into()))?;
                Ok::<_, SnapshotError>(picture.map(|p| Snapshot {
                    jpeg: Bytes::from(p.jpeg),
                    number,
                    clock_ms,
                    width: p.width_px,
                    height: p.height_px,
                }))
            })
            .await?;
        result.clone().map_err(SnapshotError::Failed)
    }
}
