//! The live storyboard (contract "Storyboard"): each stored capture becomes a tile of a sprite
//! sheet `storyboard-{n}.jpg` and a cue of `storyboard.vtt` in the session folder, in the
//! `#xywh=` form players use for thumbnail scrubbing.
//!
//! Tiles keep the picture's aspect: `tile_width` wide (never wider than the picture), the height
//! rounded to even. A sheet holds `columns × rows` tiles of one size; a tile of another size (the
//! stream changed its aspect) or a full sheet starts the next sheet. A sheet grows as it fills:
//! its width is the widest row so far, its height the rows so far.

use crate::error::Failure;
use crate::render::Yuv420;
use std::fmt::Write as _;

/// Largest tile width and sheet geometry accepted in settings.
pub const MAX_TILE_WIDTH_PX: u32 = 1920;
/// Most tiles per row or rows per sheet.
pub const MAX_GRID: u32 = 100;
/// Largest side of a composed sheet.
pub const MAX_SHEET_SIDE_PX: u32 = 16384;

/// Sheet geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoryboardSettings {
    /// Tile width, pixels.
    pub tile_width: u32,
    /// Tiles per row.
    pub columns: u32,
    /// Rows per sheet.
    pub rows: u32,
}

impl StoryboardSettings {
    /// Check the ranges; also that a full sheet stays within [`MAX_SHEET_SIDE_PX`] wide.
    pub fn check(&self) -> Result<(), Failure> {
        if !(2..=MAX_TILE_WIDTH_PX).contains(&self.tile_width) {
            return Err(Failure::limit(format!(
                "storyboard tile width {} px is outside 2..={MAX_TILE_WIDTH_PX}",
                self.tile_width
            )));
        }
        for (what, n) in [("columns", self.columns), ("rows", self.rows)] {
            if !(1..=MAX_GRID).contains(&n) {
                return Err(Failure::limit(format!(
                    "storyboard {what} {n} is outside 1..={MAX_GRID}"
                )));
            }
        }
        if u64::from(self.tile_width) * u64::from(self.columns) > u64::from(MAX_SHEET_SIDE_PX) {
            return Err(Failure::limit(format!(
                "storyboard sheets of {} columns of {} px exceed {MAX_SHEET_SIDE_PX} px",
                self.columns, self.tile_width
            )));
        }
        Ok(())
    }
}

/// The tile size of a `width × height` picture: `tile_width` (at most the picture's width) and
/// the height that keeps the aspect, both rounded to even and at least 2.
pub fn tile_size(width: u32, height: u32, tile_width: u32) -> (u32, u32) {
    let tw = even(tile_width.min(width));
    let th = if width == 0 {
        2
    } else {
        // round(tw * height / width)
        let h = (2 * u64::from(tw) * u64::from(height) + u64::from(width)) / (2 * u64::from(width));
        even(u32::try_from(h).unwrap_or(u32::MAX).min(height.max(2)))
    };
    (tw, th)
}

fn even(n: u32) -> u32 {
    (n & !1).max(2)
}

/// Where a tile goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Sheet number, from 1.
    pub sheet: u32,
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Tile width.
    pub width: u32,
    /// Tile height.
    pub height: u32,
    /// Sheet size with this tile in it.
    pub sheet_width: u32,
    /// See `sheet_width`.
    pub sheet_height: u32,
}

/// One cue: a placed tile shown from `start_ms` of the session clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cue {
    start_ms: u64,
    place: Placement,
}

/// The storyboard of one session: where tiles go and the cues so far.
#[derive(Debug, Clone)]
pub struct Storyboard {
    settings: StoryboardSettings,
    cues: Vec<Cue>,
    /// Tiles in the current sheet.
    in_sheet: u32,
}

impl Storyboard {
    /// An empty storyboard.
    pub fn new(settings: StoryboardSettings) -> Storyboard {
        Storyboard {
            settings,
            cues: Vec::new(),
            in_sheet: 0,
        }
    }

    /// The tile width renders are asked for.
    pub fn tile_width(&self) -> u32 {
        self.settings.tile_width
    }

