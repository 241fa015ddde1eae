//! livesnap: screenshots of live H.264 streams without transcoding. This crate is the host: it
//! owns the network, the disk and the clock, runs the guest component (`wit/livesnap.wit`) in
//! wasmtime — a sandboxed capture instance per stream, render instances with memory and time caps
//! — and does what the guest decides: store JPEGs, deliver callbacks.
//!
//! It never parses H.264 or decides what to capture: that is the guest's job, on untrusted bytes,
//! inside the sandbox. Modules: [`runtime`] (wasmtime), [`ingest`] (FLV framing), [`storage`],
//! [`sink`] (callback lines), [`callback`] (signed, spooled, at-least-once HTTP delivery),
//! [`cluster`] (nodes on NATS JetStream), [`replay`] (the replay job), [`artifact`] (the embeddable components and their WIT), [`cli`].
#![deny(unsafe_code)]

pub mod artifact;
pub mod callback;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod features;
pub mod http;
pub mod ingest;
pub mod loadtest;
pub mod probe;
pub mod replay;
pub mod runtime;
pub mod serve;
pub mod sink;
pub mod storage;
pub mod warn_once;
