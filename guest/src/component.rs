//! The WIT glue: bindings generated from `wit/livesnap.wit` and the conversions between WIT types
//! and the pure modules. Nothing here decides anything.

use crate::capture::{
    Action, Judged, Options, Outcome, Session, SessionEvent, SessionInfo, Settings, SkipReason,
    Verdict,
};
use crate::error::{ErrorCode, Failure};
use crate::flv::{ColorConfig, VideoCodec};
use crate::frame::Frame;
use crate::naming::KeyMode;
use crate::render::{self, Matrix};
use crate::render_hevc;
use crate::storyboard::{PlacedTile, StoryboardSettings};
use crate::tonemap::Transfer;
use std::cell::RefCell;

mod bindings {
    wit_bindgen::generate!({
        world: "snapper",
        path: "../wit",
    });
}

use bindings::exports::livesnap::snap::capture as wit_capture;
use bindings::exports::livesnap::snap::render as wit_render;
use bindings::livesnap::snap::types as wit_types;

impl From<Failure> for wit_types::Failure {
    fn from(f: Failure) -> Self {
        wit_types::Failure {
            code: match f.code {
                ErrorCode::DecodeFailed => wit_types::ErrorCode::DecodeFailed,
                ErrorCode::UnsupportedStream => wit_types::ErrorCode::UnsupportedStream,
                ErrorCode::UploadFailed => wit_types::ErrorCode::UploadFailed,
                ErrorCode::Timeout => wit_types::ErrorCode::Timeout,
                ErrorCode::LimitExceeded => wit_types::ErrorCode::LimitExceeded,
            },
            message: f.message,
        }
    }
}

impl From<wit_types::Failure> for Failure {
    fn from(f: wit_types::Failure) -> Self {
        let code = match f.code {
            wit_types::ErrorCode::DecodeFailed => ErrorCode::DecodeFailed,
            wit_types::ErrorCode::UnsupportedStream => ErrorCode::UnsupportedStream,
            wit_types::ErrorCode::UploadFailed => ErrorCode::UploadFailed,
            wit_types::ErrorCode::Timeout => ErrorCode::Timeout,
            wit_types::ErrorCode::LimitExceeded => ErrorCode::LimitExceeded,
        };
        Failure::new(code, f.message)
    }
}

struct Component;

/// The `session` resource: the pure session behind a `RefCell`, as resource methods take `&self`.
struct SessionResource(RefCell<Session>);

impl wit_capture::Guest for Component {
    type Session = SessionResource;

    fn callback_body(
        info: wit_capture::SessionInfo,
        settings: wit_capture::Settings,
        seq: u32,
        key: String,
        unix_timestamp: u64,
        outcome: wit_capture::Outcome,
    ) -> Result<String, wit_types::Failure> {
        Ok(crate::capture::callback_body(
            guest_info(info),
            guest_settings(settings),
            seq,
            &key,
            unix_timestamp,
            guest_outcome(outcome),
        )?)
    }
}

fn guest_info(info: wit_capture::SessionInfo) -> SessionInfo {
    SessionInfo {
        app: info.app,
        stream: info.stream,
        push_start_ms: info.push_start_ms,
        session_id: info.session_id,
    }
}

fn guest_settings(settings: wit_capture::Settings) -> Settings {
    Settings {
        interval_s: settings.interval_s,
        mode: match settings.mode {
            wit_capture::KeyMode::Sequence => KeyMode::Sequence,
            wit_capture::KeyMode::Overwrite => KeyMode::Overwrite,
        },
        shortside_px: settings.shortside_px,
        quality: settings.quality,
        bucket: settings.bucket,
        uniqname: settings.uniqname,
        alterurl: settings.alterurl,
    }
}

fn guest_outcome(outcome: wit_capture::Outcome) -> Outcome {
    match outcome {
        wit_capture::Outcome::Stored((w, h)) => Outcome::Stored(w, h),
        wit_capture::Outcome::Failed(f) => Outcome::Failed(f.into()),
    }
}