    /// Place a `width × height` tile of the capture at session clock `clock_ms`.
    pub fn place(&mut self, clock_ms: u64, width: u32, height: u32) -> Placement {
        let per_sheet = self.settings.columns * self.settings.rows;
        let last = self.cues.last().map(|c| c.place);
        let same_size = last.is_some_and(|p| (p.width, p.height) == (width, height));
        let sheet = match last {
            None => 1,
            Some(p) if !same_size || self.in_sheet >= per_sheet => {
                self.in_sheet = 0;
                p.sheet + 1
            }
            Some(p) => p.sheet,
        };
        let index = self.in_sheet;
        self.in_sheet += 1;
        let (col, row) = (index % self.settings.columns, index / self.settings.columns);
        let used_columns = self.in_sheet.min(self.settings.columns);
        let place = Placement {
            sheet,
            x: col * width,
            y: row * height,
            width,
            height,
            sheet_width: used_columns * width,
            sheet_height: (row + 1) * height,
        };
        self.cues.push(Cue {
            start_ms: clock_ms,
            place,
        });
        place
    }

    /// `storyboard.vtt`: one cue per tile, from its clock to the next tile's (the last one to
    /// `end_ms`, the newest clock of the session, or one millisecond when that is not later).
    pub fn vtt(&self, end_ms: u64) -> String {
        let mut out = String::from("WEBVTT\n");
        for (i, cue) in self.cues.iter().enumerate() {
            let end = self
                .cues
                .get(i + 1)
                .map_or(end_ms, |next| next.start_ms)
                .max(cue.start_ms + 1);
            let p = cue.place;
            let _ = write!(
                out,
                "\n{} --> {}\nstoryboard-{}.jpg#xywh={},{},{},{}\n",
                timestamp(cue.start_ms),
                timestamp(end),
                p.sheet,
                p.x,
                p.y,
                p.width,
                p.height
            );
        }
        out
    }

    /// Sheet numbers used so far, 1..=n.
    pub fn sheets(&self) -> u32 {
        self.cues.last().map_or(0, |c| c.place.sheet)
    }
}

/// `HH:MM:SS.mmm`, hours unbounded.
fn timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// A tile placed in a sheet: JFIF-colour 4:2:0 planes of `width × height` (even sides) at even
/// `x`, `y`.
#[derive(Debug, Clone)]
pub struct PlacedTile {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// The tile.
    pub tile: Yuv420,
}

