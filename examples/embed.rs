//! The smallest livesnap embedding: plain wasmtime, no WASI linked (the component imports
//! nothing). Replays an FLV file through `livesnap.wasm` like `livesnap replay` with its defaults
//! (app `live`, interval 20 s, bucket `livesnap`, tenant `local`): JPEGs go to
//! OUT/livesnap/{key}, callback bodies to stdout, one per line.
//!
//!   livesnap component --out dist
//!   cargo run -p livesnap-tests --example embed -- dist/livesnap.wasm clip.flv out [START_MS] [SESSION_ID]
use anyhow::{Context, bail};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

wasmtime::component::bindgen!({ world: "snapper", path: "../wit" });
use exports::livesnap::snap::capture::{Action, KeyMode, Outcome, SessionInfo, Settings};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wasm, flv, out, rest @ ..] = &args[..] else {
        bail!("usage: embed LIVESNAP.wasm FILE.flv OUT_DIR [PUSH_START_MS] [SESSION_ID]");
    };
    let engine = Engine::default();
    let component = Component::from_file(&engine, wasm)?;
    let mut store = Store::new(&engine, ());
    let snapper = Snapper::instantiate(&mut store, &component, &Linker::new(&engine))?;
    let (capture, render) = (
        snapper.livesnap_snap_capture(),
        snapper.livesnap_snap_render(),
    );

    let stream = std::path::Path::new(flv).file_stem().context("file name")?;
    let info = SessionInfo {
        app: "live".into(),
        stream: stream.to_string_lossy().into_owned(),
        push_start_ms: rest.first().map_or(Ok(0), |s| s.parse())?,
        session_id: rest.get(1).map_or(Ok(0), |s| s.parse())?,
    };
    let settings = Settings {
        interval_s: 20,
        mode: KeyMode::Sequence,
        shortside_px: None,
        quality: None,
        bucket: "livesnap".into(),
        uniqname: "local".into(),
        alterurl: None,
    };
    let session = match capture
        .session()
        .call_create(&mut store, &info, &settings)?
    {
        Ok(session) => session,
        Err(failure) => bail!("settings refused: {}", failure.message),
    };

    let data = std::fs::read(flv)?;
    if data.len() < 13 || &data[..3] != b"FLV" {
        bail!("{flv} is not FLV");
    }
    // Tags: 11-byte header, body, 4-byte PreviousTagSize (FLV spec v10.1, Annex E).
    let mut pos = u32::from_be_bytes(data[5..9].try_into()?) as usize + 4;
    while let Some(head) = data.get(pos..pos + 11) {
        let size = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
        let timestamp_ms = u32::from_be_bytes([head[7], head[4], head[5], head[6]]);
        let Some(body) = data.get(pos + 11..pos + 11 + size) else {
            break;
        };
        pos += 11 + size + 4;
        let (kind, session_api) = (head[0] & 0x1f, capture.session());
        let callback =
            match session_api.call_push_tag(&mut store, session, kind, timestamp_ms, body)? {
                Ok(Action::Capture(s)) => {
                    let (config, au) = (&s.config, &s.access_unit);
                    // `s.color`: the stream's colorInfo, used where the SPS VUI is silent.
                    let outcome = match render.call_render_shot_with_color(
                        &mut store,
                        s.codec,
                        config,
                        au,
                        s.color,
                        s.shortside_px,
                        s.jpeg_quality,
                        None,
                    )? {
                        Ok(rendered) => {
                            let picture = rendered.picture;
                            let path = std::path::Path::new(out).join("livesnap").join(&s.key);
                            std::fs::create_dir_all(path.parent().context("key has a folder")?)?;
                            std::fs::write(&path, &picture.jpeg)?;
                            Outcome::Stored((picture.width_px, picture.height_px))
                        }
                        Err(failure) => Outcome::Failed(failure),
                    };
                    match session_api.call_complete(&mut store, session, s.seq, &outcome)? {
                        Ok(body) => body,
                        Err(failure) => bail!("complete refused: {}", failure.message),
                    }
                }
                Ok(Action::Refused(body)) => body,
                Ok(Action::None) | Err(_) => continue, // an unusable tag is skipped
            };
        println!("{callback}");
    }
    Ok(())
}