impl wit_capture::GuestSession for SessionResource {
    fn create(
        info: wit_capture::SessionInfo,
        settings: wit_capture::Settings,
    ) -> Result<wit_capture::Session, wit_types::Failure> {
        Self::create_with(
            info,
            settings,
            wit_capture::SessionOptions {
                index: false,
                skip_blank: false,
                skip_frozen: false,
                storyboard: None,
            },
        )
    }

    fn create_with(
        info: wit_capture::SessionInfo,
        settings: wit_capture::Settings,
        options: wit_capture::SessionOptions,
    ) -> Result<wit_capture::Session, wit_types::Failure> {
        let (info, settings) = (guest_info(info), guest_settings(settings));
        let options = Options {
            index: options.index,
            skip_blank: options.skip_blank,
            skip_frozen: options.skip_frozen,
            storyboard: options.storyboard.map(|b| StoryboardSettings {
                tile_width: b.tile_width_px,
                columns: b.columns,
                rows: b.rows,
            }),
        };
        let session = Session::with_options(info, settings, options)?;
        Ok(wit_capture::Session::new(SessionResource(RefCell::new(
            session,
        ))))
    }

    fn push_tag(
        &self,
        tag_type: u8,
        timestamp_ms: u32,
        body: Vec<u8>,
    ) -> Result<wit_capture::Action, wit_types::Failure> {
        let action = self
            .0
            .borrow_mut()
            .push_tag(tag_type, timestamp_ms, &body)?;
        Ok(wit_action(action))
    }

    fn push_frame(
        &self,
        frame: wit_capture::CodedFrame,
    ) -> Result<wit_capture::Action, wit_types::Failure> {
        let action = self.0.borrow_mut().push_frame(&Frame {
            codec: guest_codec(frame.codec),
            dts_ms: frame.dts_ms,
            pts_ms: frame.pts_ms,
            parameter_sets: &frame.parameter_sets,
            nal_units: &frame.nal_units,
            damaged: frame.damaged,
        })?;
        Ok(wit_action(action))
    }

    fn complete(
        &self,
        seq: u32,
        outcome: wit_capture::Outcome,
    ) -> Result<String, wit_types::Failure> {
        Ok(self.0.borrow_mut().complete(seq, guest_outcome(outcome))?)
    }

    fn judge(
        &self,
        seq: u32,
        analysis: wit_types::Analysis,
    ) -> Result<wit_capture::Verdict, wit_types::Failure> {
        let judged = Judged {
            jpeg_bytes: analysis.jpeg_bytes,
            width: analysis.width_px,
            height: analysis.height_px,
            blank: analysis.blank,
            signature: analysis.signature,
            tile: analysis.tile,
        };
        Ok(match self.0.borrow_mut().judge(seq, judged)? {
            Verdict::Keep(place) => {
                wit_capture::Verdict::Keep(place.map(|p| wit_capture::Placement {
                    sheet: p.sheet,
                    x: p.x,
                    y: p.y,
                    sheet_width_px: p.sheet_width,
                    sheet_height_px: p.sheet_height,
                }))
            }
            Verdict::Skip(SkipReason::Blank) => {
                wit_capture::Verdict::Skip(wit_capture::SkipReason::Blank)
            }
            Verdict::Skip(SkipReason::Frozen) => {
                wit_capture::Verdict::Skip(wit_capture::SkipReason::Frozen)
            }
        })
    }

    fn folder(&self) -> String {
        self.0.borrow().folder()
    }

    fn index(&self, end: Option<wit_capture::SessionEnd>) -> String {
        self.0
            .borrow()
            .index_json(end.as_ref().map(|e| (e.ended_ms, e.reason.as_str())))
    }

    fn clock_ms(&self) -> u64 {
        self.0.borrow().clock_ms()
    }

    fn storyboard_vtt(&self) -> String {
        self.0.borrow().storyboard_vtt()
    }

    fn event_body(&self, event: wit_capture::SessionEvent) -> String {
        let event = match event {
            wit_capture::SessionEvent::Started => SessionEvent::Started,
            wit_capture::SessionEvent::Ended(end) => SessionEvent::Ended {
                ended_ms: end.ended_ms,
                reason: end.reason,
            },
        };
        self.0.borrow().event_body(&event)
    }