/// Paint `tiles` on a black `width × height` JFIF picture, ready for [`crate::encode::encode_jfif`].
pub fn compose(width: u32, height: u32, tiles: &[PlacedTile]) -> Result<Yuv420, Failure> {
    if width == 0
        || height == 0
        || !width.is_multiple_of(2)
        || !height.is_multiple_of(2)
        || width > MAX_SHEET_SIDE_PX
        || height > MAX_SHEET_SIDE_PX
    {
        return Err(Failure::limit(format!(
            "sheet {width}x{height} must have even sides of 2..={MAX_SHEET_SIDE_PX} px"
        )));
    }
    let (w, h) = (width as usize, height as usize);
    let mut sheet = Yuv420 {
        width,
        height,
        y: vec![0; w * h],
        u: vec![128; w / 2 * (h / 2)],
        v: vec![128; w / 2 * (h / 2)],
        full_range: true,
        matrix: crate::color::Matrix::Bt601,
    };
    for placed in tiles {
        let t = &placed.tile;
        t.check_planes()?;
        let fits = placed.x.is_multiple_of(2)
            && placed.y.is_multiple_of(2)
            && t.width.is_multiple_of(2)
            && t.height.is_multiple_of(2)
            && u64::from(placed.x) + u64::from(t.width) <= u64::from(width)
            && u64::from(placed.y) + u64::from(t.height) <= u64::from(height);
        if !fits {
            return Err(Failure::limit(format!(
                "tile {}x{} at ({}, {}) does not fit a {width}x{height} sheet on even positions",
                t.width, t.height, placed.x, placed.y
            )));
        }
        let (x, y, tw) = (placed.x as usize, placed.y as usize, t.width as usize);
        for (row, src) in t.y.chunks_exact(tw).enumerate() {
            let at = (y + row) * w + x;
            sheet.y[at..at + tw].copy_from_slice(src);
        }
        let (cw, cx, cy) = (tw / 2, x / 2, y / 2);
        for (plane, src) in [(&mut sheet.u, &t.u), (&mut sheet.v, &t.v)] {
            for (row, line) in src.chunks_exact(cw).enumerate() {
                let at = (cy + row) * (w / 2) + cx;
                plane[at..at + cw].copy_from_slice(line);
            }
        }
    }
    Ok(sheet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> Storyboard {
        Storyboard::new(StoryboardSettings {
            tile_width: 160,
            columns: 2,
            rows: 2,
        })
    }

    #[test]
    fn tile_sizes_keep_the_aspect_on_even_sides() {
        assert_eq!(tile_size(1920, 1080, 160), (160, 90));
        assert_eq!(tile_size(1280, 720, 160), (160, 90));
        assert_eq!(tile_size(720, 1280, 160), (160, 284));
        assert_eq!(tile_size(100, 50, 160), (100, 50));
        assert_eq!(tile_size(3, 1, 160), (2, 2));
    }

    #[test]
    fn tiles_fill_rows_then_sheets_and_a_new_size_starts_a_sheet() {
        let mut b = board();
        let p: Vec<_> = (0..5).map(|i| b.place(i * 1000, 160, 90)).collect();
        assert_eq!(
            (
                p[0].sheet,
                p[0].x,
                p[0].y,
                p[0].sheet_width,
                p[0].sheet_height
            ),
            (1, 0, 0, 160, 90)
        );
        assert_eq!((p[1].x, p[1].y, p[1].sheet_width), (160, 0, 320));
        assert_eq!((p[2].x, p[2].y, p[2].sheet_height), (0, 90, 180));
        assert_eq!((p[4].sheet, p[4].x, p[4].y), (2, 0, 0));
        let q = b.place(6000, 90, 160);
        assert_eq!((q.sheet, q.x, q.y), (3, 0, 0));
        assert_eq!(b.sheets(), 3);
    }

    #[test]
    fn cues_run_from_capture_to_capture_in_webvtt_form() {
        let mut b = board();
        b.place(0, 160, 90);
        b.place(5000, 160, 90);
        b.place(3_725_001, 160, 90);
        assert_eq!(
            b.vtt(3_726_000),
            "WEBVTT\n\n00:00:00.000 --> 00:00:05.000\nstoryboard-1.jpg#xywh=0,0,160,90\n\n\
             00:00:05.000 --> 01:02:05.001\nstoryboard-1.jpg#xywh=160,0,160,90\n\n\
             01:02:05.001 --> 01:02:06.000\nstoryboard-1.jpg#xywh=0,90,160,90\n"
        );
        assert_eq!(Storyboard::new(b.settings).vtt(10), "WEBVTT\n");
    }

    #[test]
    fn compose_copies_tiles_and_refuses_misfits() {
        let tile = Yuv420 {
            width: 2,
            height: 2,
            y: vec![200; 4],
            u: vec![10],
            v: vec![20],
            full_range: true,
            matrix: crate::color::Matrix::Bt601,
        };
        let sheet = compose(
            4,
            2,
            &[PlacedTile {
                x: 2,
                y: 0,
                tile: tile.clone(),
            }],
        )
        .unwrap();
        assert_eq!(sheet.y, [0, 0, 200, 200, 0, 0, 200, 200]);
        assert_eq!(
            (sheet.u.as_slice(), sheet.v.as_slice()),
            (&[128, 10][..], &[128, 20][..])
        );
        assert!(
            compose(
                4,
                2,
                &[PlacedTile {
                    x: 4,
                    y: 0,
                    tile: tile.clone()
                }]
            )
            .is_err()
        );
        assert!(compose(4, 2, &[PlacedTile { x: 1, y: 0, tile }]).is_err());
        assert!(compose(3, 2, &[]).is_err());
    }
}
