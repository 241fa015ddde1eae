//! The optional session features on the host's side (README "Session index", "Storyboard",
//! "Blank and frozen pictures"): which ones a tenant or a replay turned on, and the tiles of the
//! storyboard sheet being filled. What is captured, skipped, listed and where tiles go is decided
//! in the component; the host only keeps the current sheet's pixels and stores what it is given.

use crate::runtime::{PlacedTile, Placement, SessionOptions, StoryboardSettings, Tile};

/// Largest side of a storyboard sheet, pixels (the component refuses larger).
pub const MAX_SHEET_SIDE_PX: u32 = 16384;

/// The optional features of one session. `Default`: all off (the plain KLS behaviour).
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Write `index.json` into the session folder.
    pub index: bool,
    /// Refresh the index every this many completed attempts while the session is live.
    pub index_every: u32,
    /// Send `LiveSnapShotSession` started/ended callbacks.
    pub session_callbacks: bool,
    /// Withdraw blank pictures.
    pub skip_blank: bool,
    /// Withdraw pictures equal to the previous capture.
    pub skip_frozen: bool,
    /// Sprite sheets and WebVTT.
    pub storyboard: Option<StoryboardSettings>,
}

impl Features {
    /// The component's session options.
    pub fn options(&self) -> SessionOptions {
        SessionOptions {
            index: self.index,
            skip_blank: self.skip_blank,
            skip_frozen: self.skip_frozen,
            storyboard: self.storyboard,
        }
    }

    /// Shots go through `render-shot` and `judge`.
    pub fn judged(&self) -> bool {
        self.options().any()
    }

    /// A skip option is on: a shot must be judged before the stream's next tag is pushed for the
    /// output to be deterministic.
    pub fn skips(&self) -> bool {
        self.skip_blank || self.skip_frozen
    }

    /// The tile width renders are asked for.
    pub fn tile_width(&self) -> Option<u32> {
        self.storyboard.map(|b| b.tile_width_px)
    }

    /// Whether the index is due after `completed` attempts.
    pub fn index_due(&self, completed: u64) -> bool {
        self.index && completed > 0 && completed.is_multiple_of(u64::from(self.index_every.max(1)))
    }
}

/// The sheet being filled: its number and its tiles so far (at most columns × rows).
#[derive(Debug, Default)]
pub struct Sheet {
    number: u32,
    width: u32,
    height: u32,
    tiles: Vec<PlacedTile>,
}

impl Sheet {
    /// Put `tile` where `place` says (a new sheet number drops the previous sheet's tiles).
    pub fn add(&mut self, place: &Placement, tile: Tile) {
        if place.sheet != self.number {
            self.number = place.sheet;
            self.tiles.clear();
        }
        self.width = place.sheet_width_px;
        self.height = place.sheet_height_px;
        self.tiles.push(PlacedTile {
            x: place.x,
            y: place.y,
            tile,
        });
    }

    /// The sheet's object name in the session folder.
    pub fn file_name(&self) -> String {
        format!("storyboard-{}.jpg", self.number)
    }

    /// Width and height of the sheet so far.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The tiles so far.
    pub fn tiles(&self) -> &[PlacedTile] {
        &self.tiles
    }

    /// Bytes of pixels held.
    pub fn bytes(&self) -> usize {
        self.tiles
            .iter()
            .map(|t| t.tile.y.len() + t.tile.u.len() + t.tile.v.len())
            .sum()
    }
}