    fn keep_last_iframe(&self, keep: bool) {
        self.0.borrow_mut().keep_last_iframe(keep);
    }

    fn last_iframe(&self) -> Option<wit_capture::Iframe> {
        let session = self.0.borrow();
        let frame = session.last_iframe()?;
        Some(wit_capture::Iframe {
            number: frame.number,
            clock_ms: frame.clock_ms,
            pts_ms: frame.pts_ms,
            codec: wit_codec(frame.codec),
            config: frame.config.clone(),
            access_unit: frame.access_unit.clone(),
            color: frame.color.map(wit_color),
        })
    }
}

fn wit_action(action: Action) -> wit_capture::Action {
    match action {
        Action::None => wit_capture::Action::None,
        Action::Refused(body) => wit_capture::Action::Refused(body),
        Action::Capture(shot) => wit_capture::Action::Capture(wit_capture::Shot {
            seq: shot.seq,
            key: shot.key,
            unix_timestamp: shot.unix_timestamp,
            clock_ms: shot.clock_ms,
            pts_ms: shot.pts_ms,
            codec: wit_codec(shot.codec),
            config: shot.config,
            access_unit: shot.access_unit,
            shortside_px: shot.shortside_px,
            jpeg_quality: shot.jpeg_quality,
            color: shot.color.map(wit_color),
        }),
    }
}

fn wit_color(c: ColorConfig) -> wit_types::ColorConfig {
    wit_types::ColorConfig {
        bit_depth: c.bit_depth,
        color_primaries: c.color_primaries,
        transfer_characteristics: c.transfer_characteristics,
        matrix_coefficients: c.matrix_coefficients,
    }
}

fn guest_color(c: wit_types::ColorConfig) -> ColorConfig {
    ColorConfig {
        bit_depth: c.bit_depth,
        color_primaries: c.color_primaries,
        transfer_characteristics: c.transfer_characteristics,
        matrix_coefficients: c.matrix_coefficients,
    }
}

/// Shots and kept I-frames are only made for the two decoded codecs.
fn wit_codec(codec: VideoCodec) -> wit_types::Codec {
    match codec {
        VideoCodec::Hevc => wit_types::Codec::Hevc,
        _ => wit_types::Codec::Avc,
    }
}

fn guest_codec(codec: wit_types::Codec) -> VideoCodec {
    match codec {
        wit_types::Codec::Avc => VideoCodec::Avc,
        wit_types::Codec::Hevc => VideoCodec::Hevc,
    }
}

fn wit_tile(tile: crate::render::Yuv420) -> wit_render::Tile {
    wit_render::Tile {
        width_px: tile.width,
        height_px: tile.height,
        y: tile.y,
        u: tile.u,
        v: tile.v,
    }
}

fn wit_matrix(matrix: Matrix) -> wit_render::Matrix {
    match matrix {
        Matrix::Bt601 => wit_render::Matrix::Bt601,
        Matrix::Bt709 => wit_render::Matrix::Bt709,
        Matrix::Bt2020 => wit_render::Matrix::Bt2020,
    }
}

impl wit_render::Guest for Component {
    fn render(
        codec: wit_types::Codec,
        config: Vec<u8>,
        access_unit: Vec<u8>,
        shortside_px: Option<u32>,
        jpeg_quality: u8,
    ) -> Result<wit_render::Picture, wit_types::Failure> {
        let picture = crate::shot::render(
            guest_codec(codec),
            &config,
            &access_unit,
            None,
            shortside_px,
            jpeg_quality,
        )?;
        Ok(wit_render::Picture {
            jpeg: picture.jpeg,
            width_px: picture.width,
            height_px: picture.height,
        })
    }

    fn render_shot(
        codec: wit_types::Codec,
        config: Vec<u8>,
        access_unit: Vec<u8>,
        shortside_px: Option<u32>,
        jpeg_quality: u8,
        tile_width_px: Option<u32>,
    ) -> Result<wit_render::Rendered, wit_types::Failure> {
        Self::render_shot_with_color(
            codec,
            config,
            access_unit,
            None,
            shortside_px,
            jpeg_quality,
            tile_width_px,
        )
    }

