//! End-to-end tests: every fixture through the real component in wasmtime, checked against
//! golden snapshots, ffmpeg's reference decode and an independent model of the capture rule.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod callback_body;
mod embedding;
mod features;
mod frames;
mod hostile;
mod last_iframe;
mod limits;
mod model;
mod parallel;
mod reference;
mod rules;
mod snapshots;
