//! livesnap-guest: the capture component. It owns every decision about untrusted stream bytes —
//! FLV video tag parsing, the session clock and interval rule, I-frame detection, object keys,
//! callback JSON — and the render path (decode one I-frame, crop, colour, scale, JPEG).
//!
//! It never does I/O and never reads a clock: the host pushes tags in and does what the guest
//! returns. Everything but the WIT glue in `component` (feature `component`, wasm32 only) compiles and is
//! tested natively; other crates (the edge proxy) use it as a plain library.
#![deny(unsafe_code)]

pub mod amf;
pub mod analysis;
pub mod avc;
pub mod callback;
pub mod capture;
pub mod clock;
pub mod color;
pub mod demux;
pub mod encode;
pub mod error;
pub mod flv;
pub mod frame;
pub mod hevc;
pub mod index;
pub mod jpeg;
pub mod naming;
pub mod render;
pub mod render_hevc;
pub mod scale;
pub mod shot;
pub mod storyboard;
pub mod tonemap;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
#[allow(
    unsafe_code,
    reason = "wit-bindgen's generate!/export! expand to the canonical ABI's unsafe exports"
)]
mod component;