    fn render_shot_with_color(
        codec: wit_types::Codec,
        config: Vec<u8>,
        access_unit: Vec<u8>,
        color: Option<wit_types::ColorConfig>,
        shortside_px: Option<u32>,
        jpeg_quality: u8,
        tile_width_px: Option<u32>,
    ) -> Result<wit_render::Rendered, wit_types::Failure> {
        let color = color.map(guest_color);
        let r = crate::shot::render_shot(
            guest_codec(codec),
            &config,
            &access_unit,
            color.as_ref(),
            shortside_px,
            jpeg_quality,
            tile_width_px,
        )?;
        Ok(wit_render::Rendered {
            analysis: wit_types::Analysis {
                jpeg_bytes: r.picture.jpeg.len() as u64,
                width_px: r.picture.width,
                height_px: r.picture.height,
                blank: r.analysis.blank,
                signature: r.analysis.signature,
                tile: r.tile.as_ref().map(|t| (t.width, t.height)),
            },
            picture: wit_render::Picture {
                jpeg: r.picture.jpeg,
                width_px: r.picture.width,
                height_px: r.picture.height,
            },
            tile: r.tile.map(wit_tile),
        })
    }

    fn compose_sheet(
        width_px: u32,
        height_px: u32,
        tiles: Vec<wit_render::PlacedTile>,
        jpeg_quality: u8,
    ) -> Result<wit_render::Picture, wit_types::Failure> {
        let tiles: Vec<PlacedTile> = tiles
            .into_iter()
            .map(|p| PlacedTile {
                x: p.x,
                y: p.y,
                tile: crate::render::Yuv420 {
                    width: p.tile.width_px,
                    height: p.tile.height_px,
                    y: p.tile.y,
                    u: p.tile.u,
                    v: p.tile.v,
                    full_range: true,
                    matrix: Matrix::Bt601,
                },
            })
            .collect();
        let picture = crate::shot::compose_sheet(width_px, height_px, &tiles, jpeg_quality)?;
        Ok(wit_render::Picture {
            jpeg: picture.jpeg,
            width_px: picture.width,
            height_px: picture.height,
        })
    }

    fn decode(
        codec: wit_types::Codec,
        config: Vec<u8>,
        access_unit: Vec<u8>,
    ) -> Result<wit_render::Frame, wit_types::Failure> {
        Self::decode_with_color(codec, config, access_unit, None)
    }

    fn decode_with_color(
        codec: wit_types::Codec,
        config: Vec<u8>,
        access_unit: Vec<u8>,
        color: Option<wit_types::ColorConfig>,
    ) -> Result<wit_render::Frame, wit_types::Failure> {
        let color = color.map(guest_color);
        if codec == wit_types::Codec::Hevc {
            let frame =
                render_hevc::decode(&config, &access_unit)?.with_stream_color(color.as_ref());
            return Ok(wit_render::Frame {
                width_px: frame.width,
                height_px: frame.height,
                bit_depth: frame.bit_depth as u8,
                y: frame.plane_bytes(&frame.y),
                u: frame.plane_bytes(&frame.u),
                v: frame.plane_bytes(&frame.v),
                full_range: frame.colour.full_range,
                matrix: wit_matrix(Matrix::from_vui(frame.colour.matrix)),
                transfer: match frame.transfer() {
                    Transfer::Sdr => wit_render::Transfer::Sdr,
                    Transfer::Pq => wit_render::Transfer::Pq,
                    Transfer::Hlg => wit_render::Transfer::Hlg,
                },
            });
        }
        let frame = render::decode_with_color(&config, &access_unit, color.as_ref())?;
        Ok(wit_render::Frame {
            width_px: frame.width,
            height_px: frame.height,
            bit_depth: 8,
            y: frame.y,
            u: frame.u,
            v: frame.v,
            full_range: frame.full_range,
            matrix: wit_matrix(frame.matrix),
            transfer: wit_render::Transfer::Sdr,
        })
    }
}

bindings::export!(Component with_types_in bindings);
